//! The embedded backend: one redb file, so linked accounts, cursors and metadata survive a
//! restart with no server to run. Values are stored as 8 bytes of expiry (Unix ms, 0 = never)
//! followed by the value; expired values read as absent, and are removed at open and then every
//! `SWEEP_EVERY` (the file would otherwise grow with every name ever asked for). redb is
//! blocking, so every call runs on the blocking pool.

use super::StoreError;
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

const TABLE: TableDefinition<&str, &[u8]> = TableDefinition::new("kv");

/// How often expired rows are removed, and how many at a time.
const SWEEP_EVERY: Duration = Duration::from_secs(600);
const SWEEP_BATCH: usize = 1000;

#[derive(Clone)]
pub struct EmbeddedStore {
    db: Arc<Database>,
}

use super::now_ms;

/// A stored value: 8 bytes of expiry (Unix ms, 0 = never), then the value.
fn pack(value: &[u8], ttl: Option<Duration>) -> Vec<u8> {
    let expiry = ttl.map_or(0, |t| now_ms() + (t.as_millis() as u64).max(1));
    let mut raw = Vec::with_capacity(8 + value.len());
    raw.extend_from_slice(&expiry.to_be_bytes());
    raw.extend_from_slice(value);
    raw
}

/// The value in `raw`, unless it has expired.
fn unpack(raw: &[u8]) -> Option<&[u8]> {
    let (expiry, value) = raw.split_at(8.min(raw.len()));
    let expiry = u64::from_be_bytes(expiry.try_into().unwrap_or([0; 8]));
    (expiry == 0 || expiry > now_ms()).then_some(value)
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, redb::Error> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(StoreError::Task)?
        .map_err(StoreError::Embedded)
}

