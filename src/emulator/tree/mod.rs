//! One Dropbox namespace: entries, revisions, and the change journal that cursors read.
//!
//! Paths are keyed by `path_lower`; display case is kept per entry and children are created
//! under their parent's display path, so a disk-backed root stays consistent on a case-sensitive
//! file system. Every change appends the changed paths to a journal; a cursor is a journal
//! position, so `list_folder/continue` reports exactly what changed under its scope since then.

mod journal;
mod node;
mod path;
mod sync;
mod write;

pub use node::{Backing, Content, FileNode, Kind, Node, WriteError, WriteMode, now};
pub use path::{in_scope, last_component, lower, parent};

use crate::upstream::types::{DeletedMetadata, Metadata};
use bytes::Bytes;
use node::{stable_id, stable_rev, whole_seconds};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io;
use std::path::{Path, PathBuf};

/// Prefix of temp files written under a disk root; skipped by the scan.
const TEMP_PREFIX: &str = ".~dropcache-emulator-";

#[derive(Debug)]
pub struct Namespace {
    nodes: BTreeMap<String, Node>,
    /// Display paths of deleted items, for `include_deleted`.
    tombstones: HashMap<String, String>,
    journal: VecDeque<(u64, String)>,
    /// Cursors older than this position get `reset`.
    floor: u64,
    seq: u64,
    /// Bumped by a forced cursor reset: every older cursor is invalid.
    pub epoch: u64,
    backing: Backing,
    /// Listing pages still to be handed out, by snapshot id.
    pages: HashMap<u64, Vec<Metadata>>,
    page_order: VecDeque<u64>,
    next_page: u64,
}

impl Namespace {
    pub fn new(backing: Backing) -> io::Result<Self> {
        let mut ns = Namespace {
            nodes: BTreeMap::new(),
            tombstones: HashMap::new(),
            journal: VecDeque::new(),
            floor: 0,
            seq: 0,
            epoch: rand::random::<u32>() as u64,
            backing,
            pages: HashMap::new(),
            page_order: VecDeque::new(),
            next_page: 1,
        };
        if let Backing::Disk(root) = &ns.backing {
            let root = root.clone();
            std::fs::create_dir_all(&root)?;
            ns.scan(&root, "")?;
        }
        Ok(ns)
    }

    /// Loads a directory tree; hashes every file (revs and ids stay stable across restarts).
    fn scan(&mut self, dir: &Path, display: &str) -> io::Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                tracing::warn!(path = ?entry.path(), "skipping a file whose name is not UTF-8");
                continue;
            };
            if name.starts_with(TEMP_PREFIX) {
                let _ = std::fs::remove_file(entry.path());
                continue;
            }
            let ty = entry.file_type()?;
            let child = format!("{display}/{name}");
            let key = lower(&child);
            if ty.is_dir() {
                self.nodes.insert(
                    key.clone(),
                    Node {
                        display: child.clone(),
                        id: stable_id(&key),
                        kind: Kind::Folder,
                    },
                );
                self.scan(&entry.path(), &child)?;
            } else if ty.is_file() {
                let meta = entry.metadata()?;
                let mtime = whole_seconds(meta.modified().unwrap_or_else(|_| now()));
                let (size, hash) = sync::hash_file(&entry.path())?;
                self.nodes.insert(
                    key.clone(),
                    Node {
                        display: child,
                        id: stable_id(&key),
                        kind: Kind::File(FileNode {
                            rev: stable_rev(&key, &hash, mtime),
                            size,
                            hash,
                            client_modified: mtime,
                            server_modified: mtime,
                            data: None,
                        }),
                    },
                );
            }
        }
        Ok(())
    }

    pub fn seq(&self) -> u64 {
        self.seq
    }

    pub fn get(&self, path_lower: &str) -> Option<&Node> {
        self.nodes.get(path_lower)
    }

    pub fn by_id(&self, id: &str) -> Option<&Node> {
        self.nodes.values().find(|n| n.id == id)
    }

    pub fn by_rev(&self, rev: &str) -> Option<&Node> {
        self.nodes
            .values()
            .find(|n| n.file().is_some_and(|f| f.rev == rev))
    }

    pub fn tombstone(&self, path_lower: &str) -> Option<Metadata> {
        self.tombstones.get(path_lower).map(|d| deleted(d))
    }

    /// The bytes of a file node.
    pub fn content(&self, node: &Node) -> Option<Content> {
        let f = node.file()?;
        Some(match (&f.data, &self.backing) {
            (Some(b), _) => Content::Memory(b.clone()),
            (None, Backing::Disk(root)) => Content::Disk(disk_path(root, &node.display)),
            (None, Backing::Memory) => Content::Memory(Bytes::new()),
        })
    }

    /// Everything under `scope` (a folder or the root), parents before children.
    pub fn list(&self, scope: &str, recursive: bool, include_deleted: bool) -> Vec<Metadata> {
        let mut out: Vec<(String, Metadata)> = self
            .nodes
            .iter()
            .filter(|(k, _)| in_scope(k, scope, recursive))
            .map(|(k, n)| (k.clone(), n.metadata()))
            .collect();
        if include_deleted {
            out.extend(
                self.tombstones
                    .iter()
                    .filter(|(k, _)| in_scope(k, scope, recursive) && !self.nodes.contains_key(*k))
                    .map(|(k, d)| (k.clone(), deleted(d))),
            );
            out.sort_by(|a, b| a.0.cmp(&b.0));
        }
        out.into_iter().map(|(_, m)| m).collect()
    }
}

fn deleted(display: &str) -> Metadata {
    Metadata::Deleted(DeletedMetadata {
        name: last_component(display).to_owned(),
        path_lower: Some(lower(display)),
        path_display: Some(display.to_owned()),
    })
}

fn disk_path(root: &Path, display: &str) -> PathBuf {
    root.join(display.trim_start_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_backing_round_trips_and_is_stable_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("Sub")).unwrap();
        std::fs::write(dir.path().join("Sub/Hello.txt"), b"hello world").unwrap();
        let mut a = Namespace::new(Backing::Disk(dir.path().into())).unwrap();
        let node = a.get("/sub/hello.txt").unwrap().clone();
        assert_eq!(
            node.file().unwrap().hash,
            "bc62d4b80d9e36da29c16c5d4d9f11731f36052c72401a76c23c0fb5a9b74423"
        );
        a.put_file(
            "/sub/new.txt",
            Bytes::from_static(b"n"),
            &WriteMode::Add,
            false,
            None,
        )
        .unwrap();
        assert_eq!(std::fs::read(dir.path().join("Sub/new.txt")).unwrap(), b"n");
        let b = Namespace::new(Backing::Disk(dir.path().into())).unwrap();
        let again = b.get("/sub/hello.txt").unwrap();
        assert_eq!(again.id, node.id);
        assert_eq!(again.file().unwrap().rev, node.file().unwrap().rev);
        assert!(b.get("/sub/new.txt").is_some());
    }
}
