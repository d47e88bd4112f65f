//! Blobs on disk: opening one (checked against its name when not yet verified), and small
//! whole blobs (thumbnails) read and kept.

use super::disk::{self, Disk, secs};
use super::index::Blob;
use super::stream::{PinGuard, Source};
use super::{Bodies, TOUCH_EVERY, lock};
use crate::upstream::content_hash::ContentHasher;
use bytes::Bytes;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::time::SystemTime;

/// What the cache has under a blob name.
pub(super) enum Found {
    /// Its bytes, from the memory tier (or just read into it).
    Memory(Bytes),
    Blob(Source),
    Absent,
    /// Kept, but it cannot be read now (a transient failure).
    Unavailable,
}

/// What opening a blob on disk found.
pub(super) enum Verdict {
    Intact(std::fs::File),
    /// Intact, and read whole (it is small enough for the memory tier), and its file opened
    /// for reading (None if it could not be opened again after a touch).
    Read(Bytes, Option<std::fs::File>),
    /// Not what its name says: delete it (the reason, for the log).
    Wrong(&'static str),
    /// Could not be read now; say nothing of its bytes.
    Unreadable(std::io::Error),
}

/// Opens the blob `name`, recorded as `size` bytes; unless `verified`, checks its size and
/// hashes it first. With `whole`, reads it all (checking the size read). Blocking.
pub(super) fn open_blob(
    disk: &Disk,
    name: &str,
    size: u64,
    verified: bool,
    touch: bool,
    whole: bool,
) -> Verdict {
    let path = disk.blob_path(name);
    let mut file = match std::fs::File::options().read(true).write(touch).open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Verdict::Wrong("missing"),
        Err(e) => return Verdict::Unreadable(e),
    };
    // A blob this process wrote was checked then; one found at start-up is checked once.
    if !verified {
        match file.metadata() {
            Ok(m) if m.len() != size => return Verdict::Wrong("not the size recorded"),
            Ok(_) => {}
            Err(e) => return Verdict::Unreadable(e),
        }
    }
    if !verified && disk::is_hashed(name) {
        // Found on disk at start-up: hash it once before trusting it.
        let mut hasher = ContentHasher::new();
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            match file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => hasher.update(&buf[..n]),
                Err(e) => return Verdict::Unreadable(e),
            }
        }
        if hasher.finish() != name {
            return Verdict::Wrong("does not hash to its name");
        }
    }
    if touch {
        let _ = file.set_modified(SystemTime::now());
    }
    if whole {
        let mut out = Vec::with_capacity(size as usize);
        if let Err(e) = std::io::Seek::rewind(&mut file).and_then(|()| file.read_to_end(&mut out)) {
            return Verdict::Unreadable(e);
        }
        if out.len() as u64 != size {
            return Verdict::Wrong("not the size recorded");
        }
        // One opened for writing (to touch it) is not kept open: a read-only twin is. A body
        // held in memory is not opened again, so this is its file's one chance to be kept.
        let file = match touch {
            false => Some(file),
            true => std::fs::File::open(&path).ok(),
        };
        return Verdict::Read(Bytes::from(out), file);
    }
    Verdict::Intact(file)
}

impl Bodies {
    /// The whole of a small blob (a thumbnail), if the cache has it.
    pub async fn read_small(&self, name: &str) -> Option<Bytes> {
        let file = match self.blob(name).await {
            Found::Memory(bytes) => return Some(bytes),
            Found::Blob(Source::Blob { file, _pin }) => (file, _pin),
            _ => return None,
        };
        tokio::task::spawn_blocking(move || {
            let (file, _pin) = file;
            // By offset, from 0: a kept file is shared, and its position is anyone's.
            let len = usize::try_from(file.metadata().ok()?.len()).ok()?;
            let mut out = vec![0; len];
            file.read_exact_at(&mut out, 0).ok()?;
            Some(Bytes::from(out))
        })
        .await
        .ok()
        .flatten()
    }

    /// Keeps `bytes` as the blob `name` (a derived name: nothing checks its hash). A cache
    /// that cannot take it just does not keep it.
    pub async fn keep_small(&self, name: &str, bytes: Bytes) {
        let (disk, index, name) = (self.disk.clone(), self.index.clone(), name.to_owned());
        let min_free = self.min_free;
        let kept = tokio::task::spawn_blocking(move || {
            if disk.free_space().unwrap_or(0) < min_free + bytes.len() as u64 {
                return Ok(());
            }
            let (mut file, temp) = disk.temp()?;
            std::io::Write::write_all(&mut file, &bytes)?;
            disk.publish(temp, &name)?;
            let victims = lock(&index).insert(
                &name,
                Blob {
                    size: bytes.len() as u64,
                    verified: true,
                    touched: secs(SystemTime::now()),
                },
            );
            victims.iter().for_each(|v| disk.remove(v));
            Ok::<_, std::io::Error>(())
        })
        .await;
        if !matches!(kept, Ok(Ok(()))) {
            tracing::warn!("cannot keep a thumbnail in the body cache");
        }
    }

