//! Linking accounts through OAuth: `/oauth/start` (admin token, offline access, PKCE S256,
//! signed single-use expiring state), `/oauth/callback`, the admin API, the CLI, re-linking,
//! unlinking, and the refresh token kept sealed: never in clear in Redis, a log line or an
//! answer. Against the emulator's real OAuth endpoints, and a real redis-server.

mod common;

use common::proxy::{Settings, TestProxy};
use common::redis::RedisServer;
use common::{Answer, Harness, TOKEN, eventually, within};
use dropcache::emulator::AccountSpec;
use hyper::{Method, StatusCode};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

const ADMIN: &str = "admin-token-for-tests-0123456789";
/// 32 bytes of 7, in base64.
const KEY: &str = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";
const REDIRECT: &str = "http://localhost:1/oauth/callback";
const BOB_TOKEN: &str = "bob-fixed-token";

fn linking(redis: Option<&RedisServer>, state_ttl: &str) -> Settings {
    Settings {
        redis: redis.map(|r| r.url.clone()),
        extra: format!(
            "[admin]\ntoken = {ADMIN:?}\n\
             [oauth]\nsecret_key = {KEY:?}\nredirect_uri = {REDIRECT:?}\nstate_ttl = {state_ttl:?}\n"
        ),
        ..Settings::default()
    }
}

/// An emulator whose second account ("Bob Example") has `/Site/index.html` and a file outside
/// it, `/secret.txt`; the default account has `/Public/a.txt`.
async fn two_accounts() -> Harness {
    let h = Harness::start().await;
    h.emu()
        .add_account(&AccountSpec {
            name: "Bob Example".into(),
            token: Some(BOB_TOKEN.into()),
            root: None,
        })
        .unwrap();
    h.put("/Public/a.txt", "alice's a").await;
    h.put_as(BOB_TOKEN, "/Site/index.html", "bob's site").await;
    h.put_as(BOB_TOKEN, "/Site/a.txt", "bob's a").await;
    h.put_as(BOB_TOKEN, "/secret.txt", "not published").await;
    h
}

async fn admin(p: &TestProxy, method: Method, path: &str) -> Answer {
    let auth = format!("Bearer {ADMIN}");
    p.send(method, path, &[("authorization", &auth)]).await
}

/// `/oauth/start` → the authorize URL.
async fn start(p: &TestProxy, alias: &str, root: &str) -> String {
    let a = admin(
        p,
        Method::GET,
        &format!("/oauth/start?alias={alias}&root={root}"),
    )
    .await;
    assert_eq!(a.status, StatusCode::FOUND, "{}", a.text());
    a.header("location").unwrap().to_owned()
}

