//! Writing entries: L1 and the store, Dropbox's answers recorded, bodies marked as served,
//! and purges and forgets (here, in the store, and on the other instances).

use super::{Entry, MetaCache, Purged, RETAIN, State, entry, lock};
use crate::account::Account;
use crate::store::StoreError;
use crate::upstream::types::FileMetadata;
use std::sync::Arc;

impl MetaCache {
    /// Keeps in the store that `entry` (of `lower`) has had a body served, unless the feed or a
    /// purge changed anything of the account since `generation` (the entry may be void).
    /// In the background: the answer does not wait on the store.
    pub fn keep_used(
        self: &Arc<Self>,
        account: &Arc<Account>,
        lower: &str,
        entry: Arc<Entry>,
        generation: u64,
    ) {
        let (me, account, key) = (self.clone(), account.clone(), Self::key(account, lower));
        self.behind(async move {
            if account.feed.generation() != generation {
                return;
            }
            if let Err(e) = me.save(&key, entry).await {
                tracing::debug!(error = %e, "cannot note a served body in the store");
            }
        });
    }

    /// Records a file's metadata seen elsewhere (e.g. in a download's result).
    pub async fn record_file(&self, account: &Account, lower: &str, file: FileMetadata) {
        let key = Self::key(account, lower);
        if let Err(e) = self
            .save(&key, Arc::new(Entry::new(State::File(file))))
            .await
        {
            tracing::warn!(error = %e, "cannot write a metadata entry to the store");
        }
    }

    /// Drops the entries of `account` at `lower` (exactly, or everything starting with it when
    /// `prefix`) from L1 and the store; returns the keys dropped and the content hashes of the
    /// files among them, whose bodies the caller may drop too. Other instances' L1s are the
    /// caller's to tell.
    pub async fn purge(
        &self,
        account: &Account,
        lower: &str,
        prefix: bool,
    ) -> Result<Purged, StoreError> {
        let key = Self::key(account, lower);
        // A lookup under way may have read what is being purged: it must not cache it.
        account.feed.bump();
        let mut found: Vec<(String, Arc<Entry>)> = Vec::new();
        if prefix {
            for (k, bytes) in self.store.list(&key).await? {
                if let Ok(e) = serde_json::from_slice::<Entry>(&bytes) {
                    found.push((k, Arc::new(e)));
                }
            }
            let l1 = lock(&self.l1);
            found.extend(
                l1.iter()
                    .filter(|(k, _)| k.starts_with(&key))
                    .map(|(k, e)| (k.clone(), e.clone())),
            );
        } else {
            if let Some(e) = self.load(&key).await {
                found.push((key.clone(), e));
            }
            if let Some(e) = lock(&self.l1).peek(&key).cloned() {
                found.push((key.clone(), e));
            }
        }
        if prefix {
            self.forget_prefixes(account, std::slice::from_ref(&key))
                .await?;
        } else {
            self.forget_key(&key).await?;
        }
        let mut keys: Vec<String> = found.iter().map(|(k, _)| k.clone()).collect();
        keys.sort();
        keys.dedup();
        let mut hashes: Vec<String> = found
            .iter()
            .filter_map(|(_, e)| match &e.state {
                State::File(f) => f.content_hash.clone(),
                _ => None,
            })
            .collect();
        hashes.sort();
        hashes.dedup();
        Ok(Purged { key, keys, hashes })
    }

    /// Drops what is cached of one path, in L1 and the store.
    pub async fn forget(&self, account: &Account, lower: &str) {
        if let Err(e) = self.forget_key(&Self::key(account, lower)).await {
            tracing::warn!(error = %e, "cannot delete a metadata entry from the store");
        }
    }

    pub(super) async fn forget_key(&self, key: &str) -> Result<(), StoreError> {
        lock(&self.l1).pop(key);
        self.store.delete(key).await
    }

    /// Drops every entry of `account` whose key starts with one of `prefixes`, in L1 and the
    /// store.
    pub(super) async fn forget_prefixes(
        &self,
        account: &Account,
        prefixes: &[String],
    ) -> Result<(), StoreError> {
        if prefixes.is_empty() {
            return Ok(());
        }
        self.drop_l1(&[], prefixes);
        self.store
            .delete_prefixes(&Self::key(account, ""), prefixes)
            .await
    }

    /// Drops entries from L1 only (another instance changed the store).
    pub(super) fn drop_l1(&self, keys: &[String], prefixes: &[String]) {
        let mut l1 = lock(&self.l1);
        for k in keys {
            l1.pop(k);
        }
        if prefixes.is_empty() {
            return;
        }
        let doomed: Vec<String> = l1
            .iter()
            .map(|(k, _)| k)
            .filter(|k| prefixes.iter().any(|p| k.starts_with(p.as_str())))
            .cloned()
            .collect();
        for k in doomed {
            l1.pop(&k);
        }
    }

    /// Reads an entry from the store; a store failure or a foreign version reads as absent.
    pub(super) async fn load(&self, key: &str) -> Option<Arc<Entry>> {
        let bytes = match self.store.get(key).await {
            Ok(b) => b?,
            Err(e) => {
                tracing::warn!(error = %e, "metadata store unavailable; asking Dropbox");
                return None;
            }
        };
        match serde_json::from_slice::<Entry>(&bytes) {
            Ok(e) if e.v == entry::ENTRY_VERSION => Some(Arc::new(e)),
            _ => None,
        }
    }

    /// Puts an entry in L1 unless L1 already has a newer confirmation of that path.
    pub(super) fn remember(&self, key: &str, entry: Arc<Entry>) {
        let mut l1 = lock(&self.l1);
        if l1
            .peek(key)
            .is_none_or(|old| old.checked_ms <= entry.checked_ms)
        {
            l1.put(key.to_owned(), entry);
        }
    }

    /// Keeps an entry in L1 and the store, unless either has a later confirmation of it.
    pub(super) async fn save(&self, key: &str, entry: Arc<Entry>) -> Result<(), StoreError> {
        let retain = match entry.state {
            // "Not found" is never served stale: it lives its TTL and goes.
            State::Missing => self.fresh.negative_ttl,
            _ => RETAIN.max(self.fresh.ttl).max(self.fresh.stale_if_error),
        };
        let value = serde_json::to_vec(&*entry).expect("an entry serializes");
        let checked_ms = entry.checked_ms;
        self.remember(key, entry);
        self.store
            .set_if_newer(key, &value, checked_ms, retain)
            .await
            .map(drop)
    }
}
