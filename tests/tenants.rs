//! Tenants never see each other's bytes, and no client can wear the proxy down: two accounts
//! with identical content sharing one body cache, thumbnails kept by content, the body cache's
//! limits under concurrent fills, slow and idle clients, the webhook's bounds, multi-range on
//! a cold large file, misses answered from a fresh listing, malformed paths, and what a first
//! answer tells of other tenants. Everything over real sockets against the emulator.

mod common;

use common::proxy::{Settings, TestProxy};
use common::{Harness, eventually, join_all, within};
use dropcache::emulator::AccountSpec;
use dropcache::emulator::faults::Faults;
use http_body_util::BodyExt;
use hyper::{Method, StatusCode};
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const BOB: &str = "test-token-bob";

/// `len` bytes that differ by `seed`.
fn data(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32 * 31 + seed as u32 * 7) as u8)
        .collect()
}

/// A `w`×`h` PNG.
fn png(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([(x * 3) as u8, (y * 5) as u8, 90]));
    let mut out = std::io::Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(img)
        .write_to(&mut out, image::ImageFormat::Png)
        .unwrap();
    out.into_inner()
}

/// An emulator with two Dropbox accounts: the default one (published as `alice`) and Bob's
/// (published as `bob`), each under `/Public`.
async fn two_accounts() -> Harness {
    let mut config = common::config();
    config.accounts.push(AccountSpec {
        name: "Bob".into(),
        token: Some(BOB.into()),
        root: None,
    });
    Harness::with(config).await
}

fn bob_too() -> String {
    format!("[[account]]\nalias = \"bob\"\nroot = \"/Public\"\naccess_token = {BOB:?}\n")
}

/// `bytes` at `/Public/<name>` in both accounts, and a proxy publishing both (`alice`, `bob`)
/// with both entries' metadata cached and no body yet.
async fn both_hold(h: &Harness, name: &str, bytes: &[u8]) -> TestProxy {
    h.put(&format!("/Public/{name}"), bytes.to_vec()).await;
    h.put_as(BOB, &format!("/Public/{name}"), bytes.to_vec())
        .await;
    let settings = Settings {
        extra: bob_too(),
        ..Settings::default()
    };
    let p = TestProxy::start(&h.running.base_url, &settings).await;
    for who in ["alice", "bob"] {
        let a = p.head(&format!("/{who}/{name}"), &[]).await;
        assert_eq!(a.status, StatusCode::OK);
    }
    p
}

fn latency(ms: u64) -> Faults {
    Faults {
        latency_ms: ms,
        ..Faults::default()
    }
}

/// Bytes of the files under `dir`, each file once: one renamed into place while the walk
/// runs (a temp file published as a blob) keeps its inode, and is not counted twice.
fn dir_bytes(dir: &Path) -> u64 {
    fn walk(dir: &Path, seen: &mut std::collections::HashMap<u64, u64>) {
        use std::os::unix::fs::MetadataExt;
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => walk(&e.path(), seen),
                Ok(m) => {
                    seen.insert(m.ino(), m.len());
                }
                Err(_) => {}
            }
        }
    }
    let mut seen = std::collections::HashMap::new();
    walk(dir, &mut seen);
    seen.values().sum()
}

