//! File bodies (DESIGN.md step 6): a content-addressed LRU on disk, filled by one download per
//! content hash and read while it is written; ranges from blobs; pass-through when the cache
//! cannot or should not hold the file.
//!
//! `index` only accounts sizes and names victims, and owns the two tiers over the disk (`memory`:
//! hot small bodies' bytes; `handles`: hot blobs' open files), so what leaves it leaves them;
//! `disk` reads, writes and deletes; `blob` opens what is kept; `fill` starts or joins the one
//! download per hash and runs it; `passthrough` relays Dropbox uncached; `stream` feeds each
//! client; `slice` cuts ranges; `thumb` makes and keeps thumbnails.

mod blob;
pub mod compress;
pub mod disk;
pub mod facts;
pub mod fill;
mod handles;
mod head;
pub mod index;
mod memory;
mod passthrough;
pub mod slice;
pub mod stream;
pub mod thumb;

use crate::account::Account;
use crate::config::CacheConfig;
use crate::http::sendfile::{FileRange, Offer};
use crate::http::{Body, BoxError, CacheStatus};
use crate::upstream::client::Dropbox;
use crate::upstream::error::UpstreamError;
use crate::upstream::types::FileMetadata;
use blob::Found;
use disk::Disk;
use fill::{Fill, State};
use http_body_util::BodyExt;
use index::{Blob, Index};
use std::collections::HashMap;
use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use stream::{Fallback, Source};

/// A blob's mtime is refreshed on use at most this often.
const TOUCH_EVERY: Duration = Duration::from_secs(60);

/// An open body: bytes from `offset` on (to the end of the span asked for).
pub struct Opened {
    pub offset: u64,
    pub stream: Body,
    /// The bytes' own cache status: Hit (a blob), Miss (a fill), Bypass (from Dropbox).
    pub cache: CacheStatus,
    /// `stream`'s bytes as a file range, for sendfile (`http::sendfile`): a blob's.
    pub offer: Option<Offer>,
}

impl Opened {
    /// `start..end` of a blob's bytes held in memory; None if the copy is shorter (its length
    /// is the blob's, whose name includes the size: a mismatch is not served).
    fn from_memory(bytes: &bytes::Bytes, start: u64, end: u64) -> Option<Opened> {
        (end as usize <= bytes.len()).then(|| Opened {
            offset: start,
            stream: crate::http::full(bytes.slice(start as usize..end as usize)),
            cache: CacheStatus::Hit,
            offer: None,
        })
    }
}

/// `span` of a file of `size` bytes, as a start and an end (exclusive).
fn bounds(span: Option<&RangeInclusive<u64>>, size: u64) -> (u64, u64) {
    span.map_or((0, size), |r| (*r.start(), r.end() + 1))
}

/// A part of a multi-range answer, opened when it is reached.
pub type Deferred = std::pin::Pin<Box<dyn Future<Output = Result<Opened, BoxError>> + Send>>;

/// The bodies of a multi-range answer.
pub enum Ranged {
    /// One body covering every part (a blob or a fill).
    Span(Opened),
    /// One upstream Range per part: the first open, the others opened when reached.
    Each { first: Opened, rest: Vec<Deferred> },
}

/// Why a body could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// Dropbox has another version (None: nothing) at the path: refresh the metadata.
    #[error("the file changed in Dropbox")]
    Changed(Option<FileMetadata>),
    #[error(transparent)]
    Upstream(Arc<UpstreamError>),
}

pub struct Bodies {
    dropbox: Arc<Dropbox>,
    disk: Arc<Disk>,
    index: Arc<Mutex<Index>>,
    flights: Arc<Mutex<HashMap<String, Arc<Fill>>>>,
    max_size: u64,
    min_free: u64,
    range_passthrough_above: u64,
    range_fill: bool,
    /// A fill whose readers all left is cancelled below this share done.
    abandon_below: f64,
    /// A client that takes no bytes this long is given up.
    stall: Duration,
    /// Requests that joined a fill another request started.
    coalesced: AtomicU64,
    /// Thumbnails being made.
    thumbs: thumb::Thumbs,
    /// Compressed copies being made, and those not worth making.
    compressions: compress::Compressions,
    /// Blobs' bodies are offered for sendfile (`cache.sendfile`) ...
    sendfile: bool,
    /// ... those held in memory too, from this many bytes (`cache.sendfile_min`) ...
    sendfile_min: u64,
    /// ... and this many bytes were sent that way.
    sendfile_bytes: Arc<AtomicU64>,
}

