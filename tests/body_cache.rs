//! File bodies in the content-addressed disk cache: one download per hash for any number of
//! clients, read while written, verified, evicted by LRU under the cap, kept across restarts,
//! and pass-through when the disk cannot take them. The emulator's log counts downloads.

mod common;

use common::proxy::{Settings, TestProxy};
use common::{Harness, join_all, within};
use http_body_util::BodyExt;
use hyper::{Method, StatusCode};
use std::path::{Path, PathBuf};

/// `len` bytes that differ by `seed`.
fn data(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32 * 31 + seed as u32) as u8)
        .collect()
}

fn settings(cache: &Path) -> Settings {
    Settings {
        cache_dir: Some(cache.to_owned()),
        ..Settings::default()
    }
}

fn blob_path(cache: &Path, hash: &str) -> PathBuf {
    cache.join(&hash[..2]).join(&hash[2..4]).join(hash)
}

fn blobs_on_disk(cache: &Path) -> usize {
    let mut n = 0;
    for top in std::fs::read_dir(cache).unwrap().flatten() {
        if top.file_name() == "tmp" || !top.path().is_dir() {
            continue;
        }
        for mid in std::fs::read_dir(top.path()).unwrap().flatten() {
            n += std::fs::read_dir(mid.path()).unwrap().count();
        }
    }
    n
}

#[tokio::test]
async fn two_hundred_cold_requests_make_one_download() {
    let h = Harness::start().await;
    let body = data(300_000, 1);
    h.put("/Public/big.bin", body.clone()).await;
    // Slow enough that every request arrives while the one download is running.
    h.emu()
        .set_faults(common::faults(&["files/download=slow:1000000"]));
    let dir = tempfile::tempdir().unwrap();
    let p = TestProxy::start(&h.running.base_url, &settings(dir.path())).await;
    let answers = within(
        "200 GETs",
        join_all((0..200).map(|_| p.get("/alice/big.bin", &[]))),
    )
    .await;
    for a in &answers {
        assert_eq!(a.status, StatusCode::OK);
        assert_eq!(a.body.len(), body.len());
        assert!(a.body[..] == body[..], "a body differs");
    }
    assert_eq!(h.emu().calls("files/download"), 1);
    assert_eq!(h.emu().calls("files/get_metadata"), 1);
    let misses = answers
        .iter()
        .filter(|a| a.header("x-cache-status") == Some("MISS"))
        .count();
    assert!(
        misses > 1,
        "requests joined the running fill ({misses} MISS)"
    );
    assert_eq!(p.app.bodies.usage(), (1, body.len() as u64));
}

#[tokio::test]
async fn a_second_client_gets_bytes_before_a_slow_fill_ends() {
    let h = Harness::start().await;
    let body = data(400_000, 2);
    h.put("/Public/slow.bin", body.clone()).await;
    h.emu()
        .set_faults(common::faults(&["files/download=slow:200000"]));
    let dir = tempfile::tempdir().unwrap();
    let p = TestProxy::start(&h.running.base_url, &settings(dir.path())).await;
    let first = p.send_raw(Method::GET, "/alice/slow.bin", &[]).await;
    let second = p.send_raw(Method::GET, "/alice/slow.bin", &[]).await;
    assert_eq!(second.headers()["x-cache-status"], "MISS");
    let mut second = second.into_body();
    let frame = within("second client's first bytes", second.frame())
        .await
        .expect("a frame")
        .expect("no error");
    assert!(!frame.into_data().unwrap().is_empty());
    // The fill (2 s at 200 kB/s) is still running: nothing is in the cache yet.
    assert_eq!(p.app.bodies.usage(), (0, 0));
    let rest = within("second body", second.collect()).await.unwrap();
    let all = within("first body", first.into_body().collect())
        .await
        .unwrap()
        .to_bytes();
    assert!(all[..] == body[..]);
    assert!(rest.to_bytes().len() < body.len());
    assert_eq!(h.emu().calls("files/download"), 1);
    assert_eq!(p.app.bodies.usage(), (1, body.len() as u64));
}

