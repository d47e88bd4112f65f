//! Thumbnails in the body cache: Dropbox's `files/get_thumbnail_v2`, made once per (file
//! version, size, format, mode) however many ask at once, and kept under a name derived from
//! those (`proxy::thumb` answers `?thumb=` with them).
//!
//! SECURITY: the name says which content the thumbnail is of, and other accounts with the same
//! content are served it, so it must be made of exactly that: Dropbox is asked for the
//! revision (`rev:<rev>`), not the path, and what it says it made the thumbnail of (its
//! content hash, or a link's rev) must match before it is kept. A revision Dropbox no longer
//! has means our metadata is stale: the caller looks it up again.

use super::Bodies;
use crate::account::Account;
use crate::flight::Flights;
use crate::http::CacheStatus;
use crate::upstream::error::UpstreamError;
use crate::upstream::types::FileMetadata;
use bytes::Bytes;
use serde_json::{Value, json};
use std::sync::Arc;

/// A checked thumbnail request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    pub size: &'static str,
    pub format: &'static str,
    pub mime: &'static str,
    pub mode: &'static str,
}

impl Spec {
    /// Dropbox's smallest thumbnail, as `?thumb=w32h32` asks for it (albums' placeholders).
    pub const SMALLEST: Spec = Spec {
        size: "w32h32",
        format: "jpeg",
        mime: "image/jpeg",
        mode: "strict",
    };

    /// The blob name this thumbnail of `f` (at `path` in `account`) is kept under: derived
    /// from the blob of its bytes (`body::blob_name`), or from its rev where it has none.
    pub fn blob_name_of(&self, account: &Account, path: &str, f: &FileMetadata) -> String {
        let file = super::blob_name(account, path, f);
        let file = file.as_deref().unwrap_or(&f.rev);
        super::disk::derived_name(&["thumbnail", file, self.size, self.format, self.mode])
    }
}

/// Thumbnails being made now, by blob name.
#[derive(Default)]
pub struct Thumbs {
    flights: Flights<Result<Bytes, Arc<UpstreamError>>>,
}

/// Whether Dropbox's `PreviewResult` says the thumbnail was made of `f`: the same content
/// hash (and rev) for a path, the same rev for a link. Absent facts do not count against it.
fn made_of(result: &Value, f: &FileMetadata) -> bool {
    let same = |meta: &Value, key: &str, want: Option<&str>| match (meta.get(key), want) {
        (Some(Value::String(got)), Some(want)) => got == want,
        _ => true,
    };
    match (result.get("file_metadata"), result.get("link_metadata")) {
        (Some(m), _) => {
            same(m, "content_hash", f.content_hash.as_deref()) && same(m, "rev", Some(&f.rev))
        }
        (None, Some(m)) => same(m, "rev", Some(&f.rev)),
        (None, None) => true,
    }
}

impl Thumbs {
    /// Thumbnails being made now.
    pub fn in_flight(&self) -> usize {
        self.flights.len()
    }

    /// The thumbnail's bytes: from the cache, or made once by Dropbox and kept. `NotFound`
    /// when Dropbox no longer has the revision `f` names. Concurrent requests share one call
    /// per account: an account never waits on (or inherits the failure of) another's.
    async fn get(
        &self,
        bodies: &Bodies,
        account: &Account,
        path: &str,
        f: &FileMetadata,
        name: &str,
        spec: &Spec,
    ) -> Result<(Bytes, CacheStatus), Arc<UpstreamError>> {
        if let Some(bytes) = bodies.read_small(name).await {
            return Ok((bytes, CacheStatus::Hit));
        }
        let flight = format!("{}\0{name}", account.key());
        let made = self
            .flights
            .run(&flight, async {
                let resource = match account.link() {
                    // The revision, not the path: the path may hold newer content by now.
                    None => json!({".tag": "path", "path": format!("rev:{}", f.rev)}),
                    Some(link) => {
                        let mut r = json!({".tag": "link", "url": link.url.expose()});
                        if !path.is_empty() {
                            r["path"] = json!(path);
                        }
                        if let Some(p) = &link.password {
                            r["password"] = json!(p.expose());
                        }
                        r
                    }
                };
                let (bytes, result) = bodies
                    .dropbox
                    .thumbnail(&account.tokens, resource, spec.size, spec.format, spec.mode)
                    .await
                    .map_err(Arc::new)?;
                if !made_of(&result, f) {
                    tracing::debug!("Dropbox made the thumbnail of another version; not kept");
                    return Err(Arc::new(UpstreamError::NotFound));
                }
                bodies.keep_small(name, bytes.clone()).await;
                Ok(bytes)
            })
            .await;
        made.map(|b| (b, CacheStatus::Miss))
    }
}

impl Bodies {
    /// The thumbnail `spec` of `f` (at Dropbox path `path` of `account`), kept as `name`: from
    /// the cache, or made once by Dropbox and kept, and whether it was cached. `NotFound` when
    /// Dropbox no longer has the revision `f` names.
    pub async fn thumbnail(
        &self,
        account: &Account,
        path: &str,
        f: &FileMetadata,
        name: &str,
        spec: &Spec,
    ) -> Result<(Bytes, CacheStatus), Arc<UpstreamError>> {
        self.thumbs.get(self, account, path, f, name, spec).await
    }

    /// Thumbnails being made now.
    pub fn thumbs_in_flight(&self) -> usize {
        self.thumbs.in_flight()
    }
}
