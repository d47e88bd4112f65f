//! The change feed: each account's published root followed through Dropbox's cursor, so cached
//! metadata stays fresh until Dropbox says it changed.
//!
//! One instance at a time follows an account (a lease in the store, renewed every third of
//! `feed.lease_ttl`; another instance takes over when it lapses). The holder keeps a cursor
//! from `get_latest_cursor` over the root (recursive) in the store with the time it starts
//! covering (`since`), waits on `list_folder/longpoll` (honouring `backoff`) or a webhook's
//! poke, reads the deltas with `list_folder/continue`, and applies them: a file's new metadata
//! replaces its entry, a deleted path goes with everything under it, and each parent listing
//! takes the delta in place. The invalidated names go out on pub/sub so every instance drops
//! them from its L1. `reset` starts a new cursor from now: entries confirmed before it are no
//! longer trusted and get revalidated as they are asked for.
//!
//! An entry is trusted by the feed (fresh whatever its TTL) when it was confirmed at or after
//! `since` and the feed is live: the holder renewed its lease and its last Dropbox call
//! worked, and this instance hears invalidations. Otherwise TTLs apply, as with the feed off.

mod apply;
mod lease;
mod listen;

use lease::follow;
use listen::listen;

use super::{MetaCache, lock};
use crate::account::{Account, Accounts};
use crate::store::Store;
use crate::upstream::client::Dropbox;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::task::JoinHandle;

/// Version of the stored feed record and of pub/sub messages.
const VERSION: u32 = 1;
/// Waits after failed feed calls, doubling up to the last.
const BACKOFF: [u64; 6] = [250, 500, 1000, 2000, 5000, 15000];

/// One followed account's feed, for `/metrics` and `/admin/feeds`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FeedReport {
    pub account: String,
    /// Entries confirmed since `since_ms` are trusted whatever their TTL.
    pub live: bool,
    /// This instance runs the feed (the others watch its record).
    pub holder: bool,
    pub since_ms: u64,
    /// Seconds since the feed last vouched for the cache here; 0 while live.
    pub lag_seconds: f64,
    pub resets: u64,
    pub webhook_pokes: u64,
    /// Changes applied or heard of.
    pub generation: u64,
}

/// The holder's cursor, kept in the store so a restart (or another instance) resumes.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    v: u32,
    /// The published root the cursor follows (a changed root starts afresh).
    root: String,
    cursor: String,
    since_ms: u64,
    /// Unix ms until which the holder vouches for the feed (0: it is failing).
    live_until_ms: u64,
}

/// What goes between instances on pub/sub.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Message {
    pub v: u32,
    /// The sending instance (it ignores its own messages).
    pub from: String,
    pub alias: String,
    /// Metadata entries to drop from L1.
    #[serde(default)]
    pub keys: Vec<String>,
    /// ... and every entry under these.
    #[serde(default)]
    pub prefixes: Vec<String>,
    /// The feed restarted from this time: older entries are no longer trusted.
    #[serde(default)]
    pub since_ms: Option<u64>,
    /// A webhook named the account: its holder should read changes now.
    #[serde(default)]
    pub poke: bool,
    /// The alias was linked, re-linked or unlinked: read it again from the store.
    #[serde(default)]
    pub account: bool,
    /// Dropbox answered the sender 429 for this account: no call for this many ms (the
    /// account's rate limit is Dropbox's, shared by every instance). A wait, not a time, so
    /// that clocks apart between hosts do not shorten it.
    #[serde(default)]
    pub rate_limited_ms: Option<u64>,
}

impl Message {
    /// An empty message about `alias` from the instance `from`.
    fn new(from: &str, alias: &str) -> Message {
        Message {
            v: VERSION,
            from: from.to_owned(),
            alias: alias.to_owned(),
            ..Message::default()
        }
    }
}

/// What a feed needs, shared by its tasks.
struct Ctx {
    meta: Arc<MetaCache>,
    prefetch: Option<Arc<dyn Prefetch>>,
    dropbox: Arc<Dropbox>,
    store: Store,
    instance: String,
    longpoll_timeout: Duration,
    lease_ttl: Duration,
}

