//! The emulator as a tool: fault injection, the request log and admin routes, signed webhooks
//! out, and the `dropcache emulator` binary serving a directory to curl over HTTP and HTTPS.

mod common;

use bytes::Bytes;
use common::{APP_SECRET, Harness, TOKEN, faults, test_certs, within};
use dropcache::http::full;
use dropcache::server;
use http_body_util::BodyExt;
use hyper::{Method, Response, StatusCode};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc;

#[tokio::test]
async fn rate_limits_and_server_errors_by_route_and_count() {
    let h = Harness::start().await;
    h.emu().set_faults(faults(&[
        "files/get_metadata=429:9,times=2",
        "users/*=503,times=1",
    ]));
    for _ in 0..2 {
        let a = h.call("files/get_metadata", json!({"path": "/x"})).await;
        assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(a.header("retry-after"), Some("9"));
        assert_eq!(a.header("content-type"), Some("application/json"));
        let v = a.json();
        assert_eq!(
            v["error"],
            json!({"reason": {".tag": "too_many_requests"}, "retry_after": 9})
        );
        assert!(
            v["error_summary"]
                .as_str()
                .unwrap()
                .starts_with("too_many_requests/")
        );
    }
    // times=2 is spent: the real answer comes back.
    let a = h.call("files/get_metadata", json!({"path": "/x"})).await;
    assert_eq!(a.status, StatusCode::CONFLICT);
    let a = h
        .rpc("users/get_current_account", Some(TOKEN), &Value::Null)
        .await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        h.rpc("users/get_current_account", Some(TOKEN), &Value::Null)
            .await
            .status,
        StatusCode::OK
    );
    // Every call is in the log, by route and account, failed or not.
    let log = h.emu().log();
    let account = h.emu().account_id(0).unwrap();
    assert_eq!(log.count("files/get_metadata"), 3);
    assert_eq!(log.count_for("users/get_current_account", &account), 2);
    // A share of 0 never fires; latency applies to every call.
    let mut slow = faults(&["*=500,share=0"]);
    slow.latency_ms = 120;
    h.emu().set_faults(slow);
    let t = Instant::now();
    assert_eq!(
        h.rpc("users/get_current_account", Some(TOKEN), &Value::Null)
            .await
            .status,
        StatusCode::OK
    );
    assert!(t.elapsed() >= Duration::from_millis(120));
}

