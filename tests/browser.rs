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
