//! File bodies (DESIGN.md step 6): a content-addressed LRU on disk, filled by one download per
//! content hash and read while it is written; ranges from blobs; pass-through when the cache
//! cannot or should not hold the file.
//!
//! `index` only accounts sizes and names victims; `disk` reads, writes and deletes; `fill` runs
//! the one download per hash; `stream` feeds each client; `slice` cuts ranges.

pub mod disk;
pub mod fill;
pub mod index;
pub mod slice;
pub mod stream;
pub mod thumb;

use crate::account::Account;
use crate::config::CacheConfig;
use crate::http::{Body, BoxError, CacheStatus};
use crate::upstream::client::Dropbox;
use crate::upstream::content_hash::ContentHasher;
use crate::upstream::error::UpstreamError;
use crate::upstream::types::FileMetadata;
use bytes::Bytes;
use disk::{Disk, secs};
use fill::{Fill, Reader, Reservation, State};
use http_body_util::BodyExt;
use hyper::StatusCode;
use index::{Blob, Index};
use std::collections::HashMap;
use std::io::Read;
use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};
use stream::{Fallback, PinGuard, Source};

/// A blob's mtime is refreshed on use at most this often.
const TOUCH_EVERY: Duration = Duration::from_secs(60);

/// An open body: bytes from `offset` on (to the end of the span asked for).
pub struct Opened {
    pub offset: u64,
    pub stream: Body,
    /// The bytes' own cache status: Hit (a blob), Miss (a fill), Bypass (from Dropbox).
    pub cache: CacheStatus,
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

/// What the cache has under a blob name.
enum Found {
    Blob(Source),
    Absent,
    /// Kept, but it cannot be read now (a transient failure).
    Unavailable,
}

/// What opening a blob on disk found.
enum Verdict {
    Intact(std::fs::File),
    /// Not what its name says: delete it (the reason, for the log).
    Wrong(&'static str),
    /// Could not be read now; say nothing of its bytes.
    Unreadable(std::io::Error),
}

/// Opens the blob `name`, recorded as `size` bytes; unless `verified`, checks its size and
/// hashes it first. Blocking.
fn open_blob(disk: &Disk, name: &str, size: u64, verified: bool, touch: bool) -> Verdict {
    let path = disk.blob_path(name);
    let mut file = match std::fs::File::options().read(true).write(touch).open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Verdict::Wrong("missing"),
        Err(e) => return Verdict::Unreadable(e),
    };
    // A blob this process wrote was checked then; one found at start-up is checked once.
    if !verified {
        match file.metadata() {
            Ok(m) if m.len() != size => return Verdict::Wrong("not the size recorded"),
            Ok(_) => {}
            Err(e) => return Verdict::Unreadable(e),
        }
    }
    if !verified && disk::is_hashed(name) {
        // Found on disk at start-up: hash it once before trusting it.
        let mut hasher = ContentHasher::new();
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            match file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => hasher.update(&buf[..n]),
                Err(e) => return Verdict::Unreadable(e),
            }
        }
        if hasher.finish() != name {
            return Verdict::Wrong("does not hash to its name");
        }
    }
    if touch {
        let _ = file.set_modified(SystemTime::now());
    }
    Verdict::Intact(file)
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
    pub fills_in_flight: usize,
    pub coalesced_waiters: u64,
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
        let (disk, index) = tokio::task::spawn_blocking(move || {
            let disk = Disk::open(&dir)?;
            let mut index = Index::new(max);
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
            Ok::<_, std::io::Error>((disk, index))
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
        })
    }

    /// Blobs and their bytes in the cache (fills under way not counted).
    pub fn usage(&self) -> (usize, u64) {
        let ix = lock(&self.index);
        (ix.len(), ix.total() - ix.reserved())
    }

    /// The cache's figures now (one statvfs of the cache directory).
    pub fn stats(&self) -> BodyStats {
        let (entries, bytes, reserved, max_bytes, evictions) = {
            let ix = lock(&self.index);
            let (total, reserved) = (ix.total(), ix.reserved());
            (ix.len(), total - reserved, reserved, ix.max(), ix.evicted())
        };
        let fs = self.disk.space().ok();
        BodyStats {
            entries,
            bytes,
            reserved_bytes: reserved,
            max_bytes,
            evictions,
            fills_in_flight: lock(&self.flights).len(),
            coalesced_waiters: self.coalesced.load(Ordering::Relaxed),
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

    /// Opens the body of `f` at `path` (a Dropbox path under `account`'s root), covering
    /// `span` (the whole file when None).
    pub async fn open(
        &self,
        account: &Arc<Account>,
        path: &str,
        f: &FileMetadata,
        span: Option<RangeInclusive<u64>>,
    ) -> Result<Opened, OpenError> {
        let (start, end) = span
            .as_ref()
            .map_or((0, f.size), |r| (*r.start(), r.end() + 1));
        let fallback = || Fallback {
            dropbox: self.dropbox.clone(),
            account: account.clone(),
            path: path.to_owned(),
            rev: f.rev.clone(),
            stall: self.stall,
        };
        let Some(hash) = blob_name(account, path, f) else {
            return self.passthrough(account, path, f, span).await;
        };
        // 1. a blob
        match self.blob(&hash).await {
            Found::Blob(file) => {
                let stream = stream::spawn(file, start, end, fallback());
                return Ok(Opened {
                    offset: start,
                    stream: stream.boxed(),
                    cache: CacheStatus::Hit,
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
                drop(self.fill(account, path, f, &hash, false).await);
            }
            return self.passthrough(account, path, f, span).await;
        }
        // 3. a fill (joined or started), followed as it grows. One started for a range is not
        // cancelled when its reader leaves: a range's reader always leaves early.
        let whole = span.is_none();
        let Some(reader) = self.fill(account, path, f, &hash, whole).await else {
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
                })
            }
        }
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
                    Ok(passthrough(&dropbox, &account, &path, &rev, Some(r)).await?)
                });
                open
            })
            .collect();
        Ok(Ranged::Each { first, rest })
    }

    /// The whole of a small blob (a thumbnail), if the cache has it.
    pub async fn read_small(&self, name: &str) -> Option<Bytes> {
        let Found::Blob(Source::Blob { file, _pin }) = self.blob(name).await else {
            return None;
        };
        tokio::task::spawn_blocking(move || {
            let _pin = _pin;
            let mut out = Vec::new();
            (&*file)
                .read_to_end(&mut out)
                .ok()
                .map(|_| Bytes::from(out))
        })
        .await
        .ok()
        .flatten()
    }

    /// Keeps `bytes` as the blob `name` (a derived name: nothing checks its hash). A cache
    /// that cannot take it just does not keep it.
    pub async fn keep_small(&self, name: &str, bytes: Bytes) {
        let (disk, index, name) = (self.disk.clone(), self.index.clone(), name.to_owned());
        let min_free = self.min_free;
        let kept = tokio::task::spawn_blocking(move || {
            if disk.free_space().unwrap_or(0) < min_free + bytes.len() as u64 {
                return Ok(());
            }
            let (mut file, temp) = disk.temp()?;
            std::io::Write::write_all(&mut file, &bytes)?;
            disk.publish(temp, &name)?;
            let victims = lock(&index).insert(
                &name,
                Blob {
                    size: bytes.len() as u64,
                    verified: true,
                    touched: secs(SystemTime::now()),
                },
            );
            victims.iter().for_each(|v| disk.remove(v));
            Ok::<_, std::io::Error>(())
        })
        .await;
        if !matches!(kept, Ok(Ok(()))) {
            tracing::warn!("cannot keep a thumbnail in the body cache");
        }
    }

    /// The blob named `hash`, pinned and open, if the cache has it and it is intact.
    ///
    /// A blob is deleted only when it is wrong: gone from disk, or (found at start-up, checked
    /// once) not of its recorded size or not hashing to its name. Any other failure (no file
    /// descriptor left, an I/O error) keeps it: the request goes to Dropbox this time.
    async fn blob(&self, hash: &str) -> Found {
        let (verified, touch, size) = {
            let mut ix = lock(&self.index);
            let now = secs(SystemTime::now());
            let Some(blob) = ix.get(hash) else {
                return Found::Absent;
            };
            let touch = now.saturating_sub(blob.touched) >= TOUCH_EVERY.as_secs();
            if touch {
                blob.touched = now;
            }
            let (verified, size) = (blob.verified, blob.size);
            ix.pin(hash);
            (verified, touch, size)
        };
        let pin = PinGuard {
            hash: hash.to_owned(),
            index: self.index.clone(),
            disk: self.disk.clone(),
        };
        let disk = self.disk.clone();
        let name = hash.to_owned();
        let opened =
            tokio::task::spawn_blocking(move || open_blob(&disk, &name, size, verified, touch))
                .await
                .unwrap_or_else(|e| Verdict::Unreadable(std::io::Error::other(e)));
        let wrong = match opened {
            Verdict::Intact(file) => {
                if !verified && let Some(b) = lock(&self.index).get(hash) {
                    b.verified = true;
                }
                return Found::Blob(Source::Blob {
                    file: Arc::new(file),
                    _pin: pin,
                });
            }
            Verdict::Unreadable(e) => {
                tracing::warn!(error = %e, "cannot read a cached blob now; serving from Dropbox");
                return Found::Unavailable;
            }
            Verdict::Wrong(why) => why,
        };
        tracing::warn!(hash, why = wrong, "a cached blob is wrong; dropping it");
        drop(pin);
        lock(&self.index).remove(hash);
        let disk = self.disk.clone();
        let name = hash.to_owned();
        let _ = tokio::task::spawn_blocking(move || disk.remove(&name)).await;
        Found::Absent
    }

    /// Joins the fill of `hash`, or starts one if there is room; None when the cache cannot
    /// take the file (too big, no room under the cap or above the free-space floor, no temp
    /// file). A fill started `followed` is cancelled if its readers all leave early.
    async fn fill(
        &self,
        account: &Arc<Account>,
        path: &str,
        f: &FileMetadata,
        hash: &str,
        followed: bool,
    ) -> Option<Reader> {
        if let Some(reader) = self.join(hash) {
            return Some(reader);
        }
        if f.size > self.max_size {
            return None;
        }
        let (disk, index, need) = (self.disk.clone(), self.index.clone(), f.size);
        let min_free = self.min_free;
        let made = tokio::task::spawn_blocking(move || {
            // Room under the cap, held from now on, evicting as needed.
            let (reserved, victims) = lock(&index).reserve(need);
            victims.iter().for_each(|v| disk.remove(v));
            if !reserved {
                return None;
            }
            let reservation = Reservation {
                index: index.clone(),
                size: need,
            };
            // Room above the free-space floor for every fill under way (ours included):
            // concurrent fills each count the others' reservations.
            let free = disk.free_space().unwrap_or(0);
            let pending = lock(&index).reserved();
            let short = (min_free + pending).saturating_sub(free);
            if short > 0 {
                let (victims, freed) = lock(&index).evict_bytes(short);
                victims.iter().for_each(|v| disk.remove(v));
                if freed < short {
                    return None;
                }
            }
            match disk.temp() {
                Ok((file, temp)) => Some((file, temp, reservation)),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot create a temp file; serving uncached");
                    None
                }
            }
        })
        .await
        .ok()
        .flatten();
        // No room (or no temp file): a fill started meanwhile is still worth joining.
        let Some((file, temp, reservation)) = made else {
            return self.join(hash);
        };
        let mut flights = lock(&self.flights);
        if let Some(reader) = self.join_in(&flights, hash) {
            // Another request started it meanwhile: use theirs, drop ours (the temp file goes
            // with its path).
            return Some(reader);
        }
        let reader = fill::start(fill::Job {
            dropbox: self.dropbox.clone(),
            account: account.clone(),
            path: path.to_owned(),
            meta: f.clone(),
            hash: hash.to_owned(),
            file: Arc::new(file),
            temp,
            disk: self.disk.clone(),
            reservation,
            abandon_below: followed.then_some(self.abandon_below),
        });
        let fill = reader.fill.clone();
        flights.insert(hash.to_owned(), fill.clone());
        drop(flights);
        // Forget the flight when it ends.
        let mut progress = fill.progress.clone();
        let flights = self.flights.clone();
        let key = hash.to_owned();
        let ours = Arc::downgrade(&fill);
        drop(fill);
        tokio::spawn(async move {
            let _ = progress
                .wait_for(|p| !matches!(p.state, State::Opening | State::Running))
                .await;
            let mut map = lock(&flights);
            if map
                .get(&key)
                .is_some_and(|f| std::ptr::eq(Arc::as_ptr(f), ours.as_ptr()))
            {
                map.remove(&key);
            }
        });
        Some(reader)
    }

    /// A reader of the fill of `hash` under way, unless there is none or it ended badly.
    fn join(&self, hash: &str) -> Option<Reader> {
        self.join_in(&lock(&self.flights), hash)
    }

    /// As `join`, in the flight map its caller holds locked.
    fn join_in(&self, flights: &HashMap<String, Arc<Fill>>, hash: &str) -> Option<Reader> {
        let fill = flights
            .get(hash)
            .filter(|f| !f.progress.borrow().state.is_spent())?;
        self.coalesced.fetch_add(1, Ordering::Relaxed);
        Some(fill.join())
    }

    /// Straight from Dropbox (a Range when only part is needed).
    async fn passthrough(
        &self,
        account: &Arc<Account>,
        path: &str,
        f: &FileMetadata,
        span: Option<RangeInclusive<u64>>,
    ) -> Result<Opened, OpenError> {
        passthrough(&self.dropbox, account, path, &f.rev, span).await
    }
}

