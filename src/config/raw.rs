//! The raw serde mirror of the TOML file (`deny_unknown_fields`): keys as written, before any
//! default or check.

use serde::Deserialize;
use std::path::PathBuf;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    #[serde(default)]
    pub(super) server: RawServer,
    #[serde(default)]
    pub(super) dropbox: RawDropbox,
    #[serde(default)]
    pub(super) store: RawStore,
    #[serde(default)]
    pub(super) cache: RawCache,
    #[serde(default)]
    pub(super) http: RawHttp,
    #[serde(default)]
    pub(super) feed: RawFeed,
    #[serde(default)]
    pub(super) admin: RawAdmin,
    #[serde(default)]
    pub(super) oauth: RawOauth,
    #[serde(default, rename = "account")]
    pub(super) accounts: Vec<RawAccount>,
    #[serde(default, rename = "shared_link")]
    pub(super) shared_links: Vec<RawSharedLink>,
    #[serde(default)]
    pub(super) sharing: RawSharing,
    #[serde(default, rename = "site")]
    pub(super) site: Vec<RawSite>,
    #[serde(default)]
    pub(super) sites: RawSites,
    #[serde(default)]
    pub(super) compression: RawCompression,
    #[serde(default)]
    pub(super) albums: RawAlbums,
    #[serde(default)]
    pub(super) metrics: RawMetrics,
    #[serde(default)]
    pub(super) log: RawLog,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSite {
    pub(super) name: String,
    pub(super) account: String,
    #[serde(default)]
    pub(super) folder: String,
    #[serde(default)]
    pub(super) hosts: Vec<String>,
    pub(super) path: Option<String>,
    pub(super) html_extension: Option<String>,
    pub(super) cors: Option<RawCors>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCors {
    #[serde(default)]
    pub(super) allow_origins: Vec<String>,
    pub(super) allow_methods: Option<Vec<String>>,
    pub(super) allow_headers: Option<Vec<String>>,
    pub(super) expose_headers: Option<Vec<String>>,
    pub(super) max_age: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCacheRule {
    pub(super) path: Option<String>,
    pub(super) content_type: Option<String>,
    pub(super) cache_control: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAlbums {
    pub(super) reads_per_answer: Option<usize>,
    pub(super) answer_time: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCompression {
    pub(super) enabled: Option<bool>,
    pub(super) min_size: Option<String>,
    pub(super) max_size: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSites {
    pub(super) unknown_host: Option<String>,
    pub(super) warm_bytes_per_minute: Option<String>,
    pub(super) warm_concurrency: Option<usize>,
    pub(super) warm_wait: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSharing {
    pub(super) by_url: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMetrics {
    pub(super) listen: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLog {
    pub(super) level: Option<String>,
    pub(super) format: Option<String>,
    pub(super) access_log: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAdmin {
    pub(super) token: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawOauth {
    pub(super) redirect_uri: Option<String>,
    pub(super) secret_key: Option<String>,
    pub(super) state_ttl: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSharedLink {
    pub(super) name: String,
    pub(super) url: String,
    pub(super) password: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawServer {
    pub(super) listen: Option<String>,
    pub(super) trusted_proxies: Option<Vec<String>>,
    pub(super) shutdown_timeout: Option<String>,
    pub(super) ready_requires_store: Option<bool>,
    pub(super) header_read_timeout: Option<String>,
    pub(super) keepalive_timeout: Option<String>,
    pub(super) body_read_timeout: Option<String>,
    pub(super) max_connections: Option<usize>,
    pub(super) http2_max_streams: Option<u32>,
    pub(super) http2_keepalive_interval: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDropbox {
    pub(super) api_url: Option<String>,
    pub(super) content_url: Option<String>,
    pub(super) notify_url: Option<String>,
    pub(super) oauth_url: Option<String>,
    pub(super) authorize_url: Option<String>,
    pub(super) app_key: Option<String>,
    pub(super) app_secret: Option<String>,
    pub(super) ca_file: Option<PathBuf>,
    pub(super) connect_timeout: Option<String>,
    pub(super) read_timeout: Option<String>,
    pub(super) max_retries: Option<u32>,
    pub(super) rate_limit_budget: Option<String>,
    pub(super) max_concurrent: Option<usize>,
    pub(super) max_concurrent_per_account: Option<usize>,
    pub(super) refresh_ahead: Option<String>,
}

/// One URL, or a list of cluster seed nodes.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum RawRedisUrl {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStore {
    pub(super) redis_url: Option<RawRedisUrl>,
    pub(super) path: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCache {
    pub(super) metadata_ttl: Option<String>,
    pub(super) negative_ttl: Option<String>,
    pub(super) l1_entries: Option<usize>,
    pub(super) cache_control: Option<String>,
    pub(super) dir: Option<PathBuf>,
    pub(super) memory_size: Option<String>,
    pub(super) memory_max_object: Option<String>,
    pub(super) open_files: Option<usize>,
    pub(super) sendfile: Option<bool>,
    pub(super) sendfile_min: Option<String>,
    pub(super) max_size: Option<String>,
    pub(super) min_free: Option<String>,
    pub(super) range_passthrough_above: Option<String>,
    pub(super) range_fill: Option<bool>,
    pub(super) abandoned_fill_completion: Option<f64>,
    pub(super) stale_if_error: Option<String>,
    pub(super) stale_while_revalidate: Option<String>,
    #[serde(default)]
    pub(super) rule: Vec<RawCacheRule>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFeed {
    pub(super) enabled: Option<bool>,
    pub(super) longpoll_timeout: Option<String>,
    pub(super) lease_ttl: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHttp {
    pub(super) max_ranges: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAccount {
    pub(super) alias: String,
    #[serde(default)]
    pub(super) root: String,
    pub(super) access_token: Option<String>,
    pub(super) refresh_token: Option<String>,
    pub(super) cors: Option<RawCors>,
}
