//! The proxy in process on `127.0.0.1:0`, in front of a test emulator, stopped on drop.

use super::{Answer, TOKEN, with_headers, within};
use bytes::Bytes;
use dropcache::app::App;
use dropcache::config::Config;
use http_body_util::Empty;
use hyper::{Method, Request};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::oneshot;

/// The settings a test varies; rendered as a TOML file and parsed like a user's.
pub struct Settings {
    /// Redis URL, or None for the embedded store ...
    pub redis: Option<String>,
    /// ... in this file, or in a temp dir when None.
    pub store_path: Option<std::path::PathBuf>,
    pub metadata_ttl: &'static str,
    pub negative_ttl: &'static str,
    pub cache_control: &'static str,
    pub max_ranges: usize,
    pub read_timeout: &'static str,
    pub max_retries: u32,
    pub rate_limit_budget: &'static str,
    /// The body cache's directory (a temp dir when None), and its limits.
    pub cache_dir: Option<std::path::PathBuf>,
    pub max_size: &'static str,
    pub min_free: &'static str,
    pub range_passthrough_above: &'static str,
    /// Extra `[cache]` lines, verbatim.
    pub extra_cache: &'static str,
    /// Extra `[dropbox]` lines, verbatim.
    pub extra_dropbox: &'static str,
    /// Extra `[server]` lines, verbatim.
    pub extra_server: &'static str,
    /// The change feed (off by default here, so call counts stay exact), and its lease.
    pub feed: bool,
    pub lease_ttl: &'static str,
    /// `alias = root` published with the default account's token.
    pub accounts: Vec<(&'static str, &'static str)>,
    /// Extra `[[account]]` tables, verbatim.
    pub extra: String,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            redis: None,
            store_path: None,
            metadata_ttl: "60s",
            negative_ttl: "60s",
            cache_control: "public, max-age=60",
            max_ranges: 3,
            read_timeout: "5s",
            max_retries: 1,
            rate_limit_budget: "1s",
            cache_dir: None,
            max_size: "64MiB",
            min_free: "0B",
            range_passthrough_above: "1MiB",
            extra_cache: "",
            extra_dropbox: "",
            extra_server: "",
            feed: false,
            lease_ttl: "1s",
            accounts: vec![("alice", "/Public")],
            extra: String::new(),
        }
    }
}

impl Settings {
    pub fn toml(&self, emulator: &str, store_dir: &std::path::Path) -> String {
        let store = match &self.redis {
            Some(url) => format!("redis_url = {url:?}"),
            None => {
                let path = self
                    .store_path
                    .clone()
                    .unwrap_or_else(|| store_dir.join("store"));
                format!("path = {:?}", path.display().to_string())
            }
        };
        let mut text = format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n{extra_server}\
             [dropbox]\napi_url = {emulator:?}\ncontent_url = {emulator:?}\n\
             notify_url = {emulator:?}\noauth_url = {emulator:?}\n\
             authorize_url = \"{emulator}/oauth2/authorize\"\n\
             app_key = {key:?}\napp_secret = {secret:?}\n\
             read_timeout = {rt:?}\nmax_retries = {mr}\nrate_limit_budget = {rl:?}\n\
             {extra_dropbox}\
             [store]\n{store}\n\
             [cache]\nmetadata_ttl = {ttl:?}\nnegative_ttl = {nttl:?}\ncache_control = {cc:?}\n\
             dir = {dir:?}\nmax_size = {max:?}\nmin_free = {free:?}\n\
             range_passthrough_above = {rpa:?}\n{extra_cache}\
             [http]\nmax_ranges = {ranges}\n\
             [feed]\nenabled = {feed}\nlease_ttl = {lease:?}\n",
            key = super::APP_KEY,
            secret = super::APP_SECRET,
            rt = self.read_timeout,
            mr = self.max_retries,
            rl = self.rate_limit_budget,
            ttl = self.metadata_ttl,
            nttl = self.negative_ttl,
            cc = self.cache_control,
            ranges = self.max_ranges,
            dir = self
                .cache_dir
                .clone()
                .unwrap_or_else(|| store_dir.join("cache"))
                .display()
                .to_string(),
            max = self.max_size,
            free = self.min_free,
            rpa = self.range_passthrough_above,
            extra_cache = self.extra_cache,
            extra_dropbox = self.extra_dropbox,
            extra_server = self.extra_server,
            feed = self.feed,
            lease = self.lease_ttl,
        );
        for (alias, root) in &self.accounts {
            text.push_str(&format!(
                "[[account]]\nalias = {alias:?}\nroot = {root:?}\naccess_token = {TOKEN:?}\n"
            ));
        }
        text.push_str(&self.extra);
        text
    }
}

