//! Streams bytes to one client: from a finished blob, or following a fill as it grows (a
//! reader never waits for the whole file). If the cache gives up mid-way (disk full, I/O
//! error) the reader carries on from Dropbox with a Range request: a cache failure never cuts
//! a client's stream. A task per stream feeds a small bounded channel, so a slow client holds
//! back only its own reads.

use super::disk::Disk;
use super::fill::{Reader, State};
use super::index::Index;
use crate::account::Account;
use crate::http::BoxError;
use crate::http::channel::{ChannelBody, Sender};
use crate::upstream::client::Dropbox;
use crate::upstream::error::UpstreamError;
use bytes::Bytes;
use http_body_util::BodyExt;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Mutex};

/// Bytes read from disk per chunk, and chunks buffered per client: a kept blob is read in
/// large chunks (fewer hand-offs to the blocking pool: 512 KiB may wait for its client), a
/// fill in small ones as it arrives (256 KiB; a cold file may have hundreds of readers).
const BLOB_CHUNK: u64 = 256 * 1024;
const BLOB_DEPTH: usize = 2;
const FILL_CHUNK: u64 = 64 * 1024;
const FILL_DEPTH: usize = 4;

/// Keeps a blob from eviction while it is read.
pub struct PinGuard {
    pub hash: Arc<str>,
    pub index: Arc<Mutex<Index>>,
    pub disk: Arc<Disk>,
}

impl Drop for PinGuard {
    fn drop(&mut self) {
        let victims = self
            .index
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .unpin(&self.hash);
        if !victims.is_empty() {
            let disk = self.disk.clone();
            tokio::task::spawn_blocking(move || victims.iter().for_each(|v| disk.remove(v)));
        }
    }
}

/// Where a stream reads from.
pub enum Source {
    Blob {
        file: Arc<File>,
        _pin: PinGuard,
    },
    /// Following a fill, counted among its readers until the stream ends.
    Fill(Reader),
}

/// How to reach Dropbox if the cache gives up, and how long a client may stall.
pub struct Fallback {
    pub dropbox: Arc<Dropbox>,
    pub account: Arc<Account>,
    pub path: String,
    pub rev: String,
    /// A client that takes no bytes this long is given up: the stream ends, letting go of its
    /// blob's pin or its place among a fill's readers (an HTTP/2 client can stall a stream
    /// while its connection stays busy, out of the watchdog's sight).
    pub stall: std::time::Duration,
}

/// Sends one chunk; false if the client went away or stalled past `stall`. Room in the
/// channel takes it at once; only a full one waits, under a timer.
async fn give(tx: &Sender, chunk: Bytes, stall: std::time::Duration) -> bool {
    use tokio::sync::mpsc::error::TrySendError;
    match tx.try_send(Ok(chunk)) {
        Ok(()) => true,
        Err(TrySendError::Closed(_)) => false,
        Err(TrySendError::Full(chunk)) => {
            matches!(
                tokio::time::timeout(stall, tx.send(chunk)).await,
                Ok(Ok(()))
            )
        }
    }
}

/// Streams bytes `start..end` of `source` to a new body.
pub fn spawn(source: Source, start: u64, end: u64, fallback: Fallback) -> ChannelBody {
    let depth = match source {
        Source::Blob { .. } => BLOB_DEPTH,
        Source::Fill(_) => FILL_DEPTH,
    };
    let (tx, body) = ChannelBody::new(depth, end - start);
    tokio::spawn(async move {
        if let Err(e) = pump(source, start, end, &tx, &fallback).await {
            let _ = tx.send(Err(e)).await;
        }
    });
    body
}