/// What runs between reading a batch of changes from Dropbox and switching the cache to them
/// (the sites' warmer: new versions' bodies fetched first, so the old version is served until
/// the new one is in). Within the lease; the cursor moves on only after the switch.
pub trait Prefetch: Send + Sync {
    fn before_switch<'a>(
        &'a self,
        account: &'a Arc<Account>,
        deltas: &'a [crate::upstream::types::Metadata],
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'a>>;
}

/// The running feed tasks and the listener of other instances; dropping this stops them.
#[derive(Default)]
pub struct Feeds {
    shared: Option<Arc<Shared>>,
    listener: Option<JoinHandle<()>>,
}

/// What the followers and the listener share.
struct Shared {
    ctx: Arc<Ctx>,
    /// `feed.enabled`: without it nothing is followed, but links are still heard.
    enabled: bool,
    accounts: Arc<Accounts>,
    followers: std::sync::Mutex<HashMap<String, Follower>>,
}

struct Follower {
    account: Arc<Account>,
    task: JoinHandle<()>,
}

impl Drop for Feeds {
    fn drop(&mut self) {
        if let Some(l) = &self.listener {
            l.abort();
        }
        if let Some(shared) = &self.shared {
            for f in lock(&shared.followers).values() {
                f.task.abort();
            }
        }
    }
}

impl Feeds {
    /// Starts one follower per account (when `feed.enabled`), and the listener of other
    /// instances' messages (with Redis).
    pub fn start(
        meta: Arc<MetaCache>,
        dropbox: Arc<Dropbox>,
        store: Store,
        accounts: Arc<Accounts>,
        config: &crate::config::FeedConfig,
        instance: String,
        prefetch: Option<Arc<dyn Prefetch>>,
    ) -> Feeds {
        let ctx = Arc::new(Ctx {
            meta,
            prefetch,
            dropbox,
            store,
            instance,
            longpoll_timeout: config.longpoll_timeout,
            lease_ttl: config.lease_ttl,
        });
        let shared = Arc::new(Shared {
            ctx: ctx.clone(),
            enabled: config.enabled,
            accounts: accounts.clone(),
            followers: Default::default(),
        });
        for a in accounts.all() {
            shared.share_rate_limits(&a);
            shared.follow(a);
        }
        let listener = ctx.store.subscribe().map(|sub| {
            // Until the subscription is up, other instances' changes could be missed.
            ctx.meta.listening.store(false, Ordering::Relaxed);
            tokio::spawn(listen(shared.clone(), sub))
        });
        Feeds {
            shared: Some(shared),
            listener,
        }
    }

    /// Stops following and gives up the leases, so another instance takes over at once.
    pub async fn stop(&self) {
        if let Some(l) = &self.listener {
            l.abort();
        }
        let Some(shared) = &self.shared else { return };
        let followers: Vec<Follower> = lock(&shared.followers).drain().map(|(_, f)| f).collect();
        for f in followers {
            shared.release(f).await;
        }
    }

    /// Follows a newly linked (or re-linked) account, in place of any before it.
    pub async fn follow(&self, account: Arc<Account>) {
        let Some(shared) = &self.shared else { return };
        shared.share_rate_limits(&account);
        if let Some(old) = shared.follow(account) {
            shared.release(old).await;
        }
    }

    /// Stops following an unlinked account.
    pub async fn unfollow(&self, alias: &str) {
        let Some(shared) = &self.shared else { return };
        let old = lock(&shared.followers).remove(alias);
        if let Some(old) = old {
            shared.release(old).await;
        }
    }

    /// Tells the other instances that `alias` was linked, re-linked or unlinked.
    pub async fn announce_account(&self, alias: &str) {
        let Some(shared) = &self.shared else { return };
        let msg = Message {
            account: true,
            ..Message::new(&shared.ctx.instance, alias)
        };
        shared.ctx.publish(&msg).await;
    }

