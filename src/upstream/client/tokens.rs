//! An account's tokens: the access token and when to refresh it, the refresh grant, and the
//! account's call governor (Retry-After block, calls in flight, the re-link flag); and the
//! refresh itself, once per account however many calls notice.

use super::{Dropbox, UNCAPPED};
use crate::secret::Secret;
use crate::upstream::error::UpstreamError;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::time::Instant;

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
    pub(super) refresh: Option<RefreshGrant>,
    refreshing: tokio::sync::Mutex<()>,
    /// The refresh token was refused: nothing works until the account is linked again.
    relink: AtomicBool,
    /// No call to Dropbox before this (a 429's Retry-After).
    blocked_until: Mutex<Option<Instant>>,
    /// Told of each 429 this process gets for the account, with its wait (so that the other
    /// instances, which share the account's rate limit, hold off too).
    on_block: std::sync::OnceLock<BlockHook>,
    /// Calls in flight for this account.
    pub(super) calls: Arc<Semaphore>,
    /// `Bearer` (a user's token) or `Basic` (the app's key and secret).
    scheme: &'static str,
}

/// What a 429 is told to (see `TokenSet::on_block`).
struct BlockHook(Box<dyn Fn(Duration) + Send + Sync>);

impl std::fmt::Debug for BlockHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BlockHook")
    }
}

/// After a failed refresh ahead of expiry, the next try waits this long (or until expiry).
const RETRY_REFRESH: Duration = Duration::from_secs(60);

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
            on_block: std::sync::OnceLock::new(),
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
    pub(super) fn authorization(&self, token: &Secret<String>) -> String {
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

    /// Dropbox answered 429: no call before `wait` is over, here and (through the hook) in
    /// the other instances.
    pub(super) fn block(&self, wait: Duration) {
        self.block_here(wait);
        if let Some(hook) = self.on_block.get() {
            (hook.0)(wait);
        }
    }

    /// Another instance was told to wait: so is this one (no hook: it was told already).
    pub fn block_here(&self, wait: Duration) {
        let until = Instant::now() + wait;
        let mut b = self.blocked_until.lock().unwrap_or_else(|p| p.into_inner());
        if b.is_none_or(|old| old < until) {
            *b = Some(until);
        }
    }

    /// Sets what is told of each 429 (once per token set).
    pub fn on_block(&self, hook: Box<dyn Fn(Duration) + Send + Sync>) {
        let _ = self.on_block.set(BlockHook(hook));
    }

    fn current(&self) -> Option<Access> {
        self.access
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl Dropbox {
    /// A token to use now: refreshed first when there is none or it has expired; refreshed by
    /// one caller when it expires within `refresh_ahead` (the others keep using it meanwhile).
    pub(super) async fn token(
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

    /// Gets a new access token with the refresh grant, once for concurrent callers: whoever
    /// finds the token already changed since `failed` uses the new one.
    pub(super) async fn refresh(
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
