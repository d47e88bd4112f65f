//! Metadata of published paths: an in-process LRU (L1), the store (L2), then Dropbox.
//!
//! Keyed by account and lowercased path. While the account's change feed is live here, an
//! entry confirmed since the feed's start stays fresh until the feed says its path changed;
//! otherwise it is fresh for `cache.metadata_ttl` after Dropbox last confirmed it
//! (`cache.negative_ttl` for "not found"). A stale folder listing is revalidated with
//! `list_folder/continue` on its cursor, so an unchanged folder costs one small call and never
//! a full re-list; a stale file is revalidated with `get_metadata`. Identical concurrent
//! lookups share one flight. A fresh L1 entry answers without touching the store.
//!
//! When Dropbox fails, an entry confirmed within `cache.stale_if_error` is served (STALE); an
//! entry expired by at most `cache.stale_while_revalidate` is served at once while one
//! background refresh runs (UPDATING).

pub mod entry;
pub mod feed;

use crate::account::Account;
use crate::flight::Flights;
use crate::store::{Store, StoreError};
use crate::upstream::client::Dropbox;
use crate::upstream::error::UpstreamError;
use crate::upstream::types::{FileMetadata, Metadata};
pub use entry::{Entry, Listing, State};
use lru::LruCache;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// How long the store keeps an entry after its last confirmation: stale entries stay useful
/// (a listing's cursor revalidates it cheaply; later, stale-if-error serves it).
const RETAIN: Duration = Duration::from_secs(7 * 24 * 3600);

/// Indexes of `MetaCache::answered`.
const L1: usize = 0;
const L2: usize = 1;
const DROPBOX: usize = 2;

/// Where a lookup's answer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Fresh in L1 or L2: Dropbox was not asked.
    Cache,
    /// Was stale; Dropbox confirmed it unchanged.
    Revalidated,
    /// Fetched (or changed) from Dropbox.
    Dropbox,
    /// Dropbox failed; served from cache within `stale_if_error`.
    Stale,
    /// Expired; served from cache while a background refresh runs.
    Updating,
}

/// A lookup's answer.
#[derive(Debug, Clone)]
pub struct Looked {
    pub entry: Arc<Entry>,
    pub source: Source,
}

/// How long entries stay fresh, and how stale they may be served.
#[derive(Debug, Clone, Copy)]
pub struct Freshness {
    pub ttl: Duration,
    pub negative_ttl: Duration,
    pub stale_if_error: Duration,
    pub stale_while_revalidate: Duration,
}

pub struct MetaCache {
    l1: Mutex<LruCache<String, Arc<Entry>>>,
    store: Store,
    dropbox: Arc<Dropbox>,
    fresh: Freshness,
    flights: Flights<Result<Looked, Arc<UpstreamError>>>,
    /// Invalidations from other instances are arriving (always true with one instance): the
    /// change feed may be trusted here.
    listening: AtomicBool,
    /// Lookups answered by L1, by L2, and by Dropbox (fetched, revalidated, or stale after
    /// Dropbox failed), for `/metrics`.
    answered: [AtomicU64; 3],
    /// Background refreshes and store writes under way.
    behind: Arc<tokio::sync::watch::Sender<usize>>,
}

/// What a purge dropped.
#[derive(Debug, Default)]
pub struct Purged {
    /// The key (or key prefix) purged.
    pub key: String,
    /// The entries dropped.
    pub keys: Vec<String>,
    /// Content hashes of the files among them.
    pub hashes: Vec<String>,
}

