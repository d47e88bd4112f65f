//! Dropbox API v2 wire types this project reads and writes (reference §2–§5).
//!
//! Optional fields are omitted when absent, unknown fields are ignored on input, and
//! `Metadata` is the polymorphic union tagged by `.tag`. The emulator writes these, the proxy's
//! client reads them, and the official Python SDK checks the emulator's output independently.

use serde::{Deserialize, Serialize};

/// `Metadata`: `file` | `folder` | `deleted`, tagged by `.tag`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = ".tag", rename_all = "snake_case")]
pub enum Metadata {
    File(FileMetadata),
    Folder(FolderMetadata),
    Deleted(DeletedMetadata),
}

impl Metadata {
    pub fn name(&self) -> &str {
        match self {
            Metadata::File(f) => &f.name,
            Metadata::Folder(f) => &f.name,
            Metadata::Deleted(d) => &d.name,
        }
    }

    pub fn path_lower(&self) -> Option<&str> {
        match self {
            Metadata::File(f) => f.path_lower.as_deref(),
            Metadata::Folder(f) => f.path_lower.as_deref(),
            Metadata::Deleted(d) => d.path_lower.as_deref(),
        }
    }
}

/// `FileMetadata`. As a download result it is sent as a plain struct, without `.tag`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileMetadata {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_lower: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_display: Option<String>,
    pub id: String,
    /// `%Y-%m-%dT%H:%M:%SZ`, client-supplied.
    pub client_modified: String,
    /// `%Y-%m-%dT%H:%M:%SZ`, Dropbox's.
    pub server_modified: String,
    pub rev: String,
    pub size: u64,
    #[serde(default = "yes")]
    pub is_downloadable: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_hash: Option<String>,
}

fn yes() -> bool {
    true
}

/// `FolderMetadata`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FolderMetadata {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_lower: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_display: Option<String>,
    pub id: String,
}

/// `DeletedMetadata`: no id, no rev.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeletedMetadata {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_lower: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_display: Option<String>,
}

/// `ListFolderResult`, from `list_folder` and `list_folder/continue`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListFolderResult {
    pub entries: Vec<Metadata>,
    pub cursor: String,
    pub has_more: bool,
}

/// `ListFolderLongpollResult`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LongpollResult {
    pub changes: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff: Option<u64>,
}

/// The body of every non-2xx JSON error (401, 403, 409, 422, 429).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApiErrorBody {
    pub error_summary: String,
    pub error: serde_json::Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_message: Option<serde_json::Value>,
}

impl ApiErrorBody {
    /// The `.tag` chain of the error, e.g. `["path", "not_found"]` (what clients branch on).
    pub fn tags(&self) -> Vec<String> {
        tag_chain(&self.error)
    }
}

/// Follows a Stone union value down its tags: a member's value is nested under a key equal to
/// its tag, or flattened beside `.tag` (then the first nested union field is followed).
pub fn tag_chain(value: &serde_json::Value) -> Vec<String> {
    let mut tags = Vec::new();
    let mut cur = value;
    while let Some(tag) = cur.get(".tag").and_then(|t| t.as_str()) {
        tags.push(tag.to_owned());
        let obj = cur.as_object().expect("has .tag, so is an object");
        let next = obj
            .get(tag)
            .filter(|v| v.get(".tag").is_some())
            .or_else(|| {
                obj.iter()
                    .find(|(k, v)| k.as_str() != ".tag" && v.get(".tag").is_some())
                    .map(|(_, v)| v)
            });
        match next {
            Some(n) => cur = n,
            None => break,
        }
    }
    tags
}

/// `RateLimitError` in a 429 body.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RateLimitError {
    pub reason: serde_json::Value,
    #[serde(default = "one")]
    pub retry_after: u64,
}

fn one() -> u64 {
    1
}

/// OAuth token endpoint answer (reference §5.2).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: String,
    pub expires_in: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
}

/// A shared link and a path inside it: the argument of the `sharing/*` routes (reference §4).
#[derive(Debug, Clone)]
pub struct LinkArg<'a> {
    pub url: &'a str,
    /// `""` for the link itself, else `/a/b` inside a folder link.
    pub path: &'a str,
    pub password: Option<&'a str>,
}

impl LinkArg<'_> {
    /// `{url, path?, link_password?}`.
    pub fn arg(&self) -> serde_json::Value {
        let mut arg = serde_json::json!({ "url": self.url });
        if !self.path.is_empty() {
            arg["path"] = self.path.into();
        }
        if let Some(p) = self.password {
            arg["link_password"] = p.into();
        }
        arg
    }
}

