//! Metrics: one registry per `App` (no globals), names `dropcache_*` with `_total` / `_seconds`
//! / `_bytes` suffixes, labels bounded: route templates, methods, status classes, cache
//! statuses, Dropbox endpoints and outcomes, and account aliases (one per series, never a
//! list; never a path or a token).
//!
//! Requests and Dropbox calls are counted where they happen (`Http`, `Upstream`). The state of
//! the caches, feeds and accounts is read when scraped, so the paths that change it carry no
//! metric plumbing: counters kept by those components as plain numbers are mirrored here.

mod handles;
mod state;

pub use handles::{Http, Served, Upstream};
use prometheus::core::Collector;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};
use state::State;

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
    pub memory_bytes: u64,
    pub fills_in_flight: usize,
    pub coalesced_waiters: u64,
    pub sendfile_bytes: u64,
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
        self.state.set(now);
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
