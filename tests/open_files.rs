//! A blob is deleted only when it is wrong: running out of file descriptors while opening one
//! answers from Dropbox (or fails) and keeps the blob. Its own test binary: it lowers this
//! process's open-files limit for a moment, which would disturb tests running beside it.

mod common;

use common::proxy::{Settings, TestProxy};
use common::{Harness, within};
use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn blob_path(cache: &std::path::Path, hash: &str) -> std::path::PathBuf {
    cache.join(&hash[..2]).join(&hash[2..4]).join(hash)
}

/// Sends a GET on an open connection and reads the whole answer (by its Content-Length);
/// its status.
async fn get_on(conn: &mut tokio::net::TcpStream, path: &str) -> u16 {
    let req = format!("GET {path} HTTP/1.1\r\nHost: proxy\r\n\r\n");
    conn.write_all(req.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = within("an answer", conn.read(&mut buf)).await.unwrap();
        assert!(n > 0, "the connection closed mid-answer");
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got).into_owned();
        let Some(end) = text.find("\r\n\r\n") else {
            continue;
        };
        let len: usize = text[..end]
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length: ")?
                    .parse()
                    .ok()
            })
            .unwrap_or(0);
        if got.len() >= end + 4 + len {
            return text
                .split(' ')
                .nth(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("no status line in {text:?}"));
        }
    }
}

#[tokio::test]
async fn running_out_of_descriptors_keeps_the_blob_and_the_limit_is_raised_and_shown() {
    let h = Harness::start().await;
    let body = vec![7u8; 20_000];
    let meta = h.put("/Public/a.bin", body.clone()).await;
    let hash = meta["content_hash"].as_str().unwrap().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let p = TestProxy::start(
        &h.running.base_url,
        &Settings {
            cache_dir: Some(dir.path().to_owned()),
            extra: "[admin]\ntoken = \"admin-secret-0123456789\"\n".into(),
            ..Settings::default()
        },
    )
    .await;
    // At start the soft limit was raised to the hard one, and /admin/cache says so.
    let cache = p
        .get(
            "/admin/cache",
            &[("Authorization", "Bearer admin-secret-0123456789")],
        )
        .await
        .json();
    let limit = &cache["open_files_limit"];
    assert!(limit["soft"].is_u64(), "{cache}");
    assert_eq!(limit["soft"], limit["hard"], "{cache}");
    let mut conn = tokio::net::TcpStream::connect(p.addr).await.unwrap();
    assert_eq!(get_on(&mut conn, "/alice/a.bin").await, 200);
    assert!(blob_path(dir.path(), &hash).is_file());
    assert_eq!(h.emu().calls("files/download"), 1);

    // No descriptor left: the next open of the blob fails with EMFILE.
    let was = getrlimit(Resource::Nofile);
    let highest = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u64>().ok())
        .max()
        .unwrap();
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(highest + 1),
            maximum: was.maximum,
        },
    )
    .unwrap();
    let mut filler = Vec::new();
    while let Ok(f) = std::fs::File::open("/dev/null") {
        filler.push(f);
    }
    let status = get_on(&mut conn, "/alice/a.bin").await;
    drop(filler);
    setrlimit(Resource::Nofile, was).unwrap();
    assert!(
        status == 200 || status >= 500,
        "served from Dropbox, or failed: {status}"
    );

    // The blob was kept: the next request is a hit, with no new download.
    assert!(
        blob_path(dir.path(), &hash).is_file(),
        "the blob was deleted"
    );
    let downloads = h.emu().calls("files/download");
    let again = p.get("/alice/a.bin", &[]).await;
    assert!(again.body[..] == body[..]);
    assert_eq!(again.header("x-cache-status"), Some("HIT"));
    assert_eq!(h.emu().calls("files/download"), downloads);
}
