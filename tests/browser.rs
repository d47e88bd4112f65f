//! The demo site in a real browser: headless Chromium (Debian's `chromium`, which `tests/run`
//! installs when missing), driven over the DevTools protocol by `tests/browser/site.py`, loads
//! the site, follows a clean URL and a redirect, gets the custom 404, and on reload gets 304s
//! from the proxy (its access log says so). The screenshot is kept as
//! `target/test-artifacts/site.png` and checked not to be blank.

mod common;

use common::proxy::{Settings, TestProxy};
use common::{Harness, Logs};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread")]
async fn the_demo_site_works_in_a_real_browser() {
    let logs = Logs::capture(tracing::Level::INFO);
    let dir = tempfile::tempdir().unwrap();
    dropcache::demo::write_sample(dir.path()).unwrap();
    let mut config = common::config();
    config.accounts[0].root = Some(dir.path().to_owned());
    let h = Harness::with(config).await;
    let settings = Settings {
        accounts: vec![("alice", "/site")],
        // The default: every reload revalidates what is not given longer.
        cache_control: "public, max-age=0, must-revalidate",
        extra: "[[site]]\nname = \"www\"\naccount = \"alice\"\npath = \"/www\"\n".into(),
        ..Settings::default()
    };
    let p = TestProxy::start(&h.running.base_url, &settings).await;
    let artifacts = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let shot = artifacts.join("site.png");
    let _ = std::fs::remove_file(&shot);
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/site.py");
    let base = p.url("/www/");
    let out = common::within(
        "the browser script",
        tokio::process::Command::new("python3")
            .arg(&script)
            .arg(&base)
            .arg(&shot)
            .output(),
    )
    .await
    .expect("python3 runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the browser script failed (is chromium installed? tests/run installs it): {stderr}"
    );
    let seen: Value = serde_json::from_slice(&out.stdout).expect("one JSON line");
    // The home page, with its images loaded.
    assert_eq!(seen["home"]["status"], 200, "{seen}");
    assert_eq!(seen["home"]["title"], "dropcache demo");
    assert_eq!(seen["home"]["images"], 3, "{seen}");
    // A clean URL, reached by clicking the page's link.
    assert_eq!(seen["clean"]["path"], "/www/about");
    assert_eq!(seen["clean"]["title"], "About this demo");
    // A redirect from _redirects, followed.
    assert_eq!(seen["redirect"]["path"], "/www/about");
    assert_eq!(seen["redirect"]["status"], 200);
    // The site's own 404 page, with status 404.
    assert_eq!(seen["missing"]["status"], 404);
    assert!(
        seen["missing"]["text"]
            .as_str()
            .unwrap()
            .contains("the site's own 404.html")
    );
    // On reload, what the browser holds is revalidated (304) or still fresh in its cache
    // (the photos: `_headers` gives them an hour); nothing comes again whole.
    let responses = seen["reload"]["responses"].as_array().unwrap();
    assert!(responses.len() >= 5, "{seen}");
    for r in responses {
        let url = r["url"].as_str().unwrap();
        let ok = r["status"] == 304 || r["from_cache"] == true || url.ends_with("/www/"); // the document: the browser reports its stored answer
        assert!(ok, "{r}");
    }
    // The proxy's own access log: 304s to the browser for the page and its stylesheet.
    let text = logs.text();
    for path in ["/www/ ", "/www/style.css "] {
        let revalidated = text.lines().any(|l| {
            l.contains("HeadlessChrome") && l.contains(&format!("\"GET {path}HTTP/1.1\" 304"))
        });
        let lines: Vec<&str> = text.lines().filter(|l| l.contains(path.trim())).collect();
        assert!(
            revalidated,
            "no 304 for {path} in the access log: {lines:#?}"
        );
    }
    // The screenshot: a page, not a blank.
    let img = image::open(&shot).expect("a PNG screenshot").to_rgb8();
    assert!(img.width() >= 800 && img.height() >= 600);
    let colours: std::collections::HashSet<[u8; 3]> = img.pixels().map(|p| p.0).collect();
    assert!(
        colours.len() > 100,
        "{} colours: a blank page?",
        colours.len()
    );
}

