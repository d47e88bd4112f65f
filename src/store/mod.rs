//! Shared state: metadata, cursors and accounts, in Redis (many instances) or in an embedded
//! single-file store (one instance, no set-up). Keys are versioned: `dropcache:v1:…`.

mod embedded;
mod redis;

pub use embedded::EmbeddedStore;
pub use redis::RedisStore;

use crate::config::StoreConfig;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// Prefix of every key this version writes.
pub const PREFIX: &str = "dropcache:v1:";

/// Milliseconds since the Unix epoch (the store's expiry times, and every `*_ms` field).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("redis: {0}")]
    Redis(#[source] ::redis::RedisError),
    #[error("embedded store: {0}")]
    Embedded(#[source] ::redb::Error),
    #[error("embedded store task failed: {0}")]
    Task(#[source] tokio::task::JoinError),
    /// Redis failed a moment ago; calls fail fast until it is tried again.
    #[error("redis is unreachable (retrying)")]
    Unavailable,
}

/// The pub/sub channel of invalidations between instances.
pub const CHANNEL: &str = "dropcache:v1:invalidate";

/// Messages from other instances, and whether they are arriving (None: one instance only,
/// nothing to hear).
pub struct Subscription {
    pub messages: mpsc::UnboundedReceiver<Vec<u8>>,
    pub healthy: watch::Receiver<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The store, by backend.
#[derive(Clone)]
pub enum Store {
    Redis(RedisStore),
    Embedded(EmbeddedStore),
}

impl Store {
    /// Opens the configured backend (connects to Redis, or opens / creates the file).
    pub async fn open(config: &StoreConfig) -> Result<Store, StoreError> {
        Ok(match config {
            StoreConfig::Redis { url } => Store::Redis(RedisStore::connect(url.expose()).await?),
            StoreConfig::RedisCluster { nodes } => {
                let nodes: Vec<&str> = nodes.iter().map(|n| n.expose().as_str()).collect();
                Store::Redis(RedisStore::connect_cluster(&nodes).await?)
            }
            StoreConfig::Embedded { path } => Store::Embedded(EmbeddedStore::open(path).await?),
        })
    }

    /// The full key for `name` (`dropcache:v1:<name>`).
    pub fn key(name: &str) -> String {
        format!("{PREFIX}{name}")
    }

    pub async fn get(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let key = Store::key(name);
        match self {
            Store::Redis(r) => r.get(&key).await,
            Store::Embedded(e) => e.get(key).await,
        }
    }

    /// Sets a value, expiring after `ttl` if given.
    pub async fn set(
        &self,
        name: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<(), StoreError> {
        let key = Store::key(name);
        match self {
            Store::Redis(r) => r.set(&key, value, ttl).await,
            Store::Embedded(e) => e.set(key, value.to_vec(), ttl).await,
        }
    }

    pub async fn delete(&self, name: &str) -> Result<(), StoreError> {
        let key = Store::key(name);
        match self {
            Store::Redis(r) => r.delete(&key).await,
            Store::Embedded(e) => e.delete(key).await,
        }
    }

    /// Gets `name` and deletes it in one step: of concurrent callers, one gets the value
    /// (single-use tokens).
    pub async fn take(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let key = Store::key(name);
        match self {
            Store::Redis(r) => r.take(&key).await,
            Store::Embedded(e) => e.take(key).await,
        }
    }

    /// Every entry whose name starts with `prefix`: (name, value), names without the
    /// version prefix.
    pub async fn list(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let key = Store::key(prefix);
        let found = match self {
            Store::Redis(r) => r.list(&key).await?,
            Store::Embedded(e) => e.list(key).await?,
        };
        Ok(found
            .into_iter()
            .filter_map(|(k, v)| Some((k.strip_prefix(PREFIX)?.to_owned(), v)))
            .collect())
    }

    /// Which backend, for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Store::Redis(_) => "redis",
            Store::Embedded(_) => "embedded",
        }
    }

    /// Deletes every entry under `base` whose name starts with one of `prefixes` (each
    /// beginning with `base`).
    pub async fn delete_prefixes(&self, base: &str, prefixes: &[String]) -> Result<(), StoreError> {
        let full: Vec<String> = prefixes.iter().map(|p| Store::key(p)).collect();
        match self {
            Store::Redis(r) => r.delete_prefixes(&Store::key(base), &full).await,
            Store::Embedded(e) => e.delete_prefixes(full).await,
        }
    }

    /// Sets a metadata entry unless the stored one was confirmed after `checked_ms` (a slow
    /// answer never overwrites what the change feed wrote meanwhile); false if it was kept.
    pub async fn set_if_newer(
        &self,
        name: &str,
        value: &[u8],
        checked_ms: u64,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let key = Store::key(name);
        match self {
            Store::Redis(r) => r.set_if_newer(&key, value, checked_ms, ttl).await,
            Store::Embedded(e) => e.set_if_newer(key, value.to_vec(), checked_ms, ttl).await,
        }
    }

    /// Takes the lease `name` for `owner`, or renews it if `owner` holds it; false when
    /// someone else does. It lapses after `ttl` unless renewed.
    pub async fn hold_lease(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let key = Store::key(name);
        match self {
            Store::Redis(r) => r.hold_lease(&key, owner, ttl).await,
            Store::Embedded(e) => e.hold_lease(key, owner.to_owned(), ttl).await,
        }
    }

    /// Gives the lease up if `owner` holds it.
    pub async fn release_lease(&self, name: &str, owner: &str) -> Result<(), StoreError> {
        let key = Store::key(name);
        match self {
            Store::Redis(r) => r.release_lease(&key, owner).await,
            // One process per embedded file: nobody waits for it.
            Store::Embedded(e) => e.delete(key).await,
        }
    }

    /// Tells the other instances (Redis only; the embedded store has no others).
    pub async fn publish(&self, message: &[u8]) -> Result<(), StoreError> {
        match self {
            Store::Redis(r) => r.publish(CHANNEL, message).await,
            Store::Embedded(_) => Ok(()),
        }
    }

    /// Hears the other instances; None with the embedded store.
    pub fn subscribe(&self) -> Option<Subscription> {
        let Store::Redis(r) = self else { return None };
        let (tx, messages) = mpsc::unbounded_channel();
        let (healthy_tx, healthy) = watch::channel(false);
        let task = tokio::spawn(r.clone().follow(CHANNEL.to_owned(), tx, healthy_tx));
        Some(Subscription {
            messages,
            healthy,
            task,
        })
    }

    /// Probes the store (for /readyz).
    pub async fn ping(&self) -> Result<(), StoreError> {
        match self {
            Store::Redis(r) => r.ping().await,
            Store::Embedded(_) => Ok(()),
        }
    }

    /// Whether the store answers a probe within a second.
    pub async fn is_up(&self) -> bool {
        let probe = tokio::time::timeout(std::time::Duration::from_secs(1), self.ping());
        matches!(probe.await, Ok(Ok(())))
    }
}