async fn read_at(file: &Arc<File>, at: u64, len: u64) -> Result<Bytes, BoxError> {
    let file = file.clone();
    let buf = tokio::task::spawn_blocking(move || {
        let mut buf = vec![0u8; len as usize];
        let mut got = 0;
        while got < buf.len() {
            match file.read_at(&mut buf[got..], at + got as u64)? {
                0 => break,
                n => got += n,
            }
        }
        buf.truncate(got);
        Ok::<_, std::io::Error>(buf)
    })
    .await??;
    if buf.is_empty() {
        return Err("the cached file is shorter than expected".into());
    }
    Ok(Bytes::from(buf))
}

/// Sends `pos..end`; returns Err to be sent as the body's error.
async fn pump(
    source: Source,
    mut pos: u64,
    end: u64,
    tx: &Sender,
    fallback: &Fallback,
) -> Result<(), BoxError> {
    let (file, mut progress) = match &source {
        Source::Blob { file, .. } => (file.clone(), None),
        Source::Fill(r) => (r.fill.file.clone(), Some(r.fill.progress.clone())),
    };
    let (size, chunk) = match &source {
        Source::Blob { .. } => (end, BLOB_CHUNK),
        Source::Fill(r) => (r.fill.size, FILL_CHUNK),
    };
    while pos < end {
        let available = match &progress {
            None => end,
            Some(rx) => {
                let p = rx.borrow().clone();
                match p.state {
                    // The last byte is held back until the whole file is verified, so a
                    // client never receives a complete body that failed its hash.
                    State::Opening | State::Running => p.written.min(size.saturating_sub(1)),
                    State::Done => size,
                    State::CacheFailed | State::Cancelled => {
                        return passthrough(pos, end, tx, fallback).await;
                    }
                    // Bytes that failed their hash end the stream; any other failure of the
                    // download (another account's token, a broken connection) is carried on
                    // from Dropbox with this reader's own credentials.
                    State::Failed(e) if matches!(*e, UpstreamError::Integrity) => {
                        return Err(Box::new(e));
                    }
                    State::Failed(_) => return passthrough(pos, end, tx, fallback).await,
                    State::Changed(_) => return Err("the file changed in Dropbox".into()),
                }
            }
        };
        if pos < available {
            let len = (available - pos).min(end - pos).min(chunk);
            let bytes = read_at(&file, pos, len).await?;
            pos += bytes.len() as u64;
            if !give(tx, bytes, fallback.stall).await {
                return Ok(()); // the client went away, or stopped reading
            }
        } else if let Some(rx) = progress.as_mut() {
            tokio::select! {
                changed = rx.changed() => if changed.is_err() {
                    // The fill task ended without a final word: treat as a cache failure.
                    return passthrough(pos, end, tx, fallback).await;
                },
                // The client went away while the fill waits on Dropbox: stop reading it.
                () = tx.closed() => return Ok(()),
            }
        }
    }
    Ok(())
}

/// Carries on from Dropbox from byte `pos`.
async fn passthrough(mut pos: u64, end: u64, tx: &Sender, fb: &Fallback) -> Result<(), BoxError> {
    let opened = super::passthrough::passthrough(
        &fb.dropbox,
        &fb.account,
        &fb.path,
        &fb.rev,
        Some(pos..=end - 1),
    )
    .await?;
    // Bytes before `pos` are skipped; a body that starts after it cannot give it.
    let mut at = opened.offset;
    if at > pos {
        return Err("Dropbox's 206 starts after where it was asked to".into());
    }
    let mut body = opened.stream;
    while pos < end {
        let Some(frame) = body.frame().await else {
            return Err("Dropbox's body ended early".into());
        };
        let Ok(mut data) = frame?.into_data() else {
            continue;
        };
        let len = data.len() as u64;
        if at + len <= pos {
            at += len;
            continue;
        }
        if at < pos {
            let _ = data.split_to((pos - at) as usize);
            at = pos;
        }
        data.truncate((end - pos).min(data.len() as u64) as usize);
        at += data.len() as u64;
        pos = at;
        if !give(tx, data, fb.stall).await {
            return Ok(());
        }
    }
    Ok(())
}
