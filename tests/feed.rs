//! The change feed: longpoll → continue → deltas applied to L1 and the store, the cursor saved
//! for a restart, `reset` resynced, webhooks verified and acted on, and two proxy processes on
//! one Redis (lease, takeover, pub/sub). The emulator's request log is the witness.

mod common;

use common::proxy::{Settings, TestProxy};
use common::redis::{RedisCluster, RedisServer};
use common::{APP_SECRET, Harness, eventually, join_all, within};
use dropcache::config::StoreConfig;
use dropcache::store::Store;
use hmac::{Hmac, Mac};
use hyper::StatusCode;
use serde_json::json;
use sha2::Sha256;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

fn fed() -> Settings {
    on(None)
}

/// The feed's settings, over a Redis (or cluster) URL, or the embedded store.
fn on(redis: Option<&str>) -> Settings {
    Settings {
        redis: redis.map(str::to_owned),
        feed: true,
        metadata_ttl: "1h",
        negative_ttl: "1h",
        ..Settings::default()
    }
}

/// Each of these runs on the embedded store and on a real three-primary Redis Cluster.
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        mod embedded {
            $(#[tokio::test]
            async fn $name() {
                super::$name(None).await
            })*
        }
        mod cluster {
            $(#[tokio::test]
            async fn $name() {
                let cluster = super::RedisCluster::start();
                super::$name(Some(&cluster.url)).await
            })*
        }
    };
}

on_both_stores!(
    changes_arrive_through_the_feed_without_asking_for_metadata,
    a_deleted_folder_takes_everything_under_it,
    a_restart_resumes_from_the_saved_cursor,
    a_changed_root_starts_the_feed_afresh,
    a_reset_cursor_is_resynced,
);

async fn body(p: &TestProxy, path: &str) -> String {
    p.get(path, &[]).await.text()
}

/// Calls that ask Dropbox for metadata outside the feed.
fn metadata_calls(h: &Harness) -> u64 {
    h.emu().calls("files/get_metadata") + h.emu().calls("files/list_folder")
}

async fn changes_arrive_through_the_feed_without_asking_for_metadata(redis: Option<&str>) {
    let h = Harness::start().await;
    h.put("/Public/a.txt", "one").await;
    h.put("/Public/keep.txt", "keep").await;
    let p = TestProxy::start(&h.running.base_url, &on(redis)).await;
    p.feed_live("alice").await;
    assert_eq!(body(&p, "/alice/a.txt").await, "one");
    let listing = p.get("/alice/", &[("accept", "application/json")]).await;
    assert_eq!(listing.status, StatusCode::OK);
    let before = metadata_calls(&h);
    assert_eq!(
        before, 3,
        "get_metadata for the file and the root, list_folder"
    );

    h.put("/Public/a.txt", "two").await;
    h.put("/Public/new.txt", "new").await;
    let took = eventually("the new version is served", || async {
        body(&p, "/alice/a.txt").await == "two"
    })
    .await;
    println!("change visible after {took:?}");
    let again = p.get("/alice/a.txt", &[]).await;
    assert_eq!(again.header("x-cache-status"), Some("HIT"));
    // The feed updated the listing in place, and brought the new file's metadata.
    let names = || async {
        let listing = p.get("/alice/", &[("accept", "application/json")]).await;
        listing.json()["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["name"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    eventually("the listing shows the new file", || async {
        names().await.contains(&"new.txt".to_owned())
    })
    .await;
    let new = p.get("/alice/new.txt", &[]).await;
    assert_eq!((new.status, new.text().as_str()), (StatusCode::OK, "new"));
    assert_eq!(
        metadata_calls(&h),
        before,
        "no metadata call beyond the feed"
    );
    assert_eq!(h.emu().calls("files/list_folder/get_latest_cursor"), 1);
}

