//! Serving through Dropbox's failures: stale-if-error, stale-while-revalidate, the per-account
//! 429 governor and concurrency caps, tokens refreshed ahead of expiry (once), a refused refresh
//! token, and a Redis outage. Faults come from the emulator; its request log is the witness.

mod common;

use common::proxy::{Settings, TestProxy};
use common::redis::RedisServer;
use common::{APP_KEY, Harness, config, eventually, faults, join_all};
use dropcache::emulator::faults::Faults;
use hyper::StatusCode;
use std::time::{Duration, Instant};

/// Metadata always stale, so every request asks Dropbox first.
fn always_stale() -> Settings {
    Settings {
        metadata_ttl: "0s",
        negative_ttl: "0s",
        ..Settings::default()
    }
}

#[tokio::test]
async fn dropbox_failures_serve_stale_metadata_and_cached_bodies() {
    let h = Harness::start().await;
    h.put("/Public/a.txt", "one").await;
    h.put("/Public/b.txt", "bee").await;
    let p = TestProxy::start(
        &h.running.base_url,
        &Settings {
            read_timeout: "300ms",
            ..always_stale()
        },
    )
    .await;
    let first = p.get("/alice/a.txt", &[]).await;
    assert_eq!(first.header("x-cache-status"), Some("MISS"));

    // 5xx: the cached version, said to be stale; the uncached one cannot be had.
    h.emu().set_faults(faults(&["*=503"]));
    let stale = p.get("/alice/a.txt", &[]).await;
    assert_eq!(stale.status, StatusCode::OK);
    assert_eq!(stale.header("x-cache-status"), Some("STALE"));
    assert_eq!(stale.text(), "one");
    assert_eq!(stale.header("etag"), first.header("etag"));
    let ranged = p.get("/alice/a.txt", &[("range", "bytes=1-")]).await;
    assert_eq!(ranged.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(ranged.text(), "ne");
    assert_eq!(
        p.get("/alice/b.txt", &[]).await.status,
        StatusCode::BAD_GATEWAY
    );

    // Timeouts: the same, and an uncached path fails within the timeouts, never hangs.
    h.emu().set_faults(Faults {
        latency_ms: 2_000,
        ..Faults::default()
    });
    let started = Instant::now();
    let slow = p.get("/alice/a.txt", &[]).await;
    assert_eq!(slow.header("x-cache-status"), Some("STALE"));
    let uncached = p.get("/alice/b.txt", &[]).await;
    assert_eq!(uncached.status, StatusCode::GATEWAY_TIMEOUT);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );

    // Healthy again: revalidated, no longer stale.
    h.emu().set_faults(Faults::default());
    let back = p.head("/alice/a.txt", &[]).await;
    assert_eq!(back.header("x-cache-status"), Some("REVALIDATED"));
}

