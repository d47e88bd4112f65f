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

use super::entry::{Entry, State, now_ms};
use super::{MetaCache, lock};
use crate::account::{Account, Accounts};
use crate::store::{Store, StoreError, Subscription};
use crate::upstream::client::Dropbox;
use crate::upstream::error::UpstreamError;
use crate::upstream::types::Metadata;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio::time::{Interval, MissedTickBehavior};

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
    dropbox: Arc<Dropbox>,
    store: Store,
    instance: String,
    longpoll_timeout: Duration,
    lease_ttl: Duration,
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
    ) -> Feeds {
        let ctx = Arc::new(Ctx {
            meta,
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

impl Ctx {
    async fn publish(&self, msg: &Message) {
        let bytes = serde_json::to_vec(msg).expect("a message serializes");
        if let Err(e) = self.store.publish(&bytes).await {
            tracing::warn!(error = %e, "cannot publish an invalidation");
        }
    }

    async fn load_record(&self, account: &Account) -> Option<Record> {
        let bytes = self.store.get(&record_name(&account.alias)).await.ok()??;
        serde_json::from_slice::<Record>(&bytes)
            .ok()
            .filter(|r| r.v == VERSION)
    }

    async fn save_record(&self, account: &Account, record: &Record) {
        let bytes = serde_json::to_vec(record).expect("a record serializes");
        if let Err(e) = self
            .store
            .set(&record_name(&account.alias), &bytes, None)
            .await
        {
            tracing::warn!(error = %e, "cannot save the feed's cursor");
        }
    }

    /// A follower learns from the holder's record whether the feed is live.
    async fn observe(&self, account: &Account) {
        match self.load_record(account).await {
            Some(r) if r.live_until_ms > now_ms() => {
                account.feed.set_live(r.since_ms, r.live_until_ms);
            }
            _ => account.feed.lapse(),
        }
    }

    /// A cursor for "now". It covers changes from when Dropbox made it, somewhere before
    /// its answer arrived: entries confirmed from then on are covered.
    async fn start_cursor(&self, account: &Account) -> Result<Record, UpstreamError> {
        let cursor = self
            .dropbox
            .get_latest_cursor(&account.tokens, &account.root, true)
            .await?;
        Ok(Record {
            v: VERSION,
            root: account.root.clone(),
            cursor,
            since_ms: now_ms(),
            live_until_ms: 0,
        })
    }
}

/// One account's follower, for as long as the proxy runs: holds the lease or watches the
/// holder's record.
async fn follow(ctx: Arc<Ctx>, account: Arc<Account>) {
    let mut tick = tokio::time::interval(ctx.lease_ttl / 3);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if account.feed.account_id().is_none() {
            match ctx.dropbox.account_id(&account.tokens).await {
                Ok(id) => {
                    account.feed.set_account_id(id);
                }
                Err(e) => tracing::debug!(error = %e, "cannot learn the account's id yet"),
            }
        }
        match ctx
            .store
            .hold_lease(&lease_name(&account), &ctx.instance, ctx.lease_ttl)
            .await
        {
            Ok(true) => {
                tracing::info!(alias = %account.alias, "following the account's change feed");
                account.feed.set_holding(true);
                let _ = hold(&ctx, &account, &mut tick).await;
                account.feed.set_holding(false);
                account.feed.lapse();
            }
            Ok(false) => ctx.observe(&account).await,
            // Cannot hear the holder: trust TTLs until the store is back.
            Err(_) => account.feed.lapse(),
        }
    }
}

/// The lease, renewed while something is awaited.
struct Lease<'a> {
    ctx: &'a Ctx,
    account: &'a Account,
    tick: &'a mut Interval,
    record: Record,
    /// The last feed call worked.
    healthy: bool,
}

impl Lease<'_> {
    /// Runs `fut`, renewing the lease on each tick; None if the lease was lost meanwhile.
    async fn keep<T>(&mut self, fut: impl Future<Output = T>) -> Option<T> {
        let mut fut = std::pin::pin!(fut);
        loop {
            tokio::select! {
                out = &mut fut => return Some(out),
                _ = self.tick.tick() => if !self.renew().await { return None },
            }
        }
    }

    /// Renews the lease and says whether the feed is live; false when the lease is lost.
    async fn renew(&mut self) -> bool {
        let name = lease_name(self.account);
        match self
            .ctx
            .store
            .hold_lease(&name, &self.ctx.instance, self.ctx.lease_ttl)
            .await
        {
            Ok(true) => {
                self.announce().await;
                true
            }
            Ok(false) => {
                tracing::info!(alias = %self.account.alias, "another instance took the feed over");
                false
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot renew the feed's lease");
                false
            }
        }
    }

    /// Saves the record, vouching for the feed for one lease period if it is healthy.
    async fn announce(&mut self) {
        let status = &self.account.feed;
        if self.healthy {
            self.record.live_until_ms = now_ms() + self.ctx.lease_ttl.as_millis() as u64;
            status.set_live(self.record.since_ms, self.record.live_until_ms);
        } else {
            self.record.live_until_ms = 0;
            status.lapse();
        }
        self.ctx.save_record(self.account, &self.record).await;
    }

    fn fail(&mut self, e: &UpstreamError) {
        if self.healthy {
            tracing::warn!(alias = %self.account.alias, error = %e,
                "the change feed failed; metadata falls back to TTLs");
        }
        self.healthy = false;
        self.record.live_until_ms = 0;
        self.account.feed.lapse();
    }

    /// Starts over from a new cursor: nothing confirmed before now is trusted any more.
    /// Some(false) when no new cursor could be had.
    async fn restart(&mut self) -> Option<bool> {
        let (ctx, account) = (self.ctx, self.account);
        account.feed.count_reset();
        tracing::info!(alias = %account.alias, "the feed's cursor was reset; resyncing");
        // Changes may have been missed: vouch for nothing until the new cursor is there.
        self.healthy = false;
        self.announce().await;
        match self.keep(ctx.start_cursor(account)).await? {
            Ok(record) => {
                self.record = record;
                self.healthy = true;
                // Raises this instance's `since` to the new cursor's.
                self.announce().await;
                let msg = Message {
                    since_ms: Some(self.record.since_ms),
                    ..Message::new(&ctx.instance, &account.alias)
                };
                ctx.publish(&msg).await;
                Some(true)
            }
            Err(e) => {
                self.fail(&e);
                Some(false)
            }
        }
    }
}