#[tokio::test]
async fn an_unchanged_folder_costs_no_metadata_calls_however_often_it_is_read() {
    let h = Harness::start().await;
    for i in 0..5 {
        h.put(&format!("/Public/g/{i}.txt"), format!("file {i}"))
            .await;
    }
    // A TTL far shorter than the run: without the feed, every path would be revalidated.
    let p = TestProxy::start(
        &h.running.base_url,
        &Settings {
            metadata_ttl: "20ms",
            negative_ttl: "20ms",
            ..fed()
        },
    )
    .await;
    p.feed_live("alice").await;
    let paths: Vec<String> = (0..5)
        .map(|i| format!("/alice/g/{i}.txt"))
        .chain(["/alice/g/".to_owned()])
        .collect();
    for path in &paths {
        assert_eq!(p.get(path, &[]).await.status, StatusCode::OK);
    }
    let warm = h.emu().log();
    let started = std::time::Instant::now();
    const REQUESTS: usize = 10_000;
    const LANES: usize = 8;
    let lanes = (0..LANES).map(|lane| {
        let (p, paths) = (&p, &paths);
        async move {
            let mut ok = 0;
            for i in (lane..REQUESTS).step_by(LANES) {
                let a = p.head(&paths[i % paths.len()], &[]).await;
                ok += usize::from(a.status == StatusCode::OK);
            }
            ok
        }
    });
    let ok: usize = join_all(lanes).await.into_iter().sum();
    let took = started.elapsed();
    assert_eq!(ok, REQUESTS);
    let after = h.emu().log();
    let non_feed = |log: &dropcache::emulator::faults::RequestLog| {
        log.total - log.count("files/list_folder/longpoll")
    };
    println!(
        "{REQUESTS} requests over an unchanged folder in {took:?}: {} Dropbox calls beyond the feed",
        non_feed(&after) - non_feed(&warm)
    );
    assert!(took.as_millis() > 20, "the run outlasts the TTL");
    assert_eq!(non_feed(&after), non_feed(&warm));
}

async fn a_deleted_folder_takes_everything_under_it(redis: Option<&str>) {
    let h = Harness::start().await;
    h.put("/Public/dir/sub/x.txt", "x").await;
    let p = TestProxy::start(&h.running.base_url, &on(redis)).await;
    p.feed_live("alice").await;
    assert_eq!(body(&p, "/alice/dir/sub/x.txt").await, "x");
    assert_eq!(p.get("/alice/dir/", &[]).await.status, StatusCode::OK);
    h.call("files/delete_v2", json!({"path": "/Public/dir"}))
        .await
        .ok();
    eventually("the subtree is gone", || async {
        p.get("/alice/dir/sub/x.txt", &[]).await.status == StatusCode::NOT_FOUND
    })
    .await;
    assert_eq!(
        p.get("/alice/dir/", &[]).await.status,
        StatusCode::NOT_FOUND
    );
}

async fn a_restart_resumes_from_the_saved_cursor(redis: Option<&str>) {
    let h = Harness::start().await;
    h.put("/Public/a.txt", "one").await;
    let dir = tempfile::tempdir().unwrap();
    let settings = Settings {
        store_path: Some(dir.path().join("store")),
        ..on(redis)
    };
    let first = TestProxy::start(&h.running.base_url, &settings).await;
    first.feed_live("alice").await;
    assert_eq!(body(&first, "/alice/a.txt").await, "one");
    first.stop().await;
    // Changed while nobody follows the feed; the saved entry says "one" and the TTL is long.
    h.put("/Public/a.txt", "two").await;
    let second = TestProxy::start(&h.running.base_url, &settings).await;
    second.feed_live("alice").await;
    assert_eq!(body(&second, "/alice/a.txt").await, "two");
    assert_eq!(
        h.emu().calls("files/list_folder/get_latest_cursor"),
        1,
        "the second run resumed the first one's cursor"
    );
    assert_eq!(h.emu().calls("files/get_metadata"), 1);
}