#[tokio::test]
async fn a_restart_keeps_the_cache_and_a_corrupt_blob_is_refetched() {
    let h = Harness::start().await;
    let body = data(100_000, 3);
    let meta = h.put("/Public/a.bin", body.clone()).await;
    let hash = meta["content_hash"].as_str().unwrap().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let p = TestProxy::start(&h.running.base_url, &settings(dir.path())).await;
    assert_eq!(
        p.get("/alice/a.bin", &[]).await.header("x-cache-status"),
        Some("MISS")
    );
    p.stop().await;
    assert!(blob_path(dir.path(), &hash).is_file());
    // A leftover temp file from a crash is cleaned at start.
    std::fs::write(dir.path().join("tmp/leftover.part"), "x").unwrap();
    // Last used two minutes ago: its first read touches it (a file opened for writing).
    std::fs::File::options()
        .write(true)
        .open(blob_path(dir.path(), &hash))
        .unwrap()
        .set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(120))
        .unwrap();

    let p = TestProxy::start(&h.running.base_url, &settings(dir.path())).await;
    assert!(!dir.path().join("tmp/leftover.part").exists());
    assert_eq!(p.app.bodies.usage(), (1, body.len() as u64));
    // A new store: nothing says this account had these bytes, so its first answer is a
    // MISS (what the cache holds is not told) though nothing is downloaded; then a HIT.
    let a = p.get("/alice/a.bin", &[]).await;
    assert_eq!(a.header("x-cache-status"), Some("MISS"));
    assert!(a.body[..] == body[..]);
    let a = p.get("/alice/a.bin", &[]).await;
    assert_eq!(a.header("x-cache-status"), Some("HIT"));
    assert!(a.body[..] == body[..]);
    // From memory, by sendfile from its file kept open (a read-only one, not the touched).
    assert_eq!(p.app.bodies.stats().sendfile_bytes, body.len() as u64);
    assert_eq!(
        h.emu().calls("files/download"),
        1,
        "no download after a restart"
    );
    p.stop().await;

    // Flip bytes in the blob (same length): found at start-up, checked on first use.
    let mut bad = std::fs::read(blob_path(dir.path(), &hash)).unwrap();
    bad[500] ^= 0xFF;
    std::fs::write(blob_path(dir.path(), &hash), &bad).unwrap();
    let p = TestProxy::start(&h.running.base_url, &settings(dir.path())).await;
    let a = p.get("/alice/a.bin", &[]).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.header("x-cache-status"), Some("MISS"));
    assert!(a.body[..] == body[..], "the corrupt bytes were not served");
    assert_eq!(h.emu().calls("files/download"), 2, "refetched");
    assert_eq!(std::fs::read(blob_path(dir.path(), &hash)).unwrap(), body);
    // Truncated: also refetched.
    p.stop().await;
    std::fs::write(blob_path(dir.path(), &hash), &body[..10]).unwrap();
    let p = TestProxy::start(&h.running.base_url, &settings(dir.path())).await;
    let a = p.get("/alice/a.bin", &[]).await;
    assert!(a.body[..] == body[..]);
    assert_eq!(h.emu().calls("files/download"), 3);
}

#[tokio::test]
async fn eviction_keeps_the_cap_and_the_lru_order() {
    let h = Harness::start().await;
    for (name, seed) in [("a", 10), ("b", 11), ("c", 12)] {
        h.put(&format!("/Public/{name}.bin"), data(1000, seed))
            .await;
    }
    let dir = tempfile::tempdir().unwrap();
    let p = TestProxy::start(
        &h.running.base_url,
        &Settings {
            max_size: "2500B",
            ..settings(dir.path())
        },
    )
    .await;
    let status = |a: common::Answer| a.header("x-cache-status").unwrap().to_owned();
    assert_eq!(status(p.get("/alice/a.bin", &[]).await), "MISS");
    assert_eq!(status(p.get("/alice/b.bin", &[]).await), "MISS");
    assert_eq!(status(p.get("/alice/a.bin", &[]).await), "HIT"); // a is now the newer
    assert_eq!(status(p.get("/alice/c.bin", &[]).await), "MISS"); // evicts b
    assert_eq!(p.app.bodies.usage(), (2, 2000));
    assert_eq!(blobs_on_disk(dir.path()), 2);
    assert_eq!(status(p.get("/alice/a.bin", &[]).await), "HIT");
    assert_eq!(status(p.get("/alice/c.bin", &[]).await), "HIT");
    assert_eq!(status(p.get("/alice/b.bin", &[]).await), "MISS"); // evicts a
    assert_eq!(status(p.get("/alice/c.bin", &[]).await), "HIT");
    assert_eq!(status(p.get("/alice/a.bin", &[]).await), "MISS");
    assert_eq!(p.app.bodies.usage(), (2, 2000));
    assert_eq!(h.emu().calls("files/download"), 5);
}

