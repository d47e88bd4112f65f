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

mod call;
mod files;
mod oauth;
mod sharing;
mod tokens;

pub use call::error_from_answer;
pub use oauth::{AccountName, CurrentAccount};
pub use tokens::{RefreshGrant, TokenSet};

use super::error::UpstreamError;
use super::retry::RetryPolicy;
use super::transport::{HttpClient, TimeoutBody};
use super::types::FileMetadata;
use crate::secret::Secret;
use hyper::StatusCode;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

const UA: &str = concat!("dropcache/", env!("CARGO_PKG_VERSION"));
/// Largest RPC answer we read (listings of 2,000 entries fit easily).
const MAX_RPC_ANSWER: usize = 32 * 1024 * 1024;

pub use crate::config::Endpoints;

/// Unbounded enough for a `TokenSet` built without a cap.
const UNCAPPED: usize = Semaphore::MAX_PERMITS;

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
}
