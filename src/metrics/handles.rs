//! The handles counted where things happen: requests served (`Http`) and calls to Dropbox
//! (`Upstream`). Plain data, cloned into the server and the Dropbox client.

use super::{REQUEST_BUCKETS, UPSTREAM_BUCKETS, counter, counter_vec, histogram_vec, register};
use prometheus::{Counter, Histogram, HistogramVec, IntCounter, IntCounterVec, Registry};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Requests served, counted when their answer's body is done.
#[derive(Clone)]
pub struct Http {
    requests: IntCounterVec,
    duration: HistogramVec,
    bytes: IntCounterVec,
    /// The series of each label set seen, resolved once: a request costs no label lookup.
    resolved: Arc<Mutex<Resolved>>,
    /// `bytes` by source: disk, dropbox, generated.
    by_source: [IntCounter; 3],
}

/// A request's labels, by the addresses and lengths of their static strings (the same text
/// at two addresses is two keys for one series: harmless).
type Labels = [(usize, usize); 4];

/// Each label set's series (hashed with foldhash: a request looks one up).
type Resolved = HashMap<Labels, (IntCounter, Histogram), foldhash::fast::RandomState>;

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
    pub(super) fn new(registry: &Registry) -> Http {
        let bytes = counter_vec(
            registry,
            "dropcache_http_response_bytes_total",
            "Body bytes sent, by where they came from: disk (the body cache), dropbox \
             (streamed from a download), generated (listings, thumbnails from memory, errors)",
            &["source"],
        );
        let by_source = ["disk", "dropbox", "generated"].map(|s| bytes.with_label_values(&[s]));
        Http {
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
            bytes,
            resolved: Arc::default(),
            by_source,
        }
    }

    pub fn observe(&self, s: &Served<'_>) {
        let class = match s.status {
            100..=199 => "1xx",
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            _ => "5xx",
        };
        let method = method_label(s.method);
        let key = [s.route, method, class, s.cache].map(|l| (l.as_ptr() as usize, l.len()));
        {
            // Counted under the lock (held for two atomic adds): cloning the handles out cost
            // four more atomic operations per request.
            let mut resolved = self.resolved.lock().unwrap_or_else(|p| p.into_inner());
            let (requests, duration) = resolved.entry(key).or_insert_with(|| {
                (
                    self.requests
                        .with_label_values(&[s.route, method, class, s.cache]),
                    self.duration.with_label_values(&[s.route, s.cache]),
                )
            });
            requests.inc();
            duration.observe(s.elapsed.as_secs_f64());
        }
        let source = match s.source {
            "disk" => &self.by_source[0],
            "dropbox" => &self.by_source[1],
            "generated" => &self.by_source[2],
            other => &self.bytes.with_label_values(&[other]),
        };
        source.inc_by(s.bytes);
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
    pub(super) fn new(registry: &Registry) -> Upstream {
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