/// Follows the feed while the lease holds (None once it is lost).
async fn hold(ctx: &Ctx, account: &Account, tick: &mut Interval) -> Option<()> {
    // A saved cursor is caught up on before the feed vouches for anything; one saved for
    // another root is void, and so is everything cached under this alias.
    let saved = match ctx.load_record(account).await {
        Some(r) if r.root != account.root => {
            tracing::info!(alias = %account.alias, "the published root changed; starting afresh");
            let all = [MetaCache::key(account, "")];
            if ctx.meta.forget_prefixes(account, &all).await.is_err() {
                return Some(());
            }
            None
        }
        other => other,
    };
    let (record, mut behind) = match saved {
        Some(r) => (r, true),
        None => match ctx.start_cursor(account).await {
            Ok(r) => (r, false),
            Err(e) => {
                if !account.feed.start_failed() {
                    tracing::warn!(alias = %account.alias, error = %e,
                        "cannot start the change feed (is the published root there?); \
                         retrying, with TTLs meanwhile");
                }
                return Some(());
            }
        },
    };
    account.feed.started();
    let mut lease = Lease {
        ctx,
        account,
        tick,
        record,
        healthy: !behind,
    };
    lease.announce().await;
    let mut failures = 0usize;
    loop {
        if failures > 0 {
            lease.keep(tokio::time::sleep(backoff(failures))).await?;
        }
        let cursor = lease.record.cursor.clone();
        if std::mem::take(&mut behind) {
            // Straight to reading what happened while nobody followed.
        } else {
            // 1. Wait for changes: a longpoll, or a webhook's poke.
            let woken = async {
                tokio::select! {
                    polled = ctx.dropbox.longpoll(&cursor, ctx.longpoll_timeout) => Some(polled),
                    () = account.feed.woken() => None,
                }
            };
            match lease.keep(woken).await? {
                None => {}
                Some(Ok(polled)) => {
                    if let Some(secs) = polled.backoff {
                        let wait = tokio::time::sleep(Duration::from_secs(secs));
                        lease.keep(wait).await?;
                    }
                    if !polled.changes {
                        failures = 0;
                        if !lease.healthy {
                            lease.healthy = true;
                            lease.announce().await;
                        }
                        continue;
                    }
                }
                Some(Err(UpstreamError::Reset)) => {
                    if !lease.restart().await? {
                        failures += 1;
                    }
                    continue;
                }
                Some(Err(e)) => {
                    lease.fail(&e);
                    failures += 1;
                    continue;
                }
            }
        }
        // 2. Read them, apply them, tell the others, then move the cursor on.
        match lease.keep(ctx.meta.changes(account, &cursor)).await? {
            Ok((deltas, next)) => {
                // The cursor moves on only once every change is in the store.
                let applied = lease
                    .keep(apply(&ctx.meta, account, &deltas, &ctx.instance))
                    .await?;
                let msg = match applied {
                    Ok(msg) => msg,
                    Err(e) => {
                        tracing::warn!(alias = %account.alias, error = %e,
                            "cannot apply changes to the store; retrying them");
                        lease.healthy = false;
                        lease.announce().await;
                        failures += 1;
                        continue;
                    }
                };
                if !msg.keys.is_empty() || !msg.prefixes.is_empty() {
                    ctx.publish(&msg).await;
                }
                lease.record.cursor = next;
                lease.healthy = true;
                failures = 0;
                lease.announce().await;
                if !deltas.is_empty() {
                    tracing::info!(alias = %account.alias, changes = deltas.len(), "applied changes from Dropbox");
                }
            }
            Err(UpstreamError::Reset) => {
                if !lease.restart().await? {
                    failures += 1;
                }
            }
            Err(e) => {
                lease.fail(&e);
                failures += 1;
            }
        }
    }
}

