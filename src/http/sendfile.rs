//! `sendfile(2)` for bodies that are a file's bytes, on plain HTTP/1 connections: the kernel
//! moves page cache to the socket, with no read into our memory and no copy out of it (as
//! nginx's `sendfile on`).
//!
//! hyper owns the connection and writes only the bytes it is given, so the hand-off goes by
//! placeholder:
//! - whoever opens a body from a file puts an [`Offer`] in the response's extensions, beside a
//!   body that reads the file itself if the offer is not taken (TLS, HTTP/2);
//! - the server takes it on a plain HTTP/1 connection ([`take`]) and swaps the body for a
//!   [`FileBody`], whose frames are placeholders: slices of one shared buffer of zeros that
//!   nothing writes or sends, each queued with the file range it stands for;
//! - the connection's I/O ([`SendfileIo`]) knows a placeholder by its address when hyper
//!   writes it, and sends the file range instead (the head before it goes with MSG_MORE, so
//!   it leaves in one segment with the file's first bytes rather than in a packet of its own:
//!   a profile of 64 KiB hits had that packet at a fifth of the CPU).
//!
//! hyper hands body bytes to a vectored writer without copying them (its queue strategy,
//! chosen because the I/O writes vectored); a placeholder written out of step with its queue
//! fails the connection, so a wrong byte is never sent. `tests/body_cache.rs` checks the bytes
//! and that this path served them.
//!
//! The file is read in the connection's task: a page not in the page cache waits for the disk
//! there (as nginx without `aio`). `cache.sendfile = false` turns it off.

use super::Body;
use bytes::Bytes;
use hyper::Response;
use hyper::body::{Frame, SizeHint};
use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll, ready};
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;

/// The largest frame: one job's bytes, so at most this much per `sendfile` call (nginx's
/// `sendfile_max_chunk` default). 2 MiB rather than 256 KiB: 196 against 207 ms of server CPU
/// per GiB of a 16 MiB stream, measured (nginx: 188). The access log, which counts frames as
/// hyper takes them, is at most this far ahead of the socket.
const FRAME: usize = 2 << 20;

/// The placeholders' bytes: zeros, allocated untouched (no resident memory), never written.
fn placeholder() -> &'static [u8] {
    static ZEROS: OnceLock<&'static [u8]> = OnceLock::new();
    ZEROS.get_or_init(|| Box::leak(vec![0u8; FRAME].into_boxed_slice()))
}

/// Where `buf` starts in the placeholder, if it is one.
fn placeholder_offset(buf: &[u8]) -> Option<usize> {
    let base = placeholder().as_ptr() as usize;
    let at = (buf.as_ptr() as usize).checked_sub(base)?;
    (!buf.is_empty() && at < FRAME).then_some(at)
}

/// Whether sendfile works from files in `dir` (some file systems cannot): tried once, on a
/// temp file, into a socket.
pub fn works_from(dir: &std::path::Path) -> io::Result<()> {
    use std::io::{Read, Write};
    let mut file = tempfile::tempfile_in(dir)?;
    file.write_all(b"probe")?;
    let (tx, mut rx) = std::os::unix::net::UnixStream::pair()?;
    let n = rustix::fs::sendfile(&tx, &file, Some(&mut 0), 5)?;
    let mut got = [0u8; 5];
    rx.read_exact(&mut got[..n])?;
    if n == 0 || got[..n] != b"probe"[..n] {
        return Err(io::Error::other(
            "sendfile sent other bytes than the file's",
        ));
    }
    Ok(())
}

/// Bytes `start..end` of a file, and what must live while they are sent.
pub struct FileRange {
    pub file: Arc<File>,
    pub start: u64,
    pub end: u64,
    /// Held until the last byte is sent (the blob's pin).
    pub keep: Box<dyn std::any::Any + Send + Sync>,
    /// Bytes sent this way, counted as they go.
    pub sent: Arc<AtomicU64>,
}

/// A response body's file range, offered to the connection: taken once, by the server (to
/// send it with sendfile) or by the body (to read it itself).
#[derive(Clone)]
pub struct Offer(Arc<Mutex<Option<FileRange>>>);

impl Offer {
    pub fn new(range: FileRange) -> Offer {
        Offer(Arc::new(Mutex::new(Some(range))))
    }

    pub fn take(&self) -> Option<FileRange> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    fn len(&self) -> Option<u64> {
        let range = self.0.lock().unwrap_or_else(|p| p.into_inner());
        range.as_ref().map(|r| r.end - r.start)
    }
}

/// One frame's file range, queued for the I/O.
struct Job {
    range: Arc<FileRange>,
    at: u64,
    len: usize,
    done: usize,
}

/// A connection's frames waiting to be sent, in order.
#[derive(Clone, Default)]
pub struct Jobs(Arc<Mutex<VecDeque<Job>>>);

