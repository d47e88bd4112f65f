//! A faithful local Dropbox API v2: api, content and notify routes on one listener, OAuth,
//! webhooks out, fault injection and a request log (see `../shared/reference/dropbox-api-v2.md`).
//!
//! `Emulator::handle` reads top to bottom: route → method → credentials → request log →
//! faults → argument (by endpoint style) → the route's handler → the answer in Dropbox's shape.

mod admin;
mod body;
pub mod faults;
mod files;
mod oauth;
mod sharing;
pub mod state;
mod thumbnail;
pub mod tree;
mod webhook;
pub mod wire;

use crate::http::Body;
use crate::server;
use bytes::Bytes;
use faults::{FaultKind, Faults, RequestLog};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{HeaderMap, Method, Request, Response, StatusCode};
use serde_json::Value;
pub use state::AccountSpec;
use state::World;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio_rustls::TlsAcceptor;
use wire::{ApiError, Arg, Credentials, parse_authorization};

/// Largest `files/upload` body (Dropbox's single-request limit).
const MAX_UPLOAD: usize = 150 * 1024 * 1024;
/// Largest RPC argument body.
const MAX_RPC_BODY: usize = 1024 * 1024;

/// How an endpoint takes its argument and returns its result (reference §1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Style {
    Rpc,
    Download,
    Upload,
}

/// Which credentials an endpoint accepts (reference §4.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AuthKind {
    User,
    AppOrUser,
    App,
    NoAuth,
}

/// Every route the emulator serves: name, style, auth, and whether its argument is `Void`.
const ROUTES: &[(&str, Style, AuthKind, bool)] = &[
    ("files/list_folder", Style::Rpc, AuthKind::AppOrUser, false),
    (
        "files/list_folder/continue",
        Style::Rpc,
        AuthKind::AppOrUser,
        false,
    ),
    (
        "files/list_folder/get_latest_cursor",
        Style::Rpc,
        AuthKind::User,
        false,
    ),
    (
        "files/list_folder/longpoll",
        Style::Rpc,
        AuthKind::NoAuth,
        false,
    ),
    ("files/get_metadata", Style::Rpc, AuthKind::User, false),
    ("files/download", Style::Download, AuthKind::User, false),
    (
        "files/get_thumbnail_v2",
        Style::Download,
        AuthKind::AppOrUser,
        false,
    ),
    (
        "files/get_temporary_link",
        Style::Rpc,
        AuthKind::User,
        false,
    ),
    ("files/upload", Style::Upload, AuthKind::User, false),
    ("files/delete_v2", Style::Rpc, AuthKind::User, false),
    ("files/move_v2", Style::Rpc, AuthKind::User, false),
    ("files/create_folder_v2", Style::Rpc, AuthKind::User, false),
    (
        "sharing/create_shared_link_with_settings",
        Style::Rpc,
        AuthKind::User,
        false,
    ),
    (
        "sharing/get_shared_link_metadata",
        Style::Rpc,
        AuthKind::AppOrUser,
        false,
    ),
    (
        "sharing/get_shared_link_file",
        Style::Download,
        AuthKind::AppOrUser,
        false,
    ),
    (
        "sharing/list_shared_links",
        Style::Rpc,
        AuthKind::User,
        false,
    ),
    (
        "users/get_current_account",
        Style::Rpc,
        AuthKind::User,
        true,
    ),
    ("auth/token/revoke", Style::Rpc, AuthKind::User, true),
    ("check/user", Style::Rpc, AuthKind::User, false),
    ("check/app", Style::Rpc, AuthKind::App, false),
];

