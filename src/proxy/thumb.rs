//! `?thumb=w256h256[&format=jpeg|png|webp][&mode=strict|bestfit|fitone_bestfit|original]` on a
//! file, published or in a shared link: Dropbox's `files/get_thumbnail_v2`, made once per
//! (file version, size, format, mode) however many ask at once, kept in the body cache under
//! a name derived from those, and answered with its own strong ETag (a matching
//! `If-None-Match` is a 304 with no Dropbox call and no disk read).
//!
//! The thumbnail itself is made and kept by `body::thumb`.

use super::ProxyError;
use super::{Proxy, Served};
use crate::account::Account;
use crate::body::disk;
use crate::body::thumb::Spec;
use crate::http::CacheStatus;
use crate::http::conditional::{self, Outcome, Validators};
use crate::http::etag::EntityTag;
use crate::http::full;
use crate::http::provenance::Provenance;
use crate::upstream::error::UpstreamError;
use crate::upstream::types::{FileMetadata, THUMBNAIL_SIZES as SIZES, thumbnailable};
use bytes::Bytes;
use hyper::header::{
    CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, ETAG, HeaderValue, LAST_MODIFIED,
};
use hyper::http::request::Parts;
use hyper::{Method, Response, StatusCode};
use std::sync::Arc;

const FORMATS: &[(&str, &str)] = &[
    ("jpeg", "image/jpeg"),
    ("png", "image/png"),
    ("webp", "image/webp"),
];
const MODES: &[&str] = &["strict", "bestfit", "fitone_bestfit", "original"];

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

/// Answers a thumbnail of `f` (at Dropbox path `path` of `account`).
pub async fn serve(
    proxy: &Proxy,
    req: &Parts,
    account: &Arc<Account>,
    path: &str,
    f: &FileMetadata,
    spec: &Spec,
    noted: &Provenance,
) -> Result<Served, ProxyError> {
    if !thumbnailable(&f.name) {
        return Err(UpstreamError::Unsupported.into());
    }
    let name = spec.blob_name_of(account, path, f);
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
            let (bytes, cache) = match proxy.bodies.thumbnail(account, path, f, &name, spec).await {
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
            noted.body_from(cache, Some(asked));
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
    h.insert(CACHE_CONTROL, proxy.cache_control.clone());
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