#[tokio::test]
async fn cut_stalled_and_slow_bodies() {
    let h = Harness::start().await;
    let data = vec![7u8; 4000];
    h.put("/big.bin", data.clone()).await;
    let auth = format!("Bearer {TOKEN}");
    let req = || {
        h.request(
            Method::POST,
            "/2/files/download",
            &[
                ("Authorization", &auth),
                ("Dropbox-API-Arg", r#"{"path": "/big.bin"}"#),
            ],
            Bytes::new(),
        )
    };
    // Cut: headers promise 4000 bytes, the connection dies after 100.
    h.emu()
        .set_faults(faults(&["files/download=cut:100,times=1"]));
    let resp = h.send_raw(req()).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-length"], "4000");
    let err = within("cut body", resp.into_body().collect()).await;
    assert!(err.is_err(), "a cut body must not complete");
    // Stall: 50 bytes, then nothing while the connection stays open.
    h.emu()
        .set_faults(faults(&["files/download=stall:50,times=1"]));
    let mut body = h.send_raw(req()).await.into_body();
    let mut got = 0;
    while got < 50 {
        let frame = within("stalled body's first bytes", body.frame())
            .await
            .unwrap()
            .unwrap();
        got += frame.into_data().unwrap().len();
    }
    assert_eq!(got, 50);
    let more = tokio::time::timeout(Duration::from_millis(300), body.frame()).await;
    assert!(more.is_err(), "a stalled body sends nothing more");
    drop(body);
    // Slow: 4000 bytes at 8000 B/s take about half a second and arrive whole.
    h.emu()
        .set_faults(faults(&["files/download=slow:8000,times=1"]));
    let t = Instant::now();
    let whole = h.send(req()).await;
    assert_eq!(&whole.body[..], &data[..]);
    assert!(
        t.elapsed() >= Duration::from_millis(300),
        "slow body took {:?}",
        t.elapsed()
    );
    // Faults spent: normal again.
    assert_eq!(h.send(req()).await.body.len(), 4000);
}

#[tokio::test]
async fn admin_routes_drive_the_same_controls() {
    let h = Harness::start().await;
    let json_req = |method: Method, path: &str, body: &str| {
        h.request(
            method,
            path,
            &[("Content-Type", "application/json")],
            body.to_owned(),
        )
    };
    let set = h
        .send(json_req(
            Method::PUT,
            "/_emulator/faults",
            r#"{"rules": [{"route": "check/user", "kind": "502", "times": 1}]}"#,
        ))
        .await;
    assert_eq!(set.status, StatusCode::OK, "{}", set.text());
    assert_eq!(
        h.call("check/user", json!({"query": "a"})).await.status,
        StatusCode::BAD_GATEWAY
    );
    assert_eq!(
        h.call("check/user", json!({"query": "a"})).await.status,
        StatusCode::OK
    );
    let bad = h
        .send(json_req(
            Method::PUT,
            "/_emulator/faults",
            r#"{"rules": [{"route": "*", "kind": "boom"}]}"#,
        ))
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.text().contains("unknown kind"), "{}", bad.text());

    let log = h
        .send(h.request(Method::GET, "/_emulator/log", &[], ""))
        .await
        .ok();
    assert_eq!(log["routes"]["check/user"]["total"], 2);
    assert_eq!(
        h.send(h.request(Method::DELETE, "/_emulator/log", &[], ""))
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(h.emu().calls("check/user"), 0);

    let added = h
        .send(json_req(
            Method::POST,
            "/_emulator/accounts",
            r#"{"name": "Alice Smith", "token": "alice-token"}"#,
        ))
        .await
        .ok();
    let alice = h
        .rpc(
            "users/get_current_account",
            Some("alice-token"),
            &Value::Null,
        )
        .await
        .ok();
    assert_eq!(alice["account_id"], added["account_id"]);
    assert_ne!(
        alice["account_id"].as_str(),
        h.emu().account_id(0).as_deref()
    );
    // Accounts are separate namespaces.
    h.put("/mine.txt", "m").await;
    let theirs = h
        .rpc(
            "files/list_folder",
            Some("alice-token"),
            &json!({"path": ""}),
        )
        .await
        .ok();
    assert_eq!(theirs["entries"], json!([]));

    let expired = h
        .send(json_req(
            Method::POST,
            "/_emulator/expire_tokens",
            r#"{"token": "alice-token"}"#,
        ))
        .await
        .ok();
    assert_eq!(expired["expired"], 1);
    let a = h
        .rpc(
            "users/get_current_account",
            Some("alice-token"),
            &Value::Null,
        )
        .await;
    assert_eq!(a.json()["error"][".tag"], "expired_access_token");

    let cursor = h.call("files/list_folder", json!({"path": ""})).await.ok()["cursor"].clone();
    h.send(h.request(Method::POST, "/_emulator/reset_cursors", &[], ""))
        .await
        .ok();
    let reset = h
        .call("files/list_folder/continue", json!({"cursor": cursor}))
        .await
        .route_error();
    assert_eq!(reset[".tag"], "reset");
}

#[tokio::test]
async fn admin_routes_are_off_by_default() {
    let mut config = common::config();
    config.admin = false;
    let h = Harness::with(config).await;
    let a = h
        .send(h.request(Method::GET, "/_emulator/log", &[], ""))
        .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
}

/// A webhook receiver: echoes challenges and forwards POSTs (signature, body).
async fn receiver() -> (
    String,
    mpsc::UnboundedReceiver<(String, Bytes)>,
    tokio::sync::oneshot::Sender<()>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/webhook", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::unbounded_channel();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server::serve(
        listener,
        None,
        server::Limits::default(),
        move |req: hyper::Request<hyper::body::Incoming>, _| {
            let tx = tx.clone();
            async move {
                if req.method() == Method::GET {
                    let challenge = req
                        .uri()
                        .query()
                        .and_then(|q| {
                            form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == "challenge")
                        })
                        .map(|(_, v)| v.into_owned())
                        .unwrap_or_default();
                    return Response::builder()
                        .header("Content-Type", "text/plain")
                        .header("X-Content-Type-Options", "nosniff")
                        .body(full(challenge))
                        .unwrap();
                }
                let sig = req.headers()["x-dropbox-signature"]
                    .to_str()
                    .unwrap()
                    .to_owned();
                let body = req.into_body().collect().await.unwrap().to_bytes();
                let _ = tx.send((sig, body));
                Response::new(full(""))
            }
        },
        async move {
            let _ = stopped.await;
        },
    ));
    (url, rx, stop)
}

