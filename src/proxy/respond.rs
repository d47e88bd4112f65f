//! Responses for a file or a folder listing, built from what the read path (`proxy::Proxy::serve`)
//! gives: the file's validators and type, the conditional and range verdicts, the opened body.
//! Nothing here looks anything up.

use super::listing::{self, Format};
use crate::account::Account;
use crate::body::slice::{Chain, Lazy, Part, Slices, multipart};
use crate::body::{Opened, Ranged};
use crate::http::CacheStatus;
use crate::http::conditional::{self, Outcome, Validators};
use crate::http::etag::EntityTag;
use crate::http::range::Decision;
use crate::http::representation::Representation;
use crate::http::sendfile::Offer;
use crate::http::{Body, empty, full};
use crate::meta::{Listing, Source};
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::header::{
    ACCEPT, ACCEPT_RANGES, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, ETAG,
    HeaderValue, LAST_MODIFIED, VARY,
};
use hyper::http::request::Parts;
use hyper::{Method, Response, StatusCode};
use std::ops::RangeInclusive;

/// `X-Cache-Status` for an answer made from metadata alone.
pub fn cache_status(source: Source) -> CacheStatus {
    match source {
        Source::Cache => CacheStatus::Hit,
        Source::Revalidated => CacheStatus::Revalidated,
        Source::Dropbox => CacheStatus::Miss,
        Source::Stale => CacheStatus::Stale,
        Source::Updating => CacheStatus::Updating,
    }
}

/// A response with the headers every 200 / 206 / 304 / 416 shares.
fn answer(
    cc: &HeaderValue,
    status: StatusCode,
    etag: HeaderValue,
    cache: CacheStatus,
) -> Response<Body> {
    answer_with(cc, status, etag, cache, empty())
}

/// Headers a file's answer usually carries (its own, the router's, some CORS): room made once
/// rather than grown on the way (a compressed 206 with CORS grows it once).
const FILE_HEADERS: usize = 12;
/// A 304's: validators, `Cache-Control`, `X-Cache-Status`, `X-Request-Id`, a `Vary`. Room for
/// six is an allocation glibc keeps at hand; for twelve it is not (a 304 did it per request).
const NOT_MODIFIED_HEADERS: usize = 6;

/// `answer` with its body.
fn answer_with(
    cc: &HeaderValue,
    status: StatusCode,
    etag: HeaderValue,
    cache: CacheStatus,
    body: Body,
) -> Response<Body> {
    let mut resp = Response::new(body);
    *resp.headers_mut() = hyper::HeaderMap::with_capacity(match status {
        StatusCode::NOT_MODIFIED => NOT_MODIFIED_HEADERS,
        _ => FILE_HEADERS,
    });
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(ETAG, etag);
    h.insert(CACHE_CONTROL, cc.clone());
    cache.mark(&mut resp);
    resp
}

fn etag_value(etag: &EntityTag) -> HeaderValue {
    header_value(etag.to_string())
}

/// `Content-Range: bytes first-last/len`, written with `itoa` on the stack and copied into the
/// value once: `format!` and a copy were a tenth of a 206's own instructions, and a `Vec`
/// handed over with room to spare cost `Bytes` a second allocation.
fn content_range(first: u64, last: u64, len: u64) -> HeaderValue {
    let mut v = [0u8; 6 + 3 * 20 + 2];
    let mut at = 0;
    let mut put = |part: &[u8]| {
        v[at..at + part.len()].copy_from_slice(part);
        at += part.len();
    };
    let mut n = itoa::Buffer::new();
    put(b"bytes ");
    put(n.format(first).as_bytes());
    put(b"-");
    put(n.format(last).as_bytes());
    put(b"/");
    put(n.format(len).as_bytes());
    HeaderValue::from_bytes(&v[..at]).expect("digits, a space, '-' and '/'")
}

/// A length's header value, copied once from `itoa`'s digits (`HeaderValue::from(u64)` goes
/// by a growing buffer, two allocations).
fn length_value(len: u64) -> HeaderValue {
    HeaderValue::from_str(itoa::Buffer::new().format(len)).expect("digits")
}

fn header_value(text: impl AsRef<str>) -> HeaderValue {
    HeaderValue::from_str(text.as_ref()).expect("generated header values are ASCII")
}

pub fn precondition_failed() -> Response<Body> {
    crate::http::plain(StatusCode::PRECONDITION_FAILED, "precondition failed\n")
}

/// A folder listing, JSON or HTML by `Accept`, with its strong ETag and `Vary: Accept`.
pub fn folder(
    cc: &HeaderValue,
    req: &Parts,
    account: &Account,
    listing: &Listing,
    source: Source,
) -> Response<Body> {
    let format = Format::from_accept(req.headers.get(ACCEPT).and_then(|v| v.to_str().ok()));
    listing_answer(cc, req, format, format.etag(listing), None, source, || {
        listing_bytes(format, account, listing).0.into()
    })
}

