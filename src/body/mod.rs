//! File bodies: where the bytes of a file come from, and how byte ranges are cut out of them.
//!
//! This is the seam DESIGN.md puts at step 6. For now every body streams straight from
//! Dropbox (`files/download`, with a `Range` when only part is needed); the content-addressed
//! disk cache slots in behind `Bodies::open` without the proxy changing.

pub mod slice;

use crate::account::Account;
use crate::upstream::client::Dropbox;
use crate::upstream::error::UpstreamError;
use crate::upstream::transport::TimeoutBody;
use crate::upstream::types::FileMetadata;
use hyper::StatusCode;
use std::ops::RangeInclusive;
use std::sync::Arc;

/// An open body: the bytes from `offset` on, of the file `metadata` describes.
pub struct Opened {
    /// The file as the source has it now (its rev may be newer than the caller's).
    pub metadata: FileMetadata,
    /// Position in the file of the stream's first byte.
    pub offset: u64,
    pub stream: TimeoutBody,
}

pub struct Bodies {
    dropbox: Arc<Dropbox>,
}

impl Bodies {
    pub fn new(dropbox: Arc<Dropbox>) -> Bodies {
        Bodies { dropbox }
    }

    /// Opens `path` (a Dropbox path under the account's root), covering at least `span`
    /// (the whole file when None).
    pub async fn open(
        &self,
        account: &Account,
        path: &str,
        span: Option<RangeInclusive<u64>>,
    ) -> Result<Opened, UpstreamError> {
        let range = span.map(|r| format!("bytes={}-{}", r.start(), r.end()));
        let download = self
            .dropbox
            .download(&account.tokens, path, range.as_deref())
            .await?;
        // A 206 starts where its Content-Range says; a 200 (Range ignored) at 0.
        let offset = if download.status == StatusCode::PARTIAL_CONTENT {
            download
                .content_range
                .as_deref()
                .and_then(content_range_start)
                .ok_or(UpstreamError::Unexpected { status: 206 })?
        } else {
            0
        };
        Ok(Opened {
            metadata: download.metadata,
            offset,
            stream: download.body,
        })
    }
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
