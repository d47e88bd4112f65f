//! Shared state: metadata, cursors and accounts, in Redis (many instances) or in an embedded
//! single-file store (one instance, no set-up). Keys are versioned: `dropcache:v1:…`.

mod embedded;
mod redis;

pub use embedded::EmbeddedStore;
pub use redis::RedisStore;

use crate::config::StoreConfig;
use std::time::Duration;

/// Prefix of every key this version writes.
pub const PREFIX: &str = "dropcache:v1:";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("redis: {0}")]
    Redis(#[source] ::redis::RedisError),
    #[error("embedded store: {0}")]
    Embedded(#[source] ::redb::Error),
    #[error("embedded store task failed: {0}")]
    Task(#[source] tokio::task::JoinError),
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

    /// Which backend, for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Store::Redis(_) => "redis",
            Store::Embedded(_) => "embedded",
        }
    }
}
