//! The typed Dropbox client: RPC and content-download calls with `Dropbox-API-Arg` escaping,
//! errors mapped from Dropbox's shapes, retries (backoff for 5xx / transport, Retry-After for
//! 429 within a budget), and tokens refreshed ahead of expiry and on `expired_access_token`,
//! once per account however many calls notice.
//!
//! The governor: after a 429 an account makes no call at all until its Retry-After has passed
//! (callers within their budget wait, the others get `RateLimited` at once), and calls in flight
//! are capped per account and overall (a download's permits cover its request, not the body's
//! transfer, so a client that stops reading cannot hold an account's calls up). An
//! account whose refresh token is refused (`invalid_grant`) needs re-linking: its calls fail
//! with `Relink` at once, with no retry storm against the token endpoint.

use super::error::{UpstreamError, redact};
use super::json::to_header_safe;
use super::retry::RetryPolicy;
use super::transport::{HttpClient, TimeoutBody};
use super::types::{
    ApiErrorBody, FileMetadata, LinkArg, ListFolderResult, LongpollResult, Metadata,
    SharedLinkMetadata, TokenResponse,
};
use crate::secret::Secret;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue, RANGE, RETRY_AFTER, USER_AGENT};
use hyper::{Method, Request, Response, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

const UA: &str = concat!("dropcache/", env!("CARGO_PKG_VERSION"));
/// Largest RPC answer we read (listings of 2,000 entries fit easily).
const MAX_RPC_ANSWER: usize = 32 * 1024 * 1024;

pub use crate::config::Endpoints;

/// What lets an account's tokens be refreshed.
#[derive(Debug, Clone)]
pub struct RefreshGrant {
    pub refresh_token: Secret<String>,
    pub app_key: String,
    /// None for refresh tokens from a PKCE flow.
    pub app_secret: Option<Secret<String>>,
}

/// An access token and, when Dropbox said, when it expires and when to refresh it.
#[derive(Debug, Clone)]
struct Access {
    token: Secret<String>,
    expires: Option<Instant>,
    /// `refresh_ahead` before expiry, but never earlier than half its lifetime (so short
    /// lifetimes do not turn every call into a refresh).
    refresh_at: Option<Instant>,
}

/// An account's current access token, how to get a new one, and its call governor.
#[derive(Debug)]
pub struct TokenSet {
    access: RwLock<Option<Access>>,
    refresh: Option<RefreshGrant>,
    refreshing: tokio::sync::Mutex<()>,
    /// The refresh token was refused: nothing works until the account is linked again.
    relink: AtomicBool,
    /// No call to Dropbox before this (a 429's Retry-After).
    blocked_until: Mutex<Option<Instant>>,
    /// Calls in flight for this account.
    calls: Arc<Semaphore>,
    /// `Bearer` (a user's token) or `Basic` (the app's key and secret).
    scheme: &'static str,
}

/// After a failed refresh ahead of expiry, the next try waits this long (or until expiry).
const RETRY_REFRESH: Duration = Duration::from_secs(60);

/// Unbounded enough for a `TokenSet` built without a cap.
const UNCAPPED: usize = Semaphore::MAX_PERMITS;

impl TokenSet {
    pub fn new(access: Option<Secret<String>>, refresh: Option<RefreshGrant>) -> Self {
        TokenSet {
            access: RwLock::new(access.map(|token| Access {
                token,
                expires: None,
                refresh_at: None,
            })),
            refresh,
            refreshing: tokio::sync::Mutex::new(()),
            relink: AtomicBool::new(false),
            blocked_until: Mutex::new(None),
            calls: Arc::new(Semaphore::new(UNCAPPED)),
            scheme: "Bearer",
        }
    }

    /// App authentication (`Basic base64(key:secret)`), for the routes that take it: shared
    /// links' metadata, folders, files and thumbnails (reference §4.4).
    pub fn app(key: &str, secret: &Secret<String>) -> Self {
        use base64::Engine;
        let basic =
            base64::engine::general_purpose::STANDARD.encode(format!("{key}:{}", secret.expose()));
        TokenSet {
            scheme: "Basic",
            ..TokenSet::new(Some(Secret::new(basic)), None)
        }
    }

    /// The `Authorization` value for `token`.
    fn authorization(&self, token: &Secret<String>) -> String {
        format!("{} {}", self.scheme, token.expose())
    }

    /// Tokens that cannot work (a refresh token that does not unseal): every call answers
    /// `Relink` until the account is linked again.
    pub fn needing_relink() -> Self {
        let tokens = TokenSet::new(None, None);
        tokens.relink.store(true, Ordering::Relaxed);
        tokens
    }

    /// Caps this account's Dropbox calls in flight.
    pub fn with_max_concurrent(mut self, calls: usize) -> Self {
        self.calls = Arc::new(Semaphore::new(calls.clamp(1, UNCAPPED)));
        self
    }

    /// Whether a refresh grant is configured.
    pub fn has_refresh(&self) -> bool {
        self.refresh.is_some()
    }

    /// The refresh token was refused (`invalid_grant`): the account must be linked again.
    pub fn needs_relink(&self) -> bool {
        self.relink.load(Ordering::Relaxed)
    }

    /// Whether the access token is due a refresh ahead of its expiry (or past it): the next
    /// call refreshes it.
    pub fn refresh_due(&self) -> bool {
        self.current()
            .and_then(|a| a.refresh_at.or(a.expires))
            .is_some_and(|at| Instant::now() >= at)
    }

    /// How long until Dropbox may be called again for this account, if it asked us to wait.
    pub fn blocked_for(&self) -> Option<Duration> {
        let until = (*self.blocked_until.lock().unwrap_or_else(|p| p.into_inner()))?;
        let left = until.saturating_duration_since(Instant::now());
        (!left.is_zero()).then_some(left)
    }

    fn block(&self, wait: Duration) {
        let until = Instant::now() + wait;
        let mut b = self.blocked_until.lock().unwrap_or_else(|p| p.into_inner());
        if b.is_none_or(|old| old < until) {
            *b = Some(until);
        }
    }

    fn current(&self) -> Option<Access> {
        self.access
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// The permits a call holds while in flight: the account's and the overall one.
#[derive(Debug)]
struct Permits {
    _account: OwnedSemaphorePermit,
    _all: OwnedSemaphorePermit,
}

/// A started download: metadata from `Dropbox-API-Result`, and the streaming body.
pub struct Download {
    pub metadata: FileMetadata,
    pub status: StatusCode,
    pub content_range: Option<String>,
    pub content_length: Option<u64>,
    pub body: TimeoutBody,
}

/// One client for every account; cheap to share behind an `Arc`.
pub struct Dropbox {
    http: HttpClient,
    endpoints: Endpoints,
    policy: RetryPolicy,
    read_timeout: Duration,
    /// Calls in flight overall.
    calls: Arc<Semaphore>,
    /// Tokens expiring sooner than this are refreshed before use.
    refresh_ahead: Duration,
    metrics: crate::metrics::Upstream,
}

impl Dropbox {
    pub fn new(
        http: HttpClient,
        endpoints: Endpoints,
        policy: RetryPolicy,
        read_timeout: Duration,
    ) -> Self {
        Dropbox {
            http,
            endpoints,
            policy,
            read_timeout,
            calls: Arc::new(Semaphore::new(UNCAPPED)),
            refresh_ahead: Duration::from_secs(300),
            metrics: Default::default(),
        }
    }

    /// Counts calls into `metrics` (an `App`'s registry).
    pub fn with_metrics(mut self, metrics: crate::metrics::Upstream) -> Self {
        self.metrics = metrics;
        self
    }

    /// Caps the calls in flight overall, and sets how early tokens are refreshed.
    pub fn with_limits(mut self, max_concurrent: usize, refresh_ahead: Duration) -> Self {
        self.calls = Arc::new(Semaphore::new(max_concurrent.clamp(1, UNCAPPED)));
        self.refresh_ahead = refresh_ahead;
        self
    }

    /// `files/list_folder/get_latest_cursor`: a cursor for "now" over `path`.
    pub async fn get_latest_cursor(
        &self,
        auth: &TokenSet,
        path: &str,
        recursive: bool,
    ) -> Result<String, UpstreamError> {
        #[derive(serde::Deserialize)]
        struct Latest {
            cursor: String,
        }
        let latest: Latest = self
            .rpc(
                auth,
                "files/list_folder/get_latest_cursor",
                &json!({"path": path, "recursive": recursive}),
            )
            .await?;
        Ok(latest.cursor)
    }

    /// The account's Dropbox id (`users/get_current_account`), which webhooks name.
    pub async fn account_id(&self, auth: &TokenSet) -> Result<String, UpstreamError> {
        Ok(self.current_account(auth).await?.account_id)
    }

    /// `files/list_folder/longpoll` on the notify host: no Authorization, no governor (it
    /// waits rather than works), and a deadline of `timeout` + Dropbox's 90 s jitter.
    pub async fn longpoll(
        &self,
        cursor: &str,
        timeout: Duration,
    ) -> Result<LongpollResult, UpstreamError> {
        let url = format!("{}/2/files/list_folder/longpoll", self.endpoints.notify);
        let arg = json!({"cursor": cursor, "timeout": timeout.as_secs()});
        let req = Request::builder()
            .method(Method::POST)
            .uri(url)
            .header(CONTENT_TYPE, "application/json")
            .header(USER_AGENT, UA)
            .body(Full::new(Bytes::from(to_header_safe(&arg))))
            .map_err(UpstreamError::Request)?;
        let deadline = timeout + Duration::from_secs(90) + self.read_timeout;
        let resp = self.send_within(req, deadline).await?;
        let bytes = self.read_all(resp).await?;
        serde_json::from_slice(&bytes).map_err(UpstreamError::Decode)
    }

    pub async fn get_metadata(
        &self,
        auth: &TokenSet,
        path: &str,
    ) -> Result<Metadata, UpstreamError> {
        self.rpc(auth, "files/get_metadata", &json!({ "path": path }))
            .await
    }

    pub async fn list_folder(
        &self,
        auth: &TokenSet,
        path: &str,
        recursive: bool,
    ) -> Result<ListFolderResult, UpstreamError> {
        self.rpc(
            auth,
            "files/list_folder",
            &json!({"path": path, "recursive": recursive}),
        )
        .await
    }

    pub async fn list_folder_continue(
        &self,
        auth: &TokenSet,
        cursor: &str,
    ) -> Result<ListFolderResult, UpstreamError> {
        self.rpc(
            auth,
            "files/list_folder/continue",
            &json!({ "cursor": cursor }),
        )
        .await
    }

    /// An RPC call on the api host.
    pub async fn rpc<T: DeserializeOwned>(
        &self,
        auth: &TokenSet,
        route: &str,
        arg: &Value,
    ) -> Result<T, UpstreamError> {
        let url = format!("{}/2/{route}", self.endpoints.api);
        let body = Bytes::from(to_header_safe(arg));
        self.with_retries(auth, |token, permits| {
            let req = Request::builder()
                .method(Method::POST)
                .uri(&url)
                .header(AUTHORIZATION, auth.authorization(&token))
                .header(CONTENT_TYPE, "application/json")
                .header(USER_AGENT, UA)
                .body(Full::new(body.clone()));
            async move {
                let resp = self.send(req.map_err(UpstreamError::Request)?).await?;
                let bytes = self.read_all(resp).await?;
                drop(permits);
                serde_json::from_slice(&bytes).map_err(UpstreamError::Decode)
            }
        })
        .await
    }

    /// `files/download`, optionally with a Range header passed through.
    pub async fn download(
        &self,
        auth: &TokenSet,
        path: &str,
        range: Option<&str>,
    ) -> Result<Download, UpstreamError> {
        self.content(
            auth,
            "files/download",
            &json!({ "path": path }),
            range,
            |result| serde_json::from_slice::<FileMetadata>(result),
        )
        .await
    }

    /// `sharing/get_shared_link_file`: a shared link's file (or a file inside a folder link),
    /// with app auth. Its result has no content hash.
    pub async fn shared_link_file(
        &self,
        auth: &TokenSet,
        link: &LinkArg<'_>,
        range: Option<&str>,
    ) -> Result<Download, UpstreamError> {
        let arg = link.arg();
        self.content(
            auth,
            "sharing/get_shared_link_file",
            &arg,
            range,
            |result| serde_json::from_slice::<SharedLinkMetadata>(result).map(|m| m.file()),
        )
        .await
    }

    /// `files/get_thumbnail_v2` of `resource` (a path, or a link with app auth): the image's
    /// bytes, and the `PreviewResult` (what it was made of) from `Dropbox-API-Result`.
    /// Thumbnails are small; more than `MAX_RPC_ANSWER` is refused.
    pub async fn thumbnail(
        &self,
        auth: &TokenSet,
        resource: Value,
        size: &str,
        format: &str,
        mode: &str,
    ) -> Result<(Bytes, Value), UpstreamError> {
        let url = format!("{}/2/files/get_thumbnail_v2", self.endpoints.content);
        let arg = to_header_safe(&json!({
            "resource": resource,
            "size": {".tag": size},
            "format": {".tag": format},
            "mode": {".tag": mode},
        }));
        self.with_retries(auth, |token, permits| {
            let req = Request::builder()
                .method(Method::POST)
                .uri(&url)
                .header(AUTHORIZATION, auth.authorization(&token))
                .header("Dropbox-API-Arg", arg.as_str())
                .header(USER_AGENT, UA)
                .body(Full::default());
            async move {
                let resp = self.send(req.map_err(UpstreamError::Request)?).await?;
                let made_of = resp
                    .headers()
                    .get("dropbox-api-result")
                    .and_then(|v| serde_json::from_slice(v.as_bytes()).ok())
                    .unwrap_or(Value::Null);
                let bytes = self.read_all(resp).await?;
                drop(permits);
                Ok((bytes, made_of))
            }
        })
        .await
    }

    /// `sharing/get_shared_link_metadata`.
    pub async fn shared_link_metadata(
        &self,
        auth: &TokenSet,
        link: &LinkArg<'_>,
    ) -> Result<SharedLinkMetadata, UpstreamError> {
        self.rpc(auth, "sharing/get_shared_link_metadata", &link.arg())
            .await
    }

    /// `files/list_folder` of a folder link (`path` relative to it; non-recursive only).
    pub async fn list_link_folder(
        &self,
        auth: &TokenSet,
        link: &LinkArg<'_>,
    ) -> Result<ListFolderResult, UpstreamError> {
        let mut shared = json!({ "url": link.url });
        if let Some(p) = link.password {
            shared["password"] = json!(p);
        }
        self.rpc(
            auth,
            "files/list_folder",
            &json!({"path": link.path, "shared_link": shared}),
        )
        .await
    }

    /// A content-download call: the argument in `Dropbox-API-Arg`, the result (read by
    /// `result`) in `Dropbox-API-Result`, the body streamed.
    async fn content(
        &self,
        auth: &TokenSet,
        route: &str,
        arg: &Value,
        range: Option<&str>,
        result: impl Fn(&[u8]) -> Result<FileMetadata, serde_json::Error>,
    ) -> Result<Download, UpstreamError> {
        let url = format!("{}/2/{route}", self.endpoints.content);
        let arg = to_header_safe(arg);
        let result = &result;
        self.with_retries(auth, |token, permits| {
            let mut req = Request::builder()
                .method(Method::POST)
                .uri(&url)
                .header(AUTHORIZATION, auth.authorization(&token))
                .header("Dropbox-API-Arg", arg.as_str())
                .header(USER_AGENT, UA);
            if let Some(r) = range {
                req = req.header(RANGE, r);
            }
            let req = req.body(Full::default());
            async move {
                let resp = self.send(req.map_err(UpstreamError::Request)?).await?;
                drop(permits);
                let raw = resp
                    .headers()
                    .get("dropbox-api-result")
                    .map(|v| v.as_bytes().to_vec())
                    .unwrap_or_default();
                let metadata = result(&raw).map_err(UpstreamError::Decode)?;
                let header = |name| {
                    resp.headers()
                        .get(name)
                        .and_then(|v: &HeaderValue| v.to_str().ok())
                };
                let content_range = header(hyper::header::CONTENT_RANGE).map(str::to_owned);
                let content_length =
                    header(hyper::header::CONTENT_LENGTH).and_then(|v| v.parse().ok());
                let status = resp.status();
                Ok(Download {
                    metadata,
                    status,
                    content_range,
                    content_length,
                    // The permits cover the call, not the body's transfer: a client that stops
                    // reading must not hold the account's calls up.
                    body: TimeoutBody::new(resp.into_body(), self.read_timeout),
                })
            }
        })
        .await
    }

    /// Sends; answers 2xx (and 206) as they are, maps everything else to an error.
    async fn send(&self, req: Request<Full<Bytes>>) -> Result<Response<Incoming>, UpstreamError> {
        self.send_within(req, self.read_timeout).await
    }

    /// `send`, waiting up to `limit` for the answer's head.
    async fn send_within(
        &self,
        req: Request<Full<Bytes>>,
        limit: Duration,
    ) -> Result<Response<Incoming>, UpstreamError> {
        let endpoint = endpoint_of(req.uri().path()).to_owned();
        let started = Instant::now();
        let answered = async {
            let resp = tokio::time::timeout(limit, self.http.request(req))
                .await
                .map_err(|_| UpstreamError::Timeout(limit))?
                .map_err(UpstreamError::Transport)?;
            if resp.status().is_success() {
                return Ok(resp);
            }
            Err(self.error_from(resp).await)
        }
        .await;
        let outcome = answered
            .as_ref()
            .map_or_else(UpstreamError::outcome, |_| "ok");
        self.metrics.call(&endpoint, outcome, started.elapsed());
        answered
    }

    async fn read_all(&self, resp: Response<Incoming>) -> Result<Bytes, UpstreamError> {
        let body = Limited::new(
            TimeoutBody::new(resp.into_body(), self.read_timeout),
            MAX_RPC_ANSWER,
        );
        body.collect().await.map(|c| c.to_bytes()).map_err(|e| {
            match e.downcast::<UpstreamError>() {
                Ok(up) => *up,
                Err(other) => UpstreamError::BadRequest(format!("answer too large: {other}")),
            }
        })
    }

    /// Maps a non-2xx answer from Dropbox's error shapes (reference §1.6).
    async fn error_from(&self, resp: Response<Incoming>) -> UpstreamError {
        let status = resp.status();
        let retry_header = resp
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let body = self.read_all(resp).await.unwrap_or_default();
        let parsed: Option<ApiErrorBody> = serde_json::from_slice(&body).ok();
        match status.as_u16() {
            // SECURITY: a 400's text can echo what was sent (the Authorization header, a link's
            // key): only its redacted form is kept, for logs.
            400 => UpstreamError::BadRequest(redact(&String::from_utf8_lossy(
                &body[..body.len().min(300)],
            ))),
            401 => UpstreamError::Auth {
                tag: parsed
                    .and_then(|p| p.tags().into_iter().next())
                    .unwrap_or_else(|| "other".into()),
            },
            409 => {
                let Some(p) = parsed else {
                    return UpstreamError::Route {
                        summary: "unparseable 409".into(),
                    };
                };
                let tags = p.tags();
                let tags: Vec<&str> = tags.iter().map(String::as_str).collect();
                match tags.as_slice() {
                    ["reset", ..] => UpstreamError::Reset,
                    [_, "not_found", ..] => UpstreamError::NotFound,
                    [_, "not_file", ..] => UpstreamError::NotFile,
                    [_, "not_folder", ..] => UpstreamError::NotFolder,
                    [_, "malformed_path", ..] => UpstreamError::MalformedPath,
                    ["shared_link_not_found" | "not_found", ..] => UpstreamError::NotFound,
                    ["shared_link_is_directory", ..] => UpstreamError::NotFile,
                    [
                        "unsupported_extension" | "unsupported_image" | "conversion_error",
                        ..,
                    ] => UpstreamError::Unsupported,
                    ["shared_link_access_denied" | "access_denied", ..] => {
                        UpstreamError::AccessDenied
                    }
                    _ => UpstreamError::Route {
                        summary: p.error_summary,
                    },
                }
            }
            429 => {
                let json_wait =
                    parsed.and_then(|p| p.error.get("retry_after").and_then(Value::as_u64));
                // Never "0": a retry at once would be a hot loop.
                let secs = retry_header.or(json_wait).unwrap_or(1).max(1);
                UpstreamError::RateLimited {
                    retry_after: Duration::from_secs(secs),
                }
            }
            500..=599 => UpstreamError::Server {
                status: status.as_u16(),
            },
            other => UpstreamError::Unexpected { status: other },
        }
    }

    /// Runs `op` with the current token, retrying as the error says, refreshing once.
    async fn with_retries<T, F, Fut>(&self, auth: &TokenSet, mut op: F) -> Result<T, UpstreamError>
    where
        F: FnMut(Secret<String>, Permits) -> Fut,
        Fut: Future<Output = Result<T, UpstreamError>>,
    {
        let mut attempt = 0;
        let mut waited = Duration::ZERO;
        let mut refreshed = false;
        loop {
            if auth.needs_relink() {
                return Err(UpstreamError::Relink);
            }
            // The governor: nothing goes out while the account is told to wait.
            if let Some(left) = auth.blocked_for() {
                if waited + left > self.policy.rate_limit_budget {
                    return Err(UpstreamError::RateLimited { retry_after: left });
                }
                waited += left;
                tokio::time::sleep(left).await;
                self.metrics.waited(left);
                continue;
            }
            let token = self.token(auth, &mut refreshed).await?;
            let permits = self.permits(auth).await?;
            match op(token.clone(), permits).await {
                Ok(v) => return Ok(v),
                Err(UpstreamError::Auth { tag })
                    if tag == "expired_access_token" && !refreshed && auth.refresh.is_some() =>
                {
                    refreshed = true;
                    self.refresh(auth, Some(&token)).await?;
                }
                Err(e) => {
                    if let Some(after) = e.retry_after() {
                        auth.block(after);
                        if waited + after <= self.policy.rate_limit_budget {
                            tracing::debug!(?after, "waiting out a Dropbox 429");
                            self.metrics.retry();
                            continue;
                        }
                        return Err(e);
                    }
                    if !(e.is_retryable() && attempt < self.policy.max_retries) {
                        return Err(e);
                    }
                    attempt += 1;
                    self.metrics.retry();
                    let wait = self.policy.backoff(attempt - 1);
                    tracing::debug!(error = %e, ?wait, "retrying a Dropbox call");
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    /// A token to use now: refreshed first when there is none or it has expired; refreshed by
    /// one caller when it expires within `refresh_ahead` (the others keep using it meanwhile).
    async fn token(
        &self,
        auth: &TokenSet,
        refreshed: &mut bool,
    ) -> Result<Secret<String>, UpstreamError> {
        let Some(current) = auth.current() else {
            *refreshed = true;
            return self.refresh(auth, None).await;
        };
        let (Some(expires), Some(refresh_at)) = (current.expires, current.refresh_at) else {
            return Ok(current.token);
        };
        let now = Instant::now();
        if expires <= now {
            *refreshed = true;
            return self.refresh(auth, Some(&current.token)).await;
        }
        if now < refresh_at {
            return Ok(current.token);
        }
        // Expiring soon: whoever gets the lock refreshes; a failure other than a refused grant
        // leaves the still-valid token in use.
        let Ok(guard) = auth.refreshing.try_lock() else {
            return Ok(current.token);
        };
        drop(guard);
        match self.refresh(auth, Some(&current.token)).await {
            Ok(t) => Ok(t),
            Err(UpstreamError::Relink) => Err(UpstreamError::Relink),
            Err(e) => {
                tracing::warn!(error = %e, "cannot refresh an expiring token ahead of time");
                // Try again in a while, not on every call.
                let mut access = auth.access.write().unwrap_or_else(|p| p.into_inner());
                if let Some(a) = access.as_mut().filter(|a| a.token == current.token) {
                    a.refresh_at = Some((now + RETRY_REFRESH).min(expires));
                }
                Ok(current.token)
            }
        }
    }

    /// Waits for room under the per-account and overall caps, up to `read_timeout`.
    async fn permits(&self, auth: &TokenSet) -> Result<Permits, UpstreamError> {
        let both = async {
            let account = auth.calls.clone().acquire_owned().await;
            let all = self.calls.clone().acquire_owned().await;
            (account, all)
        };
        match tokio::time::timeout(self.read_timeout, both).await {
            Ok((Ok(account), Ok(all))) => Ok(Permits {
                _account: account,
                _all: all,
            }),
            // The semaphores are never closed; a timeout is Dropbox being too busy for us.
            _ => Err(UpstreamError::Timeout(self.read_timeout)),
        }
    }

    /// Gets a new access token with the refresh grant, once for concurrent callers: whoever
    /// finds the token already changed since `failed` uses the new one.
    async fn refresh(
        &self,
        auth: &TokenSet,
        failed: Option<&Secret<String>>,
    ) -> Result<Secret<String>, UpstreamError> {
        let grant = auth
            .refresh
            .as_ref()
            .ok_or_else(|| UpstreamError::Token("no access token and no refresh token".into()))?;
        let _guard = auth.refreshing.lock().await;
        if auth.needs_relink() {
            return Err(UpstreamError::Relink);
        }
        if let Some(current) = auth.current()
            && failed.is_none_or(|f| f != &current.token)
        {
            return Ok(current.token);
        }
        // The serializer is not Send: finish it before any await.
        let form = {
            let mut form = form_urlencoded::Serializer::new(String::new());
            form.append_pair("grant_type", "refresh_token")
                .append_pair("refresh_token", grant.refresh_token.expose())
                .append_pair("client_id", &grant.app_key);
            if let Some(secret) = &grant.app_secret {
                form.append_pair("client_secret", secret.expose());
            }
            form.finish()
        };
        let asked = Instant::now();
        let token = match self.token_call(form).await {
            Err(UpstreamError::Token(code)) if code == "invalid_grant" => {
                self.metrics.refresh("refused");
                auth.relink.store(true, Ordering::Relaxed);
                tracing::error!(
                    "Dropbox refused the account's refresh token (invalid_grant): \
                     the account must be linked again; its requests answer 503 until then"
                );
                return Err(UpstreamError::Relink);
            }
            Err(e) => {
                self.metrics.refresh("failed");
                return Err(e);
            }
            Ok(token) => token,
        };
        self.metrics.refresh("ok");
        let new = Secret::new(token.access_token);
        let life = Duration::from_secs(token.expires_in);
        let early = self.refresh_ahead.min(life / 2);
        *auth.access.write().unwrap_or_else(|p| p.into_inner()) = Some(Access {
            token: new.clone(),
            expires: Some(asked + life),
            refresh_at: Some(asked + life - early),
        });
        tracing::info!(expires_in = ?token.expires_in, "refreshed a Dropbox access token");
        Ok(new)
    }
}

impl Dropbox {
    /// `POST /oauth2/token` with a form; a refusal is `Token(<OAuth error code>)`.
    ///
    /// SECURITY: the form holds secrets; errors carry Dropbox's error code only.
    async fn token_call(&self, form: String) -> Result<TokenResponse, UpstreamError> {
        let req = Request::builder()
            .method(Method::POST)
            .uri(format!("{}/oauth2/token", self.endpoints.oauth))
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(USER_AGENT, UA)
            .body(Full::new(Bytes::from(form)))
            .map_err(UpstreamError::Request)?;
        let started = Instant::now();
        let sent = tokio::time::timeout(self.read_timeout, self.http.request(req))
            .await
            .map_err(|_| UpstreamError::Timeout(self.read_timeout))
            .and_then(|r| r.map_err(UpstreamError::Transport));
        let outcome = match &sent {
            Ok(r) if r.status().is_success() => "ok",
            Ok(r) if r.status() == StatusCode::TOO_MANY_REQUESTS => "rate_limited",
            Ok(r) if r.status().is_server_error() => "server_error",
            Ok(_) => "auth_error",
            Err(e) => e.outcome(),
        };
        self.metrics
            .call("oauth2/token", outcome, started.elapsed());
        let resp = sent?;
        let status = resp.status();
        let body = self.read_all(resp).await?;
        if !status.is_success() {
            let code = serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_owned))
                .unwrap_or_else(|| status.to_string());
            return Err(UpstreamError::Token(redact(&code)));
        }
        serde_json::from_slice(&body).map_err(UpstreamError::Decode)
    }

    /// Exchanges an authorization code (PKCE: the verifier stands in for the app secret).
    pub async fn exchange_code(
        &self,
        app_key: &str,
        code: &str,
        verifier: &Secret<String>,
        redirect_uri: Option<&str>,
    ) -> Result<TokenResponse, UpstreamError> {
        let form = {
            let mut form = form_urlencoded::Serializer::new(String::new());
            form.append_pair("grant_type", "authorization_code")
                .append_pair("code", code)
                .append_pair("client_id", app_key)
                .append_pair("code_verifier", verifier.expose());
            if let Some(uri) = redirect_uri {
                form.append_pair("redirect_uri", uri);
            }
            form.finish()
        };
        self.token_call(form).await
    }

    /// `users/get_current_account`: who the tokens belong to.
    pub async fn current_account(&self, auth: &TokenSet) -> Result<CurrentAccount, UpstreamError> {
        self.rpc(auth, "users/get_current_account", &Value::Null)
            .await
    }

    /// `auth/token/revoke`: the access token, its refresh token and every token minted from
    /// it stop working.
    pub async fn revoke(&self, auth: &TokenSet) -> Result<(), UpstreamError> {
        self.rpc::<Value>(auth, "auth/token/revoke", &Value::Null)
            .await
            .map(drop)
    }
}

/// The endpoint label of a request path: the route after `/2/` (`files/get_metadata`), or
/// the last segments for OAuth; bounded, since every URL is built by this client.
fn endpoint_of(path: &str) -> &str {
    match path.find("/2/") {
        Some(i) => &path[i + 3..],
        None => path.trim_start_matches('/'),
    }
}

/// The parts of `FullAccount` (reference §5.4) the proxy keeps.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct CurrentAccount {
    pub account_id: String,
    pub name: AccountName,
    #[serde(default)]
    pub email: String,
}

#[derive(Debug, Clone, serde::Deserialize)]
pub struct AccountName {
    pub display_name: String,
}
