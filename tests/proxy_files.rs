//! Serving files: headers, HEAD, RFC 9110 conditionals and ranges, against the emulator with
//! the metadata in a real Redis. The emulator's request log shows when Dropbox was asked.

mod common;

use common::proxy::{Settings, TestProxy};
use common::redis::RedisServer;
use common::{Answer, Harness};
use hyper::StatusCode;
use serde_json::Value;

/// 1,000 bytes whose every slice is recognisable.
fn pattern() -> Vec<u8> {
    (0..1000u32).map(|i| (i % 251) as u8).collect()
}

struct World {
    h: Harness,
    proxy: TestProxy,
    _redis: RedisServer,
    /// The FileMetadata of /Public/Photos/Venice/a.jpg.
    meta: Value,
}

async fn world() -> World {
    let h = Harness::start().await;
    let meta = h.put("/Public/Photos/Venice/a.jpg", pattern()).await;
    let redis = RedisServer::start();
    let settings = Settings {
        redis: Some(redis.url.clone()),
        ..Settings::default()
    };
    let proxy = TestProxy::start(&h.running.base_url, &settings).await;
    World {
        h,
        proxy,
        _redis: redis,
        meta,
    }
}

impl World {
    fn etag(&self) -> String {
        format!("\"{}\"", self.meta["content_hash"].as_str().unwrap())
    }

    fn downloads(&self) -> u64 {
        self.h.emu().calls("files/download")
    }

    fn metadata_calls(&self) -> u64 {
        self.h.emu().calls("files/get_metadata")
    }

    async fn get(&self, headers: &[(&str, &str)]) -> Answer {
        self.proxy.get("/alice/Photos/Venice/a.jpg", headers).await
    }
}

fn last_modified(meta: &Value) -> String {
    let t = humantime::parse_rfc3339(meta["server_modified"].as_str().unwrap()).unwrap();
    httpdate::fmt_http_date(t)
}

#[tokio::test]
async fn a_file_streams_with_its_validators_and_headers() {
    let w = world().await;
    let a = w.get(&[]).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(&a.body[..], &pattern()[..]);
    assert_eq!(a.header("content-type"), Some("image/jpeg"));
    assert_eq!(a.header("content-length"), Some("1000"));
    assert_eq!(a.header("etag"), Some(w.etag().as_str()));
    assert_eq!(
        a.header("last-modified"),
        Some(last_modified(&w.meta).as_str())
    );
    assert_eq!(a.header("accept-ranges"), Some("bytes"));
    assert_eq!(a.header("cache-control"), Some("public, max-age=60"));
    assert_eq!(a.header("x-cache-status"), Some("MISS"));
    assert!(a.header("date").is_some());
    assert_eq!((w.metadata_calls(), w.downloads()), (1, 1));

    // Paths are case-insensitive, like Dropbox; the cached metadata answers.
    let b = w.proxy.get("/alice/photos/VENICE/A.JPG", &[]).await;
    assert_eq!(b.status, StatusCode::OK);
    assert_eq!(b.header("etag"), Some(w.etag().as_str()));
    assert_eq!(b.header("x-cache-status"), Some("HIT"));
    assert_eq!(&b.body[..], &pattern()[..]);
    assert_eq!(w.metadata_calls(), 1, "one cache key for every spelling");
    assert_eq!(
        w.downloads(),
        1,
        "the second body comes from the disk cache"
    );
}

#[tokio::test]
async fn head_is_get_without_the_body_and_without_a_download() {
    let w = world().await;
    let get = w.get(&[]).await;
    let head = w.proxy.head("/alice/Photos/Venice/a.jpg", &[]).await;
    assert_eq!(head.status, StatusCode::OK);
    assert!(head.body.is_empty());
    for name in [
        "content-type",
        "content-length",
        "etag",
        "last-modified",
        "accept-ranges",
        "cache-control",
    ] {
        assert_eq!(head.header(name), get.header(name), "{name}");
    }
    assert_eq!(head.header("x-cache-status"), Some("HIT"));
    assert_eq!(w.downloads(), 1, "HEAD opens no body");
    // HEAD ignores Range (range handling is defined for GET only).
    let ranged = w
        .proxy
        .head("/alice/Photos/Venice/a.jpg", &[("range", "bytes=0-9")])
        .await;
    assert_eq!(ranged.status, StatusCode::OK);
    assert_eq!(ranged.header("content-length"), Some("1000"));
}