impl EmbeddedStore {
    /// Opens or creates the file (and its directory).
    pub async fn open(path: &Path) -> Result<EmbeddedStore, StoreError> {
        let path = path.to_owned();
        let db = blocking(move || {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(redb::Error::Io)?;
            }
            let db = Database::create(&path)?;
            let txn = db.begin_write()?;
            txn.open_table(TABLE)?;
            txn.commit()?;
            Ok(db)
        })
        .await?;
        let store = EmbeddedStore { db: Arc::new(db) };
        store.sweep().await?;
        // Sweeps while the store lives; the task holds no reference that would keep it open.
        let db = Arc::downgrade(&store.db);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(SWEEP_EVERY).await;
                let Some(db) = db.upgrade() else { return };
                if let Err(e) = (EmbeddedStore { db }).sweep().await {
                    tracing::warn!(error = %e, "cannot remove expired rows from the store");
                }
            }
        });
        Ok(store)
    }

    /// Removes every expired row; how many went. In batches of `SWEEP_BATCH`, each found in a
    /// read transaction and removed in a short write one, so metadata writes never wait long.
    pub async fn sweep(&self) -> Result<usize, StoreError> {
        let mut gone = 0;
        let mut from = String::new();
        loop {
            let db = self.db.clone();
            let start = from.clone();
            let (expired, next) = blocking(move || {
                let txn = db.begin_read()?;
                let table = txn.open_table(TABLE)?;
                let (mut expired, mut next) = (Vec::new(), None);
                for row in table.range(start.as_str()..)? {
                    let (k, v) = row?;
                    if expired.len() == SWEEP_BATCH {
                        next = Some(k.value().to_owned());
                        break;
                    }
                    if unpack(v.value()).is_none() {
                        expired.push(k.value().to_owned());
                    }
                }
                Ok((expired, next))
            })
            .await?;
            if !expired.is_empty() {
                let db = self.db.clone();
                gone += blocking(move || {
                    let txn = db.begin_write()?;
                    let mut n = 0;
                    {
                        let mut table = txn.open_table(TABLE)?;
                        for k in &expired {
                            // Still expired: a write since the read may have renewed it.
                            let still = table
                                .get(k.as_str())?
                                .is_some_and(|raw| unpack(raw.value()).is_none());
                            if still {
                                table.remove(k.as_str())?;
                                n += 1;
                            }
                        }
                    }
                    txn.commit()?;
                    Ok(n)
                })
                .await?;
            }
            match next {
                Some(k) => from = k,
                None => return Ok(gone),
            }
        }
    }

    /// Rows in the file, expired or not.
    pub async fn rows(&self) -> Result<u64, StoreError> {
        let db = self.db.clone();
        blocking(move || Ok(db.begin_read()?.open_table(TABLE)?.len()?)).await
    }

    pub async fn get(&self, key: String) -> Result<Option<Vec<u8>>, StoreError> {
        let db = self.db.clone();
        blocking(move || {
            let txn = db.begin_read()?;
            let table = txn.open_table(TABLE)?;
            let Some(raw) = table.get(key.as_str())? else {
                return Ok(None);
            };
            Ok(unpack(raw.value()).map(<[u8]>::to_vec))
        })
        .await
    }

    pub async fn set(
        &self,
        key: String,
        value: Vec<u8>,
        ttl: Option<Duration>,
    ) -> Result<(), StoreError> {
        let db = self.db.clone();
        let raw = pack(&value, ttl);
        blocking(move || {
            let txn = db.begin_write()?;
            txn.open_table(TABLE)?
                .insert(key.as_str(), raw.as_slice())?;
            txn.commit()?;
            Ok(())
        })
        .await
    }

    pub async fn delete(&self, key: String) -> Result<(), StoreError> {
        let db = self.db.clone();
        blocking(move || {
            let txn = db.begin_write()?;
            txn.open_table(TABLE)?.remove(key.as_str())?;
            txn.commit()?;
            Ok(())
        })
        .await
    }

    /// Gets and deletes `key` in one transaction.
    pub async fn take(&self, key: String) -> Result<Option<Vec<u8>>, StoreError> {
        let db = self.db.clone();
        blocking(move || {
            let txn = db.begin_write()?;
            let value = txn
                .open_table(TABLE)?
                .remove(key.as_str())?
                .and_then(|raw| unpack(raw.value()).map(<[u8]>::to_vec));
            txn.commit()?;
            Ok(value)
        })
        .await
    }

    /// Every live key starting with `prefix`, with its value.
    pub async fn list(&self, prefix: String) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let db = self.db.clone();
        blocking(move || {
            let txn = db.begin_read()?;
            let table = txn.open_table(TABLE)?;
            let upper = format!("{prefix}\u{10FFFF}");
            let mut found = Vec::new();
            for row in table.range(prefix.as_str()..upper.as_str())? {
                let (k, v) = row?;
                if let Some(value) = unpack(v.value()) {
                    found.push((k.value().to_owned(), value.to_vec()));
                }
            }
            Ok(found)
        })
        .await
    }

    /// Deletes every key that starts with one of `prefixes`.
    pub async fn delete_prefixes(&self, prefixes: Vec<String>) -> Result<(), StoreError> {
        let db = self.db.clone();
        blocking(move || {
            let txn = db.begin_write()?;
            {
                let mut table = txn.open_table(TABLE)?;
                for prefix in &prefixes {
                    // Every key with the prefix sorts between it and it + the last code point.
                    let upper = format!("{prefix}\u{10FFFF}");
                    table.retain_in(prefix.as_str()..upper.as_str(), |_, _| false)?;
                }
            }
            txn.commit()?;
            Ok(())
        })
        .await
    }

    /// Sets `value` unless the stored entry was confirmed after `checked_ms`; false if kept.
    pub async fn set_if_newer(
        &self,
        key: String,
        value: Vec<u8>,
        checked_ms: u64,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        #[derive(serde::Deserialize)]
        struct Checked {
            checked_ms: u64,
        }
        let db = self.db.clone();
        blocking(move || {
            let txn = db.begin_write()?;
            let set = {
                let mut table = txn.open_table(TABLE)?;
                let newer = table.get(key.as_str())?.is_some_and(|raw| {
                    unpack(raw.value()).is_some_and(|stored| {
                        serde_json::from_slice::<Checked>(stored)
                            .is_ok_and(|c| c.checked_ms > checked_ms)
                    })
                });
                if !newer {
                    table.insert(key.as_str(), pack(&value, Some(ttl)).as_slice())?;
                }
                !newer
            };
            txn.commit()?;
            Ok(set)
        })
        .await
    }

    /// Holds or renews a lease: set when absent or expired, extended when `owner`'s.
    pub async fn hold_lease(
        &self,
        key: String,
        owner: String,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let db = self.db.clone();
        blocking(move || {
            let txn = db.begin_write()?;
            let held = {
                let mut table = txn.open_table(TABLE)?;
                let holder = table
                    .get(key.as_str())?
                    .and_then(|raw| unpack(raw.value()).map(<[u8]>::to_vec));
                let free = holder.as_deref().is_none_or(|h| h == owner.as_bytes());
                if free {
                    table.insert(key.as_str(), pack(owner.as_bytes(), Some(ttl)).as_slice())?;
                }
                free
            };
            txn.commit()?;
            Ok(held)
        })
        .await
    }
}
