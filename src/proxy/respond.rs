//! Answers for a file or a folder listing once its metadata is known: validators, the
//! conditional verdict, ranges, and the body (streamed from `Bodies`, never buffered whole).

use super::error::ProxyError;
use super::listing::{self, Format};
use crate::account::Account;
use crate::app::App;
use crate::body::slice::{Chain, Lazy, Part, Slices, multipart};
use crate::body::{OpenError, Ranged};
use crate::http::CacheStatus;
use crate::http::conditional::{self, Outcome, Validators};
use crate::http::etag::EntityTag;
use crate::http::provenance;
use crate::http::range::{self, Decision};
use crate::http::{Body, empty, full};
use crate::meta::{Listing, Source};
use crate::upstream::types::FileMetadata;
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::header::{
    ACCEPT, ACCEPT_RANGES, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, ETAG,
    HeaderValue, LAST_MODIFIED, RANGE, VARY,
};
use hyper::http::request::Parts;
use hyper::{Method, Response, StatusCode};
use std::sync::Arc;

/// The Content-Type for a file name (`charset=utf-8` on text).
pub fn content_type(name: &str) -> String {
    let mime = mime_guess::from_path(name).first_or_octet_stream();
    let textual = mime.type_() == mime_guess::mime::TEXT
        || matches!(
            mime.essence_str(),
            "application/javascript" | "application/json"
        );
    if textual && mime.get_param("charset").is_none() {
        format!("{}; charset=utf-8", mime.essence_str())
    } else {
        mime.essence_str().to_owned()
    }
}

/// `X-Cache-Status` for an answer made from metadata alone.
fn cache_status(source: Source) -> CacheStatus {
    match source {
        Source::Cache => CacheStatus::Hit,
        Source::Revalidated => CacheStatus::Revalidated,
        Source::Dropbox => CacheStatus::Miss,
        Source::Stale => CacheStatus::Stale,
        Source::Updating => CacheStatus::Updating,
    }
}

/// A response with the headers every 200 / 206 / 304 / 416 shares.
fn answer(app: &App, status: StatusCode, etag: &EntityTag, cache: CacheStatus) -> Response<Body> {
    let mut resp = Response::new(empty());
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        ETAG,
        HeaderValue::from_str(&etag.to_string()).expect("hex ETags are valid headers"),
    );
    h.insert(CACHE_CONTROL, app.cache_control.clone());
    cache.mark(&mut resp);
    resp
}

fn header_value(text: impl AsRef<str>) -> HeaderValue {
    HeaderValue::from_str(text.as_ref()).expect("generated header values are ASCII")
}

fn precondition_failed() -> Response<Body> {
    crate::http::plain(StatusCode::PRECONDITION_FAILED, "precondition failed\n")
}

/// A folder listing, JSON or HTML by `Accept`, with its strong ETag and `Vary: Accept`.
pub fn folder(
    app: &App,
    req: &Parts,
    account: &Account,
    listing: &Listing,
    source: Source,
) -> Response<Body> {
    let format = Format::from_accept(req.headers.get(ACCEPT).and_then(|v| v.to_str().ok()));
    let etag = EntityTag::strong(format.etag(listing));
    let validators = Validators {
        etag: Some(etag.clone()),
        last_modified: None,
    };
    let cache = cache_status(source);
    let mut resp = match conditional::evaluate(&req.method, &req.headers, &validators) {
        Outcome::PreconditionFailed => return precondition_failed(),
        Outcome::NotModified => answer(app, StatusCode::NOT_MODIFIED, &etag, cache),
        Outcome::Proceed { .. } => {
            let depth = listing::depth(&account.root);
            let (bytes, ct) = match format {
                Format::Json => (listing::json(listing, depth), "application/json"),
                Format::Html => (
                    listing::html(listing, &account.alias, depth),
                    "text/html; charset=utf-8",
                ),
            };
            let mut resp = answer(app, StatusCode::OK, &etag, cache);
            let h = resp.headers_mut();
            h.insert(CONTENT_TYPE, HeaderValue::from_static(ct));
            h.insert(CONTENT_LENGTH, HeaderValue::from(bytes.len()));
            if req.method != Method::HEAD {
                *resp.body_mut() = full(bytes);
            }
            resp
        }
    };
    resp.headers_mut()
        .insert(VARY, HeaderValue::from_static("Accept"));
    resp
}