pub struct TestProxy {
    pub addr: SocketAddr,
    pub app: Arc<App>,
    client: Client<HttpConnector, Empty<Bytes>>,
    stop: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl Drop for TestProxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl TestProxy {
    /// Starts a proxy in front of the emulator at `emulator` (its base URL).
    pub async fn start(emulator: &str, settings: &Settings) -> TestProxy {
        let dir = tempfile::tempdir().unwrap();
        let text = settings.toml(emulator, dir.path());
        let config = Config::parse(&text, &|_| None).expect("the test config is valid");
        let app = within("App::build", App::build(config))
            .await
            .expect("the app builds");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(dropcache::server::run(
            listener,
            None,
            app.clone(),
            async move {
                let _ = stopped.await;
            },
        ));
        TestProxy {
            addr,
            app,
            client: Client::builder(TokioExecutor::new()).build_http(),
            stop: Some(stop),
            server: Some(server),
            _dir: dir,
        }
    }

    /// Stops serving and waits until the app (and its store) is released.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let server = self.server.take().expect("running");
        drop(self);
        within("proxy stops", server).await.expect("server task");
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The account published as `alias`.
    pub fn account(&self, alias: &str) -> Arc<dropcache::account::Account> {
        self.app.accounts.lookup(alias).expect("a configured alias")
    }

    /// Waits until this instance trusts `alias`'s change feed.
    pub async fn feed_live(&self, alias: &str) {
        let account = self.account(alias);
        within("the change feed goes live", async {
            while self.app.meta.feed_since(&account).is_none() {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        })
        .await
    }

    /// Sends a request with a body.
    pub async fn post(&self, path: &str, headers: &[(&str, &str)], body: Vec<u8>) -> Answer {
        let req = with_headers(
            Request::builder().method(Method::POST).uri(self.url(path)),
            headers,
        )
        .body(http_body_util::Full::new(Bytes::from(body)))
        .unwrap();
        let client: Client<HttpConnector, http_body_util::Full<Bytes>> =
            Client::builder(TokioExecutor::new()).build_http();
        Answer::read(within("proxy response", client.request(req)).await.unwrap()).await
    }

    /// Sends `method path` with headers; the body is left to read.
    pub async fn send_raw(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
    ) -> hyper::Response<hyper::body::Incoming> {
        let req = with_headers(
            Request::builder().method(method).uri(self.url(path)),
            headers,
        );
        within(
            "proxy response",
            self.client.request(req.body(Empty::new()).unwrap()),
        )
        .await
        .expect("request reaches the proxy")
    }

    /// Sends `method path` with headers and reads the whole answer.
    pub async fn send(&self, method: Method, path: &str, headers: &[(&str, &str)]) -> Answer {
        Answer::read(self.send_raw(method, path, headers).await).await
    }

    pub async fn get(&self, path: &str, headers: &[(&str, &str)]) -> Answer {
        self.send(Method::GET, path, headers).await
    }

    pub async fn head(&self, path: &str, headers: &[(&str, &str)]) -> Answer {
        self.send(Method::HEAD, path, headers).await
    }

    /// Sends raw bytes as a request over a fresh connection and returns the status code:
    /// for paths no HTTP client library would send as they are.
    pub async fn raw_status(&self, request_target: &[u8]) -> u16 {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut conn = tokio::net::TcpStream::connect(self.addr).await.unwrap();
        let mut req = b"GET ".to_vec();
        req.extend_from_slice(request_target);
        req.extend_from_slice(b" HTTP/1.1\r\nHost: proxy\r\nConnection: close\r\n\r\n");
        conn.write_all(&req).await.unwrap();
        let mut out = Vec::new();
        within("raw answer", conn.read_to_end(&mut out))
            .await
            .unwrap();
        let line = String::from_utf8_lossy(&out);
        line.split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no status line in {line:?}"))
    }
}
