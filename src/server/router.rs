//! The proxy's front door: the shell around every request. `handle` never fails: it opens the
//! request's span, routes, turns an error into its response exactly once, and logs once.

use crate::app::App;
use crate::proxy::{self, ProxyError};
use crate::server::{Body, plain};
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Request, Response, StatusCode};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;
use tracing::Instrument;

/// Routes one request; every outcome is a response.
pub async fn handle(app: Arc<App>, req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
    let started = Instant::now();
    let id = app.requests.fetch_add(1, Ordering::Relaxed) + 1;
    let (parts, body) = req.into_parts();
    let path = parts.uri.path();
    let route = match path {
        "/healthz" => "/healthz",
        "/readyz" => "/readyz",
        "/webhook" => "/webhook",
        "/metrics" => "/metrics",
        "/oauth/start" => "/oauth/start",
        "/oauth/callback" => "/oauth/callback",
        "/admin/accounts" => "/admin/accounts",
        p if p.starts_with("/admin/accounts/") => "/admin/accounts/{alias}",
        p if p.starts_with("/s/") => "/s/{link}/{path}",
        _ => "/{alias}/{path}",
    };
    let span = tracing::info_span!("request", id, method = %parts.method, route);
    async move {
        let result = match route {
            "/healthz" => Ok(health("ok\n".into())),
            "/readyz" => Ok(health(readiness(&app).await)),
            "/webhook" => Ok(super::webhook::handle(&app, &parts, body).await),
            "/metrics" => Ok(metrics(&app).await),
            "/oauth/start" => Ok(super::admin::oauth_start(&app, &parts).await),
            "/oauth/callback" => Ok(super::admin::oauth_callback(&app, &parts).await),
            "/admin/accounts" | "/admin/accounts/{alias}" => {
                Ok(super::admin::accounts(&app, &parts).await)
            }
            "/s/{link}/{path}" => proxy::serve_link(&app, &parts).await,
            _ => proxy::serve(&app, &parts).await,
        };
        let resp = result.unwrap_or_else(|e: ProxyError| {
            if e.status().is_server_error() {
                tracing::warn!(error = %e, "request failed");
            }
            e.into_response()
        });
        tracing::info!(
            %peer,
            path = parts.uri.path(),
            status = resp.status().as_u16(),
            cache = resp
                .headers()
                .get(proxy::respond::X_CACHE_STATUS)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-"),
            ms = started.elapsed().as_secs_f64() * 1000.0,
            "served"
        );
        resp
    }
    .instrument(span)
    .await
}

/// The app exists only once its stores are open and the body index is rebuilt, so it is
/// ready; it is degraded (still 200: requests succeed from memory and disk) while Redis is
/// unreachable or its invalidations are not arriving.
async fn readiness(app: &App) -> String {
    let mut degraded = Vec::new();
    if !app.store_up().await {
        degraded.push("store unreachable: serving from memory and disk, reconnecting");
    }
    if !app.meta.is_listening() {
        degraded.push("not hearing other instances' invalidations: TTLs apply");
    }
    let relink = app
        .accounts
        .all()
        .iter()
        .filter(|a| a.tokens.needs_relink())
        .map(|a| a.alias.clone())
        .collect::<Vec<_>>();
    let mut text = if degraded.is_empty() {
        "ready\n".to_owned()
    } else {
        format!("ready, degraded: {}\n", degraded.join("; "))
    };
    if !relink.is_empty() {
        text.push_str(&format!(
            "accounts needing a re-link: {}\n",
            relink.join(", ")
        ));
    }
    text
}

async fn metrics(app: &App) -> Response<Body> {
    let text = app
        .metrics
        .render(&app.accounts, &app.meta, app.store_up().await);
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
