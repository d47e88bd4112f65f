//! The Redis backend, over a reconnecting connection manager.

use super::StoreError;
use redis::AsyncCommands;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::time::Duration;

#[derive(Clone)]
pub struct RedisStore {
    conn: ConnectionManager,
}

impl RedisStore {
    pub async fn connect(url: &str) -> Result<RedisStore, StoreError> {
        let client = redis::Client::open(url).map_err(StoreError::Redis)?;
        // Fail fast at start-up with a clear error; once connected, reconnect with backoff.
        let config = ConnectionManagerConfig::new()
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500))
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(2)));
        let conn = client
            .get_connection_manager_with_config(config)
            .await
            .map_err(StoreError::Redis)?;
        Ok(RedisStore { conn })
    }

    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.conn.clone().get(key).await.map_err(StoreError::Redis)
    }

    pub async fn set(
        &self,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        match ttl {
            Some(t) => {
                conn.pset_ex::<_, _, ()>(key, value, t.as_millis().max(1) as u64)
                    .await
            }
            None => conn.set::<_, _, ()>(key, value).await,
        }
        .map_err(StoreError::Redis)
    }

    pub async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.conn
            .clone()
            .del::<_, ()>(key)
            .await
            .map_err(StoreError::Redis)
    }
}
