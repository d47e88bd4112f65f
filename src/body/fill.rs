//! One download per content hash: the fill task streams Dropbox's body into a temp file,
//! publishing how far it got; readers follow it from the same file as bytes arrive. At the
//! end the bytes are checked against the content hash and the file is renamed into place;
//! otherwise it is dropped and never served.
//!
//! A fill holds a reservation of its size in the index from before its first write until it
//! ends, so concurrent fills never push the cache past its cap. It counts its readers: when
//! every one has gone, it is cancelled unless `abandoned_fill_completion` of it is in (a
//! background fill, with no reader by design, always finishes).

use super::disk::{Disk, secs};
use super::index::{Blob, Index};
use super::{Bodies, lock};
use crate::account::Account;
use crate::upstream::client::Dropbox;
use crate::upstream::content_hash::ContentHasher;
use crate::upstream::error::UpstreamError;
use crate::upstream::types::FileMetadata;
use http_body_util::BodyExt;
use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;
use tokio::sync::watch;

/// How a fill stands.
#[derive(Debug, Clone)]
pub enum State {
    /// Asking Dropbox.
    Opening,
    /// Dropbox is sending; `written` bytes are in the file.
    Running,
    /// All bytes written and verified.
    Done,
    /// The cache could not keep the bytes (disk full, I/O error): readers go to Dropbox.
    CacheFailed,
    /// Dropbox failed (before or during the body), or the bytes did not match the hash.
    Failed(Arc<UpstreamError>),
    /// Dropbox has another version at the path.
    Changed(Box<FileMetadata>),
    /// Every reader left before enough was in: readers still arriving go to Dropbox.
    Cancelled,
}

impl State {
    /// Ended without a blob: a new request starts a fill of its own rather than join.
    pub fn is_spent(&self) -> bool {
        matches!(
            self,
            State::CacheFailed | State::Failed(_) | State::Changed(_) | State::Cancelled
        )
    }
}

#[derive(Debug, Clone)]
pub struct Progress {
    pub written: u64,
    pub state: State,
}

/// A fill in progress, shared by its readers.
pub struct Fill {
    pub hash: String,
    pub size: u64,
    /// Whose download this is: the account's key and the Dropbox path, lowercased. What it
    /// learns of that path (a newer version) is about that account's path only.
    owner: (String, String),
    /// The temp file (renamed to the blob at the end; the open handle stays valid).
    pub file: Arc<File>,
    pub progress: watch::Receiver<Progress>,
    readers: watch::Sender<usize>,
}

/// A reader's hold on a fill; the fill counts these.
pub struct Reader {
    pub fill: Arc<Fill>,
}

impl Fill {
    /// Whether this is `account`'s download of `path` (Dropbox paths are case-insensitive).
    pub fn is_of(&self, account: &Account, path: &str) -> bool {
        self.owner.0 == account.key() && self.owner.1 == path.to_lowercase()
    }