#[tokio::test]
async fn a_matching_if_none_match_is_a_304_without_calling_dropbox() {
    let w = world().await;
    w.get(&[]).await;
    w.h.emu().reset_log();
    let etag = w.etag();
    for inm in [
        etag.clone(),
        format!("W/{etag}"),
        format!("\"other\", {etag}"),
        "*".to_owned(),
    ] {
        let a = w.get(&[("if-none-match", &inm)]).await;
        assert_eq!(a.status, StatusCode::NOT_MODIFIED, "{inm}");
        assert!(a.body.is_empty());
        assert_eq!(a.header("etag"), Some(etag.as_str()));
        assert_eq!(a.header("cache-control"), Some("public, max-age=60"));
        assert!(a.header("date").is_some());
        assert_eq!(a.header("x-cache-status"), Some("HIT"));
        assert!(a.header("content-length").is_none_or(|l| l == "0"));
    }
    assert_eq!(
        w.h.emu().log().total,
        0,
        "no call to Dropbox at all, not even for metadata"
    );
    // A tag that does not match gets the file (and If-Modified-Since is then ignored).
    let future = httpdate::fmt_http_date(
        std::time::SystemTime::now() + std::time::Duration::from_secs(3600),
    );
    let a = w
        .get(&[
            ("if-none-match", "\"stale\""),
            ("if-modified-since", &future),
        ])
        .await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.header("x-cache-status"), Some("HIT"));
    assert_eq!(&a.body[..], &pattern()[..]);
    assert_eq!(w.h.emu().log().total, 0, "the body is on disk");
}

#[tokio::test]
async fn the_five_preconditions_in_rfc_order() {
    let w = world().await;
    let etag = w.etag();
    let lm = last_modified(&w.meta);
    let past = "Sat, 01 Jan 2000 00:00:00 GMT";
    let future = "Fri, 01 Jan 2100 00:00:00 GMT";
    let weak = format!("W/{etag}");
    let cases: Vec<(Vec<(&str, &str)>, StatusCode)> = vec![
        (
            vec![("if-match", "\"other\"")],
            StatusCode::PRECONDITION_FAILED,
        ),
        (vec![("if-match", &etag)], StatusCode::OK),
        (vec![("if-match", "*")], StatusCode::OK),
        // If-Match uses the strong comparison: a weak tag never matches.
        (vec![("if-match", &weak)], StatusCode::PRECONDITION_FAILED),
        (
            vec![("if-unmodified-since", past)],
            StatusCode::PRECONDITION_FAILED,
        ),
        (vec![("if-unmodified-since", &lm)], StatusCode::OK),
        // If-Match present: If-Unmodified-Since is not evaluated.
        (
            vec![("if-match", &etag), ("if-unmodified-since", past)],
            StatusCode::OK,
        ),
        (vec![("if-modified-since", &lm)], StatusCode::NOT_MODIFIED),
        (
            vec![("if-modified-since", future)],
            StatusCode::NOT_MODIFIED,
        ),
        (vec![("if-modified-since", past)], StatusCode::OK),
        (vec![("if-modified-since", "not a date")], StatusCode::OK),
        // If-None-Match present: If-Modified-Since is ignored.
        (
            vec![("if-none-match", "\"x\""), ("if-modified-since", &lm)],
            StatusCode::OK,
        ),
        (
            vec![("if-match", "\"other\""), ("if-none-match", &etag)],
            StatusCode::PRECONDITION_FAILED,
        ),
    ];
    for (headers, want) in cases {
        let a = w.get(&headers).await;
        assert_eq!(a.status, want, "{headers:?}");
        if want == StatusCode::PRECONDITION_FAILED {
            assert!(!a.body.is_empty() && a.body.len() < 100);
        }
    }
}

