//! Download bodies: a byte range of a stored file, streamed in chunks, with body faults applied
//! (slow, stalled or cut), and the Range/If-None-Match handling download routes share.

use super::faults::FaultKind;
use super::tree::Content;
use crate::http::channel::{ChannelBody, Sender};
use crate::http::etag::{EntityTag, TagList};
use crate::http::range::{Ranges, resolve};
use crate::http::{Body, BoxError, empty};
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Response, StatusCode};
use std::io::SeekFrom;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

const CHUNK: usize = 64 * 1024;

/// Streams `content[start..start+len]`, applying a body fault if one is drawn.
pub fn stream(content: Content, start: u64, len: u64, fault: Option<FaultKind>) -> Body {
    let (tx, body) = ChannelBody::new(4, len);
    tokio::spawn(async move {
        if let Err(e) = produce(&tx, content, start, len, fault).await {
            let _ = tx.send(Err(e)).await;
        }
    });
    body.boxed()
}

async fn produce(
    tx: &Sender,
    content: Content,
    start: u64,
    len: u64,
    fault: Option<FaultKind>,
) -> Result<(), BoxError> {
    let limit = match fault {
        Some(FaultKind::Stall { after } | FaultKind::Cut { after }) => after.min(len),
        _ => len,
    };
    let (chunk, pause) = match fault {
        Some(FaultKind::Slow { bytes_per_sec }) => {
            let per_tick = (bytes_per_sec / 20).clamp(1, CHUNK as u64);
            (per_tick as usize, Some(Duration::from_millis(50)))
        }
        _ => (CHUNK, None),
    };
    let mut sent = 0u64;
    match content {
        Content::Memory(bytes) => {
            let slice = bytes.slice(start as usize..(start + limit) as usize);
            while sent < limit {
                let n = chunk.min((limit - sent) as usize);
                let piece = slice.slice(sent as usize..sent as usize + n);
                sent += n as u64;
                if tx.send(Ok(piece)).await.is_err() {
                    return Ok(());
                }
                if let Some(p) = pause {
                    tokio::time::sleep(p).await;
                }
            }
        }
        Content::Disk(path) => {
            let mut file = tokio::fs::File::open(&path).await?;
            file.seek(SeekFrom::Start(start)).await?;
            let mut buf = vec![0u8; chunk];
            while sent < limit {
                let want = chunk.min((limit - sent) as usize);
                let n = file.read(&mut buf[..want]).await?;
                if n == 0 {
                    return Err("file shrank while it was being sent".into());
                }
                sent += n as u64;
                if tx
                    .send(Ok(Bytes::copy_from_slice(&buf[..n])))
                    .await
                    .is_err()
                {
                    return Ok(());
                }
                if let Some(p) = pause {
                    tokio::time::sleep(p).await;
                }
            }
        }
    }
    match fault {
        Some(FaultKind::Cut { .. }) if limit < len => Err("emulator fault: body cut".into()),
        Some(FaultKind::Stall { .. }) if limit < len => {
            // Hold the connection open until the client gives up.
            tx.closed().await;
            Ok(())
        }
        _ => Ok(()),
    }
}

/// What a download route answers with, before Range is applied.
pub struct Download {
    pub content: Content,
    pub size: u64,
    /// The `Dropbox-API-Result` header value (already header-safe JSON); none for plain links.
    pub result: Option<String>,
    /// Strong validator for this revision.
    pub etag: String,
    pub content_type: &'static str,
}

/// Builds the 200 / 206 / 304 / 416 answer of a download route (reference §3.2). Only single
/// ranges are honoured; a multi-range request gets the whole file, as RFC 9110 allows.
pub fn respond(dl: Download, req: &HeaderMap, fault: Option<FaultKind>) -> Response<Body> {
    let mut builder = Response::builder();
    if let Some(result) = &dl.result {
        builder = builder.header("Dropbox-API-Result", result.as_str());
    }
    builder = builder
        .header(header::ETAG, dl.etag.as_str())
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::CACHE_CONTROL, "no-cache")
        .header(header::PRAGMA, "no-cache")
        .header("Original-Content-Length", dl.size);
    let current = EntityTag::parse(&dl.etag);
    let inm = req
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .and_then(TagList::parse);
    if inm.is_some_and(|list| list.matches(current.as_ref(), EntityTag::weak_eq)) {
        return builder
            .status(StatusCode::NOT_MODIFIED)
            .body(empty())
            .expect("valid response");
    }
    builder = builder.header(header::CONTENT_TYPE, dl.content_type);
    let range = req.get(header::RANGE).and_then(|v| v.to_str().ok());
    let (status, start, len) = match range.map(|r| single_range(r, dl.size)) {
        Some(RangeAnswer::Unsatisfiable) => {
            return builder
                .status(StatusCode::RANGE_NOT_SATISFIABLE)
                .header(header::CONTENT_RANGE, format!("bytes */{}", dl.size))
                .body(empty())
                .expect("valid response");
        }
        Some(RangeAnswer::Slice(start, end)) => {
            builder = builder.header(
                header::CONTENT_RANGE,
                format!("bytes {start}-{end}/{}", dl.size),
            );
            (StatusCode::PARTIAL_CONTENT, start, end - start + 1)
        }
        Some(RangeAnswer::Whole) | None => (StatusCode::OK, 0, dl.size),
    };
    builder
        .status(status)
        .header(header::CONTENT_LENGTH, HeaderValue::from(len))
        .body(stream(dl.content, start, len, fault))
        .expect("valid response")
}

/// Dropbox serves single ranges only (reference §3.2); several ranges get the whole file.
fn single_range(header: &str, size: u64) -> RangeAnswer {
    match resolve(header, size) {
        Ranges::Ignore => RangeAnswer::Whole,
        Ranges::Unsatisfiable => RangeAnswer::Unsatisfiable,
        Ranges::Satisfiable(r) if r.len() == 1 => RangeAnswer::Slice(*r[0].start(), *r[0].end()),
        Ranges::Satisfiable(_) => RangeAnswer::Whole,
    }
}

#[derive(Debug, PartialEq, Eq)]
enum RangeAnswer {
    Whole,
    Slice(u64, u64),
    Unsatisfiable,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_ranges() {
        use RangeAnswer::*;
        let cases = [
            ("bytes=0-4", 10, Slice(0, 4)),
            ("bytes=5-", 10, Slice(5, 9)),
            ("bytes=-3", 10, Slice(7, 9)),
            ("bytes=-30", 10, Slice(0, 9)),
            ("bytes=8-100", 10, Slice(8, 9)),
            ("bytes=10-", 10, Unsatisfiable),
            ("bytes=0-0", 0, Unsatisfiable),
            ("bytes=-0", 10, Unsatisfiable),
            ("bytes=0-1,4-5", 10, Whole),
            ("pages=1-2", 10, Whole),
            ("bytes=x", 10, Whole),
        ];
        for (h, size, want) in cases {
            assert_eq!(single_range(h, size), want, "{h} of {size}");
        }
    }
}