async fn a_changed_root_starts_the_feed_afresh(redis: Option<&str>) {
    let h = Harness::start().await;
    h.put("/Public/a.txt", "public").await;
    h.put("/Site/a.txt", "site").await;
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings {
        store_path: Some(dir.path().join("store")),
        ..on(redis)
    };
    let first = TestProxy::start(&h.running.base_url, &settings).await;
    first.feed_live("alice").await;
    assert_eq!(body(&first, "/alice/a.txt").await, "public");
    first.stop().await;
    settings.accounts = vec![("alice", "/Site")];
    let second = TestProxy::start(&h.running.base_url, &settings).await;
    second.feed_live("alice").await;
    assert_eq!(body(&second, "/alice/a.txt").await, "site");
    assert_eq!(h.emu().calls("files/list_folder/get_latest_cursor"), 2);
    h.put("/Site/a.txt", "site, changed").await;
    eventually("the new root's changes arrive", || async {
        body(&second, "/alice/a.txt").await == "site, changed"
    })
    .await;
}

async fn a_reset_cursor_is_resynced(redis: Option<&str>) {
    let h = Harness::start().await;
    h.put("/Public/a.txt", "one").await;
    let p = TestProxy::start(&h.running.base_url, &on(redis)).await;
    p.feed_live("alice").await;
    assert_eq!(body(&p, "/alice/a.txt").await, "one");
    h.emu().reset_cursors();
    h.put("/Public/a.txt", "two").await;
    eventually("the change is seen after the reset", || async {
        body(&p, "/alice/a.txt").await == "two"
    })
    .await;
    eventually("a new cursor", || async {
        h.emu().calls("files/list_folder/get_latest_cursor") == 2
    })
    .await;
    // Later changes keep arriving on the new cursor.
    p.feed_live("alice").await;
    h.put("/Public/a.txt", "three").await;
    eventually("the feed follows on", || async {
        body(&p, "/alice/a.txt").await == "three"
    })
    .await;
}

#[tokio::test]
async fn with_the_feed_off_nothing_is_followed() {
    let h = Harness::start().await;
    h.put("/Public/a.txt", "one").await;
    let p = TestProxy::start(&h.running.base_url, &Settings::default()).await;
    assert_eq!(body(&p, "/alice/a.txt").await, "one");
    assert!(p.account("alice").feed.trusted_since().is_none());
    let log = h.emu().log();
    assert_eq!(log.count("files/list_folder/longpoll"), 0);
    assert_eq!(log.count("files/list_folder/get_latest_cursor"), 0);
}

