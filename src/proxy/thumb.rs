//! `?thumb=w256h256[&format=jpeg|png|webp][&mode=strict|bestfit|fitone_bestfit|original]` on a
//! file, published or in a shared link: Dropbox's `files/get_thumbnail_v2`, made once per
//! (file version, size, format, mode) however many ask at once, kept in the body cache under
//! a name derived from those, and answered with its own strong ETag (a matching
//! `If-None-Match` is a 304 with no Dropbox call and no disk read).
//!
//! SECURITY: the name says which content the thumbnail is of, and other accounts with the same
//! content are served it, so it must be made of exactly that: Dropbox is asked for the
//! revision (`rev:<rev>`), not the path, and what it says it made the thumbnail of (its
//! content hash, or a link's rev) must match before it is kept. A revision Dropbox no longer
//! has means our metadata is stale: the caller looks it up again.

use super::ProxyError;
use super::respond::Served;
use crate::account::Account;
use crate::app::App;
use crate::body::{blob_name, disk};
use crate::flight::Flights;
use crate::http::CacheStatus;
use crate::http::conditional::{self, Outcome, Validators};
use crate::http::etag::EntityTag;
use crate::http::full;
use crate::http::provenance;
use crate::upstream::error::UpstreamError;
use crate::upstream::types::{FileMetadata, THUMBNAIL_SIZES as SIZES, thumbnailable};
use bytes::Bytes;
use hyper::header::{
    CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, ETAG, HeaderValue, LAST_MODIFIED,
};
use hyper::http::request::Parts;
use hyper::{Method, Response, StatusCode};
use serde_json::{Value, json};
use std::sync::Arc;

const FORMATS: &[(&str, &str)] = &[
    ("jpeg", "image/jpeg"),
    ("png", "image/png"),
    ("webp", "image/webp"),
];
const MODES: &[&str] = &["strict", "bestfit", "fitone_bestfit", "original"];

/// A checked thumbnail request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    pub size: &'static str,
    pub format: &'static str,
    pub mime: &'static str,
    pub mode: &'static str,
}

/// The thumbnail a query asks for: None without `thumb`, an error naming what is valid.
pub fn spec(query: Option<&str>) -> Result<Option<Spec>, ProxyError> {
    let pairs: Vec<(String, String)> = query
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let Some(size) = get("thumb") else {
        return Ok(None);
    };
    let bad = |what: &str, got: &str, valid: &[&str]| {
        ProxyError::BadThumb(format!("{what} {got:?} is not one of {}", valid.join(", ")))
    };
    let size = *SIZES
        .iter()
        .find(|s| **s == size)
        .ok_or_else(|| bad("thumb size", size, SIZES))?;
    let format = get("format").unwrap_or("jpeg");
    let &(format, mime) = FORMATS.iter().find(|(f, _)| *f == format).ok_or_else(|| {
        bad(
            "format",
            format,
            &FORMATS.iter().map(|f| f.0).collect::<Vec<_>>(),
        )
    })?;
    let mode = get("mode").unwrap_or("strict");
    let mode = *MODES
        .iter()
        .find(|m| **m == mode)
        .ok_or_else(|| bad("mode", mode, MODES))?;
    Ok(Some(Spec {
        size,
        format,
        mime,
        mode,
    }))
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
        app: &App,
        account: &Account,
        path: &str,
        f: &FileMetadata,
        name: &str,
        spec: &Spec,
    ) -> Result<(Bytes, CacheStatus), Arc<UpstreamError>> {
        if let Some(bytes) = app.bodies.read_small(name).await {
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
                let (bytes, result) = app
                    .dropbox
                    .thumbnail(&account.tokens, resource, spec.size, spec.format, spec.mode)
                    .await
                    .map_err(Arc::new)?;
                if !made_of(&result, f) {
                    tracing::debug!("Dropbox made the thumbnail of another version; not kept");
                    return Err(Arc::new(UpstreamError::NotFound));
                }
                app.bodies.keep_small(name, bytes.clone()).await;
                Ok(bytes)
            })
            .await;
        made.map(|b| (b, CacheStatus::Miss))
    }
}

