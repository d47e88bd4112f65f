//! One download per content hash: the fill task streams Dropbox's body into a temp file,
//! publishing how far it got; readers follow it from the same file as bytes arrive. At the
//! end the bytes are checked against the content hash and the file is renamed into place;
//! otherwise it is dropped and never served.

use super::disk::{Disk, secs};
use super::index::{Blob, Index};
use crate::account::Account;
use crate::upstream::client::Dropbox;
use crate::upstream::content_hash::ContentHasher;
use crate::upstream::error::UpstreamError;
use crate::upstream::types::FileMetadata;
use http_body_util::BodyExt;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
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
    /// The temp file (renamed to the blob at the end; the open handle stays valid).
    pub file: Arc<File>,
    pub progress: watch::Receiver<Progress>,
}

/// What the fill task needs.
pub struct Job {
    pub dropbox: Arc<Dropbox>,
    pub account: Arc<Account>,
    pub path: String,
    pub meta: FileMetadata,
    pub hash: String,
    pub file: Arc<File>,
    pub temp: PathBuf,
    pub disk: Arc<Disk>,
    pub index: Arc<Mutex<Index>>,
}

/// Starts a fill task; the returned `Fill` is what readers follow.
pub fn start(job: Job) -> Arc<Fill> {
    let (tx, rx) = watch::channel(Progress {
        written: 0,
        state: State::Opening,
    });
    let fill = Arc::new(Fill {
        hash: job.hash.clone(),
        size: job.meta.size,
        file: job.file.clone(),
        progress: rx,
    });
    tokio::spawn(async move {
        let temp = job.temp.clone();
        let end = run(job, &tx).await;
        if !matches!(end, State::Done) {
            let _ = tokio::task::spawn_blocking(move || std::fs::remove_file(&temp)).await;
        }
        tx.send_modify(|p| p.state = end);
    });
    fill
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
    // Into place, then into the index (whose victims are deleted).
    let (disk, index, hash, temp) = (job.disk.clone(), job.index.clone(), job.hash, job.temp);
    let size = written;
    let placed = tokio::task::spawn_blocking(move || {
        if let Err(e) = disk.publish(&temp, &hash) {
            tracing::warn!(error = %e, "cannot move a blob into place; not cached");
            let _ = std::fs::remove_file(&temp);
            return;
        }
        let victims = index.lock().unwrap_or_else(|p| p.into_inner()).insert(
            &hash,
            Blob {
                size,
                verified: true,
                touched: secs(SystemTime::now()),
            },
        );
        for v in victims {
            disk.remove(&v);
        }
    })
    .await;
    if let Err(e) = placed {
        tracing::warn!(error = %e, "blob publish task failed");
    }
    State::Done
}
