//! A faithful local Dropbox API v2: api, content and notify routes on one listener, OAuth,
//! webhooks out, fault injection and a request log (see `../shared/reference/dropbox-api-v2.md`).
//!
//! This file holds the `Emulator`, its settings and its running handle; `api` runs one call top
//! to bottom, `routes` is the route table, `tree` the accounts' files, `files`, `sharing`,
//! `oauth`, `thumbnail` and `webhook` the endpoints.

mod admin;
mod api;
mod body;
pub mod faults;
mod files;
mod oauth;
mod routes;
mod sharing;
pub mod state;
mod thumbnail;
pub mod tree;
mod watch;
mod webhook;
pub mod wire;

use crate::http::Body;
use crate::server;
use bytes::Bytes;
use faults::{Faults, RequestLog};
use hyper::body::Incoming;
use hyper::header::HOST;
use hyper::{HeaderMap, Request, Response, StatusCode};
use serde_json::Value;
pub use state::AccountSpec;
use state::World;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio_rustls::TlsAcceptor;
use wire::Arg;

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
        // Edits made on a disk root behind our back become changes (`watch`).
        let watchers = watch::start(&self);
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
        .await;
        drop(watchers);
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
}
