//! The metadata cache: L1 in process, L2 in a real Redis (or the embedded store), TTL
//! freshness, negative caching, one flight per key, and folder listings revalidated through
//! their cursor. The emulator's request log proves each claim about calls to Dropbox.

mod common;

use common::proxy::{Settings, TestProxy};
use common::redis::RedisServer;
use common::{Harness, within};
use dropcache::emulator::faults::Faults;
use hyper::StatusCode;

async fn proxy(h: &Harness, settings: Settings) -> TestProxy {
    TestProxy::start(&h.running.base_url, &settings).await
}

#[tokio::test]
async fn fresh_metadata_is_not_asked_for_again_within_the_ttl() {
    let h = Harness::start().await;
    h.put("/Public/a.txt", "one").await;
    let p = proxy(&h, Settings::default()).await;
    let first = p.head("/alice/a.txt", &[]).await;
    assert_eq!(first.header("x-cache-status"), Some("MISS"));
    let second = p.head("/alice/a.txt", &[]).await;
    assert_eq!(second.header("x-cache-status"), Some("HIT"));
    assert_eq!(h.emu().calls("files/get_metadata"), 1);
    // A change within the TTL is not seen yet (the change feed comes later) ...
    h.put("/Public/a.txt", "two").await;
    let third = p.head("/alice/a.txt", &[]).await;
    assert_eq!(third.header("etag"), first.header("etag"));
    assert_eq!(h.emu().calls("files/get_metadata"), 1);
}

#[tokio::test]
async fn stale_metadata_is_revalidated_and_changes_are_seen() {
    let h = Harness::start().await;
    h.put("/Public/a.txt", "one").await;
    let p = proxy(
        &h,
        Settings {
            metadata_ttl: "0s",
            ..Settings::default()
        },
    )
    .await;
    let first = p.head("/alice/a.txt", &[]).await;
    assert_eq!(first.header("x-cache-status"), Some("MISS"));
    let second = p.head("/alice/a.txt", &[]).await;
    assert_eq!(second.header("x-cache-status"), Some("REVALIDATED"));
    assert_eq!(second.header("etag"), first.header("etag"));
    h.put("/Public/a.txt", "two").await;
    let third = p.head("/alice/a.txt", &[]).await;
    assert_eq!(third.header("x-cache-status"), Some("MISS"));
    assert_ne!(third.header("etag"), first.header("etag"));
    assert_eq!(h.emu().calls("files/get_metadata"), 3);
}

#[tokio::test]
async fn not_found_is_remembered_briefly() {
    let h = Harness::start().await;
    let p = proxy(&h, Settings::default()).await;
    for _ in 0..3 {
        let a = p.get("/alice/missing.txt", &[]).await;
        assert_eq!(a.status, StatusCode::NOT_FOUND);
        assert_eq!(a.header("cache-control"), Some("no-store"));
    }
    assert_eq!(h.emu().calls("files/get_metadata"), 1);
    // With a zero negative TTL every miss asks again, so a new file shows at once.
    let p0 = proxy(
        &h,
        Settings {
            negative_ttl: "0s",
            ..Settings::default()
        },
    )
    .await;
    assert_eq!(
        p0.get("/alice/new.txt", &[]).await.status,
        StatusCode::NOT_FOUND
    );
    h.put("/Public/new.txt", "hello").await;
    let a = p0.get("/alice/new.txt", &[]).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(&a.body[..], b"hello");
}

#[tokio::test]
async fn identical_concurrent_lookups_share_one_call() {
    let h = Harness::start().await;
    h.put("/Public/big.bin", vec![7u8; 10]).await;
    h.emu().set_faults(Faults {
        latency_ms: 300,
        ..Faults::default()
    });
    let p = proxy(&h, Settings::default()).await;
    let heads = (0..20).map(|_| p.head("/alice/big.bin", &[]));
    let answers = within("20 HEADs", common::join_all(heads)).await;
    assert!(answers.iter().all(|a| a.status == StatusCode::OK));
    assert_eq!(h.emu().calls("files/get_metadata"), 1);
}

