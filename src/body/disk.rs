//! The bytes of the body cache on disk: `<dir>/ab/cd/<content_hash>` blobs, temp files in
//! `<dir>/tmp` renamed into place once verified, the start-up scan, free space.
//! Blocking file-system calls; callers run them on the blocking pool.

use std::io;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};
use tempfile::TempPath;

pub struct Disk {
    dir: PathBuf,
}

/// A blob found by the scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub hash: String,
    pub size: u64,
    /// Its mtime, in seconds: the last time it was used.
    pub used: u64,
}

pub fn secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Ends the name of a blob whose bytes have no Dropbox content hash to check (a shared link's
/// file, a thumbnail): 64 hex digits of a name derived from what it is, then this.
pub const DERIVED: &str = ".d";

/// A valid blob name: a content hash (64 lowercase hex digits), or a derived name.
pub fn is_blob_name(name: &str) -> bool {
    let hash = name.strip_suffix(DERIVED).unwrap_or(name);
    crate::upstream::content_hash::is_content_hash(hash)
}

/// Whether a blob's name is its bytes' content hash (so they can be checked against it).
pub fn is_hashed(name: &str) -> bool {
    !name.ends_with(DERIVED)
}

/// A derived blob name for `parts` (see `DERIVED`).
pub fn derived_name(parts: &[&str]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    format!("{}{DERIVED}", hex::encode(h.finalize()))
}

impl Disk {
    /// Creates the directory (and its `tmp`) if needed.
    pub fn open(dir: &Path) -> io::Result<Disk> {
        std::fs::create_dir_all(dir.join("tmp"))?;
        Ok(Disk {
            dir: dir.to_owned(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `<dir>/ab/cd/<hash>`.
    pub fn blob_path(&self, hash: &str) -> PathBuf {
        self.dir.join(&hash[..2]).join(&hash[2..4]).join(hash)
    }

    /// A fresh temp file in `<dir>/tmp`, open for reading and writing; its path deletes the
    /// file when dropped, unless `publish` moved it into place.
    pub fn temp(&self) -> io::Result<(std::fs::File, TempPath)> {
        let named = tempfile::Builder::new()
            .suffix(".part")
            .tempfile_in(self.dir.join("tmp"))?;
        Ok(named.into_parts())
    }

    /// Moves a verified temp file into place as `hash`.
    pub fn publish(&self, temp: TempPath, hash: &str) -> io::Result<()> {
        let to = self.blob_path(hash);
        std::fs::create_dir_all(to.parent().expect("blob paths have parents"))?;
        temp.persist(to).map_err(|e| e.error)
    }

    /// Deletes a blob (absent is fine).
    pub fn remove(&self, hash: &str) {
        match std::fs::remove_file(self.blob_path(hash)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(error = %e, "cannot delete an evicted blob"),
        }
    }

    /// Bytes available to us on the cache's file system.
    pub fn free_space(&self) -> io::Result<u64> {
        self.space().map(|(free, _)| free)
    }

    /// Bytes available to us on the cache's file system, and its size.
    pub fn space(&self) -> io::Result<(u64, u64)> {
        let s = rustix::fs::statvfs(&self.dir)?;
        Ok((
            s.f_bavail.saturating_mul(s.f_frsize),
            s.f_blocks.saturating_mul(s.f_frsize),
        ))
    }

    /// Every blob on disk, most recently used first; deletes leftover temp files and anything
    /// in the blob tree that is not a blob.
    pub fn scan(&self) -> io::Result<Vec<Found>> {
        for e in std::fs::read_dir(self.dir.join("tmp"))? {
            let _ = std::fs::remove_file(e?.path());
        }
        let mut found = Vec::new();
        for top in std::fs::read_dir(&self.dir)? {
            let top = top?;
            let name = top.file_name();
            let name = name.to_string_lossy();
            if name == "tmp" || !top.file_type()?.is_dir() || name.len() != 2 {
                continue;
            }
            for mid in std::fs::read_dir(top.path())? {
                let mid = mid?;
                if !mid.file_type()?.is_dir() {
                    continue;
                }
                for leaf in std::fs::read_dir(mid.path())? {
                    let leaf = leaf?;
                    let hash = leaf.file_name().to_string_lossy().into_owned();
                    let meta = leaf.metadata()?;
                    let placed = is_blob_name(&hash) && leaf.path() == self.blob_path(&hash);
                    if !placed || !meta.is_file() {
                        let _ = std::fs::remove_file(leaf.path());
                        continue;
                    }
                    found.push(Found {
                        hash,
                        size: meta.len(),
                        used: meta.modified().map_or(0, secs),
                    });
                }
            }
        }
        found.sort_by_key(|f| std::cmp::Reverse(f.used));
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_finds_blobs_newest_first_and_cleans_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let disk = Disk::open(dir.path()).unwrap();
        let h1 = "a".repeat(64);
        let h2 = format!("ab{}", "c".repeat(62));
        for (h, age) in [(&h1, 100), (&h2, 10)] {
            let (file, temp) = disk.temp().unwrap();
            drop(file);
            std::fs::write(&temp, h.as_bytes()).unwrap();
            disk.publish(temp, h).unwrap();
            let f = std::fs::File::options()
                .write(true)
                .open(disk.blob_path(h))
                .unwrap();
            f.set_modified(SystemTime::now() - std::time::Duration::from_secs(age))
                .unwrap();
        }
        // A crash's leftover: a temp file nobody deletes.
        let (_, left) = disk.temp().unwrap();
        let left = left.keep().unwrap();
        std::fs::write(disk.blob_path(&h1).with_file_name("junk"), "x").unwrap();
        let found = disk.scan().unwrap();
        assert_eq!(
            found.iter().map(|f| f.hash.as_str()).collect::<Vec<_>>(),
            [h2.as_str(), h1.as_str()]
        );
        assert_eq!(found[0].size, 64);
        assert!(!left.exists(), "temp files are cleaned");
        assert!(!disk.blob_path(&h1).with_file_name("junk").exists());
        assert!(disk.free_space().unwrap() > 0);
    }
}