/// Answers a thumbnail of `f` (at Dropbox path `path` of `account`).
pub async fn serve(
    app: &App,
    req: &Parts,
    account: &Arc<Account>,
    path: &str,
    f: &FileMetadata,
    spec: &Spec,
) -> Result<Served, ProxyError> {
    if !thumbnailable(&f.name) {
        return Err(UpstreamError::Unsupported.into());
    }
    let file = blob_name(account, path, f).unwrap_or_else(|| f.rev.clone());
    let name = disk::derived_name(&["thumbnail", &file, spec.size, spec.format, spec.mode]);
    let etag = EntityTag::strong(name.trim_end_matches(disk::DERIVED)[..32].to_owned());
    let last_modified = humantime::parse_rfc3339(&f.server_modified).ok();
    let validators = Validators {
        etag: Some(etag.clone()),
        last_modified,
    };
    let mut resp = Response::new(full(Bytes::new()));
    let status = match conditional::evaluate(&req.method, &req.headers, &validators) {
        Outcome::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
        Outcome::NotModified => StatusCode::NOT_MODIFIED,
        Outcome::Proceed { .. } => {
            let asked = std::time::Instant::now();
            let (bytes, cache) = match app.thumbs.get(app, account, path, f, &name, spec).await {
                // SECURITY: a thumbnail another account brought is this one's MISS the first
                // time, as with bodies.
                Ok((bytes, cache)) => {
                    let first = account.used.insert(&name);
                    (bytes, if first { CacheStatus::Miss } else { cache })
                }
                // The revision is gone (or another was made): our metadata is stale.
                Err(e) if matches!(*e, UpstreamError::NotFound) => {
                    return Ok(Served::Changed(None));
                }
                Err(e) => return Err(e.into()),
            };
            provenance::body_from(&mut resp, cache, asked);
            cache.mark(&mut resp);
            let h = resp.headers_mut();
            h.insert(CONTENT_TYPE, HeaderValue::from_static(spec.mime));
            h.insert(CONTENT_LENGTH, HeaderValue::from(bytes.len()));
            if req.method != Method::HEAD {
                *resp.body_mut() = full(bytes);
            }
            StatusCode::OK
        }
    };
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(ETAG, HeaderValue::from_str(&etag.to_string()).expect("hex"));
    h.insert(CACHE_CONTROL, app.cache_control.clone());
    if let Some(lm) = last_modified {
        h.insert(
            LAST_MODIFIED,
            HeaderValue::from_str(&httpdate::fmt_http_date(lm)).expect("a date"),
        );
    }
    Ok(Served::Done(resp))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thumb_queries() {
        assert_eq!(spec(None).unwrap(), None);
        assert_eq!(spec(Some("x=1")).unwrap(), None);
        let s = spec(Some("thumb=w256h256")).unwrap().unwrap();
        assert_eq!(
            (s.size, s.format, s.mime, s.mode),
            ("w256h256", "jpeg", "image/jpeg", "strict")
        );
        let s = spec(Some("thumb=w64h64&format=webp&mode=bestfit"))
            .unwrap()
            .unwrap();
        assert_eq!((s.format, s.mode), ("webp", "bestfit"));
        let e = spec(Some("thumb=w100h100")).unwrap_err().to_string();
        assert!(e.contains("w32h32") && e.contains("w2048h1536"), "{e}");
        assert!(
            spec(Some("thumb=w64h64&format=gif"))
                .unwrap_err()
                .to_string()
                .contains("webp")
        );
        assert!(
            spec(Some("thumb=w64h64&mode=zoom"))
                .unwrap_err()
                .to_string()
                .contains("fitone_bestfit")
        );
    }
}
