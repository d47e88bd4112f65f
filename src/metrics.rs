//! Metrics: one registry per `App` (no globals), names `dropcache_*` with `_total` / `_seconds`
//! / `_bytes` suffixes, labels bounded: route templates, methods, status classes, cache
//! statuses, Dropbox endpoints and outcomes, and account aliases (one per series, never a
//! list; never a path or a token).
//!
//! Requests and Dropbox calls are counted where they happen (`Http`, `Upstream`). The state of
//! the caches, feeds and accounts is read when scraped, so the paths that change it carry no
//! metric plumbing: counters kept by those components as plain numbers are mirrored here.

use prometheus::core::Collector;
use prometheus::{
    Counter, Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};
use std::time::Duration;

/// Request durations (seconds): a cache hit is well under a millisecond, a cold large file
/// takes seconds.
const REQUEST_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// Dropbox answer times (seconds).
const UPSTREAM_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

fn register<C: Collector + Clone + 'static>(registry: &Registry, c: C) -> C {
    registry
        .register(Box::new(c.clone()))
        .expect("each metric is registered once");
    c
}

fn counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    register(
        registry,
        IntCounterVec::new(Opts::new(name, help), labels).expect("a valid metric"),
    )
}

fn gauge_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    register(
        registry,
        IntGaugeVec::new(Opts::new(name, help), labels).expect("a valid metric"),
    )
}

fn counter(registry: &Registry, name: &str, help: &str) -> IntCounter {
    register(
        registry,
        IntCounter::new(name, help).expect("a valid metric"),
    )
}

fn gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    register(registry, IntGauge::new(name, help).expect("a valid metric"))
}

fn histogram_vec(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
    buckets: &[f64],
) -> HistogramVec {
    register(
        registry,
        HistogramVec::new(
            HistogramOpts::new(name, help).buckets(buckets.to_vec()),
            labels,
        )
        .expect("a valid metric"),
    )
}

/// Raises a counter to `total`, a count kept elsewhere (it only ever grows).
fn mirror(c: &IntCounter, total: u64) {
    c.inc_by(total.saturating_sub(c.get()));
}

/// Requests served, counted when their answer's body is done.
#[derive(Clone)]
pub struct Http {
    requests: IntCounterVec,
    duration: HistogramVec,
    bytes: IntCounterVec,
}

/// One finished request, as `Http::observe` records it.
pub struct Served<'a> {
    pub route: &'static str,
    pub method: &'a str,
    pub status: u16,
    /// `X-Cache-Status`, or "none" for answers that are not cached content.
    pub cache: &'static str,
    pub source: &'static str,
    pub bytes: u64,
    pub elapsed: Duration,
}

impl Http {
    fn new(registry: &Registry) -> Http {
        let h = Http {
            requests: counter_vec(
                registry,
                "dropcache_http_requests_total",
                "Requests answered, by route template, method, status class and X-Cache-Status",
                &["route", "method", "status", "cache"],
            ),
            duration: histogram_vec(
                registry,
                "dropcache_http_request_duration_seconds",
                "Time from a request's arrival until its answer's last byte was handed over",
                &["route", "cache"],
                REQUEST_BUCKETS,
            ),
            bytes: counter_vec(
                registry,
                "dropcache_http_response_bytes_total",
                "Body bytes sent, by where they came from: disk (the body cache), dropbox \
                 (streamed from a download), generated (listings, thumbnails from memory, errors)",
                &["source"],
            ),
        };
        for source in ["disk", "dropbox", "generated"] {
            h.bytes.with_label_values(&[source]);
        }
        h
    }

    pub fn observe(&self, s: &Served<'_>) {
        let class = match s.status {
            100..=199 => "1xx",
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            _ => "5xx",
        };
        self.requests
            .with_label_values(&[s.route, method_label(s.method), class, s.cache])
            .inc();
        self.duration
            .with_label_values(&[s.route, s.cache])
            .observe(s.elapsed.as_secs_f64());
        self.bytes.with_label_values(&[s.source]).inc_by(s.bytes);
    }
}

/// The method as a label: the usual ones by name, anything else "other".
fn method_label(method: &str) -> &'static str {
    const KNOWN: &[&str] = &["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"];
    KNOWN
        .iter()
        .find(|m| **m == method)
        .copied()
        .unwrap_or("other")
}

/// Calls to Dropbox, counted by the client. A default `Upstream` counts into a registry of its
/// own that nobody reads (for clients built outside an `App`).
#[derive(Clone)]
pub struct Upstream {
    calls: IntCounterVec,
    latency: HistogramVec,
    retries: IntCounter,
    rate_limited: IntCounter,
    waited: Counter,
    refreshes: IntCounterVec,
}

