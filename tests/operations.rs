//! Operating the proxy: what `/metrics` counts (requests, bytes, Dropbox calls, 429s, the body
//! cache, metadata tiers), request ids, and the admin API (purge by path, prefix and account,
//! here and on another instance; cache and feed status). The emulator's request log is the
//! witness of what reached Dropbox.

mod common;

use common::proxy::{Settings, TestProxy};
use common::redis::RedisServer;
use common::{Harness, faults, join_all};
use dropcache::emulator::faults::Faults;
use hyper::{Method, StatusCode};
use std::collections::BTreeMap;
use std::time::Duration;

const ADMIN: &str = "ops-admin-token-0123456789";

/// One sample of the text exposition: name, labels, value.
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses the Prometheus text format (the subset the proxy writes: no escapes in values).
fn parse(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').expect("name value");
            let (name, labels) = match series.split_once('{') {
                None => (series, BTreeMap::new()),
                Some((name, rest)) => {
                    let inner = rest.strip_suffix('}').expect("closing brace");
                    let labels = inner
                        .split("\",")
                        .filter(|p| !p.is_empty())
                        .map(|p| {
                            let (k, v) = p.split_once("=\"").expect("k=\"v\"");
                            (k.to_owned(), v.trim_end_matches('"').to_owned())
                        })
                        .collect();
                    (name, labels)
                }
            };
            Sample {
                name: name.to_owned(),
                labels,
                value: value.parse().expect("a number"),
            }
        })
        .collect()
}

/// The sum of `name` over the series whose labels include `with`.
fn value(samples: &[Sample], name: &str, with: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            with.iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
        .sum()
}

async fn scrape(p: &TestProxy) -> (String, Vec<Sample>) {
    let text = p.get("/metrics", &[]).await.text();
    let samples = parse(&text);
    (text, samples)
}

const FILES: &str = "/{alias}/{path}";

