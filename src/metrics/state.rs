//! What is read when scraped: the caches, feeds and accounts, set from a `Snapshot`.

use super::{Snapshot, counter, counter_vec, gauge, gauge_vec, mirror, register};
use prometheus::{IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

/// What is read when scraped.
pub(super) struct State {
    relink: IntGaugeVec,
    rate_limited: IntGaugeVec,
    feed_live: IntGaugeVec,
    feed_lag: prometheus::GaugeVec,
    feed_resets: IntCounterVec,
    feed_pokes: IntCounterVec,
    listening: IntGauge,
    store_up: IntGauge,
    cache_bytes: IntGauge,
    cache_max_bytes: IntGauge,
    cache_entries: IntGauge,
    cache_evictions: IntCounter,
    cache_memory_bytes: IntGauge,
    fills: IntGauge,
    coalesced: IntCounter,
    sendfile: IntCounter,
    disk_free: IntGauge,
    disk_size: IntGauge,
    lookups: IntCounterVec,
    l1_entries: IntGauge,
    accounts: IntGauge,
}

impl State {
    pub(super) fn new(registry: &Registry) -> State {
        let per_account = |name: &str, help: &str| gauge_vec(registry, name, help, &["account"]);
        State {
            relink: per_account(
                "dropcache_account_relink_required",
                "1 when Dropbox refused the account's refresh token (invalid_grant): it must be linked again",
            ),
            rate_limited: per_account(
                "dropcache_account_rate_limited_seconds",
                "Seconds left before the account may call Dropbox again (after a 429)",
            ),
            feed_live: per_account(
                "dropcache_feed_live",
                "1 while the account's change feed keeps its cached metadata fresh on this instance",
            ),
            feed_lag: register(
                registry,
                prometheus::GaugeVec::new(
                    Opts::new(
                        "dropcache_feed_lag_seconds",
                        "Seconds since the account's change feed last vouched for this instance's \
                         cache (0 while it does)",
                    ),
                    &["account"],
                )
                .expect("a valid metric"),
            ),
            feed_resets: counter_vec(
                registry,
                "dropcache_feed_resets_total",
                "Cursor resets from Dropbox (each a full resync) handled by this instance",
                &["account"],
            ),
            feed_pokes: counter_vec(
                registry,
                "dropcache_feed_webhook_pokes_total",
                "Webhook notifications naming the account that this instance received",
                &["account"],
            ),
            listening: gauge(
                registry,
                "dropcache_invalidations_listening",
                "1 while invalidations from other instances arrive (always 1 with the embedded store)",
            ),
            store_up: gauge(
                registry,
                "dropcache_store_up",
                "1 while the metadata store answers (0 during a Redis outage)",
            ),
            cache_bytes: gauge(
                registry,
                "dropcache_cache_bytes",
                "Bytes of file bodies in the body cache",
            ),
            cache_max_bytes: gauge(
                registry,
                "dropcache_cache_max_bytes",
                "cache.max_size: the most bytes of bodies kept",
            ),
            cache_entries: gauge(
                registry,
                "dropcache_cache_entries",
                "Blobs (bodies, thumbnails) in the body cache",
            ),
            cache_evictions: counter(
                registry,
                "dropcache_cache_evictions_total",
                "Blobs evicted from the body cache to make room",
            ),
            cache_memory_bytes: gauge(
                registry,
                "dropcache_cache_memory_bytes",
                "Bytes of hot small bodies also held in memory (cache.memory_size at most)",
            ),
            fills: gauge(
                registry,
                "dropcache_cache_fills_in_flight",
                "Downloads into the body cache under way",
            ),
            coalesced: counter(
                registry,
                "dropcache_cache_coalesced_waiters_total",
                "Requests that joined a download another request had started",
            ),
            sendfile: counter(
                registry,
                "dropcache_cache_sendfile_bytes_total",
                "Cached bytes sent from the page cache with sendfile (cache.sendfile)",
            ),
            disk_free: gauge(
                registry,
                "dropcache_cache_disk_free_bytes",
                "Bytes available on the body cache's file system",
            ),
            disk_size: gauge(
                registry,
                "dropcache_cache_disk_size_bytes",
                "Size of the body cache's file system",
            ),
            lookups: counter_vec(
                registry,
                "dropcache_metadata_lookups_total",
                "Metadata lookups by where they were answered: l1 (in process), l2 (the store), \
                 dropbox (fetched, revalidated, or stale after Dropbox failed)",
                &["tier"],
            ),
            l1_entries: gauge(
                registry,
                "dropcache_metadata_l1_entries",
                "Metadata entries held in process (L1)",
            ),
            accounts: gauge(
                registry,
                "dropcache_accounts",
                "Published accounts (configured and linked)",
            ),
        }
    }

    /// Sets every series from `now`.
    pub(super) fn set(&self, now: &Snapshot) {
        let s = self;
        // Per-account series start afresh: an unlinked account's go.
        for v in [&s.relink, &s.rate_limited, &s.feed_live] {
            v.reset();
        }
        s.feed_lag.reset();
        s.feed_resets.reset();
        s.feed_pokes.reset();
        s.accounts.set(now.accounts.len() as i64);
        for a in &now.accounts {
            let alias = [a.alias.as_str()];
            s.relink.with_label_values(&alias).set(i64::from(a.relink));
            s.rate_limited
                .with_label_values(&alias)
                .set(a.rate_limited_seconds);
        }
        for f in &now.feeds {
            let alias = [f.account.as_str()];
            s.feed_live.with_label_values(&alias).set(i64::from(f.live));
            s.feed_lag.with_label_values(&alias).set(f.lag_seconds);
            mirror(&s.feed_resets.with_label_values(&alias), f.resets);
            mirror(&s.feed_pokes.with_label_values(&alias), f.webhook_pokes);
        }
        s.listening.set(i64::from(now.listening));
        s.store_up.set(i64::from(now.store_up));
        let b = &now.cache;
        s.cache_bytes.set(b.bytes as i64);
        s.cache_max_bytes.set(b.max_bytes as i64);
        s.cache_entries.set(b.entries as i64);
        mirror(&s.cache_evictions, b.evictions);
        s.cache_memory_bytes.set(b.memory_bytes as i64);
        s.fills.set(b.fills_in_flight as i64);
        mirror(&s.coalesced, b.coalesced_waiters);
        mirror(&s.sendfile, b.sendfile_bytes);
        s.disk_free.set(b.disk_free_bytes as i64);
        s.disk_size.set(b.disk_size_bytes as i64);
        for (tier, n) in ["l1", "l2", "dropbox"].into_iter().zip(now.lookups) {
            mirror(&s.lookups.with_label_values(&[tier]), n);
        }
        s.l1_entries.set(now.l1_entries as i64);
    }
}
