//! Configuration: a raw serde mirror of the TOML (`deny_unknown_fields`) turned by `TryFrom` into
//! a validated `Config` with typed units. Every error names the key. Secrets may come from the
//! environment: `DROPCACHE_APP_SECRET`, `DROPCACHE_ACCOUNT_<ALIAS>_ACCESS_TOKEN` and
//! `DROPCACHE_ACCOUNT_<ALIAS>_REFRESH_TOKEN` (alias upper-cased, `-` as `_`).

use crate::http::route::{is_reserved, valid_alias};
use crate::secret::Secret;
use base64::Engine;
use ipnet::IpNet;
use serde::Deserialize;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Base URLs of Dropbox's hosts (no trailing slash).
#[derive(Debug, Clone)]
pub struct Endpoints {
    pub api: String,
    pub content: String,
    pub notify: String,
    /// Where `/oauth2/token` lives.
    pub oauth: String,
    /// The browser's authorize page (a full URL).
    pub authorize: String,
}

impl Default for Endpoints {
    fn default() -> Self {
        Endpoints {
            api: "https://api.dropboxapi.com".into(),
            content: "https://content.dropboxapi.com".into(),
            notify: "https://notify.dropboxapi.com".into(),
            oauth: "https://api.dropboxapi.com".into(),
            authorize: "https://www.dropbox.com/oauth2/authorize".into(),
        }
    }
}

