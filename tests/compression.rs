//! Compressed copies (`[compression]`), over real sockets: negotiation by `Accept-Encoding`
//! (q-values, identity, `*`), a strong ETag per coding and 304s by it, ranges of the coded
//! bytes, what is never compressed, a site's precompressed siblings, and copies made before
//! the switch when a site file changes.

mod common;

use common::proxy::{Settings, TestProxy};
use common::{Answer, Harness, eventually, within};
use hyper::StatusCode;
use std::io::Read;

const HOST: &str = "site.example";

fn script() -> String {
    (0..400)
        .map(|i| format!("export function f{i}(x) {{ return x * {i} + 1; }}\n"))
        .collect()
}

fn unbrotli(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    brotli::Decompressor::new(bytes, 4096)
        .read_to_end(&mut out)
        .expect("valid brotli");
    out
}

fn ungzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .expect("valid gzip");
    out
}

async fn setup(feed: bool) -> (Harness, TestProxy) {
    let h = Harness::start().await;
    let settings = Settings {
        feed,
        accounts: vec![("alice", "/Public"), ("bob", "/Public")],
        extra: format!(
            "[[site]]\nname = \"www\"\naccount = \"alice\"\nfolder = \"/site\"\nhosts = [{HOST:?}]\n"
        ),
        ..Settings::default()
    };
    h.put("/Public/app.js", script()).await;
    h.put("/Public/tiny.txt", "too small to bother").await;
    h.put("/Public/photo.png", vec![7u8; 8192]).await;
    let p = TestProxy::start(&h.running.base_url, &settings).await;
    (h, p)
}