/// A shared link's folder: `/metadata/link`-style JSON with its strong ETag.
pub fn link_folder(
    app: &App,
    req: &Parts,
    display: &str,
    listing: &Listing,
    source: Source,
) -> Response<Body> {
    let etag = EntityTag::strong(format!("{}-link", listing.tag));
    let validators = Validators {
        etag: Some(etag.clone()),
        last_modified: None,
    };
    let cache = cache_status(source);
    match conditional::evaluate(&req.method, &req.headers, &validators) {
        Outcome::PreconditionFailed => precondition_failed(),
        Outcome::NotModified => answer(app, StatusCode::NOT_MODIFIED, &etag, cache),
        Outcome::Proceed { .. } => {
            let bytes = super::link::json(listing, display);
            let mut resp = answer(app, StatusCode::OK, &etag, cache);
            let h = resp.headers_mut();
            h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            h.insert(CONTENT_LENGTH, HeaderValue::from(bytes.len()));
            if req.method != Method::HEAD {
                *resp.body_mut() = full(bytes);
            }
            resp
        }
    }
}

/// What serving a file came to.
pub enum Served {
    Done(Response<Body>),
    /// Dropbox has a different version than the metadata said (the newer one, or None if
    /// the file is gone): refresh the metadata and start again.
    Changed(Option<FileMetadata>),
}