fn query(pairs: &[(String, String)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// The whole dance: start, the owner approves at Dropbox, the browser comes back.
async fn link(p: &TestProxy, h: &Harness, alias: &str, root: &str) -> Answer {
    let back = h.approve(&start(p, alias, root).await).await;
    p.get(&format!("/oauth/callback?{}", query(&back)), &[])
        .await
}

fn param(url: &str, name: &str) -> Option<String> {
    form_urlencoded::parse(url.split_once('?')?.1.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

#[tokio::test]
async fn starting_a_link_takes_the_admin_token_and_asks_for_offline_access_with_pkce() {
    let h = two_accounts().await;
    let p = TestProxy::start(&h.running.base_url, &linking(None, "10m")).await;
    let path = "/oauth/start?alias=bob";
    assert_eq!(p.get(path, &[]).await.status, StatusCode::UNAUTHORIZED);
    let wrong = p
        .get(path, &[("authorization", "Bearer not-the-token-at-all")])
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong.header("www-authenticate"), Some("Bearer"));
    assert_eq!(
        admin(&p, Method::GET, "/admin/accounts").await.status,
        StatusCode::OK
    );
    assert_eq!(
        p.get("/admin/accounts", &[]).await.status,
        StatusCode::UNAUTHORIZED
    );

    let url = start(&p, "bob", "/Site").await;
    assert!(
        url.starts_with(&format!("{}/oauth2/authorize?", h.running.base_url)),
        "{url}"
    );
    assert_eq!(param(&url, "client_id").as_deref(), Some(common::APP_KEY));
    assert_eq!(param(&url, "response_type").as_deref(), Some("code"));
    assert_eq!(param(&url, "token_access_type").as_deref(), Some("offline"));
    assert_eq!(
        param(&url, "code_challenge_method").as_deref(),
        Some("S256")
    );
    assert_eq!(param(&url, "code_challenge").unwrap().len(), 43);
    assert_eq!(param(&url, "redirect_uri").as_deref(), Some(REDIRECT));
    let state = param(&url, "state").unwrap();
    assert_eq!(state.split('.').count(), 3, "{state}");
    assert!(state.len() <= 500);
    // Each start has its own state and challenge.
    let again = start(&p, "bob", "/Site").await;
    assert_ne!(param(&again, "state"), Some(state));
    assert_ne!(
        param(&again, "code_challenge"),
        param(&url, "code_challenge")
    );

    // Bad input is refused with a reason, before anything is stored or sent.
    for (q, status, says) in [
        (
            "alias=Bad%20Alias",
            StatusCode::BAD_REQUEST,
            "not a valid alias",
        ),
        (
            "alias=healthz",
            StatusCode::BAD_REQUEST,
            "not a valid alias",
        ),
        ("alias=alice", StatusCode::CONFLICT, "config file"),
        (
            "alias=bob&root=Site",
            StatusCode::BAD_REQUEST,
            "published root",
        ),
        (
            "alias=bob&root=/a/../b",
            StatusCode::BAD_REQUEST,
            "published root",
        ),
        ("root=/x", StatusCode::BAD_REQUEST, "alias"),
    ] {
        let a = admin(&p, Method::GET, &format!("/oauth/start?{q}")).await;
        assert_eq!(a.status, status, "{q}: {}", a.text());
        assert!(a.text().contains(says), "{q}: {}", a.text());
    }

    // Without an admin token configured, the routes are closed.
    let closed = TestProxy::start(&h.running.base_url, &Settings::default()).await;
    let a = admin(&closed, Method::GET, "/oauth/start?alias=bob").await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert!(a.text().contains("admin.token"), "{}", a.text());
}

/// Every key and value in Redis, as text.
async fn redis_dump(redis: &RedisServer) -> String {
    let client = redis::Client::open(redis.url.as_str()).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut c)
        .await
        .unwrap();
    let mut out = String::new();
    for k in keys {
        let v: Option<Vec<u8>> = redis::cmd("GET")
            .arg(&k)
            .query_async(&mut c)
            .await
            .unwrap_or(None);
        out.push_str(&format!(
            "{k} = {}\n",
            String::from_utf8_lossy(&v.unwrap_or_default())
        ));
    }
    out
}

#[tokio::test]
async fn a_linked_account_is_served_from_its_root_and_its_tokens_never_show() {
    // The process-wide subscriber (set once, here only): every thread's lines, this test's
    // and the others' in this binary, land in the capture.
    let logs = common::Logs::capture(tracing::Level::DEBUG);
    let redis = RedisServer::start();
    let h = two_accounts().await;
    h.emu().sign_in(1);
    let p = TestProxy::start(&h.running.base_url, &linking(Some(&redis), "10m")).await;
    assert_eq!(
        p.get("/bob/index.html", &[]).await.status,
        StatusCode::NOT_FOUND
    );

    let done = link(&p, &h, "bob", "/Site").await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.text());
    assert!(done.text().contains("Bob Example"), "{}", done.text());
    // Served at once, from the published root only.
    let page = p.get("/bob/index.html", &[]).await;
    assert_eq!(
        (page.status, page.text().as_str()),
        (StatusCode::OK, "bob's site")
    );
    assert_eq!(
        p.get("/bob/secret.txt", &[]).await.status,
        StatusCode::NOT_FOUND
    );
    for escape in [
        "/bob/../secret.txt",
        "/bob/%2e%2e/secret.txt",
        "/bob/a/%2F..%2F../secret.txt",
    ] {
        let s = p.raw_status(escape.as_bytes()).await;
        assert!(s == 400 || s == 404, "{escape} → {s}");
    }
    let listed = admin(&p, Method::GET, "/admin/accounts").await.json();
    let bob = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["alias"] == "bob")
        .expect("bob is listed")
        .clone();
    assert_eq!(bob["origin"], "linked");
    assert_eq!(bob["root"], "/Site");
    assert_eq!(bob["account_id"].as_str(), h.emu().account_id(1).as_deref());
    assert_eq!(bob["relink_required"], false);

    // The secrets Dropbox handed out: nowhere in clear.
    let secrets = h.emu().oauth_secrets();
    assert!(
        secrets.len() >= 2,
        "a refresh token and an access token: {secrets:?}"
    );
    let dump = redis_dump(&redis).await;
    assert!(dump.contains("\"sealed_refresh_token\":\"v1."), "{dump}");
    let lines = logs.text();
    assert!(
        lines.contains("account linked"),
        "the capture works: {lines}"
    );
    let listed_text = listed.to_string();
    for s in &secrets {
        assert!(!dump.contains(s.as_str()), "a token in Redis: {dump}");
        assert!(!lines.contains(s.as_str()), "a token in the logs");
        assert!(!done.text().contains(s.as_str()) && !listed_text.contains(s.as_str()));
    }
}