#[tokio::test]
async fn an_unreachable_dropbox_is_an_outage_too() {
    let h = Harness::start().await;
    h.put("/Public/a.txt", "one").await;
    let p = TestProxy::start(&h.running.base_url, &always_stale()).await;
    assert_eq!(p.get("/alice/a.txt", &[]).await.text(), "one");
    drop(h);
    eventually("Dropbox is gone and the cached copy stands in", || async {
        let a = p.get("/alice/a.txt", &[]).await;
        a.header("x-cache-status") == Some("STALE") && a.text() == "one"
    })
    .await;
    let started = Instant::now();
    let uncached = p.get("/alice/b.txt", &[]).await;
    assert_eq!(
        uncached.status,
        StatusCode::GATEWAY_TIMEOUT,
        "cannot connect"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn stale_content_is_served_only_up_to_the_configured_age() {
    let h = Harness::start().await;
    h.put("/Public/a.txt", "one").await;
    let p = TestProxy::start(
        &h.running.base_url,
        &Settings {
            extra_cache: "stale_if_error = \"0s\"\n",
            ..always_stale()
        },
    )
    .await;
    assert_eq!(p.get("/alice/a.txt", &[]).await.status, StatusCode::OK);
    h.emu().set_faults(faults(&["*=500"]));
    assert_eq!(
        p.get("/alice/a.txt", &[]).await.status,
        StatusCode::BAD_GATEWAY
    );
}

#[tokio::test]
async fn expired_metadata_is_served_while_one_background_refresh_runs() {
    let h = Harness::start().await;
    h.put("/Public/a.txt", "one").await;
    let p = TestProxy::start(
        &h.running.base_url,
        &Settings {
            extra_cache: "stale_while_revalidate = \"1h\"\n",
            ..always_stale()
        },
    )
    .await;
    assert_eq!(p.get("/alice/a.txt", &[]).await.text(), "one");
    h.put("/Public/a.txt", "two").await;
    let before = h.emu().calls("files/get_metadata");
    // A slow Dropbox: every request below arrives while the one refresh is under way.
    h.emu().set_faults(Faults {
        latency_ms: 300,
        ..Faults::default()
    });
    let answers = join_all((0..20).map(|_| p.get("/alice/a.txt", &[]))).await;
    for a in &answers {
        assert_eq!(a.status, StatusCode::OK);
        assert_eq!(a.header("x-cache-status"), Some("UPDATING"));
        assert_eq!(a.text(), "one");
    }
    eventually("the background refresh is answered", || async {
        let log = h.emu().log();
        log.count("files/get_metadata") > before && log.in_flight == 0
    })
    .await;
    assert_eq!(
        h.emu().calls("files/get_metadata"),
        before + 1,
        "one refresh for twenty requests"
    );
    // The refreshed metadata (and so the new body) is what the next request gets.
    eventually("the refresh lands", || async {
        p.get("/alice/a.txt", &[]).await.text() == "two"
    })
    .await;
}

#[tokio::test]
async fn a_429_holds_every_call_for_that_account_until_retry_after() {
    let h = Harness::start().await;
    h.put("/Public/a.txt", "one").await;
    h.put("/Other/c.txt", "see").await;
    let p = TestProxy::start(
        &h.running.base_url,
        &Settings {
            accounts: vec![("alice", "/Public"), ("bob", "/Other")],
            ..always_stale()
        },
    )
    .await;
    assert_eq!(p.get("/alice/a.txt", &[]).await.status, StatusCode::OK);
    h.emu()
        .set_faults(faults(&["files/get_metadata=429:30,times=1"]));
    // Beyond the 1 s budget: cached content stands in ...
    let stale = p.get("/alice/a.txt", &[]).await;
    assert_eq!(stale.header("x-cache-status"), Some("STALE"));
    let calls = h.emu().log().total;
    // ... and nothing else of alice's goes to Dropbox before Retry-After has passed.
    for path in ["/alice/a.txt", "/alice/nothing-cached.txt"] {
        let a = p.get(path, &[]).await;
        if path.ends_with("a.txt") {
            assert_eq!(a.header("x-cache-status"), Some("STALE"));
        } else {
            assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE);
            let wait: u64 = a.header("retry-after").unwrap().parse().unwrap();
            assert!((29..=30).contains(&wait), "{wait}");
        }
    }
    assert_eq!(h.emu().log().total, calls, "no call went out for alice");
    // Another account is not held back.
    assert_eq!(p.get("/bob/c.txt", &[]).await.text(), "see");
}

#[tokio::test]
async fn calls_in_flight_are_capped_per_account_and_overall() {
    let h = Harness::start().await;
    let p = TestProxy::start(
        &h.running.base_url,
        &Settings {
            accounts: vec![("alice", "/Public"), ("bob", "/Other")],
            extra_dropbox: "max_concurrent_per_account = 2\nmax_concurrent = 3\n",
            ..always_stale()
        },
    )
    .await;
    h.emu().set_faults(Faults {
        latency_ms: 100,
        ..Faults::default()
    });
    let paths: Vec<String> = (0..8).map(|i| format!("/alice/{i}.txt")).collect();
    let alice = join_all(paths.iter().map(|path| p.head(path, &[]))).await;
    assert!(alice.iter().all(|a| a.status == StatusCode::NOT_FOUND));
    let peak = h.emu().log().peak_in_flight;
    assert_eq!(peak, 2, "per account");
    h.emu().reset_log();
    let paths: Vec<String> = (0..8)
        .flat_map(|i| [format!("/alice/{i}.txt"), format!("/bob/{i}.txt")])
        .collect();
    let both = join_all(paths.iter().map(|path| p.head(path, &[]))).await;
    assert!(both.iter().all(|a| a.status == StatusCode::NOT_FOUND));
    assert_eq!(h.emu().log().peak_in_flight, 3, "overall");
}

/// An emulator whose access tokens live `life`.
async fn short_lived(life: Duration) -> Harness {
    Harness::with(dropcache::emulator::EmulatorConfig {
        token_lifetime: life,
        ..config()
    })
    .await
}

fn with_refresh_token(alias: &str, refresh: &str) -> String {
    format!("[[account]]\nalias = {alias:?}\nroot = \"/Public\"\nrefresh_token = {refresh:?}\n")
}

#[tokio::test]
async fn tokens_are_refreshed_ahead_of_expiry_and_on_expiry_once() {
    let h = short_lived(Duration::from_secs(2)).await;
    h.put("/Public/a.txt", "one").await;
    let (_, refresh) = h.oauth_tokens().await;
    let p = TestProxy::start(
        &h.running.base_url,
        &Settings {
            extra: with_refresh_token("carol", &refresh),
            extra_dropbox: "refresh_ahead = \"1h\"\n",
            ..always_stale()
        },
    )
    .await;
    let tokens = || h.emu().calls("oauth2/token");
    let before = tokens();
    assert_eq!(p.get("/carol/a.txt", &[]).await.text(), "one");
    assert_eq!(tokens(), before + 1, "the first use gets a token");
    // Half its 2 s life gone (refresh_ahead caps at half): refreshed while still valid, once.
    let carol = p.account("carol");
    eventually("the token is due a refresh", || async {
        carol.tokens.refresh_due()
    })
    .await;
    let answers = join_all((0..20).map(|_| p.head("/carol/a.txt", &[]))).await;
    assert!(answers.iter().all(|a| a.status == StatusCode::OK));
    assert_eq!(tokens(), before + 2, "one refresh ahead of expiry");
    // Revoked early by Dropbox (expired_access_token): one refresh however many notice.
    h.emu().expire_tokens(None);
    let answers = join_all((0..20).map(|_| p.head("/carol/a.txt", &[]))).await;
    assert!(answers.iter().all(|a| a.status == StatusCode::OK));
    assert_eq!(tokens(), before + 3, "one refresh on expiry");
    let metrics = p.get("/metrics", &[]).await.text();
    assert!(
        metrics.contains("dropcache_token_refreshes_total{outcome=\"ok\"} 3"),
        "{metrics}"
    );
    assert!(metrics.contains("dropcache_token_refreshes_total{outcome=\"refused\"} 0"));
}

#[tokio::test]
async fn a_refused_refresh_token_needs_a_relink_without_a_retry_storm() {
    let h = Harness::start().await;
    h.put("/Public/a.txt", "one").await;
    let p = TestProxy::start(
        &h.running.base_url,
        &Settings {
            extra: with_refresh_token("dave", "revoked-or-wrong"),
            ..always_stale()
        },
    )
    .await;
    let answers = join_all((0..10).map(|_| p.get("/dave/a.txt", &[]))).await;
    for a in &answers {
        assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(a.text().contains("link it again"), "{}", a.text());
        assert!(!a.text().contains("revoked-or-wrong"));
    }
    assert_eq!(
        p.get("/dave/a.txt", &[]).await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(h.emu().calls("oauth2/token"), 1, "asked once, then no more");
    let ready = p.get("/readyz", &[]).await;
    assert!(ready.text().contains("re-link: dave"), "{}", ready.text());
    let metrics = p.get("/metrics", &[]).await.text();
    assert!(
        metrics.contains("dropcache_account_relink_required{account=\"dave\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("dropcache_account_relink_required{account=\"alice\"} 0"));
    assert!(
        metrics.contains("dropcache_token_refreshes_total{outcome=\"refused\"} 1"),
        "{metrics}"
    );
    // The other accounts are untouched.
    assert_eq!(p.get("/alice/a.txt", &[]).await.text(), "one");
    let _ = APP_KEY;
}

#[tokio::test]
async fn a_redis_outage_degrades_readiness_while_requests_succeed() {
    let h = Harness::start().await;
    for name in ["a", "b", "c"] {
        h.put(&format!("/Public/{name}.txt"), name).await;
    }
    let mut redis = RedisServer::start();
    let p = TestProxy::start(
        &h.running.base_url,
        &Settings {
            redis: Some(redis.url.clone()),
            feed: true,
            ..Settings::default()
        },
    )
    .await;
    p.feed_live("alice").await;
    assert!(p.get("/readyz", &[]).await.text().starts_with("ready\n"));
    assert_eq!(p.get("/alice/a.txt", &[]).await.text(), "a");

    redis.kill();
    let started = Instant::now();
    let hit = p.get("/alice/a.txt", &[]).await;
    assert_eq!(hit.header("x-cache-status"), Some("HIT"));
    let miss = p.get("/alice/b.txt", &[]).await;
    assert_eq!((miss.status, miss.text().as_str()), (StatusCode::OK, "b"));
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let ready = p.get("/readyz", &[]).await;
    assert_eq!(ready.status, StatusCode::OK);
    assert!(ready.text().contains("degraded"), "{}", ready.text());
    let metrics = p.get("/metrics", &[]).await.text();
    assert!(metrics.contains("dropcache_store_up 0"), "{metrics}");

    redis.restart();
    eventually("the proxy reconnects by itself", || async {
        p.get("/readyz", &[]).await.text().starts_with("ready\n")
    })
    .await;
    assert_eq!(p.get("/alice/c.txt", &[]).await.text(), "c");
    let client = redis::Client::open(redis.url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let saved: Option<Vec<u8>> =
        redis::AsyncCommands::get(&mut conn, "dropcache:v1:meta:alice:/c.txt")
            .await
            .unwrap();
    assert!(saved.is_some(), "writes reach Redis again");
    let metrics = p.get("/metrics", &[]).await.text();
    assert!(metrics.contains("dropcache_store_up 1"), "{metrics}");
}
