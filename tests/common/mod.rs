//! The shared test harness: an in-process emulator on `127.0.0.1:0` and a small HTTP client
//! with a timeout on every await. Handles shut down on drop.
#![allow(dead_code)]

pub mod proxy;
pub mod redis;

use bytes::Bytes;
use dropcache::emulator::{AccountSpec, Emulator, EmulatorConfig, RunningEmulator};
use dropcache::upstream::json::to_header_safe;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use std::future::Future;
use std::time::Duration;

/// The default account's fixed token in every harness.
pub const TOKEN: &str = "test-token-default";
pub const APP_KEY: &str = "test-app-key";
pub const APP_SECRET: &str = "test-app-secret";

/// Fails the test instead of hanging.
pub async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(20), fut)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}

/// Polls `check` every few milliseconds until it holds (within `within`'s limit); returns how
/// long that took.
pub async fn eventually<F: Future<Output = bool>>(
    what: &str,
    mut check: impl FnMut() -> F,
) -> Duration {
    let started = std::time::Instant::now();
    within(what, async {
        while !check().await {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    started.elapsed()
}

/// Polls futures together in the current task (no spawning, no futures crate); returns
/// their outputs in order.
pub async fn join_all<F: Future>(futs: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    let mut pinned: Vec<_> = futs.into_iter().map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = pinned.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in pinned.iter_mut().enumerate() {
            if out[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => out[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter()
        .map(|o| o.expect("every future finished"))
        .collect()
}

/// Fault settings from `ROUTE=KIND[,share=F][,times=N]` rules.
pub fn faults(rules: &[&str]) -> dropcache::emulator::faults::Faults {
    dropcache::emulator::faults::Faults {
        rules: rules
            .iter()
            .map(|r| r.parse().expect("a valid rule"))
            .collect(),
        ..Default::default()
    }
}

/// An emulator config with the default account (token `TOKEN`), the test app, admin on.
pub fn config() -> EmulatorConfig {
    EmulatorConfig {
        accounts: vec![AccountSpec {
            name: "Test User".into(),
            token: Some(TOKEN.into()),
            root: None,
        }],
        app_key: APP_KEY.into(),
        app_secret: APP_SECRET.into(),
        admin: true,
        ..EmulatorConfig::default()
    }
}

pub struct Harness {
    pub running: RunningEmulator,
    client: Client<HttpConnector, Full<Bytes>>,
}

/// A whole answer, body read.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// Adds `(name, value)` headers to a request being built.
pub fn with_headers(
    mut req: hyper::http::request::Builder,
    headers: &[(&str, &str)],
) -> hyper::http::request::Builder {
    for (k, v) in headers {
        req = req.header(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_bytes(v.as_bytes()).unwrap(),
        );
    }
    req
}

impl Answer {
    /// Reads a whole response, body and all.
    pub async fn read(resp: Response<Incoming>) -> Answer {
        let (parts, body) = resp.into_parts();
        let body = within("response body", body.collect())
            .await
            .expect("whole body")
            .to_bytes();
        Answer {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(name)
            .map(|v| v.to_str().expect("ASCII header"))
    }

    /// Asserts a 200 and returns the JSON body.
    pub fn ok(&self) -> Value {
        assert_eq!(self.status, StatusCode::OK, "body: {}", self.text());
        self.json()
    }

    /// Asserts a 409 and returns the `error` union.
    pub fn route_error(&self) -> Value {
        assert_eq!(self.status, StatusCode::CONFLICT, "body: {}", self.text());
        assert_eq!(self.header("content-type"), Some("application/json"));
        let v = self.json();
        assert!(v["error_summary"].is_string(), "{v}");
        v["error"].clone()
    }

    /// The `Dropbox-API-Result` header as JSON.
    pub fn result(&self) -> Value {
        let raw = self
            .header("dropbox-api-result")
            .expect("Dropbox-API-Result header");
        assert!(raw.is_ascii());
        serde_json::from_str(raw).expect("Dropbox-API-Result is JSON")
    }
}

impl Harness {
    pub async fn start() -> Harness {
        Harness::with(config()).await
    }

    pub async fn with(config: EmulatorConfig) -> Harness {
        let emulator = Emulator::new(config).expect("emulator config is valid");
        let running = emulator
            .spawn("127.0.0.1:0", None)
            .await
            .expect("bind 127.0.0.1:0");
        Harness {
            running,
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    pub fn emu(&self) -> &Emulator {
        &self.running.emulator
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.running.base_url)
    }

    /// Sends a request and returns the raw response (for streaming tests).
    pub async fn send_raw(&self, req: Request<Full<Bytes>>) -> Response<Incoming> {
        within("response head", self.client.request(req))
            .await
            .expect("request reaches the emulator")
    }

    pub async fn send(&self, req: Request<Full<Bytes>>) -> Answer {
        Answer::read(self.send_raw(req).await).await
    }

    /// A request builder for `path` with extra headers.
    pub fn request(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Request<Full<Bytes>> {
        with_headers(
            Request::builder().method(method).uri(self.url(path)),
            headers,
        )
        .body(Full::new(body.into()))
        .unwrap()
    }

    /// An RPC call with a Bearer token (or none) and a JSON argument.
    pub async fn rpc(&self, route: &str, token: Option<&str>, arg: &Value) -> Answer {
        let auth = token.map(|t| format!("Bearer {t}"));
        let mut headers = vec![("Content-Type", "application/json")];
        if let Some(a) = &auth {
            headers.push(("Authorization", a));
        }
        let body = if arg.is_null() {
            Bytes::from_static(b"null")
        } else {
            Bytes::from(arg.to_string())
        };
        self.send(self.request(Method::POST, &format!("/2/{route}"), &headers, body))
            .await
    }

    /// An RPC call as the default user.
    pub async fn call(&self, route: &str, arg: Value) -> Answer {
        self.rpc(route, Some(TOKEN), &arg).await
    }

    /// A content-download call (POST, argument in `Dropbox-API-Arg`) as the default user.
    pub async fn download(&self, route: &str, arg: Value, extra: &[(&str, &str)]) -> Answer {
        let auth = format!("Bearer {TOKEN}");
        let arg = to_header_safe(&arg);
        let mut headers = vec![
            ("Authorization", auth.as_str()),
            ("Dropbox-API-Arg", arg.as_str()),
        ];
        headers.extend_from_slice(extra);
        self.send(self.request(Method::POST, &format!("/2/{route}"), &headers, Bytes::new()))
            .await
    }

    /// Runs the emulator's OAuth flow and returns (access, refresh).
    pub async fn oauth_tokens(&self) -> (String, String) {
        let a = self
            .send(self.request(
                Method::GET,
                &format!("/oauth2/authorize?client_id={APP_KEY}&response_type=code&token_access_type=offline&redirect_uri=http://localhost/cb"),
                &[],
                "",
            ))
            .await;
        let location = a.header("location").unwrap().to_owned();
        let code = form_urlencoded::parse(location.split_once('?').unwrap().1.as_bytes())
            .find(|(k, _)| k == "code")
            .unwrap()
            .1
            .into_owned();
        let body: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs([
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("client_id", APP_KEY),
                ("client_secret", APP_SECRET),
                ("redirect_uri", "http://localhost/cb"),
            ])
            .finish();
        let t = self
            .send(self.request(
                Method::POST,
                "/oauth2/token",
                &[("Content-Type", "application/x-www-form-urlencoded")],
                body,
            ))
            .await
            .ok();
        (
            t["access_token"].as_str().unwrap().into(),
            t["refresh_token"].as_str().unwrap().into(),
        )
    }

    /// Uploads through `files/upload` with a JSON argument; returns the answer.
    pub async fn upload_with(&self, arg: Value, data: impl Into<Bytes>) -> Answer {
        self.upload_as(TOKEN, arg, data).await
    }

    /// `files/upload` with `token`'s account.
    pub async fn upload_as(&self, token: &str, arg: Value, data: impl Into<Bytes>) -> Answer {
        let auth = format!("Bearer {token}");
        let arg = to_header_safe(&arg);
        let headers = [
            ("Authorization", auth.as_str()),
            ("Dropbox-API-Arg", arg.as_str()),
            ("Content-Type", "application/octet-stream"),
        ];
        self.send(self.request(Method::POST, "/2/files/upload", &headers, data))
            .await
    }

    /// Uploads (overwrite) to `token`'s account.
    pub async fn put_as(&self, token: &str, path: &str, data: impl Into<Bytes>) -> Value {
        self.upload_as(
            token,
            serde_json::json!({"path": path, "mode": "overwrite"}),
            data,
        )
        .await
        .ok()
    }

    /// Follows an authorize URL the way a signed-in browser would: the query Dropbox sends
    /// back to the redirect URI (`code` and `state`, or `error`), or the code it shows.
    pub async fn approve(&self, authorize_url: &str) -> Vec<(String, String)> {
        let path = authorize_url
            .strip_prefix(&self.running.base_url)
            .expect("the authorize URL is the emulator's");
        let a = self.send(self.request(Method::GET, path, &[], "")).await;
        match a.header("location") {
            Some(location) => {
                form_urlencoded::parse(location.split_once('?').unwrap().1.as_bytes())
                    .into_owned()
                    .collect()
            }
            None => {
                let text = a.text();
                let code = text.split("into your app: ").nth(1).expect("a shown code");
                let code = code.split('<').next().unwrap().trim().to_owned();
                vec![("code".into(), code)]
            }
        }
    }

    /// Uploads (overwrite) and returns the FileMetadata.
    pub async fn put(&self, path: &str, data: impl Into<Bytes>) -> Value {
        self.upload_with(serde_json::json!({"path": path, "mode": "overwrite"}), data)
            .await
            .ok()
    }
}

/// PEM files for a test CA and a `localhost` / `127.0.0.1` server certificate it signed.
pub struct TestCerts {
    pub ca: std::path::PathBuf,
    pub cert: std::path::PathBuf,
    pub key: std::path::PathBuf,
}

/// Makes a CA and a server certificate with the `openssl` command line.
pub fn test_certs(dir: &std::path::Path) -> TestCerts {
    let run = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("the openssl command is installed");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    run(&[
        &["req", "-x509"][..],
        &ec,
        &[
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=dropcache test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    ]
    .concat());
    run(&[
        &["req"][..],
        &ec,
        &[
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ],
    ]
    .concat());
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
         keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
    TestCerts {
        ca: dir.join("ca.pem"),
        cert: dir.join("server.pem"),
        key: dir.join("server.key"),
    }
}

/// Log lines collected from the process-wide tracing subscriber.
#[derive(Clone, Default)]
pub struct Logs(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    /// Installs the process-wide subscriber (once per test binary: one test may call this)
    /// and returns what it collects: every thread's lines, other tests' too.
    pub fn capture(level: tracing::Level) -> Logs {
        let logs = Logs::default();
        let writer = logs.clone();
        tracing::subscriber::set_global_default(
            tracing_subscriber::fmt()
                .with_max_level(level)
                .with_writer(move || writer.clone())
                .finish(),
        )
        .expect("only one test in a binary sets the global subscriber");
        logs
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}
