//! A connection's deadlines, kept by its I/O: nothing else can see a client that sends half a
//! request head, or one that stops reading its answer.
//!
//! - **Header**: once the first byte of a request arrives (for a new connection: from the
//!   accept), its head must be in within `header_read_timeout` (slowloris). HTTP/2: until
//!   its first request.
//! - **Idle**: a connection with no request under way is closed after `keepalive_timeout` since
//!   its last request ended (HTTP/1.1: or since bytes last moved; HTTP/2: pings do not count).
//! - **Stalled send**: a write, flush or shutdown that makes no progress for
//!   `keepalive_timeout` closes the connection, request under way or not (a client that
//!   stopped reading). An HTTP/2 stream stalled by flow control is the body stream's to end
//!   (`body::stream`).
//!
//! A request under way (from the handler's call to the end or drop of its response body) is
//! never cut by the header or idle deadline: waiting on Dropbox is not the client's fault.
//! When a deadline passes, the next read or write fails with `TimedOut` and hyper closes the
//! connection.

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// What the handler tells the I/O: requests under way, and when the last one ended.
#[derive(Debug)]
pub struct Activity {
    start: Instant,
    in_flight: AtomicUsize,
    /// Milliseconds from `start` to the end of the last request.
    ended_ms: AtomicU64,
    /// Requests begun on this connection.
    begun: AtomicU64,
}

impl Activity {
    pub fn new() -> Arc<Activity> {
        Arc::new(Activity {
            start: Instant::now(),
            in_flight: AtomicUsize::new(0),
            ended_ms: AtomicU64::new(0),
            begun: AtomicU64::new(0),
        })
    }

    /// A request begins; it is under way until the guard drops.
    pub fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.begun.fetch_add(1, Ordering::Relaxed);
        InFlight(self.clone())
    }

    fn ended(&self) -> Instant {
        self.start + Duration::from_millis(self.ended_ms.load(Ordering::Relaxed))
    }
}

/// A request under way.
#[derive(Debug)]
pub struct InFlight(Arc<Activity>);

