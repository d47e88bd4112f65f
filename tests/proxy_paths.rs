//! The proxy's boundaries: path safety (the traversal corpus gets 400 and Dropbox is never
//! asked), unknown accounts, the published root, methods, and how Dropbox's failures map to
//! 502 / 503 / 504.

mod common;

use common::Harness;
use common::proxy::{Settings, TestProxy};
use dropcache::emulator::faults::Faults;
use hyper::{Method, StatusCode};

async fn setup(settings: Settings) -> (Harness, TestProxy) {
    let h = Harness::start().await;
    h.put("/Public/ok.txt", "fine").await;
    h.put("/Private/secret.txt", "secret").await;
    h.put("/Public.txt", "beside the root").await;
    let p = TestProxy::start(&h.running.base_url, &settings).await;
    h.emu().reset_log();
    (h, p)
}

#[tokio::test]
async fn the_traversal_corpus_is_refused_before_any_lookup() {
    let (h, p) = setup(Settings::default()).await;
    let long = format!("/alice/{}", "a".repeat(1100));
    let corpus: Vec<&[u8]> = vec![
        b"/alice/../Private/secret.txt",
        b"/alice/%2e%2e/Private/secret.txt",
        b"/alice/%2E%2E/Private/secret.txt",
        b"/alice/%2e%2e%2fPrivate%2fsecret.txt",
        b"/alice/Photos/../../Private/secret.txt",
        b"/alice/./ok.txt",
        b"/alice/%2e/ok.txt",
        b"/alice//ok.txt",
        b"/alice/ok.txt%00.jpg",
        b"/alice/ok%0d%0aSet-Cookie:%20x",
        b"/alice/ok%09.txt",
        b"/alice/..%5cPrivate%5csecret.txt",
        b"/alice/%5c..%5csecret.txt",
        b"/alice/%c0%ae%c0%ae/secret.txt",
        b"/alice/%ff",
        b"/alice/%",
        b"/../alice/ok.txt",
        b"/%2e%2e/alice/ok.txt",
        long.as_bytes(),
    ];
    for target in corpus {
        let status = p.raw_status(target).await;
        assert_eq!(status, 400, "{}", String::from_utf8_lossy(target));
    }
    assert_eq!(h.emu().log().total, 0, "{:?}", h.emu().log());
    // Decoded once: `%252e%252e` is a literal name `%2e%2e`, not a parent.
    assert_eq!(p.raw_status(b"/alice/%252e%252e/ok.txt").await, 404);
    // And what is served is the published root, nothing beside it.
    assert_eq!(p.raw_status(b"/alice/ok.txt").await, 200);
    assert_eq!(p.raw_status(b"/alice/Private/secret.txt").await, 404);
    // Names no account can have are simply not found.
    for target in [&b"/alice.txt"[..], b"/ALICE/ok.txt", b"/favicon.ico", b"/"] {
        assert_eq!(p.raw_status(target).await, 404);
    }
}

#[tokio::test]
async fn unknown_accounts_are_404_without_calling_dropbox() {
    let (h, p) = setup(Settings::default()).await;
    for path in ["/bob/ok.txt", "/bob/", "/bob", "/nobody/Public/ok.txt"] {
        let a = p.get(path, &[]).await;
        assert_eq!(a.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(a.text(), "not found\n");
    }
    assert_eq!(h.emu().log().total, 0);
}

#[tokio::test]
async fn only_get_and_head_are_served_and_healthz_answers() {
    let (h, p) = setup(Settings::default()).await;
    for method in [Method::POST, Method::PUT, Method::DELETE, Method::OPTIONS] {
        let a = p.send(method.clone(), "/alice/ok.txt", &[]).await;
        assert_eq!(a.status, StatusCode::METHOD_NOT_ALLOWED, "{method}");
        assert_eq!(a.header("allow"), Some("GET, HEAD"));
    }
    let health = p.get("/healthz", &[]).await;
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(health.text(), "ok\n");
    let ready = p.get("/readyz", &[]).await;
    assert_eq!(ready.status, StatusCode::OK);
    let text = ready.text();
    assert!(text.starts_with("ready\n"), "{text}");
    assert!(text.contains("body cache: index loaded"), "{text}");
    assert_eq!(h.emu().log().total, 0);
}

#[tokio::test]
async fn dropbox_failures_map_to_502_503_and_504() {
    let (h, p) = setup(Settings {
        read_timeout: "300ms",
        ..Settings::default()
    })
    .await;
    // 5xx after the retries (max_retries = 1): 502.
    h.emu()
        .set_faults(common::faults(&["files/get_metadata=500"]));
    let a = p.get("/alice/ok.txt", &[]).await;
    assert_eq!(a.status, StatusCode::BAD_GATEWAY);
    assert_eq!(a.text(), "Dropbox could not be read\n");
    assert_eq!(
        h.emu().calls("files/get_metadata"),
        2,
        "one try and one retry"
    );
    // No answer within the read timeout: 504.
    h.emu().set_faults(Faults {
        latency_ms: 1000,
        ..Faults::default()
    });
    let a = p.get("/alice/ok.txt", &[]).await;
    assert_eq!(a.status, StatusCode::GATEWAY_TIMEOUT);
    // Healthy again: served.
    h.emu().set_faults(Faults::default());
    let a = p.get("/alice/ok.txt", &[]).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(&a.body[..], b"fine");
    // 429 asking longer than the budget (1s): 503 with Retry-After, at once (nothing stale to
    // serve: this path was not cached).
    h.emu()
        .set_faults(common::faults(&["files/get_metadata=429:30"]));
    let started = std::time::Instant::now();
    let a = p.get("/alice/other.txt", &[]).await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(a.header("retry-after"), Some("30"));
    assert!(started.elapsed() < std::time::Duration::from_secs(1));
}

#[tokio::test]
async fn an_account_with_only_a_refresh_token_refreshes_and_serves() {
    let h = Harness::start().await;
    h.put("/Public/ok.txt", "fine").await;
    let (_access, refresh) = h.oauth_tokens().await;
    let settings = Settings {
        accounts: vec![],
        extra: format!(
            "[[account]]\nalias = \"carol\"\nroot = \"/Public\"\nrefresh_token = {refresh:?}\n"
        ),
        ..Settings::default()
    };
    let p = TestProxy::start(&h.running.base_url, &settings).await;
    let a = p.get("/carol/ok.txt", &[]).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(&a.body[..], b"fine");
    assert_eq!(
        h.emu().calls("oauth2/token"),
        2,
        "the code exchange, then one refresh"
    );
    // Expired mid-way: refreshed once more at the next Dropbox call, still served.
    h.put("/Public/two.txt", "two").await;
    h.emu().expire_tokens(None);
    let b = p.get("/carol/two.txt", &[]).await;
    assert_eq!(b.status, StatusCode::OK);
    assert_eq!(&b.body[..], b"two");
    assert_eq!(h.emu().calls("oauth2/token"), 3);
    // Secrets never reach the answers.
    for answer in [&a, &b] {
        let shown = format!("{:?}", answer.headers);
        assert!(!shown.contains(&refresh));
    }
}