#[tokio::test]
async fn webhooks_are_verified_then_signed() {
    let (url, mut rx, _stop) = receiver().await;
    let mut config = common::config();
    config.webhook = Some(url);
    let h = Harness::with(config).await;
    h.put("/changed.txt", "x").await;
    let (sig, body) = within("webhook delivery", rx.recv()).await.unwrap();
    // The signature is hex HMAC-SHA256 of the exact body, keyed by the app secret.
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(APP_SECRET.as_bytes()).unwrap();
    mac.update(&body);
    assert_eq!(sig, hex::encode(mac.finalize().into_bytes()));
    let v: Value = serde_json::from_slice(&body).unwrap();
    let account = h.emu().account_id(0).unwrap();
    assert_eq!(v["list_folder"]["accounts"], json!([account]));
    assert!(v["delta"]["users"][0].is_u64());
}

/// Starts the real binary and returns (child, first stdout line).
async fn run_binary(args: &[&str]) -> (tokio::process::Child, String) {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_dropcache"))
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("the binary starts");
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let first = within("the listening line", lines.next_line())
        .await
        .unwrap()
        .expect("a first line");
    (child, first)
}

async fn curl(args: &[&str]) -> (String, String) {
    let out = within(
        "curl",
        tokio::process::Command::new("curl")
            .args(["-sS", "-w", "\n%{http_code}"])
            .args(args)
            .output(),
    )
    .await
    .expect("curl is installed");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or((&text, ""));
    (body.to_owned(), code.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_serves_a_directory_to_curl() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("Site")).unwrap();
    std::fs::write(dir.path().join("Site/index.html"), "<h1>hello</h1>").unwrap();
    let root = dir.path().to_str().unwrap();
    let (_child, first) = run_binary(&[
        "emulator",
        "--root",
        root,
        "--token",
        "T",
        "--listen",
        "127.0.0.1:0",
    ])
    .await;
    let base = first
        .strip_prefix("listening on ")
        .expect("first line format");
    assert!(base.starts_with("http://127.0.0.1:"), "{first}");

    let (body, code) = curl(&[
        "-X",
        "POST",
        &format!("{base}/2/files/download"),
        "-H",
        "Authorization: Bearer T",
        "-H",
        r#"Dropbox-API-Arg: {"path": "/site/INDEX.html"}"#,
    ])
    .await;
    assert_eq!((body.as_str(), code.as_str()), ("<h1>hello</h1>", "200"));
    let (body, code) = curl(&[
        "-X",
        "POST",
        &format!("{base}/2/files/list_folder"),
        "-H",
        "Authorization: Bearer T",
        "-H",
        "Content-Type: application/json",
        "-d",
        r#"{"path": "", "recursive": true}"#,
    ])
    .await;
    assert_eq!(code, "200", "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["entries"][1]["path_display"], "/Site/index.html");
    // Changes through the API land in the directory.
    let (_, code) = curl(&[
        "-X",
        "POST",
        &format!("{base}/2/files/upload"),
        "-H",
        "Authorization: Bearer T",
        "-H",
        r#"Dropbox-API-Arg: {"path": "/site/new.txt"}"#,
        "-H",
        "Content-Type: application/octet-stream",
        "--data-binary",
        "fresh",
    ])
    .await;
    assert_eq!(code, "200");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("Site/new.txt")).unwrap(),
        "fresh"
    );
    // A wrong token is a 401.
    let (_, code) = curl(&[
        "-X",
        "POST",
        &format!("{base}/2/users/get_current_account"),
        "-H",
        "Authorization: Bearer nope",
    ])
    .await;
    assert_eq!(code, "401");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_serves_https_and_more_accounts() {
    let dir = tempfile::tempdir().unwrap();
    let certs = test_certs(dir.path());
    let (_child, first) = run_binary(&[
        "emulator",
        "--memory",
        "--token",
        "T",
        "--listen",
        "127.0.0.1:0",
        "--tls-cert",
        certs.cert.to_str().unwrap(),
        "--tls-key",
        certs.key.to_str().unwrap(),
        "--account",
        "Bob Jones:bob-token",
    ])
    .await;
    let base = first.strip_prefix("listening on ").unwrap();
    assert!(base.starts_with("https://127.0.0.1:"), "{first}");
    let port = base.rsplit(':').next().unwrap();
    let url = format!("https://localhost:{port}/2/users/get_current_account");
    let ca = certs.ca.to_str().unwrap();
    let (body, code) = curl(&[
        "--cacert",
        ca,
        "-X",
        "POST",
        &url,
        "-H",
        "Authorization: Bearer bob-token",
    ])
    .await;
    assert_eq!(code, "200", "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["name"]["display_name"], "Bob Jones");
    // Bad CLI input is a clear error, not a crash.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_dropcache"))
        .args(["emulator", "--fault", "files/download=explode"])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown kind"));
}