impl Jobs {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Job>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Swaps `resp`'s body for its offered file range, sent by `jobs`' connection; true if it did.
/// The offer is taken only if the body is exactly that range.
pub fn take(resp: &mut Response<Body>, jobs: &Jobs) -> bool {
    use hyper::body::Body as _;
    let Some(offer) = resp.extensions_mut().remove::<Offer>() else {
        return false;
    };
    let exact = resp.body().size_hint().exact();
    if exact.is_none() || exact != offer.len() {
        return false;
    }
    let Some(range) = offer.take() else {
        return false;
    };
    *resp.body_mut() = http_body_util::BodyExt::boxed(FileBody {
        pos: range.start,
        end: range.end,
        range: Arc::new(range),
        jobs: jobs.clone(),
    });
    true
}

/// A body whose frames are placeholders for its file range, queued on its connection.
pub struct FileBody {
    range: Arc<FileRange>,
    pos: u64,
    end: u64,
    jobs: Jobs,
}

impl hyper::body::Body for FileBody {
    type Data = Bytes;
    type Error = super::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if self.pos >= self.end {
            return Poll::Ready(None);
        }
        let len = (self.end - self.pos).min(FRAME as u64) as usize;
        let job = Job {
            range: self.range.clone(),
            at: self.pos,
            len,
            done: 0,
        };
        self.jobs.lock().push_back(job);
        self.pos += len as u64;
        let frame = Bytes::from_static(&placeholder()[..len]);
        Poll::Ready(Some(Ok(Frame::data(frame))))
    }

    fn is_end_stream(&self) -> bool {
        self.pos >= self.end
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.end - self.pos)
    }
}

/// A plain TCP connection that sends placeholders' file ranges with sendfile.
pub struct SendfileIo {
    tcp: TcpStream,
    jobs: Jobs,
}

fn out_of_step() -> io::Error {
    io::Error::other("a sendfile placeholder was written out of step with its file range")
}

impl SendfileIo {
    pub fn new(tcp: TcpStream, jobs: Jobs) -> SendfileIo {
        SendfileIo { tcp, jobs }
    }

    /// Sends the front job's bytes from `offset` (hyper writes what is left of a frame).
    fn poll_send_file(
        &mut self,
        cx: &mut Context<'_>,
        offset: usize,
        len: usize,
    ) -> Poll<io::Result<usize>> {
        let mut jobs = self.jobs.lock();
        let Some(job) = jobs.front_mut() else {
            return Poll::Ready(Err(out_of_step()));
        };
        if job.done != offset || offset + len != job.len {
            return Poll::Ready(Err(out_of_step()));
        }
        loop {
            ready!(self.tcp.poll_write_ready(cx))?;
            let mut at = job.at + job.done as u64;
            let left = job.len - job.done;
            // Part of what was asked: the socket is full (as tokio's own writes take it, and
            // nginx's sendfile). The readiness is cleared here, with the tick seen before the
            // call, so the next write waits for room instead of asking again only to hear
            // EAGAIN: that call read the file's pages before it found no room. (A file cut
            // short under us, never a verified blob, would then end by the watchdog's
            // stalled-send deadline rather than at once.)
            let mut partly = 0;
            let sent = self.tcp.try_io(Interest::WRITABLE, || {
                let n = rustix::fs::sendfile(&self.tcp, &*job.range.file, Some(&mut at), left)?;
                match n > 0 && n < left {
                    true => {
                        partly = n;
                        Err(io::ErrorKind::WouldBlock.into())
                    }
                    false => Ok(n),
                }
            });
            let sent = match sent {
                Err(e) if partly > 0 && e.kind() == io::ErrorKind::WouldBlock => Ok(partly),
                sent => sent,
            };
            match sent {
                Ok(0) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the file is shorter than its range",
                    )));
                }
                Ok(n) => {
                    job.done += n;
                    job.range.sent.fetch_add(n as u64, Ordering::Relaxed);
                    if job.done == job.len {
                        jobs.pop_front();
                    }
                    return Poll::Ready(Ok(n));
                }
                Err(e) if retry(&e) => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl SendfileIo {
    /// Writes bytes a file range follows (a response's head) with MSG_MORE: they wait to go
    /// out in one segment with the file's first bytes, not in a packet of their own.
    fn poll_write_more(
        &self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        use rustix::net::{SendAncillaryBuffer, SendFlags};
        loop {
            ready!(self.tcp.poll_write_ready(cx))?;
            let wrote = self.tcp.try_io(Interest::WRITABLE, || {
                let flags = SendFlags::MORE | SendFlags::NOSIGNAL;
                rustix::net::sendmsg(&self.tcp, bufs, &mut SendAncillaryBuffer::default(), flags)
                    .map_err(io::Error::from)
            });
            match wrote {
                Err(e) if retry(&e) => continue,
                done => return Poll::Ready(done),
            }
        }
    }
}

/// The socket is full (wait for room) or the call was interrupted: try again.
fn retry(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
    )
}

impl AsyncRead for SendfileIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for SendfileIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[IoSlice::new(buf)])
    }

    /// Bytes up to the first placeholder are written as they are; a placeholder first is
    /// sent from its file.
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let first = bufs.iter().position(|b| placeholder_offset(b).is_some());
        match first {
            None => Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs),
            Some(i) if bufs[..i].iter().any(|b| !b.is_empty()) => {
                self.poll_write_more(cx, &bufs[..i])
            }
            Some(i) => {
                let offset = placeholder_offset(&bufs[i]).expect("found above");
                self.poll_send_file(cx, offset, bufs[i].len())
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_placeholders_bytes_are_placeholders() {
        let p = placeholder();
        assert_eq!(placeholder_offset(&p[..10]), Some(0));
        assert_eq!(placeholder_offset(&p[100..200]), Some(100));
        assert_eq!(placeholder_offset(&p[FRAME - 1..]), Some(FRAME - 1));
        assert_eq!(placeholder_offset(&p[5..5]), None, "empty");
        let other = vec![0u8; 16];
        assert_eq!(placeholder_offset(&other), None);
        assert_eq!(placeholder_offset(b"HTTP/1.1 200 OK\r\n"), None);
    }
}