#[tokio::test]
async fn metrics_count_requests_bytes_dropbox_calls_and_the_caches() {
    let h = Harness::start().await;
    h.put("/Public/a.txt", "hello").await;
    h.put("/Public/big.txt", "0123456789").await;
    let p = TestProxy::start(&h.running.base_url, &Settings::default()).await;

    let miss = p.get("/alice/a.txt", &[]).await;
    assert_eq!(miss.header("x-cache-status"), Some("MISS"));
    let hit = p.get("/alice/a.txt", &[]).await;
    assert_eq!(hit.header("x-cache-status"), Some("HIT"));
    let etag = hit.header("etag").unwrap().to_owned();
    assert_eq!(
        p.get("/alice/a.txt", &[("if-none-match", &etag)])
            .await
            .status,
        StatusCode::NOT_MODIFIED
    );
    assert_eq!(p.head("/alice/a.txt", &[]).await.status, StatusCode::OK);
    assert_eq!(
        p.get("/alice/missing.txt", &[]).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(p.get("/alice/", &[]).await.status, StatusCode::OK);
    assert_eq!(
        p.send(Method::POST, "/alice/a.txt", &[]).await.status,
        StatusCode::METHOD_NOT_ALLOWED
    );

    let (text, m) = scrape(&p).await;
    let requests = "dropcache_http_requests_total";
    let get = |cache: &str, status: &str| {
        value(
            &m,
            requests,
            &[
                ("route", FILES),
                ("method", "GET"),
                ("cache", cache),
                ("status", status),
            ],
        )
    };
    assert_eq!(get("MISS", "2xx"), 2.0, "a.txt and the folder: {text}");
    // The 200 HIT and the 304 (a HIT too: answered from cache)
    assert_eq!(get("HIT", "2xx"), 1.0, "{text}");
    assert_eq!(get("HIT", "3xx"), 1.0, "{text}");
    assert_eq!(get("none", "4xx"), 1.0, "{text}");
    assert_eq!(
        value(&m, requests, &[("method", "HEAD"), ("status", "2xx")]),
        1.0
    );
    assert_eq!(
        value(&m, requests, &[("method", "POST"), ("status", "4xx")]),
        1.0
    );
    assert_eq!(
        value(
            &m,
            "dropcache_http_request_duration_seconds_count",
            &[("route", FILES)]
        ),
        value(&m, requests, &[("route", FILES)]),
    );
    // Bytes by source: the first answer streamed from Dropbox, the second from disk.
    let bytes = |source| {
        value(
            &m,
            "dropcache_http_response_bytes_total",
            &[("source", source)],
        )
    };
    assert_eq!(bytes("dropbox"), 5.0, "{text}");
    assert_eq!(bytes("disk"), 5.0, "{text}");
    assert!(bytes("generated") > 0.0, "the listing and the error texts");
    // Dropbox calls, as the emulator saw them.
    let calls = |endpoint, outcome| {
        value(
            &m,
            "dropcache_dropbox_requests_total",
            &[("endpoint", endpoint), ("outcome", outcome)],
        )
    };
    assert_eq!(
        calls("files/download", "ok"),
        h.emu().calls("files/download") as f64
    );
    assert_eq!(calls("files/download", "ok"), 1.0);
    assert_eq!(
        calls("files/get_metadata", "ok") + calls("files/get_metadata", "route_error"),
        h.emu().calls("files/get_metadata") as f64,
        "{text}"
    );
    assert_eq!(calls("files/get_metadata", "route_error"), 1.0, "not_found");
    assert_eq!(
        value(
            &m,
            "dropcache_dropbox_request_duration_seconds_count",
            &[("endpoint", "files/download")]
        ),
        1.0
    );
    // The caches.
    assert_eq!(value(&m, "dropcache_cache_bytes", &[]), 5.0);
    assert_eq!(value(&m, "dropcache_cache_entries", &[]), 1.0);
    assert_eq!(
        value(&m, "dropcache_cache_max_bytes", &[]),
        64.0 * 1024.0 * 1024.0
    );
    assert!(value(&m, "dropcache_cache_disk_size_bytes", &[]) > 0.0);
    assert_eq!(value(&m, "dropcache_cache_fills_in_flight", &[]), 0.0);
    let tier = |t| value(&m, "dropcache_metadata_lookups_total", &[("tier", t)]);
    assert_eq!(tier("l1"), 3.0, "HIT, 304 and HEAD: {text}");
    assert_eq!(tier("dropbox"), 3.0, "a.txt, missing.txt and the folder");
    assert_eq!(value(&m, "dropcache_accounts", &[]), 1.0);
    assert_eq!(value(&m, "dropcache_build_info", &[]), 1.0);
    // Bounded labels: no path, file name or token anywhere.
    for leak in ["a.txt", "missing", "/Public", common::TOKEN] {
        assert!(!text.contains(leak), "{leak:?} in the metrics");
    }

    // Evictions: a cap of 12 bytes holds one of the two files.
    drop(p);
    let p = TestProxy::start(
        &h.running.base_url,
        &Settings {
            max_size: "12B",
            ..Settings::default()
        },
    )
    .await;
    assert_eq!(p.get("/alice/a.txt", &[]).await.text(), "hello");
    assert_eq!(p.get("/alice/big.txt", &[]).await.text(), "0123456789");
    let (text, m) = scrape(&p).await;
    assert_eq!(
        value(&m, "dropcache_cache_evictions_total", &[]),
        1.0,
        "{text}"
    );
    assert_eq!(value(&m, "dropcache_cache_entries", &[]), 1.0);
    assert_eq!(value(&m, "dropcache_cache_bytes", &[]), 10.0);
}

#[tokio::test]
async fn waiters_that_join_a_download_and_429s_are_counted() {
    let h = Harness::start().await;
    h.put("/Public/slow.bin", vec![7u8; 64 * 1024]).await;
    h.put("/Public/limited.txt", "ok").await;
    let p = TestProxy::start(&h.running.base_url, &Settings::default()).await;
    // Metadata first (one flight), then eight requests open the body while its download is
    // held up by Dropbox's latency: one download, the others join it.
    assert_eq!(p.head("/alice/slow.bin", &[]).await.status, StatusCode::OK);
    h.emu().set_faults(Faults {
        latency_ms: 300,
        ..Faults::default()
    });
    let answers = join_all((0..8).map(|_| p.get("/alice/slow.bin", &[]))).await;
    assert!(answers.iter().all(|a| a.body.len() == 64 * 1024));
    assert_eq!(h.emu().calls("files/download"), 1);
    let (text, m) = scrape(&p).await;
    assert_eq!(
        value(&m, "dropcache_cache_coalesced_waiters_total", &[]),
        7.0,
        "{text}"
    );

    // A 429 with Retry-After: 1 is waited out (rate_limit_budget 1s) and the call made again.
    h.emu()
        .set_faults(faults(&["files/get_metadata=429:1,times=1"]));
    let limited = p.get("/alice/limited.txt", &[]).await;
    assert_eq!(limited.text(), "ok");
    let (text, m) = scrape(&p).await;
    assert_eq!(
        value(&m, "dropcache_dropbox_rate_limited_total", &[]),
        1.0,
        "{text}"
    );
    assert_eq!(
        value(
            &m,
            "dropcache_dropbox_requests_total",
            &[
                ("endpoint", "files/get_metadata"),
                ("outcome", "rate_limited")
            ]
        ),
        1.0
    );
    assert_eq!(value(&m, "dropcache_dropbox_retries_total", &[]), 1.0);
    let waited = value(&m, "dropcache_dropbox_retry_after_wait_seconds_total", &[]);
    assert!((0.5..=1.5).contains(&waited), "{waited}");
}

#[tokio::test]
async fn every_answer_carries_a_request_id() {
    let h = Harness::start().await;
    h.put("/Public/a.txt", "a").await;
    let p = TestProxy::start(&h.running.base_url, &Settings::default()).await;
    let given = p
        .get("/alice/a.txt", &[("x-request-id", "nginx-abc.123")])
        .await;
    assert_eq!(given.header("x-request-id"), Some("nginx-abc.123"));
    let made = p.get("/alice/a.txt", &[]).await;
    let again = p
        .get("/alice/nope", &[("x-request-id", "bad id with spaces")])
        .await;
    for id in [made.header("x-request-id"), again.header("x-request-id")] {
        let id = id.expect("an id");
        assert_eq!(id.len(), 32, "{id}");
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
    }
    assert_ne!(made.header("x-request-id"), again.header("x-request-id"));
    assert!(
        p.get("/healthz", &[])
            .await
            .header("x-request-id")
            .is_some()
    );
}

fn admin_settings(redis: Option<&RedisServer>) -> Settings {
    Settings {
        redis: redis.map(|r| r.url.clone()),
        extra: format!("[admin]\ntoken = {ADMIN:?}\n"),
        ..Settings::default()
    }
}

async fn admin(p: &TestProxy, method: Method, path: &str) -> common::Answer {
    p.send(
        method,
        path,
        &[("authorization", &format!("Bearer {ADMIN}"))],
    )
    .await
}

#[tokio::test]
async fn the_admin_api_purges_by_path_prefix_and_account_on_every_instance() {
    let redis = RedisServer::start();
    let h = Harness::start().await;
    for (path, body) in [
        ("/Public/a.txt", "a"),
        ("/Public/Photos/p1.jpg", "p1"),
        ("/Public/Photos/p2.jpg", "p2"),
        ("/Public/other.txt", "o"),
    ] {
        h.put(path, body).await;
    }
    let p = TestProxy::start(&h.running.base_url, &admin_settings(Some(&redis))).await;
    let q = TestProxy::start(&h.running.base_url, &admin_settings(Some(&redis))).await;
    for path in [
        "/alice/a.txt",
        "/alice/Photos/p1.jpg",
        "/alice/Photos/p2.jpg",
        "/alice/other.txt",
    ] {
        assert_eq!(p.get(path, &[]).await.status, StatusCode::OK);
        assert_eq!(q.get(path, &[]).await.status, StatusCode::OK);
        // Both instances now hold it: metadata in L1, the body on their own disks.
        assert_eq!(p.get(path, &[]).await.header("x-cache-status"), Some("HIT"));
        assert_eq!(q.get(path, &[]).await.header("x-cache-status"), Some("HIT"));
    }
    h.emu().reset_log();

    // The token is required, and the input is checked.
    assert_eq!(
        p.send(Method::POST, "/admin/purge?account=alice", &[])
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    let wrong = format!("Bearer {ADMIN}x");
    assert_eq!(
        p.send(
            Method::POST,
            "/admin/purge?account=alice",
            &[("authorization", &wrong)]
        )
        .await
        .status,
        StatusCode::UNAUTHORIZED
    );
    for (query, status) in [
        ("", StatusCode::BAD_REQUEST),
        ("?account=nobody", StatusCode::NOT_FOUND),
        ("?account=alice&path=/a/../../x", StatusCode::BAD_REQUEST),
        ("?account=alice&path=a.txt", StatusCode::BAD_REQUEST),
        ("?account=alice&path=/a&prefix=/b", StatusCode::BAD_REQUEST),
    ] {
        let a = admin(&p, Method::POST, &format!("/admin/purge{query}")).await;
        assert_eq!(a.status, status, "{query}: {}", a.text());
    }
    assert_eq!(
        admin(&p, Method::GET, "/admin/purge?account=alice")
            .await
            .status,
        StatusCode::NOT_FOUND,
        "purging takes a POST"
    );
    assert_eq!(h.emu().log().total, 0, "nothing purged, nothing asked");

    // By path (case-insensitive like Dropbox): that file's metadata and body go, here and on
    // the other instance; its neighbours stay.
    let purged = admin(&p, Method::POST, "/admin/purge?account=alice&path=/A.TXT").await;
    assert_eq!(purged.status, StatusCode::OK, "{}", purged.text());
    let j = purged.json();
    assert_eq!(
        (j["scope"].as_str(), j["bodies"].as_u64()),
        (Some("path"), Some(1))
    );
    assert!(j["entries"].as_u64().unwrap() >= 1, "{j}");
    // The other instance hears of it over pub/sub, drops its L1 entry and asks Dropbox (its
    // own disk still has the body: a purge reaches other instances' metadata only).
    common::eventually("q forgets a.txt", || async {
        let again = q.get("/alice/a.txt", &[]).await;
        assert_eq!(again.text(), "a");
        h.emu().calls("files/get_metadata") == 1
    })
    .await;
    let refetched = p.get("/alice/a.txt", &[]).await;
    assert_eq!(
        refetched.header("x-cache-status"),
        Some("MISS"),
        "p dropped the body"
    );
    assert_eq!(h.emu().calls("files/download"), 1);
    assert_eq!(
        p.get("/alice/other.txt", &[])
            .await
            .header("x-cache-status"),
        Some("HIT")
    );

    // By prefix: everything under /photos/.
    h.emu().reset_log();
    let purged = admin(
        &p,
        Method::POST,
        "/admin/purge?account=alice&prefix=/photos/",
    )
    .await;
    assert_eq!(
        purged.json()["bodies"].as_u64(),
        Some(2),
        "{}",
        purged.text()
    );
    for path in ["/alice/Photos/p1.jpg", "/alice/Photos/p2.jpg"] {
        assert_eq!(
            p.get(path, &[]).await.header("x-cache-status"),
            Some("MISS")
        );
    }
    assert_eq!(h.emu().calls("files/download"), 2);
    assert_eq!(h.emu().calls("files/get_metadata"), 2);
    assert_eq!(
        p.get("/alice/other.txt", &[])
            .await
            .header("x-cache-status"),
        Some("HIT")
    );
    assert_eq!(
        h.emu().calls("files/get_metadata"),
        2,
        "other.txt untouched"
    );

    // The whole account.
    h.emu().reset_log();
    let purged = admin(&p, Method::POST, "/admin/purge?account=alice").await;
    assert_eq!(purged.json()["scope"], "account");
    assert_eq!(
        p.get("/alice/other.txt", &[])
            .await
            .header("x-cache-status"),
        Some("MISS")
    );
    assert_eq!(h.emu().calls("files/get_metadata"), 1);
    common::eventually("q forgets the account", || async {
        assert_eq!(q.get("/alice/Photos/p1.jpg", &[]).await.text(), "p1");
        h.emu().calls("files/get_metadata") == 2
    })
    .await;

    // Status as JSON.
    let cache = admin(&p, Method::GET, "/admin/cache").await.json();
    assert_eq!(cache["store"]["kind"], "redis");
    assert_eq!(cache["store"]["up"], true);
    assert!(cache["body"]["entries"].as_u64().unwrap() >= 1, "{cache}");
    assert!(cache["body"]["max_bytes"].as_u64().unwrap() > 0);
    assert!(
        cache["metadata"]["lookups"]["l1"].as_u64().unwrap() >= 1,
        "{cache}"
    );
    let feeds = admin(&p, Method::GET, "/admin/feeds").await.json();
    assert_eq!(feeds["enabled"], false, "{feeds}");
    assert_eq!(feeds["feeds"].as_array().map(Vec::len), Some(0));
    // The log level is the binary's to control (tests/deploy.rs); in process it says so.
    assert_eq!(
        admin(&p, Method::GET, "/admin/log").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        admin(&p, Method::GET, "/admin/nothing").await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn feeds_report_live_holders_and_lag() {
    let redis = RedisServer::start();
    let h = Harness::start().await;
    h.put("/Public/a.txt", "a").await;
    let settings = Settings {
        feed: true,
        ..admin_settings(Some(&redis))
    };
    let p = TestProxy::start(&h.running.base_url, &settings).await;
    p.feed_live("alice").await;
    let feeds = admin(&p, Method::GET, "/admin/feeds").await.json();
    let alice = &feeds["feeds"][0];
    assert_eq!(alice["account"], "alice", "{feeds}");
    assert_eq!(
        (alice["live"].as_bool(), alice["holder"].as_bool()),
        (Some(true), Some(true))
    );
    assert_eq!(alice["lag_seconds"].as_f64(), Some(0.0));
    let (text, m) = scrape(&p).await;
    assert_eq!(
        value(&m, "dropcache_feed_live", &[("account", "alice")]),
        1.0,
        "{text}"
    );
    assert_eq!(
        value(&m, "dropcache_feed_lag_seconds", &[("account", "alice")]),
        0.0
    );

    // Dropbox's cursor reset: counted; the feed resyncs and is live again.
    h.emu().reset_cursors();
    h.put("/Public/b.txt", "b").await;
    common::eventually("the reset is handled", || async {
        let (_, m) = scrape(&p).await;
        value(&m, "dropcache_feed_resets_total", &[("account", "alice")]) == 1.0
    })
    .await;
    // Dropbox failing the feed's reads: it stops vouching and its lag grows.
    p.feed_live("alice").await;
    h.emu()
        .set_faults(faults(&["files/list_folder/continue=503"]));
    h.put("/Public/c.txt", "c").await;
    common::eventually("the feed lapses", || async {
        let (_, m) = scrape(&p).await;
        value(&m, "dropcache_feed_lag_seconds", &[("account", "alice")]) > 0.0
    })
    .await;
    let feeds = admin(&p, Method::GET, "/admin/feeds").await.json();
    assert_eq!(feeds["feeds"][0]["live"], false, "{feeds}");
}

/// The access line of the request `id`, once written (when its body is done).
async fn access_line(logs: &common::Logs, id: &str) -> String {
    let needle = format!("id={id}");
    common::within("the access line", async {
        loop {
            if let Some(line) = logs
                .text()
                .lines()
                .find(|l| l.contains("access") && l.ends_with(&needle))
            {
                return line.to_owned();
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
}

#[tokio::test]
async fn after_a_restart_an_answer_from_disk_logs_no_dropbox_time() {
    // The only test in this binary that installs the process-wide subscriber.
    let logs = common::Logs::capture(tracing::Level::INFO);
    let h = Harness::start().await;
    h.put("/Public/a.txt", "kept across restarts").await;
    let dir = tempfile::tempdir().unwrap();
    let settings = || Settings {
        store_path: Some(dir.path().join("store")),
        cache_dir: Some(dir.path().join("cache")),
        ..Settings::default()
    };
    let calls = || ["files/get_metadata", "files/download"].map(|r| h.emu().calls(r));
    let p = TestProxy::start(&h.running.base_url, &settings()).await;
    let first = p.get("/alice/a.txt", &[]).await;
    let second = p.get("/alice/a.txt", &[]).await;
    p.stop().await;
    let before = calls();
    assert_eq!(before, [1, 1]);

    let p = TestProxy::start(&h.running.base_url, &settings()).await;
    let third = p.get("/alice/a.txt", &[]).await;
    assert_eq!(third.text(), "kept across restarts");
    assert_eq!(third.header("x-cache-status"), Some("HIT"));
    assert_eq!(calls(), before, "Dropbox was not asked after the restart");
    let id = |a: &common::Answer| a.header("x-request-id").expect("an id").to_owned();
    let first = access_line(&logs, &id(&first)).await;
    assert!(
        first.contains("cache=MISS upstream=0.") && !first.contains("upstream=-"),
        "{first}"
    );
    for a in [&second, &third] {
        let line = access_line(&logs, &id(a)).await;
        assert!(line.contains(" cache=HIT upstream=- "), "{line}");
    }
}