/// A read waiting when the last request ends is not woken: its timer brings it back by the
/// idle deadline it armed (no later than an idle period after the request's end), and the
/// deadline is counted from the end then. A wake here cost every request a second poll of
/// its connection (hyper reads, and waits, while the answer's body is still being written).
impl Drop for InFlight {
    fn drop(&mut self) {
        let a = &self.0;
        let ms = a.start.elapsed().as_millis() as u64;
        a.ended_ms.fetch_max(ms, Ordering::Relaxed);
        a.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A response body that keeps its request under way until it ends or is dropped.
pub struct Tracked<B> {
    body: B,
    _in_flight: InFlight,
}

impl<B> Tracked<B> {
    pub fn new(body: B, in_flight: InFlight) -> Self {
        Tracked {
            body,
            _in_flight: in_flight,
        }
    }
}

impl<B: Body<Data = Bytes> + Unpin> Body for Tracked<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// The deadlines of one connection.
#[derive(Debug, Clone, Copy)]
pub struct Deadlines {
    pub header: Duration,
    pub idle: Duration,
}

/// A connection's I/O under its deadlines.
pub struct Watched<IO> {
    io: IO,
    activity: Arc<Activity>,
    limits: Deadlines,
    timer: Pin<Box<Sleep>>,
    /// The task the armed timer will wake (polled since it was last set, not fired yet).
    timer_wakes: Option<Waker>,
    /// Bytes last moved either way.
    moved: Instant,
    /// The first byte of a request head not yet handed over (HTTP/1.1).
    head_since: Option<Instant>,
    /// HTTP/2 (by ALPN, or by its preface on the first read): no request heads to time.
    h2: Option<bool>,
}

/// The first bytes of an HTTP/2 connection (RFC 9113 §3.4).
const PREFACE: &[u8] = b"PRI * HTTP/2.0";

impl<IO> Watched<IO> {
    /// `h2`: known from ALPN, or None to tell from the first bytes.
    pub fn new(io: IO, activity: Arc<Activity>, limits: Deadlines, h2: Option<bool>) -> Self {
        let now = Instant::now();
        Watched {
            io,
            activity,
            limits,
            timer: Box::pin(tokio::time::sleep_until(now + limits.header)),
            timer_wakes: None,
            moved: now,
            // A new connection's first request is timed from the accept.
            head_since: Some(now),
            h2,
        }
    }

    /// When a read waiting now must give up: the header deadline of a head under way, else
    /// the idle deadline (while a request is under way, only when the timer is due: the read
    /// looks again then, see `poll_read`).
    fn read_deadline(&mut self) -> Instant {
        if self.activity.in_flight.load(Ordering::Relaxed) > 0 {
            self.head_since = None;
        }
        let ended = self.activity.ended();
        if let Some(since) = self.head_since {
            // A head that began before the last request ended was that request's. HTTP/2 has
            // no heads to time after its first request (frames of any kind keep coming).
            let first = self.activity.begun.load(Ordering::Relaxed) == 0;
            if (self.h2 != Some(true) || first) && since >= ended {
                return since + self.limits.header;
            }
            self.head_since = None;
        }
        let idle_since = match self.h2 {
            Some(true) => ended,
            _ => ended.max(self.moved),
        };
        idle_since + self.limits.idle
    }

    /// Whether the armed timer holds this task's waker.
    fn timer_wakes_this(&self, cx: &Context<'_>) -> bool {
        self.timer_wakes
            .as_ref()
            .is_some_and(|w| w.will_wake(cx.waker()))
    }

    /// Polls the timer for `deadline`: true if it has passed.
    ///
    /// The timer is moved only earlier, or re-armed once it has fired: a later deadline (each
    /// request makes one) waits for the armed timer and is set when it fires, as nginx does,
    /// so a busy connection does not touch the runtime's timer wheel per request.
    ///
    /// While the armed timer has not fired and is due no later than `deadline`, it wakes the
    /// task in time: the clock is not read, and if it already holds this task's waker it is not
    /// polled either (a busy connection passes here per request, and a long body per write).
    fn expired(&mut self, cx: &mut Context<'_>, deadline: Instant) -> bool {
        loop {
            let covered = self.timer.deadline() <= deadline && !self.timer.is_elapsed();
            if covered && self.timer_wakes_this(cx) {
                return false;
            }
            if !covered {
                if Instant::now() >= deadline {
                    return true;
                }
                self.timer.as_mut().reset(deadline);
                self.timer_wakes = None;
            }
            // Ready from an earlier deadline that has just passed: re-armed above, next turn.
            // Outside the task's cooperative budget: a timer polled with none left would not
            // take the waker, and a deadline the I/O keeps for itself spends none.
            let timer = self.timer.as_mut();
            if Pin::new(&mut tokio::task::unconstrained(timer))
                .poll(cx)
                .is_pending()
            {
                if !self.timer_wakes_this(cx) {
                    self.timer_wakes = Some(cx.waker().clone());
                }
                return false;
            }
            self.timer_wakes = None;
        }
    }
}

fn timed_out(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, what.to_owned())
}

impl<IO: AsyncRead + Unpin> AsyncRead for Watched<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let got = &buf.filled()[before..];
                if !got.is_empty() {
                    let now = Instant::now();
                    if self.h2.is_none() {
                        // Decided on the whole preface, or at the first byte that differs.
                        let n = got.len().min(PREFACE.len());
                        if got[..n] != PREFACE[..n] {
                            self.h2 = Some(false);
                        } else if n == PREFACE.len() {
                            self.h2 = Some(true);
                        }
                    }
                    let idle = self.activity.in_flight.load(Ordering::Relaxed) == 0;
                    if idle && self.head_since.is_none_or(|s| s < self.activity.ended()) {
                        self.head_since = Some(now);
                    }
                    self.moved = now;
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => {
                let deadline = self.read_deadline();
                if !self.expired(cx, deadline) {
                    return Poll::Pending;
                }
                // A request under way is not cut: the read looks again an idle period on.
                if self.activity.in_flight.load(Ordering::Relaxed) > 0 {
                    let again = Instant::now() + self.limits.idle;
                    if !self.expired(cx, again) {
                        return Poll::Pending;
                    }
                }
                Poll::Ready(Err(timed_out("the client was too slow or idle too long")))
            }
            other => other,
        }
    }
}

