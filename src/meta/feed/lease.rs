//! Following one account: the holder's lease on it (renewed every third of `feed.lease_ttl`),
//! its cursor record in the store, and the loop that waits on `list_folder/longpoll` (or a
//! webhook's poke) and reads the deltas.

use super::apply::apply;
use super::{Ctx, Message, Record, VERSION, backoff, lease_name, record_name};
use crate::account::Account;
use crate::meta::MetaCache;
use crate::store::now_ms;
use crate::upstream::error::UpstreamError;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::{Interval, MissedTickBehavior};

impl Ctx {
    pub(super) async fn publish(&self, msg: &Message) {
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
pub(super) async fn follow(ctx: Arc<Ctx>, account: Arc<Account>) {
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
    /// The last failure was a 429: its Retry-After.
    told_to_wait: Duration,
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
        self.told_to_wait = e.retry_after().unwrap_or_default();
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
async fn hold(ctx: &Ctx, account: &Arc<Account>, tick: &mut Interval) -> Option<()> {
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
        told_to_wait: Duration::ZERO,
    };
    lease.announce().await;
    let mut failures = 0usize;
    loop {
        if failures > 0 {
            // A 429 (to the feed, or to any call for the account here or in another
            // instance) says how long to wait, at the least.
            let told = std::mem::take(&mut lease.told_to_wait)
                .max(account.tokens.blocked_for().unwrap_or_default());
            lease
                .keep(tokio::time::sleep(backoff(failures).max(told)))
                .await?;
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
                // New versions a site will be asked for are fetched before the switch.
                if let Some(prefetch) = &ctx.prefetch {
                    lease.keep(prefetch.before_switch(account, &deltas)).await?;
                }
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
