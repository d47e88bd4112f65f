//! The call plumbing: RPC and content-download requests with `Dropbox-API-Arg` escaping,
//! sending with a deadline (counted in the metrics by endpoint), reading answers, and errors
//! mapped from Dropbox's shapes.

use super::{Download, Dropbox, MAX_RPC_ANSWER, TokenSet, UA};
use crate::upstream::error::{UpstreamError, redact};
use crate::upstream::json::to_header_safe;
use crate::upstream::transport::TimeoutBody;
use crate::upstream::types::{ApiErrorBody, FileMetadata};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue, RANGE, RETRY_AFTER, USER_AGENT};
use hyper::{Method, Request, Response};
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::time::Duration;
use tokio::time::Instant;

impl Dropbox {
    /// An RPC call on the api host.
    pub async fn rpc<T: DeserializeOwned>(
        &self,
        auth: &TokenSet,
        route: &str,
        arg: &Value,
    ) -> Result<T, UpstreamError> {
        let url = format!("{}/2/{route}", self.endpoints.api);
        let body = Bytes::from(to_header_safe(arg));
        self.with_retries(auth, |token, permits| {
            let req = Request::builder()
                .method(Method::POST)
                .uri(&url)
                .header(AUTHORIZATION, auth.authorization(&token))
                .header(CONTENT_TYPE, "application/json")
                .header(USER_AGENT, UA)
                .body(Full::new(body.clone()));
            async move {
                let resp = self.send(req.map_err(UpstreamError::Request)?).await?;
                let bytes = self.read_all(resp).await?;
                drop(permits);
                serde_json::from_slice(&bytes).map_err(UpstreamError::Decode)
            }
        })
        .await
    }

    /// A content-download call: the argument in `Dropbox-API-Arg`, the result (read by
    /// `result`) in `Dropbox-API-Result`, the body streamed.
    pub(super) async fn content(
        &self,
        auth: &TokenSet,
        route: &str,
        arg: &Value,
        range: Option<&str>,
        result: impl Fn(&[u8]) -> Result<FileMetadata, serde_json::Error>,
    ) -> Result<Download, UpstreamError> {
        let url = format!("{}/2/{route}", self.endpoints.content);
        let arg = to_header_safe(arg);
        let result = &result;
        self.with_retries(auth, |token, permits| {
            let mut req = Request::builder()
                .method(Method::POST)
                .uri(&url)
                .header(AUTHORIZATION, auth.authorization(&token))
                .header("Dropbox-API-Arg", arg.as_str())
                .header(USER_AGENT, UA);
            if let Some(r) = range {
                req = req.header(RANGE, r);
            }
            let req = req.body(Full::default());
            async move {
                let resp = self.send(req.map_err(UpstreamError::Request)?).await?;
                drop(permits);
                let raw = resp
                    .headers()
                    .get("dropbox-api-result")
                    .map(|v| v.as_bytes().to_vec())
                    .unwrap_or_default();
                let metadata = result(&raw).map_err(UpstreamError::Decode)?;
                let header = |name| {
                    resp.headers()
                        .get(name)
                        .and_then(|v: &HeaderValue| v.to_str().ok())
                };
                let content_range = header(hyper::header::CONTENT_RANGE).map(str::to_owned);
                let content_length =
                    header(hyper::header::CONTENT_LENGTH).and_then(|v| v.parse().ok());
                let status = resp.status();
                Ok(Download {
                    metadata,
                    status,
                    content_range,
                    content_length,
                    // The permits cover the call, not the body's transfer: a client that stops
                    // reading must not hold the account's calls up.
                    body: TimeoutBody::new(resp.into_body(), self.read_timeout),
                })
            }
        })
        .await
    }

    /// Sends; answers 2xx (and 206) as they are, maps everything else to an error.
    pub(super) async fn send(
        &self,
        req: Request<Full<Bytes>>,
    ) -> Result<Response<Incoming>, UpstreamError> {
        self.send_within(req, self.read_timeout).await
    }

