//! Writes: uploads, new folders, deletes and moves, each journaled; on a disk root, files are
//! written through a temp file and renamed into place.

use super::node::{new_rev, random_id, whole_seconds};
use super::path::{last_component, lower, parent, renamed};
use super::{
    Backing, FileNode, Kind, Namespace, Node, TEMP_PREFIX, WriteError, WriteMode, disk_path, now,
};
use crate::upstream::content_hash::content_hash;
use crate::upstream::types::Metadata;
use bytes::Bytes;
use std::io;
use std::path::Path;
use std::time::SystemTime;

impl Namespace {
    /// Resolves where a new child goes: (display path, parent chain to create).
    fn display_for(&self, requested: &str) -> Result<(String, Vec<String>), WriteError> {
        let name = last_component(requested);
        let parent_req = parent(requested);
        if parent_req.is_empty() {
            return Ok((format!("/{name}"), Vec::new()));
        }
        match self.nodes.get(&lower(parent_req)) {
            Some(p) if p.is_folder() => Ok((format!("{}/{name}", p.display), Vec::new())),
            Some(_) => Err(WriteError::Conflict("file_ancestor")),
            None => {
                let (pdisplay, mut chain) = self.display_for(parent_req)?;
                chain.push(pdisplay.clone());
                Ok((format!("{pdisplay}/{name}"), chain))
            }
        }
    }

    fn create_parents(&mut self, chain: Vec<String>) -> io::Result<()> {
        for display in chain {
            if let Backing::Disk(root) = &self.backing {
                std::fs::create_dir_all(disk_path(root, &display))?;
            }
            let key = lower(&display);
            self.tombstones.remove(&key);
            self.nodes.insert(
                key.clone(),
                Node {
                    display,
                    id: random_id(),
                    kind: Kind::Folder,
                },
            );
            self.record(key);
        }
        Ok(())
    }

    /// Finds a free name for autorename.
    fn free_name(&self, display: &str) -> String {
        (1..)
            .map(|n| renamed(display, n))
            .find(|d| !self.nodes.contains_key(&lower(d)))
            .expect("some suffix is free")
    }

    /// `files/upload`: writes a file; identical content is a no-op that returns the current file.
    pub fn put_file(
        &mut self,
        requested: &str,
        data: Bytes,
        mode: &WriteMode,
        autorename: bool,
        client_modified: Option<SystemTime>,
    ) -> Result<Node, WriteError> {
        let hash = content_hash(&data);
        let mut key = lower(requested);
        let (mut display, chain) = self.display_for(requested)?;
        if let Some(existing) = self.nodes.get(&key) {
            display = existing.display.clone();
            let conflict = match (&existing.kind, mode) {
                (Kind::Folder, _) => Some("folder"),
                (Kind::File(f), _) if f.hash == hash => return Ok(existing.clone()),
                (Kind::File(_), WriteMode::Add) => Some("file"),
                (Kind::File(f), WriteMode::Update(rev)) if &f.rev != rev => Some("file"),
                (Kind::File(_), _) => None,
            };
            if let Some(what) = conflict {
                if !autorename {
                    return Err(WriteError::Conflict(what));
                }
                display = self.free_name(&display);
                key = lower(&display);
            }
        }
        self.create_parents(chain)?;
        let stored = match &self.backing {
            Backing::Disk(root) => {
                write_atomically(&disk_path(root, &display), &data)?;
                None
            }
            Backing::Memory => Some(data.clone()),
        };
        let now = now();
        let id = self
            .nodes
            .get(&key)
            .map(|n| n.id.clone())
            .unwrap_or_else(random_id);
        let node = Node {
            display,
            id,
            kind: Kind::File(FileNode {
                rev: new_rev(),
                size: data.len() as u64,
                hash,
                client_modified: client_modified.map(whole_seconds).unwrap_or(now),
                server_modified: now,
                data: stored,
            }),
        };
        self.tombstones.remove(&key);
        self.nodes.insert(key.clone(), node.clone());
        self.record(key);
        Ok(node)
    }