/// The demo's gallery page in a real browser: every tile has the aspect ratio the album
/// declares, the thumbnails in view load, a click opens the full image (at the declared size),
/// the arrow key goes to the next and Escape closes. Screenshot: `target/test-artifacts/gallery.png`.
#[tokio::test(flavor = "multi_thread")]
async fn the_demo_gallery_works_in_a_real_browser() {
    let dir = tempfile::tempdir().unwrap();
    dropcache::demo::write_sample(dir.path()).unwrap();
    let mut config = common::config();
    config.accounts[0].root = Some(dir.path().to_owned());
    let h = Harness::with(config).await;
    let settings = Settings {
        accounts: vec![("demo", "/site")],
        extra: "[[site]]\nname = \"www\"\naccount = \"demo\"\npath = \"/www\"\n".into(),
        ..Settings::default()
    };
    let p = TestProxy::start(&h.running.base_url, &settings).await;
    let album = p.get("/demo/photos/?album", &[]).await.json();
    let images = album["images"].as_array().unwrap();
    assert!(
        images.len() >= dropcache::demo::ALBUM_PHOTOS,
        "{}",
        images.len()
    );
    let artifacts = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let shot = artifacts.join("gallery.png");
    let _ = std::fs::remove_file(&shot);
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/gallery.py");
    let out = common::within(
        "the browser script",
        tokio::process::Command::new("python3")
            .arg(&script)
            .arg(p.url("/www/gallery"))
            .arg(&shot)
            .output(),
    )
    .await
    .expect("python3 runs");
    assert!(
        out.status.success(),
        "the browser script failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: Value = serde_json::from_slice(&out.stdout).expect("one JSON line");
    assert_eq!(seen["status"], 200);
    assert_eq!(seen["ready"], true, "{seen}");
    // Every image of the album is a tile with the aspect ratio the album declares.
    let tiles = seen["tiles"].as_array().unwrap();
    assert_eq!(tiles.len(), images.len(), "{seen}");
    for (tile, img) in tiles.iter().zip(images) {
        assert_eq!(tile["name"], img["name"]);
        let want = img["width"].as_f64().unwrap() / img["height"].as_f64().unwrap();
        let got = tile["width"].as_f64().unwrap() / tile["height"].as_f64().unwrap();
        assert!(
            (got - want).abs() < 0.02 * want,
            "{}: {got} vs {want}",
            img["name"]
        );
    }
    // Some photos are turned by their EXIF: portrait ones among landscape ones.
    assert!(images.iter().any(|i| i["orientation"] == 6));
    // The thumbnails in view loaded, from `?thumb=` URLs.
    assert_eq!(seen["loaded"], true, "{seen}");
    assert!(seen["visible"].as_u64().unwrap() >= 3, "{seen}");
    // (Each from its srcset: a `?thumb=` size, or the photo itself where it is the smallest
    // that fills its tile.)
    let thumbs = seen["thumbs"].as_array().unwrap();
    assert!(
        thumbs
            .iter()
            .any(|t| t.as_str().unwrap().contains("?thumb=")),
        "{seen}"
    );
    assert!(
        thumbs
            .iter()
            .all(|t| t.as_str().unwrap().contains("/demo/photos/")),
        "{seen}"
    );
    // A click opens the full image, upright, at the declared size; → the next; Esc closes.
    assert_eq!(seen["opened"], true, "{seen}");
    assert_eq!(seen["full"]["width"], images[0]["width"], "{seen}");
    assert_eq!(seen["full"]["height"], images[0]["height"], "{seen}");
    assert!(
        seen["next"]
            .as_str()
            .unwrap()
            .starts_with(images[1]["name"].as_str().unwrap())
    );
    assert_eq!(seen["closed"], true);
    // The screenshot: a gallery, not a blank.
    let img = image::open(&shot).expect("a PNG screenshot").to_rgb8();
    let colours: std::collections::HashSet<[u8; 3]> = img.pixels().map(|p| p.0).collect();
    assert!(
        colours.len() > 100,
        "{} colours: a blank page?",
        colours.len()
    );
}
