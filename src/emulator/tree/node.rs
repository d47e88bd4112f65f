//! What a namespace holds: nodes (folders and files) with their ids, revs and whole-second
//! times, and how a write is asked for (`WriteMode`) and refused (`WriteError`).

use super::path::{last_component, lower};
use crate::upstream::types::{FileMetadata, FolderMetadata, Metadata, timestamp};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use sha2::{Digest, Sha256};
use std::io;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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

pub(super) fn stable_id(seed: &str) -> String {
    let digest = Sha256::digest(seed.as_bytes());
    format!("id:{}", URL_SAFE_NO_PAD.encode(&digest[..16]))
}

pub(super) fn random_id() -> String {
    format!("id:{}", URL_SAFE_NO_PAD.encode(rand::random::<[u8; 16]>()))
}

/// Revs are lowercase hex of at least 9 chars (here 12), new on every change.
pub(super) fn new_rev() -> String {
    format!("{:012x}", rand::random::<u64>() >> 16 | 1 << 44)
}

/// A rev that stays the same across restarts for an unchanged file on disk.
pub(super) fn stable_rev(path_lower: &str, hash: &str, mtime: SystemTime) -> String {
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

pub(super) fn whole_seconds(t: SystemTime) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs())
}
