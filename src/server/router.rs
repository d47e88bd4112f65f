//! The proxy's front door: the shell around every request. `handle` never fails: it opens the
//! request's span (with its id), routes, turns an error into its response exactly once, and
//! hands the body to `access::Metered`, which counts and logs the request once it is done.

use crate::account::sites::{Routed, Site};
use crate::app::App;
use crate::http::provenance::Provenance;
use crate::http::route::Route;
use crate::http::{Body, cors, plain, sendfile};
use crate::metrics::{AccountFigures, CacheFigures, FeedFigures, Snapshot};
use crate::proxy::ProxyError;
use crate::server::access;
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HOST, HeaderValue};
use hyper::http::request::Parts;
use hyper::{Method, Request, Response, StatusCode};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tracing::Instrument;

/// What the proxy listener's requests share: the app, the access log's settings, and whether
/// shutdown has begun (`/readyz` answers 503 while in-flight requests finish).
pub struct Front {
    pub app: Arc<App>,
    pub access: Arc<access::Log>,
    pub draining: AtomicBool,
}

/// Routes one request; every outcome is a response, with `X-Request-Id`, counted and logged
/// when its body is done. (A plain function returning the future: an `async fn` around
/// `instrument` would hold the request's future twice.)
pub fn handle(
    front: Arc<Front>,
    req: Request<Incoming>,
    client: super::Client,
) -> impl Future<Output = Response<access::Metered>> + Send {
    let (parts, body) = req.into_parts();
    // A site's host or prefix first (`[[site]]`); then the proxy's own namespace.
    let host = parts
        .headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .or(parts.uri.host());
    let (dest, route) = match front.app.proxy.sites.route(host, parts.uri.path()) {
        Routed::Site { site, prefix, rest } => (
            Dest::Site(site.clone(), prefix.to_owned(), rest.to_owned()),
            Route::Site,
        ),
        routed => {
            let route = match Route::of(parts.uri.path()) {
                // With a separate metrics listener, /metrics is not served here.
                Route::Metrics if front.app.config.metrics_listen.is_some() => Route::Published,
                route => route,
            };
            match routed {
                Routed::NotFound if matches!(route, Route::Published | Route::Link) => {
                    (Dest::NotFound, route)
                }
                _ => (Dest::Paths, route),
            }
        }
    };
    // Boxed from the start: the request's future holds it, and is moved whole more than once.
    let mut record = Box::new(access::Record::begin(
        front.access.clone(),
        route.template(),
        &parts,
        client.addr.ip(),
    ));
    let span = tracing::info_span!(
        "request",
        id = %record.id,
        method = %parts.method,
        route = route.template()
    );
    let answer = async move {
        // What the read path notes of the body, for the record.
        let noted = Provenance::default();
        // A site's or an account's CORS policy, if it has one: preflights are its own.
        let proxy = &front.app.proxy;
        let cors = match &dest {
            Dest::Site(site, ..) => site.config.cors.as_ref(),
            Dest::Paths if route == Route::Published && !proxy.cors.is_empty() => {
                let alias = parts.uri.path().split('/').nth(1).unwrap_or("");
                proxy.cors.get(alias)
            }
            _ => None,
        };
        let result = match (&dest, route) {
            (_, _) if cors.is_some() && parts.method == Method::OPTIONS => Ok(cors::options(
                cors.expect("checked just now"),
                &parts.headers,
            )),
            (Dest::NotFound, _) => Err(ProxyError::NotFound),
            (Dest::Site(site, prefix, rest), _) => {
                Box::pin(proxy.serve_site(&parts, site, prefix, rest, &noted)).await
            }
            (_, Route::Link | Route::Published) => proxy.serve(&parts, route, &noted).await,
            // Boxed: rare, and their futures would make every request's larger.
            (_, route) => Ok(Box::pin(other(&front, route, &parts, body)).await),
        };
        let mut resp = result.unwrap_or_else(|e: ProxyError| {
            if e.status().is_server_error() {
                tracing::warn!(error = %e, "request failed");
            }
            e.into_response()
        });
        if let Some(policy) = cors.filter(|_| parts.method != Method::OPTIONS) {
            cors::decorate(policy, &parts.headers, resp.headers_mut());
        }
        if let Ok(v) = HeaderValue::from_bytes(record.id.as_bytes()) {
            resp.headers_mut().insert(access::X_REQUEST_ID, v);
        }
        record.answered(&resp, &noted);
        // A blob's bytes go by sendfile, metered as any body.
        if let Some(jobs) = &client.sendfile {
            sendfile::take(&mut resp, jobs);
        }
        resp.map(|b| access::Metered::new(b, record))
    }
    .instrument(span);
    // Each request's future is moved whole, more than once: at 68 KiB, before the read path
    // boxed what a hit does not await, the copies were a tenth of a 304's time.
    debug_assert!(
        std::mem::size_of_val(&answer) <= FUTURE_BUDGET,
        "a request's future is {} bytes",
        std::mem::size_of_val(&answer)
    );
    answer
}

/// Where the router sends a request.
enum Dest {
    Site(Arc<Site>, String, String),
    Paths,
    /// A published path on a host no site claims (`sites.unknown_host = "not_found"`).
    NotFound,
}

/// The most a request's future may hold (checked in debug builds, so by every test).
const FUTURE_BUDGET: usize = 4 * 1024;

