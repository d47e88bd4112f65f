//! `[cache]`: how long metadata is trusted, where bodies are kept and how much of them, range
//! requests and fills, and serving stale metadata.

use super::raw::RawCache;
use super::units::{duration, size};
use super::{ConfigError, invalid};
use std::path::PathBuf;
use std::time::Duration;

/// `[[cache.rule]]`: a `Cache-Control` for files whose path (under the account's published
/// root, matched case-insensitively; `*` matches anything, `/` included) and content type
/// (`text/html`, or `image/*`) match. The first matching rule wins; none: `cache_control`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheRule {
    /// Lowercase glob, or None for any path.
    pub path: Option<String>,
    /// Lowercase `type/subtype` or `type/*`, or None for any (and for folder listings).
    pub content_type: Option<String>,
    pub cache_control: String,
}

#[derive(Debug, Clone)]
pub struct CacheConfig {
    pub metadata_ttl: Duration,
    pub negative_ttl: Duration,
    pub l1_entries: usize,
    pub cache_control: String,
    pub rules: Vec<CacheRule>,
    /// Where file bodies are kept, by content hash.
    pub dir: PathBuf,
    /// Most bytes of bodies kept on disk.
    pub max_size: u64,
    /// Most bytes of hot small bodies also kept in memory (a tier over the disk: a hit from
    /// it opens no file). 0: none.
    pub memory_size: u64,
    /// Bodies up to this size are kept in memory once read.
    pub memory_max_object: u64,
    /// Hot bodies read from disk whose files are kept open (as nginx's `open_file_cache`), at
    /// most an eighth of the open-files limit. 0: none.
    pub open_files: usize,
    /// Blobs' bytes go from the page cache to the socket with sendfile(2) (plain HTTP/1), as
    /// nginx's `sendfile on`; false: read, then written.
    pub sendfile: bool,
    /// With `sendfile`: a body at least this large held in memory goes by sendfile too (its
    /// blob's file kept open), the memory copy serving TLS and HTTP/2.
    pub sendfile_min: u64,
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

impl TryFrom<RawCache> for CacheConfig {
    type Error = ConfigError;

    fn try_from(c: RawCache) -> Result<Self, ConfigError> {
        let memory_size = size("cache.memory_size", c.memory_size, "64MiB")?;
        let sendfile = c.sendfile.unwrap_or(true);
        // Unset: 256 KiB with sendfile, 1 MiB without (or all of a smaller memory_size). A
        // larger body costs less CPU sent from the page cache by sendfile than copied from
        // memory: a 1 MiB hit 189–193 against 235–288 µs, measured side by side
        // (`tests/bench/vs_nginx.py --other-cache`). Below it, a body held in memory still goes
        // by sendfile from `sendfile_min` on (plain HTTP/1; the copy serves TLS and HTTP/2):
        // on a quiet host a 64 KiB hit cost 14.2 µs that way against 16.0 from memory.
        let default_max = if sendfile { 256 << 10 } else { 1 << 20 };
        let memory_max_object = match c.memory_max_object {
            None => memory_size.min(default_max),
            set => size("cache.memory_max_object", set, "256KiB")?,
        };
        let mut rules = Vec::new();
        for (i, r) in c.rule.into_iter().enumerate() {
            let key = |k: &str| format!("cache.rule[{i}].{k}");
            let value = r
                .cache_control
                .ok_or_else(|| invalid(key("cache_control"), "is required"))?;
            if hyper::header::HeaderValue::from_str(&value).is_err() {
                return Err(invalid(key("cache_control"), "is not a valid header value"));
            }
            if r.path.is_none() && r.content_type.is_none() {
                return Err(invalid(
                    key("path"),
                    "a rule needs a path pattern (\"*.html\", \"/site/assets/*\"), a content_type, or both",
                ));
            }
            if let Some(ct) = &r.content_type {
                let ok = ct.split_once('/').is_some_and(|(t, s)| {
                    !t.is_empty() && !s.is_empty() && !ct.contains(char::is_whitespace)
                });
                if !ok {
                    return Err(invalid(
                        key("content_type"),
                        format!("{ct:?} is not a media type such as \"text/html\" or \"image/*\""),
                    ));
                }
            }
            rules.push(CacheRule {
                path: r.path.map(|p| p.to_lowercase()),
                content_type: r.content_type.map(|t| t.to_ascii_lowercase()),
                cache_control: value,
            });
        }
        let cache = CacheConfig {
            rules,
            metadata_ttl: duration("cache.metadata_ttl", c.metadata_ttl, "30s")?,
            negative_ttl: duration("cache.negative_ttl", c.negative_ttl, "5s")?,
            l1_entries: c.l1_entries.unwrap_or(10_000),
            cache_control: c
                .cache_control
                .unwrap_or_else(|| "public, max-age=0, must-revalidate".into()),
            dir: c.dir.unwrap_or_else(|| PathBuf::from("dropcache-cache")),
            max_size: size("cache.max_size", c.max_size, "1GiB")?,
            memory_size,
            memory_max_object,
            open_files: c.open_files.unwrap_or(256),
            sendfile,
            sendfile_min: size("cache.sendfile_min", c.sendfile_min, "16KiB")?,
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
        if cache.memory_max_object > cache.memory_size {
            return Err(invalid(
                "cache.memory_max_object",
                "must not be larger than cache.memory_size (memory_size = \"0B\": no memory tier)",
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
        Ok(cache)
    }
}
