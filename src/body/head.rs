//! The first bytes of a file (an image's header and EXIF, for its facts): from its blob when
//! the cache holds it, else one Range request to Dropbox for that revision, never the whole
//! file.
//!
//! SECURITY: facts are kept by content hash and shared by every account with the same bytes,
//! so the bytes must be of that content: Dropbox is asked for the revision (`rev:<rev>`), and
//! what it says it sent (the content hash in `Dropbox-API-Result`) must be `f`'s.

use super::{Bodies, Found, blob_name};
use crate::account::Account;
use crate::upstream::error::UpstreamError;
use crate::upstream::types::FileMetadata;
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use std::os::unix::fs::FileExt;

impl Bodies {
    /// Up to `n` first bytes of `f` (at Dropbox path `path` of `account`), and whether they
    /// came from the cache (no call to Dropbox).
    pub async fn head_bytes(
        &self,
        account: &Account,
        path: &str,
        f: &FileMetadata,
        n: u64,
    ) -> Result<(Bytes, bool), UpstreamError> {
        let n = n.min(f.size);
        if let Some(name) = blob_name(account, path, f) {
            match self.blob(&name).await {
                Found::Memory(bytes) => {
                    return Ok((bytes.slice(..(n as usize).min(bytes.len())), true));
                }
                Found::Blob(super::stream::Source::Blob { file, _pin }) => {
                    let read = tokio::task::spawn_blocking(move || {
                        let _pin = _pin;
                        let mut out = vec![0; n as usize];
                        file.read_exact_at(&mut out, 0).map(|()| Bytes::from(out))
                    })
                    .await;
                    if let Ok(Ok(bytes)) = read {
                        return Ok((bytes, true));
                    }
                }
                _ => {}
            }
        }
        if n == 0 {
            return Ok((Bytes::new(), false));
        }
        let at = match account.link() {
            // A link's file is asked by its path in the link: its rev is checked below.
            Some(_) => path.to_owned(),
            None => format!("rev:{}", f.rev),
        };
        let range = format!("bytes=0-{}", n - 1);
        let download = account.download(&self.dropbox, &at, Some(&range)).await?;
        let same = match (&download.metadata.content_hash, &f.content_hash) {
            (Some(got), Some(want)) => got == want,
            _ => download.metadata.rev == f.rev,
        };
        if !same {
            return Err(UpstreamError::NotFound);
        }
        let mut body = download.body;
        let mut out = BytesMut::with_capacity(n as usize);
        while let Some(frame) = body.frame().await {
            let frame = frame?;
            if let Ok(data) = frame.into_data() {
                let room = (n as usize).saturating_sub(out.len());
                out.extend_from_slice(&data[..data.len().min(room)]);
                if out.len() as u64 >= n {
                    break;
                }
            }
        }
        Ok((out.freeze(), false))
    }
}