#[tokio::test]
async fn instances_share_metadata_through_redis_and_hits_do_not_wait_on_it() {
    let h = Harness::start().await;
    h.put("/Public/a.txt", "one").await;
    let redis = RedisServer::start();
    let settings = || Settings {
        redis: Some(redis.url.clone()),
        ..Settings::default()
    };
    let a = proxy(&h, settings()).await;
    let b = proxy(&h, settings()).await;
    assert_eq!(
        a.head("/alice/a.txt", &[]).await.header("x-cache-status"),
        Some("MISS")
    );
    // The configured account is recorded in Redis, without its token.
    let store = dropcache::store::Store::open(&dropcache::config::StoreConfig::Redis {
        url: dropcache::secret::Secret::new(redis.url.clone()),
    })
    .await
    .unwrap();
    let record = store.get("account:alice").await.unwrap().expect("recorded");
    let record: serde_json::Value = serde_json::from_slice(&record).unwrap();
    assert_eq!(record["root"], "/Public");
    assert_eq!(record["v"], 1);
    assert!(
        !String::from_utf8_lossy(&serde_json::to_vec(&record).unwrap()).contains(common::TOKEN)
    );
    // Metadata is there too, under the account and the lowercased path.
    assert!(store.get("meta:alice:/a.txt").await.unwrap().is_some());
    // Instance b has never seen it: its L1 misses, Redis (L2) answers.
    let from_l2 = b.head("/alice/a.txt", &[]).await;
    assert_eq!(from_l2.status, StatusCode::OK);
    assert_eq!(from_l2.header("x-cache-status"), Some("HIT"));
    assert_eq!(h.emu().calls("files/get_metadata"), 1);
    // Redis goes away: fresh L1 entries still answer, with no call to Dropbox.
    drop(redis);
    for p in [&a, &b] {
        let hit = p.head("/alice/a.txt", &[]).await;
        assert_eq!(hit.status, StatusCode::OK);
        assert_eq!(hit.header("x-cache-status"), Some("HIT"));
    }
    assert_eq!(h.emu().calls("files/get_metadata"), 1);
    // A miss with Redis down still works, straight from Dropbox.
    h.put("/Public/b.txt", "two").await;
    let miss = a.get("/alice/b.txt", &[]).await;
    assert_eq!(miss.status, StatusCode::OK);
    assert_eq!(&miss.body[..], b"two");
}

#[tokio::test]
async fn the_embedded_store_keeps_metadata_for_the_next_instance() {
    let h = Harness::start().await;
    h.put("/Public/a.txt", "one").await;
    let dir = tempfile::tempdir().unwrap();
    // Two instances one after the other over the same embedded file.
    for expected in ["MISS", "HIT"] {
        let settings = Settings {
            store_path: Some(dir.path().join("store")),
            ..Settings::default()
        };
        let p = proxy(&h, settings).await;
        let a = p.head("/alice/a.txt", &[]).await;
        assert_eq!(a.status, StatusCode::OK);
        assert_eq!(a.header("x-cache-status"), Some(expected));
        p.stop().await;
    }
    assert_eq!(h.emu().calls("files/get_metadata"), 1);
}

#[tokio::test]
async fn folder_listings_revalidate_with_continue_and_never_relist_when_unchanged() {
    let h = Harness::start().await;
    h.put("/Public/Photos/a.jpg", "a").await;
    h.put("/Public/Photos/b.jpg", "b").await;
    let p = proxy(
        &h,
        Settings {
            metadata_ttl: "0s",
            ..Settings::default()
        },
    )
    .await;
    let first = p.get("/alice/Photos/", &[]).await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(first.header("x-cache-status"), Some("MISS"));
    assert_eq!(h.emu().calls("files/list_folder"), 1);
    // Stale (TTL 0): one list_folder/continue, nothing changed, same ETag.
    let second = p.get("/alice/Photos/", &[]).await;
    assert_eq!(second.header("x-cache-status"), Some("REVALIDATED"));
    assert_eq!(second.header("etag"), first.header("etag"));
    assert_eq!(second.body, first.body);
    assert_eq!(h.emu().calls("files/list_folder"), 1, "no full re-list");
    assert_eq!(h.emu().calls("files/list_folder/continue"), 1);
    // A change: the delta is applied, still without a re-list.
    h.put("/Public/Photos/c.jpg", "c").await;
    h.upload_with(
        serde_json::json!({"path": "/Public/Photos/a.jpg", "mode": "overwrite"}),
        "a2",
    )
    .await;
    let third = p.get("/alice/Photos/", &[]).await;
    assert_eq!(third.header("x-cache-status"), Some("MISS"));
    assert_ne!(third.header("etag"), first.header("etag"));
    let names: Vec<String> = third.json()["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["a.jpg", "b.jpg", "c.jpg"]);
    assert_eq!(third.json()["entries"][0]["size"], 2);
    assert_eq!(
        h.emu().calls("files/list_folder"),
        1,
        "deltas, not a re-list"
    );
    assert_eq!(h.emu().calls("files/list_folder/continue"), 2);
    // The folder deleted: 404.
    h.call(
        "files/delete_v2",
        serde_json::json!({"path": "/Public/Photos"}),
    )
    .await
    .ok();
    assert_eq!(
        p.get("/alice/Photos/", &[]).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn a_reset_cursor_falls_back_to_a_full_listing() {
    let h = Harness::start().await;
    h.put("/Public/Photos/a.jpg", "a").await;
    let p = proxy(
        &h,
        Settings {
            metadata_ttl: "0s",
            ..Settings::default()
        },
    )
    .await;
    let first = p.get("/alice/Photos", &[]).await;
    h.emu().reset_cursors();
    let again = p.get("/alice/Photos", &[]).await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.header("etag"), first.header("etag"));
    assert_eq!(h.emu().calls("files/list_folder"), 2);
}
