//! The read path for `GET` / `HEAD /<alias>/<path>` (and `/s/<link>/<path>`), top to bottom:
//! method → normalize → account → metadata → (conditionals, ranges, body, respond in
//! `respond`).

pub mod error;
pub mod link;
pub mod listing;
pub mod normalize;
pub mod respond;
pub mod thumb;

use crate::account::Account;
use crate::app::App;
use crate::http::Body;
use crate::http::provenance;
use crate::meta::{Source, State};
pub use error::ProxyError;
use hyper::http::request::Parts;
use hyper::{Method, Response, StatusCode};
use normalize::Target;
use respond::Served;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Serves one request for a published path.
pub async fn serve(app: &App, req: &Parts) -> Result<Response<Body>, ProxyError> {
    // 1. method
    if req.method != Method::GET && req.method != Method::HEAD {
        return Err(ProxyError::Method);
    }
    // 2. normalize (SECURITY: the only way from a URL to a Dropbox path)
    let target = normalize::normalize(req.uri.path())?;
    // 3. account: unknown → 404 before anything reaches Dropbox
    let account = app
        .accounts
        .lookup(&target.alias)
        .ok_or(ProxyError::UnknownAccount)?;
    serve_at(app, req, &account, &target).await
}

/// Serves `GET` / `HEAD /s/<link>/<path>`: a shared link, like an account rooted at it.
pub async fn serve_link(app: &App, req: &Parts) -> Result<Response<Body>, ProxyError> {
    if req.method != Method::GET && req.method != Method::HEAD {
        return Err(ProxyError::Method);
    }
    let (segment, target) = link::target(req.uri.path())?;
    let (account, by_url) = app.links.resolve(segment).ok_or(ProxyError::NotFound)?;
    let mut resp = serve_at(app, req, &account, &target).await?;
    if by_url {
        // SECURITY: a stranger's HTML or SVG must not run as the operator's origin.
        resp.headers_mut().insert(
            hyper::header::CONTENT_SECURITY_POLICY,
            hyper::header::HeaderValue::from_static("sandbox"),
        );
    }
    Ok(resp)
}

/// Steps 4–7 for a checked target of a known account (or link).
async fn serve_at(
    app: &App,
    req: &Parts,
    account: &Arc<Account>,
    target: &Target,
) -> Result<Response<Body>, ProxyError> {
    let path = account.dropbox_path(&target.display);
    let thumb = thumb::spec(req.uri.query())?;
    // 4. metadata; a download that meets another version starts once more from it
    let mut retried = false;
    let mut waited = Duration::ZERO;
    loop {
        let asked = Instant::now();
        let generation = account.feed.generation();
        let looked = app
            .meta
            .lookup(account, &target.display, &target.lower)
            .await?;
        if !matches!(looked.source, Source::Cache | Source::Updating) {
            waited += asked.elapsed();
        }
        let done = |mut resp: Response<Body>| {
            if !waited.is_zero() {
                provenance::add_upstream(&mut resp, waited);
            }
            resp
        };
        let f = match &looked.entry.state {
            State::Missing => return Err(ProxyError::NotFound),
            State::Folder(_) if thumb.is_some() => {
                return Err(ProxyError::BadThumb(
                    "thumbnails are of files, not folders".into(),
                ));
            }
            State::Folder(listing) if account.link().is_some() => {
                return Ok(done(respond::link_folder(
                    app,
                    req,
                    &target.display,
                    listing,
                    looked.source,
                )));
            }
            State::Folder(listing) => {
                return Ok(done(respond::folder(
                    app,
                    req,
                    account,
                    listing,
                    looked.source,
                )));
            }
            State::File(_) if target.trailing_slash => return Err(ProxyError::NotFound),
            State::File(f) => f,
        };
        // 5–7. conditionals, ranges, body (or the thumbnail asked for)
        let served = match &thumb {
            Some(spec) => thumb::serve(app, req, account, &path, f, spec).await?,
            None => {
                // SECURITY: whether this account has had these bytes before; a blob another
                // account brought answers its first request as a MISS all the same.
                let blob = || crate::body::blob_name(account, &path, f);
                let known = looked.entry.body_used.get()
                    || blob().is_some_and(|b| account.used.contains(&b));
                let served =
                    respond::file(app, req, account, &path, f, looked.source, known).await?;
                let body_sent = matches!(&served, Served::Done(r)
                    if req.method == Method::GET
                        && matches!(r.status(), StatusCode::OK | StatusCode::PARTIAL_CONTENT));
                if body_sent && looked.entry.body_used.first() {
                    if let Some(b) = blob() {
                        account.used.insert(&b);
                    }
                    app.meta
                        .keep_used(account, &target.lower, looked.entry.clone(), generation);
                }
                served
            }
        };
        match served {
            Served::Done(resp) => return Ok(done(resp)),
            Served::Changed(_) if retried => return Err(ProxyError::Changing),
            Served::Changed(Some(newer)) => {
                app.meta.record_file(account, &target.lower, newer).await;
            }
            Served::Changed(None) => app.meta.forget(account, &target.lower).await,
        }
        retried = true;
    }
}
