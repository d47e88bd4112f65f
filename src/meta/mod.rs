//! Metadata of published paths: an in-process LRU (L1), the store (L2), then Dropbox.
//!
//! Keyed by account and lowercased path. An entry is fresh for `cache.metadata_ttl` after
//! Dropbox last confirmed it (`cache.negative_ttl` for "not found"). A stale folder listing is
//! revalidated with `list_folder/continue` on its cursor, so an unchanged folder costs one small
//! call and never a full re-list; a stale file is revalidated with `get_metadata`. Identical
//! concurrent lookups share one flight. A fresh L1 entry answers without touching the store.

pub mod entry;

use crate::account::Account;
use crate::store::Store;
use crate::upstream::client::Dropbox;
use crate::upstream::error::UpstreamError;
use crate::upstream::types::{FileMetadata, Metadata};
pub use entry::{Entry, Listing, State};
use lru::LruCache;
use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::OnceCell;

/// How long the store keeps an entry after its last confirmation: stale entries stay useful
/// (a listing's cursor revalidates it cheaply; later, stale-if-error serves it).
const RETAIN: Duration = Duration::from_secs(7 * 24 * 3600);

/// Where a lookup's answer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Fresh in L1 or L2: Dropbox was not asked.
    Cache,
    /// Was stale; Dropbox confirmed it unchanged.
    Revalidated,
    /// Fetched (or changed) from Dropbox.
    Dropbox,
}

/// A lookup's answer.
#[derive(Debug, Clone)]
pub struct Looked {
    pub entry: Arc<Entry>,
    pub source: Source,
}

type Flight = Arc<OnceCell<Result<Looked, Arc<UpstreamError>>>>;

