//! One Dropbox namespace: entries, revisions, and the change journal that cursors read.
//!
//! Paths are keyed by `path_lower`; display case is kept per entry and children are created
//! under their parent's display path, so a disk-backed root stays consistent on a case-sensitive
//! file system. Every change appends the changed paths to a journal; a cursor is a journal
//! position, so `list_folder/continue` reports exactly what changed under its scope since then.

use crate::upstream::content_hash::{ContentHasher, content_hash};
use crate::upstream::types::{DeletedMetadata, FileMetadata, FolderMetadata, Metadata, timestamp};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Journal entries kept before the oldest cursors are answered with `reset`.
const JOURNAL_CAP: usize = 100_000;
/// Prefix of temp files written under a disk root; skipped by the scan.
const TEMP_PREFIX: &str = ".~dropcache-emulator-";

/// Where file bytes live.
#[derive(Debug, Clone)]
pub enum Backing {
    Memory,
    Disk(PathBuf),
}

/// A file's bytes: in memory, or a file on disk read on demand.
#[derive(Debug, Clone)]
pub enum Content {
    Memory(Bytes),
    Disk(PathBuf),
}

#[derive(Debug, Clone)]
pub struct FileNode {
    pub rev: String,
    pub size: u64,
    pub hash: String,
    pub client_modified: SystemTime,
    pub server_modified: SystemTime,
    /// The bytes, for a memory-backed namespace.
    pub data: Option<Bytes>,
}

#[derive(Debug, Clone)]
pub enum Kind {
    Folder,
    File(FileNode),
}

#[derive(Debug, Clone)]
pub struct Node {
    /// Full display path, e.g. `/Photos/Venice.jpg`.
    pub display: String,
    pub id: String,
    pub kind: Kind,
}

impl Node {
    pub fn name(&self) -> &str {
        last_component(&self.display)
    }

    pub fn is_folder(&self) -> bool {
        matches!(self.kind, Kind::Folder)
    }

    pub fn file(&self) -> Option<&FileNode> {
        match &self.kind {
            Kind::File(f) => Some(f),
            Kind::Folder => None,
        }
    }

    /// Tagged metadata as the owner sees it.
    pub fn metadata(&self) -> Metadata {
        match &self.kind {
            Kind::Folder => Metadata::Folder(FolderMetadata {
                name: self.name().to_owned(),
                path_lower: Some(lower(&self.display)),
                path_display: Some(self.display.clone()),
                id: self.id.clone(),
            }),
            Kind::File(_) => Metadata::File(self.file_metadata().expect("is a file")),
        }
    }

    pub fn file_metadata(&self) -> Option<FileMetadata> {
        let f = self.file()?;
        Some(FileMetadata {
            name: self.name().to_owned(),
            path_lower: Some(lower(&self.display)),
            path_display: Some(self.display.clone()),
            id: self.id.clone(),
            client_modified: timestamp(f.client_modified),
            server_modified: timestamp(f.server_modified),
            rev: f.rev.clone(),
            size: f.size,
            is_downloadable: true,
            content_hash: Some(f.hash.clone()),
        })
    }
}

/// Why a write was refused (maps onto Dropbox's `WriteError` / `LookupError`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteError {
    /// Something is already there: `file`, `folder` or `file_ancestor`.
    Conflict(&'static str),
    NotFound,
    /// A folder cannot be moved into itself.
    IntoItself,
    Io(String),
}

impl From<io::Error> for WriteError {
    fn from(e: io::Error) -> Self {
        WriteError::Io(e.to_string())
    }
}

/// How an upload treats an existing file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteMode {
    Add,
    Overwrite,
    Update(String),
}

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

pub fn lower(path: &str) -> String {
    path.to_lowercase()
}

pub fn last_component(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// Parent of a `/`-rooted path; the root's parent is the root (`""`).
pub fn parent(path: &str) -> &str {
    match path.rfind('/') {
        Some(i) => &path[..i],
        None => "",
    }
}

/// Is `path` (lowercase) inside the listing scope `scope` (lowercase, `""` = root)?
pub fn in_scope(path: &str, scope: &str, recursive: bool) -> bool {
    if recursive && path == scope && !scope.is_empty() {
        return true;
    }
    let Some(rest) = path.strip_prefix(scope).and_then(|r| r.strip_prefix('/')) else {
        return false;
    };
    !rest.is_empty() && (recursive || !rest.contains('/'))
}

fn stable_id(seed: &str) -> String {
    let digest = Sha256::digest(seed.as_bytes());
    format!("id:{}", URL_SAFE_NO_PAD.encode(&digest[..16]))
}

fn random_id() -> String {
    format!("id:{}", URL_SAFE_NO_PAD.encode(rand::random::<[u8; 16]>()))
}

/// Revs are lowercase hex of at least 9 chars (here 12), new on every change.
fn new_rev() -> String {
    format!("{:012x}", rand::random::<u64>() >> 16 | 1 << 44)
}

/// A rev that stays the same across restarts for an unchanged file on disk.
fn stable_rev(path_lower: &str, hash: &str, mtime: SystemTime) -> String {
    let secs = mtime
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let digest = Sha256::digest(format!("{path_lower}\0{hash}\0{secs}").as_bytes());
    format!(
        "{:012x}",
        u64::from_be_bytes(digest[..8].try_into().expect("8 bytes")) >> 16 | 1 << 44
    )
}

/// Whole seconds, as Dropbox stores them.
pub fn now() -> SystemTime {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    UNIX_EPOCH + Duration::from_secs(secs)
}

fn whole_seconds(t: SystemTime) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs())
}