/// Settings of one emulator.
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    /// The first account is the default one (OAuth approves for it).
    pub accounts: Vec<AccountSpec>,
    pub app_key: String,
    pub app_secret: String,
    /// Lifetime of access tokens minted by `/oauth2/token`.
    pub token_lifetime: Duration,
    /// Where to send signed webhook notifications.
    pub webhook: Option<String>,
    /// Serve `/_emulator/*` (request log, faults, forced expiry and reset).
    pub admin: bool,
    pub faults: Faults,
    /// Up to this much is added to a longpoll's wait (Dropbox adds up to 90 s).
    pub longpoll_jitter: Duration,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        EmulatorConfig {
            accounts: vec![AccountSpec {
                name: "Emulator User".into(),
                token: None,
                root: None,
            }],
            app_key: "dropcache-emulator".into(),
            app_secret: "dropcache-emulator-secret".into(),
            token_lifetime: Duration::from_secs(14_400),
            webhook: None,
            admin: false,
            faults: Faults::default(),
            longpoll_jitter: Duration::ZERO,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    #[error("cannot load account {name:?}: {source}")]
    Account {
        name: String,
        #[source]
        source: std::io::Error,
    },
    #[error("an emulator needs at least one account")]
    NoAccounts,
}

/// A running-or-not emulator; cheap to clone.
#[derive(Clone)]
pub struct Emulator {
    inner: Arc<Inner>,
}

struct Inner {
    config: EmulatorConfig,
    world: Mutex<World>,
    faults: Mutex<Faults>,
    log: Mutex<RequestLog>,
    webhook: Option<webhook::Notifier>,
}

/// Counts an API call in flight until dropped (the answer's head is out).
struct InFlight<'a>(&'a Emulator);

impl<'a> InFlight<'a> {
    fn enter(emu: &'a Emulator) -> Self {
        lock(&emu.inner.log).enter();
        InFlight(emu)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        lock(&self.0.inner.log).leave();
    }
}

/// Who is calling, once credentials are checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    User { account: usize, token: String },
    App,
    Anonymous,
}

impl Caller {
    pub fn account(&self) -> Option<usize> {
        match self {
            Caller::User { account, .. } => Some(*account),
            _ => None,
        }
    }
}

/// One API call, ready for its handler.
pub struct Call {
    pub route: &'static str,
    pub caller: Caller,
    pub arg: Arg,
    pub body: Bytes,
    pub headers: HeaderMap,
    /// `http(s)://host:port` as the client reached us.
    pub base_url: String,
}

/// What a handler answers.
pub enum Reply {
    Json(Value),
    Download(body::Download),
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves plain data; keep serving.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Handle to an emulator serving on a socket; shuts it down on drop.
pub struct RunningEmulator {
    pub addr: SocketAddr,
    pub base_url: String,
    pub emulator: Emulator,
    stop: Option<oneshot::Sender<()>>,
}

impl Drop for RunningEmulator {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl Emulator {
    pub fn new(config: EmulatorConfig) -> Result<Self, EmulatorError> {
        if config.accounts.is_empty() {
            return Err(EmulatorError::NoAccounts);
        }
        let mut world = World::default();
        for spec in &config.accounts {
            world
                .add_account(spec)
                .map_err(|source| EmulatorError::Account {
                    name: spec.name.clone(),
                    source,
                })?;
        }
        let webhook = config
            .webhook
            .clone()
            .map(|url| webhook::Notifier::start(url, config.app_secret.clone()));
        Ok(Emulator {
            inner: Arc::new(Inner {
                faults: Mutex::new(config.faults.clone()),
                config,
                world: Mutex::new(world),
                log: Mutex::new(RequestLog::default()),
                webhook,
            }),
        })
    }

    /// Serves on `listener` until `shutdown` resolves.
    pub async fn serve(
        self,
        listener: TcpListener,
        tls: Option<TlsAcceptor>,
        shutdown: impl std::future::Future<Output = ()>,
    ) {
        let https = tls.is_some();
        server::serve(
            listener,
            tls,
            // Generous: longpolls and stalled bodies are the emulator's to hold open.
            server::Limits {
                drain: std::time::Duration::from_secs(5),
                header_read_timeout: std::time::Duration::from_secs(60),
                keepalive_timeout: std::time::Duration::from_secs(600),
                max_connections: 100_000,
                ..server::Limits::default()
            },
            move |req, _peer| {
                let emu = self.clone();
                async move { emu.handle(req, https).await }
            },
            shutdown,
        )
        .await
    }

