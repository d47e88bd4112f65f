//! A response body fed by a producer task through a small bounded channel (a slow client holds
//! back only its own producer). An `Err`, or the channel closing before the promised length,
//! aborts the response mid-body rather than ending it short.

use super::BoxError;
use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::sync::mpsc;

/// What a producer sends.
pub type Sender = mpsc::Sender<Result<Bytes, BoxError>>;

pub struct ChannelBody {
    rx: mpsc::Receiver<Result<Bytes, BoxError>>,
    remaining: u64,
}

impl ChannelBody {
    /// A body of exactly `len` bytes, buffering up to `depth` chunks, and its sender.
    pub fn new(depth: usize, len: u64) -> (Sender, ChannelBody) {
        let (tx, rx) = mpsc::channel(depth);
        (tx, ChannelBody { rx, remaining: len })
    }
}

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(Ok(b))) => {
                self.remaining = self.remaining.saturating_sub(b.len() as u64);
                Poll::Ready(Some(Ok(Frame::data(b))))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
            Poll::Ready(None) if self.remaining > 0 => {
                Poll::Ready(Some(Err("the body stream ended early".into())))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}