#[tokio::test]
async fn identical_content_is_stored_once_and_a_rename_costs_no_download() {
    let h = Harness::start().await;
    let body = data(5000, 4);
    h.put("/Public/one.bin", body.clone()).await;
    h.put("/Public/Other/two.bin", body.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let p = TestProxy::start(&h.running.base_url, &settings(dir.path())).await;
    assert_eq!(
        p.get("/alice/one.bin", &[]).await.header("x-cache-status"),
        Some("MISS")
    );
    let two = p.get("/alice/Other/two.bin", &[]).await;
    assert_eq!(two.header("x-cache-status"), Some("HIT"));
    assert!(two.body[..] == body[..]);
    h.call(
        "files/move_v2",
        serde_json::json!({"from_path": "/Public/one.bin", "to_path": "/Public/renamed.bin"}),
    )
    .await
    .ok();
    let renamed = p.get("/alice/renamed.bin", &[]).await;
    assert_eq!(renamed.header("x-cache-status"), Some("HIT"));
    assert_eq!(h.emu().calls("files/download"), 1);
    assert_eq!(p.app.bodies.usage(), (1, 5000));
}

#[tokio::test]
async fn ranges_come_from_blobs_and_large_cold_ranges_go_to_dropbox() {
    let h = Harness::start().await;
    let body = data(10_000, 5);
    h.put("/Public/r.bin", body.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let p = TestProxy::start(
        &h.running.base_url,
        &Settings {
            range_passthrough_above: "4KiB",
            ..settings(dir.path())
        },
    )
    .await;
    let a = p.get("/alice/r.bin", &[("range", "bytes=100-199")]).await;
    assert_eq!(a.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(a.header("x-cache-status"), Some("BYPASS"));
    assert!(a.body[..] == body[100..200]);
    assert_eq!(p.app.bodies.usage(), (0, 0), "a cold range is not cached");
    let whole = p.get("/alice/r.bin", &[]).await;
    assert_eq!(whole.header("x-cache-status"), Some("MISS"));
    let b = p.get("/alice/r.bin", &[("range", "bytes=9000-,0-9")]).await;
    assert_eq!(b.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(b.header("x-cache-status"), Some("HIT"));
    assert!(
        b.header("content-type")
            .unwrap()
            .starts_with("multipart/byteranges")
    );
    let c = p.get("/alice/r.bin", &[("range", "bytes=-10")]).await;
    assert!(c.body[..] == body[9990..]);
    assert_eq!(h.emu().calls("files/download"), 2);
}

/// A 256 KiB tmpfs, unmounted on drop.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount() -> SmallDisk {
        let dir = tempfile::tempdir().unwrap();
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=256k", "tmpfs"])
            .arg(dir.path())
            .output()
            .expect("mount runs");
        assert!(
            out.status.success(),
            "this test mounts a small tmpfs and needs root: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        SmallDisk { dir }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.dir.path())
            .status();
    }
}

#[tokio::test]
async fn a_full_disk_degrades_to_pass_through_without_a_client_error() {
    let h = Harness::start().await;
    let body = data(1_000_000, 6);
    h.put("/Public/huge.bin", body.clone()).await;
    h.put("/Public/small.bin", data(1000, 7)).await;
    let disk = SmallDisk::mount();
    let p = TestProxy::start(&h.running.base_url, &settings(disk.dir.path())).await;
    // Two clients on one fill that runs out of space at 256 KiB: both get every byte.
    let answers = join_all([p.get("/alice/huge.bin", &[]), p.get("/alice/huge.bin", &[])]).await;
    for a in &answers {
        assert_eq!(a.status, StatusCode::OK);
        assert!(a.body[..] == body[..], "a complete, correct body");
    }
    assert_eq!(p.app.bodies.usage(), (0, 0));
    assert_eq!(blobs_on_disk(disk.dir.path()), 0);
    assert_eq!(
        std::fs::read_dir(disk.dir.path().join("tmp"))
            .unwrap()
            .count(),
        0,
        "the partial temp file is gone"
    );
    // Small files still fit.
    let small = p.get("/alice/small.bin", &[]).await;
    assert_eq!(small.status, StatusCode::OK);
    assert_eq!(p.app.bodies.usage(), (1, 1000));
    // A free-space floor the disk cannot meet: nothing is cached, everything is served.
    let p2 = TestProxy::start(
        &h.running.base_url,
        &Settings {
            min_free: "1TiB",
            ..settings(&disk.dir.path().join("floor"))
        },
    )
    .await;
    let a = p2.get("/alice/small.bin", &[]).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.header("x-cache-status"), Some("BYPASS"));
    assert_eq!(p2.app.bodies.usage(), (0, 0));
    // Let go of the files before the tmpfs is unmounted.
    p.stop().await;
    p2.stop().await;
}

#[tokio::test]
async fn a_download_cut_mid_body_is_never_cached_and_the_next_request_refetches() {
    let h = Harness::start().await;
    let body = data(200_000, 8);
    h.put("/Public/cut.bin", body.clone()).await;
    h.emu()
        .set_faults(common::faults(&["files/download=cut:50000,times=1"]));
    let dir = tempfile::tempdir().unwrap();
    let p = TestProxy::start(&h.running.base_url, &settings(dir.path())).await;
    let resp = p.send_raw(Method::GET, "/alice/cut.bin", &[]).await;
    // Cut before the answer started: a clean 502; after: the body breaks. Never a short 200.
    if resp.status() == StatusCode::OK {
        let got = within("cut body", resp.into_body().collect()).await;
        assert!(
            got.is_err(),
            "the client sees the body break, not a short success"
        );
    } else {
        assert_eq!(resp.status(), StatusCode::BAD_GATEWAY);
    }
    assert_eq!(p.app.bodies.usage(), (0, 0));
    let tmp = dir.path().join("tmp");
    within("temp file removed", async {
        while std::fs::read_dir(&tmp).unwrap().count() > 0 {
            tokio::task::yield_now().await;
        }
    })
    .await;
    let again = p.get("/alice/cut.bin", &[]).await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.header("x-cache-status"), Some("MISS"));
    assert!(again.body[..] == body[..]);
    assert_eq!(h.emu().calls("files/download"), 2);
    assert_eq!(p.app.bodies.usage(), (1, body.len() as u64));
}

#[tokio::test]
async fn range_fill_caches_a_large_file_behind_a_pass_through_range() {
    let h = Harness::start().await;
    let body = data(10_000, 9);
    h.put("/Public/r.bin", body.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut s = settings(dir.path());
    s.range_passthrough_above = "4KiB";
    s.extra_cache = "range_fill = true\n";
    let p = TestProxy::start(&h.running.base_url, &s).await;
    let a = p.get("/alice/r.bin", &[("range", "bytes=0-9")]).await;
    assert_eq!(a.header("x-cache-status"), Some("BYPASS"));
    assert!(a.body[..] == body[..10]);
    within("the background fill lands", async {
        while p.app.bodies.usage().0 == 0 {
            tokio::task::yield_now().await;
        }
    })
    .await;
    let b = p.get("/alice/r.bin", &[("range", "bytes=0-9")]).await;
    assert_eq!(b.header("x-cache-status"), Some("HIT"));
    assert_eq!(h.emu().calls("files/download"), 2);
}

#[tokio::test]
async fn hot_small_bodies_come_from_memory_within_its_budget_and_leave_it_with_the_disk() {
    let h = Harness::start().await;
    let files: Vec<Vec<u8>> = (0..3).map(|i| data(80_000, 40 + i)).collect();
    for (i, f) in files.iter().enumerate() {
        h.put(&format!("/Public/m{i}.bin"), f.clone()).await;
    }
    let big = data(150_000, 50);
    h.put("/Public/big.bin", big.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let p = TestProxy::start(
        &h.running.base_url,
        &Settings {
            cache_dir: Some(dir.path().to_owned()),
            // Room on disk for the three small files; in memory, for two.
            max_size: "250000B",
            extra_cache: "memory_size = \"170000B\"\nmemory_max_object = \"100000B\"\n",
            ..Settings::default()
        },
    )
    .await;
    for round in 0..2 {
        for (i, f) in files.iter().enumerate() {
            let a = p.get(&format!("/alice/m{i}.bin"), &[]).await;
            assert_eq!(a.status, StatusCode::OK);
            assert!(a.body[..] == f[..], "round {round}, file {i}");
            let s = p.app.bodies.stats();
            assert!(s.memory_bytes <= 170_000, "{s:?}");
            assert!(
                s.memory_bytes <= s.bytes,
                "memory holds only what the disk does: {s:?}"
            );
        }
    }
    let s = p.app.bodies.stats();
    assert_eq!((s.memory_entries, s.memory_bytes), (2, 160_000), "{s:?}");
    assert_eq!(
        h.emu().calls("files/download"),
        3,
        "the second round cost nothing"
    );
    // A range from a body in memory.
    let r = p.get("/alice/m2.bin", &[("range", "bytes=100-199")]).await;
    assert_eq!(r.status, StatusCode::PARTIAL_CONTENT);
    assert!(r.body[..] == files[2][100..200]);
    // Too big for memory: served from disk, not kept in memory.
    for _ in 0..2 {
        assert!(p.get("/alice/big.bin", &[]).await.body[..] == big[..]);
    }
    let s = p.app.bodies.stats();
    assert!(
        s.memory_bytes <= s.bytes && s.memory_bytes <= 170_000,
        "{s:?}"
    );
    // The big file evicted two small ones from disk: they left memory with it.
    assert_eq!((s.entries, blobs_on_disk(dir.path())), (2, 2), "{s:?}");
    assert_eq!((s.memory_entries, s.memory_bytes), (1, 80_000), "{s:?}");
    assert_eq!(h.emu().calls("files/download"), 4);
}

#[tokio::test]
async fn a_changed_file_is_never_served_from_a_stale_memory_copy() {
    let h = Harness::start().await;
    h.put("/Public/page.html", "<p>old</p>").await;
    let p = TestProxy::start(
        &h.running.base_url,
        &Settings {
            // Every request asks Dropbox whether the file changed.
            metadata_ttl: "0s",
            ..Settings::default()
        },
    )
    .await;
    for _ in 0..3 {
        assert_eq!(p.get("/alice/page.html", &[]).await.text(), "<p>old</p>");
    }
    assert!(p.app.bodies.stats().memory_entries >= 1);
    h.put("/Public/page.html", "<p>new</p>").await;
    for _ in 0..3 {
        let a = p.get("/alice/page.html", &[]).await;
        assert_eq!(a.text(), "<p>new</p>");
    }
    // The old bytes are still cached (by their own hash), never under the new name.
    assert_eq!(p.app.bodies.stats().entries, 2);
}

/// This process's descriptors open on blobs under `cache` (not its temp files).
fn blob_fds(cache: &Path) -> usize {
    let cache = cache.canonicalize().unwrap();
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .flatten()
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .filter(|target| target.starts_with(&cache) && !target.starts_with(cache.join("tmp")))
        .count()
}

#[tokio::test]
async fn hot_files_stay_open_until_their_blob_leaves_the_cache() {
    let h = Harness::start().await;
    let (a, b) = (data(100_000, 7), data(100_000, 8));
    h.put("/Public/a.bin", a.clone()).await;
    h.put("/Public/b.bin", b.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let p = TestProxy::start(
        &h.running.base_url,
        &Settings {
            cache_dir: Some(dir.path().to_owned()),
            // Room for one of the two; no memory tier: every hit reads the disk.
            max_size: "150000B",
            extra_cache: "memory_size = \"0B\"\nopen_files = 4\n",
            ..Settings::default()
        },
    )
    .await;
    for _ in 0..3 {
        assert!(p.get("/alice/a.bin", &[]).await.body[..] == a[..]);
    }
    // The fill, then one open of the blob, kept for the third.
    assert_eq!(p.app.bodies.stats().open_files, 1);
    assert_eq!(blob_fds(dir.path()), 1, "one descriptor, shared");
    let r = p.get("/alice/a.bin", &[("range", "bytes=10-19")]).await;
    assert!(r.body[..] == a[10..20]);
    // b's blob evicts a's: a's file is closed with it.
    for _ in 0..3 {
        assert!(p.get("/alice/b.bin", &[]).await.body[..] == b[..]);
    }
    let s = p.app.bodies.stats();
    assert_eq!((s.entries, s.open_files), (1, 1), "{s:?}");
    assert_eq!(blob_fds(dir.path()), 1, "a's descriptor is closed");
    assert_eq!(h.emu().calls("files/download"), 2);
}

/// One HTTP/1.1 answer read off a raw connection: its head and its `Content-Length` body (none
/// for a HEAD's answer, whatever its `Content-Length` says).
async fn read_answer(
    conn: &mut tokio::net::TcpStream,
    pending: &mut Vec<u8>,
    to_head: bool,
) -> (String, Vec<u8>) {
    use tokio::io::AsyncReadExt;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        if let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8(pending[..end].to_vec()).unwrap();
            let len: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length: ")
                        .map(|v| v.trim().parse().unwrap())
                })
                .filter(|_| !to_head)
                .unwrap_or(0);
            let body_from = end + 4;
            while pending.len() < body_from + len {
                let n = within("the body", conn.read(&mut buf)).await.unwrap();
                assert!(n > 0, "the connection closed mid-body");
                pending.extend_from_slice(&buf[..n]);
            }
            let body = pending[body_from..body_from + len].to_vec();
            pending.drain(..body_from + len);
            return (head, body);
        }
        let n = within("a head", conn.read(&mut buf)).await.unwrap();
        assert!(n > 0, "the connection closed before an answer");
        pending.extend_from_slice(&buf[..n]);
    }
}