    /// Binds `addr` and serves in the background; the handle stops it when dropped.
    pub async fn spawn(
        self,
        addr: &str,
        tls: Option<TlsAcceptor>,
    ) -> std::io::Result<RunningEmulator> {
        let listener = TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        let (stop, stopped) = oneshot::channel();
        tokio::spawn(self.clone().serve(listener, tls, async move {
            let _ = stopped.await;
        }));
        Ok(RunningEmulator {
            addr: local,
            base_url: format!("{scheme}://{local}"),
            emulator: self,
            stop: Some(stop),
        })
    }

    fn world(&self) -> MutexGuard<'_, World> {
        lock(&self.inner.world)
    }

    /// The request log (counts per route and account).
    pub fn log(&self) -> RequestLog {
        lock(&self.inner.log).clone()
    }

    /// Calls made to `route` so far.
    pub fn calls(&self, route: &str) -> u64 {
        lock(&self.inner.log).count(route)
    }

    pub fn reset_log(&self) {
        let mut log = lock(&self.inner.log);
        let in_flight = log.in_flight;
        *log = RequestLog {
            in_flight,
            ..RequestLog::default()
        };
    }

    /// Replaces the fault settings.
    pub fn set_faults(&self, faults: Faults) {
        *lock(&self.inner.faults) = faults;
    }

    /// Forces expiry of one token, or of every refreshable token; returns how many.
    pub fn expire_tokens(&self, token: Option<&str>) -> usize {
        self.world().expire(token)
    }

    /// Invalidates every cursor of every account (continue and longpoll answer `reset`).
    pub fn reset_cursors(&self) {
        let mut world = self.world();
        for a in world.accounts.iter_mut() {
            a.ns.reset_cursors();
            a.changes.send_replace(a.ns.seq());
        }
    }

    /// The 40-char account id of account `index` (0 = default).
    pub fn account_id(&self, index: usize) -> Option<String> {
        self.world()
            .accounts
            .get(index)
            .map(|a| a.account_id.clone())
    }

    /// Signs the browser in as account `index`: `/oauth2/authorize` approves for it. False
    /// when there is no such account.
    pub fn sign_in(&self, index: usize) -> bool {
        let mut world = self.world();
        let ok = index < world.accounts.len();
        if ok {
            world.signed_in = index;
        }
        ok
    }

    /// The refresh tokens minted by `/oauth2/token` and still valid.
    pub fn refresh_tokens(&self) -> Vec<String> {
        self.world().refresh.keys().cloned().collect()
    }

    /// Every secret `/oauth2/token` has handed out and that still works: refresh tokens and
    /// the access tokens minted from them (for tests that look for leaks).
    pub fn oauth_secrets(&self) -> Vec<String> {
        let world = self.world();
        world
            .refresh
            .keys()
            .cloned()
            .chain(
                world
                    .tokens
                    .iter()
                    .filter(|(_, t)| t.refresh.is_some())
                    .map(|(k, _)| k.clone()),
            )
            .collect()
    }

    /// Adds an in-memory account with a fixed token; returns its account id.
    pub fn add_account(&self, spec: &AccountSpec) -> std::io::Result<String> {
        let mut world = self.world();
        let i = world.add_account(spec)?;
        Ok(world.accounts[i].account_id.clone())
    }

    /// Tells longpolls and the webhook that an account changed.
    fn changed(&self, world: &World, account: usize) {
        let a = &world.accounts[account];
        a.changes.send_replace(a.ns.seq());
        if let Some(hook) = &self.inner.webhook {
            hook.notify(a.account_id.clone(), a.uid);
        }
    }