/// A listing's bytes in `format`, and their media type.
pub fn listing_bytes(
    format: Format,
    account: &Account,
    listing: &Listing,
) -> (Vec<u8>, &'static str) {
    let depth = listing::depth(&account.root);
    let bytes = match format {
        Format::Json => listing::json(listing, &account.alias, depth),
        Format::Html => listing::html(listing, &account.alias, depth),
    };
    (bytes, format.content_type())
}

/// A folder listing in a content coding: `coded` are its bytes in `enc`, `tag` its strong
/// validator (the listing's, with `-<coding>`), with `Vary: Accept`.
pub fn coded_folder(
    cc: &HeaderValue,
    req: &Parts,
    format: Format,
    tag: &str,
    enc: crate::http::encoding::Encoding,
    coded: Bytes,
    source: Source,
) -> Response<Body> {
    listing_answer(cc, req, format, tag.to_owned(), Some(enc), source, || coded)
}

/// A listing's answer under the strong validator `tag`: 412, 304, or 200 with the bytes
/// `body` makes (only then), in `coding` if given; with `Vary: Accept`.
fn listing_answer(
    cc: &HeaderValue,
    req: &Parts,
    format: Format,
    tag: String,
    coding: Option<crate::http::encoding::Encoding>,
    source: Source,
    body: impl FnOnce() -> Bytes,
) -> Response<Body> {
    let etag = EntityTag::strong(tag);
    let validators = Validators {
        etag: Some(etag.clone()),
        last_modified: None,
    };
    let cache = cache_status(source);
    let mut resp = match conditional::evaluate(&req.method, &req.headers, &validators) {
        Outcome::PreconditionFailed => return precondition_failed(),
        Outcome::NotModified => answer(cc, StatusCode::NOT_MODIFIED, etag_value(&etag), cache),
        Outcome::Proceed { .. } => {
            let bytes = body();
            let mut resp = answer(cc, StatusCode::OK, etag_value(&etag), cache);
            let h = resp.headers_mut();
            h.insert(
                CONTENT_TYPE,
                HeaderValue::from_static(format.content_type()),
            );
            h.insert(CONTENT_LENGTH, HeaderValue::from(bytes.len()));
            if let Some(enc) = coding {
                h.insert(
                    hyper::header::CONTENT_ENCODING,
                    HeaderValue::from_static(enc.token()),
                );
            }
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
    cc: &HeaderValue,
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
        Outcome::NotModified => answer(cc, StatusCode::NOT_MODIFIED, etag_value(&etag), cache),
        Outcome::Proceed { .. } => {
            let bytes = super::link::json(listing, display);
            let mut resp = answer(cc, StatusCode::OK, etag_value(&etag), cache);
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

/// `answer` with the headers of a file's 200 / 206 / 416.
fn file_answer(
    cc: &HeaderValue,
    head: &Representation,
    status: StatusCode,
    cache: CacheStatus,
    body: Body,
) -> Response<Body> {
    let mut resp = answer_with(cc, status, head.etag_value.clone(), cache, body);
    let h = resp.headers_mut();
    h.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Some(lm) = &head.last_modified_value {
        h.insert(LAST_MODIFIED, lm.clone());
    }
    resp
}

/// 304: the client's copy is current.
pub fn not_modified(cc: &HeaderValue, head: &Representation, cache: CacheStatus) -> Response<Body> {
    answer(cc, StatusCode::NOT_MODIFIED, head.etag_value.clone(), cache)
}

/// 416, with the length the client should have asked within.
pub fn unsatisfiable(
    cc: &HeaderValue,
    head: &Representation,
    cache: CacheStatus,
) -> Response<Body> {
    let mut resp = file_answer(cc, head, StatusCode::RANGE_NOT_SATISFIABLE, cache, empty());
    resp.headers_mut()
        .insert(CONTENT_RANGE, header_value(format!("bytes */{}", head.len)));
    resp
}

/// A `HEAD`: what a plain `GET` would answer, without the body.
pub fn head_only(cc: &HeaderValue, head: &Representation, cache: CacheStatus) -> Response<Body> {
    let mut resp = file_answer(cc, head, StatusCode::OK, cache, empty());
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, head.content_type.clone());
    h.insert(CONTENT_LENGTH, head.len_value.clone());
    resp
}

/// 200 with the whole body, or 206 with the range (or the `multipart/byteranges` parts) asked
/// for, cut from the body `opened` for that decision.
pub fn file(
    cc: &HeaderValue,
    head: &Representation,
    decision: Decision,
    opened: Ranged,
    cache: CacheStatus,
) -> Response<Body> {
    // The whole body, or one range of it: the entry's own head, and what the answer adds.
    let (decision, opened) = match (decision, opened) {
        (Decision::Whole, Ranged::Span(o)) => return whole(cc, head, o, cache),
        (Decision::Single(r), Ranged::Span(o)) => return single(cc, head, r, o, cache),
        other => other,
    };
    let len = head.len;
    let ct = head.content_type.clone();
    let (status, body, body_len, content_type) = match (decision, opened) {
        (Decision::Multi(rs), opened) => {
            let boundary = hex::encode(rand::random::<[u8; 12]>());
            let ct_text = ct.to_str().unwrap_or("application/octet-stream");
            let (parts, tail, n) = multipart(&rs, len, ct_text, &boundary);
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
            let ct = header_value(format!("multipart/byteranges; boundary={boundary}"));
            (StatusCode::PARTIAL_CONTENT, body, n, ct)
        }
        (_, Ranged::Span(o)) => (StatusCode::OK, o.stream, len, ct),
        (_, Ranged::Each { .. }) => unreachable!("parts are opened for multi-ranges only"),
    };
    let mut resp = file_answer(cc, head, status, cache, body);
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, content_type);
    h.insert(
        CONTENT_LENGTH,
        match body_len == len {
            true => head.len_value.clone(),
            false => length_value(body_len),
        },
    );
    resp
}

/// 206 with the one range `r`, cut from `o`: a clone of the entry's head, its length that of
/// the range, and `Content-Range` (building the head per answer cost a 206 its own inserts).
fn single(
    cc: &HeaderValue,
    head: &Representation,
    r: RangeInclusive<u64>,
    o: Opened,
    cache: CacheStatus,
) -> Response<Body> {
    let n = r.end() - r.start() + 1;
    let cr = content_range(*r.start(), *r.end(), head.len);
    let offer = o.offer.filter(|_| o.offset == *r.start());
    // A body that is the range already (a blob's or a memory copy's, opened for it) goes as
    // it is; one that starts earlier or may run on is cut to it. (hyper sends no more than the
    // length, and fails the connection on fewer.)
    let body = match o.offset == *r.start()
        && hyper::body::Body::size_hint(&o.stream).exact() == Some(n)
    {
        true => o.stream,
        false => {
            let part = Part {
                head: Bytes::new(),
                range: r,
            };
            Slices::new(o.stream, o.offset, vec![part], Bytes::new()).boxed()
        }
    };
    let mut resp = from_whole_head(cc, head, body, offer, cache);
    *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
    let h = resp.headers_mut();
    if n != head.len {
        h.insert(CONTENT_LENGTH, length_value(n));
    }
    h.insert(CONTENT_RANGE, cr);
    resp
}

/// 200 with the whole body `o`: a clone of the entry's head (`Representation::whole_head`),
/// and what this answer adds.
fn whole(cc: &HeaderValue, head: &Representation, o: Opened, cache: CacheStatus) -> Response<Body> {
    let offer = o.offer.filter(|_| o.offset == 0);
    from_whole_head(cc, head, o.stream, offer, cache)
}

/// A 200 of `body` with a clone of the entry's head, `Cache-Control` and `X-Cache-Status`;
/// `offer`, the blob's bytes the body is exactly, may go by sendfile (`http::sendfile`).
fn from_whole_head(
    cc: &HeaderValue,
    head: &Representation,
    body: Body,
    offer: Option<Offer>,
    cache: CacheStatus,
) -> Response<Body> {
    let mut resp = Response::new(body);
    *resp.headers_mut() = head.whole_head.clone();
    resp.headers_mut().insert(CACHE_CONTROL, cc.clone());
    cache.mark(&mut resp);
    if let Some(offer) = offer {
        resp.extensions_mut().insert(offer);
    }
    resp
}

#[cfg(test)]
mod tests {
    #[test]
    fn content_range_values_read_as_rfc_9110_writes_them() {
        let cases = [
            (0, 65535, 1_048_576, "bytes 0-65535/1048576"),
            (0, 0, 1, "bytes 0-0/1"),
            (7, 9, 10, "bytes 7-9/10"),
            (
                u64::MAX - 1,
                u64::MAX - 1,
                u64::MAX,
                "bytes 18446744073709551614-18446744073709551614/18446744073709551615",
            ),
        ];
        for (first, last, len, want) in cases {
            assert_eq!(super::content_range(first, last, len), want);
        }
    }

    #[test]
    fn length_values_are_the_digits() {
        for len in [0, 7, 65536, u64::MAX] {
            assert_eq!(super::length_value(len), len.to_string().as_str());
        }
    }
}
