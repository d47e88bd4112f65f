//! Shared links read with the app's key and secret only (`/s/<link>/<path>`): a folder link's
//! metadata and contents as JSON, its files and sub-paths through the body cache with ETag /
//! 304 / Range, links by config name or by URL, and Dropbox's refusals as 404 / 403. Then
//! thumbnails (`?thumb=`), on published paths and on links, cached by content. The emulator's
//! request log is the witness of what reached Dropbox, and with which credentials.

mod common;

use common::proxy::{Settings, TestProxy};
use common::{Answer, Harness, join_all};
use hyper::StatusCode;
use serde_json::{Value, json};

/// A 300×150 PNG.
fn png() -> Vec<u8> {
    let img = image::RgbImage::from_pixel(300, 150, image::Rgb([0, 128, 255]));
    let mut out = std::io::Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(img)
        .write_to(&mut out, image::ImageFormat::Png)
        .unwrap();
    out.into_inner()
}

/// A link to `path` (with a password, if given): its URL.
async fn share(h: &Harness, path: &str, password: Option<&str>) -> String {
    let mut arg = json!({ "path": path });
    if let Some(p) = password {
        arg["settings"] = json!({"requested_visibility": {".tag": "password"}, "link_password": p});
    }
    h.call("sharing/create_shared_link_with_settings", arg)
        .await
        .ok()["url"]
        .as_str()
        .unwrap()
        .to_owned()
}

struct Setup {
    h: Harness,
    p: TestProxy,
    file_url: String,
}

/// `/Gallery` (`a.png`, `notes.txt`, `Sub/b.txt`) shared as `gallery`, `/Private/p.txt` shared
/// with a password as `private` (with it) and `locked` (without it), `/Gallery/notes.txt`
/// shared on its own. Links by URL allowed.
async fn setup() -> Setup {
    setup_with("[sharing]\nby_url = true\n").await
}

/// As `setup`, with `extra` config lines after the links.
async fn setup_with(extra: &str) -> Setup {
    let h = Harness::start().await;
    h.put("/Gallery/a.png", png()).await;
    h.put("/Gallery/notes.txt", "0123456789").await;
    h.put("/Gallery/Sub/b.txt", "bee").await;
    h.put("/Private/p.txt", "secret words").await;
    h.put("/Public/pic.png", png()).await;
    h.put("/Public/copy.png", png()).await;
    h.put("/Public/fake.jpg", "not an image").await;
    h.put("/Public/notes.txt", "text").await;
    let gallery = share(&h, "/Gallery", None).await;
    let private = share(&h, "/Private/p.txt", Some("pw")).await;
    let file_url = share(&h, "/Gallery/notes.txt", None).await;
    let settings = Settings {
        extra: format!(
            "[[shared_link]]\nname = \"gallery\"\nurl = {gallery:?}\n\
             [[shared_link]]\nname = \"private\"\nurl = {private:?}\npassword = \"pw\"\n\
             [[shared_link]]\nname = \"locked\"\nurl = {private:?}\n{extra}"
        ),
        ..Settings::default()
    };
    let p = TestProxy::start(&h.running.base_url, &settings).await;
    h.emu().reset_log();
    Setup { h, p, file_url }
}

/// Calls to `route`, and whether any carried a user's token (the log's account is the
/// caller: `app` for app auth).
fn calls(h: &Harness, route: &str) -> (u64, bool) {
    let log = h.emu().log();
    match log.routes.get(route) {
        None => (0, false),
        Some(r) => (r.total, r.accounts.keys().any(|a| a != "app")),
    }
}

fn encoded(url: &str) -> String {
    percent_encoding::utf8_percent_encode(url, percent_encoding::NON_ALPHANUMERIC).to_string()
}

