//! Edits made on a disk root behind the emulator's back (an editor, a site generator, `cp`),
//! taken in as the Dropbox client would sync them: each changed file gets a new rev and a
//! journal entry, so cursors, longpolls and webhooks report it like any upload.
//!
//! `emulator::watch` says which paths to look at (inotify); this compares them with the disk.

use super::node::{new_rev, random_id, whole_seconds};
use super::path::{last_component, lower, parent};
use super::{Backing, FileNode, Kind, Namespace, Node, TEMP_PREFIX, disk_path, now};
use crate::upstream::content_hash::ContentHasher;
use std::io::{self, Read};
use std::path::Path;

impl Namespace {
    /// The directory this namespace keeps its files in, if it is disk-backed.
    pub fn disk_root(&self) -> Option<&Path> {
        match &self.backing {
            Backing::Disk(root) => Some(root),
            Backing::Memory => None,
        }
    }

    /// Brings `display` (a path under the disk root as the disk spells it; `""` for the root)
    /// and everything under it in line with the disk. Whether anything changed.
    pub fn sync_from_disk(&mut self, display: &str) -> io::Result<bool> {
        let Some(root) = self.disk_root().map(Path::to_owned) else {
            return Ok(false);
        };
        if last_component(display).starts_with(TEMP_PREFIX) {
            return Ok(false);
        }
        // A path whose folder is not known yet: take in the folder (and so the path).
        let up = parent(display);
        if !up.is_empty() && !self.nodes.get(&lower(up)).is_some_and(Node::is_folder) {
            return self.sync_from_disk(up);
        }
        let key = lower(display);
        let on_disk = match std::fs::symlink_metadata(disk_path(&root, display)) {
            Ok(m) => Some(m),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        match on_disk {
            Some(m) if m.is_dir() => self.sync_folder(&root, display, &key),
            Some(m) if m.is_file() => self.sync_file(&root, display, &key, &m),
            // Gone (or a symlink, which a scan skips too): gone here as well.
            _ if display.is_empty() => Ok(false),
            _ => Ok(self.forget(&key)),
        }
    }

    fn sync_folder(&mut self, root: &Path, display: &str, key: &str) -> io::Result<bool> {
        let mut changed = false;
        if !display.is_empty() && !self.nodes.get(key).is_some_and(Node::is_folder) {
            self.forget(key);
            self.insert_node(Node {
                display: display.to_owned(),
                id: random_id(),
                kind: Kind::Folder,
            });
            changed = true;
        }
        let mut seen = Vec::new();
        for entry in std::fs::read_dir(disk_path(root, display))? {
            let entry = entry?;
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            let child = format!("{display}/{name}");
            seen.push(lower(&child));
            changed |= self.sync_from_disk(&child)?;
        }
        // What the namespace has here that the disk no longer does.
        let prefix = format!("{key}/");
        let gone: Vec<String> = self
            .nodes
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .map(|(k, _)| k.clone())
            .filter(|k| !k[prefix.len()..].contains('/') && !seen.contains(k))
            .collect();
        for k in gone {
            changed |= self.forget(&k);
        }
        Ok(changed)
    }

    fn sync_file(
        &mut self,
        root: &Path,
        display: &str,
        key: &str,
        meta: &std::fs::Metadata,
    ) -> io::Result<bool> {
        let (size, hash) = hash_file(&disk_path(root, display))?;
        if let Some(Node {
            kind: Kind::File(f),
            ..
        }) = self.nodes.get(key)
            && f.hash == hash
        {
            // The emulator's own write, or a touch: no new version.
            return Ok(false);
        }
        let id = match self.nodes.get(key) {
            Some(n) if !n.is_folder() => n.id.clone(),
            Some(_) => {
                self.forget(key);
                random_id()
            }
            None => random_id(),
        };
        let mtime = whole_seconds(meta.modified().unwrap_or_else(|_| now()));
        self.insert_node(Node {
            display: display.to_owned(),
            id,
            kind: Kind::File(FileNode {
                rev: new_rev(),
                size,
                hash,
                client_modified: mtime,
                server_modified: whole_seconds(now()),
                data: None,
            }),
        });
        Ok(true)
    }

    fn insert_node(&mut self, node: Node) {
        let key = lower(&node.display);
        self.tombstones.remove(&key);
        self.nodes.insert(key.clone(), node);
        self.record(key);
    }

    /// Drops `key` and its subtree, journaled as deletions; whether there was anything.
    fn forget(&mut self, key: &str) -> bool {
        let mut any = false;
        for k in self.subtree(key) {
            if let Some(n) = self.nodes.remove(&k) {
                self.tombstones.insert(k.clone(), n.display);
                self.record(k);
                any = true;
            }
        }
        any
    }
}

/// A file's size and Dropbox content hash.
pub(super) fn hash_file(path: &Path) -> io::Result<(u64, String)> {
    let mut hasher = ContentHasher::new();
    let mut file = std::fs::File::open(path)?;
    let mut buf = vec![0u8; 256 * 1024];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        size += n as u64;
        hasher.update(&buf[..n]);
    }
    Ok((size, hasher.finish()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edits_on_disk_become_journaled_changes_and_own_writes_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("site")).unwrap();
        std::fs::write(root.join("site/a.txt"), "one").unwrap();
        let mut ns = Namespace::new(Backing::Disk(root.to_owned())).unwrap();
        let seq = ns.seq();
        let rev = |ns: &Namespace, k: &str| match &ns.get(k).expect("a node").kind {
            Kind::File(f) => f.rev.clone(),
            Kind::Folder => panic!("{k} is a folder"),
        };
        let first = rev(&ns, "/site/a.txt");
        // Nothing changed: nothing journaled.
        assert!(!ns.sync_from_disk("").unwrap());
        assert_eq!(ns.seq(), seq);
        // An edit: a new rev, a journal entry.
        std::fs::write(root.join("site/a.txt"), "two").unwrap();
        assert!(ns.sync_from_disk("/site/a.txt").unwrap());
        assert_ne!(rev(&ns, "/site/a.txt"), first);
        assert_eq!(ns.seq(), seq + 1);
        // A new folder with a file in it, seen from the file's own event.
        std::fs::create_dir_all(root.join("site/New")).unwrap();
        std::fs::write(root.join("site/New/b.txt"), "b").unwrap();
        assert!(ns.sync_from_disk("/site/New/b.txt").unwrap());
        assert!(ns.get("/site/new").unwrap().is_folder());
        assert_eq!(
            ns.get("/site/new/b.txt").unwrap().display,
            "/site/New/b.txt"
        );
        // A removal, seen from its folder.
        std::fs::remove_file(root.join("site/a.txt")).unwrap();
        assert!(ns.sync_from_disk("/site").unwrap());
        assert!(ns.get("/site/a.txt").is_none());
        assert!(ns.tombstone("/site/a.txt").is_some());
        // The emulator's own upload, seen again by the watcher: no second version.
        let seq = ns.seq();
        ns.put_file(
            "/site/c.txt",
            bytes::Bytes::from_static(b"c"),
            &super::super::WriteMode::Overwrite,
            false,
            None,
        )
        .unwrap();
        assert_eq!(ns.seq(), seq + 1);
        assert!(!ns.sync_from_disk("/site/c.txt").unwrap());
        assert_eq!(ns.seq(), seq + 1);
        // Temp files are not files.
        std::fs::write(root.join(format!("site/{TEMP_PREFIX}x")), "t").unwrap();
        assert!(!ns.sync_from_disk(&format!("/site/{TEMP_PREFIX}x")).unwrap());
    }
}