/// The routes other than the read path's.
async fn other(front: &Front, route: Route, parts: &Parts, body: Incoming) -> Response<Body> {
    let app = &front.app;
    match route {
        Route::Healthz => health("ok\n".into()),
        Route::Readyz => readiness(front).await,
        Route::Webhook => super::webhook::handle(app, parts, body).await,
        Route::Metrics => metrics(app).await,
        Route::OauthStart => super::admin::oauth_start(app, parts).await,
        Route::OauthCallback => super::admin::oauth_callback(app, parts).await,
        Route::AdminAccounts | Route::AdminAccount => super::admin::accounts(app, parts).await,
        Route::AdminPurge
        | Route::AdminCache
        | Route::AdminFeeds
        | Route::AdminLog
        | Route::AdminSites
        | Route::AdminUnknown => super::admin::operate(app, parts).await,
        // Served by `handle`; named so a new route is not forgotten here.
        Route::Link | Route::Published | Route::Site => ProxyError::NotFound.into_response(),
    }
}

/// Serves `/metrics` alone (the `metrics.listen` listener), with `/healthz` for probes.
pub async fn handle_metrics(app: Arc<App>, req: Request<Incoming>) -> Response<Body> {
    match req.uri().path() {
        "/metrics" => metrics(&app).await,
        "/healthz" => health("ok\n".into()),
        _ => plain(
            StatusCode::NOT_FOUND,
            "this listener serves /metrics only\n",
        ),
    }
}

/// `/readyz`. The app exists only once its store is open, its body index rebuilt and its
/// change feeds started, so a listening proxy is ready: 200 with each check on a line. It is
/// degraded (still 200: requests succeed from memory and disk) while Redis is unreachable or
/// other instances' invalidations are not arriving, unless `server.ready_requires_store`;
/// 503 once shutdown has begun, so a balancer stops sending new requests.
async fn readiness(front: &Front) -> Response<Body> {
    let app = &front.app;
    let store_up = app.store.is_up().await;
    let mut degraded = Vec::new();
    if !store_up {
        degraded.push("store unreachable: serving from memory and disk, reconnecting");
    }
    if !app.meta.is_listening() {
        degraded.push("not hearing other instances' invalidations: TTLs apply");
    }
    let draining = front.draining.load(Ordering::Relaxed);
    let ready = !draining && (store_up || !app.config.server.ready_requires_store);
    let mut text = match (ready, draining, degraded.is_empty()) {
        (false, true, _) => "not ready: shutting down\n".to_owned(),
        (false, false, _) => format!("not ready: {}\n", degraded.join("; ")),
        (true, _, true) => "ready\n".to_owned(),
        (true, _, false) => format!("ready, degraded: {}\n", degraded.join("; ")),
    };
    let (blobs, bytes) = app.bodies.usage();
    let feeds = app.feeds.reports();
    text.push_str(&format!(
        "store: {} {}\nbody cache: index loaded, {} blobs, {} of {}\nchange feeds: {}\n",
        app.store.kind(),
        if store_up { "reachable" } else { "unreachable" },
        blobs,
        bytesize::ByteSize::b(bytes).display().iec(),
        bytesize::ByteSize::b(app.config.cache.max_size)
            .display()
            .iec(),
        if app.config.feed.enabled {
            format!(
                "started, {} followed, {} live here",
                feeds.len(),
                feeds.iter().filter(|f| f.live).count()
            )
        } else {
            "off (feed.enabled = false): TTLs apply".to_owned()
        },
    ));
    let relink = app
        .accounts
        .all()
        .iter()
        .filter(|a| a.tokens.needs_relink())
        .map(|a| a.alias.clone())
        .collect::<Vec<_>>();
    if !relink.is_empty() {
        text.push_str(&format!(
            "accounts needing a re-link: {}\n",
            relink.join(", ")
        ));
    }
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    plain(status, text)
}

async fn metrics(app: &App) -> Response<Body> {
    let text = app.metrics.render(&snapshot(app).await);
    let mut resp = health(text);
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    resp
}

fn health(text: String) -> Response<Body> {
    plain(StatusCode::OK, text)
}

/// The figures `/metrics` renders, read now.
async fn snapshot(app: &App) -> Snapshot {
    let b = app.bodies.stats();
    let l = app.meta.lookups();
    Snapshot {
        accounts: app
            .accounts
            .all()
            .iter()
            .map(|a| AccountFigures {
                alias: a.alias.clone(),
                relink: a.tokens.needs_relink(),
                rate_limited_seconds: a
                    .tokens
                    .blocked_for()
                    .map_or(0, |d| d.as_secs_f64().ceil() as i64),
            })
            .collect(),
        feeds: app
            .feeds
            .reports()
            .into_iter()
            .map(|f| FeedFigures {
                account: f.account,
                live: f.live,
                lag_seconds: f.lag_seconds,
                resets: f.resets,
                webhook_pokes: f.webhook_pokes,
            })
            .collect(),
        listening: app.meta.is_listening(),
        store_up: app.store.is_up().await,
        cache: CacheFigures {
            bytes: b.bytes,
            max_bytes: b.max_bytes,
            entries: b.entries,
            evictions: b.evictions,
            memory_bytes: b.memory_bytes,
            fills_in_flight: b.fills_in_flight,
            coalesced_waiters: b.coalesced_waiters,
            sendfile_bytes: b.sendfile_bytes,
            disk_free_bytes: b.disk_free_bytes.unwrap_or(0),
            disk_size_bytes: b.disk_size_bytes.unwrap_or(0),
        },
        lookups: [l.l1, l.l2, l.dropbox],
        l1_entries: app.meta.l1_len().0,
    }
}