#[tokio::test]
async fn a_folder_link_answers_its_contents_and_serves_its_files_with_app_auth_only() {
    let Setup { h, p, .. } = setup().await;
    let a = p.get("/s/gallery/", &[]).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    assert_eq!(a.header("content-type"), Some("application/json"));
    let v = a.json();
    assert_eq!(
        (
            v["path"].as_str(),
            v["is_dir"].as_bool(),
            v["name"].as_str()
        ),
        (Some("/"), Some(true), Some("Gallery"))
    );
    let contents = v["contents"].as_array().unwrap();
    let names: Vec<&str> = contents
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Sub", "a.png", "notes.txt"]);
    let notes = &contents[2];
    assert_eq!(notes["path"], "/notes.txt");
    assert_eq!(notes["bytes"], 10);
    assert_eq!(notes["size"], "10 bytes");
    assert_eq!(notes["mime_type"], "text/plain; charset=utf-8");
    assert!(notes["rev"].as_str().is_some_and(|r| r.len() >= 9));
    assert!(
        notes["modified"].as_str().unwrap().ends_with(" +0000"),
        "{notes}"
    );
    assert_eq!(contents[1]["thumb_exists"], true);
    assert_eq!(contents[0]["is_dir"], true);
    // Its validator: 304, without asking Dropbox.
    let etag = a.header("etag").unwrap().to_owned();
    let before = h.emu().log().total;
    let again = p.get("/s/gallery/", &[("if-none-match", &etag)]).await;
    assert_eq!(again.status, StatusCode::NOT_MODIFIED);
    assert_eq!(h.emu().log().total, before);

    // A sub-folder and a file inside it.
    let sub = p.get("/s/gallery/Sub/", &[]).await.json();
    assert_eq!(sub["path"], "/Sub");
    assert_eq!(sub["contents"][0]["path"], "/Sub/b.txt");
    assert_eq!(p.get("/s/gallery/sub/B.TXT", &[]).await.text(), "bee");

    // A file: bytes once from Dropbox, then from the body cache, with ETag / 304 / Range.
    let first = p.get("/s/gallery/notes.txt", &[]).await;
    assert_eq!(
        (first.status, first.text().as_str()),
        (StatusCode::OK, "0123456789")
    );
    assert_eq!(first.header("x-cache-status"), Some("MISS"));
    let etag = first.header("etag").unwrap().to_owned();
    let hit = p.get("/s/gallery/notes.txt", &[]).await;
    assert_eq!(hit.header("x-cache-status"), Some("HIT"));
    assert_eq!(hit.header("etag"), Some(etag.as_str()));
    let part = p
        .get("/s/gallery/notes.txt", &[("range", "bytes=2-4")])
        .await;
    assert_eq!(
        (part.status, part.text().as_str()),
        (StatusCode::PARTIAL_CONTENT, "234")
    );
    assert_eq!(part.header("content-range"), Some("bytes 2-4/10"));
    let not_modified = p
        .get("/s/gallery/notes.txt", &[("if-none-match", &etag)])
        .await;
    assert_eq!(not_modified.status, StatusCode::NOT_MODIFIED);
    assert_eq!(
        calls(&h, "sharing/get_shared_link_file").0,
        2,
        "notes.txt and Sub/b.txt, once each"
    );
    // Everything went with the app's key and secret: no user token, no user routes.
    for route in [
        "sharing/get_shared_link_metadata",
        "files/list_folder",
        "sharing/get_shared_link_file",
    ] {
        let (n, user) = calls(&h, route);
        assert!(n > 0 && !user, "{route}: {n} calls, user token: {user}");
    }
    assert_eq!(
        calls(&h, "files/download").0 + calls(&h, "files/get_metadata").0,
        0
    );

    // Missing inside the link; escaping it is refused before anything is asked.
    assert_eq!(
        p.get("/s/gallery/nope.txt", &[]).await.status,
        StatusCode::NOT_FOUND
    );
    let s = p.raw_status(b"/s/gallery/../Private/p.txt").await;
    assert!(s == 400 || s == 404, "{s}");
    assert_eq!(
        p.get("/s/gallery/%2e%2e/Private/p.txt", &[]).await.status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        p.head("/s/gallery/notes.txt", &[])
            .await
            .header("content-length"),
        Some("10")
    );
}

