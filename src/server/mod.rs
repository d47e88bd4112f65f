//! Serving HTTP/1.1 and HTTP/2 on an already-bound listener, optionally over TLS.
//!
//! `serve` takes the listener so callers (and tests) bind port 0 themselves. The proxy's router
//! joins this module with the read path; the emulator uses the same accept loop.

pub mod access;
pub mod admin;
pub mod oauth;
pub mod router;
pub mod tls;
pub mod watchdog;
pub mod webhook;

use crate::http::sendfile::{Jobs, SendfileIo};

use crate::app::App;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use watchdog::{Activity, Deadlines, Tracked, Watched};

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

/// Who sent a request, and how its connection can send.
#[derive(Clone)]
pub struct Client {
    pub addr: SocketAddr,
    /// A plain HTTP/1 connection's sendfile queue (`http::sendfile`): a response's offered
    /// file range may be taken with it.
    pub sendfile: Option<Jobs>,
}

/// Serves the proxy on `listener` (and `/metrics` on `metrics`, if given) until `shutdown`
/// resolves; then stops accepting, gives in-flight requests up to `server.shutdown_timeout`
/// to finish, and hands the change feeds over (their leases are released, so another
/// instance follows at once).
pub async fn run(
    listener: TcpListener,
    metrics: Option<TcpListener>,
    app: Arc<App>,
    shutdown: impl Future<Output = ()>,
) {
    let limits = Limits::from_config(&app.config.server);
    let front = Arc::new(router::Front {
        app: app.clone(),
        access: Arc::new(access::Log {
            http: app.metrics.http.clone(),
            enabled: app.config.log.access_log,
            format: app.config.log.format,
            trusted_proxies: app.config.server.trusted_proxies.clone(),
        }),
        draining: AtomicBool::new(false),
    });
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let signal = {
        let front = front.clone();
        async move {
            shutdown.await;
            front.draining.store(true, Ordering::Relaxed);
            let _ = stop.send(true);
        }
    };
    let until_stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let scrapes = metrics.map(|listener| {
        let handler = app.clone();
        tokio::spawn(serve(
            listener,
            None,
            limits.clone(),
            move |req, _| router::handle_metrics(handler.clone(), req),
            until_stopped(stopped.clone()),
        ))
    });
    let proxy = serve(
        listener,
        None,
        limits,
        move |req, client| router::handle(front.clone(), req, client),
        until_stopped(stopped),
    );
    tokio::join!(signal, proxy);
    if let Some(s) = scrapes {
        let _ = s.await;
    }
    app.feeds.stop().await;
    // Background refreshes and store writes finish, so the store is released on return.
    if tokio::time::timeout(app.config.server.shutdown_timeout, app.meta.settled())
        .await
        .is_err()
    {
        tracing::warn!("background metadata work still under way at shutdown");
    }
}

/// Accepts connections until `shutdown` resolves, then lets the requests under way finish
/// for up to `limits.drain` (idle connections are closed at once). At most
/// `limits.max_connections` are open at once; each lives under its `watchdog` deadlines.
pub async fn serve<H, F, B>(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    limits: Limits,
    handler: H,
    shutdown: impl Future<Output = ()>,
) where
    H: Fn(Request<Incoming>, Client) -> F + Send + Sync + 'static,
    F: Future<Output = Response<B>> + Send + 'static,
    // Any body (the proxy's `access::Metered`, unboxed: one allocation less per request).
    B: hyper::body::Body<Data = bytes::Bytes, Error = crate::http::BoxError>
        + Send
        + Unpin
        + 'static,
{
    let handler = Arc::new(handler);
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // NOTE: hyper must hand body bytes to the I/O uncopied (its queue strategy, chosen as the
    // I/O writes vectored): `http::sendfile`'s placeholders are known by their address. Do not
    // set `writev(false)` or `pipeline_flush(true)` here (either would copy them).
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
        // Plain TCP sends files with sendfile; TLS encrypts every byte in user space.
        let jobs = tls.is_none().then(Jobs::default);
        let service = {
            let activity = activity.clone();
            let jobs = jobs.clone();
            hyper::service::service_fn(move |req| {
                let in_flight = activity.begin();
                // HTTP/2 (h2c) frames its own data: no placeholders there.
                let h1 = req.version() < hyper::Version::HTTP_2;
                let client = Client {
                    addr: peer,
                    sendfile: jobs.clone().filter(|_| h1),
                };
                // Boxed once here: hyper moves the service's future into its slot, and an
                // unboxed request future was copied whole on the way (a 304's largest memcpy).
                let fut = Box::pin(handler(req, client));
                async move {
                    let resp = fut.await;
                    Ok::<_, Infallible>(resp.map(|b| Tracked::new(b, in_flight)))
                }
            })
        };
        match &tls {
            None => {
                let jobs = jobs.expect("made for plain connections");
                let io = Watched::new(SendfileIo::new(stream, jobs), activity, deadlines, None);
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
