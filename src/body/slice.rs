//! Cutting byte ranges out of a stream: one range for a 206, or several framed as
//! `multipart/byteranges` (RFC 9110 §14.6). Bytes between ranges are read and dropped, never
//! buffered; the stream is left as soon as the last range is out.

use crate::http::BoxError;
use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use std::collections::VecDeque;
use std::ops::RangeInclusive;
use std::pin::Pin;
use std::task::{Context, Poll};

/// One range of the output, with the bytes sent before it (a multipart part header).
#[derive(Debug, Clone)]
pub struct Part {
    pub head: Bytes,
    pub range: RangeInclusive<u64>,
}

/// The framing of `ranges` of a `len`-byte representation of type `content_type` as
/// `multipart/byteranges` with `boundary`: the parts, the closing delimiter, and the exact
/// length of the whole body.
pub fn multipart(
    ranges: &[RangeInclusive<u64>],
    len: u64,
    content_type: &str,
    boundary: &str,
) -> (Vec<Part>, Bytes, u64) {
    let mut total = 0;
    let parts: Vec<Part> = ranges
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let lead = if i == 0 { "" } else { "\r\n" };
            let head = format!(
                "{lead}--{boundary}\r\nContent-Type: {content_type}\r\nContent-Range: bytes {}-{}/{len}\r\n\r\n",
                r.start(),
                r.end()
            );
            total += head.len() as u64 + r.end() - r.start() + 1;
            Part {
                head: Bytes::from(head),
                range: r.clone(),
            }
        })
        .collect();
    let tail = Bytes::from(format!("\r\n--{boundary}--\r\n"));
    total += tail.len() as u64;
    (parts, tail, total)
}

/// A body of `parts` (ascending, non-overlapping) read from `inner`, whose first byte is at
/// position `offset`, followed by `tail`.
pub struct Slices<B> {
    inner: B,
    /// Position of the first byte of `buf`.
    pos: u64,
    buf: Bytes,
    parts: VecDeque<Part>,
    head_sent: bool,
    tail: Option<Bytes>,
    remaining: u64,
    /// The source starts after the first part does (Dropbox's 206 began later than asked):
    /// an error, never wrong bytes.
    late: bool,
}