    /// `files/create_folder_v2`.
    pub fn create_folder(&mut self, requested: &str, autorename: bool) -> Result<Node, WriteError> {
        let (mut display, chain) = self.display_for(requested)?;
        if let Some(existing) = self.nodes.get(&lower(requested)) {
            if !autorename {
                return Err(WriteError::Conflict(if existing.is_folder() {
                    "folder"
                } else {
                    "file"
                }));
            }
            display = self.free_name(&existing.display);
        }
        self.create_parents(chain)?;
        if let Backing::Disk(root) = &self.backing {
            std::fs::create_dir_all(disk_path(root, &display))?;
        }
        let key = lower(&display);
        let node = Node {
            display,
            id: random_id(),
            kind: Kind::Folder,
        };
        self.tombstones.remove(&key);
        self.nodes.insert(key.clone(), node.clone());
        self.record(key);
        Ok(node)
    }

    /// Keys of `path_lower` and everything below it.
    pub(super) fn subtree(&self, path_lower: &str) -> Vec<String> {
        let prefix = format!("{path_lower}/");
        std::iter::once(path_lower.to_owned())
            .chain(
                self.nodes
                    .range(prefix.clone()..)
                    .take_while(|(k, _)| k.starts_with(&prefix))
                    .map(|(k, _)| k.clone()),
            )
            .collect()
    }

    /// `files/delete_v2`: removes an item and its subtree; returns its metadata before deletion.
    pub fn delete(&mut self, path_lower: &str) -> Result<Metadata, WriteError> {
        let node = self.nodes.get(path_lower).ok_or(WriteError::NotFound)?;
        let meta = node.metadata();
        if let Backing::Disk(root) = &self.backing {
            let p = disk_path(root, &node.display);
            if node.is_folder() {
                std::fs::remove_dir_all(p)?;
            } else {
                std::fs::remove_file(p)?;
            }
        }
        for key in self.subtree(path_lower) {
            if let Some(n) = self.nodes.remove(&key) {
                self.tombstones.insert(key.clone(), n.display);
                self.record(key);
            }
        }
        Ok(meta)
    }

    /// `files/move_v2`: moves an item and its subtree; ids are kept. A case-only rename is not
    /// journaled, as on Dropbox.
    pub fn move_to(
        &mut self,
        from_lower: &str,
        to_requested: &str,
        autorename: bool,
    ) -> Result<Node, WriteError> {
        let from = self
            .nodes
            .get(from_lower)
            .ok_or(WriteError::NotFound)?
            .clone();
        let to_lower = lower(to_requested);
        if to_lower.starts_with(&format!("{from_lower}/")) {
            return Err(WriteError::IntoItself);
        }
        let case_only = to_lower == from_lower;
        let (mut to_display, chain) = self.display_for(to_requested)?;
        if !case_only && let Some(existing) = self.nodes.get(&to_lower) {
            if !autorename {
                return Err(WriteError::Conflict(if existing.is_folder() {
                    "folder"
                } else {
                    "file"
                }));
            }
            to_display = self.free_name(&existing.display);
        }
        self.create_parents(chain)?;
        if let Backing::Disk(root) = &self.backing {
            std::fs::rename(disk_path(root, &from.display), disk_path(root, &to_display))?;
        }
        let to_key = lower(&to_display);
        let moved: Vec<(String, Node)> = self
            .subtree(from_lower)
            .into_iter()
            .filter_map(|k| self.nodes.remove(&k).map(|n| (k, n)))
            .collect();
        for (old_key, mut node) in moved {
            let suffix = node.display[from.display.len()..].to_owned();
            node.display = format!("{to_display}{suffix}");
            let new_key = lower(&node.display);
            if !case_only {
                self.tombstones
                    .insert(old_key.clone(), from.display.clone() + &suffix);
                self.record(old_key);
                self.tombstones.remove(&new_key);
                self.record(new_key.clone());
            }
            self.nodes.insert(new_key, node);
        }
        Ok(self.nodes.get(&to_key).expect("just moved").clone())
    }
}