fn sign(body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(APP_SECRET.as_bytes()).unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

#[tokio::test]
async fn webhooks_echo_the_challenge_and_act_only_on_a_good_signature() {
    let h = Harness::start().await;
    h.put("/Public/a.txt", "one").await;
    let p = TestProxy::start(&h.running.base_url, &fed()).await;
    let challenge = p.get("/webhook?challenge=a1b2%3Cscript%3E", &[]).await;
    assert_eq!(challenge.status, StatusCode::OK);
    assert_eq!(challenge.text(), "a1b2<script>");
    assert_eq!(
        challenge.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(challenge.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(p.get("/webhook", &[]).await.status, StatusCode::BAD_REQUEST);

    p.feed_live("alice").await;
    let account = p.account("alice");
    eventually("the account id is known", || async {
        account.feed.account_id().is_some()
    })
    .await;
    let id = account.feed.account_id().unwrap().to_owned();
    let note = serde_json::to_vec(&json!({
        "list_folder": {"accounts": [id]},
        "delta": {"users": [12345]},
    }))
    .unwrap();
    let continues = h.emu().calls("files/list_folder/continue");
    let missing = p.post("/webhook", &[], note.clone()).await;
    assert_eq!(missing.status, StatusCode::FORBIDDEN);
    let mut wrong = sign(&note);
    wrong.replace_range(..1, if wrong.starts_with('0') { "1" } else { "0" });
    let bad = p
        .post("/webhook", &[("x-dropbox-signature", &wrong)], note.clone())
        .await;
    assert_eq!(bad.status, StatusCode::FORBIDDEN);
    let tampered = p
        .post(
            "/webhook",
            &[("x-dropbox-signature", &sign(&note))],
            note.iter().rev().copied().collect(),
        )
        .await;
    assert_eq!(tampered.status, StatusCode::FORBIDDEN);
    assert_eq!(account.feed.pokes(), 0, "nothing processed");
    assert_eq!(h.emu().calls("files/list_folder/continue"), continues);

    let good = p
        .post("/webhook", &[("x-dropbox-signature", &sign(&note))], note)
        .await;
    assert_eq!(good.status, StatusCode::OK);
    assert_eq!(account.feed.pokes(), 1);
    // Nothing changed in Dropbox, yet the feed reads its changes at once.
    eventually("the poke reads the feed", || async {
        h.emu().calls("files/list_folder/continue") == continues + 1
    })
    .await;
    let other =
        serde_json::to_vec(&json!({"list_folder": {"accounts": ["dbid:someone-else"]}})).unwrap();
    let ok = p
        .post("/webhook", &[("x-dropbox-signature", &sign(&other))], other)
        .await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(
        account.feed.pokes(),
        1,
        "another account's notice is not ours"
    );
}

/// A `dropcache serve` process, killed on drop; its log goes to a file.
struct Instance {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Instance {
    fn start(emulator: &str, redis: &str) -> Instance {
        let dir = tempfile::tempdir().unwrap();
        let settings = Settings {
            redis: Some(redis.to_owned()),
            ..fed()
        };
        let config = dir.path().join("dropcache.toml");
        std::fs::write(&config, settings.toml(emulator, dir.path())).unwrap();
        let log = std::fs::File::create(dir.path().join("log")).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_dropcache"))
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("the binary runs");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("first line {line:?}"))
            .to_owned();
        Instance {
            child,
            url,
            _dir: dir,
        }
    }

    async fn body(&self, path: &str) -> String {
        let url = format!("{}{path}", self.url);
        let out = tokio::process::Command::new("curl")
            .args(["-s", "--max-time", "10", &url])
            .output();
        let out = within("curl", out).await.unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

async fn lease_holder(store: &Store) -> Option<Vec<u8>> {
    store.get("lease:feed:alice").await.unwrap()
}

/// `n` processes on one store (a Redis server or a cluster): one follows the feed, every one
/// sees each change, and when the follower dies without a word another takes over.
async fn processes_on_one_store_follow_once_and_all_see_changes(url: &str, n: usize) {
    let h = Harness::start().await;
    h.put("/Public/a.txt", "one").await;
    let store = Store::open(&StoreConfig::from_redis_url(url).unwrap())
        .await
        .unwrap();
    let mut all = vec![Instance::start(&h.running.base_url, url)];
    let first = eventually("the first instance takes the lease", || async {
        lease_holder(&store).await.is_some()
    })
    .await;
    let holder = lease_holder(&store).await;
    all.extend((1..n).map(|_| Instance::start(&h.running.base_url, url)));
    for i in &all {
        assert_eq!(i.body("/alice/a.txt").await, "one");
    }
    h.put("/Public/a.txt", "two").await;
    for (n, i) in all.iter().enumerate() {
        let took = eventually("the change reaches every instance", || async {
            i.body("/alice/a.txt").await == "two"
        })
        .await;
        println!("instance {n} served the change {took:?} after the upload");
    }
    assert_eq!(
        lease_holder(&store).await,
        holder,
        "the first still follows alone"
    );
    assert_eq!(
        h.emu().calls("files/list_folder/get_latest_cursor"),
        1,
        "one follower, one cursor (lease taken after {first:?})"
    );
    // The follower dies without a word: another takes over once the lease lapses.
    drop(all.remove(0));
    h.put("/Public/a.txt", "three").await;
    for i in &all {
        eventually(
            "another takes over and every one sees the change",
            || async { i.body("/alice/a.txt").await == "three" },
        )
        .await;
    }
    let now = lease_holder(&store).await;
    assert!(
        now.is_some() && now != holder,
        "another holds the lease now"
    );
}

#[tokio::test]
async fn two_processes_on_one_redis_follow_once_and_both_see_changes() {
    let redis = RedisServer::start();
    processes_on_one_store_follow_once_and_all_see_changes(&redis.url, 2).await;
}

#[tokio::test]
async fn three_processes_on_a_redis_cluster_follow_once_and_all_see_changes() {
    let cluster = RedisCluster::start();
    processes_on_one_store_follow_once_and_all_see_changes(&cluster.url, 3).await;
}
