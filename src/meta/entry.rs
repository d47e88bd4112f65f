//! A cached metadata entry: a file, a folder listing with its cursor, or a remembered
//! "not found"; how folder deltas apply to a listing; the listing's strong validator.

use crate::http::representation::Representation;
use crate::upstream::types::{FileMetadata, FolderMetadata, Metadata};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Version of the stored entry format; entries of another version are ignored.
pub const ENTRY_VERSION: u32 = 1;

/// What is known of one path, and when Dropbox last confirmed it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    pub v: u32,
    /// Milliseconds since the epoch when Dropbox last confirmed this state.
    pub checked_ms: u64,
    pub state: State,
    /// Whether a body has been served to this account under this entry (so a blob it finds
    /// is its own hit, not news of another account's content). Our bookkeeping, not
    /// Dropbox's; absent in older entries.
    #[serde(default, skip_serializing_if = "Used::is_unset")]
    pub body_used: Used,
    /// A file's header values, made on first use (never stored).
    #[serde(skip)]
    representation: OnceLock<Representation>,
}

/// A flag set by the first use; what a copy starts from is the original's. Stored as a bool.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(from = "bool", into = "bool")]
pub struct Used(AtomicBool);

impl Used {
    pub fn get(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    fn is_unset(&self) -> bool {
        !self.get()
    }

    /// Sets it; true the first time only.
    pub fn first(&self) -> bool {
        !self.0.swap(true, Ordering::Relaxed)
    }
}

impl From<bool> for Used {
    fn from(b: bool) -> Self {
        Used(AtomicBool::new(b))
    }
}

impl From<Used> for bool {
    fn from(u: Used) -> bool {
        u.get()
    }
}

impl Clone for Used {
    fn clone(&self) -> Self {
        Used(AtomicBool::new(self.0.load(Ordering::Relaxed)))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum State {
    File(FileMetadata),
    Folder(Listing),
    Missing,
}

/// A folder's direct children, folders first then by lowercased name, and the cursor that
/// revalidates them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Listing {
    /// None for the root of a Dropbox, which has no metadata of its own.
    pub folder: Option<FolderMetadata>,
    pub entries: Vec<Metadata>,
    pub cursor: String,
    /// Hex digest of the folder and its entries: the listing's strong validator.
    pub tag: String,
}

pub use crate::store::now_ms;

impl Entry {
    pub fn new(state: State) -> Entry {
        Entry {
            v: ENTRY_VERSION,
            checked_ms: now_ms(),
            state,
            body_used: Used::default(),
            representation: OnceLock::new(),
        }
    }

    /// A file's representation (its validators and header values), made once per entry.
    pub fn representation(&self) -> Option<&Representation> {
        let State::File(f) = &self.state else {
            return None;
        };
        Some(self.representation.get_or_init(|| {
            let validator = f.content_hash.as_deref().unwrap_or(&f.rev);
            Representation::new(validator, &f.server_modified, &f.name, f.size)
        }))
    }

    /// Confirmed by Dropbox within `ttl` (measured on the wall clock, so entries written by
    /// another instance compare too).
    pub fn is_fresh(&self, ttl: Duration) -> bool {
        now_ms().saturating_sub(self.checked_ms) < ttl.as_millis() as u64
    }
}

impl Listing {
    /// A listing of `entries` (as Dropbox sent them) under the folder `folder_lower`.
    pub fn new(
        folder: Option<FolderMetadata>,
        folder_lower: &str,
        entries: Vec<Metadata>,
        cursor: String,
    ) -> Listing {
        let mut entries: Vec<Metadata> = entries
            .into_iter()
            .filter(|m| !matches!(m, Metadata::Deleted(_)) && is_child(m, folder_lower))
            .collect();
        sort(&mut entries);
        let tag = digest(&folder, &entries);
        Listing {
            folder,
            entries,
            cursor,
            tag,
        }
    }