#[tokio::test]
async fn single_open_and_suffix_ranges() {
    let w = world().await;
    let data = pattern();
    for (range, start, end) in [
        ("bytes=0-9", 0, 9),
        ("bytes=990-", 990, 999),
        ("bytes=-5", 995, 999),
        ("bytes=500-5000", 500, 999),
        ("bytes=-5000", 0, 999),
    ] {
        let a = w.get(&[("range", range)]).await;
        assert_eq!(a.status, StatusCode::PARTIAL_CONTENT, "{range}");
        assert_eq!(
            a.header("content-range"),
            Some(format!("bytes {start}-{end}/1000").as_str())
        );
        assert_eq!(&a.body[..], &data[start..=end], "{range}");
        assert_eq!(
            a.header("content-length"),
            Some((end - start + 1).to_string().as_str())
        );
        assert_eq!(a.header("etag"), Some(w.etag().as_str()));
        // The rest of the file's head, as its 200 carries it.
        assert_eq!(a.header("content-type"), Some("image/jpeg"), "{range}");
        assert_eq!(
            a.header("last-modified"),
            Some(last_modified(&w.meta).as_str())
        );
        assert_eq!(a.header("accept-ranges"), Some("bytes"));
        assert_eq!(a.header("cache-control"), Some("public, max-age=60"));
        assert!(a.header("x-cache-status").is_some(), "{range}");
    }
}