    /// The whole HTTP surface: `/2/<route>`, OAuth, temporary links, admin.
    pub async fn handle(&self, req: Request<Incoming>, https: bool) -> Response<Body> {
        let path = req.uri().path().to_owned();
        let base_url = format!(
            "{}://{}",
            if https { "https" } else { "http" },
            req.headers()
                .get(HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or("localhost")
        );
        if let Some(route) = path.strip_prefix("/2/") {
            return self.api(route, req, base_url).await;
        }
        match path.as_str() {
            "/oauth2/authorize" => oauth::authorize(self, &req),
            "/oauth2/token" => oauth::token(self, req).await,
            p if p.starts_with("/temporary_link/") => files::temporary_link_get(self, &req),
            p if p.starts_with("/_emulator/") && self.inner.config.admin => {
                admin::handle(self, req).await
            }
            _ => wire::text(StatusCode::NOT_FOUND, "Not Found".into()),
        }
    }

    async fn api(&self, name: &str, req: Request<Incoming>, base_url: String) -> Response<Body> {
        // 1. route
        let Some(&(route, style, auth, void)) = ROUTES.iter().find(|r| r.0 == name) else {
            return ApiError::NotFound.into_response(name);
        };
        let _in_flight = (route != "files/list_folder/longpoll").then(|| InFlight::enter(self));
        let latency = lock(&self.inner.faults).latency();
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        // 2. method: all POST; content-download routes also GET.
        let method_ok = req.method() == Method::POST
            || (style == Style::Download && req.method() == Method::GET);
        if !method_ok {
            return wire::text(
                StatusCode::METHOD_NOT_ALLOWED,
                format!("Error in call to API function \"{route}\": Method not allowed"),
            );
        }
        let query: Vec<(String, String)> = req
            .uri()
            .query()
            .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
            .unwrap_or_default();
        let param = |k: &str| query.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        // 3. credentials
        let header_auth = req
            .headers()
            .get(AUTHORIZATION)
            .map(|v| v.to_str().unwrap_or("\u{fffd}"));
        let creds = parse_authorization(header_auth.or(param("authorization")));
        let caller = self.authenticate(auth, creds);
        // 4. the request log counts every call that names a route, failed or not.
        {
            let account = match &caller {
                Ok(Caller::User { account, .. }) => {
                    self.world().accounts[*account].account_id.clone()
                }
                Ok(Caller::App) => "app".to_owned(),
                _ => "-".to_owned(),
            };
            lock(&self.inner.log).record(route, &account);
        }
        let caller = match caller {
            Ok(c) => c,
            Err(e) => return e.into_response(route),
        };
        // 5. faults that replace the answer
        let fault = lock(&self.inner.faults).draw(route, false);
        match fault {
            Some(FaultKind::RateLimit { retry_after }) => {
                return ApiError::RateLimited { retry_after }.into_response(route);
            }
            Some(FaultKind::Status(code)) => {
                let status =
                    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                return ApiError::Server(status).into_response(route);
            }
            _ => {}
        }
        // 6. the argument, by endpoint style
        let (parts, incoming) = req.into_parts();
        let call = match read_call(style, void, &parts.headers, param("arg"), incoming).await {
            Ok((arg, body)) => Call {
                route,
                caller,
                arg,
                body,
                headers: parts.headers,
                base_url,
            },
            Err(e) => return e.into_response(route),
        };
        // 7. the handler
        let reply = match route {
            "files/list_folder" => files::list_folder(self, &call),
            "files/list_folder/continue" => files::list_folder_continue(self, &call),
            "files/list_folder/get_latest_cursor" => files::get_latest_cursor(self, &call),
            "files/list_folder/longpoll" => files::longpoll(self, &call).await,
            "files/get_metadata" => files::get_metadata(self, &call),
            "files/download" => files::download(self, &call),
            "files/get_thumbnail_v2" => thumbnail::get_thumbnail_v2(self, &call).await,
            "files/get_temporary_link" => files::get_temporary_link(self, &call),
            "files/upload" => files::upload(self, &call),
            "files/delete_v2" => files::delete(self, &call),
            "files/move_v2" => files::move_v2(self, &call),
            "files/create_folder_v2" => files::create_folder(self, &call),
            "sharing/create_shared_link_with_settings" => sharing::create(self, &call),
            "sharing/get_shared_link_metadata" => sharing::metadata(self, &call),
            "sharing/get_shared_link_file" => sharing::file(self, &call),
            "sharing/list_shared_links" => sharing::list(self, &call),
            "users/get_current_account" => oauth::current_account(self, &call),
            "auth/token/revoke" => oauth::revoke(self, &call),
            "check/user" | "check/app" => check(&call),
            _ => Err(ApiError::NotFound),
        };
        // 8. the answer
        match reply {
            Ok(Reply::Json(v)) => wire::json_response(StatusCode::OK, &v),
            Ok(Reply::Download(dl)) => {
                let fault = lock(&self.inner.faults).draw(route, true);
                let resp = body::respond(dl, &call.headers, fault);
                let len = resp
                    .headers()
                    .get(hyper::header::CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
                lock(&self.inner.log).body_bytes += len.unwrap_or(0);
                resp
            }
            Err(e) => e.into_response(route),
        }
    }

    fn authenticate(&self, auth: AuthKind, creds: Credentials) -> Result<Caller, ApiError> {
        let expecting = |want: &str, got: &str| {
            ApiError::BadInput(format!(
                "Invalid authorization value in HTTP header \"Authorization\": \"{}\". Expecting \"{want}\".",
                // SECURITY: never echo a credential; show only its scheme.
                got.split(' ').next().unwrap_or_default()
            ))
        };
        let bearer = "Bearer <oauth2-access-token>";
        let basic = "Basic <base64(APP_KEY:APP_SECRET)>";
        match (auth, creds) {
            (AuthKind::NoAuth, Credentials::None) => Ok(Caller::Anonymous),
            (AuthKind::NoAuth, _) => Err(ApiError::BadInput(
                "Your request includes an Authorization header, but this function does not use it."
                    .into(),
            )),
            (_, Credentials::None) => Err(ApiError::BadInput(
                "Must provide HTTP header \"Authorization\" or URL parameter \"authorization\"."
                    .into(),
            )),
            (AuthKind::App, Credentials::Bearer(_)) => Err(expecting(basic, "Bearer")),
            (AuthKind::User, Credentials::Basic { .. }) => Err(expecting(bearer, "Basic")),
            (AuthKind::App | AuthKind::AppOrUser, Credentials::Basic { key, secret }) => {
                let c = &self.inner.config;
                if key == c.app_key && secret == c.app_secret {
                    Ok(Caller::App)
                } else {
                    Err(ApiError::Auth("invalid_access_token"))
                }
            }
            (_, Credentials::Bearer(token)) => {
                let account = self.world().user(&token)?;
                Ok(Caller::User { account, token })
            }
            (AuthKind::App, Credentials::Malformed(v)) => Err(expecting(basic, &v)),
            (_, Credentials::Malformed(v)) => Err(expecting(bearer, &v)),
        }
    }
}

/// Reads the argument (and an upload's bytes) the way the endpoint style says.
async fn read_call(
    style: Style,
    void: bool,
    headers: &HeaderMap,
    arg_param: Option<&str>,
    incoming: Incoming,
) -> Result<(Arg, Bytes), ApiError> {
    let content_type = headers
        .get(CONTENT_TYPE)
        .map(|v| v.to_str().unwrap_or("\u{fffd}").to_owned());
    let cors_hack = "text/plain; charset=dropbox-cors-hack";
    let bad_ct = |ct: &str, expecting: &str| {
        ApiError::BadInput(format!(
            "Bad HTTP \"Content-Type\" header: \"{ct}\".  Expecting one of {expecting}."
        ))
    };
    let limit = if style == Style::Upload {
        MAX_UPLOAD
    } else {
        MAX_RPC_BODY
    };
    let body = Limited::new(incoming, limit)
        .collect()
        .await
        .map_err(|e| ApiError::BadInput(format!("request body: {e}")))?
        .to_bytes();
    match style {
        Style::Rpc => {
            let ok_types = [
                "application/json",
                "application/json; charset=utf-8",
                cors_hack,
            ];
            match content_type.as_deref() {
                Some(ct) if ok_types.iter().any(|t| t.eq_ignore_ascii_case(ct.trim())) => {}
                // Void routes: curl sends no body and no Content-Type.
                None if body.is_empty() => {}
                Some(ct) => {
                    return Err(bad_ct(
                        ct,
                        "\"application/json\", \"application/json; charset=utf-8\", \"text/plain; charset=dropbox-cors-hack\"",
                    ));
                }
                None => return Err(bad_ct("", "\"application/json\"")),
            }
            let value = if body.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(&body).map_err(|e| {
                    ApiError::BadInput(format!(
                        "request body: could not decode input as JSON ({e})"
                    ))
                })?
            };
            if void && !value.is_null() {
                return Err(ApiError::BadInput(
                    "request body: expected null, got value".into(),
                ));
            }
            if !void && !value.is_object() {
                return Err(ApiError::BadInput(format!(
                    "request body: expected object, got {}",
                    if value.is_null() { "null" } else { "value" }
                )));
            }
            Ok((Arg::new(value, "request body"), Bytes::new()))
        }
        Style::Download | Style::Upload => {
            if style == Style::Download {
                if let Some(ct) = content_type.as_deref().filter(|c| !c.is_empty()) {
                    return Err(bad_ct(ct, "(none): this function takes no request body"));
                }
            } else {
                match content_type.as_deref() {
                    Some(ct)
                        if ct.eq_ignore_ascii_case("application/octet-stream")
                            || ct.eq_ignore_ascii_case(cors_hack) => {}
                    other => {
                        return Err(bad_ct(
                            other.unwrap_or(""),
                            "\"application/octet-stream\", \"text/plain; charset=dropbox-cors-hack\"",
                        ));
                    }
                }
            }
            let (raw, source) = match (headers.get("dropbox-api-arg"), arg_param) {
                (Some(h), _) => {
                    // SECURITY: the header must be ASCII; raw UTF-8 is rejected as Dropbox does.
                    let s = std::str::from_utf8(h.as_bytes())
                        .ok()
                        .filter(|s| s.is_ascii())
                        .ok_or_else(|| {
                            ApiError::BadInput(
                                "HTTP header \"Dropbox-API-Arg\": could not decode input as JSON"
                                    .into(),
                            )
                        })?;
                    (s.to_owned(), "HTTP header \"Dropbox-API-Arg\"")
                }
                (None, Some(p)) => (p.to_owned(), "URL parameter \"arg\""),
                (None, None) => {
                    return Err(ApiError::BadInput(
                        "Must provide HTTP header \"Dropbox-API-Arg\" or URL parameter \"arg\"."
                            .into(),
                    ));
                }
            };
            let value: Value = serde_json::from_str(&raw).map_err(|_| {
                ApiError::BadInput(format!("{source}: could not decode input as JSON"))
            })?;
            if !value.is_object() {
                return Err(ApiError::BadInput(format!("{source}: expected object")));
            }
            Ok((Arg::new(value, source), body))
        }
    }
}

/// `check/user` and `check/app`: echo `query` as `result`.
fn check(call: &Call) -> Result<Reply, ApiError> {
    let query = call.arg.opt_str("query")?.unwrap_or_default();
    Ok(Reply::Json(serde_json::json!({ "result": query })))
}