/// GETs `path` with `Accept-Encoding: accept` until the answer is coded (the copy is made in
/// the background of the first requests).
async fn coded(p: &TestProxy, path: &str, accept: &str) -> Answer {
    within("the compressed copy is made", async {
        loop {
            let a = p.get(path, &[("accept-encoding", accept)]).await;
            if a.header("content-encoding").is_some() {
                return a;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    })
    .await
}

#[tokio::test]
async fn text_is_served_compressed_by_accept_encoding_with_an_etag_per_coding() {
    let (_h, p) = setup(false).await;
    let plain = p.get("/alice/app.js", &[]).await;
    assert_eq!(plain.status, StatusCode::OK);
    assert_eq!(plain.body, script().as_bytes());
    assert_eq!(
        plain.header("content-encoding"),
        None,
        "no header, no coding"
    );
    assert_eq!(plain.header("vary"), Some("Accept-Encoding"));
    let plain_tag = plain.header("etag").unwrap().to_owned();

    let br = coded(&p, "/alice/app.js", "gzip, deflate, br").await;
    assert_eq!(br.header("content-encoding"), Some("br"));
    assert_eq!(br.header("vary"), Some("Accept-Encoding"));
    assert_eq!(
        br.header("content-type"),
        Some("text/javascript; charset=utf-8")
    );
    assert_eq!(unbrotli(&br.body), script().as_bytes());
    assert!(
        br.body.len() < script().len() / 4,
        "{} bytes",
        br.body.len()
    );
    let br_tag = br.header("etag").unwrap().to_owned();
    assert_eq!(br_tag, format!("{}-br\"", plain_tag.trim_end_matches('"')));

    // Another account over the same bytes has not had them: its first answer is plain, so
    // it cannot tell that a copy exists.
    let first = p.get("/bob/app.js", &[("accept-encoding", "br")]).await;
    assert_eq!(first.header("content-encoding"), None);
    assert_eq!(first.header("x-cache-status"), Some("MISS"));
    let then = p.get("/bob/app.js", &[("accept-encoding", "br")]).await;
    assert_eq!(then.header("content-encoding"), Some("br"));
    let gz = coded(&p, "/alice/app.js", "br;q=0.5, gzip;q=0.9").await;
    assert_eq!(gz.header("content-encoding"), Some("gzip"));
    assert_eq!(ungzip(&gz.body), script().as_bytes());
    let gz_tag = gz.header("etag").unwrap().to_owned();
    assert!(gz_tag.ends_with("-gzip\""), "{gz_tag}");

    // Negotiation: `*`, identity, refusals.
    let cases = [
        ("*", Some("br")),
        ("identity", None),
        ("br;q=0, gzip;q=0", None),
        ("*;q=0", None),
        ("x-gzip", Some("gzip")),
        ("deflate", None),
    ];
    for (accept, want) in cases {
        let a = p.get("/alice/app.js", &[("accept-encoding", accept)]).await;
        assert_eq!(a.header("content-encoding"), want, "{accept}");
    }

    // 304s by each coding's own ETag; another coding's tag does not match.
    let not_modified = p
        .get(
            "/alice/app.js",
            &[("accept-encoding", "br"), ("if-none-match", &br_tag)],
        )
        .await;
    assert_eq!(not_modified.status, StatusCode::NOT_MODIFIED);
    assert_eq!(not_modified.header("etag"), Some(br_tag.as_str()));
    let other = p
        .get(
            "/alice/app.js",
            &[("accept-encoding", "br"), ("if-none-match", &plain_tag)],
        )
        .await;
    assert_eq!(other.status, StatusCode::OK);
    assert_eq!(other.header("content-encoding"), Some("br"));
    let plain_304 = p
        .get("/alice/app.js", &[("if-none-match", &plain_tag)])
        .await;
    assert_eq!(plain_304.status, StatusCode::NOT_MODIFIED);

    // Ranges are of the coded bytes.
    let part = p
        .get(
            "/alice/app.js",
            &[("accept-encoding", "br"), ("range", "bytes=0-9")],
        )
        .await;
    assert_eq!(part.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(&part.body[..], &br.body[..10]);
    assert_eq!(
        part.header("content-range"),
        Some(format!("bytes 0-9/{}", br.body.len()).as_str())
    );
    // HEAD says what GET would.
    let head = p.head("/alice/app.js", &[("accept-encoding", "br")]).await;
    assert_eq!(head.header("content-encoding"), Some("br"));
    assert_eq!(
        head.header("content-length"),
        Some(br.body.len().to_string().as_str())
    );
    assert!(head.body.is_empty());
}

#[tokio::test]
async fn tiny_bodies_and_compressed_types_are_sent_as_they_are() {
    let (_h, p) = setup(false).await;
    for _ in 0..5 {
        for path in ["/alice/tiny.txt", "/alice/photo.png"] {
            let a = p.get(path, &[("accept-encoding", "br, gzip")]).await;
            assert_eq!(a.status, StatusCode::OK);
            assert_eq!(a.header("content-encoding"), None, "{path}");
            assert_eq!(a.header("vary"), None, "{path}");
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_sites_precompressed_sibling_is_preferred_when_it_is_as_new() {
    let (h, p) = setup(false).await;
    let text = script();
    let mut sibling = Vec::new();
    brotli::BrotliCompress(
        &mut text.as_bytes(),
        &mut sibling,
        &brotli::enc::BrotliEncoderParams::default(),
    )
    .unwrap();
    h.put("/Public/site/lib.js", text.clone()).await;
    h.put("/Public/site/lib.js.br", sibling.clone()).await;
    let a = p
        .get(
            "/lib.js",
            &[("host", HOST), ("accept-encoding", "br, gzip")],
        )
        .await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.header("content-encoding"), Some("br"));
    assert_eq!(
        a.header("content-type"),
        Some("text/javascript; charset=utf-8")
    );
    assert_eq!(a.body, sibling, "the sibling's own bytes, at once");
    assert_eq!(a.header("vary"), Some("Accept-Encoding"));
    // Its ETag is the sibling's; a 304 by it.
    let tag = a.header("etag").unwrap().to_owned();
    let again = p
        .get(
            "/lib.js",
            &[
                ("host", HOST),
                ("accept-encoding", "br"),
                ("if-none-match", &tag),
            ],
        )
        .await;
    assert_eq!(again.status, StatusCode::NOT_MODIFIED);
    // A client that takes only gzip (no .gz sibling): the file itself.
    let gz = p
        .get("/lib.js", &[("host", HOST), ("accept-encoding", "gzip")])
        .await;
    assert_ne!(gz.body, sibling);
    // A file newer than its sibling: the sibling is stale and not used.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let newer = format!("{text}// edited\n");
    h.put("/Public/site/lib.js", newer.clone()).await;
    p.app.meta.forget(&p.account("alice"), "/site/lib.js").await;
    let fresh = p
        .get("/lib.js", &[("host", HOST), ("accept-encoding", "br")])
        .await;
    assert_ne!(fresh.body, sibling);
    assert_eq!(
        fresh.header("content-encoding"),
        None,
        "the copy is not made yet"
    );
    assert_eq!(fresh.body, newer.as_bytes());
}

#[tokio::test]
async fn a_changed_site_file_is_compressed_before_the_switch() {
    let (h, p) = setup(true).await;
    p.feed_live("alice").await;
    h.put("/Public/site/index.html", script()).await;
    let new = format!("{}<!-- v2 -->\n", script());
    eventually("the first version is served", || async {
        p.get("/", &[("host", HOST)]).await.status == StatusCode::OK
    })
    .await;
    h.put("/Public/site/index.html", new.clone()).await;
    let first = within("the edit is served", async {
        loop {
            let a = p
                .get("/", &[("host", HOST), ("accept-encoding", "br")])
                .await;
            let body = match a.header("content-encoding") {
                Some("br") => unbrotli(&a.body),
                _ => a.body.to_vec(),
            };
            if body == new.as_bytes() {
                return a;
            }
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
    })
    .await;
    assert_eq!(first.header("content-encoding"), Some("br"));
    assert_eq!(first.header("x-cache-status"), Some("HIT"));
}

#[tokio::test]
async fn listings_are_served_compressed_with_their_own_etag() {
    let (h, p) = setup(false).await;
    for i in 0..60 {
        h.put(&format!("/Public/many/file-{i:03}.txt"), format!("{i}"))
            .await;
    }
    // Two aliases over the same folder: each gets its own listing, coded or not.
    let bob = p.get("/bob/many/", &[("accept-encoding", "br")]).await;
    assert!(
        String::from_utf8(unbrotli(&bob.body))
            .unwrap()
            .contains("/bob/many/")
    );
    let plain = p.get("/alice/many/", &[]).await;
    assert_eq!(plain.status, StatusCode::OK);
    assert!(plain.body.len() > 2048, "{} bytes", plain.body.len());
    assert_eq!(plain.header("vary"), Some("Accept, Accept-Encoding"));
    let br = p.get("/alice/many/", &[("accept-encoding", "br")]).await;
    assert_eq!(
        br.header("content-encoding"),
        Some("br"),
        "at once: made per request"
    );
    assert_eq!(unbrotli(&br.body), plain.body);
    assert!(
        !String::from_utf8(unbrotli(&br.body))
            .unwrap()
            .contains("/bob/")
    );
    let tag = br.header("etag").unwrap().to_owned();
    assert!(tag.ends_with("-br\""), "{tag}");
    let gz = p
        .get(
            "/alice/many/",
            &[("accept-encoding", "gzip"), ("accept", "text/html")],
        )
        .await;
    assert_eq!(gz.header("content-encoding"), Some("gzip"));
    assert!(
        String::from_utf8(ungzip(&gz.body))
            .unwrap()
            .contains("file-059.txt")
    );
    let again = p
        .get(
            "/alice/many/",
            &[("accept-encoding", "br"), ("if-none-match", &tag)],
        )
        .await;
    assert_eq!(again.status, StatusCode::NOT_MODIFIED);
    // A change makes a new listing, and a new coded copy.
    h.put("/Public/many/file-new.txt", "new").await;
    p.app.meta.forget(&p.account("alice"), "/many").await;
    let changed = p.get("/alice/many/", &[("accept-encoding", "br")]).await;
    assert_ne!(changed.header("etag"), Some(tag.as_str()));
    assert!(
        String::from_utf8(unbrotli(&changed.body))
            .unwrap()
            .contains("file-new.txt")
    );
}