    /// Joins as one more reader.
    pub fn join(self: &Arc<Self>) -> Reader {
        self.readers.send_modify(|n| *n += 1);
        Reader { fill: self.clone() }
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        self.fill.readers.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// Room held in the index for a fill's bytes, given back when the fill ends however it ends.
pub struct Reservation {
    pub index: Arc<Mutex<Index>>,
    pub size: u64,
}

impl Reservation {
    /// Turns the room into the blob the fill made, under one lock: no other fill can take the
    /// room between its release and the blob's insertion (which would push the total past the
    /// cap). Returns the victims to delete.
    fn settle(mut self, hash: &str, blob: Blob) -> Vec<String> {
        let mut index = self.index.lock().unwrap_or_else(|p| p.into_inner());
        index.release(std::mem::take(&mut self.size));
        index.insert(hash, blob)
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.size > 0 {
            self.index
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .release(self.size);
        }
    }
}

/// What the fill task needs.
pub struct Job {
    pub dropbox: Arc<Dropbox>,
    pub account: Arc<Account>,
    pub path: String,
    pub meta: FileMetadata,
    pub hash: String,
    pub file: Arc<File>,
    /// Deleted when dropped (a failed or cancelled fill), unless moved into place.
    pub temp: tempfile::TempPath,
    pub disk: Arc<Disk>,
    pub reservation: Reservation,
    /// Cancelled when every reader has gone with less than this share in; None: never (a
    /// background fill).
    pub abandon_below: Option<f64>,
}

/// Starts a fill task; the returned reader (the first) is what its starter follows.
pub fn start(job: Job) -> Reader {
    let (tx, rx) = watch::channel(Progress {
        written: 0,
        state: State::Opening,
    });
    let (readers, mut left) = watch::channel(1usize);
    let fill = Arc::new(Fill {
        hash: job.hash.clone(),
        size: job.meta.size,
        owner: (job.account.key().to_owned(), job.path.to_lowercase()),
        file: job.file.clone(),
        progress: rx,
        readers,
    });
    let first = Reader { fill: fill.clone() };
    let (size, abandon_below) = (job.meta.size, job.abandon_below);
    // The task holds no `Fill` (it would count nothing, but would keep the channel open).
    tokio::spawn(async move {
        // Every reader gone with less than the share in: cancel. Nearly done: finish for the
        // next client, whoever leaves from now on.
        let abandoned = async {
            if let Some(share) = abandon_below
                && left.wait_for(|n| *n == 0).await.is_ok()
                && (tx.borrow().written as f64) < share * size as f64
            {
                return;
            }
            std::future::pending::<()>().await
        };
        let end = tokio::select! {
            end = run(job, &tx) => end,
            () = abandoned => {
                tracing::debug!("every reader left a fill early; cancelled");
                State::Cancelled
            }
        };
        // A fill that did not finish dropped its job, and with it its temp file.
        tx.send_modify(|p| p.state = end);
    });
    first
}

async fn run(job: Job, tx: &watch::Sender<Progress>) -> State {
    let download = match job.account.download(&job.dropbox, &job.path, None).await {
        Ok(d) => d,
        Err(e) => return State::Failed(Arc::new(e)),
    };
    let hashed = super::disk::is_hashed(&job.hash);
    let same = if hashed {
        download.metadata.content_hash.as_deref() == Some(job.hash.as_str())
    } else {
        download.metadata.rev == job.meta.rev
    };
    if !same || download.metadata.size != job.meta.size {
        return State::Changed(Box::new(download.metadata));
    }
    tx.send_modify(|p| p.state = State::Running);
    let mut body = download.body;
    let mut hasher = ContentHasher::new();
    let mut written = 0u64;
    while let Some(frame) = body.frame().await {
        let data = match frame {
            Ok(f) => match f.into_data() {
                Ok(d) => d,
                Err(_) => continue,
            },
            Err(e) => return State::Failed(Arc::new(e)),
        };
        hasher.update(&data);
        let file = job.file.clone();
        let at = written;
        let len = data.len() as u64;
        let wrote = tokio::task::spawn_blocking(move || file.write_all_at(&data, at)).await;
        match wrote {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cannot write to the body cache; serving uncached");
                return State::CacheFailed;
            }
            Err(e) => {
                tracing::warn!(error = %e, "body cache write task failed");
                return State::CacheFailed;
            }
        }
        written += len;
        tx.send_modify(|p| p.written = written);
    }
    let digest = hasher.finish();
    if written != job.meta.size || (hashed && digest != job.hash) {
        tracing::warn!(
            written,
            expected = job.meta.size,
            "Dropbox's bytes do not match the content hash; not cached"
        );
        return State::Failed(Arc::new(UpstreamError::Integrity));
    }
    // Into place (still within the room reserved for it), then into the index in place of
    // that room; the victims are deleted.
    let (disk, hash, temp) = (job.disk.clone(), job.hash, job.temp);
    let size = written;
    let reservation = job.reservation;
    let placed = tokio::task::spawn_blocking(move || {
        if let Err(e) = disk.publish(temp, &hash) {
            tracing::warn!(error = %e, "cannot move a blob into place; not cached");
            return;
        }
        let blob = Blob {
            size,
            verified: true,
            touched: secs(SystemTime::now()),
        };
        for v in reservation.settle(&hash, blob) {
            disk.remove(&v);
        }
    })
    .await;
    if let Err(e) = placed {
        tracing::warn!(error = %e, "blob publish task failed");
    }
    State::Done
}

impl Bodies {
    /// Joins the fill of `hash`, or starts one if there is room; None when the cache cannot
    /// take the file (too big, no room under the cap or above the free-space floor, no temp
    /// file). A fill started `followed` is cancelled if its readers all leave early.
    pub(super) async fn fill(
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
        let reader = start(Job {
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
    pub(super) fn join(&self, hash: &str) -> Option<Reader> {
        self.join_in(&lock(&self.flights), hash)
    }

    /// As `join`, in the flight map its caller holds locked.
    pub(super) fn join_in(
        &self,
        flights: &HashMap<String, Arc<Fill>>,
        hash: &str,
    ) -> Option<Reader> {
        let fill = flights
            .get(hash)
            .filter(|f| !f.progress.borrow().state.is_spent())?;
        self.coalesced.fetch_add(1, Ordering::Relaxed);
        Some(fill.join())
    }
}