/// A file: validators, conditionals, ranges, then the body from `Bodies`.
pub async fn file(
    app: &App,
    req: &Parts,
    account: &Arc<Account>,
    path: &str,
    f: &FileMetadata,
    source: Source,
    known: bool,
) -> Result<Served, ProxyError> {
    // 5. validators and conditionals
    let etag = EntityTag::strong(f.content_hash.clone().unwrap_or_else(|| f.rev.clone()));
    let last_modified = humantime::parse_rfc3339(&f.server_modified).ok();
    let validators = Validators {
        etag: Some(etag.clone()),
        last_modified,
    };
    let honor_range = match conditional::evaluate(&req.method, &req.headers, &validators) {
        Outcome::PreconditionFailed => return Ok(Served::Done(precondition_failed())),
        Outcome::NotModified => {
            let cache = cache_status(source);
            return Ok(Served::Done(answer(
                app,
                StatusCode::NOT_MODIFIED,
                &etag,
                cache,
            )));
        }
        Outcome::Proceed { honor_range } => honor_range,
    };
    if !f.is_downloadable {
        return Err(ProxyError::NotFound);
    }
    let ct = content_type(&f.name);
    let len = f.size;
    // Range applies to GET only (RFC 9110 §14.2); HEAD answers as a plain GET would.
    let decision = match req.headers.get(RANGE).and_then(|v| v.to_str().ok()) {
        Some(r) if honor_range && req.method == Method::GET => {
            range::decide(r, len, app.config.max_ranges)
        }
        _ => Decision::Whole,
    };
    let with_file_headers = |mut resp: Response<Body>| {
        let h = resp.headers_mut();
        h.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        if let Some(lm) = last_modified {
            h.insert(LAST_MODIFIED, header_value(httpdate::fmt_http_date(lm)));
        }
        resp
    };
    if decision == Decision::Unsatisfiable {
        let mut resp = with_file_headers(answer(
            app,
            StatusCode::RANGE_NOT_SATISFIABLE,
            &etag,
            cache_status(source),
        ));
        resp.headers_mut()
            .insert(CONTENT_RANGE, header_value(format!("bytes */{len}")));
        return Ok(Served::Done(resp));
    }
    if req.method == Method::HEAD {
        let mut resp = with_file_headers(answer(app, StatusCode::OK, &etag, cache_status(source)));
        let h = resp.headers_mut();
        h.insert(CONTENT_TYPE, header_value(&ct));
        h.insert(CONTENT_LENGTH, HeaderValue::from(len));
        return Ok(Served::Done(resp));
    }
    // 6. body
    let opening = std::time::Instant::now();
    let opened = match &decision {
        Decision::Multi(rs) => app.bodies.open_parts(account, path, f, rs).await,
        Decision::Single(r) => app
            .bodies
            .open(account, path, f, Some(r.clone()))
            .await
            .map(Ranged::Span),
        _ => app
            .bodies
            .open(account, path, f, None)
            .await
            .map(Ranged::Span),
    };
    let opened = match opened {
        Ok(o) => o,
        Err(OpenError::Changed(newer)) => return Ok(Served::Changed(newer)),
        Err(OpenError::Upstream(e)) => return Err(ProxyError::Upstream(e)),
    };
    let bytes_from = match &opened {
        Ranged::Span(o) | Ranged::Each { first: o, .. } => o.cache,
    };
    // 7. respond
    let (status, body, body_len, content_type, content_range) = match (decision, opened) {
        (Decision::Single(r), Ranged::Span(o)) => {
            let n = r.end() - r.start() + 1;
            let cr = format!("bytes {}-{}/{len}", r.start(), r.end());
            let part = Part {
                head: Bytes::new(),
                range: r,
            };
            let body = Slices::new(o.stream, o.offset, vec![part], Bytes::new());
            (StatusCode::PARTIAL_CONTENT, body.boxed(), n, ct, Some(cr))
        }
        (Decision::Multi(rs), opened) => {
            let boundary = hex::encode(rand::random::<[u8; 12]>());
            let (parts, tail, n) = multipart(&rs, len, &ct, &boundary);
            let body = match opened {
                Ranged::Span(o) => Slices::new(o.stream, o.offset, parts, tail).boxed(),
                // One download per part: each cut to its part, then the closing delimiter.
                Ranged::Each { first, rest } => {
                    let mut parts = parts.into_iter();
                    let head = parts.next().expect("a multi-range has parts");
                    let mut bodies: Vec<Body> = vec![
                        Slices::new(first.stream, first.offset, vec![head], Bytes::new()).boxed(),
                    ];
                    for (open, part) in rest.into_iter().zip(parts) {
                        let len =
                            part.head.len() as u64 + part.range.end() - part.range.start() + 1;
                        bodies.push(
                            Lazy::new(
                                len,
                                Box::pin(async move {
                                    let o = open.await?;
                                    Ok(Slices::new(o.stream, o.offset, vec![part], Bytes::new())
                                        .boxed())
                                }),
                            )
                            .boxed(),
                        );
                    }
                    bodies.push(full(tail));
                    Chain::new(bodies).boxed()
                }
            };
            let ct = format!("multipart/byteranges; boundary={boundary}");
            (StatusCode::PARTIAL_CONTENT, body, n, ct, None)
        }
        (_, Ranged::Span(o)) => (StatusCode::OK, o.stream, len, ct, None),
        (_, Ranged::Each { .. }) => unreachable!("parts are opened for multi-ranges only"),
    };
    // Stale metadata says so whatever the bytes' own story. A blob this account has not been
    // served before is its MISS, whoever brought it: what others' caches hold is not told.
    let cache = match source {
        Source::Stale | Source::Updating => cache_status(source),
        _ if bytes_from == CacheStatus::Hit && !known => CacheStatus::Miss,
        _ => bytes_from,
    };
    let mut resp = with_file_headers(answer(app, status, &etag, cache));
    *resp.body_mut() = body;
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, header_value(content_type));
    h.insert(CONTENT_LENGTH, HeaderValue::from(body_len));
    if let Some(cr) = content_range {
        h.insert(CONTENT_RANGE, header_value(cr));
    }
    // A fill joined or started, or a pass-through: the wait for it was Dropbox's.
    provenance::body_from(&mut resp, bytes_from, opening);
    Ok(Served::Done(resp))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_by_name() {
        assert_eq!(content_type("a.JPG"), "image/jpeg");
        assert_eq!(content_type("index.html"), "text/html; charset=utf-8");
        assert_eq!(content_type("app.js"), "text/javascript; charset=utf-8");
        assert_eq!(content_type("noext"), "application/octet-stream");
    }
}