impl Upstream {
    fn new(registry: &Registry) -> Upstream {
        let u = Upstream {
            calls: counter_vec(
                registry,
                "dropcache_dropbox_requests_total",
                "HTTP calls to Dropbox (each attempt), by endpoint and outcome",
                &["endpoint", "outcome"],
            ),
            latency: histogram_vec(
                registry,
                "dropcache_dropbox_request_duration_seconds",
                "Time until Dropbox's answer head arrived (downloads stream on afterwards)",
                &["endpoint"],
                UPSTREAM_BUCKETS,
            ),
            retries: counter(
                registry,
                "dropcache_dropbox_retries_total",
                "Calls to Dropbox made again after a 5xx, a timeout, a transport error or a 429",
            ),
            rate_limited: counter(
                registry,
                "dropcache_dropbox_rate_limited_total",
                "429 answers from Dropbox",
            ),
            waited: register(
                registry,
                Counter::new(
                    "dropcache_dropbox_retry_after_wait_seconds_total",
                    "Seconds requests spent waiting out Dropbox's Retry-After before calling again",
                )
                .expect("a valid metric"),
            ),
            refreshes: counter_vec(
                registry,
                "dropcache_token_refreshes_total",
                "Access token refreshes, by outcome: ok, failed (retried later), refused \
                 (invalid_grant: the account must be linked again)",
                &["outcome"],
            ),
        };
        // Known label values start at 0, so rates and alerts see the first one.
        for outcome in ["ok", "failed", "refused"] {
            u.refreshes.with_label_values(&[outcome]);
        }
        u
    }

    /// One attempt at `endpoint` ended with `outcome` after `elapsed`.
    pub fn call(&self, endpoint: &str, outcome: &str, elapsed: Duration) {
        self.calls.with_label_values(&[endpoint, outcome]).inc();
        self.latency
            .with_label_values(&[endpoint])
            .observe(elapsed.as_secs_f64());
        if outcome == "rate_limited" {
            self.rate_limited.inc();
        }
    }

    pub fn retry(&self) {
        self.retries.inc();
    }

    pub fn waited(&self, d: Duration) {
        self.waited.inc_by(d.as_secs_f64());
    }

    pub fn refresh(&self, outcome: &str) {
        self.refreshes.with_label_values(&[outcome]).inc();
    }
}

impl Default for Upstream {
    fn default() -> Self {
        Upstream::new(&Registry::new())
    }
}

/// What is read when scraped.
struct State {
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
    fills: IntGauge,
    coalesced: IntCounter,
    disk_free: IntGauge,
    disk_size: IntGauge,
    lookups: IntCounterVec,
    l1_entries: IntGauge,
    accounts: IntGauge,
}

impl State {
    fn new(registry: &Registry) -> State {
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
}

/// Everything the proxy exports.
pub struct Metrics {
    registry: Registry,
    pub http: Http,
    pub upstream: Upstream,
    /// Webhook notifications by outcome: accepted, forbidden, malformed.
    pub webhooks: IntCounterVec,
    state: State,
    /// One render at a time: mirroring counters and re-filling per-account series must not
    /// interleave between two scrapes.
    rendering: std::sync::Mutex<()>,
}

/// What `render` reads: plain figures, gathered by the ops endpoint when scraped.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub accounts: Vec<AccountFigures>,
    pub feeds: Vec<FeedFigures>,
    /// Invalidations from other instances arrive.
    pub listening: bool,
    pub store_up: bool,
    pub cache: CacheFigures,
    /// Metadata lookups answered in process, by the store, and by Dropbox.
    pub lookups: [u64; 3],
    pub l1_entries: usize,
}

#[derive(Debug, Default)]
pub struct AccountFigures {
    pub alias: String,
    pub relink: bool,
    pub rate_limited_seconds: i64,
}

#[derive(Debug, Default)]
pub struct FeedFigures {
    pub account: String,
    pub live: bool,
    pub lag_seconds: f64,
    pub resets: u64,
    pub webhook_pokes: u64,
}

#[derive(Debug, Default)]
pub struct CacheFigures {
    pub bytes: u64,
    pub max_bytes: u64,
    pub entries: usize,
    pub evictions: u64,
    pub fills_in_flight: usize,
    pub coalesced_waiters: u64,
    pub disk_free_bytes: u64,
    pub disk_size_bytes: u64,
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let build = gauge_vec(
            &registry,
            "dropcache_build_info",
            "Always 1; the running version in its label",
            &["version"],
        );
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        let webhooks = counter_vec(
            &registry,
            "dropcache_webhooks_total",
            "Webhook notifications received, by outcome",
            &["outcome"],
        );
        for outcome in ["accepted", "forbidden", "malformed"] {
            webhooks.with_label_values(&[outcome]);
        }
        Metrics {
            http: Http::new(&registry),
            upstream: Upstream::new(&registry),
            webhooks,
            state: State::new(&registry),
            rendering: std::sync::Mutex::new(()),
            registry,
        }
    }

    /// The text exposition, with the state read now.
    pub fn render(&self, now: &Snapshot) -> String {
        let _one = self.rendering.lock().unwrap_or_else(|p| p.into_inner());
        let s = &self.state;
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
        s.fills.set(b.fills_in_flight as i64);
        mirror(&s.coalesced, b.coalesced_waiters);
        s.disk_free.set(b.disk_free_bytes as i64);
        s.disk_size.set(b.disk_size_bytes as i64);
        for (tier, n) in ["l1", "l2", "dropbox"].into_iter().zip(now.lookups) {
            mirror(&s.lookups.with_label_values(&[tier]), n);
        }
        s.l1_entries.set(now.l1_entries as i64);
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("text encoding into a Vec cannot fail");
        String::from_utf8(out).expect("the text format is UTF-8")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