    /// The followed accounts' feeds (none with `feed.enabled = false`), by alias.
    pub fn reports(&self) -> Vec<FeedReport> {
        let Some(shared) = &self.shared else {
            return Vec::new();
        };
        let mut out: Vec<FeedReport> = lock(&shared.followers)
            .values()
            .map(|f| {
                let s = &f.account.feed;
                FeedReport {
                    account: f.account.alias.clone(),
                    live: s.trusted_since().is_some(),
                    holder: s.holding(),
                    since_ms: s.since_ms(),
                    lag_seconds: s.lag_seconds(),
                    resets: s.resets(),
                    webhook_pokes: s.pokes(),
                    generation: s.generation(),
                }
            })
            .collect();
        out.sort_by(|a, b| a.account.cmp(&b.account));
        out
    }

    /// Tells the other instances to drop `keys`, and everything under `prefixes`, from their L1
    /// (a purge here).
    pub async fn invalidate(&self, alias: &str, keys: Vec<String>, prefixes: Vec<String>) {
        let Some(shared) = &self.shared else { return };
        let msg = Message {
            keys,
            prefixes,
            ..Message::new(&shared.ctx.instance, alias)
        };
        shared.ctx.publish(&msg).await;
    }

    /// Tells every instance's holder of `account` to read its changes now.
    pub async fn poke(&self, account: &Account) {
        account.feed.poke();
        let Some(shared) = &self.shared else { return };
        let msg = Message {
            poke: true,
            ..Message::new(&shared.ctx.instance, &account.alias)
        };
        shared.ctx.publish(&msg).await;
    }
}

impl Shared {
    /// A 429 this instance gets for `account` is told to the others (feed or not), so they
    /// hold off too instead of each spending a call to learn it.
    fn share_rate_limits(&self, account: &Arc<Account>) {
        if self.ctx.store.kind() != "redis" {
            return;
        }
        let (ctx, alias) = (self.ctx.clone(), account.alias.clone());
        account.tokens.on_block(Box::new(move |wait| {
            let msg = Message {
                rate_limited_ms: Some(wait.as_millis() as u64),
                ..Message::new(&ctx.instance, &alias)
            };
            let ctx = ctx.clone();
            tokio::spawn(async move { ctx.publish(&msg).await });
        }));
    }

    /// Starts following `account`; returns the follower it replaces.
    fn follow(&self, account: Arc<Account>) -> Option<Follower> {
        if !self.enabled {
            return None;
        }
        account.feed.vouch_now();
        let task = tokio::spawn(follow(self.ctx.clone(), account.clone()));
        let old = lock(&self.followers).insert(account.alias.clone(), Follower { account, task });
        if let Some(old) = &old {
            old.task.abort();
        }
        old
    }

    /// Ends a follower and gives its lease up.
    async fn release(&self, f: Follower) {
        f.task.abort();
        let _ = self
            .ctx
            .store
            .release_lease(&lease_name(&f.account), &self.ctx.instance)
            .await;
    }
}

fn lease_name(account: &Account) -> String {
    format!("lease:feed:{}", account.alias)
}

/// The store name of an account's feed record (its cursor).
pub fn record_name(alias: &str) -> String {
    format!("feed:{alias}")
}

fn backoff(failures: usize) -> Duration {
    Duration::from_millis(BACKOFF[failures.min(BACKOFF.len()).saturating_sub(1)])
}

#[cfg(test)]
mod tests {
    use super::apply::{parent_of, relative};
    use super::*;

    #[test]
    fn paths_relative_to_the_root_and_their_parents() {
        assert_eq!(relative("/public", "/public/a/b.txt"), Some("/a/b.txt"));
        assert_eq!(relative("/public", "/public"), Some(""));
        assert_eq!(relative("/public", "/publicity/x"), None);
        assert_eq!(relative("", "/a"), Some("/a"));
        assert_eq!(parent_of("/a/b.txt"), Some("/a"));
        assert_eq!(parent_of("/a"), Some(""));
        assert_eq!(parent_of(""), None);
    }

    #[test]
    fn backoff_grows_to_a_ceiling() {
        assert_eq!(backoff(1), Duration::from_millis(250));
        assert_eq!(backoff(3), Duration::from_millis(1000));
        assert_eq!(backoff(100), Duration::from_millis(15000));
    }
}
