//! What this instance knows of one account's change feed (`meta::feed` runs it): from when and
//! until when it vouches for cached entries, the generation lookups compare, and the pokes and
//! resets it counts. Each `Account` carries one.

use crate::store::now_ms;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use tokio::sync::Notify;

/// What this instance knows of one account's feed.
#[derive(Debug, Default)]
pub struct FeedStatus {
    /// Unix ms from which the feed covers every change.
    since_ms: AtomicU64,
    /// Unix ms until which the feed counts as live here (0: not live).
    live_until_ms: AtomicU64,
    /// Dropbox's id of the account, which webhooks name.
    account_id: OnceLock<String>,
    wake: Notify,
    pokes: AtomicU64,
    /// The last attempt to start the feed failed (logged once until it works).
    start_failing: AtomicBool,
    /// Moves whenever the feed changes this account's entries here, so a lookup that started
    /// before does not cache what it found (it may predate the change).
    generation: AtomicU64,
    /// Unix ms when the feed last vouched for this instance's cache (or when following began).
    vouched_ms: AtomicU64,
    /// Resets (`reset` from Dropbox: a full resync) this instance's holder went through.
    resets: AtomicU64,
    /// This instance holds the account's lease (it runs the longpolls).
    holding: AtomicBool,
}

impl FeedStatus {
    /// From when entries are trusted, while the feed is live.
    pub fn trusted_since(&self) -> Option<u64> {
        (now_ms() < self.live_until_ms.load(Ordering::Relaxed))
            .then(|| self.since_ms.load(Ordering::Relaxed))
    }

    /// Changes applied (or heard of) so far.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Marks a change to this account's entries: lookups under way must not cache what they
    /// found.
    pub fn bump(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// The feed vouches for entries confirmed since `since_ms` until `until_ms`.
    pub fn set_live(&self, since_ms: u64, until_ms: u64) {
        self.since_ms.fetch_max(since_ms, Ordering::Relaxed);
        self.live_until_ms.store(until_ms, Ordering::Relaxed);
        self.vouched_ms
            .fetch_max(now_ms().min(until_ms), Ordering::Relaxed);
    }

    /// Seconds since the feed last vouched for the cache here (0 while it does).
    pub fn lag_seconds(&self) -> f64 {
        if self.trusted_since().is_some() {
            return 0.0;
        }
        let since = self
            .vouched_ms
            .load(Ordering::Relaxed)
            .max(self.live_until_ms.load(Ordering::Relaxed));
        now_ms().saturating_sub(since) as f64 / 1000.0
    }

    /// Resets the holder here went through.
    pub fn resets(&self) -> u64 {
        self.resets.load(Ordering::Relaxed)
    }

    /// The feed no longer vouches for anything here.
    pub fn lapse(&self) {
        self.live_until_ms.store(0, Ordering::Relaxed);
    }

    /// Asks the feed to read the account's changes now (a webhook named it).
    pub fn poke(&self) {
        self.pokes.fetch_add(1, Ordering::Relaxed);
        self.wake.notify_one();
    }

    /// Webhook pokes this instance received for the account.
    pub fn pokes(&self) -> u64 {
        self.pokes.load(Ordering::Relaxed)
    }

    pub fn account_id(&self) -> Option<&str> {
        self.account_id.get().map(String::as_str)
    }

    /// Following begins: the lag counts from now.
    pub fn vouch_now(&self) {
        self.vouched_ms.fetch_max(now_ms(), Ordering::Relaxed);
    }

    pub fn set_account_id(&self, id: String) {
        let _ = self.account_id.set(id);
    }

    /// This instance holds (or no longer holds) the account's lease.
    pub fn set_holding(&self, holding: bool) {
        self.holding.store(holding, Ordering::Relaxed);
    }

    pub fn holding(&self) -> bool {
        self.holding.load(Ordering::Relaxed)
    }

    /// The holder here went through a reset.
    pub fn count_reset(&self) {
        self.resets.fetch_add(1, Ordering::Relaxed);
    }

    /// Starting the feed failed; returns whether it was failing already (logged once).
    pub fn start_failed(&self) -> bool {
        self.start_failing.swap(true, Ordering::Relaxed)
    }

    /// Starting the feed worked.
    pub fn started(&self) {
        self.start_failing.store(false, Ordering::Relaxed);
    }

    /// Unix ms from which the feed covers every change.
    pub fn since_ms(&self) -> u64 {
        self.since_ms.load(Ordering::Relaxed)
    }

    /// The feed covers every change from `since_ms` (it never moves back).
    pub fn move_since(&self, since_ms: u64) {
        self.since_ms.fetch_max(since_ms, Ordering::Relaxed);
    }

    /// Wakes the feed's wait (without counting a poke).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Resolves when the feed is woken or poked.
    pub fn woken(&self) -> tokio::sync::futures::Notified<'_> {
        self.wake.notified()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trust_lapses_and_since_only_moves_forward() {
        let s = FeedStatus::default();
        assert_eq!(s.trusted_since(), None);
        s.set_live(100, now_ms() + 60_000);
        assert_eq!(s.trusted_since(), Some(100));
        s.set_live(50, now_ms() + 60_000);
        assert_eq!(
            s.trusted_since(),
            Some(100),
            "a stale record never widens trust"
        );
        s.lapse();
        assert_eq!(s.trusted_since(), None);
        s.set_live(200, now_ms() - 1);
        assert_eq!(s.trusted_since(), None, "expired liveness is not live");
    }
}