#[tokio::test]
async fn a_fill_joined_across_accounts_never_records_the_other_accounts_file() {
    let h = two_accounts().await;
    let (x, y) = (data(200_000, 1), data(200_000, 2));
    h.put("/Public/same.bin", x.clone()).await;
    h.put_as(BOB, "/Public/same.bin", x.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let settings = Settings {
        store_path: Some(dir.path().join("store")),
        cache_dir: Some(dir.path().join("cache")),
        extra: bob_too(),
        ..Settings::default()
    };
    let p = TestProxy::start(&h.running.base_url, &settings).await;
    // Both metadata cached, no body yet.
    assert_eq!(p.head("/alice/same.bin", &[]).await.status, StatusCode::OK);
    assert_eq!(p.head("/bob/same.bin", &[]).await.status, StatusCode::OK);
    // Alice's file changes; her cached metadata still names the shared content.
    h.put("/Public/same.bin", y.clone()).await;
    h.emu().set_faults(latency(300));
    let (alice, bob) = tokio::join!(p.get("/alice/same.bin", &[]), async {
        // Bob asks while Alice's download of the shared content is under way: he joins it.
        eventually("alice's download under way", || async {
            h.emu().log().in_flight >= 1
        })
        .await;
        p.get("/bob/same.bin", &[]).await
    });
    h.emu().set_faults(Faults::default());
    assert_eq!(alice.status, StatusCode::OK);
    assert!(alice.body[..] == y[..], "alice gets her new file");
    assert_eq!(bob.status, StatusCode::OK, "{}", bob.text());
    assert!(
        bob.body[..] == x[..],
        "bob gets his own bytes on that request"
    );
    for _ in 0..2 {
        let again = p.get("/bob/same.bin", &[]).await;
        assert!(again.body[..] == x[..], "and on every later one");
    }
    p.stop().await;
    let p = TestProxy::start(&h.running.base_url, &settings).await;
    let after = p.get("/bob/same.bin", &[]).await;
    assert!(
        after.body[..] == x[..],
        "nothing wrong was saved to the store"
    );
    assert_eq!(p.get("/alice/same.bin", &[]).await.body[..], y[..]);
}

#[tokio::test]
async fn a_thumbnail_is_kept_only_under_the_content_it_was_made_of() {
    let h = two_accounts().await;
    let (wide, tall) = (png(64, 32), png(32, 64));
    let p = both_hold(&h, "pic.png", &wide).await;
    // Bob's picture changes while both metadata entries still name the shared content.
    h.put_as(BOB, "/Public/pic.png", tall.clone()).await;
    let dims = |body: &[u8]| {
        let img = image::load_from_memory(body).expect("an image");
        (img.width(), img.height())
    };
    let bob = p.get("/bob/pic.png?thumb=w64h64", &[]).await;
    assert_eq!(bob.status, StatusCode::OK, "{}", bob.text());
    assert_eq!(
        dims(&bob.body),
        (32, 64),
        "bob's thumbnail is of his picture now"
    );
    let alice = p.get("/alice/pic.png?thumb=w64h64", &[]).await;
    assert_eq!(alice.status, StatusCode::OK, "{}", alice.text());
    assert_eq!(
        dims(&alice.body),
        (64, 32),
        "alice's thumbnail is of her picture, not bob's new one"
    );
    assert_ne!(alice.header("etag"), bob.header("etag"));
}

#[tokio::test]
async fn concurrent_fills_never_push_the_cache_past_its_cap() {
    let h = Harness::start().await;
    let files: Vec<Vec<u8>> = (0..6).map(|i| data(100_000, 10 + i)).collect();
    for (i, f) in files.iter().enumerate() {
        h.put(&format!("/Public/f{i}.bin"), f.clone()).await;
    }
    h.emu()
        .set_faults(common::faults(&["files/download=slow:400000"]));
    let dir = tempfile::tempdir().unwrap();
    let cap = 250_000;
    let p = TestProxy::start(
        &h.running.base_url,
        &Settings {
            cache_dir: Some(dir.path().to_owned()),
            max_size: "250000B",
            ..Settings::default()
        },
    )
    .await;
    let done = std::sync::atomic::AtomicBool::new(false);
    let (answers, peak) = tokio::join!(
        async {
            let paths: Vec<String> = (0..6).map(|i| format!("/alice/f{i}.bin")).collect();
            let a = join_all(paths.iter().map(|path| p.get(path, &[]))).await;
            done.store(true, std::sync::atomic::Ordering::Relaxed);
            a
        },
        async {
            let mut peak = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let stats = p.app.bodies.stats();
                assert!(stats.bytes + stats.reserved_bytes <= cap, "{stats:?}");
                peak = peak.max(dir_bytes(dir.path()));
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            peak
        }
    );
    for (a, f) in answers.iter().zip(&files) {
        assert_eq!(a.status, StatusCode::OK);
        assert!(a.body[..] == f[..]);
    }
    println!("peak bytes on disk during 6 concurrent fills: {peak} (cap {cap})");
    assert!(peak <= cap, "the cache dir held {peak} bytes, over the cap");
    assert!(p.app.bodies.usage().1 <= cap);
    assert_eq!(p.app.bodies.stats().reserved_bytes, 0);
}

#[tokio::test]
async fn a_fill_every_client_left_is_cancelled_unless_nearly_done() {
    let h = Harness::start().await;
    let big = data(4_000_000, 3);
    h.put("/Public/big.bin", big.clone()).await;
    h.put("/Public/small.bin", data(300_000, 4)).await;
    h.emu()
        .set_faults(common::faults(&["files/download=slow:100000"]));
    let p = TestProxy::start(&h.running.base_url, &Settings::default()).await;
    let resp = p.send_raw(Method::GET, "/alice/big.bin", &[]).await;
    let mut body = resp.into_body();
    let first = within("first bytes", body.frame()).await.unwrap().unwrap();
    assert!(!first.into_data().unwrap().is_empty());
    drop(body);
    // 40 s of download at this speed: cancelled long before.
    eventually("the abandoned fill is cancelled", || async {
        let s = p.app.bodies.stats();
        s.fills_in_flight == 0 && s.reserved_bytes == 0
    })
    .await;
    assert_eq!(p.app.bodies.usage(), (0, 0), "nothing half-made is kept");
    // With every fill finished however early its clients leave (0), the next one is kept.
    let keep = TestProxy::start(
        &h.running.base_url,
        &Settings {
            extra_cache: "abandoned_fill_completion = 0.0\n",
            ..Settings::default()
        },
    )
    .await;
    h.emu()
        .set_faults(common::faults(&["files/download=slow:1000000"]));
    let resp = keep.send_raw(Method::GET, "/alice/small.bin", &[]).await;
    let mut body = resp.into_body();
    within("first bytes", body.frame()).await.unwrap().unwrap();
    drop(body);
    eventually("the fill finishes for the next client", || async {
        keep.app.bodies.usage() == (1, 300_000)
    })
    .await;
}

/// Reads what a connection sends until it closes; when that was (or None if the read limit
/// passed first).
async fn closed_after(mut conn: TcpStream, started: Instant, limit: Duration) -> Option<Duration> {
    let mut buf = [0u8; 1024];
    let read_all = async {
        loop {
            match conn.read(&mut buf).await {
                Ok(0) | Err(_) => return started.elapsed(),
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(limit, read_all).await.ok()
}

#[tokio::test]
async fn half_sent_heads_and_idle_connections_are_closed_while_others_are_served() {
    let h = Harness::start().await;
    h.put("/Public/a.txt", "hello").await;
    let p = TestProxy::start(
        &h.running.base_url,
        &Settings {
            extra_server: "header_read_timeout = \"1s\"\nkeepalive_timeout = \"2s\"\n",
            ..Settings::default()
        },
    )
    .await;
    // Each connection's deadline runs from its own accept, which is after its connect began
    // (300 connects take a while on a slow machine: the first is timed before the last is
    // made).
    let mut half = Vec::new();
    for _ in 0..300 {
        let connecting = Instant::now();
        let mut c = TcpStream::connect(p.addr).await.unwrap();
        c.write_all(b"GET /alice/a.txt HTTP/1.1\r\nHost: proxy\r\nX-Slow: ")
            .await
            .unwrap();
        half.push((c, connecting));
    }
    let limit = Duration::from_secs(10);
    let (closed, served) = tokio::join!(
        join_all(
            half.into_iter()
                .map(|(c, connecting)| closed_after(c, connecting, limit))
        ),
        async {
            let mut worst = Duration::ZERO;
            for _ in 0..20 {
                let asked = Instant::now();
                let a = p.get("/alice/a.txt", &[]).await;
                assert_eq!((a.status, a.text().as_str()), (StatusCode::OK, "hello"));
                worst = worst.max(asked.elapsed());
            }
            worst
        }
    );
    let closed: Vec<Duration> = closed
        .into_iter()
        .map(|c| c.expect("a half-sent head is closed"))
        .collect();
    let last = closed.iter().max().unwrap();
    println!(
        "300 half-sent heads closed after {:?} .. {last:?} (timeout 1s); 20 normal GETs meanwhile, slowest {served:?}",
        closed.iter().min().unwrap()
    );
    assert!(*last < Duration::from_secs(4), "{last:?}");
    let first = closed.iter().min().unwrap();
    assert!(*first >= Duration::from_millis(990), "{first:?}");
    // An idle keep-alive connection goes after keepalive_timeout, not the header timeout.
    let mut c = TcpStream::connect(p.addr).await.unwrap();
    c.write_all(b"GET /alice/a.txt HTTP/1.1\r\nHost: proxy\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 512];
    let n = within("an answer", c.read(&mut buf)).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    let idle = closed_after(c, Instant::now(), limit)
        .await
        .expect("an idle connection is closed");
    assert!(
        idle >= Duration::from_millis(1500) && idle < Duration::from_secs(5),
        "{idle:?}"
    );
    // A request waiting on Dropbox longer than both deadlines is not cut.
    h.put("/Public/slow.txt", "slowly").await;
    h.emu().set_faults(latency(2500));
    let slow = p.get("/alice/slow.txt", &[]).await;
    assert_eq!(
        (slow.status, slow.text().as_str()),
        (StatusCode::OK, "slowly")
    );
}

#[tokio::test]
async fn at_the_connection_cap_new_clients_wait_for_a_free_slot() {
    let h = Harness::start().await;
    h.put("/Public/a.txt", "hello").await;
    let p = TestProxy::start(
        &h.running.base_url,
        &Settings {
            extra_server: "header_read_timeout = \"1s\"\nmax_connections = 5\n",
            ..Settings::default()
        },
    )
    .await;
    let mut idle = Vec::new();
    for _ in 0..5 {
        idle.push(TcpStream::connect(p.addr).await.unwrap());
    }
    let asked = Instant::now();
    let a = p.get("/alice/a.txt", &[]).await;
    let waited = asked.elapsed();
    assert_eq!(a.status, StatusCode::OK);
    println!("the 6th client was answered after {waited:?} (5 slots held by idle clients)");
    assert!(
        waited >= Duration::from_millis(800),
        "served at once ({waited:?}): the cap did not hold"
    );
    drop(idle);
}

/// Sends `head` then `body` on a fresh connection and reads the status code of the answer,
/// leaving the connection open (the body may be short of its Content-Length).
async fn raw_status(p: &TestProxy, head: &str, body: &[u8]) -> (u16, Duration) {
    let mut c = TcpStream::connect(p.addr).await.unwrap();
    c.write_all(head.as_bytes()).await.unwrap();
    c.write_all(body).await.unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 256];
    let n = within("an answer", c.read(&mut buf)).await.unwrap();
    let text = String::from_utf8_lossy(&buf[..n]).into_owned();
    let code = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    (code, started.elapsed())
}

#[tokio::test]
async fn the_webhook_refuses_before_reading_and_bounds_the_body() {
    let h = Harness::start().await;
    let p = TestProxy::start(
        &h.running.base_url,
        &Settings {
            extra_server: "body_read_timeout = \"1s\"\n",
            ..Settings::default()
        },
    )
    .await;
    let post = |sig: Option<&str>, len: usize| {
        let sig = sig.map_or(String::new(), |s| format!("X-Dropbox-Signature: {s}\r\n"));
        format!("POST /webhook HTTP/1.1\r\nHost: proxy\r\n{sig}Content-Length: {len}\r\n\r\n")
    };
    let good_shape = "ab".repeat(32);
    // Refused at once, the rest of the body never sent.
    for sig in [None, Some("zz"), Some("abc"), Some(&"g".repeat(64)[..])] {
        let (code, took) = raw_status(&p, &post(sig, 100), b"0123456789").await;
        assert_eq!(code, 403, "{sig:?}");
        assert!(took < Duration::from_millis(900), "{sig:?} waited {took:?}");
    }
    // Over the cap: refused by its declared length.
    let (code, _) = raw_status(&p, &post(Some(&good_shape), 100_000), b"").await;
    assert_eq!(code, 413);
    // A body that does not come: refused after the deadline.
    let (code, took) = raw_status(&p, &post(Some(&good_shape), 50), b"{\"list").await;
    assert_eq!(code, 408);
    assert!(took >= Duration::from_millis(900), "{took:?}");
}

#[tokio::test]
async fn a_multi_range_of_a_cold_large_file_asks_dropbox_for_the_parts_only() {
    let h = Harness::start().await;
    let big = data(20_000_000, 5);
    h.put("/Public/big.bin", big.clone()).await;
    let p = TestProxy::start(&h.running.base_url, &Settings::default()).await;
    h.emu().reset_log();
    let asked = Instant::now();
    let a = p.get("/alice/big.bin", &[("Range", "bytes=0-0,-1")]).await;
    let took = asked.elapsed();
    assert_eq!(a.status, StatusCode::PARTIAL_CONTENT);
    let ct = a.header("content-type").unwrap().to_owned();
    let boundary = ct.split("boundary=").nth(1).unwrap();
    let last = big.len() - 1;
    let mut want = format!(
        "--{boundary}\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes 0-0/20000000\r\n\r\n"
    )
    .into_bytes();
    want.push(big[0]);
    want.extend_from_slice(
        format!(
            "\r\n--{boundary}\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes {last}-{last}/20000000\r\n\r\n"
        )
        .as_bytes(),
    );
    want.push(big[last]);
    want.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    assert!(
        a.body[..] == want[..],
        "{:?}",
        String::from_utf8_lossy(&a.body)
    );
    assert_eq!(
        a.header("content-length"),
        Some(want.len().to_string().as_str())
    );
    let log = h.emu().log();
    println!(
        "bytes=0-0,-1 of a cold 20 MB file: {took:?}, {} body bytes from Dropbox in {} downloads",
        log.body_bytes,
        log.count("files/download")
    );
    assert_eq!(
        log.body_bytes, 2,
        "one upstream Range per part, nothing between"
    );
    assert_eq!(log.count("files/download"), 2);
}

#[tokio::test]
async fn names_a_fresh_listing_lacks_cost_dropbox_nothing() {
    let h = Harness::start().await;
    h.put("/Public/dir/a.txt", "a").await;
    let p = TestProxy::start(&h.running.base_url, &Settings::default()).await;
    assert_eq!(p.get("/alice/dir/", &[]).await.status, StatusCode::OK);
    h.emu().reset_log();
    for i in 0..2000 {
        let a = p
            .get(&format!("/alice/dir/r{i:04}-{}.jpg", i * 7919), &[])
            .await;
        assert_eq!(a.status, StatusCode::NOT_FOUND);
    }
    let calls = h.emu().log().total;
    println!("2000 random names under a listed folder: {calls} Dropbox calls");
    assert!(calls <= 3, "{calls} calls to Dropbox");
    // A name the listing has is still looked up and served.
    assert_eq!(p.get("/alice/dir/A.TXT", &[]).await.text(), "a");
    // Under a name that is a file, nothing is there either.
    assert_eq!(
        p.get("/alice/dir/a.txt/x", &[]).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn not_found_lives_its_ttl_and_the_embedded_store_drops_expired_rows() {
    let h = Harness::start().await;
    let p = TestProxy::start(
        &h.running.base_url,
        &Settings {
            negative_ttl: "200ms",
            ..Settings::default()
        },
    )
    .await;
    let dropcache::store::Store::Embedded(store) = &p.app.store else {
        panic!("the embedded store");
    };
    let before = store.rows().await.unwrap();
    // Nothing cached above it: Dropbox says "not found", kept for negative_ttl only.
    assert_eq!(
        p.get("/alice/nowhere/x.txt", &[]).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(store.rows().await.unwrap(), before + 1);
    eventually("the expired row is swept", || async {
        store.sweep().await.unwrap() >= 1
    })
    .await;
    assert_eq!(store.rows().await.unwrap(), before);
}

#[tokio::test]
async fn paths_dropbox_calls_malformed_are_a_400_without_asking_it() {
    let h = Harness::start().await;
    h.put("/Public/a b/c.txt", "c").await;
    let p = TestProxy::start(&h.running.base_url, &Settings::default()).await;
    h.emu().reset_log();
    for path in [
        "/alice/a%20",
        "/alice/a%20/",
        "/alice/dir/x.txt%20",
        "/alice/x%E2%80%83",
    ] {
        let a = p.get(path, &[]).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{path}");
        assert_eq!(a.header("x-content-type-options"), Some("nosniff"));
    }
    assert_eq!(h.emu().log().total, 0);
    // A space inside a name is fine.
    assert_eq!(p.get("/alice/a%20b/c.txt", &[]).await.text(), "c");
}

#[tokio::test]
async fn short_text_answers_are_not_sniffed() {
    let h = Harness::start().await;
    h.put("/Public/a.txt", "a").await;
    let p = TestProxy::start(&h.running.base_url, &Settings::default()).await;
    let answers = [
        p.get("/alice/none.txt", &[]).await,
        p.send(Method::POST, "/alice/a.txt", &[]).await,
        p.get("/alice/a.txt", &[("If-Match", "\"other\"")]).await,
        p.get("/webhook?challenge=%3Cscript%3E", &[]).await,
        p.get("/healthz", &[]).await,
    ];
    for a in answers {
        assert_eq!(
            a.header("x-content-type-options"),
            Some("nosniff"),
            "{}",
            a.status
        );
    }
}

#[tokio::test]
async fn a_first_answer_tells_nothing_of_another_accounts_cache() {
    let h = two_accounts().await;
    let same = data(50_000, 6);
    let p = both_hold(&h, "same.bin", &same).await;
    let status = |a: &common::Answer| a.header("x-cache-status").unwrap().to_owned();
    assert_eq!(status(&p.get("/alice/same.bin", &[]).await), "MISS");
    // Bob's first request finds Alice's blob: served from it, but reported as his MISS.
    let first = p.get("/bob/same.bin", &[]).await;
    assert!(first.body[..] == same[..]);
    assert_eq!(status(&first), "MISS");
    assert_eq!(
        h.emu().calls("files/download"),
        1,
        "the blob is still shared"
    );
    assert_eq!(status(&p.get("/bob/same.bin", &[]).await), "HIT");
    assert_eq!(status(&p.get("/alice/same.bin", &[]).await), "HIT");
}

#[tokio::test]
async fn a_thumbnail_whose_every_waiter_left_leaves_no_flight_behind() {
    let h = Harness::start().await;
    h.put("/Public/pic.png", png(64, 32)).await;
    let p = TestProxy::start(&h.running.base_url, &Settings::default()).await;
    assert_eq!(p.head("/alice/pic.png", &[]).await.status, StatusCode::OK);
    h.emu().set_faults(latency(3000));
    let asked = p.get("/alice/pic.png?thumb=w64h64", &[]);
    assert!(
        tokio::time::timeout(Duration::from_millis(300), asked)
            .await
            .is_err(),
        "the thumbnail is slow to make"
    );
    eventually("the flight is forgotten", || async {
        p.app.bodies.thumbs_in_flight() == 0
    })
    .await;
}

#[tokio::test]
async fn http2_streams_are_capped_and_an_idle_http2_connection_is_closed() {
    use http_body_util::Empty;
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let h = Harness::start().await;
    for i in 0..4 {
        h.put(&format!("/Public/s{i}.txt"), format!("file {i}"))
            .await;
    }
    let p = TestProxy::start(
        &h.running.base_url,
        &Settings {
            extra_server: "keepalive_timeout = \"2s\"\nhttp2_max_streams = 2\n",
            ..Settings::default()
        },
    )
    .await;
    let tcp = TcpStream::connect(p.addr).await.unwrap();
    let (send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .unwrap();
    let conn = tokio::spawn(conn);
    h.emu().set_faults(latency(300));
    let get = |i: usize| {
        let mut send = send.clone();
        async move {
            let req = hyper::Request::get(format!("http://proxy/alice/s{i}.txt"))
                .body(Empty::<bytes::Bytes>::new())
                .unwrap();
            let resp = within("an h2 answer", send.send_request(req))
                .await
                .unwrap();
            let status = resp.status();
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            (status, body)
        }
    };
    // One request first, so the client has the server's SETTINGS (its stream cap) before
    // it opens several (streams opened before that are refused, which is the cap too).
    assert_eq!(get(0).await.0, StatusCode::OK);
    h.emu().reset_log();
    let answers = join_all((0..4).map(get)).await;
    h.emu().set_faults(Faults::default());
    for (i, (status, body)) in answers.iter().enumerate() {
        assert_eq!(*status, StatusCode::OK);
        assert_eq!(body, format!("file {i}").as_bytes());
    }
    let peak = h.emu().log().peak_in_flight;
    assert!(
        peak <= 2,
        "{peak} requests at once on a 2-stream connection"
    );
    // The client keeps its side open (holding `send`): the server closes it.
    let idle = Instant::now();
    let _ = within("an idle HTTP/2 connection is closed", conn).await;
    drop(send);
    let idle = idle.elapsed();
    assert!(
        idle >= Duration::from_millis(1500) && idle < Duration::from_secs(5),
        "{idle:?}"
    );
}

#[tokio::test]
async fn a_fill_started_for_a_range_finishes_after_its_client_leaves() {
    let h = Harness::start().await;
    h.put("/Public/doc.pdf", data(300_000, 7)).await;
    h.emu()
        .set_faults(common::faults(&["files/download=slow:1000000"]));
    let p = TestProxy::start(&h.running.base_url, &Settings::default()).await;
    // A reader of a small file's first bytes (PDF.js, a player) leaves at once.
    let a = p.get("/alice/doc.pdf", &[("Range", "bytes=0-99")]).await;
    assert_eq!(a.status, StatusCode::PARTIAL_CONTENT);
    eventually("the fill finishes and is kept", || async {
        p.app.bodies.usage() == (1, 300_000)
    })
    .await;
    assert_eq!(h.emu().calls("files/download"), 1);
}

#[tokio::test]
async fn a_joined_fill_that_fails_for_its_owner_is_not_this_accounts_failure() {
    let h = two_accounts().await;
    let same = data(100_000, 8);
    let p = both_hold(&h, "same.bin", &same).await;
    // Bob's token stops working; his download of the shared content will fail.
    let revoked = h
        .rpc("auth/token/revoke", Some(BOB), &serde_json::Value::Null)
        .await;
    assert_eq!(revoked.status, StatusCode::OK);
    h.emu().set_faults(latency(300));
    let (bob, alice) = tokio::join!(p.get("/bob/same.bin", &[]), async {
        eventually("bob's download under way", || async {
            h.emu().log().in_flight >= 1
        })
        .await;
        p.get("/alice/same.bin", &[]).await
    });
    assert!(bob.status.is_server_error(), "{}", bob.status);
    assert_eq!(alice.status, StatusCode::OK, "{}", alice.text());
    assert!(alice.body[..] == same[..]);
}

#[tokio::test]
async fn a_thumbnail_first_asked_by_another_account_is_a_miss() {
    let h = two_accounts().await;
    let p = both_hold(&h, "pic.png", &png(64, 32)).await;
    let status = |a: common::Answer| a.header("x-cache-status").unwrap().to_owned();
    let url = |who: &str| format!("/{who}/pic.png?thumb=w64h64");
    assert_eq!(status(p.get(&url("alice"), &[]).await), "MISS");
    assert_eq!(status(p.get(&url("bob"), &[]).await), "MISS");
    assert_eq!(status(p.get(&url("bob"), &[]).await), "HIT");
    assert_eq!(h.emu().calls("files/get_thumbnail_v2"), 1, "made once");
}

#[tokio::test]
async fn without_a_feed_a_listing_answers_not_found_only_within_the_negative_ttl() {
    let h = Harness::start().await;
    h.put("/Public/dir/a.txt", "a").await;
    let p = TestProxy::start(
        &h.running.base_url,
        &Settings {
            negative_ttl: "300ms",
            ..Settings::default()
        },
    )
    .await;
    assert_eq!(p.get("/alice/dir/", &[]).await.status, StatusCode::OK);
    // A file appears behind the proxy's back (no feed here): the listing (60s TTL) lacks it.
    h.put("/Public/dir/new.txt", "new").await;
    assert_eq!(
        p.get("/alice/dir/new.txt", &[]).await.status,
        StatusCode::NOT_FOUND
    );
    // No longer than Dropbox's own "not found" would have been kept.
    eventually("the new file is found", || async {
        p.get("/alice/dir/new.txt", &[]).await.status == StatusCode::OK
    })
    .await;
}

#[tokio::test]
async fn the_embedded_store_sweeps_in_batches_and_keeps_live_rows() {
    let dir = tempfile::tempdir().unwrap();
    let store = dropcache::store::EmbeddedStore::open(&dir.path().join("s"))
        .await
        .unwrap();
    for i in 0..2500 {
        store
            .set(
                format!("old:{i:05}"),
                b"x".to_vec(),
                Some(Duration::from_millis(1)),
            )
            .await
            .unwrap();
    }
    for i in 0..10 {
        store
            .set(format!("live:{i}"), b"y".to_vec(), None)
            .await
            .unwrap();
    }
    eventually("every old row has expired", || async {
        store.get("old:02499".into()).await.unwrap().is_none()
    })
    .await;
    assert_eq!(store.sweep().await.unwrap(), 2500);
    assert_eq!(store.rows().await.unwrap(), 10);
    assert_eq!(
        store.get("live:3".into()).await.unwrap(),
        Some(b"y".to_vec())
    );
}