/// `abs` (a Dropbox `path_lower`) relative to the root `root_lower`: `""` for the root.
fn relative<'a>(root_lower: &str, abs: &'a str) -> Option<&'a str> {
    let rest = abs.strip_prefix(root_lower)?;
    (rest.is_empty() || rest.starts_with('/')).then_some(rest)
}

/// The folder holding `rel` (`""` is the root), None for the root itself.
fn parent_of(rel: &str) -> Option<&str> {
    rel.rfind('/').map(|i| &rel[..i])
}

/// Applies deltas in order to L1 and the store; returns what other instances must drop.
async fn apply(
    meta: &MetaCache,
    account: &Account,
    deltas: &[Metadata],
    from: &str,
) -> Result<Message, StoreError> {
    let root = account.root.to_lowercase();
    let mut msg = Message::new(from, &account.alias);
    if deltas.is_empty() {
        return Ok(msg);
    }
    // Lookups under way may have read the old state: they must not cache it.
    account.feed.bump();
    let since = account.feed.since_ms();
    let mut parents: Vec<(String, Vec<Metadata>)> = Vec::new();
    for m in deltas {
        let Some(rel) = m.path_lower().and_then(|abs| relative(&root, abs)) else {
            continue;
        };
        let key = MetaCache::key(account, rel);
        match m {
            // A file replaces anything at its path, children included.
            Metadata::File(f) => {
                meta.save(&key, Arc::new(Entry::new(State::File(f.clone()))))
                    .await?;
                msg.prefixes.push(format!("{key}/"));
            }
            // Gone, with everything under it: remembered as missing (a tombstone, so a slower
            // lookup cannot bring the old entry back).
            Metadata::Deleted(_) => {
                meta.save(&key, Arc::new(Entry::new(State::Missing)))
                    .await?;
                msg.prefixes.push(format!("{key}/"));
            }
            // A folder keeps its children; a listing already cached stays as it is.
            Metadata::Folder(_) => {
                let cached = meta.load(&key).await;
                if !matches!(
                    cached.as_deref(),
                    Some(Entry {
                        state: State::Folder(_),
                        ..
                    })
                ) {
                    meta.forget_key(&key).await?;
                }
            }
        }
        msg.keys.push(key);
        if let Some(parent) = parent_of(rel) {
            match parents.iter_mut().find(|(p, _)| p == parent) {
                Some((_, ds)) => ds.push(m.clone()),
                None => parents.push((parent.to_owned(), vec![m.clone()])),
            }
        }
    }
    msg.prefixes.sort();
    msg.prefixes.dedup();
    meta.forget_prefixes(account, &msg.prefixes).await?;
    // Each parent listing takes its deltas in place (it keeps its own cursor: replaying them
    // on a later revalidation changes nothing).
    for (parent, ds) in parents {
        let key = MetaCache::key(account, &parent);
        let cached = meta.load(&key).await;
        let updated = match cached.as_deref() {
            Some(Entry {
                state: State::Folder(listing),
                checked_ms,
                ..
            }) => listing
                .apply(&format!("{root}{parent}"), &ds, listing.cursor.clone())
                .map(|l| {
                    let mut e = Entry::new(State::Folder(l));
                    // A listing the feed did not vouch for stays unvouched: it may lack a
                    // change from before the feed's start.
                    if *checked_ms < since {
                        e.checked_ms = *checked_ms;
                    }
                    e
                }),
            _ => None,
        };
        match updated {
            Some(entry) => meta.save(&key, Arc::new(entry)).await?,
            None => meta.forget_key(&key).await?,
        }
        msg.keys.push(key);
    }
    msg.keys.sort();
    msg.keys.dedup();
    Ok(msg)
}