/// Straight from Dropbox (a Range when only part is needed), if it still has revision `rev`.
/// The body starts at `Opened::offset`: where a 206 says, or 0 (a 200).
pub(crate) async fn passthrough(
    dropbox: &Dropbox,
    account: &Account,
    path: &str,
    rev: &str,
    span: Option<RangeInclusive<u64>>,
) -> Result<Opened, OpenError> {
    let range = span
        .as_ref()
        .map(|r| format!("bytes={}-{}", r.start(), r.end()));
    let download = match account.download(dropbox, path, range.as_deref()).await {
        Ok(d) => d,
        Err(UpstreamError::NotFound | UpstreamError::NotFile) => {
            return Err(OpenError::Changed(None));
        }
        Err(e) => return Err(OpenError::Upstream(Arc::new(e))),
    };
    if download.metadata.rev != rev {
        return Err(OpenError::Changed(Some(download.metadata)));
    }
    // A 206 starts where its Content-Range says; a 200 (Range ignored) at 0.
    let offset = if download.status == StatusCode::PARTIAL_CONTENT {
        download
            .content_range
            .as_deref()
            .and_then(content_range_start)
            .ok_or(OpenError::Upstream(Arc::new(UpstreamError::Unexpected {
                status: 206,
            })))?
    } else {
        0
    };
    Ok(Opened {
        offset,
        stream: download
            .body
            .map_err(|e| -> BoxError { Box::new(e) })
            .boxed(),
        cache: CacheStatus::Bypass,
    })
}

/// The blob that keeps a file's bytes: its content hash; for a shared link's file, which has
/// none, a name derived from the link, the path in it and the rev (checked by size).
pub fn blob_name(account: &Account, path: &str, f: &FileMetadata) -> Option<String> {
    if let Some(hash) = f
        .content_hash
        .clone()
        .filter(|h| disk::is_hashed(h) && disk::is_blob_name(h))
    {
        return Some(hash);
    }
    let link = account.link()?;
    Some(disk::derived_name(&[
        "link file",
        link.url.expose(),
        &path.to_lowercase(),
        &f.rev,
        &f.size.to_string(),
    ]))
}

/// The first byte position of `bytes a-b/n`.
fn content_range_start(value: &str) -> Option<u64> {
    let rest = value.trim().strip_prefix("bytes ")?;
    let (start, _) = rest.split_once('-')?;
    start.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn content_range_start() {
        assert_eq!(super::content_range_start("bytes 10-19/100"), Some(10));
        assert_eq!(super::content_range_start("bytes */100"), None);
        assert_eq!(super::content_range_start("items 1-2/3"), None);
    }
}
