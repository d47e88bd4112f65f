//! The operator's endpoints, behind `admin.token` (`Authorization: Bearer <token>`):
//! `/oauth/start` (begin linking an account), `GET /admin/accounts` (what is published) and
//! `DELETE /admin/accounts/<alias>` (unlink), `POST /admin/purge`, `GET /admin/cache`,
//! `GET /admin/feeds`, `GET|PUT /admin/log`, `GET /admin/sites`. `/oauth/callback` is open: the `state` Dropbox
//! hands back is its credential.

use super::oauth::{self as link, LinkError};
use crate::account::{Account, Origin};
use crate::app::App;
use crate::http::{Body, full, plain};
use crate::proxy::normalize::normalize;
use hyper::header::{
    AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, HeaderValue, LOCATION, WWW_AUTHENTICATE,
};
use hyper::http::request::Parts;
use hyper::{Method, Response, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::time::{Duration, UNIX_EPOCH};

/// The query's parameters.
fn query(parts: &Parts) -> Vec<(String, String)> {
    parts
        .uri
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

fn param<'q>(q: &'q [(String, String)], name: &str) -> Option<&'q str> {
    q.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// None when the request carries the admin token; else the answer to give.
///
/// SECURITY: compares digests, so the time taken says nothing about the token.
fn refuse(app: &App, parts: &Parts) -> Option<Response<Body>> {
    let Some(token) = &app.config.admin_token else {
        return Some(plain(
            StatusCode::FORBIDDEN,
            "the admin API is off: set admin.token (or DROPCACHE_ADMIN_TOKEN)\n",
        ));
    };
    let given = parts
        .headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if Sha256::digest(given.as_bytes()) == Sha256::digest(token.expose().as_bytes()) {
        return None;
    }
    let mut resp = plain(
        StatusCode::UNAUTHORIZED,
        "the admin token is missing or wrong\n",
    );
    resp.headers_mut()
        .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    Some(resp)
}

fn link_error(e: LinkError) -> Response<Body> {
    let status = match &e {
        LinkError::Off(_) | LinkError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
        LinkError::BadAlias(_)
        | LinkError::BadRoot(_)
        | LinkError::BadState(_)
        | LinkError::Denied(_) => StatusCode::BAD_REQUEST,
        LinkError::Configured(_) => StatusCode::CONFLICT,
        LinkError::Unknown(_) => StatusCode::NOT_FOUND,
        LinkError::NoRefreshToken | LinkError::Dropbox(_) => StatusCode::BAD_GATEWAY,
    };
    if status.is_server_error() {
        tracing::warn!(error = %e, "linking failed");
    }
    // SECURITY: LinkError's texts name settings, aliases and OAuth codes, never secrets.
    plain(status, format!("{e}\n"))
}

fn json_answer(status: StatusCode, value: &Value) -> Response<Body> {
    let mut resp = Response::new(full(
        serde_json::to_vec_pretty(value).expect("JSON serializes"),
    ));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        hyper::header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    resp
}

fn get_only(parts: &Parts) -> Option<Response<Body>> {
    (parts.method != Method::GET).then(|| plain(StatusCode::METHOD_NOT_ALLOWED, "GET only\n"))
}

/// `GET /oauth/start?alias=NAME[&root=/Folder][&redirect=none]` → 302 to Dropbox.
pub async fn oauth_start(app: &App, parts: &Parts) -> Response<Body> {
    if let Some(refused) = get_only(parts).or_else(|| refuse(app, parts)) {
        return refused;
    }
    let q = query(parts);
    let Some(alias) = param(&q, "alias") else {
        return plain(StatusCode::BAD_REQUEST, "alias=NAME is required\n");
    };
    let root = param(&q, "root").unwrap_or_default();
    let redirect = param(&q, "redirect") != Some("none");
    match link::start(app, alias, root, redirect).await {
        Ok(started) => {
            let mut resp = plain(
                StatusCode::FOUND,
                format!("continue at Dropbox: {}\n", started.authorize_url),
            );
            resp.headers_mut().insert(
                LOCATION,
                HeaderValue::from_str(&started.authorize_url).expect("an encoded URL"),
            );
            resp
        }
        Err(e) => link_error(e),
    }
}

/// `GET /oauth/callback?code=…&state=…` (or `error=…`): where Dropbox sends the owner back.
pub async fn oauth_callback(app: &App, parts: &Parts) -> Response<Body> {
    if let Some(refused) = get_only(parts) {
        return refused;
    }
    let q = query(parts);
    let Some(state) = param(&q, "state") else {
        return plain(StatusCode::BAD_REQUEST, "no state: start linking again\n");
    };
    match link::finish(app, state, param(&q, "code"), param(&q, "error")).await {
        Ok(account) => {
            let Origin::Linked(l) = &account.origin else {
                unreachable!("finish links")
            };
            plain(
                StatusCode::OK,
                format!(
                    "linked: /{}/ publishes {} of {} <{}>\n",
                    account.alias,
                    if account.root.is_empty() {
                        "everything"
                    } else {
                        &account.root
                    },
                    l.name,
                    l.email
                ),
            )
        }
        Err(e) => link_error(e),
    }
}

/// What the admin API shows of an account (no secrets).
pub fn describe(account: &Account) -> Value {
    let mut v = json!({
        "alias": account.alias,
        "root": account.root,
        "origin": match account.origin {
            Origin::Config => "config",
            Origin::Linked(_) => "linked",
            Origin::Link(_) => "shared_link",
        },
        "relink_required": account.tokens.needs_relink(),
    });
    if let Origin::Linked(l) = &account.origin {
        v["account_id"] = json!(l.account_id);
        v["name"] = json!(l.name);
        v["email"] = json!(l.email);
        v["linked_at"] = json!(crate::upstream::types::timestamp(
            UNIX_EPOCH + Duration::from_millis(l.linked_ms)
        ));
    }
    v
}

/// `/admin/accounts` and `/admin/accounts/<alias>`.
pub async fn accounts(app: &App, parts: &Parts) -> Response<Body> {
    if let Some(refused) = refuse(app, parts) {
        return refused;
    }
    let rest = parts.uri.path().trim_start_matches("/admin/accounts");
    match (&parts.method, rest.trim_start_matches('/')) {
        (&Method::GET, "") => {
            let list: Vec<Value> = app.accounts.all().iter().map(|a| describe(a)).collect();
            json_answer(StatusCode::OK, &json!(list))
        }
        (&Method::GET, alias) => match app.accounts.lookup(alias) {
            Some(a) => json_answer(StatusCode::OK, &describe(&a)),
            None => plain(StatusCode::NOT_FOUND, format!("no account {alias:?}\n")),
        },
        (&Method::DELETE, alias) if !alias.is_empty() => match link::unlink(app, alias).await {
            Ok(u) => json_answer(
                StatusCode::OK,
                &json!({
                    "alias": alias,
                    "unlinked": true,
                    "revoked": u.revoked.is_ok(),
                    "revoke_error": u.revoked.err().map(|e| e.to_string()),
                }),
            ),
            Err(e) => link_error(e),
        },
        _ => plain(
            StatusCode::METHOD_NOT_ALLOWED,
            "GET /admin/accounts[/ALIAS] or DELETE /admin/accounts/ALIAS\n",
        ),
    }
}

/// `POST /admin/purge`, `GET /admin/cache`, `GET /admin/feeds`, `GET|PUT /admin/log`.
pub async fn operate(app: &App, parts: &Parts) -> Response<Body> {
    if let Some(refused) = refuse(app, parts) {
        return refused;
    }
    let q = query(parts);
    match (parts.uri.path(), &parts.method) {
        ("/admin/purge", &Method::POST) => purge(app, &q).await,
        ("/admin/cache", &Method::GET) => {
            let (l1, l1_capacity) = app.meta.l1_len();
            let (soft, hard) = crate::app::open_files_limit();
            json_answer(
                StatusCode::OK,
                &json!({
                    "body": app.bodies.stats(),
                    "open_files_limit": {"soft": soft, "hard": hard},
                    "metadata": {
                        "l1_entries": l1,
                        "l1_capacity": l1_capacity,
                        "lookups": app.meta.lookups(),
                        "listening": app.meta.is_listening(),
                    },
                    "store": {"kind": app.store.kind(), "up": app.store.is_up().await},
                }),
            )
        }
        ("/admin/feeds", &Method::GET) => json_answer(
            StatusCode::OK,
            &json!({
                "enabled": app.config.feed.enabled,
                "feeds": app.feeds.reports(),
            }),
        ),
        ("/admin/sites", &Method::GET) => sites(app).await,
        ("/admin/log", &Method::GET) => log_level(app, None),
        ("/admin/log", &Method::PUT) => log_level(app, param(&q, "level")),
        _ => plain(
            StatusCode::NOT_FOUND,
            "the admin API: POST /admin/purge?account=A[&path=P|&prefix=P], GET /admin/cache, \
             GET /admin/feeds, GET|PUT /admin/log[?level=L], GET /admin/sites, /admin/accounts\n",
        ),
    }
}

/// Each site: where it answers, and what its `_redirects` and `_headers` came to (rules in
/// force, lines skipped with their numbers and why, a file that could not be read). The
/// files are read first if they changed (or were never read).
async fn sites(app: &App) -> Response<Body> {
    let mut out = Vec::new();
    for site in app.proxy.sites.all() {
        let c = &site.config;
        let files = match app.accounts.lookup(&c.account) {
            Some(account) => Some(app.proxy.site_files(site, &account).await),
            None => None,
        };
        let file = |rules: usize,
                    version: Option<&String>,
                    errors: &[crate::http::redirects::LineError],
                    name: &str| {
            json!({
                "present": version.is_some(),
                "rules": rules,
                "errors": errors,
                "unread": files.as_ref().and_then(|f| f.unread.iter().find(|(n, _)| *n == name).map(|(_, why)| why.clone())),
            })
        };
        out.push(json!({
            "name": c.name,
            "account": c.account,
            "account_known": files.is_some(),
            "folder": c.folder,
            "hosts": c.hosts,
            "path": c.path,
            "html_extension": format!("{:?}", c.html_extension).to_lowercase(),
            "redirects": files.as_ref().map(|f| file(f.redirects.rules.len(), f.redirects_version.as_ref(), &f.redirects.errors, "_redirects")),
            "headers": files.as_ref().map(|f| file(f.headers.rules.len(), f.headers_version.as_ref(), &f.headers.errors, "_headers")),
        }));
    }
    json_answer(
        StatusCode::OK,
        &json!({ "sites": out, "warm_on_change": &*app.proxy.warmer.stats }),
    )
}

/// Drops cached metadata (and the bodies it names) of one path, a path prefix, or a whole
/// account, here and, through pub/sub, on every instance's L1. The next request asks Dropbox.
async fn purge(app: &App, q: &[(String, String)]) -> Response<Body> {
    let Some(alias) = param(q, "account") else {
        return plain(
            StatusCode::BAD_REQUEST,
            "say which account: ?account=ALIAS[&path=/a/b.jpg | &prefix=/photos/]\n",
        );
    };
    let Some(account) = app.accounts.lookup(alias) else {
        return plain(StatusCode::NOT_FOUND, format!("no account {alias:?}\n"));
    };
    let (scope, given) = match (param(q, "path"), param(q, "prefix")) {
        (Some(_), Some(_)) => {
            return plain(StatusCode::BAD_REQUEST, "give path or prefix, not both\n");
        }
        (Some(p), None) => ("path", p),
        (None, Some(p)) => ("prefix", p),
        (None, None) => ("account", "/"),
    };
    // The same rules as a request's path (SECURITY: no `..`, no control characters).
    let lower = if given == "/" {
        String::new()
    } else {
        const RAW: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS.add(b'%');
        let encoded: String = percent_encoding::utf8_percent_encode(given, RAW).collect();
        match normalize(&format!("/{alias}{encoded}")) {
            Ok(t) if given.starts_with('/') => {
                if t.trailing_slash && scope == "prefix" {
                    format!("{}/", t.lower())
                } else {
                    t.lower().to_owned()
                }
            }
            Ok(_) => {
                return plain(
                    StatusCode::BAD_REQUEST,
                    format!("{scope} must start with '/'\n"),
                );
            }
            Err(e) => return plain(StatusCode::BAD_REQUEST, format!("{scope}: {e}\n")),
        }
    };
    let prefix = scope != "path";
    let purged = match app.meta.purge(&account, &lower, prefix).await {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(error = %e, "purge failed");
            return plain(
                StatusCode::SERVICE_UNAVAILABLE,
                "the store is unreachable; nothing was purged from it, try again\n",
            );
        }
    };
    let mut bodies = 0;
    for hash in &purged.hashes {
        if app.bodies.purge(hash).await {
            bodies += 1;
        }
    }
    let (keys, prefixes) = if prefix {
        (Vec::new(), vec![purged.key.clone()])
    } else {
        (vec![purged.key.clone()], Vec::new())
    };
    app.feeds.invalidate(alias, keys, prefixes).await;
    tracing::info!(
        account = alias,
        scope,
        entries = purged.keys.len(),
        bodies,
        "purged"
    );
    json_answer(
        StatusCode::OK,
        &json!({
            "account": alias,
            "scope": scope,
            "path": if scope == "account" { None } else { Some(given) },
            "entries": purged.keys.len(),
            "bodies": bodies,
        }),
    )
}

/// Reads or sets the running log level (until the next restart or SIGHUP).
fn log_level(app: &App, set: Option<&str>) -> Response<Body> {
    let Some(log) = app.log.get() else {
        return plain(
            StatusCode::SERVICE_UNAVAILABLE,
            "this process's logging is not under the proxy's control\n",
        );
    };
    if let Some(level) = set {
        if let Err(why) = log.set_level(level) {
            return plain(StatusCode::BAD_REQUEST, format!("level: {why}\n"));
        }
        tracing::warn!(level, "log level changed through the admin API");
    }
    json_answer(StatusCode::OK, &json!({ "level": log.level() }))
}
