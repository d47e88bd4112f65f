//! Configuration: a raw serde mirror of the TOML (`deny_unknown_fields`) turned by `TryFrom` into
//! a validated `Config` with typed units. Every error names the key. Secrets may come from the
//! environment: `DROPCACHE_APP_SECRET`, `DROPCACHE_ACCOUNT_<ALIAS>_ACCESS_TOKEN` and
//! `DROPCACHE_ACCOUNT_<ALIAS>_REFRESH_TOKEN` (alias upper-cased, `-` as `_`).

mod accounts;
mod cache;
mod cors;
mod dropbox;
mod feed;
mod log;
mod oauth;
mod raw;
mod server;
mod sites;
mod store;
mod units;

pub use accounts::{AccountConfig, SharedLinkConfig, account_env, parse_root};
pub use cache::{CacheConfig, CacheRule};
pub use dropbox::{DropboxConfig, Endpoints};
pub use feed::FeedConfig;
pub use log::{LogConfig, LogFormat, parse_level};
pub use oauth::OauthConfig;
pub use server::ServerConfig;
pub use sites::{HtmlExtension, SiteConfig, SitesConfig, UnknownHost, WarmConfig, host_key};
pub use store::StoreConfig;

use crate::secret::Secret;
use raw::RawConfig;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Where and what, but not the text there: a config line can hold a secret (found by
    /// fuzzing: toml's own message quotes the line).
    #[error("not valid TOML at line {line}, column {column}: {message}")]
    Parse {
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{key}: {why}")]
    Invalid { key: String, why: String },
}

/// A TOML error without the source line, and without any value it quotes.
fn parse_error(text: &str, e: &toml::de::Error) -> ConfigError {
    let at = e.span().map_or(0, |s| s.start.min(text.len()));
    let before = text.get(..at).unwrap_or("");
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    ConfigError::Parse {
        line,
        column,
        message: without_values(e.message()),
    }
}

/// serde's messages quote the value they were given (`invalid type: string "…"`, `unknown
/// variant `…``): that value is left out, since it may be a secret in the wrong place. An
/// unknown key is still named: a key is not a secret, and naming it is the help.
fn without_values(message: &str) -> String {
    let message = message.trim();
    for (lead, open, close) in [
        ("invalid type: string \"", '"', '"'),
        ("invalid value: string \"", '"', '"'),
        ("unknown variant `", '`', '`'),
    ] {
        if let Some(rest) = message.strip_prefix(lead) {
            // The value ends at the last close quote before ", expected" (it may hold quotes).
            let end = rest
                .find(&format!("{close}, expected"))
                .unwrap_or(rest.len());
            let tail = rest.get(end + close.len_utf8()..).unwrap_or("");
            return format!(
                "{}{open}…{close}{tail}",
                &lead[..lead.len() - open.len_utf8()]
            );
        }
    }
    message.to_owned()
}

fn invalid(key: impl Into<String>, why: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        why: why.into(),
    }
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
    /// `[[site]]`: websites from a folder, by host name or path prefix; and `[sites]`.
    pub sites: SitesConfig,
    pub compression: CompressionConfig,
    pub albums: AlbumsConfig,
}

/// `[albums]`: how much one album answer may read of Dropbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlbumsConfig {
    /// New image facts one answer reads at most (the next answer goes on).
    pub reads_per_answer: usize,
    /// The longest one answer spends reading facts (the next answer goes on).
    pub answer_time: std::time::Duration,
}

