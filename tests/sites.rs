//! Websites from a Dropbox folder (`[[site]]`), over real sockets: routing by `Host` and by
//! prefix, `index.html`, clean URLs and their one canonical form, the nearest `404.html`,
//! hidden names, `_redirects` (Netlify's documented cases) and `_headers`, and a changed rule
//! file taking effect through the change feed.

mod common;

use common::proxy::{Settings, TestProxy};
use common::{Harness, eventually};
use hyper::{Method, StatusCode};

const ADMIN: &str = "sites-admin-token-0123456789";
const HOST: &str = "site.example";

const REDIRECTS: &str = "\
# Netlify's grammar
/old-about          /about              301
/temp               /about              302
/news/*             /blog/:splat        301
/posts/:year/:slug  /blog/:slug         308
/store  id=:id      /items/:id          301
/app/*              /app/index.html     200
/closed             /about              410
/about              /elsewhere          302
/raw.txt            /about              302!
/missing-rewrite    /not-there.html     200
http://legacy.example/*  https://new.example/:splat  301!
/this line has too many words
/conditional        /x   302  Country=nz
";

const HEADERS: &str = "\
/*
  X-Frame-Options: DENY
/docs/*
  Cache-Control: public, max-age=5
  ETag: \"forged\"
  X-Docs: yes
";

async fn setup(feed: bool) -> (Harness, TestProxy) {
    let h = Harness::start().await;
    for (path, body) in [
        ("index.html", "home"),
        ("about.html", "about"),
        ("raw.txt", "raw"),
        ("docs/index.html", "docs index"),
        ("docs/guide.html", "guide"),
        ("404.html", "root 404"),
        ("blog/404.html", "blog 404"),
        ("blog/post.html", "post"),
        ("app/index.html", "app shell"),
        (".env", "SECRET=1"),
        ("_drafts/x.html", "draft"),
        ("_redirects", REDIRECTS),
        ("_headers", HEADERS),
    ] {
        h.put(&format!("/Public/site/{path}"), body).await;
    }
    let settings = Settings {
        feed,
        extra: format!(
            "[admin]\ntoken = {ADMIN:?}\n\
             [[site]]\nname = \"www\"\naccount = \"alice\"\nfolder = \"/site\"\n\
             hosts = [{HOST:?}, \"legacy.example\"]\npath = \"/web\"\n"
        ),
        ..Settings::default()
    };
    let p = TestProxy::start(&h.running.base_url, &settings).await;
    (h, p)
}

/// GET `path` on the site's host: (status, Location, body).
async fn get(p: &TestProxy, path: &str) -> (u16, String, String) {
    get_on(p, HOST, path).await
}

async fn get_on(p: &TestProxy, host: &str, path: &str) -> (u16, String, String) {
    let a = p.get(path, &[("host", host)]).await;
    (
        a.status.as_u16(),
        a.header("location").unwrap_or("").to_owned(),
        a.text(),
    )
}

fn ok(body: &str) -> (u16, String, String) {
    (200, String::new(), body.to_owned())
}

fn moved(status: u16, to: &str) -> (u16, String, String) {
    (status, to.to_owned(), format!("redirecting to {to}\n"))
}

#[tokio::test]
async fn a_site_serves_indexes_clean_urls_and_the_nearest_404_page() {
    let (_h, p) = setup(false).await;
    assert_eq!(get(&p, "/").await, ok("home"));
    assert_eq!(get(&p, "/docs").await, moved(301, "/docs/"));
    assert_eq!(get(&p, "/docs?v=2").await, moved(301, "/docs/?v=2"));
    assert_eq!(get(&p, "/docs/").await, ok("docs index"));
    assert_eq!(get(&p, "/docs/index.html").await, moved(301, "/docs/"));
    assert_eq!(get(&p, "/docs/guide").await, ok("guide"));
    assert_eq!(get(&p, "/docs/guide.html").await, moved(301, "/docs/guide"));
    assert_eq!(
        get(&p, "/DOCS/Guide").await,
        ok("guide"),
        "Dropbox's names are case-insensitive"
    );
    // A file shadows a rule without `!`: `/about` is about.html, whatever `_redirects` says.
    assert_eq!(get(&p, "/about").await, ok("about"));
    assert_eq!(get(&p, "/about.html").await, moved(301, "/about"));
    // The nearest 404.html up the tree, with status 404; a made-up depth changes nothing.
    assert_eq!(
        get(&p, "/nope").await,
        (404, String::new(), "root 404".into())
    );
    assert_eq!(
        get(&p, "/blog/nope").await,
        (404, String::new(), "blog 404".into())
    );
    assert_eq!(
        get(&p, "/blog/a/b/c/d/e/f/g").await,
        (404, String::new(), "blog 404".into())
    );
    assert_eq!(
        get(&p, "/docs/nope").await,
        (404, String::new(), "root 404".into())
    );
    // Names starting with `_` or `.` are never served: the rule files, dotfiles, drafts.
    for hidden in [
        "/_redirects",
        "/_headers",
        "/.env",
        "/_drafts/x.html",
        "/_drafts/x",
    ] {
        assert_eq!(
            get(&p, hidden).await,
            (404, String::new(), "root 404".into()),
            "{hidden}"
        );
    }
    // ... nor by the account's own route, on any host.
    for hidden in [
        "/alice/site/_redirects",
        "/alice/site/.env",
        "/alice/site/_drafts/x.html",
    ] {
        assert_eq!(get_on(&p, "other", hidden).await.0, 404, "{hidden}");
    }
    assert_eq!(get_on(&p, "other", "/alice/site/raw.txt").await, ok("raw"));
    // ... and not listed there: the names are not told either.
    let listing = p
        .get(
            "/alice/site/",
            &[("host", "other"), ("accept", "application/json")],
        )
        .await
        .json();
    let names: Vec<&str> = listing["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"raw.txt") && names.contains(&"docs"),
        "{names:?}"
    );
    assert!(
        !names.iter().any(|n| n.starts_with(['_', '.'])),
        "{names:?}"
    );
    // A folder with no index.html: its own 404.html is the nearest.
    assert_eq!(
        get(&p, "/blog/").await,
        (404, String::new(), "blog 404".into())
    );
    // A HEAD of a missing page: the 404 page's headers, no body.
    let head = p.head("/nope", &[("host", HOST)]).await;
    assert_eq!(head.status, StatusCode::NOT_FOUND);
    assert!(head.body.is_empty());
    // A 404 page is not a 304 for the path asked for, whatever its validators.
    let page = p.get("/", &[("host", HOST)]).await;
    let etag = page.header("etag").expect("an ETag").to_owned();
    let again = p
        .get("/", &[("host", HOST), ("if-none-match", &etag)])
        .await;
    assert_eq!(
        again.status,
        StatusCode::NOT_MODIFIED,
        "a site's files answer 304s"
    );
    let root_404 = p.get("/404", &[("host", HOST)]).await;
    assert_eq!(root_404.status, StatusCode::OK, "the page itself is a page");
    let tag = root_404.header("etag").unwrap().to_owned();
    let missing = p
        .get("/nope", &[("host", HOST), ("if-none-match", &tag)])
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.text(), "root 404");
    // Ranges of a page work as for any file.
    let range = p
        .get("/about", &[("host", HOST), ("range", "bytes=1-3")])
        .await;
    assert_eq!(
        (range.status, range.text().as_str()),
        (StatusCode::PARTIAL_CONTENT, "bou")
    );
    // Only GET and HEAD.
    assert_eq!(
        p.send(Method::DELETE, "/about", &[("host", HOST)])
            .await
            .status,
        StatusCode::METHOD_NOT_ALLOWED
    );
    // Paths are checked as any: traversal is refused before any lookup.
    assert_eq!(p.raw_status(b"/web/%2e%2e/secret").await, 400);
}

#[tokio::test]
async fn sites_answer_by_host_and_prefix_and_other_hosts_keep_the_paths() {
    let (_h, p) = setup(false).await;
    // Any port, any case.
    assert_eq!(get_on(&p, "SITE.example:8080", "/").await, ok("home"));
    // Under its prefix, for setups without DNS: redirects stay under it.
    assert_eq!(get_on(&p, "other", "/web").await, moved(301, "/web/"));
    assert_eq!(get_on(&p, "other", "/web/").await, ok("home"));
    assert_eq!(
        get_on(&p, "other", "/web/docs").await,
        moved(301, "/web/docs/")
    );
    assert_eq!(
        get_on(&p, "other", "/web/about.html").await,
        moved(301, "/web/about")
    );
    assert_eq!(
        get_on(&p, "other", "/web/old-about").await,
        moved(301, "/web/about")
    );
    assert_eq!(get_on(&p, "other", "/web/about").await, ok("about"));
    // Another host keeps today's routing: the folder is also the account's, as published.
    assert_eq!(
        get_on(&p, "other", "/alice/site/about.html").await,
        ok("about")
    );
    // On the site's host, every path is the site's.
    assert_eq!(
        get(&p, "/alice/site/about.html").await,
        (404, String::new(), "root 404".into())
    );
}

#[tokio::test]
async fn redirect_rules_follow_netlifys_grammar() {
    let (_h, p) = setup(false).await;
    assert_eq!(get(&p, "/old-about").await, moved(301, "/about"));
    assert_eq!(get(&p, "/temp?x=1&y=2").await, moved(302, "/about?x=1&y=2"));
    assert_eq!(
        get(&p, "/news/2024/a-story").await,
        moved(301, "/blog/2024/a-story")
    );
    assert_eq!(
        get(&p, "/posts/2024/hello").await,
        moved(308, "/blog/hello")
    );
    // A query match binds a placeholder and is not passed on.
    assert_eq!(get(&p, "/store?id=42").await, moved(301, "/items/42"));
    // Without the parameter the rule does not match: the 404 page.
    assert_eq!(get(&p, "/store").await.0, 404);
    // 200 rewrites in place: the single-page app's shell for any path under it.
    assert_eq!(get(&p, "/app/users/7").await, ok("app shell"));
    // A rewrite to a file that is not there: the 404 page.
    assert_eq!(get(&p, "/missing-rewrite").await.0, 404);
    // 410 with a page: that page, that status.
    assert_eq!(
        get(&p, "/closed").await,
        (410, String::new(), "about".into())
    );
    // `!` forces the rule over an existing file.
    assert_eq!(get(&p, "/raw.txt").await, moved(302, "/about"));
    // Whatever the spelling of the path: rules see it as the files are found.
    assert_eq!(get(&p, "/RAW.txt").await, moved(302, "/about"));
    assert_eq!(get(&p, "/r%61w.txt").await, moved(302, "/about"));
    assert_eq!(get(&p, "/OLD-ABOUT").await, moved(301, "/about"));
    // A domain-level rule: only on its host.
    assert_eq!(
        get_on(&p, "legacy.example", "/x/y").await,
        moved(301, "https://new.example/x/y")
    );
    assert_eq!(get(&p, "/x/y").await.0, 404);
    // The skipped lines are reported with their numbers, and the rest applied.
    let sites = p
        .get(
            "/admin/sites",
            &[("authorization", &format!("Bearer {ADMIN}"))],
        )
        .await;
    assert_eq!(sites.status, StatusCode::OK, "{}", sites.text());
    let report = sites.json();
    let site = &report["sites"][0];
    assert_eq!(site["name"], "www");
    assert_eq!(site["redirects"]["rules"], 11);
    let lines: Vec<u64> = site["redirects"]["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["line"].as_u64().unwrap())
        .collect();
    assert_eq!(lines, vec![13, 14], "{site}");
    let errors = site["headers"]["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{site}");
    assert_eq!(errors[0]["line"], 5);
    // The admin page names no secret.
    assert!(!sites.text().contains(common::TOKEN));
}

#[tokio::test]
async fn header_rules_apply_last_but_never_to_the_proxys_own_headers() {
    let (_h, p) = setup(false).await;
    let docs = p.get("/docs/guide", &[("host", HOST)]).await;
    assert_eq!(docs.status, StatusCode::OK);
    assert_eq!(docs.header("x-frame-options"), Some("DENY"));
    assert_eq!(docs.header("x-docs"), Some("yes"));
    let shouted = p.get("/DOCS/Guide", &[("host", HOST)]).await;
    assert_eq!(
        shouted.header("x-docs"),
        Some("yes"),
        "whatever the path's case"
    );
    assert_eq!(docs.header("cache-control"), Some("public, max-age=5"));
    let etag = docs.header("etag").expect("the proxy's ETag");
    assert_ne!(etag, "\"forged\"");
    // Elsewhere only the site-wide rule, and the default Cache-Control.
    let about = p.get("/about", &[("host", HOST)]).await;
    assert_eq!(about.header("x-frame-options"), Some("DENY"));
    assert_eq!(about.header("x-docs"), None);
    assert_eq!(about.header("cache-control"), Some("public, max-age=60"));
    // On redirects and 404 pages too (the request path's rules).
    let missing = p.get("/docs/nope", &[("host", HOST)]).await;
    assert_eq!(missing.header("x-docs"), Some("yes"));
}

#[tokio::test]
async fn a_changed_rule_file_takes_effect_through_the_change_feed() {
    let (h, p) = setup(true).await;
    p.feed_live("alice").await;
    assert_eq!(get(&p, "/brand-new").await.0, 404);
    h.put(
        "/Public/site/_redirects",
        format!("/brand-new /about 307\n{REDIRECTS}"),
    )
    .await;
    eventually("the new rule applies", || async {
        get(&p, "/brand-new").await == moved(307, "/about")
    })
    .await;
    // And a rule file that goes away takes its rules with it.
    h.call(
        "files/delete_v2",
        serde_json::json!({"path": "/Public/site/_redirects"}),
    )
    .await
    .ok();
    eventually("the rules are gone", || async {
        get(&p, "/old-about").await.0 == 404
    })
    .await;
}

#[tokio::test]
async fn cors_preflights_are_answered_here_and_answers_carry_the_headers() {
    let h = Harness::start().await;
    h.put("/Public/site/index.html", "home").await;
    h.put("/Public/album/a.jpg", "jpeg bytes").await;
    let settings = Settings {
        accounts: vec![],
        extra: format!(
            "[[account]]\nalias = \"alice\"\nroot = \"/Public\"\naccess_token = {:?}\n\
             [account.cors]\nallow_origins = [\"https://gallery.example\"]\nmax_age = \"10m\"\n\
             [[site]]\nname = \"www\"\naccount = \"alice\"\nfolder = \"/site\"\nhosts = [{HOST:?}]\n\
             [site.cors]\nallow_origins = [\"*\"]\n",
            common::TOKEN
        ),
        ..Settings::default()
    };
    let p = TestProxy::start(&h.running.base_url, &settings).await;
    h.emu().reset_log();
    let preflight = |origin: &'static str, method: &'static str| {
        [
            ("origin", origin),
            ("access-control-request-method", method),
            ("access-control-request-headers", "range"),
        ]
    };
    let ok = p
        .send(
            Method::OPTIONS,
            "/alice/album/a.jpg",
            &preflight("https://gallery.example", "GET"),
        )
        .await;
    assert_eq!(ok.status, StatusCode::NO_CONTENT);
    assert_eq!(
        ok.header("access-control-allow-origin"),
        Some("https://gallery.example")
    );
    assert_eq!(ok.header("access-control-allow-headers"), Some("range"));
    assert_eq!(ok.header("access-control-max-age"), Some("600"));
    let refused = p
        .send(
            Method::OPTIONS,
            "/alice/album/a.jpg",
            &preflight("https://evil.example", "GET"),
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(refused.header("access-control-allow-origin"), None);
    let mut site_headers = preflight("https://anyone.example", "HEAD").to_vec();
    site_headers.push(("host", HOST));
    let site = p.send(Method::OPTIONS, "/anything", &site_headers).await;
    assert_eq!(site.status, StatusCode::NO_CONTENT);
    assert_eq!(site.header("access-control-allow-origin"), Some("*"));
    assert_eq!(h.emu().log().total, 0, "preflights never reach Dropbox");
    // The answers themselves.
    let file = p
        .get(
            "/alice/album/a.jpg",
            &[("origin", "https://gallery.example")],
        )
        .await;
    assert_eq!(file.status, StatusCode::OK);
    assert_eq!(
        file.header("access-control-allow-origin"),
        Some("https://gallery.example")
    );
    assert!(
        file.header("access-control-expose-headers")
            .unwrap()
            .contains("ETag")
    );
    assert_eq!(file.header("vary"), Some("Origin"));
    let listing = p
        .get(
            "/alice/album/",
            &[
                ("origin", "https://gallery.example"),
                ("accept", "application/json"),
            ],
        )
        .await;
    assert_eq!(listing.status, StatusCode::OK);
    assert_eq!(
        listing.header("access-control-allow-origin"),
        Some("https://gallery.example")
    );
    assert_eq!(
        listing.header("vary"),
        Some("Accept, Accept-Encoding, Origin")
    );
    let missing = p
        .get(
            "/alice/album/nope.jpg",
            &[("origin", "https://gallery.example")],
        )
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(
        missing.header("access-control-allow-origin"),
        Some("https://gallery.example")
    );
    let other = p
        .get("/alice/album/a.jpg", &[("origin", "https://evil.example")])
        .await;
    assert_eq!(other.header("access-control-allow-origin"), None);
    let site_page = p
        .get("/", &[("host", HOST), ("origin", "https://x.example")])
        .await;
    assert_eq!(site_page.header("access-control-allow-origin"), Some("*"));
}

#[tokio::test]
async fn cache_control_follows_the_first_matching_rule_then_the_headers_file() {
    let h = Harness::start().await;
    for (path, body) in [
        ("index.html", "home"),
        ("assets/app.3f9a.js", "js"),
        ("img/a.png", "png"),
        ("data.json", "{}"),
        ("_headers", "/data.json\n  Cache-Control: private\n"),
    ] {
        h.put(&format!("/Public/site/{path}"), body).await;
    }
    let settings = Settings {
        extra: format!(
            "[[cache.rule]]\npath = \"*.html\"\ncache_control = \"no-cache\"\n\
             [[cache.rule]]\npath = \"/site/assets/*\"\ncache_control = \"public, max-age=31536000, immutable\"\n\
             [[cache.rule]]\ncontent_type = \"image/*\"\ncache_control = \"public, max-age=86400\"\n\
             [[cache.rule]]\ncontent_type = \"application/json\"\ncache_control = \"public, max-age=1\"\n\
             [[site]]\nname = \"www\"\naccount = \"alice\"\nfolder = \"/site\"\nhosts = [{HOST:?}]\n"
        ),
        ..Settings::default()
    };
    let p = TestProxy::start(&h.running.base_url, &settings).await;
    let cc = |a: &common::Answer| a.header("cache-control").unwrap_or("").to_owned();
    assert_eq!(cc(&p.get("/", &[("host", HOST)]).await), "no-cache");
    assert_eq!(cc(&p.get("/alice/site/index.html", &[]).await), "no-cache");
    let js = p.get("/assets/app.3f9a.js", &[("host", HOST)]).await;
    assert_eq!(cc(&js), "public, max-age=31536000, immutable");
    // A 304 says what the 200 says.
    let etag = js.header("etag").unwrap().to_owned();
    let not_modified = p
        .get(
            "/assets/app.3f9a.js",
            &[("host", HOST), ("if-none-match", &etag)],
        )
        .await;
    assert_eq!(not_modified.status, StatusCode::NOT_MODIFIED);
    assert_eq!(cc(&not_modified), "public, max-age=31536000, immutable");
    assert_eq!(
        cc(&p.get("/img/a.png", &[("host", HOST)]).await),
        "public, max-age=86400"
    );
    // `_headers` comes last.
    assert_eq!(cc(&p.get("/data.json", &[("host", HOST)]).await), "private");
    assert_eq!(
        cc(&p.get("/alice/site/data.json", &[]).await),
        "public, max-age=1"
    );
    // No rule: the default.
    assert_eq!(
        cc(&p
            .get("/alice/site/", &[("accept", "application/json")])
            .await),
        "public, max-age=60"
    );
}

/// Save to live: an edit made in the emulator's disk root by any program (here, plain file
/// writes behind its back) is a Dropbox change the proxy hears of through its feed.
#[tokio::test]
async fn an_edit_on_the_emulators_disk_root_is_served_within_a_second() {
    let dir = tempfile::tempdir().unwrap();
    let site = dir.path().join("Public/site");
    std::fs::create_dir_all(&site).unwrap();
    std::fs::write(site.join("index.html"), "first").unwrap();
    let mut config = common::config();
    config.accounts[0].root = Some(dir.path().to_owned());
    let h = Harness::with(config).await;
    let settings = Settings {
        feed: true,
        extra: format!(
            "[[site]]\nname = \"www\"\naccount = \"alice\"\nfolder = \"/site\"\nhosts = [{HOST:?}]\n"
        ),
        ..Settings::default()
    };
    let p = TestProxy::start(&h.running.base_url, &settings).await;
    p.feed_live("alice").await;
    assert_eq!(get(&p, "/").await, ok("first"));
    assert_eq!(get(&p, "/new").await.0, 404);
    // An editor's save, a new page, a new folder with a page: behind the emulator's back.
    std::fs::write(site.join("index.html"), "second").unwrap();
    std::fs::write(site.join("new.html"), "a new page").unwrap();
    std::fs::create_dir_all(site.join("blog")).unwrap();
    std::fs::write(site.join("blog/index.html"), "the blog").unwrap();
    let took = eventually("the edits are served", || async {
        get(&p, "/").await == ok("second")
            && get(&p, "/new").await == ok("a new page")
            && get(&p, "/blog/").await == ok("the blog")
    })
    .await;
    assert!(took < std::time::Duration::from_secs(1), "took {took:?}");
    // A removal too.
    std::fs::remove_file(site.join("new.html")).unwrap();
    eventually("the removal is seen", || async {
        get(&p, "/new").await.0 == 404
    })
    .await;
    // The emulator's own API sees the same: one version per save, with a new rev.
    let meta = h
        .call(
            "files/get_metadata",
            serde_json::json!({"path": "/Public/site/index.html"}),
        )
        .await
        .ok();
    assert_eq!(meta["size"], 6);
}

/// Warm on change: the feed fetches a site file's new version before switching to it, so the
/// old version is served until then and the first request that sees the new one is a HIT.
#[tokio::test]
async fn after_an_edit_the_first_request_for_the_changed_file_is_a_hit() {
    let (h, p) = setup(true).await;
    p.feed_live("alice").await;
    let first = p.get("/about", &[("host", HOST)]).await;
    assert_eq!(first.text(), "about");
    for round in 0..3 {
        let new = format!("about, edit {round}");
        h.put("/Public/site/about.html", new.clone()).await;
        let mut seen_old = 0;
        let answer = common::within("the edit is served", async {
            loop {
                let a = p.get("/about", &[("host", HOST)]).await;
                if a.text() == new {
                    return a;
                }
                // Until the switch, the old version (never an error, never a wait on Dropbox).
                assert_eq!(a.status, StatusCode::OK);
                seen_old += 1;
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            }
        })
        .await;
        assert_eq!(
            answer.header("x-cache-status"),
            Some("HIT"),
            "round {round}, after {seen_old} answers of the old version"
        );
    }
    // Outside the site's folder nothing is warmed: the first request after an edit is a MISS.
    h.put("/Public/elsewhere.txt", "one").await;
    assert_eq!(p.get("/alice/elsewhere.txt", &[]).await.text(), "one");
    h.put("/Public/elsewhere.txt", "two").await;
    let answer = common::within("the edit is served", async {
        loop {
            let a = p.get("/alice/elsewhere.txt", &[]).await;
            if a.text() == "two" {
                return a;
            }
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
    })
    .await;
    assert_eq!(answer.header("x-cache-status"), Some("MISS"));
    let report = p
        .get(
            "/admin/sites",
            &[("authorization", &format!("Bearer {ADMIN}"))],
        )
        .await
        .json();
    assert!(
        report["warm_on_change"]["files"].as_u64().unwrap() >= 3,
        "{report}"
    );
}
