//! Bodies straight from Dropbox, uncached (a Range when only part is needed): cold ranges of
//! large files, and what the cache cannot take.

use super::{Bodies, OpenError, Opened};
use crate::account::Account;
use crate::http::{BoxError, CacheStatus};
use crate::upstream::client::Dropbox;
use crate::upstream::error::UpstreamError;
use crate::upstream::types::FileMetadata;
use http_body_util::BodyExt;
use hyper::StatusCode;
use std::ops::RangeInclusive;
use std::sync::Arc;

impl Bodies {
    /// Straight from Dropbox (a Range when only part is needed).
    pub(super) async fn passthrough(
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
        offer: None,
    })
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
