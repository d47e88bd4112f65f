//! Warm on change: when the change feed reads new versions of files under a site, their bodies
//! are fetched into the cache before the cache switches to the new metadata
//! (`meta::feed::Prefetch`), so the old version is served until the new one is verified, and
//! the first visitor after an edit gets a `HIT`. Bounded: `sites.warm_concurrency` files at
//! once, `sites.warm_bytes_per_minute`, and the feed waits at most `sites.warm_wait`.

use super::album::{Albums, is_image};
use crate::account::Account;
use crate::account::sites::Sites;
use crate::body::{Bodies, blob_name};
use crate::config::{CompressionConfig, WarmConfig};
use crate::http::encoding::{Encoding, compressible};
use crate::http::representation::content_type;
use crate::meta::feed::Prefetch;
use crate::upstream::types::{FileMetadata, Metadata};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct Warmer {
    sites: Arc<Sites>,
    albums: Arc<Albums>,
    bodies: Arc<Bodies>,
    config: WarmConfig,
    compression: CompressionConfig,
    /// The current minute's start and the bytes taken from its budget.
    spent: Mutex<(Instant, u64)>,
    /// Files fetched at once, over every batch (detached jobs included).
    slots: Arc<tokio::sync::Semaphore>,
    pub stats: Arc<WarmStats>,
}

/// What warming has done, for `/admin/sites`.
#[derive(Debug, Default, serde::Serialize)]
pub struct WarmStats {
    pub files: AtomicU64,
    pub bytes: AtomicU64,
    /// Files left cold: over the minute's budget, not cacheable, or a failed fetch.
    pub skipped: AtomicU64,
    /// Photos of albums whose facts were read ahead.
    pub facts: AtomicU64,
}

impl Warmer {
    pub fn new(
        sites: Arc<Sites>,
        albums: Arc<Albums>,
        bodies: Arc<Bodies>,
        config: WarmConfig,
        compression: CompressionConfig,
    ) -> Warmer {
        Warmer {
            sites,
            albums,
            bodies,
            slots: Arc::new(tokio::sync::Semaphore::new(config.concurrency)),
            config,
            compression,
            spent: Mutex::new((Instant::now(), 0)),
            stats: Arc::default(),
        }
    }