#[tokio::test]
async fn forged_replayed_expired_and_declined_states_are_refused() {
    let h = two_accounts().await;
    let p = TestProxy::start(&h.running.base_url, &linking(None, "400ms")).await;
    let callback = async |q: String| p.get(&format!("/oauth/callback?{q}"), &[]).await;

    // Forged: not signed by us, or altered.
    let back = h.approve(&start(&p, "bob", "").await).await;
    let state = back.iter().find(|(k, _)| k == "state").unwrap().1.clone();
    let code = back.iter().find(|(k, _)| k == "code").unwrap().1.clone();
    let (signed, _) = state.rsplit_once('.').unwrap();
    let forged = [
        "abc".to_owned(),
        format!("{signed}.AAAA"),
        format!("{}9.{}", signed, state.rsplit_once('.').unwrap().1),
        String::new(),
    ];
    for f in forged {
        let a = callback(query(&[
            ("code".into(), code.clone()),
            ("state".into(), f.clone()),
        ]))
        .await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{f:?}");
        assert!(a.text().contains("start again"), "{}", a.text());
    }
    assert_eq!(
        callback("code=x".into()).await.status,
        StatusCode::BAD_REQUEST
    );
    // The real one works once; replayed, it is refused.
    let ok = callback(query(&back)).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text());
    let replay = callback(query(&back)).await;
    assert_eq!(replay.status, StatusCode::BAD_REQUEST);
    assert!(replay.text().contains("used already"), "{}", replay.text());
    // Declined at Dropbox: refused, and that state is spent.
    let url = start(&p, "carol", "").await;
    let state = param(&url, "state").unwrap();
    let declined = [
        ("error".to_owned(), "access_denied".to_owned()),
        ("state".into(), state),
    ];
    let a = callback(query(&declined)).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(a.text().contains("access_denied"), "{}", a.text());
    assert_eq!(
        callback(query(&declined)).await.status,
        StatusCode::BAD_REQUEST
    );
    // Expired: past oauth.state_ttl.
    let back = h.approve(&start(&p, "carol", "").await).await;
    // The state says when it expires (`<nonce>.<expiry ms>.<signature>`): wait for that.
    let expiry: u64 = back
        .iter()
        .find(|(k, _)| k == "state")
        .and_then(|(_, s)| s.split('.').nth(1)?.parse().ok())
        .expect("a state with its expiry");
    eventually("the state expires", || async {
        dropcache::meta::entry::now_ms() > expiry
    })
    .await;
    let late = callback(query(&back)).await;
    assert_eq!(late.status, StatusCode::BAD_REQUEST);
    assert!(late.text().contains("expired"), "{}", late.text());
    assert_eq!(p.get("/carol/", &[]).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_second_link_replaces_the_first_and_unlinking_stops_service_at_once() {
    let redis = RedisServer::start();
    let h = two_accounts().await;
    let settings = linking(Some(&redis), "10m");
    let p = TestProxy::start(&h.running.base_url, &settings).await;
    let other = TestProxy::start(&h.running.base_url, &settings).await;

    // bob → the default account's /Public.
    assert_eq!(link(&p, &h, "bob", "/Public").await.status, StatusCode::OK);
    assert_eq!(p.get("/bob/a.txt", &[]).await.text(), "alice's a");
    let first = h.emu().refresh_tokens();
    assert_eq!(first.len(), 1);
    // The other instance hears of it.
    eventually("the other instance serves bob", || async {
        other.get("/bob/a.txt", &[]).await.text() == "alice's a"
    })
    .await;

    // Linked again, as Bob's Dropbox: the same URL serves Bob's file, nothing cached of the
    // first link survives, and the first link's token is revoked.
    h.emu().sign_in(1);
    assert_eq!(link(&p, &h, "bob", "/Site").await.status, StatusCode::OK);
    assert_eq!(p.get("/bob/a.txt", &[]).await.text(), "bob's a");
    eventually("the first link's token is revoked", || async {
        !h.emu().refresh_tokens().contains(&first[0])
    })
    .await;
    eventually("the other instance follows the re-link", || async {
        other.get("/bob/a.txt", &[]).await.text() == "bob's a"
    })
    .await;
    let bob = admin(&p, Method::GET, "/admin/accounts/bob").await.json();
    assert_eq!(bob["account_id"].as_str(), h.emu().account_id(1).as_deref());

    // A new instance finds the link in the store.
    let third = TestProxy::start(&h.running.base_url, &settings).await;
    assert_eq!(third.get("/bob/a.txt", &[]).await.text(), "bob's a");

    // Unlinked: gone at once here, revoked at Dropbox, deleted from the store, and gone on
    // the other instances.
    let a = admin(&p, Method::DELETE, "/admin/accounts/bob").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    assert_eq!(a.json()["revoked"], true);
    assert_eq!(p.get("/bob/a.txt", &[]).await.status, StatusCode::NOT_FOUND);
    assert!(h.emu().refresh_tokens().is_empty());
    assert!(!redis_dump(&redis).await.contains("account:bob"));
    eventually("the other instances stop serving bob", || async {
        other.get("/bob/a.txt", &[]).await.status == StatusCode::NOT_FOUND
            && third.get("/bob/a.txt", &[]).await.status == StatusCode::NOT_FOUND
    })
    .await;
    assert_eq!(
        admin(&p, Method::DELETE, "/admin/accounts/bob")
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    // Config accounts are the config's business.
    let a = admin(&p, Method::DELETE, "/admin/accounts/alice").await;
    assert_eq!(a.status, StatusCode::CONFLICT);
    assert_eq!(p.get("/alice/a.txt", &[]).await.text(), "alice's a");
}

#[tokio::test]
async fn linked_accounts_survive_a_restart_of_the_embedded_store() {
    let h = two_accounts().await;
    h.emu().sign_in(1);
    let dir = tempfile::tempdir().unwrap();
    let settings = Settings {
        store_path: Some(dir.path().join("store")),
        ..linking(None, "10m")
    };
    let p = TestProxy::start(&h.running.base_url, &settings).await;
    assert_eq!(link(&p, &h, "bob", "/Site").await.status, StatusCode::OK);
    p.stop().await;
    let p = TestProxy::start(&h.running.base_url, &settings).await;
    assert_eq!(p.get("/bob/index.html", &[]).await.text(), "bob's site");
    // With another key the token does not unseal: the account waits for a re-link.
    p.stop().await;
    let other_key = Settings {
        extra: settings
            .extra
            .replace(KEY, "CAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAg="),
        store_path: settings.store_path.clone(),
        ..Settings::default()
    };
    let p = TestProxy::start(&h.running.base_url, &other_key).await;
    let a = p.get("/bob/index.html", &[]).await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE, "{}", a.text());
    assert!(a.text().contains("link it again"), "{}", a.text());
    assert!(p.get("/readyz", &[]).await.text().contains("bob"));
}

/// Runs `dropcache accounts …` against the proxy.
fn cli(p: &TestProxy, args: &[&str]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_dropcache"));
    cmd.arg("accounts")
        .args(args)
        .args(["--server", &p.url(""), "--admin-token", ADMIN])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    cmd
}

/// Starts `accounts link`, returns the child and the URL it printed.
async fn cli_link(
    p: &TestProxy,
    args: &[&str],
) -> (
    tokio::process::Child,
    tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
    String,
) {
    let mut child = cli(p, args).spawn().unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let url = within("the CLI prints the URL", async {
        loop {
            let line = lines.next_line().await.unwrap().expect("a URL line");
            if line.contains("/oauth2/authorize?") {
                return line.trim().to_owned();
            }
        }
    })
    .await;
    (child, lines, url)
}

async fn rest(
    mut child: tokio::process::Child,
    mut lines: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
) -> String {
    let mut out = String::new();
    while let Some(l) = within("CLI output", lines.next_line()).await.unwrap() {
        out.push_str(&l);
        out.push('\n');
    }
    let status = within("the CLI ends", child.wait()).await.unwrap();
    assert!(status.success(), "{out}");
    out
}

#[tokio::test]
async fn the_cli_links_through_the_browser_or_a_pasted_code_lists_and_unlinks() {
    let h = two_accounts().await;
    let p = TestProxy::start(&h.running.base_url, &linking(None, "10m")).await;

    // 1. The browser comes back to the proxy; the CLI notices.
    h.emu().sign_in(1);
    let (child, lines, url) = cli_link(&p, &["link", "bob", "--root", "/Site"]).await;
    let back = h.approve(&url).await;
    assert_eq!(
        p.get(&format!("/oauth/callback?{}", query(&back)), &[])
            .await
            .status,
        StatusCode::OK
    );
    assert!(rest(child, lines).await.contains("linked: /bob/"));
    assert_eq!(p.get("/bob/index.html", &[]).await.text(), "bob's site");

    // 2. No redirect: Dropbox shows a code, pasted into the CLI.
    h.emu().sign_in(0);
    let (mut child, lines, url) =
        cli_link(&p, &["link", "carol", "--root", "/Public", "--no-redirect"]).await;
    assert_eq!(param(&url, "redirect_uri"), None);
    let code = h.approve(&url).await.remove(0).1;
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(format!("{code}\n").as_bytes())
        .await
        .unwrap();
    drop(stdin);
    let out = rest(child, lines).await;
    assert!(
        out.contains("linked: /carol/ publishes /Public of Test User"),
        "{out}"
    );
    assert_eq!(p.get("/carol/a.txt", &[]).await.text(), "alice's a");

    // 3. Listed, then unlinked.
    let out = cli(&p, &["list"]).output().await.unwrap();
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    for want in [
        "alice",
        "config",
        "bob",
        "linked",
        "/Site",
        "Bob Example",
        "carol",
    ] {
        assert!(listed.contains(want), "{want}: {listed}");
    }
    let out = cli(&p, &["unlink", "bob"]).output().await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("unlinked bob; its Dropbox token is revoked")
    );
    assert_eq!(
        p.get("/bob/index.html", &[]).await.status,
        StatusCode::NOT_FOUND
    );
    // Errors are the proxy's words, and a failure exit.
    let out = cli(&p, &["unlink", "bob"]).output().await.unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no linked account"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bad = tokio::process::Command::new(env!("CARGO_BIN_EXE_dropcache"))
        .args([
            "accounts",
            "list",
            "--server",
            &p.url(""),
            "--admin-token",
            "wrong-token-wrong-token",
        ])
        .output()
        .await
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("401"));
    let _ = TOKEN;
}