/// What the body cache holds and does, for `/metrics` and `/admin/cache`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BodyStats {
    pub entries: usize,
    /// Bytes of the blobs kept.
    pub bytes: u64,
    /// Bytes held for fills under way (with `bytes`, never above `max_bytes`).
    pub reserved_bytes: u64,
    pub max_bytes: u64,
    pub evictions: u64,
    /// Bytes and blobs also held in the memory tier (within `bytes`).
    pub memory_bytes: u64,
    pub memory_entries: usize,
    /// Hot blobs' files kept open (`cache.open_files`).
    pub open_files: usize,
    pub fills_in_flight: usize,
    pub coalesced_waiters: u64,
    /// Blobs' bytes sent by sendfile (`cache.sendfile`), not read by us.
    pub sendfile_bytes: u64,
    /// The cache file system's space left to us and its size (None if unreadable).
    pub disk_free_bytes: Option<u64>,
    pub disk_size_bytes: Option<u64>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Bodies {
    /// Opens the cache directory and rebuilds the index from it (temp files are cleaned). A
    /// client that takes no bytes for `stall` is given up (its blob or fill let go).
    pub async fn load(
        config: &CacheConfig,
        stall: Duration,
        dropbox: Arc<Dropbox>,
    ) -> std::io::Result<Bodies> {
        let dir = config.dir.clone();
        let max = config.max_size;
        let memory = (config.memory_size, config.memory_max_object);
        // At most an eighth of the open-files limit: kept handles never starve connections.
        let nofile = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
        let open_files = nofile.map_or(config.open_files, |n| {
            config.open_files.min((n / 8) as usize)
        });
        let sendfile = config.sendfile;
        let (disk, index, sendfile) = tokio::task::spawn_blocking(move || {
            let disk = Disk::open(&dir)?;
            let mut index = Index::new(max)
                .with_memory(memory.0, memory.1)
                .with_open_files(open_files);
            for f in disk.scan()? {
                index.insert_oldest(
                    &f.hash,
                    Blob {
                        size: f.size,
                        verified: false,
                        touched: f.used,
                    },
                );
            }
            for v in index.evict(0) {
                disk.remove(&v);
            }
            let sendfile = sendfile && {
                let probe = crate::http::sendfile::works_from(disk.dir());
                if let Err(e) = &probe {
                    tracing::warn!(error = %e, "sendfile does not work from the cache's files: bodies are read and written instead");
                }
                probe.is_ok()
            };
            Ok::<_, std::io::Error>((disk, index, sendfile))
        })
        .await
        .map_err(std::io::Error::other)??;
        tracing::info!(
            blobs = index.len(),
            bytes = index.total(),
            dir = %disk.dir().display(),
            "body cache ready"
        );
        Ok(Bodies {
            dropbox,
            disk: Arc::new(disk),
            index: Arc::new(Mutex::new(index)),
            flights: Arc::new(Mutex::new(HashMap::new())),
            max_size: config.max_size,
            min_free: config.min_free,
            range_passthrough_above: config.range_passthrough_above,
            range_fill: config.range_fill,
            abandon_below: config.abandoned_fill_completion,
            stall,
            coalesced: AtomicU64::new(0),
            thumbs: thumb::Thumbs::default(),
            compressions: compress::Compressions::default(),
            sendfile,
            sendfile_min: config.sendfile_min,
            sendfile_bytes: Arc::default(),
        })
    }

    /// Blobs and their bytes in the cache (fills under way not counted).
    pub fn usage(&self) -> (usize, u64) {
        let ix = lock(&self.index);
        (ix.len(), ix.total() - ix.reserved())
    }

    /// The cache's figures now (one statvfs of the cache directory).
    pub fn stats(&self) -> BodyStats {
        let (entries, bytes, reserved, max_bytes, evictions, memory, open_files) = {
            let ix = lock(&self.index);
            let (total, reserved) = (ix.total(), ix.reserved());
            let memory = ix.memory_usage();
            (
                ix.len(),
                total - reserved,
                reserved,
                ix.max(),
                ix.evicted(),
                memory,
                ix.open_files(),
            )
        };
        let fs = self.disk.space().ok();
        BodyStats {
            entries,
            bytes,
            reserved_bytes: reserved,
            max_bytes,
            evictions,
            memory_bytes: memory.0,
            memory_entries: memory.1,
            open_files,
            fills_in_flight: lock(&self.flights).len(),
            coalesced_waiters: self.coalesced.load(Ordering::Relaxed),
            sendfile_bytes: self.sendfile_bytes.load(Ordering::Relaxed),
            disk_free_bytes: fs.map(|(free, _)| free),
            disk_size_bytes: fs.map(|(_, size)| size),
        }
    }

    /// Drops the blob `name` (a purge) from the index and the disk; readers that have it open
    /// finish (an open file outlives its name). Whether the cache had it.
    pub async fn purge(&self, name: &str) -> bool {
        let removed = lock(&self.index).remove(name).is_some();
        if removed {
            let disk = self.disk.clone();
            let name = name.to_owned();
            let _ = tokio::task::spawn_blocking(move || disk.remove(&name)).await;
        }
        removed
    }

    /// `span` of `f` (the whole file when None) from the memory tier, if a blob named by its
    /// content hash is held there: at once, and with no Dropbox path (a hot hit builds none).
    /// None: `open` it.
    pub fn open_in_memory(
        &self,
        f: &FileMetadata,
        span: Option<&RangeInclusive<u64>>,
    ) -> Option<Opened> {
        let hash = hashed_name(f)?;
        self.memory_span(hash, bounds(span, f.size))
    }

    /// The span `(start, end)` of the blob `hash` from memory, offered for sendfile from its
    /// kept file from `sendfile_min` up.
    fn memory_span(&self, hash: &str, (start, end): (u64, u64)) -> Option<Opened> {
        let bytes = self.in_memory(hash)?;
        let opened = match self.sendfile && end - start >= self.sendfile_min {
            true => self.offered_from_memory(hash, &bytes, start, end),
            false => None,
        };
        opened.or_else(|| Opened::from_memory(&bytes, start, end))
    }

    /// Opens the body of `f` at `path` (a Dropbox path under `account`'s root), covering
    /// `span` (the whole file when None), for a caller that has tried `open_in_memory`.
    pub async fn open(
        &self,
        account: &Arc<Account>,
        path: &str,
        f: &FileMetadata,
        span: Option<RangeInclusive<u64>>,
    ) -> Result<Opened, OpenError> {
        let Some(hash) = blob_name(account, path, f) else {
            return Box::pin(self.passthrough(account, path, f, span)).await;
        };
        // A link's file is named from its path: `open_in_memory` could not look for it.
        if hashed_name(f).is_none()
            && let Some(opened) = self.memory_span(&hash, bounds(span.as_ref(), f.size))
        {
            return Ok(opened);
        }
        // Boxed, so a hit's future stays small (this one is kilobytes, moved with its parents).
        Box::pin(self.open_beyond_memory(account, path, f, span, &hash)).await
    }

    /// `open`, from disk, a fill or Dropbox, for the blob `hash`.
    async fn open_beyond_memory(
        &self,
        account: &Arc<Account>,
        path: &str,
        f: &FileMetadata,
        span: Option<RangeInclusive<u64>>,
        hash: &str,
    ) -> Result<Opened, OpenError> {
        let (start, end) = bounds(span.as_ref(), f.size);
        let fallback = || Fallback {
            dropbox: self.dropbox.clone(),
            account: account.clone(),
            path: path.to_owned(),
            rev: f.rev.clone(),
            stall: self.stall,
        };
        // 1. a blob (`open` has looked in memory)
        match self.blob_beyond_memory(hash).await {
            // (A copy shorter than the span goes to Dropbox.)
            Found::Memory(bytes) => {
                return match Opened::from_memory(&bytes, start, end) {
                    Some(opened) => Ok(opened),
                    None => self.passthrough(account, path, f, span).await,
                };
            }
            Found::Blob(Source::Blob { file, _pin: pin }) if self.sendfile => {
                return Ok(self.offered(file, pin, start, end, fallback()));
            }
            Found::Blob(file) => {
                let stream = stream::spawn(file, start, end, fallback());
                return Ok(Opened {
                    offset: start,
                    stream: stream.boxed(),
                    cache: CacheStatus::Hit,
                    offer: None,
                });
            }
            // Kept, but not readable now (no file descriptor left, say): from Dropbox.
            Found::Unavailable => return self.passthrough(account, path, f, span).await,
            Found::Absent => {}
        }
        // 2. a large cold file asked for a range: straight to Dropbox (and maybe fill too)
        if span.is_some() && f.size > self.range_passthrough_above {
            if self.range_fill {
                // A background fill, followed by no one: it always finishes.
                drop(self.fill(account, path, f, hash, false).await);
            }
            return self.passthrough(account, path, f, span).await;
        }
        // 3. a fill (joined or started), followed as it grows. One started for a range is not
        // cancelled when its reader leaves: a range's reader always leaves early.
        let whole = span.is_none();
        let Some(reader) = self.fill(account, path, f, hash, whole).await else {
            return self.passthrough(account, path, f, span).await;
        };
        let mut progress = reader.fill.progress.clone();
        let state = progress
            .wait_for(|p| !matches!(p.state, State::Opening))
            .await
            .map(|p| p.state.clone())
            .unwrap_or(State::CacheFailed);
        match state {
            // SECURITY: what a fill learns of its path is about its owner's path. A joined fill
            // of another account (or path) that met a change says nothing of ours: look ours
            // up again.
            State::Changed(newer) if reader.fill.is_of(account, path) => {
                Err(OpenError::Changed(Some(*newer)))
            }
            State::Changed(_) => Err(OpenError::Changed(None)),
            State::Failed(e) if matches!(*e, UpstreamError::NotFound | UpstreamError::NotFile) => {
                Err(OpenError::Changed(None))
            }
            // Another account's failure (its token, its rate limit) is not ours: ask Dropbox
            // with our own credentials.
            State::Failed(_) if !reader.fill.is_of(account, path) => {
                self.passthrough(account, path, f, span).await
            }
            State::Failed(e) => Err(OpenError::Upstream(e)),
            State::CacheFailed | State::Cancelled => self.passthrough(account, path, f, span).await,
            State::Running | State::Done | State::Opening => {
                let stream = stream::spawn(Source::Fill(reader), start, end, fallback());
                Ok(Opened {
                    offset: start,
                    stream: stream.boxed(),
                    cache: CacheStatus::Miss,
                    offer: None,
                })
            }
        }
    }

    /// Bytes `start..end` of a blob's open `file`, offered for sendfile; `pin` held until
    /// they are sent, and counted in `sendfile_bytes` as they go.
    fn offer(
        &self,
        file: Arc<std::fs::File>,
        pin: stream::PinGuard,
        start: u64,
        end: u64,
    ) -> Offer {
        Offer::new(FileRange {
            file,
            start,
            end,
            keep: Box::new(pin),
            sent: self.sendfile_bytes.clone(),
        })
    }

    /// Bytes `start..end` of a blob held in memory, offered to the connection for sendfile
    /// from its file kept open (no copy into the socket: a 64 KiB hit's CPU 14.2 µs against
    /// 16.0, measured); if the connection does not take them (TLS, HTTP/2), the memory copy
    /// is the body. None if the file is not kept open or the copy is short.
    fn offered_from_memory(
        &self,
        hash: &str,
        bytes: &bytes::Bytes,
        start: u64,
        end: u64,
    ) -> Option<Opened> {
        let body = bytes.get(start as usize..end as usize)?;
        let (file, pinned) = {
            let mut ix = lock(&self.index);
            let file = ix.open_file(hash)?;
            (file, ix.pin(hash))
        };
        Some(Opened {
            offset: start,
            stream: crate::http::full(bytes.slice_ref(body)),
            cache: CacheStatus::Hit,
            offer: Some(self.offer(file, self.pin_guard(pinned), start, end)),
        })
    }

    /// Bytes `start..end` of a blob on disk, offered to the connection for sendfile: if it
    /// does not take them (TLS, HTTP/2), the body reads them itself when first polled.
    fn offered(
        &self,
        file: Arc<std::fs::File>,
        pin: stream::PinGuard,
        start: u64,
        end: u64,
        fallback: Fallback,
    ) -> Opened {
        let offer = self.offer(file, pin, start, end);
        let taken = offer.clone();
        let stream = slice::Lazy::new(
            end - start,
            Box::pin(async move {
                let range = taken.take().ok_or("the file range was sent by sendfile")?;
                let pin = *range
                    .keep
                    .downcast::<stream::PinGuard>()
                    .map_err(|_| "a blob's range keeps its pin")?;
                let source = Source::Blob {
                    file: range.file,
                    _pin: pin,
                };
                Ok(stream::spawn(source, start, end, fallback).boxed())
            }),
        );
        Opened {
            offset: start,
            stream: stream.boxed(),
            cache: CacheStatus::Hit,
            offer: Some(offer),
        }
    }

    /// Brings `f`'s blob into the cache with a fill no client follows, and waits until it is
    /// in and verified: true when it is (or already was); false when the cache cannot take it
    /// or the fill did not finish (the version changed, Dropbox failed).
    pub async fn warm(&self, account: &Arc<Account>, path: &str, f: &FileMetadata) -> bool {
        let Some(hash) = blob_name(account, path, f) else {
            return false;
        };
        if self.in_memory(&hash).is_some() {
            return true;
        }
        match self.blob_beyond_memory(&hash).await {
            Found::Memory(_) | Found::Blob(_) => return true,
            Found::Unavailable => return false,
            Found::Absent => {}
        }
        let Some(reader) = self.fill(account, path, f, &hash, false).await else {
            return false;
        };
        let mut progress = reader.fill.progress.clone();
        drop(reader);
        progress
            .wait_for(|p| !matches!(p.state, State::Opening | State::Running))
            .await
            .is_ok_and(|p| matches!(p.state, State::Done))
    }

    /// Opens the parts of a multi-range answer: one body covering them all (from a blob or a
    /// fill), or, for a large file the cache does not hold, one upstream Range per part, so no
    /// byte between the parts comes from Dropbox. The first part is asked now (a change of
    /// version is found before answering); each later one when the answer reaches it, so no
    /// download waits open while a slow client reads an earlier part.
    pub async fn open_parts(
        &self,
        account: &Arc<Account>,
        path: &str,
        f: &FileMetadata,
        parts: &[RangeInclusive<u64>],
    ) -> Result<Ranged, OpenError> {
        let (Some(first), Some(last)) = (parts.first(), parts.last()) else {
            return Err(OpenError::Upstream(Arc::new(UpstreamError::Unexpected {
                status: 416,
            })));
        };
        let span = *first.start()..=*last.end();
        let hash = blob_name(account, path, f);
        let cold_and_large = f.size > self.range_passthrough_above
            && hash
                .as_deref()
                .is_some_and(|h| !lock(&self.index).contains(h));
        if !cold_and_large {
            return Ok(Ranged::Span(self.open(account, path, f, Some(span)).await?));
        }
        if self.range_fill
            && let Some(hash) = &hash
        {
            drop(self.fill(account, path, f, hash, false).await);
        }
        let first = self
            .passthrough(account, path, f, Some(first.clone()))
            .await?;
        let rest = parts[1..]
            .iter()
            .map(|r| {
                let (dropbox, account, path, rev, r) = (
                    self.dropbox.clone(),
                    account.clone(),
                    path.to_owned(),
                    f.rev.clone(),
                    r.clone(),
                );
                let open: Deferred = Box::pin(async move {
                    Ok(passthrough::passthrough(&dropbox, &account, &path, &rev, Some(r)).await?)
                });
                open
            })
            .collect();
        Ok(Ranged::Each { first, rest })
    }
}

/// The blob named by `f`'s content hash, if it has a valid one.
fn hashed_name(f: &FileMetadata) -> Option<&str> {
    f.content_hash
        .as_deref()
        .filter(|h| disk::is_hashed(h) && disk::is_blob_name(h))
}

/// The blob that keeps a file's bytes: its content hash; for a shared link's file, which has
/// none, a name derived from the link, the path in it and the rev (checked by size).
pub fn blob_name<'f>(
    account: &Account,
    path: &str,
    f: &'f FileMetadata,
) -> Option<std::borrow::Cow<'f, str>> {
    if let Some(hash) = hashed_name(f) {
        // Borrowed: a hit names its blob without a copy.
        return Some(hash.into());
    }
    let link = account.link()?;
    Some(
        disk::derived_name(&[
            "link file",
            link.url.expose(),
            &path.to_lowercase(),
            &f.rev,
            &f.size.to_string(),
        ])
        .into(),
    )
}
