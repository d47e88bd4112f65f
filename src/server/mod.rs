//! Serving HTTP/1.1 and HTTP/2 on an already-bound listener, optionally over TLS.
//!
//! `serve` takes the listener so callers (and tests) bind port 0 themselves. The proxy's router
//! joins this module with the read path; the emulator uses the same accept loop.

pub mod access;
pub mod admin;
pub mod channel;
pub mod router;
pub mod tls;
pub mod watchdog;
pub mod webhook;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use watchdog::{Activity, Deadlines, Tracked, Watched};

/// Boxed error for response bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// Every response body in this crate.
pub type Body = BoxBody<Bytes, BoxError>;

/// A complete body from bytes.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).map_err(|e| match e {}).boxed()
}

/// A short `text/plain` answer that no cache keeps (errors, health, the webhook's replies).
/// SECURITY: `nosniff`, so a browser never reads one (which may quote the request) as HTML.
pub fn plain(status: hyper::StatusCode, text: impl Into<Bytes>) -> Response<Body> {
    use hyper::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue, X_CONTENT_TYPE_OPTIONS};
    let mut resp = Response::new(full(text));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    resp
}

/// An empty body.
pub fn empty() -> Body {
    full(Bytes::new())
}

/// The open-files limit (soft, hard); None where unlimited or unreadable.
pub fn open_files_limit() -> (Option<u64>, Option<u64>) {
    let l = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    (l.current, l.maximum)
}

/// Raises the soft open-files limit to the hard one (as nginx's `worker_rlimit_nofile`): every
/// connection and every blob read holds a descriptor. Returns the soft limit now.
pub fn raise_open_files() -> Option<u64> {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let l = getrlimit(Resource::Nofile);
    if l.current != l.maximum {
        let raised = Rlimit {
            current: l.maximum,
            maximum: l.maximum,
        };
        if let Err(e) = setrlimit(Resource::Nofile, raised) {
            tracing::warn!(error = %e, "cannot raise the open-files limit");
        }
    }
    open_files_limit().0
}

/// What a listener allows its clients (`[server]` in the config; see `watchdog`).
#[derive(Debug, Clone)]
pub struct Limits {
    /// How long requests under way get to finish once `shutdown` resolves.
    pub drain: Duration,
    pub header_read_timeout: Duration,
    pub keepalive_timeout: Duration,
    /// Connections open at once; past it, new ones wait in the listen backlog.
    pub max_connections: usize,
    pub http2_max_streams: u32,
    pub http2_keepalive_interval: Duration,
}

impl Default for Limits {
    /// The config's defaults (an empty file's `[server]`): one source for both.
    fn default() -> Self {
        let config = crate::config::Config::parse("", &|_| None).expect("an empty config is valid");
        Limits::from_config(&config.server)
    }
}

impl Limits {
    pub fn from_config(c: &crate::config::ServerConfig) -> Limits {
        Limits {
            drain: c.shutdown_timeout,
            header_read_timeout: c.header_read_timeout,
            keepalive_timeout: c.keepalive_timeout,
            max_connections: c.max_connections,
            http2_max_streams: c.http2_max_streams,
            http2_keepalive_interval: c.http2_keepalive_interval,
        }
    }
}

/// Accepts connections until `shutdown` resolves, then lets the requests under way finish
/// for up to `limits.drain` (idle connections are closed at once). At most
/// `limits.max_connections` are open at once; each lives under its `watchdog` deadlines.
pub async fn serve<H, F>(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    limits: Limits,
    handler: H,
    shutdown: impl Future<Output = ()>,
) where
    H: Fn(Request<Incoming>, SocketAddr) -> F + Send + Sync + 'static,
    F: Future<Output = Response<Body>> + Send + 'static,
{
    let handler = Arc::new(handler);
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // The watchdog times heads and idleness (hyper's own header timeout would also cut
    // idle keep-alive connections at the header deadline).
    builder.http1().header_read_timeout(None);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.http2_max_streams)
        .keep_alive_interval(limits.http2_keepalive_interval)
        .keep_alive_timeout(Duration::from_secs(20));
    let deadlines = Deadlines {
        header: limits.header_read_timeout,
        idle: limits.keepalive_timeout,
    };
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    tokio::pin!(shutdown);
    loop {
        // SECURITY: at the cap, stop accepting: new clients wait in the kernel's backlog
        // (or are refused by it), and the process never runs out of itself.
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // EMFILE and friends: back off briefly rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let handler = handler.clone();
        let activity = Activity::new();
        let service = {
            let activity = activity.clone();
            hyper::service::service_fn(move |req| {
                let in_flight = activity.begin();
                let fut = handler(req, peer);
                async move {
                    let resp = fut.await;
                    Ok::<_, Infallible>(resp.map(|b| Tracked::new(b, in_flight)))
                }
            })
        };
        match &tls {
            None => {
                let io = Watched::new(stream, activity, deadlines, None);
                let conn = builder.serve_connection(TokioIo::new(io), service);
                let conn = graceful.watch(conn.into_owned());
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(error = %e, %peer, "connection ended with an error");
                    }
                    drop(slot);
                });
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                let builder = builder.clone();
                let watcher = graceful.watcher();
                tokio::spawn(async move {
                    let _slot = slot;
                    // The handshake is part of the head: the same deadline.
                    let stream =
                        match tokio::time::timeout(deadlines.header, acceptor.accept(stream)).await
                        {
                            Ok(Ok(s)) => s,
                            Ok(Err(e)) => {
                                tracing::debug!(error = %e, %peer, "TLS handshake failed");
                                return;
                            }
                            Err(_) => {
                                tracing::debug!(%peer, "TLS handshake timed out");
                                return;
                            }
                        };
                    let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
                    let io = Watched::new(stream, activity, deadlines, Some(h2));
                    let conn = builder.serve_connection(TokioIo::new(io), service);
                    if let Err(e) = watcher.watch(conn.into_owned()).await {
                        tracing::debug!(error = %e, %peer, "connection ended with an error");
                    }
                });
            }
        }
    }
    drop(listener);
    if tokio::time::timeout(limits.drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            drain = ?limits.drain,
            "requests still under way after the shutdown timeout; dropping them"
        );
    }
}