#[tokio::test]
async fn links_by_url_and_dropbox_refusals() {
    let Setup { h, p, file_url } = setup().await;
    // A file link by its URL, percent-encoded into one segment.
    let by_url = p.get(&format!("/s/{}", encoded(&file_url)), &[]).await;
    assert_eq!(
        (by_url.status, by_url.text().as_str()),
        (StatusCode::OK, "0123456789")
    );
    assert_eq!(
        p.get(&format!("/s/{}/", encoded(&file_url)), &[])
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    // Unknown names, links Dropbox does not know, and URLs that are not Dropbox links.
    assert_eq!(
        p.get("/s/nosuchname/x", &[]).await.status,
        StatusCode::NOT_FOUND
    );
    let gone = encoded("https://www.dropbox.com/scl/fi/doesnotexist/x.txt?rlkey=nope&dl=0");
    assert_eq!(
        p.get(&format!("/s/{gone}"), &[]).await.status,
        StatusCode::NOT_FOUND
    );
    let before = h.emu().log().total;
    for elsewhere in [
        "https://example.com/scl/fi/a/b",
        "http://www.dropbox.com/scl/fi/a/b",
    ] {
        let a = p.get(&format!("/s/{}", encoded(elsewhere)), &[]).await;
        assert_eq!(a.status, StatusCode::NOT_FOUND, "{elsewhere}");
    }
    assert_eq!(h.emu().log().total, before, "nothing was fetched for them");
    // A password link: 403 without the password, served with it.
    let locked: Answer = p.get("/s/locked", &[]).await;
    assert_eq!(locked.status, StatusCode::FORBIDDEN, "{}", locked.text());
    assert!(!locked.text().contains("rlkey"));
    assert_eq!(p.get("/s/private", &[]).await.text(), "secret words");
    // Nothing of a link's URL (its key) is shown.
    let v: Value = p.get("/s/gallery/", &[]).await.json();
    assert!(!v.to_string().contains("rlkey"));
}

fn thumbs(h: &Harness) -> (u64, u64) {
    let log = h.emu().log();
    let r = log.routes.get("files/get_thumbnail_v2");
    (
        r.map_or(0, |r| r.total),
        r.and_then(|r| r.accounts.get("app").copied()).unwrap_or(0),
    )
}

#[tokio::test]
async fn thumbnails_are_made_once_kept_by_content_and_validated() {
    let Setup { h, p, .. } = setup().await;
    let first = p.get("/alice/pic.png?thumb=w64h64", &[]).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text());
    assert_eq!(first.header("content-type"), Some("image/jpeg"));
    assert_eq!(first.header("x-cache-status"), Some("MISS"));
    let img = image::load_from_memory_with_format(&first.body, image::ImageFormat::Jpeg).unwrap();
    assert_eq!(
        (img.width(), img.height()),
        (64, 32),
        "strict: fits inside 64x64"
    );
    let etag = first.header("etag").unwrap().to_owned();
    assert_eq!(thumbs(&h).0, 1);
    // Kept: a HIT, the same bytes, no call; a copy with the same content shares it.
    let hit = p.get("/alice/pic.png?thumb=w64h64", &[]).await;
    assert_eq!(
        (hit.header("x-cache-status"), &hit.body),
        (Some("HIT"), &first.body)
    );
    let copy = p.get("/alice/copy.png?thumb=w64h64", &[]).await;
    assert_eq!(
        (copy.header("etag"), copy.header("x-cache-status")),
        (Some(etag.as_str()), Some("HIT"))
    );
    assert_eq!(thumbs(&h).0, 1);
    // Its own validator: 304 with no call.
    let not_modified = p
        .get("/alice/pic.png?thumb=w64h64", &[("if-none-match", &etag)])
        .await;
    assert_eq!(not_modified.status, StatusCode::NOT_MODIFIED);
    // Another size / format / mode is another thumbnail, made once for concurrent askers.
    let many = join_all(
        (0..8).map(|_| p.get("/alice/pic.png?thumb=w128h128&format=png&mode=bestfit", &[])),
    )
    .await;
    assert!(
        many.iter()
            .all(|a| a.status == StatusCode::OK && a.body == many[0].body)
    );
    assert_eq!(many[0].header("content-type"), Some("image/png"));
    assert_ne!(many[0].header("etag"), Some(etag.as_str()));
    assert_eq!(thumbs(&h).0, 2);
    let head = p
        .head("/alice/pic.png?thumb=w128h128&format=png&mode=bestfit", &[])
        .await;
    assert_eq!(
        head.header("content-length").map(str::to_owned),
        Some(many[0].body.len().to_string())
    );
    assert!(head.body.is_empty());

    // Bad sizes name the valid ones; what Dropbox cannot thumbnail is 415.
    let bad = p.get("/alice/pic.png?thumb=w100h100", &[]).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    for size in ["w32h32", "w64h64", "w256h256", "w2048h1536"] {
        assert!(bad.text().contains(size), "{}", bad.text());
    }
    assert_eq!(
        p.get("/alice/pic.png?thumb=w64h64&format=gif", &[])
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
    let text = p.get("/alice/notes.txt?thumb=w64h64", &[]).await;
    assert_eq!(text.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(
        thumbs(&h).0,
        2,
        "a text file is refused without asking Dropbox"
    );
    let fake = p.get("/alice/fake.jpg?thumb=w64h64", &[]).await;
    assert_eq!(
        fake.status,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "{}",
        fake.text()
    );
    assert_eq!(
        p.get("/alice/?thumb=w64h64", &[]).await.status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        p.get("/alice/nope.png?thumb=w64h64", &[]).await.status,
        StatusCode::NOT_FOUND
    );

    // On a shared link's file, with the app's credentials.
    let before = thumbs(&h);
    let linked = p
        .get("/s/gallery/a.png?thumb=w256h256&format=webp", &[])
        .await;
    assert_eq!(linked.status, StatusCode::OK, "{}", linked.text());
    assert_eq!(linked.header("content-type"), Some("image/webp"));
    let img = image::load_from_memory_with_format(&linked.body, image::ImageFormat::WebP).unwrap();
    assert_eq!((img.width(), img.height()), (256, 128));
    assert_eq!(thumbs(&h), (before.0 + 1, before.1 + 1));
    let again = p
        .get("/s/gallery/a.png?thumb=w256h256&format=webp", &[])
        .await;
    assert_eq!(again.header("x-cache-status"), Some("HIT"));
    assert_eq!(thumbs(&h).0, before.0 + 1);
}

#[tokio::test]
async fn links_by_url_are_off_by_default_and_named_links_still_work() {
    let Setup { h, p, file_url } = setup_with("").await;
    let by_url = p.get(&format!("/s/{}", encoded(&file_url)), &[]).await;
    assert_eq!(by_url.status, StatusCode::NOT_FOUND);
    assert_eq!(h.emu().log().total, 0, "nothing asked of Dropbox");
    let named = p.get("/s/gallery/notes.txt", &[]).await;
    assert_eq!(
        (named.status, named.text().as_str()),
        (StatusCode::OK, "0123456789")
    );
    assert_eq!(named.header("content-security-policy"), None);
}

#[tokio::test]
async fn a_link_by_url_has_one_key_whatever_its_query_and_is_sandboxed() {
    let Setup { h, p, file_url } = setup().await;
    let (base, query) = file_url.split_once('?').unwrap();
    let rlkey = query
        .split('&')
        .find(|kv| kv.starts_with("rlkey="))
        .unwrap();
    let upper_host = base.replace("www.dropbox.com", "WWW.DROPBOX.COM");
    let variants = [
        file_url.clone(),
        format!("{base}?{rlkey}&dl=1"),
        format!("{base}?raw=1&{rlkey}"),
        format!("{upper_host}?dl=0&{rlkey}&st=abc"),
    ];
    for url in &variants {
        let a = p.get(&format!("/s/{}", encoded(url)), &[]).await;
        assert_eq!(
            (a.status, a.text().as_str()),
            (StatusCode::OK, "0123456789")
        );
        // SECURITY: a stranger's content never runs as the operator's origin.
        assert_eq!(
            a.header("content-security-policy"),
            Some("sandbox"),
            "{url}"
        );
        assert_eq!(a.header("x-content-type-options"), None);
    }
    assert_eq!(
        calls(&h, "sharing/get_shared_link_metadata").0,
        1,
        "one cache key for every form of the link"
    );
    assert_eq!(
        calls(&h, "sharing/get_shared_link_file").0,
        1,
        "one blob for every form of the link"
    );
    // Without its key the link is another (Dropbox does not know it).
    let keyless = p.get(&format!("/s/{}", encoded(base)), &[]).await;
    assert_eq!(keyless.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_rate_limit_on_one_link_holds_for_every_link_by_url() {
    let Setup { h, p, file_url } = setup().await;
    let gallery = share(&h, "/Gallery/Sub/b.txt", None).await;
    h.emu().set_faults(common::faults(&[
        "sharing/get_shared_link_metadata=429:30,times=1",
    ]));
    let limited = p.get(&format!("/s/{}", encoded(&file_url)), &[]).await;
    assert_eq!(limited.status, StatusCode::SERVICE_UNAVAILABLE);
    let asked = h.emu().log().total;
    // Another URL is the same app to Dropbox: it waits too, without asking.
    let other = p.get(&format!("/s/{}", encoded(&gallery)), &[]).await;
    assert_eq!(other.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(other.header("retry-after").is_some());
    assert_eq!(h.emu().log().total, asked, "no call before Retry-After");
}

#[tokio::test]
async fn a_thumbnail_kept_on_disk_only_is_served_whole_every_time() {
    let h = Harness::start().await;
    h.put("/Public/pic.png", png()).await;
    let p = TestProxy::start(
        &h.running.base_url,
        &Settings {
            // No memory tier: every hit reads the thumbnail's blob, through its kept file.
            extra_cache: "memory_size = \"0B\"\n",
            ..Settings::default()
        },
    )
    .await;
    let first = p.get("/alice/pic.png?thumb=w64h64", &[]).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text());
    assert!(!first.body.is_empty());
    for _ in 0..4 {
        let hit = p.get("/alice/pic.png?thumb=w64h64", &[]).await;
        assert_eq!(
            (hit.header("x-cache-status"), &hit.body),
            (Some("HIT"), &first.body)
        );
    }
    assert_eq!(thumbs(&h).0, 1);
}