    /// `send`, waiting up to `limit` for the answer's head.
    pub(super) async fn send_within(
        &self,
        req: Request<Full<Bytes>>,
        limit: Duration,
    ) -> Result<Response<Incoming>, UpstreamError> {
        let endpoint = endpoint_of(req.uri().path()).to_owned();
        let started = Instant::now();
        let answered = async {
            let resp = tokio::time::timeout(limit, self.http.request(req))
                .await
                .map_err(|_| UpstreamError::Timeout(limit))?
                .map_err(UpstreamError::Transport)?;
            if resp.status().is_success() {
                return Ok(resp);
            }
            Err(self.error_from(resp).await)
        }
        .await;
        let outcome = answered
            .as_ref()
            .map_or_else(UpstreamError::outcome, |_| "ok");
        self.metrics.call(&endpoint, outcome, started.elapsed());
        answered
    }

    pub(super) async fn read_all(&self, resp: Response<Incoming>) -> Result<Bytes, UpstreamError> {
        let body = Limited::new(
            TimeoutBody::new(resp.into_body(), self.read_timeout),
            MAX_RPC_ANSWER,
        );
        body.collect().await.map(|c| c.to_bytes()).map_err(|e| {
            match e.downcast::<UpstreamError>() {
                Ok(up) => *up,
                Err(other) => UpstreamError::BadRequest(format!("answer too large: {other}")),
            }
        })
    }

    /// Maps a non-2xx answer from Dropbox's error shapes (reference §1.6).
    async fn error_from(&self, resp: Response<Incoming>) -> UpstreamError {
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = self.read_all(resp).await.unwrap_or_default();
        error_from_answer(status.as_u16(), retry_after.as_deref(), &body)
    }
}

/// Maps a non-2xx answer (its status, `Retry-After` and body) from Dropbox's error shapes
/// (reference §1.6).
pub fn error_from_answer(status: u16, retry_after: Option<&str>, body: &[u8]) -> UpstreamError {
    let retry_header = retry_after.and_then(|v| v.trim().parse::<u64>().ok());
    let parsed: Option<ApiErrorBody> = serde_json::from_slice(body).ok();
    {
        match status {
            // SECURITY: a 400's text can echo what was sent (the Authorization header, a link's
            // key): only its redacted form is kept, for logs.
            400 => UpstreamError::BadRequest(redact(&String::from_utf8_lossy(
                &body[..body.len().min(300)],
            ))),
            401 => UpstreamError::Auth {
                tag: parsed
                    .and_then(|p| p.tags().into_iter().next())
                    .unwrap_or_else(|| "other".into()),
            },
            409 => {
                let Some(p) = parsed else {
                    return UpstreamError::Route {
                        summary: "unparseable 409".into(),
                    };
                };
                let tags = p.tags();
                let tags: Vec<&str> = tags.iter().map(String::as_str).collect();
                match tags.as_slice() {
                    ["reset", ..] => UpstreamError::Reset,
                    [_, "not_found", ..] => UpstreamError::NotFound,
                    [_, "not_file", ..] => UpstreamError::NotFile,
                    [_, "not_folder", ..] => UpstreamError::NotFolder,
                    [_, "malformed_path", ..] => UpstreamError::MalformedPath,
                    ["shared_link_not_found" | "not_found", ..] => UpstreamError::NotFound,
                    ["shared_link_is_directory", ..] => UpstreamError::NotFile,
                    [
                        "unsupported_extension" | "unsupported_image" | "conversion_error",
                        ..,
                    ] => UpstreamError::Unsupported,
                    ["shared_link_access_denied" | "access_denied", ..] => {
                        UpstreamError::AccessDenied
                    }
                    _ => UpstreamError::Route {
                        summary: p.error_summary,
                    },
                }
            }
            429 => {
                let json_wait =
                    parsed.and_then(|p| p.error.get("retry_after").and_then(Value::as_u64));
                // Never "0": a retry at once would be a hot loop.
                let secs = retry_header.or(json_wait).unwrap_or(1).max(1);
                UpstreamError::RateLimited {
                    retry_after: Duration::from_secs(secs),
                }
            }
            500..=599 => UpstreamError::Server { status },
            other => UpstreamError::Unexpected { status: other },
        }
    }
}

/// The endpoint label of a request path: the route after `/2/` (`files/get_metadata`), or
/// the last segments for OAuth; bounded, since every URL is built by this client.
fn endpoint_of(path: &str) -> &str {
    match path.find("/2/") {
        Some(i) => &path[i + 3..],
        None => path.trim_start_matches('/'),
    }
}