impl<B> Slices<B> {
    pub fn new(inner: B, offset: u64, parts: Vec<Part>, tail: Bytes) -> Self {
        let remaining = parts
            .iter()
            .map(|p| p.head.len() as u64 + p.range.end() - p.range.start() + 1)
            .sum::<u64>()
            + tail.len() as u64;
        let late = parts.first().is_some_and(|p| offset > *p.range.start());
        Slices {
            inner,
            late,
            pos: offset,
            buf: Bytes::new(),
            parts: parts.into(),
            head_sent: false,
            tail: Some(tail).filter(|t| !t.is_empty()),
            remaining,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the source ended {missing} bytes before the requested range did")]
pub struct ShortSource {
    pub missing: u64,
}

#[derive(Debug, thiserror::Error)]
#[error("the source starts at byte {offset}, after the requested range's {start}")]
pub struct LateSource {
    pub offset: u64,
    pub start: u64,
}

impl<B> Body for Slices<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if this.late {
            this.late = false;
            let start = this.parts.front().map_or(0, |p| *p.range.start());
            this.parts.clear();
            this.tail = None;
            return Poll::Ready(Some(Err(Box::new(LateSource {
                offset: this.pos,
                start,
            }))));
        }
        loop {
            let Some(part) = this.parts.front() else {
                return Poll::Ready(this.tail.take().map(|t| {
                    this.remaining -= t.len() as u64;
                    Ok(Frame::data(t))
                }));
            };
            if !this.head_sent {
                this.head_sent = true;
                if !part.head.is_empty() {
                    let head = part.head.clone();
                    this.remaining -= head.len() as u64;
                    return Poll::Ready(Some(Ok(Frame::data(head))));
                }
            }
            let (start, end) = (*part.range.start(), *part.range.end());
            // Drop what lies before the part.
            if this.pos < start {
                let skip = (start - this.pos).min(this.buf.len() as u64) as usize;
                let _ = this.buf.split_to(skip);
                this.pos += skip as u64;
            }
            if this.pos >= start && !this.buf.is_empty() {
                let take = (end + 1 - this.pos).min(this.buf.len() as u64) as usize;
                let out = this.buf.split_to(take);
                this.pos += take as u64;
                this.remaining -= take as u64;
                if this.pos > end {
                    this.parts.pop_front();
                    this.head_sent = false;
                }
                return Poll::Ready(Some(Ok(Frame::data(out))));
            }
            // Need more of the source.
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        this.buf = data;
                    }
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e.into()))),
                Poll::Ready(None) => {
                    let missing = end + 1 - this.pos;
                    return Poll::Ready(Some(Err(Box::new(ShortSource { missing }))));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.parts.is_empty() && self.tail.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

/// Bodies one after another (a multipart answer whose parts came from separate downloads).
pub struct Chain {
    bodies: VecDeque<crate::http::Body>,
}

impl Chain {
    pub fn new(bodies: Vec<crate::http::Body>) -> Chain {
        Chain {
            bodies: bodies.into(),
        }
    }
}

impl Body for Chain {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        while let Some(front) = self.bodies.front_mut() {
            match Pin::new(front).poll_frame(cx) {
                Poll::Ready(None) => {
                    self.bodies.pop_front();
                }
                other => return other,
            }
        }
        Poll::Ready(None)
    }

    fn is_end_stream(&self) -> bool {
        self.bodies.iter().all(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        let exact = self
            .bodies
            .iter()
            .map(|b| b.size_hint().exact())
            .sum::<Option<u64>>();
        exact.map_or_else(SizeHint::default, SizeHint::with_exact)
    }
}

/// A body opened when first polled (a later part of a multipart answer), of `len` bytes.
pub struct Lazy {
    state: LazyState,
    len: u64,
}

type Opening =
    Pin<Box<dyn std::future::Future<Output = Result<crate::http::Body, BoxError>> + Send>>;

enum LazyState {
    /// In a mutex only to be `Sync` (a future is not); polled through `&mut`, never locked.
    Opening(std::sync::Mutex<Opening>),
    Open(crate::http::Body),
}

impl Lazy {
    pub fn new(len: u64, open: Opening) -> Lazy {
        Lazy {
            state: LazyState::Opening(std::sync::Mutex::new(open)),
            len,
        }
    }
}

impl Body for Lazy {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        loop {
            match &mut self.state {
                LazyState::Opening(open) => match open
                    .get_mut()
                    .unwrap_or_else(|p| p.into_inner())
                    .as_mut()
                    .poll(cx)
                {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Err(e)) => return Poll::Ready(Some(Err(e))),
                    Poll::Ready(Ok(body)) => self.state = LazyState::Open(body),
                },
                LazyState::Open(body) => return Pin::new(body).poll_frame(cx),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.state {
            LazyState::Opening(_) => self.len == 0,
            LazyState::Open(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.state {
            LazyState::Opening(_) => SizeHint::with_exact(self.len),
            LazyState::Open(body) => body.size_hint(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use std::convert::Infallible;

    /// A source body yielding `data` in chunks of `chunk` bytes.
    struct Chunks(VecDeque<Bytes>);

    impl Body for Chunks {
        type Data = Bytes;
        type Error = Infallible;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
            Poll::Ready(self.0.pop_front().map(|b| Ok(Frame::data(b))))
        }
    }

    fn source(data: &'static [u8], chunk: usize) -> Chunks {
        Chunks(data.chunks(chunk).map(Bytes::from_static).collect())
    }

    async fn collect<B>(b: B) -> Result<Vec<u8>, BoxError>
    where
        B: Body<Data = Bytes, Error = BoxError>,
    {
        Ok(b.collect().await?.to_bytes().to_vec())
    }

    #[tokio::test]
    async fn single_and_multipart_cuts_across_chunks() {
        let data: &'static [u8] = b"0123456789abcdefghij";
        for chunk in [1, 3, 7, 20] {
            let part = |r: RangeInclusive<u64>| Part {
                head: Bytes::new(),
                range: r,
            };
            let one = Slices::new(source(data, chunk), 0, vec![part(2..=5)], Bytes::new());
            assert_eq!(collect(one).await.unwrap(), b"2345");
            // A source that starts at the range (an upstream 206).
            let at = Slices::new(
                source(&data[10..], chunk),
                10,
                vec![part(10..=12)],
                Bytes::new(),
            );
            assert_eq!(collect(at).await.unwrap(), b"abc");
            let (parts, tail, len) = multipart(&[0..=1, 5..=6, 18..=19], 20, "text/plain", "B");
            let body = collect(Slices::new(source(data, chunk), 0, parts, tail))
                .await
                .unwrap();
            let expected = "--B\r\nContent-Type: text/plain\r\nContent-Range: bytes 0-1/20\r\n\r\n01\
                \r\n--B\r\nContent-Type: text/plain\r\nContent-Range: bytes 5-6/20\r\n\r\n56\
                \r\n--B\r\nContent-Type: text/plain\r\nContent-Range: bytes 18-19/20\r\n\r\nij\
                \r\n--B--\r\n";
            assert_eq!(String::from_utf8(body).unwrap(), expected);
            assert_eq!(len, expected.len() as u64);
        }
    }

    #[tokio::test]
    async fn a_source_that_starts_late_is_an_error_not_wrong_bytes() {
        // Asked for 2..=5 and 10..=12, the source (an upstream 206) began at byte 8.
        let data: &'static [u8] = b"89abcdef";
        let part = |r: RangeInclusive<u64>| Part {
            head: Bytes::new(),
            range: r,
        };
        for parts in [vec![part(2..=5)], vec![part(2..=5), part(10..=12)]] {
            let err = collect(Slices::new(source(data, 3), 8, parts, Bytes::new()))
                .await
                .unwrap_err();
            assert!(err.to_string().contains("starts at byte 8"), "{err}");
        }
    }

    #[tokio::test]
    async fn a_short_source_is_an_error_not_a_short_body() {
        let data: &'static [u8] = b"0123";
        let part = Part {
            head: Bytes::new(),
            range: 2..=9,
        };
        let err = collect(Slices::new(source(data, 2), 0, vec![part], Bytes::new()))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("6 bytes"), "{err}");
    }
}