/// Writes through a temp file in the same directory, then renames into place, so a reader of
/// the old file keeps the old bytes.
fn write_atomically(path: &Path, data: &[u8]) -> io::Result<()> {
    let dir = path.parent().expect("a file under the root has a parent");
    let tmp = dir.join(format!("{TEMP_PREFIX}{:016x}", rand::random::<u64>()));
    std::fs::write(&tmp, data)?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns() -> Namespace {
        Namespace::new(Backing::Memory).unwrap()
    }

    #[test]
    fn upload_creates_parents_and_keeps_display_case() {
        let mut ns = ns();
        ns.put_file(
            "/Photos/Venice/a.JPG",
            Bytes::from_static(b"x"),
            &WriteMode::Add,
            false,
            None,
        )
        .unwrap();
        let f = ns
            .put_file(
                "/photos/venice/b.jpg",
                Bytes::from_static(b"y"),
                &WriteMode::Add,
                false,
                None,
            )
            .unwrap();
        assert_eq!(f.display, "/Photos/Venice/b.jpg");
        assert!(ns.get("/photos").unwrap().is_folder());
        let names: Vec<_> = ns
            .list("", true, false)
            .iter()
            .map(|m| m.name().to_owned())
            .collect();
        assert_eq!(names, ["Photos", "Venice", "a.JPG", "b.jpg"]);
    }

    #[test]
    fn write_modes_and_autorename() {
        let mut ns = ns();
        let a = ns
            .put_file(
                "/f.txt",
                Bytes::from_static(b"1"),
                &WriteMode::Add,
                false,
                None,
            )
            .unwrap();
        // Same content: no new revision.
        let same = ns
            .put_file(
                "/F.txt",
                Bytes::from_static(b"1"),
                &WriteMode::Add,
                false,
                None,
            )
            .unwrap();
        assert_eq!(same.file().unwrap().rev, a.file().unwrap().rev);
        let err = ns.put_file(
            "/f.txt",
            Bytes::from_static(b"2"),
            &WriteMode::Add,
            false,
            None,
        );
        assert_eq!(err.unwrap_err(), WriteError::Conflict("file"));
        let renamed = ns
            .put_file(
                "/f.txt",
                Bytes::from_static(b"2"),
                &WriteMode::Add,
                true,
                None,
            )
            .unwrap();
        assert_eq!(renamed.display, "/f (1).txt");
        let over = ns
            .put_file(
                "/f.txt",
                Bytes::from_static(b"3"),
                &WriteMode::Overwrite,
                false,
                None,
            )
            .unwrap();
        assert_ne!(over.file().unwrap().rev, a.file().unwrap().rev);
        assert_eq!(over.id, a.id, "overwrite keeps the id");
        let stale = WriteMode::Update(a.file().unwrap().rev.clone());
        assert!(
            ns.put_file("/f.txt", Bytes::from_static(b"4"), &stale, false, None)
                .is_err()
        );
        let rev = over.file().unwrap().rev.clone();
        assert!(
            rev.len() >= 9
                && rev
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert_eq!(
            ns.put_file("/f.txt/x", Bytes::new(), &WriteMode::Add, false, None)
                .unwrap_err(),
            WriteError::Conflict("file_ancestor")
        );
    }

    #[test]
    fn move_keeps_ids_and_case_only_rename_is_silent() {
        let mut ns = ns();
        let f = ns
            .put_file(
                "/d/f",
                Bytes::from_static(b"1"),
                &WriteMode::Add,
                false,
                None,
            )
            .unwrap();
        let moved = ns.move_to("/d", "/e", false).unwrap();
        assert_eq!(moved.display, "/e");
        assert_eq!(ns.get("/e/f").unwrap().id, f.id);
        assert!(ns.get("/d/f").is_none());
        let seq = ns.seq();
        ns.move_to("/e", "/E", false).unwrap();
        assert_eq!(ns.get("/e").unwrap().display, "/E");
        assert_eq!(ns.seq(), seq, "case-only rename is not journaled");
        assert_eq!(
            ns.move_to("/e", "/e/sub", false).unwrap_err(),
            WriteError::IntoItself
        );
    }
}
