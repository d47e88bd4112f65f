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
mod fetch;
mod write;

use crate::account::Account;
use crate::flight::Flights;
use crate::store::{Store, StoreError};
use crate::upstream::client::Dropbox;
use crate::upstream::error::UpstreamError;
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

/// SECURITY: request paths choose the L1's keys (an unknown name is remembered too), so its
/// hasher is keyed from the OS's random source, not foldhash's default seed (made of addresses
/// and the clock): collisions cannot be aimed at it.
fn keyed_hasher() -> foldhash::fast::SeedableRandomState {
    static SHARED: std::sync::OnceLock<foldhash::SharedSeed> = std::sync::OnceLock::new();
    let shared = SHARED.get_or_init(|| foldhash::SharedSeed::from_u64(rand::random()));
    foldhash::fast::SeedableRandomState::with_seed(rand::random(), shared)
}

thread_local! {
    /// The buffer `lookup` builds its L1 key in.
    static L1_KEY: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

pub struct MetaCache {
    /// Hashed with foldhash (SipHash was a twentieth of a hit's instructions), keyed by
    /// `keyed_hasher`.
    l1: Mutex<LruCache<String, Arc<Entry>, foldhash::fast::SeedableRandomState>>,
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
            l1: Mutex::new(LruCache::with_hasher(l1_entries, keyed_hasher())),
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
        let mut key = String::new();
        Self::write_key(&mut key, account, lower);
        key
    }

    /// Appends `key(account, lower)` to `out` (not `format!`: a hit's L1 probe builds it in
    /// a reused buffer and allocates nothing).
    fn write_key(out: &mut String, account: &Account, lower: &str) {
        let prefix = account.key();
        out.reserve("meta::".len() + prefix.len() + lower.len());
        out.push_str("meta:");
        out.push_str(prefix);
        out.push(':');
        out.push_str(lower);
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

    /// The store behind the metadata (for what is kept beside it: albums' image facts).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Step 1 of `lookup` alone: the answer L1 gives at once, if it gives one (a fresh entry,
    /// or one to serve while it is updated behind). None: `lookup` (which looks again).
    pub fn lookup_in_l1(
        self: &Arc<Self>,
        account: &Arc<Account>,
        display: &str,
        lower: &str,
    ) -> Option<Looked> {
        let entry = self.in_l1(account, lower)?;
        self.answer_from_l1(account, display, lower, &entry)
    }

    /// L1's entry for `lower` of `account`, fresh or not.
    fn in_l1(&self, account: &Account, lower: &str) -> Option<Arc<Entry>> {
        L1_KEY.with_borrow_mut(|key| {
            key.clear();
            Self::write_key(key, account, lower);
            lock(&self.l1).get(key.as_str()).cloned()
        })
    }

    /// What `entry`, from L1, answers: itself if fresh, or while it is updated behind.
    fn answer_from_l1(
        self: &Arc<Self>,
        account: &Arc<Account>,
        display: &str,
        lower: &str,
        entry: &Arc<Entry>,
    ) -> Option<Looked> {
        if self.is_fresh(account, entry) {
            self.count(L1);
            return Some(Looked {
                entry: entry.clone(),
                source: Source::Cache,
            });
        }
        if self.may_update_behind(entry) {
            self.count(L1);
            return Some(self.update_behind(account, display, lower, entry.clone()));
        }
        None
    }

    /// The metadata of `display` (its lowercase is `lower`) in `account`'s published root.
    pub async fn lookup(
        self: &Arc<Self>,
        account: &Arc<Account>,
        display: &str,
        lower: &str,
    ) -> Result<Looked, Arc<UpstreamError>> {
        // 1. L1, without waiting on anything.
        let l1 = self.in_l1(account, lower);
        if let Some(looked) = l1
            .as_ref()
            .and_then(|entry| self.answer_from_l1(account, display, lower, entry))
        {
            return Ok(looked);
        }
        // Boxed: a hit's future stays small (this one is kilobytes, moved with its parent).
        let key = Self::key(account, lower);
        Box::pin(self.lookup_beyond_l1(account, display, lower, key, l1)).await
    }

    /// 2–3. L2 then Dropbox, one flight per key.
    async fn lookup_beyond_l1(
        self: &Arc<Self>,
        account: &Arc<Account>,
        display: &str,
        lower: &str,
        key: String,
        l1: Option<Arc<Entry>>,
    ) -> Result<Looked, Arc<UpstreamError>> {
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
}