    /// Applies `list_folder/continue` deltas in order (reference §2.3). Returns None when the
    /// deltas say the folder itself is gone or is now a file: the listing is void.
    pub fn apply(&self, folder_lower: &str, deltas: &[Metadata], cursor: String) -> Option<Self> {
        let mut entries = self.entries.clone();
        for m in deltas {
            let Some(path) = m.path_lower() else { continue };
            if path == folder_lower {
                match m {
                    Metadata::Folder(_) => continue,
                    _ => return None,
                }
            }
            if !is_child(m, folder_lower) {
                continue;
            }
            entries.retain(|e| e.path_lower() != Some(path));
            if !matches!(m, Metadata::Deleted(_)) {
                entries.push(m.clone());
            }
        }
        sort(&mut entries);
        let tag = digest(&self.folder, &entries);
        Some(Listing {
            folder: self.folder.clone(),
            entries,
            cursor,
            tag,
        })
    }
}

/// A direct child of `folder_lower` (`""` for the root)?
fn is_child(m: &Metadata, folder_lower: &str) -> bool {
    m.path_lower()
        .and_then(|p| p.strip_prefix(folder_lower))
        .and_then(|rest| rest.strip_prefix('/'))
        .is_some_and(|name| !name.is_empty() && !name.contains('/'))
}

fn sort(entries: &mut [Metadata]) {
    entries.sort_by_cached_key(|m| {
        (
            !matches!(m, Metadata::Folder(_)),
            m.path_lower().unwrap_or_default().to_owned(),
        )
    });
}

fn digest(folder: &Option<FolderMetadata>, entries: &[Metadata]) -> String {
    let mut h = Sha256::new();
    h.update(serde_json::to_vec(folder).expect("metadata serializes"));
    h.update(serde_json::to_vec(entries).expect("metadata serializes"));
    hex::encode(&h.finalize()[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_checked_ms_pattern_finds_the_entry_field() {
        // The store's Lua pattern `"checked_ms":(%d+)` (store/redis.rs) reads the first occurrence: the entry's own
        // field, which serde writes before `state` (whose names could contain the text).
        let e = Entry::new(State::Missing);
        let json = String::from_utf8(serde_json::to_vec(&e).unwrap()).unwrap();
        let at = json.find("\"checked_ms\":").unwrap();
        assert!(at < json.find("\"state\"").unwrap(), "{json}");
    }
    use crate::upstream::types::DeletedMetadata;

    fn file(path: &str, rev: &str) -> Metadata {
        Metadata::File(FileMetadata {
            name: path.rsplit('/').next().unwrap().into(),
            path_lower: Some(path.to_lowercase()),
            path_display: Some(path.into()),
            id: format!("id:{path}"),
            client_modified: "2026-01-01T00:00:00Z".into(),
            server_modified: "2026-01-01T00:00:00Z".into(),
            rev: rev.into(),
            size: 1,
            is_downloadable: true,
            content_hash: None,
        })
    }

    fn folder(path: &str) -> Metadata {
        Metadata::Folder(FolderMetadata {
            name: path.rsplit('/').next().unwrap().into(),
            path_lower: Some(path.to_lowercase()),
            path_display: Some(path.into()),
            id: format!("id:{path}"),
        })
    }

    fn deleted(path: &str) -> Metadata {
        Metadata::Deleted(DeletedMetadata {
            name: path.rsplit('/').next().unwrap().into(),
            path_lower: Some(path.to_lowercase()),
            path_display: Some(path.into()),
        })
    }

    fn names(l: &Listing) -> Vec<&str> {
        l.entries.iter().map(|m| m.name()).collect()
    }

    #[test]
    fn a_listing_keeps_direct_children_folders_first() {
        let l = Listing::new(
            None,
            "/p",
            vec![
                file("/P/b.txt", "111111111"),
                folder("/P/Zed"),
                file("/P/Zed/deep.txt", "111111111"),
                file("/P/A.txt", "111111111"),
                file("/Q/outside.txt", "111111111"),
                folder("/P"),
            ],
            "c1".into(),
        );
        assert_eq!(names(&l), ["Zed", "A.txt", "b.txt"]);
        assert_eq!(l.tag.len(), 32);
    }

    #[test]
    fn deltas_add_replace_and_remove_and_change_the_tag() {
        let l = Listing::new(
            None,
            "",
            vec![file("/a", "111111111"), file("/b", "111111111")],
            "c1".into(),
        );
        let same = l.apply("", &[], "c2".into()).unwrap();
        assert_eq!(same.tag, l.tag);
        assert_eq!(same.cursor, "c2");
        let changed = l
            .apply(
                "",
                &[
                    file("/a", "222222222"),
                    deleted("/b"),
                    folder("/c"),
                    file("/c/x", "111111111"),
                    deleted("/never-there"),
                ],
                "c3".into(),
            )
            .unwrap();
        assert_eq!(names(&changed), ["c", "a"]);
        assert_ne!(changed.tag, l.tag);
    }

    #[test]
    fn the_folder_itself_deleted_or_replaced_voids_the_listing() {
        let l = Listing::new(None, "/p", vec![file("/p/a", "111111111")], "c1".into());
        assert!(l.apply("/p", &[deleted("/p")], "c2".into()).is_none());
        assert!(
            l.apply("/p", &[file("/p", "111111111")], "c2".into())
                .is_none()
        );
        assert!(l.apply("/p", &[folder("/p")], "c2".into()).is_some());
    }

    #[test]
    fn freshness_is_measured_from_the_last_confirmation() {
        let mut e = Entry::new(State::Missing);
        assert!(e.is_fresh(Duration::from_secs(5)));
        assert!(!e.is_fresh(Duration::ZERO));
        e.checked_ms -= 10_000;
        assert!(!e.is_fresh(Duration::from_secs(5)));
        let back: Entry = serde_json::from_slice(&serde_json::to_vec(&e).unwrap()).unwrap();
        assert_eq!(back.checked_ms, e.checked_ms);
    }

    #[test]
    fn a_files_representation_is_made_once_and_never_stored() {
        let Metadata::File(f) = file("/a.txt", "0123456789a") else {
            unreachable!()
        };
        let e = Entry::new(State::File(f));
        let first = e.representation().expect("a file has one") as *const Representation;
        assert!(
            std::ptr::eq(first, e.representation().unwrap()),
            "made once"
        );
        let stored = serde_json::to_string(&e).unwrap();
        assert!(!stored.contains("representation"), "{stored}");
        let back: Entry = serde_json::from_str(&stored).unwrap();
        assert_eq!(
            back.representation().unwrap().len,
            e.representation().unwrap().len
        );
        assert!(Entry::new(State::Missing).representation().is_none());
    }
}