    /// The files of `deltas` a site of `account` serves (not hidden names, but the rule
    /// files, which are read on the next request).
    fn wanted<'d>(&self, account: &Account, deltas: &'d [Metadata]) -> Vec<&'d FileMetadata> {
        let root = account.root.to_lowercase();
        let folders: Vec<String> = self
            .sites
            .all()
            .iter()
            .filter(|s| s.config.account == account.alias)
            .map(|s| format!("{root}{}/", s.config.folder.to_lowercase()))
            .collect();
        if folders.is_empty() {
            return Vec::new();
        }
        deltas
            .iter()
            .filter_map(|m| match m {
                Metadata::File(f) if f.is_downloadable => Some(f),
                _ => None,
            })
            .filter(|f| {
                let Some(path) = f.path_lower.as_deref() else {
                    return false;
                };
                folders.iter().any(|dir| {
                    path.strip_prefix(dir.as_str()).is_some_and(|rel| {
                        rel == "_redirects"
                            || rel == "_headers"
                            || !rel.split('/').any(crate::account::sites::hidden_name)
                    })
                })
            })
            .collect()
    }

    /// Takes `n` bytes from this minute's budget, if they fit.
    fn take(&self, n: u64) -> bool {
        let mut spent = self.spent.lock().unwrap_or_else(|p| p.into_inner());
        if spent.0.elapsed() >= Duration::from_secs(60) {
            *spent = (Instant::now(), 0);
        }
        let fits = spent.1 + n <= self.config.bytes_per_minute;
        if fits {
            spent.1 += n;
        }
        fits
    }

    /// Fetches `files` until `deadline`; what is not done by then goes on in the background
    /// (its visitors join the fills), not cancelled.
    async fn warm_all(
        &self,
        account: &Arc<Account>,
        files: Vec<&FileMetadata>,
        deadline: tokio::time::Instant,
    ) -> bool {
        let mut jobs = tokio::task::JoinSet::new();
        for f in files {
            let path = f.path_display.clone().unwrap_or_default();
            let Some(name) = blob_name(account, &path, f).map(std::borrow::Cow::into_owned) else {
                continue;
            };
            if !self.take(f.size) {
                self.stats.skipped.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(alias = %account.alias, size = f.size,
                    "warm on change: over this minute's budget, left cold");
                continue;
            }
            let c = &self.compression;
            let compress = c.enabled
                && (c.min_size..=c.max_size).contains(&f.size)
                && compressible(&content_type(&f.name));
            let (bodies, account, f, slots, stats) = (
                self.bodies.clone(),
                account.clone(),
                f.clone(),
                self.slots.clone(),
                self.stats.clone(),
            );
            jobs.spawn(async move {
                let _slot = slots.acquire_owned().await;
                let warmed = bodies.warm(&account, &path, &f).await;
                if warmed {
                    // Fetched for this account, with its credentials: its own bytes ...
                    account.used.insert(&name);
                    // ... and its compressed copies, made from them.
                    if compress {
                        for enc in Encoding::ALL {
                            bodies.compress_now(&name, enc).await;
                            account.used.insert(&Bodies::compressed_name(&name, enc));
                        }
                    }
                    stats.files.fetch_add(1, Ordering::Relaxed);
                    stats.bytes.fetch_add(f.size, Ordering::Relaxed);
                } else {
                    stats.skipped.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        loop {
            match tokio::time::timeout_at(deadline, jobs.join_next()).await {
                Ok(None) => return true,
                Ok(Some(_)) => {}
                Err(_) => {
                    jobs.detach_all();
                    return false;
                }
            }
        }
    }
}

impl Warmer {
    /// Starts reading the facts of the new photos in `deltas` whose folder was asked for as an
    /// album lately, within the budget (a file's first bytes each).
    fn warm_facts(&self, account: &Arc<Account>, deltas: &[Metadata]) {
        let root = account.root.to_lowercase();
        let mut jobs = tokio::task::JoinSet::new();
        for m in deltas {
            let Metadata::File(f) = m else { continue };
            let (Some(hash), Some(lower)) = (f.content_hash.as_deref(), f.path_lower.as_deref())
            else {
                continue;
            };
            let Some(rel) = lower.strip_prefix(root.as_str()) else {
                continue;
            };
            let folder = &rel[..rel.rfind('/').unwrap_or(0)];
            if !is_image(&f.name)
                || self.albums.knows(hash)
                || !self.albums.was_viewed(&account.alias, folder)
            {
                continue;
            }
            if !self.take(crate::body::facts::HEAD_BYTES.min(f.size)) {
                self.stats.skipped.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let (albums, account, f, slots, stats) = (
                self.albums.clone(),
                account.clone(),
                f.clone(),
                self.slots.clone(),
                self.stats.clone(),
            );
            jobs.spawn(async move {
                let _slot = slots.acquire_owned().await;
                let path = f.path_display.clone().unwrap_or_default();
                if albums.facts(&account, &path, &f).await.is_some() {
                    stats.facts.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        // Facts are kept by the new content hash: they need not come before the switch, and
        // the switch does not wait for them (an album asked meanwhile joins the same reads).
        jobs.detach_all();
    }
}

impl Prefetch for Warmer {
    fn before_switch<'a>(
        &'a self,
        account: &'a Arc<Account>,
        deltas: &'a [Metadata],
    ) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>> {
        Box::pin(async move {
            if self.config.bytes_per_minute == 0 {
                return;
            }
            // Photos of folders seen as albums: their facts, so the next album answer asks
            // Dropbox nothing (a changed photo has a new content hash, and new facts).
            self.warm_facts(account, deltas);
            let files = self.wanted(account, deltas);
            if files.is_empty() {
                return;
            }
            let n = files.len();
            let started = Instant::now();
            // The switch waits at most `wait`: a slow fetch goes on in the background and its
            // visitors join it.
            let deadline = tokio::time::Instant::now() + self.config.wait;
            if !self.warm_all(account, files, deadline).await {
                tracing::info!(alias = %account.alias, files = n,
                    "warm on change: switching before every body is in");
            } else {
                tracing::debug!(alias = %account.alias, files = n, took = ?started.elapsed(),
                    "warm on change: bodies in before the switch");
            }
        })
    }
}