pub struct MetaCache {
    l1: Mutex<LruCache<String, Arc<Entry>>>,
    store: Store,
    dropbox: Arc<Dropbox>,
    ttl: Duration,
    negative_ttl: Duration,
    flights: Mutex<HashMap<String, Flight>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl MetaCache {
    pub fn new(
        store: Store,
        dropbox: Arc<Dropbox>,
        l1_entries: NonZeroUsize,
        ttl: Duration,
        negative_ttl: Duration,
    ) -> MetaCache {
        MetaCache {
            l1: Mutex::new(LruCache::new(l1_entries)),
            store,
            dropbox,
            ttl,
            negative_ttl,
            flights: Mutex::new(HashMap::new()),
        }
    }

    /// The store name of an entry: `meta:<alias>:<path_lower>`.
    pub fn key(account: &Account, lower: &str) -> String {
        format!("meta:{}:{lower}", account.key())
    }

    fn is_fresh(&self, e: &Entry) -> bool {
        match e.state {
            State::Missing => e.is_fresh(self.negative_ttl),
            _ => e.is_fresh(self.ttl),
        }
    }

    /// The metadata of `display` (its lowercase is `lower`) in `account`'s published root.
    pub async fn lookup(
        &self,
        account: &Account,
        display: &str,
        lower: &str,
    ) -> Result<Looked, Arc<UpstreamError>> {
        let key = Self::key(account, lower);
        // 1. L1, without waiting on anything.
        let l1 = lock(&self.l1).get(&key).cloned();
        if let Some(entry) = &l1
            && self.is_fresh(entry)
        {
            return Ok(Looked {
                entry: entry.clone(),
                source: Source::Cache,
            });
        }
        // 2–3. L2 then Dropbox, one flight per key.
        self.flight(&key, async {
            let mut stale = l1;
            if let Some(entry) = self.load(&key).await {
                if self.is_fresh(&entry) {
                    lock(&self.l1).put(key.clone(), entry.clone());
                    return Ok(Looked {
                        entry,
                        source: Source::Cache,
                    });
                }
                if stale
                    .as_ref()
                    .is_none_or(|s| s.checked_ms < entry.checked_ms)
                {
                    stale = Some(entry);
                }
            }
            let (entry, source) = self
                .fetch(account, display, stale.as_deref())
                .await
                .map_err(Arc::new)?;
            let entry = Arc::new(entry);
            self.save(&key, entry.clone()).await;
            Ok(Looked { entry, source })
        })
        .await
    }

    /// Records a file's metadata seen elsewhere (e.g. in a download's result).
    pub async fn record_file(&self, account: &Account, lower: &str, file: FileMetadata) {
        let key = Self::key(account, lower);
        self.save(&key, Arc::new(Entry::new(State::File(file))))
            .await;
    }

    /// Drops what is cached of one path, in L1 and the store.
    pub async fn forget(&self, account: &Account, lower: &str) {
        let key = Self::key(account, lower);
        lock(&self.l1).pop(&key);
        if let Err(e) = self.store.delete(&key).await {
            tracing::warn!(error = %e, "cannot delete a metadata entry from the store");
        }
    }

    /// Runs `fetch` once for every concurrent caller asking for `key`. If the caller running
    /// it goes away, a waiting one takes over (OnceCell semantics).
    async fn flight(
        &self,
        key: &str,
        fetch: impl Future<Output = Result<Looked, Arc<UpstreamError>>>,
    ) -> Result<Looked, Arc<UpstreamError>> {
        let cell = lock(&self.flights)
            .entry(key.to_owned())
            .or_default()
            .clone();
        let out = cell.get_or_init(|| fetch).await.clone();
        let mut flights = lock(&self.flights);
        if flights.get(key).is_some_and(|c| Arc::ptr_eq(c, &cell)) {
            flights.remove(key);
        }
        out
    }

    /// Reads an entry from the store; a store failure or a foreign version reads as absent.
    async fn load(&self, key: &str) -> Option<Arc<Entry>> {
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

    async fn save(&self, key: &str, entry: Arc<Entry>) {
        let retain = match entry.state {
            State::Missing => self.negative_ttl,
            _ => RETAIN.max(self.ttl),
        };
        let value = serde_json::to_vec(&*entry).expect("an entry serializes");
        lock(&self.l1).put(key.to_owned(), entry);
        if let Err(e) = self.store.set(key, &value, Some(retain)).await {
            tracing::warn!(error = %e, "cannot write a metadata entry to the store");
        }
    }

    /// Asks Dropbox, revalidating `stale` when it can.
    async fn fetch(
        &self,
        account: &Account,
        display: &str,
        stale: Option<&Entry>,
    ) -> Result<(Entry, Source), UpstreamError> {
        let path = account.dropbox_path(display);
        let path_lower = path.to_lowercase();
        let auth = &account.tokens;
        // A stale listing: only what changed since its cursor.
        if let Some(Entry {
            state: State::Folder(listing),
            ..
        }) = stale
        {
            match self.changes(account, &listing.cursor).await {
                Ok((deltas, cursor)) => {
                    if let Some(updated) = listing.apply(&path_lower, &deltas, cursor) {
                        let source = if updated.tag == listing.tag {
                            Source::Revalidated
                        } else {
                            Source::Dropbox
                        };
                        return Ok((Entry::new(State::Folder(updated)), source));
                    }
                }
                // Cursor reset, folder gone or replaced: look again from scratch.
                Err(UpstreamError::Reset | UpstreamError::NotFound | UpstreamError::NotFolder) => {}
                Err(e) => return Err(e),
            }
        }
        // The root of a Dropbox has no metadata: list it directly.
        let folder = if path.is_empty() {
            None
        } else {
            match self.dropbox.get_metadata(auth, &path).await {
                Ok(Metadata::File(f)) => {
                    let unchanged = matches!(stale,
                        Some(Entry { state: State::File(old), .. }) if old.rev == f.rev);
                    let source = if unchanged {
                        Source::Revalidated
                    } else {
                        Source::Dropbox
                    };
                    return Ok((Entry::new(State::File(f)), source));
                }
                Ok(Metadata::Folder(f)) => Some(f),
                Ok(Metadata::Deleted(_)) | Err(UpstreamError::NotFound) => {
                    return Ok((Entry::new(State::Missing), Source::Dropbox));
                }
                Err(e) => return Err(e),
            }
        };
        let first = match self.dropbox.list_folder(auth, &path, false).await {
            Ok(r) => r,
            // Deleted or replaced between the two calls.
            Err(UpstreamError::NotFound | UpstreamError::NotFolder) => {
                return Ok((Entry::new(State::Missing), Source::Dropbox));
            }
            Err(e) => return Err(e),
        };
        let mut entries = first.entries;
        let mut cursor = first.cursor;
        if first.has_more {
            let (more, last) = self.changes(account, &cursor).await?;
            entries.extend(more);
            cursor = last;
        }
        let listing = Listing::new(folder, &path_lower, entries, cursor);
        Ok((Entry::new(State::Folder(listing)), Source::Dropbox))
    }

    /// Every entry `list_folder/continue` has after `cursor`, following `has_more`.
    async fn changes(
        &self,
        account: &Account,
        cursor: &str,
    ) -> Result<(Vec<Metadata>, String), UpstreamError> {
        let mut entries = Vec::new();
        let mut cursor = cursor.to_owned();
        loop {
            let page = self
                .dropbox
                .list_folder_continue(&account.tokens, &cursor)
                .await?;
            entries.extend(page.entries);
            cursor = page.cursor;
            if !page.has_more {
                return Ok((entries, cursor));
            }
        }
    }
}