impl<IO> Watched<IO> {
    /// A write's outcome, under the stalled-send deadline: progress moves the clock; no
    /// progress for `idle` fails it.
    fn wrote(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<usize>>,
    ) -> Poll<io::Result<usize>> {
        match polled {
            Poll::Ready(Ok(n)) => {
                if n > 0 {
                    self.moved = Instant::now();
                }
                Poll::Ready(Ok(n))
            }
            Poll::Pending if self.expired(cx, self.moved + self.limits.idle) => {
                Poll::Ready(Err(timed_out("the client stopped reading")))
            }
            other => other,
        }
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Watched<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write(cx, data);
        self.wrote(cx, polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.wrote(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.io).poll_flush(cx).map_ok(|()| 0);
        self.wrote(cx, polled).map_ok(drop)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.io).poll_shutdown(cx).map_ok(|()| 0);
        self.wrote(cx, polled).map_ok(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// The server end of a pipe under `limits`, and the client end.
    fn pipe(limits: Deadlines) -> (Watched<tokio::io::DuplexStream>, tokio::io::DuplexStream) {
        let (client, server) = tokio::io::duplex(1024);
        (Watched::new(server, Activity::new(), limits, None), client)
    }

    /// How long the server end reads before its deadline fails it.
    async fn until_timed_out(server: &mut Watched<tokio::io::DuplexStream>) -> Duration {
        let started = Instant::now();
        let mut buf = [0u8; 64];
        loop {
            match tokio::time::timeout(Duration::from_secs(5), server.read(&mut buf)).await {
                Ok(Ok(n)) if n > 0 => continue,
                Ok(Err(e)) if e.kind() == io::ErrorKind::TimedOut => return started.elapsed(),
                other => panic!("no deadline: {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn a_head_that_only_looks_like_http2_gets_the_header_deadline() {
        let limits = Deadlines {
            header: Duration::from_millis(100),
            idle: Duration::from_secs(3),
        };
        // "P" could begin the HTTP/2 preface; undecided, it is still a head to time.
        let (mut server, mut client) = pipe(limits);
        client.write_all(b"P").await.unwrap();
        assert!(until_timed_out(&mut server).await < Duration::from_secs(1));
        // A whole preface with no request after it: the header deadline still holds.
        let (mut server, mut client) = pipe(limits);
        client
            .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
            .await
            .unwrap();
        assert!(until_timed_out(&mut server).await < Duration::from_secs(1));
    }

    /// An HTTP/1.1 connection (header deadline 100 ms, idle 300 ms) whose request head has
    /// been read and whose request is under way: the server end, the client end, the request.
    async fn request_under_way() -> (
        Watched<tokio::io::DuplexStream>,
        tokio::io::DuplexStream,
        InFlight,
    ) {
        let limits = Deadlines {
            header: Duration::from_millis(100),
            idle: Duration::from_millis(300),
        };
        let (mut client, server) = tokio::io::duplex(1024);
        let activity = Activity::new();
        let mut server = Watched::new(server, activity.clone(), limits, Some(false));
        client.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        let mut buf = [0u8; 64];
        assert!(server.read(&mut buf).await.unwrap() > 0);
        (server, client, activity.begin())
    }

    #[tokio::test]
    async fn a_request_under_way_is_never_timed_out_and_idleness_counts_from_its_end() {
        let (mut server, _client, request) = request_under_way().await;
        let mut buf = [0u8; 64];
        // Well past both deadlines: still waiting, not failed.
        let waited = tokio::time::timeout(Duration::from_millis(500), server.read(&mut buf)).await;
        assert!(waited.is_err(), "{waited:?}");
        drop(request);
        let idle = until_timed_out(&mut server).await;
        assert!(idle >= Duration::from_millis(250), "{idle:?}");
    }

    #[tokio::test]
    async fn a_read_left_waiting_across_a_requests_end_times_out_an_idle_period_after_it() {
        // Nothing wakes the read when the request ends: its own timer must bring it back.
        let (mut server, client, request) = request_under_way().await;
        let reader = tokio::spawn(async move {
            until_timed_out(&mut server).await;
            Instant::now()
        });
        // The request outlasts an idle period (and the header deadline), then ends.
        tokio::time::sleep(Duration::from_millis(450)).await;
        assert!(!reader.is_finished(), "cut while a request was under way");
        drop(request);
        let ended = Instant::now();
        let cut = reader.await.unwrap();
        let after = cut - ended;
        assert!(
            after >= Duration::from_millis(250) && after < Duration::from_secs(2),
            "{after:?}"
        );
        drop(client);
    }
}
