//! Metrics: one registry per `App` (no globals), names `dropcache_*`, labels bounded (account
//! aliases come from the config). Account, feed and store states are read when scraped, so the
//! paths that change them carry no metric plumbing.

use crate::account::Accounts;
use crate::meta::MetaCache;
use prometheus::{Encoder, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder};

pub struct Metrics {
    registry: Registry,
    relink: IntGaugeVec,
    feed_live: IntGaugeVec,
    feed_pokes: IntGaugeVec,
    rate_limited: IntGaugeVec,
    listening: IntGauge,
    store_up: IntGauge,
    /// Webhook notifications by outcome: accepted, forbidden, malformed.
    pub webhooks: IntCounterVec,
}

fn gauge(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("a valid metric");
    registry
        .register(Box::new(g.clone()))
        .expect("registered once");
    g
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let relink = gauge(
            &registry,
            "dropcache_account_relink_required",
            "1 when Dropbox refused the account's refresh token (invalid_grant): it must be linked again",
            &["account"],
        );
        let feed_live = gauge(
            &registry,
            "dropcache_feed_live",
            "1 while the account's change feed keeps its cached metadata fresh on this instance",
            &["account"],
        );
        let feed_pokes = gauge(
            &registry,
            "dropcache_feed_webhook_pokes",
            "Webhook notifications naming the account that this instance received",
            &["account"],
        );
        let rate_limited = gauge(
            &registry,
            "dropcache_dropbox_rate_limited_seconds",
            "Seconds left before the account may call Dropbox again (after a 429)",
            &["account"],
        );
        let listening = IntGauge::new(
            "dropcache_invalidations_listening",
            "1 while invalidations from other instances arrive (always 1 with the embedded store)",
        )
        .expect("a valid metric");
        let store_up = IntGauge::new(
            "dropcache_store_up",
            "1 while the metadata store answers (0 during a Redis outage)",
        )
        .expect("a valid metric");
        let webhooks = IntCounterVec::new(
            Opts::new(
                "dropcache_webhooks_total",
                "Webhook notifications received, by outcome",
            ),
            &["outcome"],
        )
        .expect("a valid metric");
        for m in [&listening, &store_up] {
            registry
                .register(Box::new(m.clone()))
                .expect("registered once");
        }
        registry
            .register(Box::new(webhooks.clone()))
            .expect("registered once");
        Metrics {
            registry,
            relink,
            feed_live,
            feed_pokes,
            rate_limited,
            listening,
            store_up,
            webhooks,
        }
    }

    /// The text exposition, with the state gauges read now.
    pub fn render(&self, accounts: &Accounts, meta: &MetaCache, store_up: bool) -> String {
        for a in accounts.all() {
            let alias = [a.alias.as_str()];
            self.relink
                .with_label_values(&alias)
                .set(i64::from(a.tokens.needs_relink()));
            self.feed_live
                .with_label_values(&alias)
                .set(i64::from(meta.feed_since(&a).is_some()));
            self.feed_pokes
                .with_label_values(&alias)
                .set(a.feed.pokes() as i64);
            let blocked = a
                .tokens
                .blocked_for()
                .map_or(0, |d| d.as_secs_f64().ceil() as i64);
            self.rate_limited.with_label_values(&alias).set(blocked);
        }
        self.listening.set(i64::from(meta.is_listening()));
        self.store_up.set(i64::from(store_up));
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