/// Splits a multipart/byteranges body into (Content-Range, bytes) parts.
fn parts(a: &Answer) -> Vec<(String, Vec<u8>)> {
    let ct = a.header("content-type").unwrap();
    let boundary = ct
        .strip_prefix("multipart/byteranges; boundary=")
        .unwrap_or_else(|| panic!("{ct}"));
    let body = &a.body[..];
    let delim = format!("--{boundary}");
    let mut out = Vec::new();
    let mut rest = body;
    loop {
        let at = find(rest, delim.as_bytes()).expect("a delimiter");
        rest = &rest[at + delim.len()..];
        if rest.starts_with(b"--") {
            return out;
        }
        let head_end = find(rest, b"\r\n\r\n").unwrap();
        let head = String::from_utf8(rest[..head_end].to_vec()).unwrap();
        let cr = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Range: "))
            .unwrap()
            .to_owned();
        assert!(head.contains("Content-Type: image/jpeg"), "{head}");
        let data_start = head_end + 4;
        let next = find(&rest[data_start..], delim.as_bytes()).unwrap();
        // The data is followed by CRLF before the next delimiter.
        out.push((cr, rest[data_start..data_start + next - 2].to_vec()));
        rest = &rest[data_start + next..];
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[tokio::test]
async fn several_ranges_are_multipart_coalesced_and_capped() {
    let w = world().await;
    let data = pattern();
    let a = w.get(&[("range", "bytes=900-909,0-4,-3")]).await;
    assert_eq!(a.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        a.header("content-length"),
        Some(a.body.len().to_string().as_str())
    );
    let got = parts(&a);
    assert_eq!(
        got,
        vec![
            ("bytes 0-4/1000".to_owned(), data[0..=4].to_vec()),
            ("bytes 900-909/1000".to_owned(), data[900..=909].to_vec()),
            ("bytes 997-999/1000".to_owned(), data[997..=999].to_vec()),
        ]
    );
    // Overlapping and adjacent ranges coalesce into one part: a plain 206.
    let one = w.get(&[("range", "bytes=0-5,3-9,10-19")]).await;
    assert_eq!(one.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(one.header("content-range"), Some("bytes 0-19/1000"));
    assert_eq!(&one.body[..], &data[..20]);
    // More ranges than http.max_ranges (3 here): the whole file.
    let many = w.get(&[("range", "bytes=0-0,10-10,20-20,30-30")]).await;
    assert_eq!(many.status, StatusCode::OK);
    assert_eq!(many.body.len(), 1000);
}

#[tokio::test]
async fn unsatisfiable_and_ignored_ranges() {
    let w = world().await;
    let before = w.downloads();
    let a = w.get(&[("range", "bytes=1000-")]).await;
    assert_eq!(a.status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(a.header("content-range"), Some("bytes */1000"));
    assert_eq!(w.downloads(), before, "a 416 opens no body");
    // Malformed or other units: ignored, the whole file.
    for range in ["bytes=9-2", "items=0-1", "bytes=abc"] {
        let a = w.get(&[("range", range)]).await;
        assert_eq!(a.status, StatusCode::OK, "{range}");
        assert_eq!(a.body.len(), 1000);
    }
}

#[tokio::test]
async fn if_range_honours_the_range_only_on_a_strong_match() {
    let w = world().await;
    let lm = last_modified(&w.meta);
    let etag = w.etag();
    let cases = [
        (etag.clone(), StatusCode::PARTIAL_CONTENT),
        (format!("W/{etag}"), StatusCode::OK),
        ("\"old\"".to_owned(), StatusCode::OK),
        (lm, StatusCode::PARTIAL_CONTENT),
        ("Sat, 01 Jan 2000 00:00:00 GMT".to_owned(), StatusCode::OK),
    ];
    for (if_range, want) in cases {
        let a = w
            .get(&[("range", "bytes=0-9"), ("if-range", &if_range)])
            .await;
        assert_eq!(a.status, want, "{if_range}");
        let len = if want == StatusCode::OK { 1000 } else { 10 };
        assert_eq!(a.body.len(), len);
    }
}

#[tokio::test]
async fn a_file_changed_in_dropbox_behind_fresh_metadata_is_served_new() {
    let w = world().await;
    // Metadata cached, body not (HEAD opens none).
    let old = w.proxy.head("/alice/Photos/Venice/a.jpg", &[]).await;
    let new = w.h.put("/Public/Photos/Venice/a.jpg", "new bytes").await;
    // The metadata is still fresh (TTL), so the proxy believes the old version until the
    // download says otherwise; then it serves the new one with the new validators.
    let a = w.get(&[]).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(&a.body[..], b"new bytes");
    let new_tag = format!("\"{}\"", new["content_hash"].as_str().unwrap());
    assert_eq!(a.header("etag"), Some(new_tag.as_str()));
    assert_ne!(a.header("etag"), old.header("etag"));
    assert_eq!(a.header("content-length"), Some("9"));
    // And the cache now knows the new version.
    let b = w.get(&[("if-none-match", &new_tag)]).await;
    assert_eq!(b.status, StatusCode::NOT_MODIFIED);
}

#[tokio::test]
async fn folders_are_json_listings_or_html_indexes_with_their_own_etags() {
    let w = world().await;
    w.h.put("/Public/Photos/b & c.png", "png").await;
    w.h.put("/Public/Photos/notes.txt", "hello").await;
    let a = w.proxy.get("/alice/Photos/", &[]).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.header("content-type"), Some("application/json"));
    assert_eq!(a.header("vary"), Some("Accept, Accept-Encoding"));
    assert_eq!(a.header("cache-control"), Some("public, max-age=60"));
    let etag = a.header("etag").unwrap().to_owned();
    assert!(etag.starts_with('"') && !etag.starts_with("W/"), "{etag}");
    let v = a.json();
    assert_eq!(v["path"], "/Photos");
    let entries = v["entries"].as_array().unwrap();
    let names: Vec<&str> = entries
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Venice", "b & c.png", "notes.txt"]);
    assert_eq!(entries[0]["is_dir"], true);
    assert_eq!(entries[0]["path"], "/Photos/Venice");
    assert_eq!(entries[0]["url"], "/alice/Photos/Venice/");
    assert_eq!(entries[1]["url"], "/alice/Photos/b%20%26%20c.png");
    let png = w.proxy.get(entries[1]["url"].as_str().unwrap(), &[]).await;
    assert_eq!(png.text(), "png");
    let notes = &entries[2];
    assert_eq!(notes["is_dir"], false);
    assert_eq!(notes["size"], 5);
    assert_eq!(notes["mime"], "text/plain; charset=utf-8");
    assert_eq!(notes["path"], "/Photos/notes.txt");
    assert_eq!(notes["content_hash"].as_str().unwrap().len(), 64);
    assert!(notes["rev"].is_string() && notes["server_modified"].is_string());

    // The same folder without the slash, in another case: the same listing.
    let same = w.proxy.get("/alice/PHOTOS", &[]).await;
    assert_eq!(same.header("etag"), Some(etag.as_str()));
    assert_eq!(same.body, a.body);
    // Revalidation by ETag: 304 with no call to Dropbox.
    w.h.emu().reset_log();
    let not_modified = w
        .proxy
        .get("/alice/Photos/", &[("if-none-match", &etag)])
        .await;
    assert_eq!(not_modified.status, StatusCode::NOT_MODIFIED);
    assert!(not_modified.body.is_empty());
    assert_eq!(not_modified.header("etag"), Some(etag.as_str()));
    assert_eq!(w.h.emu().log().total, 0);

    // Browsers get HTML, a different representation with a different tag.
    let html = w
        .proxy
        .get("/alice/Photos/", &[("accept", "text/html,*/*;q=0.8")])
        .await;
    assert_eq!(html.status, StatusCode::OK);
    assert_eq!(
        html.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_ne!(html.header("etag"), Some(etag.as_str()));
    let page = html.text();
    assert!(
        page.contains("<a href=\"/alice/Photos/Venice/\">Venice/</a>"),
        "{page}"
    );
    assert!(
        page.contains("<a href=\"/alice/Photos/b%20%26%20c.png\">b &amp; c.png</a>"),
        "{page}"
    );
    assert!(page.contains("<a href=\"/alice/\">../</a>"), "{page}");
    let head = w
        .proxy
        .head("/alice/Photos/", &[("accept", "text/html")])
        .await;
    assert!(head.body.is_empty());
    assert_eq!(head.header("content-length"), html.header("content-length"));

    // The published root itself.
    let root = w.proxy.get("/alice/", &[]).await;
    assert_eq!(root.status, StatusCode::OK);
    assert_eq!(root.json()["path"], "/");
    assert_eq!(root.json()["entries"][0]["name"], "Photos");
    // A file asked for as a folder is not found.
    let slash = w.proxy.get("/alice/Photos/notes.txt/", &[]).await;
    assert_eq!(slash.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn non_ascii_names_round_trip_in_any_case() {
    let w = world().await;
    let meta = w.h.put("/Public/Café/Naïve Ünïcode.txt", "ü").await;
    let tag = format!("\"{}\"", meta["content_hash"].as_str().unwrap());
    for path in [
        "/alice/Caf%C3%A9/Na%C3%AFve%20%C3%9Cn%C3%AFcode.txt",
        "/alice/CAF%C3%89/na%C3%AFve%20%C3%BCn%C3%AFcode.txt",
    ] {
        let a = w.proxy.get(path, &[]).await;
        assert_eq!(a.status, StatusCode::OK, "{path}");
        assert_eq!(a.text(), "ü");
        assert_eq!(a.header("etag"), Some(tag.as_str()));
    }
    let listing = w.proxy.get("/alice/caf%C3%A9/", &[]).await.json();
    assert_eq!(listing["path"], "/Café");
    assert_eq!(listing["entries"][0]["path"], "/Café/Naïve Ünïcode.txt");
    // The URL that serves each entry is given, encoded, and works as given.
    assert_eq!(listing["url"], "/alice/Caf%C3%A9/");
    let url = listing["entries"][0]["url"].as_str().unwrap();
    assert_eq!(url, "/alice/Caf%C3%A9/Na%C3%AFve%20%C3%9Cn%C3%AFcode.txt");
    assert_eq!(w.proxy.get(url, &[]).await.text(), "ü");
}
