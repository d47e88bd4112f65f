//! The store contract, the same over a real Redis server and the embedded file store:
//! get / set / delete, expiry, versioned keys, and (embedded) surviving a restart.

#[path = "common/redis.rs"]
mod redis_server;

use dropcache::config::StoreConfig;
use dropcache::secret::Secret;
use dropcache::store::{Store, Subscription};
use redis_server::{RedisCluster, RedisServer};
use std::time::Duration;

async fn contract(store: &Store) {
    // take: single use, and one winner among concurrent takers.
    store
        .set("once:n", b"v", Some(Duration::from_secs(60)))
        .await
        .unwrap();
    let (a, b) = tokio::join!(store.take("once:n"), store.take("once:n"));
    let mut got = [a.unwrap(), b.unwrap()];
    got.sort();
    assert_eq!(got, [None, Some(b"v".to_vec())]);
    assert_eq!(store.get("once:n").await.unwrap(), None);
    // list: every entry under a prefix, names without the version prefix, nothing else.
    store.set("acct:x", b"1", None).await.unwrap();
    store.set("acct:y", b"2", None).await.unwrap();
    store.set("acctz", b"3", None).await.unwrap();
    let mut listed = store.list("acct:").await.unwrap();
    listed.sort();
    assert_eq!(
        listed,
        [
            ("acct:x".to_owned(), b"1".to_vec()),
            ("acct:y".to_owned(), b"2".to_vec())
        ]
    );
    assert_eq!(store.get("meta:a").await.unwrap(), None);
    store.set("meta:a", b"one", None).await.unwrap();
    assert_eq!(
        store.get("meta:a").await.unwrap().as_deref(),
        Some(&b"one"[..])
    );
    store.set("meta:a", b"two", None).await.unwrap();
    assert_eq!(
        store.get("meta:a").await.unwrap().as_deref(),
        Some(&b"two"[..])
    );
    store.delete("meta:a").await.unwrap();
    assert_eq!(store.get("meta:a").await.unwrap(), None);
    // A TTL long enough to read back, and one that has run out.
    store
        .set("meta:ttl", b"x", Some(Duration::from_secs(60)))
        .await
        .unwrap();
    assert!(store.get("meta:ttl").await.unwrap().is_some());
    store
        .set("meta:gone", b"x", Some(Duration::from_millis(1)))
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(5), async {
        while store.get("meta:gone").await.unwrap().is_some() {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("an expired value reads as absent");
    // Prefix deletion takes exactly the names under the prefix (glob characters are literal).
    for name in [
        "meta:x:/d/1",
        "meta:x:/d/2/3",
        "meta:x:/d*",
        "meta:x:/dz",
        "meta:y:/d/1",
    ] {
        store.set(name, b"v", None).await.unwrap();
    }
    store
        .delete_prefixes("meta:x:", &["meta:x:/d/".to_owned()])
        .await
        .unwrap();
    for (name, kept) in [
        ("meta:x:/d/1", false),
        ("meta:x:/d/2/3", false),
        ("meta:x:/d*", true),
        ("meta:x:/dz", true),
        ("meta:y:/d/1", true),
    ] {
        assert_eq!(store.get(name).await.unwrap().is_some(), kept, "{name}");
    }
    store
        .delete_prefixes(
            "meta:",
            &["meta:x:/d*".to_owned(), "meta:nothing".to_owned()],
        )
        .await
        .unwrap();
    assert!(store.get("meta:x:/d*").await.unwrap().is_none());
    assert!(store.get("meta:x:/dz").await.unwrap().is_some());
    // A conditional set keeps an entry confirmed later than the one offered.
    let entry = |ms: u64| format!("{{\"v\":1,\"checked_ms\":{ms},\"state\":{{}}}}");
    let long = Duration::from_secs(60);
    assert!(
        store
            .set_if_newer("meta:c", entry(200).as_bytes(), 200, long)
            .await
            .unwrap()
    );
    assert!(
        !store
            .set_if_newer("meta:c", entry(100).as_bytes(), 100, long)
            .await
            .unwrap()
    );
    assert_eq!(
        store.get("meta:c").await.unwrap(),
        Some(entry(200).into_bytes())
    );
    assert!(
        store
            .set_if_newer("meta:c", entry(300).as_bytes(), 300, long)
            .await
            .unwrap()
    );
    assert_eq!(
        store.get("meta:c").await.unwrap(),
        Some(entry(300).into_bytes())
    );
    // A lease: one holder at a time, renewable by its holder, free once it lapses.
    let ttl = Duration::from_millis(300);
    assert!(store.hold_lease("lease:t", "one", ttl).await.unwrap());
    assert!(store.hold_lease("lease:t", "one", ttl).await.unwrap());
    assert!(!store.hold_lease("lease:t", "two", ttl).await.unwrap());
    tokio::time::timeout(Duration::from_secs(5), async {
        while !store.hold_lease("lease:t", "two", ttl).await.unwrap() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("a lapsed lease is taken over");
    assert!(!store.hold_lease("lease:t", "one", ttl).await.unwrap());
    store.release_lease("lease:t", "two").await.unwrap();
    assert!(
        store
            .hold_lease("lease:t", "one", Duration::from_secs(60))
            .await
            .unwrap()
    );
    // Binary values round-trip.
    let bin: Vec<u8> = (0..=255).collect();
    store.set("bin", &bin, None).await.unwrap();
    assert_eq!(store.get("bin").await.unwrap(), Some(bin));
}

/// A subscription of `store`'s, once it is up.
async fn subscribed(store: &Store) -> Subscription {
    let mut sub = store.subscribe().expect("redis subscribes");
    tokio::time::timeout(Duration::from_secs(5), sub.healthy.wait_for(|up| *up))
        .await
        .expect("subscribed")
        .unwrap();
    sub
}

/// The next message `sub` hears, within 5 s.
async fn heard(sub: &mut Subscription) -> Option<Vec<u8>> {
    tokio::time::timeout(Duration::from_secs(5), sub.messages.recv())
        .await
        .expect("heard in time")
}

#[tokio::test]
async fn redis_backend_keeps_the_contract_under_versioned_keys() {
    let server = RedisServer::start();
    let config = StoreConfig::Redis {
        url: Secret::new(server.url.clone()),
    };
    let store = Store::open(&config).await.unwrap();
    assert_eq!(store.kind(), "redis");
    contract(&store).await;
    // What Redis holds is under dropcache:v1:.
    store.set("probe", b"p", None).await.unwrap();
    let client = redis::Client::open(server.url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let raw: Option<Vec<u8>> = redis::cmd("GET")
        .arg("dropcache:v1:probe")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(raw.as_deref(), Some(&b"p"[..]));
    // Only the holder releases a lease.
    store
        .release_lease("lease:t", "someone-else")
        .await
        .unwrap();
    assert!(
        !store
            .hold_lease("lease:t", "two", Duration::from_secs(1))
            .await
            .unwrap()
    );
    // Pub/sub: what one store publishes, another's subscription hears.
    let other = Store::open(&config).await.unwrap();
    let mut sub = subscribed(&other).await;
    store.publish(b"hello").await.unwrap();
    assert_eq!(heard(&mut sub).await.as_deref(), Some(&b"hello"[..]));
    // The subscription's liveness probe (every 5 s) keeps it up: it once took the subscribed
    // PING's answer for a failure, and dropped the channel (and L1) every 5 s.
    let _ = sub.healthy.borrow_and_update();
    let dropped = tokio::time::timeout(Duration::from_secs(7), sub.healthy.changed()).await;
    assert!(
        dropped.is_err(),
        "the subscription stayed up through a probe"
    );
    store.publish(b"still").await.unwrap();
    assert_eq!(heard(&mut sub).await.as_deref(), Some(&b"still"[..]));
}

#[tokio::test]
async fn a_redis_cluster_keeps_the_contract_across_its_primaries() {
    let cluster = RedisCluster::start();
    let config = StoreConfig::from_redis_url(&cluster.url).unwrap();
    let store = Store::open(&config).await.unwrap();
    assert_eq!(store.kind(), "redis");
    contract(&store).await;
    // Keys spread over the three primaries, and listing / prefix deletion see all of them.
    for i in 0..60 {
        store.set(&format!("spread:{i}"), b"v", None).await.unwrap();
    }
    let mut holders = 0;
    for url in cluster.node_urls() {
        let client = redis::Client::open(url.as_str()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let n: u64 = redis::cmd("DBSIZE").query_async(&mut conn).await.unwrap();
        holders += usize::from(n > 0);
    }
    assert_eq!(holders, 3, "every primary holds some keys");
    assert_eq!(store.list("spread:").await.unwrap().len(), 60);
    store
        .delete_prefixes("spread:", &["spread:".to_owned()])
        .await
        .unwrap();
    assert!(store.list("spread:").await.unwrap().is_empty());
    // Pub/sub through a cluster: one store publishes on whichever node, another hears on its
    // own.
    let other = Store::open(&config).await.unwrap();
    let mut sub = subscribed(&other).await;
    for i in 0..5 {
        store
            .publish(format!("hello {i}").as_bytes())
            .await
            .unwrap();
        assert_eq!(
            heard(&mut sub).await,
            Some(format!("hello {i}").into_bytes())
        );
    }
    // Two lease holders on different instances: one wins, as on one server.
    let (a, b) = tokio::join!(
        store.hold_lease("lease:c", "a", Duration::from_secs(60)),
        other.hold_lease("lease:c", "b", Duration::from_secs(60))
    );
    assert!(a.unwrap() ^ b.unwrap(), "exactly one holds the lease");
}

#[tokio::test]
async fn embedded_backend_keeps_the_contract_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let config = StoreConfig::Embedded {
        path: dir.path().join("state/store.redb"),
    };
    {
        let store = Store::open(&config).await.unwrap();
        assert_eq!(store.kind(), "embedded");
        contract(&store).await;
        store
            .set("cursor:alice", b"AAE-cursor", None)
            .await
            .unwrap();
    }
    let reopened = Store::open(&config).await.unwrap();
    assert_eq!(
        reopened.get("cursor:alice").await.unwrap().as_deref(),
        Some(&b"AAE-cursor"[..])
    );
}

#[tokio::test]
async fn an_unreachable_redis_is_a_clear_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = StoreConfig::Redis {
        url: Secret::new(format!("redis://127.0.0.1:{port}/0")),
    };
    let err = Store::open(&config)
        .await
        .err()
        .expect("nothing listens there");
    assert!(err.to_string().starts_with("redis:"), "{err}");
}
