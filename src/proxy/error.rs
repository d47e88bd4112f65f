//! `ProxyError`: everything the read path can fail with, and the only place that knows which
//! HTTP answer each failure is. Client text is short and fixed: it never echoes tokens,
//! Dropbox's own error text, or paths.

use super::normalize::NormalizeError;
use crate::http::{Body, plain};
use crate::upstream::error::UpstreamError;
use hyper::header::{ALLOW, HeaderValue, RETRY_AFTER};
use hyper::{Response, StatusCode};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("bad path: {0}")]
    BadPath(#[from] NormalizeError),
    #[error("no such account")]
    UnknownAccount,
    #[error("not found")]
    NotFound,
    #[error("method not allowed")]
    Method,
    /// A bad `?thumb=` request; the text says what is valid.
    #[error("{0}")]
    BadThumb(String),
    /// A bad `?album` request; the text says what is valid.
    #[error("{0}")]
    BadAlbum(String),
    /// The file changed under two downloads in a row.
    #[error("the file is changing")]
    Changing,
    #[error(transparent)]
    Upstream(Arc<UpstreamError>),
}

impl From<Arc<UpstreamError>> for ProxyError {
    fn from(e: Arc<UpstreamError>) -> Self {
        ProxyError::Upstream(e)
    }
}

impl From<UpstreamError> for ProxyError {
    fn from(e: UpstreamError) -> Self {
        ProxyError::Upstream(Arc::new(e))
    }
}

impl ProxyError {
    pub fn status(&self) -> StatusCode {
        match self {
            // A name no account can have (`/favicon.ico`, `/`) is simply not here.
            ProxyError::BadPath(NormalizeError::Alias) => StatusCode::NOT_FOUND,
            ProxyError::BadPath(_) => StatusCode::BAD_REQUEST,
            ProxyError::UnknownAccount | ProxyError::NotFound => StatusCode::NOT_FOUND,
            ProxyError::Method => StatusCode::METHOD_NOT_ALLOWED,
            ProxyError::BadThumb(_) | ProxyError::BadAlbum(_) => StatusCode::BAD_REQUEST,
            ProxyError::Changing => StatusCode::SERVICE_UNAVAILABLE,
            ProxyError::Upstream(e) => match &**e {
                UpstreamError::NotFound | UpstreamError::NotFile | UpstreamError::NotFolder => {
                    StatusCode::NOT_FOUND
                }
                UpstreamError::AccessDenied => StatusCode::FORBIDDEN,
                UpstreamError::MalformedPath => StatusCode::BAD_REQUEST,
                UpstreamError::Unsupported => StatusCode::UNSUPPORTED_MEDIA_TYPE,
                UpstreamError::RateLimited { .. } | UpstreamError::Relink => {
                    StatusCode::SERVICE_UNAVAILABLE
                }
                e if e.is_timeout() => StatusCode::GATEWAY_TIMEOUT,
                _ => StatusCode::BAD_GATEWAY,
            },
        }
    }

    /// How long to tell the client to wait (503 after Dropbox's 429s).
    fn retry_after(&self) -> Option<Duration> {
        match self {
            ProxyError::Upstream(e) => e.retry_after(),
            ProxyError::Changing => Some(Duration::from_secs(1)),
            _ => None,
        }
    }

    /// The answer, with a fixed short text.
    pub fn into_response(self) -> Response<Body> {
        let status = self.status();
        let text = match &self {
            ProxyError::BadPath(NormalizeError::Alias)
            | ProxyError::UnknownAccount
            | ProxyError::NotFound => "not found\n".into(),
            ProxyError::BadPath(e) => format!("bad request: {e}\n"),
            ProxyError::Method => "only GET and HEAD are served here\n".into(),
            ProxyError::BadThumb(why) | ProxyError::BadAlbum(why) => {
                format!("bad request: {why}\n")
            }
            ProxyError::Changing => "the file is changing; try again\n".into(),
            ProxyError::Upstream(e) if matches!(**e, UpstreamError::Relink) => {
                "this Dropbox account's link was revoked or expired; its owner must link it again\n"
                    .into()
            }
            ProxyError::Upstream(_) => match status {
                StatusCode::NOT_FOUND => "not found\n".into(),
                StatusCode::BAD_REQUEST => "bad request: Dropbox does not allow this path\n".into(),
                StatusCode::UNSUPPORTED_MEDIA_TYPE => {
                    "Dropbox cannot make a thumbnail of this file\n".into()
                }
                StatusCode::FORBIDDEN => {
                    "the shared link refuses access (a password, or not public)\n".into()
                }
                StatusCode::SERVICE_UNAVAILABLE => "Dropbox is rate limiting; try later\n".into(),
                StatusCode::GATEWAY_TIMEOUT => "Dropbox did not answer in time\n".into(),
                _ => "Dropbox could not be read\n".into(),
            },
        };
        let mut resp = plain(status, text);
        let h = resp.headers_mut();
        if status == StatusCode::METHOD_NOT_ALLOWED {
            h.insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        }
        if let Some(wait) = self.retry_after() {
            // Whole seconds, rounded up and at least 1.
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            h.insert(RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_by_failure() {
        let up = |e| ProxyError::from(e).status();
        assert_eq!(up(UpstreamError::NotFound), StatusCode::NOT_FOUND);
        assert_eq!(
            up(UpstreamError::Server { status: 500 }),
            StatusCode::BAD_GATEWAY
        );
        assert_eq!(
            up(UpstreamError::Timeout(Duration::from_secs(1))),
            StatusCode::GATEWAY_TIMEOUT
        );
        assert_eq!(
            up(UpstreamError::Auth {
                tag: "invalid_access_token".into()
            }),
            StatusCode::BAD_GATEWAY
        );
        let limited = ProxyError::from(UpstreamError::RateLimited {
            retry_after: Duration::from_millis(1500),
        })
        .into_response();
        assert_eq!(limited.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(limited.headers()[RETRY_AFTER], "2");
        let relink = ProxyError::from(UpstreamError::Relink).into_response();
        assert_eq!(relink.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(relink.headers().get(RETRY_AFTER).is_none());
        assert_eq!(
            ProxyError::BadPath(NormalizeError::Segment).status(),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(up(UpstreamError::MalformedPath), StatusCode::BAD_REQUEST);
        let short = ProxyError::NotFound.into_response();
        assert_eq!(short.headers()["x-content-type-options"], "nosniff");
        assert_eq!(
            ProxyError::Method.into_response().headers()[ALLOW],
            "GET, HEAD"
        );
    }
}