impl Endpoints {
    /// All four on one base URL (the emulator).
    pub fn single(base: &str) -> Self {
        let base = base.trim_end_matches('/').to_owned();
        Endpoints {
            api: base.clone(),
            content: base.clone(),
            notify: base.clone(),
            authorize: format!("{base}/oauth2/authorize"),
            oauth: base,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Parse(#[source] toml::de::Error),
    #[error("{key}: {why}")]
    Invalid { key: String, why: String },
}

fn invalid(key: impl Into<String>, why: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        why: why.into(),
    }
}

// ---- raw mirror of the file ----

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    server: RawServer,
    #[serde(default)]
    dropbox: RawDropbox,
    #[serde(default)]
    store: RawStore,
    #[serde(default)]
    cache: RawCache,
    #[serde(default)]
    http: RawHttp,
    #[serde(default)]
    feed: RawFeed,
    #[serde(default)]
    admin: RawAdmin,
    #[serde(default)]
    oauth: RawOauth,
    #[serde(default, rename = "account")]
    accounts: Vec<RawAccount>,
    #[serde(default, rename = "shared_link")]
    shared_links: Vec<RawSharedLink>,
    #[serde(default)]
    sharing: RawSharing,
    #[serde(default)]
    metrics: RawMetrics,
    #[serde(default)]
    log: RawLog,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSharing {
    by_url: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMetrics {
    listen: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLog {
    level: Option<String>,
    format: Option<String>,
    access_log: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAdmin {
    token: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOauth {
    redirect_uri: Option<String>,
    secret_key: Option<String>,
    state_ttl: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSharedLink {
    name: String,
    url: String,
    password: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    listen: Option<String>,
    trusted_proxies: Option<Vec<String>>,
    shutdown_timeout: Option<String>,
    ready_requires_store: Option<bool>,
    header_read_timeout: Option<String>,
    keepalive_timeout: Option<String>,
    body_read_timeout: Option<String>,
    max_connections: Option<usize>,
    http2_max_streams: Option<u32>,
    http2_keepalive_interval: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDropbox {
    api_url: Option<String>,
    content_url: Option<String>,
    notify_url: Option<String>,
    oauth_url: Option<String>,
    authorize_url: Option<String>,
    app_key: Option<String>,
    app_secret: Option<String>,
    ca_file: Option<PathBuf>,
    connect_timeout: Option<String>,
    read_timeout: Option<String>,
    max_retries: Option<u32>,
    rate_limit_budget: Option<String>,
    max_concurrent: Option<usize>,
    max_concurrent_per_account: Option<usize>,
    refresh_ahead: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStore {
    redis_url: Option<String>,
    path: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCache {
    metadata_ttl: Option<String>,
    negative_ttl: Option<String>,
    l1_entries: Option<usize>,
    cache_control: Option<String>,
    dir: Option<PathBuf>,
    max_size: Option<String>,
    min_free: Option<String>,
    range_passthrough_above: Option<String>,
    range_fill: Option<bool>,
    abandoned_fill_completion: Option<f64>,
    stale_if_error: Option<String>,
    stale_while_revalidate: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFeed {
    enabled: Option<bool>,
    longpoll_timeout: Option<String>,
    lease_ttl: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    max_ranges: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAccount {
    alias: String,
    #[serde(default)]
    root: String,
    access_token: Option<String>,
    refresh_token: Option<String>,
}

// ---- validated ----

/// An IP address (a one-address network) or a CIDR network.
fn parse_net(text: &str) -> Option<IpNet> {
    let text = text.trim();
    text.parse::<IpNet>()
        .ok()
        .or_else(|| text.parse::<std::net::IpAddr>().ok().map(IpNet::from))
}

/// A log level in `EnvFilter` syntax (`info`, `warn,dropcache=debug`), trimmed; why not.
pub fn parse_level(text: &str) -> Result<String, String> {
    let text = text.trim();
    const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];
    // A bare word must be a level (EnvFilter would take a misspelt one for a target name).
    if text.is_empty()
        || text
            .split(',')
            .any(|d| !d.contains('=') && !LEVELS.contains(&d.trim().to_lowercase().as_str()))
    {
        return Err(format!(
            "{text:?}: name a level (off, error, warn, info, debug, trace), optionally with \
             target=level directives, e.g. \"warn,dropcache=debug\""
        ));
    }
    tracing_subscriber::EnvFilter::builder()
        .parse(text)
        .map(|_| text.to_owned())
        .map_err(|e| format!("{text:?} is not a level or filter: {e}"))
}

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub server: ServerConfig,
    /// A separate listener for `/metrics` (None: served on `listen`).
    pub metrics_listen: Option<SocketAddr>,
    pub log: LogConfig,
    pub dropbox: DropboxConfig,
    pub store: StoreConfig,
    pub cache: CacheConfig,
    pub max_ranges: usize,
    pub feed: FeedConfig,
    /// Bearer token of `/admin/*` and `/oauth/start`; None: those routes are closed.
    pub admin_token: Option<Secret<String>>,
    pub oauth: OauthConfig,
    pub accounts: Vec<AccountConfig>,
    pub shared_links: Vec<SharedLinkConfig>,
    /// `/s/<percent-encoded URL>/…` serves any Dropbox shared link (`sharing.by_url`); off by
    /// default, so only the configured `[[shared_link]]` names are served.
    pub shared_links_by_url: bool,
}

/// How the proxy meets its clients and its operators.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Peers whose `X-Forwarded-For` is believed (nginx in front); the client address is the
    /// first address in it, from the right, that is not one of these.
    pub trusted_proxies: Vec<IpNet>,
    /// How long in-flight requests get to finish after SIGTERM.
    pub shutdown_timeout: Duration,
    /// `/readyz` answers 503 while the store is unreachable (default: 200, "degraded", since
    /// requests are still served from memory and disk).
    pub ready_requires_store: bool,
    /// A request's head must be in within this of its first byte (a new connection's first
    /// request: of the connection opening).
    pub header_read_timeout: Duration,
    /// A connection with no request under way and nothing moving is closed after this.
    pub keepalive_timeout: Duration,
    /// A request body we read (the webhook's) must be in within this.
    pub body_read_timeout: Duration,
    /// Most client connections open at once; past it new ones wait in the listen backlog.
    pub max_connections: usize,
    /// Most concurrent HTTP/2 streams per connection.
    pub http2_max_streams: u32,
    /// HTTP/2 pings on a connection this often (a peer that does not answer is dropped).
    pub http2_keepalive_interval: Duration,
}

/// Logging: level (an `EnvFilter` directive list), text or JSON lines, the access log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    pub level: String,
    pub format: LogFormat,
    pub access_log: bool,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".into(),
            format: LogFormat::Text,
            access_log: true,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Linking accounts through OAuth (reference §5).
#[derive(Debug, Clone)]
pub struct OauthConfig {
    /// Where Dropbox sends the browser back: this proxy's `/oauth/callback`.
    pub redirect_uri: String,
    /// 32 bytes: seals refresh tokens at rest and signs OAuth `state`. None: linking is off.
    pub secret_key: Option<Secret<[u8; 32]>>,
    /// How long a started link may take to come back.
    pub state_ttl: Duration,
}

/// A shared link published under `/s/<name>/`.
#[derive(Debug, Clone)]
pub struct SharedLinkConfig {
    pub name: String,
    pub url: String,
    pub password: Option<Secret<String>>,
}
/// The change feed: one follower per account (a lease in the store), longpoll, webhooks.
#[derive(Debug, Clone)]
pub struct FeedConfig {
    /// Off: metadata is revalidated by TTL only, and webhooks are acknowledged and ignored.
    pub enabled: bool,
    /// `timeout` of each `list_folder/longpoll` (Dropbox takes 30 s to 480 s).
    pub longpoll_timeout: Duration,
    /// How long an instance's hold on an account's feed lasts unless renewed.
    pub lease_ttl: Duration,
}

#[derive(Debug, Clone)]
pub struct DropboxConfig {
    pub endpoints: Endpoints,
    pub app_key: Option<String>,
    pub app_secret: Option<Secret<String>>,
    pub ca_file: Option<PathBuf>,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    pub max_retries: u32,
    pub rate_limit_budget: Duration,
    /// Most Dropbox calls in flight at once, overall and per account (longpolls aside).
    pub max_concurrent: usize,
    pub max_concurrent_per_account: usize,
    /// Access tokens with a known expiry are refreshed this long before it.
    pub refresh_ahead: Duration,
}

#[derive(Debug, Clone)]
pub enum StoreConfig {
    Redis { url: Secret<String> },
    Embedded { path: PathBuf },
}

#[derive(Debug, Clone)]
pub struct CacheConfig {
    pub metadata_ttl: Duration,
    pub negative_ttl: Duration,
    pub l1_entries: usize,
    pub cache_control: String,
    /// Where file bodies are kept, by content hash.
    pub dir: PathBuf,
    /// Most bytes of bodies kept on disk.
    pub max_size: u64,
    /// Free space left on the cache's file system; below it nothing more is cached.
    pub min_free: u64,
    /// A range of a file larger than this that is not cached goes to Dropbox as a Range.
    pub range_passthrough_above: u64,
    /// ... and the whole file is then fetched into the cache in the background.
    pub range_fill: bool,
    /// A fill whose every client has gone away is finished if at least this share of the file
    /// is in (so the next client gets a hit), else cancelled. 0: always finish; 1: cancel
    /// unless complete.
    pub abandoned_fill_completion: f64,
    /// When Dropbox fails (5xx, timeout, unreachable, 429), cached metadata up to this old
    /// (since Dropbox last confirmed it) is served as STALE.
    pub stale_if_error: Duration,
    /// Metadata expired by at most this long is served at once (UPDATING) while one
    /// background refresh runs. Zero: expired metadata is revalidated before answering.
    pub stale_while_revalidate: Duration,
}

#[derive(Debug, Clone)]
pub struct AccountConfig {
    pub alias: String,
    /// The published folder: `""` (the whole Dropbox) or `/Folder`.
    pub root: String,
    pub access_token: Option<Secret<String>>,
    pub refresh_token: Option<Secret<String>>,
}

fn duration(key: &str, value: Option<String>, default: &str) -> Result<Duration, ConfigError> {
    let text = value.as_deref().unwrap_or(default);
    humantime::parse_duration(text).map_err(|e| {
        invalid(
            key,
            format!("{text:?} is not a duration like \"30s\" ({e})"),
        )
    })
}

fn size(key: &str, value: Option<String>, default: &str) -> Result<u64, ConfigError> {
    let text = value.as_deref().unwrap_or(default);
    text.trim()
        .parse::<bytesize::ByteSize>()
        .map(|b| b.as_u64())
        .map_err(|e| invalid(key, format!("{text:?} is not a size like \"512MiB\" ({e})")))
}

fn url(key: &str, value: Option<String>, default: &str) -> Result<String, ConfigError> {
    let text = value.unwrap_or_else(|| default.to_owned());
    let ok = (text.starts_with("https://") || text.starts_with("http://"))
        && text.parse::<hyper::Uri>().is_ok_and(|u| u.host().is_some());
    if !ok {
        return Err(invalid(key, format!("{text:?} is not an http(s) URL")));
    }
    Ok(text.trim_end_matches('/').to_owned())
}

/// A published root: `""` (everything) or an absolute Dropbox path with no empty, `.` or `..`
/// segment (a trailing `/` is dropped); None when it is not one.
pub fn parse_root(text: &str) -> Option<String> {
    let root = text.trim_end_matches('/');
    let ok = (root.is_empty() || root.starts_with('/'))
        && root.len() <= 1024
        && !root.chars().any(char::is_control)
        && !root
            .split('/')
            .skip(1)
            .any(|s| s.is_empty() || s == "." || s == ".." || s.contains('\\'));
    ok.then(|| root.to_owned())
}

/// The environment variable name for an account secret.
pub fn account_env(alias: &str, what: &str) -> String {
    format!(
        "DROPCACHE_ACCOUNT_{}_{what}",
        alias.to_uppercase().replace('-', "_")
    )
}

impl Config {
    /// Reads and validates a file; `env` looks up secrets (`std::env::var` in production).
    pub fn load(path: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_owned(),
            source,
        })?;
        Config::parse(&text, env)
    }

    pub fn parse(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(ConfigError::Parse)?;
        Config::validate(raw, env)
    }

    fn validate(
        raw: RawConfig,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let listen_text = raw.server.listen.unwrap_or_else(|| "127.0.0.1:8080".into());
        let listen: SocketAddr = listen_text.parse().map_err(|_| {
            invalid(
                "server.listen",
                format!("{listen_text:?} is not an IP:PORT address"),
            )
        })?;
        let server = ServerConfig {
            trusted_proxies: raw
                .server
                .trusted_proxies
                .unwrap_or_else(|| vec!["127.0.0.1/32".into(), "::1/128".into()])
                .iter()
                .map(|p| parse_net(p))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| {
                    invalid(
                        "server.trusted_proxies",
                        "each entry must be an IP address or a CIDR network like \"10.0.0.0/8\"",
                    )
                })?,
            shutdown_timeout: duration(
                "server.shutdown_timeout",
                raw.server.shutdown_timeout,
                "20s",
            )?,
            ready_requires_store: raw.server.ready_requires_store.unwrap_or(false),
            header_read_timeout: duration(
                "server.header_read_timeout",
                raw.server.header_read_timeout,
                "10s",
            )?,
            keepalive_timeout: duration(
                "server.keepalive_timeout",
                raw.server.keepalive_timeout,
                "75s",
            )?,
            body_read_timeout: duration(
                "server.body_read_timeout",
                raw.server.body_read_timeout,
                "10s",
            )?,
            max_connections: raw.server.max_connections.unwrap_or(4096),
            http2_max_streams: raw.server.http2_max_streams.unwrap_or(128),
            http2_keepalive_interval: duration(
                "server.http2_keepalive_interval",
                raw.server.http2_keepalive_interval,
                "30s",
            )?,
        };
        for (key, d) in [
            ("server.header_read_timeout", server.header_read_timeout),
            ("server.keepalive_timeout", server.keepalive_timeout),
            ("server.body_read_timeout", server.body_read_timeout),
            (
                "server.http2_keepalive_interval",
                server.http2_keepalive_interval,
            ),
        ] {
            if d.is_zero() {
                return Err(invalid(key, "must be above zero"));
            }
        }
        if server.max_connections == 0 {
            return Err(invalid("server.max_connections", "must be at least 1"));
        }
        if server.http2_max_streams == 0 {
            return Err(invalid("server.http2_max_streams", "must be at least 1"));
        }
        let metrics_listen = match raw.metrics.listen.filter(|l| !l.is_empty()) {
            None => None,
            Some(text) => Some(text.parse::<SocketAddr>().map_err(|_| {
                invalid(
                    "metrics.listen",
                    format!("{text:?} is not an IP:PORT address"),
                )
            })?),
        };
        if metrics_listen == Some(listen) && listen.port() != 0 {
            return Err(invalid(
                "metrics.listen",
                "must differ from server.listen (leave it unset to serve /metrics there)",
            ));
        }
        let defaults = LogConfig::default();
        let log = LogConfig {
            level: parse_level(raw.log.level.as_deref().unwrap_or(&defaults.level))
                .map_err(|why| invalid("log.level", why))?,
            format: match raw.log.format.as_deref() {
                None => defaults.format,
                Some("text") => LogFormat::Text,
                Some("json") => LogFormat::Json,
                Some(other) => {
                    return Err(invalid(
                        "log.format",
                        format!("{other:?} must be \"text\" or \"json\""),
                    ));
                }
            },
            access_log: raw.log.access_log.unwrap_or(defaults.access_log),
        };
        let d = raw.dropbox;
        let defaults = Endpoints::default();
        let endpoints = Endpoints {
            api: url("dropbox.api_url", d.api_url, &defaults.api)?,
            content: url("dropbox.content_url", d.content_url, &defaults.content)?,
            notify: url("dropbox.notify_url", d.notify_url, &defaults.notify)?,
            oauth: url("dropbox.oauth_url", d.oauth_url, &defaults.oauth)?,
            authorize: url(
                "dropbox.authorize_url",
                d.authorize_url,
                &defaults.authorize,
            )?,
        };
        let app_secret = d
            .app_secret
            .or_else(|| env("DROPCACHE_APP_SECRET"))
            .map(Secret::new);
        let max_retries = d.max_retries.unwrap_or(3);
        if max_retries > 10 {
            return Err(invalid("dropbox.max_retries", "must be at most 10"));
        }
        if let Some(ca) = &d.ca_file
            && !ca.is_file()
        {
            return Err(invalid(
                "dropbox.ca_file",
                format!("{} is not a readable file", ca.display()),
            ));
        }
        let dropbox = DropboxConfig {
            endpoints,
            app_key: d.app_key.filter(|k| !k.is_empty()),
            app_secret,
            ca_file: d.ca_file,
            connect_timeout: duration("dropbox.connect_timeout", d.connect_timeout, "5s")?,
            read_timeout: duration("dropbox.read_timeout", d.read_timeout, "30s")?,
            max_retries,
            rate_limit_budget: duration("dropbox.rate_limit_budget", d.rate_limit_budget, "5s")?,
            max_concurrent: d.max_concurrent.unwrap_or(64),
            max_concurrent_per_account: d.max_concurrent_per_account.unwrap_or(16),
            refresh_ahead: duration("dropbox.refresh_ahead", d.refresh_ahead, "5m")?,
        };
        if dropbox.max_concurrent == 0 {
            return Err(invalid("dropbox.max_concurrent", "must be at least 1"));
        }
        if dropbox.max_concurrent_per_account == 0 {
            return Err(invalid(
                "dropbox.max_concurrent_per_account",
                "must be at least 1",
            ));
        }
        if dropbox.read_timeout.is_zero() || dropbox.connect_timeout.is_zero() {
            return Err(invalid(
                "dropbox.read_timeout",
                "timeouts must be above zero",
            ));
        }
        let store = match raw.store.redis_url.filter(|u| !u.is_empty()) {
            Some(u) if u.starts_with("redis://") || u.starts_with("rediss://") => {
                StoreConfig::Redis {
                    url: Secret::new(u),
                }
            }
            // SECURITY: the URL may hold a password; name the key, not the value.
            Some(_) => {
                return Err(invalid(
                    "store.redis_url",
                    "must start with redis:// or rediss://",
                ));
            }
            None => StoreConfig::Embedded {
                path: raw
                    .store
                    .path
                    .unwrap_or_else(|| PathBuf::from("dropcache-store")),
            },
        };
        let c = raw.cache;
        let cache = CacheConfig {
            metadata_ttl: duration("cache.metadata_ttl", c.metadata_ttl, "30s")?,
            negative_ttl: duration("cache.negative_ttl", c.negative_ttl, "5s")?,
            l1_entries: c.l1_entries.unwrap_or(10_000),
            cache_control: c
                .cache_control
                .unwrap_or_else(|| "public, max-age=0, must-revalidate".into()),
            dir: c.dir.unwrap_or_else(|| PathBuf::from("dropcache-cache")),
            max_size: size("cache.max_size", c.max_size, "1GiB")?,
            min_free: size("cache.min_free", c.min_free, "256MiB")?,
            range_passthrough_above: size(
                "cache.range_passthrough_above",
                c.range_passthrough_above,
                "32MiB",
            )?,
            range_fill: c.range_fill.unwrap_or(false),
            abandoned_fill_completion: c.abandoned_fill_completion.unwrap_or(0.9),
            stale_if_error: duration("cache.stale_if_error", c.stale_if_error, "1d")?,
            stale_while_revalidate: duration(
                "cache.stale_while_revalidate",
                c.stale_while_revalidate,
                "0s",
            )?,
        };
        if !(0.0..=1.0).contains(&cache.abandoned_fill_completion) {
            return Err(invalid(
                "cache.abandoned_fill_completion",
                "must be a share from 0 to 1 (0.9: finish fills that are 90% in)",
            ));
        }
        if cache.l1_entries == 0 {
            return Err(invalid("cache.l1_entries", "must be at least 1"));
        }
        if hyper::header::HeaderValue::from_str(&cache.cache_control).is_err() {
            return Err(invalid(
                "cache.cache_control",
                "is not a valid header value",
            ));
        }
        let max_ranges = raw.http.max_ranges.unwrap_or(8);
        if max_ranges == 0 {
            return Err(invalid("http.max_ranges", "must be at least 1"));
        }
        let f = raw.feed;
        let feed = FeedConfig {
            enabled: f.enabled.unwrap_or(true),
            longpoll_timeout: duration("feed.longpoll_timeout", f.longpoll_timeout, "30s")?,
            lease_ttl: duration("feed.lease_ttl", f.lease_ttl, "15s")?,
        };
        if !(30..=480).contains(&feed.longpoll_timeout.as_secs()) {
            return Err(invalid(
                "feed.longpoll_timeout",
                "must be between 30s and 480s (Dropbox's range)",
            ));
        }
        if feed.lease_ttl < Duration::from_millis(300) {
            return Err(invalid("feed.lease_ttl", "must be at least 300ms"));
        }
        let admin_token = raw
            .admin
            .token
            .or_else(|| env("DROPCACHE_ADMIN_TOKEN"))
            .filter(|t| !t.is_empty());
        if admin_token.as_ref().is_some_and(|t| t.len() < 16) {
            return Err(invalid("admin.token", "must be at least 16 characters"));
        }
        let o = raw.oauth;
        let redirect_uri = url(
            "oauth.redirect_uri",
            o.redirect_uri,
            &format!("http://localhost:{}/oauth/callback", listen.port()),
        )?;
        let secret_key = match o.secret_key.or_else(|| env("DROPCACHE_SECRET_KEY")) {
            None => None,
            Some(text) if text.is_empty() => None,
            // SECURITY: never echo the key.
            Some(text) => Some(Secret::new(
                base64::engine::general_purpose::STANDARD
                    .decode(text.trim())
                    .ok()
                    .and_then(|k| <[u8; 32]>::try_from(k).ok())
                    .ok_or_else(|| {
                        invalid(
                            "oauth.secret_key",
                            "must be 32 bytes in base64 (e.g. from `openssl rand -base64 32`)",
                        )
                    })?,
            )),
        };
        let oauth = OauthConfig {
            redirect_uri,
            secret_key,
            state_ttl: duration("oauth.state_ttl", o.state_ttl, "10m")?,
        };
        if oauth.state_ttl.is_zero() {
            return Err(invalid("oauth.state_ttl", "must be above zero"));
        }
        let mut shared_links = Vec::new();
        let mut names = HashSet::new();
        for (i, l) in raw.shared_links.into_iter().enumerate() {
            let key = |k: &str| format!("shared_link[{i}].{k}");
            if !valid_alias(&l.name) {
                return Err(invalid(
                    key("name"),
                    format!("{:?} must be 1-64 of a-z, 0-9, '-', '_'", l.name),
                ));
            }
            if !names.insert(l.name.clone()) {
                return Err(invalid(key("name"), format!("{:?} is used twice", l.name)));
            }
            if !l.url.starts_with("https://") {
                return Err(invalid(
                    key("url"),
                    "must be a Dropbox shared link (https://www.dropbox.com/...)",
                ));
            }
            shared_links.push(SharedLinkConfig {
                name: l.name,
                url: l.url,
                password: l.password.map(Secret::new),
            });
        }
        if !shared_links.is_empty() && (dropbox.app_key.is_none() || dropbox.app_secret.is_none()) {
            return Err(invalid(
                "dropbox.app_secret",
                "shared links are read with the app's key and secret: set both",
            ));
        }
        let mut seen = HashSet::new();
        let mut accounts = Vec::new();
        for (i, a) in raw.accounts.into_iter().enumerate() {
            let key = |k: &str| format!("account[{i}].{k}");
            if !valid_alias(&a.alias) {
                return Err(invalid(
                    key("alias"),
                    format!("{:?} must be 1-64 of a-z, 0-9, '-', '_'", a.alias),
                ));
            }
            if is_reserved(&a.alias) {
                return Err(invalid(
                    key("alias"),
                    format!("{:?} is reserved for the proxy's own endpoints", a.alias),
                ));
            }
            if !seen.insert(a.alias.clone()) {
                return Err(invalid(
                    key("alias"),
                    format!("{:?} is used twice", a.alias),
                ));
            }
            let root = parse_root(&a.root).ok_or_else(|| {
                invalid(
                    key("root"),
                    format!(
                        "{:?} must be \"\" or an absolute Dropbox path like \"/Public\"",
                        a.root
                    ),
                )
            })?;
            let access_token = a
                .access_token
                .or_else(|| env(&account_env(&a.alias, "ACCESS_TOKEN")))
                .filter(|t| !t.is_empty())
                .map(Secret::new);
            let refresh_token = a
                .refresh_token
                .or_else(|| env(&account_env(&a.alias, "REFRESH_TOKEN")))
                .filter(|t| !t.is_empty())
                .map(Secret::new);
            if access_token.is_none() && refresh_token.is_none() {
                return Err(invalid(
                    key("access_token"),
                    format!(
                        "account {:?} needs access_token or refresh_token (or {})",
                        a.alias,
                        account_env(&a.alias, "ACCESS_TOKEN")
                    ),
                ));
            }
            if refresh_token.is_some() && dropbox.app_key.is_none() {
                return Err(invalid(
                    "dropbox.app_key",
                    format!(
                        "account {:?} has a refresh_token, which needs the app key",
                        a.alias
                    ),
                ));
            }
            accounts.push(AccountConfig {
                alias: a.alias,
                root,
                access_token,
                refresh_token,
            });
        }
        Ok(Config {
            listen,
            server,
            metrics_listen,
            log,
            dropbox,
            store,
            cache,
            max_ranges,
            feed,
            admin_token: admin_token.map(Secret::new),
            oauth,
            accounts,
            shared_links,
            shared_links_by_url: raw.sharing.by_url.unwrap_or(false),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn the_example_file_parses_with_every_default() {
        let shipped = include_str!("../config/dropcache.example.toml");
        assert!(Config::parse(shipped, &no_env).is_ok_and(|c| c.accounts.is_empty()));
        // Its account, uncommented as the file says (one "#" off each line).
        let at = shipped.find("#[[account]]").expect("the commented account");
        let account: String = shipped[at..]
            .lines()
            .map(|l| format!("{}\n", l.strip_prefix('#').unwrap_or(l)))
            .collect();
        let text = &format!("{}{account}", &shipped[..at]);
        let env =
            |k: &str| (k == "DROPCACHE_ACCOUNT_ALICE_ACCESS_TOKEN").then(|| "from-env".to_owned());
        let c = Config::parse(text, &env).expect("the example is valid");
        assert_eq!(c.listen, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(c.dropbox.endpoints.api, "https://api.dropboxapi.com");
        assert_eq!(c.dropbox.read_timeout, Duration::from_secs(30));
        assert_eq!(c.cache.metadata_ttl, Duration::from_secs(30));
        assert_eq!(c.max_ranges, 8);
        assert_eq!(c.cache.max_size, 1 << 30);
        assert_eq!(c.cache.min_free, 256 << 20);
        assert_eq!(c.cache.range_passthrough_above, 32 << 20);
        assert!(matches!(c.store, StoreConfig::Embedded { .. }));
        assert_eq!(c.accounts[0].alias, "alice");
        assert_eq!(
            c.accounts[0].access_token.as_ref().unwrap().expose(),
            "from-env"
        );
        // The whole example at its defaults equals an empty file's defaults (but accounts).
        let empty = Config::parse("", &no_env).unwrap();
        assert_eq!(format!("{:?}", empty.cache), format!("{:?}", c.cache));
        assert_eq!(format!("{:?}", empty.dropbox), format!("{:?}", c.dropbox));
        assert_eq!(format!("{:?}", empty.feed), format!("{:?}", c.feed));
        assert_eq!(format!("{:?}", empty.oauth), format!("{:?}", c.oauth));
        assert_eq!(format!("{:?}", empty.server), format!("{:?}", c.server));
        assert_eq!(empty.log, c.log);
        assert_eq!(empty.metrics_listen, c.metrics_listen);
        assert_eq!(c.server.shutdown_timeout, Duration::from_secs(20));
        assert_eq!(c.oauth.redirect_uri, "http://localhost:8080/oauth/callback");
        assert!(c.feed.enabled);
    }

    #[test]
    fn errors_name_the_key() {
        let cases = [
            ("[server]\nlisten = \"nowhere\"", "server.listen"),
            (
                "[server]\ntrusted_proxies = [\"10.0.0.0/33\"]",
                "server.trusted_proxies",
            ),
            (
                "[server]\nshutdown_timeout = \"later\"",
                "server.shutdown_timeout",
            ),
            ("[metrics]\nlisten = \"9181\"", "metrics.listen"),
            ("[metrics]\nlisten = \"127.0.0.1:8080\"", "metrics.listen"),
            ("[log]\nlevel = \"loud==\"", "log.level"),
            ("[log]\nlevel = \"\"", "log.level"),
            ("[log]\nlevel = \"verbose\"", "log.level"),
            ("[log]\nformat = \"xml\"", "log.format"),
            ("[cache]\nmetadata_ttl = \"soon\"", "cache.metadata_ttl"),
            ("[cache]\nl1_entries = 0", "cache.l1_entries"),
            ("[cache]\nmax_size = \"lots\"", "cache.max_size"),
            ("[cache]\nmin_free = \"1 parsec\"", "cache.min_free"),
            ("[dropbox]\napi_url = \"ftp://x\"", "dropbox.api_url"),
            ("[store]\nredis_url = \"http://x\"", "store.redis_url"),
            (
                "[[account]]\nalias = \"Bad Alias\"\naccess_token = \"t\"",
                "account[0].alias",
            ),
            (
                "[[account]]\nalias = \"a\"\nroot = \"Public\"\naccess_token = \"t\"",
                "account[0].root",
            ),
            ("[[account]]\nalias = \"a\"", "account[0].access_token"),
            (
                "[[account]]\nalias = \"a\"\nrefresh_token = \"r\"",
                "dropbox.app_key",
            ),
            (
                "[[account]]\nalias = \"a\"\naccess_token = \"t\"\n[[account]]\nalias = \"a\"\naccess_token = \"t\"",
                "account[1].alias",
            ),
            (
                "[[account]]\nalias = \"healthz\"\naccess_token = \"t\"",
                "account[0].alias",
            ),
            ("[cache]\nbogus = 1", "bogus"),
            ("[nonsense]", "nonsense"),
            ("[feed]\nlongpoll_timeout = \"5s\"", "feed.longpoll_timeout"),
            ("[feed]\nlease_ttl = \"10ms\"", "feed.lease_ttl"),
            ("[dropbox]\nmax_concurrent = 0", "dropbox.max_concurrent"),
            ("[cache]\nstale_if_error = \"old\"", "cache.stale_if_error"),
            ("[admin]\ntoken = \"short\"", "admin.token"),
            ("[oauth]\nsecret_key = \"c2hvcnQ=\"", "oauth.secret_key"),
            ("[oauth]\nredirect_uri = \"/cb\"", "oauth.redirect_uri"),
            (
                "[[shared_link]]\nname = \"p\"\nurl = \"https://www.dropbox.com/scl/fo/x\"",
                "dropbox.app_secret",
            ),
            (
                "[[shared_link]]\nname = \"Bad Name\"\nurl = \"https://x\"",
                "shared_link[0].name",
            ),
        ];
        for (text, key) in cases {
            let err = Config::parse(text, &no_env).expect_err(text).to_string();
            assert!(err.contains(key), "{text:?} → {err}");
        }
    }

    #[test]
    fn secrets_do_not_print() {
        let c = Config::parse(
            "[store]\nredis_url = \"redis://:hunter2@localhost/0\"\n[admin]\ntoken = \"admin-secret-0123456789\"\n[oauth]\nsecret_key = \"BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\"\n[[account]]\nalias = \"a\"\naccess_token = \"sl.secret\"",
            &no_env,
        )
        .unwrap();
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("hunter2")
                && !shown.contains("sl.secret")
                && !shown.contains("admin-secret")
                && !shown.contains("[7, 7"),
            "{shown}"
        );
    }
}
