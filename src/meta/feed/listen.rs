//! Hearing the other instances on pub/sub: invalidations dropped from L1, a new `since`, a
//! webhook's poke for the account this instance holds, and accounts linked or unlinked
//! elsewhere.

use super::{Message, Shared, VERSION};
use crate::meta::{MetaCache, lock};
use crate::store::Subscription;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Hears other instances: drops what they invalidated from L1, wakes feeds they poke, and
/// takes up the accounts they link or unlink.
pub(super) async fn listen(shared: Arc<Shared>, sub: Subscription) {
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
                if let Some(wait) = msg.rate_limited_ms {
                    account.tokens.block_here(Duration::from_millis(wait));
                }
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