/// Lookups by where they were answered.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct LookupCounts {
    pub l1: u64,
    pub l2: u64,
    pub dropbox: u64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl MetaCache {
    pub fn new(
        store: Store,
        dropbox: Arc<Dropbox>,
        l1_entries: NonZeroUsize,
        fresh: Freshness,
    ) -> MetaCache {
        MetaCache {
            l1: Mutex::new(LruCache::new(l1_entries)),
            listening: AtomicBool::new(true),
            answered: Default::default(),
            behind: Arc::new(tokio::sync::watch::Sender::new(0)),
            store,
            dropbox,
            fresh,
            flights: Flights::default(),
        }
    }

    /// From when `account`'s entries are vouched for by its change feed, if the feed is live
    /// here and this instance hears the others' invalidations.
    pub fn feed_since(&self, account: &Account) -> Option<u64> {
        account.feed.trusted_since().filter(|_| self.is_listening())
    }

    /// Runs `work` in the background, counted until it ends (see `settled`).
    fn behind(&self, work: impl Future<Output = ()> + Send + 'static) {
        self.behind.send_modify(|n| *n += 1);
        let count = self.behind.clone();
        tokio::spawn(async move {
            work.await;
            count.send_modify(|n| *n -= 1);
        });
    }

    /// Waits until no background refresh or store write of this cache is under way: a stopping
    /// proxy lets them finish, so the store is free when it returns.
    pub async fn settled(&self) {
        let _ = self.behind.subscribe().wait_for(|n| *n == 0).await;
    }

    /// Lookups so far, by where they were answered.
    pub fn lookups(&self) -> LookupCounts {
        let n = |i: usize| self.answered[i].load(Ordering::Relaxed);
        LookupCounts {
            l1: n(L1),
            l2: n(L2),
            dropbox: n(DROPBOX),
        }
    }

    /// Entries in L1 now, and its capacity.
    pub fn l1_len(&self) -> (usize, usize) {
        let l1 = lock(&self.l1);
        (l1.len(), l1.cap().get())
    }

    fn count(&self, tier: usize) {
        self.answered[tier].fetch_add(1, Ordering::Relaxed);
    }

    /// Whether invalidations from other instances are arriving (always, with one instance).
    pub fn is_listening(&self) -> bool {
        self.listening.load(Ordering::Relaxed)
    }

    /// The store name of an entry: `meta:<alias>:<path_lower>`.
    pub fn key(account: &Account, lower: &str) -> String {
        format!("meta:{}:{lower}", account.key())
    }

    /// The prefix of every entry of the account `alias`.
    pub fn key_prefix(alias: &str) -> String {
        format!("meta:{alias}:")
    }

    /// Drops everything cached of `alias` (it was unlinked, or linked to another Dropbox).
    pub async fn forget_account(&self, alias: &str) -> Result<(), StoreError> {
        let prefix = Self::key_prefix(alias);
        self.drop_l1(&[], std::slice::from_ref(&prefix));
        self.store
            .delete_prefixes(&prefix, std::slice::from_ref(&prefix))
            .await
    }

    fn ttl(&self, e: &Entry) -> Duration {
        match e.state {
            State::Missing => self.fresh.negative_ttl,
            _ => self.fresh.ttl,
        }
    }

    /// Fresh: while the change feed is live here, confirmed since it started covering (an
    /// older entry is revalidated once, whatever its TTL: the feed may have missed its change,
    /// e.g. after a cursor reset); otherwise confirmed within its TTL.
    fn is_fresh(&self, account: &Account, e: &Entry) -> bool {
        match self.feed_since(account) {
            Some(since) => e.checked_ms >= since,
            None => e.is_fresh(self.ttl(e)),
        }
    }

    /// Expired, but by no more than `stale_while_revalidate`.
    fn may_update_behind(&self, e: &Entry) -> bool {
        let window = self.fresh.stale_while_revalidate;
        !window.is_zero() && e.is_fresh(self.ttl(e) + window)
    }

    /// The metadata of `display` (its lowercase is `lower`) in `account`'s published root.
    pub async fn lookup(
        self: &Arc<Self>,
        account: &Arc<Account>,
        display: &str,
        lower: &str,
    ) -> Result<Looked, Arc<UpstreamError>> {
        let key = Self::key(account, lower);
        // 1. L1, without waiting on anything.
        let l1 = lock(&self.l1).get(&key).cloned();
        if let Some(entry) = &l1 {
            if self.is_fresh(account, entry) {
                self.count(L1);
                return Ok(Looked {
                    entry: entry.clone(),
                    source: Source::Cache,
                });
            }
            if self.may_update_behind(entry) {
                self.count(L1);
                return Ok(self.update_behind(account, display, lower, entry.clone()));
            }
        }
        // 2–3. L2 then Dropbox, one flight per key.
        let looked = self
            .flights
            .run(&key, async {
                // What the feed changes meanwhile is newer than anything this flight finds.
                let generation = account.feed.generation();
                let mut stale = l1;
                if let Some(entry) = self.load(&key).await {
                    if self.is_fresh(account, &entry) {
                        if account.feed.generation() == generation {
                            self.remember(&key, entry.clone());
                        }
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
                // A name its folder's fresh listing does not have costs Dropbox nothing.
                if let Some(missing) = self.absent_by_parent(account, lower).await {
                    return Ok(Looked {
                        entry: missing,
                        source: Source::Cache,
                    });
                }
                self.fetch_or_stale(account, display, &key, stale, generation)
                    .await
            })
            .await;
        match &looked {
            Ok(Looked {
                source: Source::Cache,
                ..
            }) => self.count(L2),
            _ => self.count(DROPBOX),
        }
        looked
    }

    /// "Not found", if a fresh listing of `lower`'s parent folder (in L1, else the store) says
    /// so: the name is not among its entries, or the parent is a file or missing. Derived each
    /// time, never stored: the listing is the fact.
    async fn absent_by_parent(&self, account: &Account, lower: &str) -> Option<Arc<Entry>> {
        let (parent, name) = lower.rsplit_once('/')?;
        let key = Self::key(account, parent);
        let cached = lock(&self.l1).peek(&key).cloned();
        let entry = match cached {
            Some(e) => e,
            None => self.load(&key).await?,
        };
        // Vouched for by the feed, or (TTLs only) confirmed within the TTL of a "not found":
        // an answer derived from the listing is never older than Dropbox's own would be kept.
        let fresh = match self.feed_since(account) {
            Some(since) => entry.checked_ms >= since,
            None => entry.is_fresh(self.fresh.negative_ttl.min(self.ttl(&entry))),
        };
        if !fresh {
            return None;
        }
        let absent = match &entry.state {
            State::Folder(listing) => !listing.entries.iter().any(|m| {
                m.name().to_lowercase() == name
                    || m.path_lower().and_then(|p| p.rsplit('/').next()) == Some(name)
            }),
            State::File(_) | State::Missing => true,
        };
        absent.then(|| {
            Arc::new(Entry {
                checked_ms: entry.checked_ms,
                ..Entry::new(State::Missing)
            })
        })
    }

    /// Serves `entry` now (UPDATING) and refreshes it in the background, once however many
    /// requests ask meanwhile (they join the same flight).
    fn update_behind(
        self: &Arc<Self>,
        account: &Arc<Account>,
        display: &str,
        lower: &str,
        entry: Arc<Entry>,
    ) -> Looked {
        let key = Self::key(account, lower);
        let running = self.flights.contains(&key);
        if !running {
            let me = self.clone();
            let account = account.clone();
            let display = display.to_owned();
            let stale = entry.clone();
            self.behind(async move {
                let generation = account.feed.generation();
                let refreshed = me
                    .flights
                    .run(
                        &key,
                        me.fetch_or_stale(&account, &display, &key, Some(stale), generation),
                    )
                    .await;
                if let Err(e) = refreshed {
                    tracing::warn!(error = %e, "background refresh failed");
                }
            });
        }
        Looked {
            entry,
            source: Source::Updating,
        }
    }

    /// Asks Dropbox; when Dropbox fails, serves `stale` if it was confirmed recently enough.
    /// The answer is cached unless the account's feed changed something since `generation`
    /// (the answer may predate that change).
    async fn fetch_or_stale(
        &self,
        account: &Account,
        display: &str,
        key: &str,
        stale: Option<Arc<Entry>>,
        generation: u64,
    ) -> Result<Looked, Arc<UpstreamError>> {
        let started = entry::now_ms();
        match self.fetch(account, display, stale.as_deref()).await {
            Ok((mut entry, source)) => {
                // Confirmed as of the question, not the answer: a change the feed reports
                // meanwhile is newer than this.
                entry.checked_ms = started;
                let entry = Arc::new(entry);
                if account.feed.generation() == generation
                    && let Err(e) = self.save(key, entry.clone()).await
                {
                    tracing::warn!(error = %e, "cannot write a metadata entry to the store");
                }
                Ok(Looked { entry, source })
            }
            Err(e) if e.is_outage() => match stale {
                Some(entry)
                    if !matches!(entry.state, State::Missing)
                        && entry.is_fresh(self.fresh.stale_if_error) =>
                {
                    tracing::warn!(error = %e, "Dropbox failed; serving stale metadata");
                    Ok(Looked {
                        entry,
                        source: Source::Stale,
                    })
                }
                _ => Err(Arc::new(e)),
            },
            Err(e) => Err(Arc::new(e)),
        }
    }

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

    async fn forget_key(&self, key: &str) -> Result<(), StoreError> {
        lock(&self.l1).pop(key);
        self.store.delete(key).await
    }

    /// Drops every entry of `account` whose key starts with one of `prefixes`, in L1 and the
    /// store.
    async fn forget_prefixes(
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
    fn drop_l1(&self, keys: &[String], prefixes: &[String]) {
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

    /// Puts an entry in L1 unless L1 already has a newer confirmation of that path.
    fn remember(&self, key: &str, entry: Arc<Entry>) {
        let mut l1 = lock(&self.l1);
        if l1
            .peek(key)
            .is_none_or(|old| old.checked_ms <= entry.checked_ms)
        {
            l1.put(key.to_owned(), entry);
        }
    }

    /// Keeps an entry in L1 and the store, unless either has a later confirmation of it.
    async fn save(&self, key: &str, entry: Arc<Entry>) -> Result<(), StoreError> {
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

    /// Asks Dropbox, revalidating `stale` when it can.
    async fn fetch(
        &self,
        account: &Account,
        display: &str,
        stale: Option<&Entry>,
    ) -> Result<(Entry, Source), UpstreamError> {
        let path = account.dropbox_path(display);
        let path_lower = path.to_lowercase();
        // A stale listing: only what changed since its cursor.
        if let Some(Entry {
            state: State::Folder(listing),
            ..
        }) = stale
        {
            match self.changes(account, &listing.cursor).await {
                Ok((deltas, cursor)) => {
                    let deltas = account.place(deltas, &path);
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
        // The root of a Dropbox has no metadata (None): list it directly.
        let folder = match account.metadata(&self.dropbox, &path).await {
            Ok(Some(Metadata::File(f))) => {
                let unchanged = matches!(stale,
                    Some(Entry { state: State::File(old), .. }) if old.rev == f.rev);
                let source = if unchanged {
                    Source::Revalidated
                } else {
                    Source::Dropbox
                };
                return Ok((Entry::new(State::File(f)), source));
            }
            Ok(Some(Metadata::Folder(f))) => Some(f),
            Ok(None) => None,
            Ok(Some(Metadata::Deleted(_))) | Err(UpstreamError::NotFound) => {
                return Ok((Entry::new(State::Missing), Source::Dropbox));
            }
            Err(e) => return Err(e),
        };
        let first = match account.list_folder(&self.dropbox, &path).await {
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
        let entries = account.place(entries, &path);
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