/// `[compression]`: br and gzip copies of text files, made once per content hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompressionConfig {
    pub enabled: bool,
    /// Files smaller than this are sent as they are (the headers would cost more).
    pub min_size: u64,
    /// Files larger than this are sent as they are (a copy is made in memory).
    pub max_size: u64,
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
        let raw: RawConfig = toml::from_str(text).map_err(|e| parse_error(text, &e))?;
        Config::validate(raw, env)
    }

    fn validate(
        raw: RawConfig,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let (listen, server) = server::server(raw.server)?;
        let metrics_listen = server::metrics_listen(raw.metrics, listen)?;
        let log = LogConfig::try_from(raw.log)?;
        let dropbox = dropbox::dropbox(raw.dropbox, env)?;
        let store = StoreConfig::try_from(raw.store)?;
        let cache = CacheConfig::try_from(raw.cache)?;
        let max_ranges = raw.http.max_ranges.unwrap_or(8);
        if max_ranges == 0 {
            return Err(invalid("http.max_ranges", "must be at least 1"));
        }
        let feed = FeedConfig::try_from(raw.feed)?;
        let admin_token = raw
            .admin
            .token
            .or_else(|| env("DROPCACHE_ADMIN_TOKEN"))
            .filter(|t| !t.is_empty());
        if admin_token.as_ref().is_some_and(|t| t.len() < 16) {
            return Err(invalid("admin.token", "must be at least 16 characters"));
        }
        let oauth = oauth::oauth(raw.oauth, env, listen)?;
        let shared_links = accounts::shared_links(raw.shared_links, &dropbox)?;
        let accounts = accounts::accounts(raw.accounts, env, &dropbox)?;
        let aliases = accounts.iter().map(|a| a.alias.as_str()).collect();
        let sites = sites::sites(raw.site, raw.sites, &aliases)?;
        let compression = CompressionConfig {
            enabled: raw.compression.enabled.unwrap_or(true),
            min_size: units::size("compression.min_size", raw.compression.min_size, "1KiB")?,
            max_size: units::size("compression.max_size", raw.compression.max_size, "16MiB")?,
        };
        let albums = AlbumsConfig {
            reads_per_answer: raw.albums.reads_per_answer.unwrap_or(1000),
            answer_time: units::duration("albums.answer_time", raw.albums.answer_time, "20s")?,
        };
        if compression.min_size > compression.max_size {
            return Err(invalid(
                "compression.min_size",
                "must not be larger than compression.max_size",
            ));
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
            sites,
            compression,
            albums,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn the_memory_tier_is_sized_in_one_key_or_two() {
        let c = |text: &str| Config::parse(text, &no_env).map(|c| c.cache);
        let d = c("").unwrap();
        assert_eq!((d.memory_size, d.memory_max_object), (64 << 20, 256 << 10));
        assert_eq!(d.sendfile_min, 16 << 10);
        let e = c("[cache]\nsendfile_min = \"lots\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("cache.sendfile_min"), "{e}");
        let unsent = c("[cache]\nsendfile = false\n").unwrap();
        assert_eq!(unsent.memory_max_object, 1 << 20, "without sendfile");
        let small = c("[cache]\nmemory_size = \"128KiB\"\n").unwrap();
        assert_eq!(
            small.memory_max_object,
            128 << 10,
            "all of a smaller budget"
        );
        let off = c("[cache]\nmemory_size = \"0B\"\n").unwrap();
        assert_eq!((off.memory_size, off.memory_max_object), (0, 0));
        let e = c("[cache]\nmemory_size = \"1MiB\"\nmemory_max_object = \"2MiB\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("cache.memory_max_object"), "{e}");
    }

    #[test]
    fn the_example_file_parses_with_every_default() {
        let shipped = include_str!("../../config/dropcache.example.toml");
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
        // Its site, CORS and cache rules, uncommented with the account.
        assert_eq!(c.sites.sites[0].name, "www");
        assert_eq!(c.sites.sites[0].hosts, vec!["www.example.com"]);
        assert_eq!(c.sites.sites[0].path.as_deref(), Some("/www"));
        assert_eq!(c.sites.sites[0].html_extension, HtmlExtension::Strip);
        let cors = c.accounts[0].cors.as_ref().expect("the account's cors");
        assert_eq!(cors.origins, vec!["https://gallery.example"]);
        assert_eq!(cors.max_age_secs, 3600);
        assert_eq!(c.cache.rules.len(), 2);
        let mut c = c;
        c.cache.rules.clear();
        let empty = Config::parse("", &no_env).unwrap();
        assert_eq!(empty.sites.unknown_host, c.sites.unknown_host);
        assert_eq!(empty.sites.warm, c.sites.warm);
        assert_eq!(empty.compression, c.compression);
        assert_eq!(empty.albums, c.albums);
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
    fn a_toml_error_says_where_but_not_what_is_there() {
        for (text, line, column) in [
            // The fuzzer's case: the secret on a line TOML cannot read.
            ("[store]\n\nredis+cluster://:sl.SECRET@a:1\"\n", 3, 32),
            ("[server]\nlisten = \"sl.SECRET\" x\n", 2, 22),
            ("[log]\naccess_log = \"sl.SECRET\"\n", 2, 14),
            ("[cache]\nsl.SECRET = 1\n", 2, 1),
        ] {
            let err = Config::parse(text, &|_| None).expect_err(text).to_string();
            assert!(!err.contains("SECRET"), "{err}");
            assert!(
                err.starts_with(&format!("not valid TOML at line {line}, column {column}: ")),
                "{text:?}: {err}"
            );
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