/// "name (1).ext" style alternatives, as Dropbox's autorename makes them.
fn renamed(display: &str, n: u32) -> String {
    let dir = parent(display);
    let name = last_component(display);
    let (stem, ext) = match name.rfind('.') {
        Some(i) if i > 0 => (&name[..i], &name[i..]),
        _ => (name, ""),
    };
    format!("{dir}/{stem} ({n}){ext}")
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
                let mut hasher = ContentHasher::new();
                let mut file = std::fs::File::open(entry.path())?;
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
                let hash = hasher.finish();
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

    /// Can a cursor at `seq` (of `epoch`) still be answered?
    pub fn cursor_valid(&self, seq: u64, epoch: u64) -> bool {
        epoch == self.epoch && seq >= self.floor && seq <= self.seq
    }

    /// The paths under scope changed since `seq`, each in its current state, in change order.
    pub fn changes_since(&self, seq: u64, scope: &str, recursive: bool) -> Vec<Metadata> {
        // Each path once, at the position of its last change.
        let mut last: HashMap<&str, u64> = HashMap::new();
        for (s, path) in self.journal.iter().filter(|(s, _)| *s > seq) {
            if in_scope(path, scope, recursive) {
                last.insert(path, *s);
            }
        }
        let mut order: Vec<(u64, &str)> = last.into_iter().map(|(p, s)| (s, p)).collect();
        order.sort_unstable();
        order
            .into_iter()
            .map(|(_, p)| match self.nodes.get(p) {
                Some(n) => n.metadata(),
                None => self.tombstone(p).unwrap_or_else(|| deleted(p)),
            })
            .collect()
    }

    pub fn has_changes_since(&self, seq: u64, scope: &str, recursive: bool) -> bool {
        self.journal
            .iter()
            .any(|(s, p)| *s > seq && in_scope(p, scope, recursive))
    }

    fn record(&mut self, path_lower: String) {
        self.seq += 1;
        self.journal.push_back((self.seq, path_lower));
        while self.journal.len() > JOURNAL_CAP {
            if let Some((s, _)) = self.journal.pop_front() {
                self.floor = s;
            }
        }
    }

    /// Invalidates every cursor (the emulator's forced reset).
    pub fn reset_cursors(&mut self) {
        self.epoch = self.epoch.wrapping_add(1);
        self.pages.clear();
        self.page_order.clear();
    }

    /// Keeps the rest of a long listing for later pages; returns its snapshot id.
    pub fn stash_page(&mut self, rest: Vec<Metadata>) -> u64 {
        const MAX_PAGES: usize = 256;
        let id = self.next_page;
        self.next_page += 1;
        self.pages.insert(id, rest);
        self.page_order.push_back(id);
        while self.page_order.len() > MAX_PAGES {
            if let Some(old) = self.page_order.pop_front() {
                self.pages.remove(&old);
            }
        }
        id
    }

    pub fn take_page(&mut self, id: u64) -> Option<Vec<Metadata>> {
        self.page_order.retain(|p| *p != id);
        self.pages.remove(&id)
    }

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
    fn subtree(&self, path_lower: &str) -> Vec<String> {
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
    fn scope_rules() {
        let cases = [
            ("/a", "", false, true),
            ("/a/b", "", false, false),
            ("/a/b", "", true, true),
            ("/a", "/a", true, true),
            ("/a", "/a", false, false),
            ("/a/b", "/a", false, true),
            ("/ab", "/a", true, false),
            ("/a/b/c", "/a", false, false),
        ];
        for (path, scope, rec, want) in cases {
            assert_eq!(
                in_scope(path, scope, rec),
                want,
                "{path} in {scope} rec={rec}"
            );
        }
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
    fn journal_reports_changes_in_scope_once_in_order() {
        let mut ns = ns();
        ns.create_folder("/A", false).unwrap();
        let start = ns.seq();
        ns.put_file(
            "/A/x",
            Bytes::from_static(b"1"),
            &WriteMode::Add,
            false,
            None,
        )
        .unwrap();
        ns.put_file("/B", Bytes::from_static(b"1"), &WriteMode::Add, false, None)
            .unwrap();
        ns.put_file(
            "/A/x",
            Bytes::from_static(b"2"),
            &WriteMode::Overwrite,
            false,
            None,
        )
        .unwrap();
        let in_a = ns.changes_since(start, "/a", false);
        assert_eq!(in_a.len(), 1);
        let all = ns.changes_since(start, "", true);
        let names: Vec<_> = all.iter().map(|m| m.name()).collect();
        assert_eq!(names, ["B", "x"]);
        let before_delete = ns.seq();
        ns.delete("/a").unwrap();
        let d = ns.changes_since(before_delete, "", true);
        assert!(d.iter().all(|m| matches!(m, Metadata::Deleted(_))));
        assert_eq!(d.len(), 2, "folder and child: {d:?}");
        assert!(!ns.has_changes_since(ns.seq(), "", true));
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