/// Hears other instances: drops what they invalidated from L1, wakes feeds they poke, and
/// takes up the accounts they link or unlink.
async fn listen(shared: Arc<Shared>, sub: Subscription) {
    hear(&shared, sub).await;
    // Nobody is listening any more: trust nothing the others might have changed.
    shared.ctx.meta.listening.store(false, Ordering::Relaxed);
}

async fn hear(shared: &Shared, mut sub: Subscription) {
    let ctx = &shared.ctx;
    loop {
        tokio::select! {
            msg = sub.messages.recv() => {
                let Some(bytes) = msg else { return };
                let Ok(msg) = serde_json::from_slice::<Message>(&bytes) else {
                    tracing::warn!("ignoring an unreadable invalidation message");
                    continue;
                };
                if msg.v != VERSION || msg.from == ctx.instance {
                    continue;
                }
                if msg.account {
                    relink(shared, &msg.alias).await;
                    continue;
                }
                let Some(account) = shared.accounts.lookup(&msg.alias) else { continue };
                if !msg.keys.is_empty() || !msg.prefixes.is_empty() {
                    account.feed.bump();
                }
                ctx.meta.drop_l1(&msg.keys, &msg.prefixes);
                if let Some(since) = msg.since_ms {
                    account.feed.move_since(since);
                }
                if msg.poke {
                    account.feed.wake();
                }
            }
            changed = sub.healthy.changed() => {
                if changed.is_err() {
                    return;
                }
                let healthy = *sub.healthy.borrow_and_update();
                if healthy {
                    // Whatever was said while we were not listening is lost: start L1 afresh.
                    lock(&ctx.meta.l1).clear();
                }
                ctx.meta.listening.store(healthy, Ordering::Relaxed);
            }
        }
    }
}

/// Another instance linked or unlinked `alias`: publish what the store now says.
async fn relink(shared: &Shared, alias: &str) {
    let ctx = &shared.ctx;
    match shared.accounts.reload(&ctx.store, alias).await {
        Ok((gone, came)) => {
            if gone.is_some() || came.is_some() {
                ctx.meta.drop_l1(&[], &[MetaCache::key_prefix(alias)]);
                tracing::info!(
                    alias,
                    linked = came.is_some(),
                    "an account changed elsewhere"
                );
            }
            let old = match came {
                Some(new) => shared.follow(new),
                None => lock(&shared.followers).remove(alias),
            };
            if let Some(old) = old {
                old.task.abort();
            }
        }
        Err(e) => tracing::warn!(error = %e, alias, "cannot read a changed account"),
    }
}

#[cfg(test)]
mod tests {
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