/// `SharedLinkMetadata` (`.tag` file or folder); the fields the proxy reads.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = ".tag", rename_all = "snake_case")]
pub enum SharedLinkMetadata {
    File(LinkFile),
    Folder(LinkFolder),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LinkFile {
    pub name: String,
    #[serde(default)]
    pub id: Option<String>,
    pub client_modified: String,
    pub server_modified: String,
    pub rev: String,
    pub size: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LinkFolder {
    pub name: String,
    #[serde(default)]
    pub id: Option<String>,
}

impl SharedLinkMetadata {
    /// As `FileMetadata` (no paths, no content hash); a folder reads as an empty file, which
    /// callers rule out first.
    pub fn file(self) -> FileMetadata {
        match self {
            SharedLinkMetadata::File(f) => FileMetadata {
                name: f.name,
                path_lower: None,
                path_display: None,
                id: f.id.unwrap_or_default(),
                client_modified: f.client_modified,
                server_modified: f.server_modified,
                rev: f.rev,
                size: f.size,
                is_downloadable: true,
                content_hash: None,
            },
            SharedLinkMetadata::Folder(f) => FileMetadata {
                name: f.name,
                path_lower: None,
                path_display: None,
                id: f.id.unwrap_or_default(),
                client_modified: String::new(),
                server_modified: String::new(),
                rev: String::new(),
                size: 0,
                is_downloadable: false,
                content_hash: None,
            },
        }
    }
}

/// `ThumbnailSize` tags (reference §3.3; `w3200h2400` is internal-only).
pub const THUMBNAIL_SIZES: &[&str] = &[
    "w32h32",
    "w64h64",
    "w128h128",
    "w256h256",
    "w480h320",
    "w640h480",
    "w960h640",
    "w1024h768",
    "w2048h1536",
];

/// The extensions `files/get_thumbnail_v2` makes thumbnails of (reference §3.3).
pub const THUMBNAIL_EXTENSIONS: &[&str] = &[
    "jpg", "jpeg", "png", "tiff", "tif", "gif", "webp", "ppm", "bmp",
];

/// Whether Dropbox makes thumbnails of a file of this name (by its extension).
pub fn thumbnailable(name: &str) -> bool {
    name.rsplit_once('.')
        .is_some_and(|(_, e)| THUMBNAIL_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// Dropbox timestamps: UTC, whole seconds, `%Y-%m-%dT%H:%M:%SZ`.
pub fn timestamp(t: std::time::SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn metadata_round_trips_with_tag_and_ignores_unknown_fields() {
        let wire = json!({".tag": "file", "name": "Prime_Numbers.txt",
            "path_lower": "/homework/math/prime_numbers.txt",
            "path_display": "/Homework/math/Prime_Numbers.txt", "id": "id:a4ayc_80_OEAAAAAAAAAXw",
            "client_modified": "2015-05-12T15:50:38Z", "server_modified": "2015-05-12T15:50:38Z",
            "rev": "a1c10ce0dd78", "size": 7212, "is_downloadable": true,
            "sharing_info": {"read_only": true},
            "content_hash": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"});
        let m: Metadata = serde_json::from_value(wire.clone()).unwrap();
        let Metadata::File(f) = &m else {
            panic!("not a file: {m:?}")
        };
        assert_eq!(f.size, 7212);
        let mut back = serde_json::to_value(&m).unwrap();
        back.as_object_mut()
            .unwrap()
            .insert("sharing_info".into(), json!({"read_only": true}));
        assert_eq!(back, wire);
        let d: Metadata = serde_json::from_value(json!({".tag": "deleted", "name": "x"})).unwrap();
        assert_eq!(d.name(), "x");
        assert!(serde_json::from_value::<Metadata>(json!({".tag": "bogus", "name": "x"})).is_err());
    }

    #[test]
    fn tag_chains() {
        let cases = [
            (
                json!({".tag": "path", "path": {".tag": "not_found"}}),
                vec!["path", "not_found"],
            ),
            (
                json!({".tag": "path", "reason": {".tag": "conflict", "conflict": {".tag": "file"}},
                    "upload_session_id": "x"}),
                vec!["path", "conflict", "file"],
            ),
            (json!({".tag": "reset"}), vec!["reset"]),
            (json!({"reason": {".tag": "too_many_requests"}}), vec![]),
        ];
        for (v, want) in cases {
            assert_eq!(tag_chain(&v), want, "{v}");
        }
    }

    #[test]
    fn timestamps_have_whole_seconds() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(1_431_445_838_750);
        assert_eq!(timestamp(t), "2015-05-12T15:50:38Z");
    }
}