/// A GET over a fresh HTTP/2 (h2c) connection: the body's bytes.
async fn h2c_get(addr: std::net::SocketAddr, path: &str) -> bytes::Bytes {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tcp),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let req = hyper::Request::get(format!("http://p{path}"))
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let resp = within("an HTTP/2 answer", send.send_request(req))
        .await
        .unwrap();
    within("its body", resp.into_body().collect())
        .await
        .unwrap()
        .to_bytes()
}

#[tokio::test]
async fn blobs_go_by_sendfile_on_plain_http1_and_are_read_by_us_otherwise() {
    use tokio::io::AsyncWriteExt;
    let h = Harness::start().await;
    let big = data(3 << 20, 9);
    h.put("/Public/big.bin", big.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let p = TestProxy::start(&h.running.base_url, &settings(dir.path())).await;
    let sent = || p.app.bodies.stats().sendfile_bytes;
    // The fill's bytes are read by us; the blob's, next time, go by sendfile.
    assert!(p.get("/alice/big.bin", &[]).await.body[..] == big[..]);
    assert_eq!(sent(), 0);
    let whole = p.get("/alice/big.bin", &[]).await;
    assert_eq!(whole.status, StatusCode::OK);
    assert!(whole.body[..] == big[..], "the same bytes");
    assert_eq!(sent(), big.len() as u64);
    // A single range is the blob's bytes too; a multi-range answer (with its part heads) is not.
    let r = p
        .get("/alice/big.bin", &[("range", "bytes=1000-2500000")])
        .await;
    assert_eq!(r.status, StatusCode::PARTIAL_CONTENT);
    assert!(r.body[..] == big[1000..=2_500_000]);
    assert_eq!(sent(), big.len() as u64 + 2_499_001);
    let before = sent();
    let m = p
        .get("/alice/big.bin", &[("range", "bytes=0-9,2000000-2000009")])
        .await;
    assert_eq!(m.status, StatusCode::PARTIAL_CONTENT);
    let text = String::from_utf8_lossy(&m.body);
    assert!(
        text.contains("Content-Range: bytes 0-9/3145728"),
        "{text:.300}"
    );
    assert!(m.body.windows(10).any(|w| w == &big[2_000_000..2_000_010]));
    assert_eq!(sent(), before, "a multipart body is read");
    // Pipelined on one connection, a HEAD between them: each answer's bytes in order.
    let mut conn = tokio::net::TcpStream::connect(p.addr).await.unwrap();
    conn.write_all(
        b"GET /alice/big.bin HTTP/1.1\r\nHost: p\r\nRange: bytes=5-1048580\r\n\r\n\
          HEAD /alice/big.bin HTTP/1.1\r\nHost: p\r\n\r\n\
          GET /alice/big.bin HTTP/1.1\r\nHost: p\r\n\r\n",
    )
    .await
    .unwrap();
    let mut pending = Vec::new();
    let (head, body) = read_answer(&mut conn, &mut pending, false).await;
    assert!(head.starts_with("HTTP/1.1 206"), "{head}");
    assert!(body[..] == big[5..=1_048_580]);
    // The HEAD's answer says the length and sends no body.
    let (head, _) = read_answer(&mut conn, &mut pending, true).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let lower = head.to_ascii_lowercase();
    assert!(lower.contains("content-length: 3145728"), "{head}");
    let (head, body) = read_answer(&mut conn, &mut pending, false).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(body[..] == big[..], "the pipelined GET's bytes");
    // A reader slower than the sender, on a small receive buffer: the socket fills, each
    // sendfile sends part of its frame and the next waits for room (a wait that must end).
    let before = sent();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(16 << 10).unwrap();
    let mut conn = socket.connect(p.addr).await.unwrap();
    conn.write_all(b"GET /alice/big.bin HTTP/1.1\r\nHost: p\r\n\r\n")
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let (head, body) = read_answer(&mut conn, &mut Vec::new(), false).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(body[..] == big[..], "the slow reader's bytes");
    assert_eq!(sent(), before + big.len() as u64, "sent by sendfile");
    // HTTP/2 (h2c) frames its own data: the blob is read, and the bytes are the same.
    let before = sent();
    let body = h2c_get(p.addr, "/alice/big.bin").await;
    assert!(body[..] == big[..]);
    assert_eq!(sent(), before, "HTTP/2 does not use sendfile");
    assert_eq!(h.emu().calls("files/download"), 1);
}

#[tokio::test]
async fn hot_bodies_in_memory_go_by_sendfile_from_sendfile_min_on_plain_http1() {
    let h = Harness::start().await;
    let mid = data(64 << 10, 11);
    let small = data(4 << 10, 12);
    h.put("/Public/mid.bin", mid.clone()).await;
    h.put("/Public/small.bin", small.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let p = TestProxy::start(&h.running.base_url, &settings(dir.path())).await;
    let sent = || p.app.bodies.stats().sendfile_bytes;
    // The fill's bytes, then the blob read into memory (its file kept open): read by us.
    for _ in 0..2 {
        assert!(p.get("/alice/mid.bin", &[]).await.body[..] == mid[..]);
        assert!(p.get("/alice/small.bin", &[]).await.body[..] == small[..]);
    }
    assert_eq!(sent(), 0);
    let stats = p.app.bodies.stats();
    assert_eq!(stats.memory_entries, 2, "{stats:?}");
    assert_eq!(
        stats.open_files, 1,
        "only the one above sendfile_min: {stats:?}"
    );
    // From memory now: 64 KiB by sendfile from its file, the same bytes.
    let whole = p.get("/alice/mid.bin", &[]).await;
    assert_eq!(whole.status, StatusCode::OK);
    assert!(whole.body[..] == mid[..]);
    assert_eq!(sent(), mid.len() as u64);
    // A range of at least sendfile_min too; a smaller one, and a smaller body, are copied.
    let r = p
        .get("/alice/mid.bin", &[("range", "bytes=100-40099")])
        .await;
    assert_eq!(r.status, StatusCode::PARTIAL_CONTENT);
    assert!(r.body[..] == mid[100..40100]);
    assert_eq!(sent(), mid.len() as u64 + 40_000);
    let before = sent();
    let r = p.get("/alice/mid.bin", &[("range", "bytes=0-99")]).await;
    assert!(r.body[..] == mid[..100]);
    assert!(p.get("/alice/small.bin", &[]).await.body[..] == small[..]);
    assert_eq!(sent(), before);
    // HTTP/2 cannot take sendfile: the memory copy is the body.
    let body = h2c_get(p.addr, "/alice/mid.bin").await;
    assert!(body[..] == mid[..]);
    assert_eq!(sent(), before, "HTTP/2 does not use sendfile");
    assert_eq!(h.emu().calls("files/download"), 2, "one fill each");
}

#[tokio::test]
async fn with_sendfile_off_blobs_are_read_and_sent_by_us() {
    let h = Harness::start().await;
    let big = data(2 << 20, 10);
    h.put("/Public/big.bin", big.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let p = TestProxy::start(
        &h.running.base_url,
        &Settings {
            extra_cache: "sendfile = false\n",
            ..settings(dir.path())
        },
    )
    .await;
    for _ in 0..2 {
        assert!(p.get("/alice/big.bin", &[]).await.body[..] == big[..]);
    }
    let r = p
        .get("/alice/big.bin", &[("range", "bytes=7-1000007")])
        .await;
    assert!(r.body[..] == big[7..=1_000_007]);
    assert_eq!(p.app.bodies.stats().sendfile_bytes, 0);
}