    /// The memory tier's copy of `hash`, if it holds one (its last use noted now and then).
    pub(super) fn in_memory(&self, hash: &str) -> Option<Bytes> {
        let mut ix = lock(&self.index);
        let (bytes, blob) = ix.in_memory(hash)?;
        let now = secs(SystemTime::now());
        if now.saturating_sub(blob.touched) >= TOUCH_EVERY.as_secs() {
            blob.touched = now;
            drop(ix);
            self.touch(hash);
        }
        Some(bytes)
    }

    /// The blob named `hash`, pinned and open, if the cache has it and it is intact.
    ///
    /// A blob is deleted only when it is wrong: gone from disk, or (found at start-up, checked
    /// once) not of its recorded size or not hashing to its name. Any other failure (no file
    /// descriptor left, an I/O error) keeps it: the request goes to Dropbox this time.
    pub(super) async fn blob(&self, hash: &str) -> Found {
        // The memory tier first: no file, no pin (the bytes are shared).
        match self.in_memory(hash) {
            Some(bytes) => Found::Memory(bytes),
            None => self.blob_beyond_memory(hash).await,
        }
    }

    /// `blob`, for a caller that has just looked in memory: from the disk (its bytes are kept
    /// in memory if small, and then `Found::Memory`).
    pub(super) async fn blob_beyond_memory(&self, hash: &str) -> Found {
        let (verified, touch, size, whole, since, pinned) = {
            let mut ix = lock(&self.index);
            let now = secs(SystemTime::now());
            let Some(blob) = ix.get(hash) else {
                return Found::Absent;
            };
            let touch = now.saturating_sub(blob.touched) >= TOUCH_EVERY.as_secs();
            if touch {
                blob.touched = now;
            }
            let (verified, size) = (blob.verified, blob.size);
            let whole = ix.memory_takes(size);
            let pinned = ix.pin(hash);
            // A hot blob's file kept open: nothing to open (kept only once verified).
            if let Some(file) = ix.open_file(hash) {
                drop(ix);
                if touch {
                    self.touch(hash);
                }
                return Found::Blob(Source::Blob {
                    file,
                    _pin: self.pin_guard(pinned),
                });
            }
            (verified, touch, size, whole, ix.removals(), pinned)
        };
        let pin = self.pin_guard(pinned);
        let disk = self.disk.clone();
        let name = hash.to_owned();
        let opened = tokio::task::spawn_blocking(move || {
            open_blob(&disk, &name, size, verified, touch, whole)
        })
        .await
        .unwrap_or_else(|e| Verdict::Unreadable(std::io::Error::other(e)));
        let wrong = match opened {
            Verdict::Read(bytes, file) => {
                let mut ix = lock(&self.index);
                if let Some(b) = ix.get(hash) {
                    b.verified = true;
                }
                ix.keep_in_memory(hash, bytes.clone(), since);
                // Its file too, for sendfile of a larger one (`cache.sendfile_min`).
                if let Some(file) = file.filter(|_| self.sendfile && size >= self.sendfile_min) {
                    ix.keep_open(hash, Arc::new(file), since);
                }
                return Found::Memory(bytes);
            }
            Verdict::Intact(file) => {
                let file = Arc::new(file);
                let mut ix = lock(&self.index);
                if !verified && let Some(b) = ix.get(hash) {
                    b.verified = true;
                }
                // (Not one opened for writing, to touch it: the next open keeps its file.)
                if !touch {
                    ix.keep_open(hash, file.clone(), since);
                }
                return Found::Blob(Source::Blob { file, _pin: pin });
            }
            Verdict::Unreadable(e) => {
                tracing::warn!(error = %e, "cannot read a cached blob now; serving from Dropbox");
                return Found::Unavailable;
            }
            Verdict::Wrong(why) => why,
        };
        tracing::warn!(hash, why = wrong, "a cached blob is wrong; dropping it");
        drop(pin);
        lock(&self.index).remove(hash);
        let disk = self.disk.clone();
        let name = hash.to_owned();
        let _ = tokio::task::spawn_blocking(move || disk.remove(&name)).await;
        Found::Absent
    }

    /// Holds `hash` pinned (never evicted) until dropped; the caller pinned it in the index
    /// (`Index::pin`, which gave this name).
    pub(super) fn pin_guard(&self, hash: Arc<str>) -> PinGuard {
        PinGuard {
            hash,
            index: self.index.clone(),
            disk: self.disk.clone(),
        }
    }

    /// Sets a blob's mtime to now, in the background (its last use, kept across restarts).
    fn touch(&self, hash: &str) {
        let path = self.disk.blob_path(hash);
        tokio::task::spawn_blocking(move || {
            if let Ok(f) = std::fs::File::options().write(true).open(path) {
                let _ = f.set_modified(SystemTime::now());
            }
        });
    }
}
