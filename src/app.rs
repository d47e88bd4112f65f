//! The application: every component built once from a validated `Config`, and `serve`, which
//! runs the proxy on an already-bound listener.

use crate::account::Accounts;
use crate::account::links::Links;
use crate::body::Bodies;
use crate::config::Config;
use crate::meta::feed::Feeds;
use crate::meta::{Freshness, MetaCache};
use crate::metrics::Metrics;
use crate::proxy::Proxy;
use crate::store::{Store, StoreError};
use crate::telemetry::LogControl;
use crate::upstream::client::Dropbox;
use crate::upstream::retry::RetryPolicy;
use crate::upstream::transport::{CaError, http_client};
use hyper::header::HeaderValue;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::sync::OnceLock;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("cannot open the store: {0}")]
    Store(#[from] StoreError),
    #[error(transparent)]
    Ca(#[from] CaError),
    #[error("cannot open the body cache: {0}")]
    Cache(#[source] std::io::Error),
}

pub struct App {
    pub config: Config,
    pub accounts: Arc<Accounts>,
    pub dropbox: Arc<Dropbox>,
    /// The read path, with its shares of the components below.
    pub proxy: Proxy,
    pub meta: Arc<MetaCache>,
    /// The change feed's tasks (no followers when `feed.enabled` is false) and the listener of
    /// other instances.
    pub feeds: Feeds,
    pub bodies: Arc<Bodies>,
    pub store: Store,
    /// This process among the instances sharing a store.
    pub instance: String,
    pub metrics: Metrics,
    /// The running log filter, when this process installed the subscriber (`serve`).
    pub log: OnceLock<LogControl>,
}

impl App {
    /// Opens the store, builds the Dropbox client and caches, records the accounts.
    pub async fn build(config: Config) -> Result<Arc<App>, AppError> {
        let files = raise_open_files();
        let conns = config.server.max_connections as u64;
        // A client may hold its socket, a blob and a connection to Dropbox at once.
        if let Some(files) = files.filter(|f| conns.saturating_mul(3) > *f) {
            tracing::warn!(
                files,
                max_connections = conns,
                "server.max_connections is high for the open-files limit: at the limit, blobs \
                 are served from Dropbox and new connections wait"
            );
        }
        let d = &config.dropbox;
        let http = http_client(d.connect_timeout, d.ca_file.as_deref())?;
        let policy = RetryPolicy {
            max_retries: d.max_retries,
            rate_limit_budget: d.rate_limit_budget,
            ..RetryPolicy::default()
        };
        let metrics = Metrics::new();
        let dropbox = Arc::new(
            Dropbox::new(http, d.endpoints.clone(), policy, d.read_timeout)
                .with_limits(d.max_concurrent, d.refresh_ahead)
                .with_metrics(metrics.upstream.clone()),
        );
        let store = Store::open(&config.store).await?;
        let bodies = Bodies::load(
            &config.cache,
            config.server.keepalive_timeout,
            dropbox.clone(),
        )
        .await
        .map_err(AppError::Cache)
        .map(Arc::new)?;
        let accounts = Arc::new(Accounts::from_config(&config));
        accounts.record(&store).await?;
        let linked = accounts.load_linked(&store).await?;
        if linked > 0 {
            tracing::info!(linked, "linked accounts loaded");
        }
        let c = &config.cache;
        let meta = Arc::new(MetaCache::new(
            store.clone(),
            dropbox.clone(),
            NonZeroUsize::new(c.l1_entries).unwrap_or(NonZeroUsize::MIN),
            Freshness {
                ttl: c.metadata_ttl,
                negative_ttl: c.negative_ttl,
                stale_if_error: c.stale_if_error,
                stale_while_revalidate: c.stale_while_revalidate,
            },
        ));
        let instance = hex::encode(rand::random::<[u8; 8]>());
        let sites = Arc::new(crate::account::sites::Sites::from_config(&config.sites));
        let albums = Arc::new(crate::proxy::album::Albums::new(
            config.albums.clone(),
            bodies.clone(),
            store.clone(),
        ));
        let warmer = Arc::new(crate::proxy::warm::Warmer::new(
            sites.clone(),
            albums.clone(),
            bodies.clone(),
            config.sites.warm.clone(),
            config.compression.clone(),
        ));
        let prefetch = Some(warmer.clone() as Arc<dyn crate::meta::feed::Prefetch>);
        let feeds = Feeds::start(
            meta.clone(),
            dropbox.clone(),
            store.clone(),
            accounts.clone(),
            &config.feed,
            instance.clone(),
            prefetch,
        );
        let cache_control = HeaderValue::from_str(&c.cache_control)
            .expect("config validation checked cache.cache_control");
        let proxy = Proxy {
            accounts: accounts.clone(),
            links: Links::from_config(&config),
            sites,
            warmer,
            meta: meta.clone(),
            bodies: bodies.clone(),
            cache_control,
            cache_rules: c
                .rules
                .iter()
                .map(|r| {
                    let v = HeaderValue::from_str(&r.cache_control)
                        .expect("config validation checked cache.rule's values");
                    (r.clone(), v)
                })
                .collect(),
            cors: config
                .accounts
                .iter()
                .filter_map(|a| Some((a.alias.clone(), a.cors.clone()?)))
                .collect(),
            compression: config.compression.clone(),
            albums,
            coded_listings: std::sync::Mutex::new(lru::LruCache::new(
                NonZeroUsize::new(crate::proxy::CODED_LISTINGS).expect("not zero"),
            )),
            max_ranges: config.max_ranges,
        };
        Ok(Arc::new(App {
            proxy,
            accounts,
            dropbox,
            meta,
            feeds,
            bodies,
            store,
            instance,
            metrics,
            log: OnceLock::new(),
            config,
        }))
    }
}

/// The open-files limit (soft, hard); None where unlimited or unreadable.
pub fn open_files_limit() -> (Option<u64>, Option<u64>) {
    let l = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    (l.current, l.maximum)
}

/// Raises the soft open-files limit to the hard one (as nginx's `worker_rlimit_nofile`): every
/// connection and every blob read holds a descriptor. Returns the soft limit now.
pub fn raise_open_files() -> Option<u64> {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let l = getrlimit(Resource::Nofile);
    if l.current != l.maximum {
        let raised = Rlimit {
            current: l.maximum,
            maximum: l.maximum,
        };
        if let Err(e) = setrlimit(Resource::Nofile, raised) {
            tracing::warn!(error = %e, "cannot raise the open-files limit");
        }
    }
    open_files_limit().0
}
