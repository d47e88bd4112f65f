//! `files/*` calls: metadata, listings and their cursors, longpoll, downloads and thumbnails.

use super::{Download, Dropbox, TokenSet, UA};
use crate::upstream::error::UpstreamError;
use crate::upstream::json::to_header_safe;
use crate::upstream::types::{FileMetadata, ListFolderResult, LongpollResult, Metadata};
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, USER_AGENT};
use hyper::{Method, Request};
use serde_json::{Value, json};
use std::time::Duration;

impl Dropbox {
    /// `files/list_folder/get_latest_cursor`: a cursor for "now" over `path`.
    pub async fn get_latest_cursor(
        &self,
        auth: &TokenSet,
        path: &str,
        recursive: bool,
    ) -> Result<String, UpstreamError> {
        #[derive(serde::Deserialize)]
        struct Latest {
            cursor: String,
        }
        let latest: Latest = self
            .rpc(
                auth,
                "files/list_folder/get_latest_cursor",
                &json!({"path": path, "recursive": recursive}),
            )
            .await?;
        Ok(latest.cursor)
    }

    /// `files/list_folder/longpoll` on the notify host: no Authorization, no governor (it
    /// waits rather than works), and a deadline of `timeout` + Dropbox's 90 s jitter.
    pub async fn longpoll(
        &self,
        cursor: &str,
        timeout: Duration,
    ) -> Result<LongpollResult, UpstreamError> {
        let url = format!("{}/2/files/list_folder/longpoll", self.endpoints.notify);
        let arg = json!({"cursor": cursor, "timeout": timeout.as_secs()});
        let req = Request::builder()
            .method(Method::POST)
            .uri(url)
            .header(CONTENT_TYPE, "application/json")
            .header(USER_AGENT, UA)
            .body(Full::new(Bytes::from(to_header_safe(&arg))))
            .map_err(UpstreamError::Request)?;
        let deadline = timeout + Duration::from_secs(90) + self.read_timeout;
        let resp = self.send_within(req, deadline).await?;
        let bytes = self.read_all(resp).await?;
        serde_json::from_slice(&bytes).map_err(UpstreamError::Decode)
    }

    pub async fn get_metadata(
        &self,
        auth: &TokenSet,
        path: &str,
    ) -> Result<Metadata, UpstreamError> {
        self.rpc(auth, "files/get_metadata", &json!({ "path": path }))
            .await
    }

    pub async fn list_folder(
        &self,
        auth: &TokenSet,
        path: &str,
        recursive: bool,
    ) -> Result<ListFolderResult, UpstreamError> {
        self.rpc(
            auth,
            "files/list_folder",
            &json!({"path": path, "recursive": recursive}),
        )
        .await
    }

    pub async fn list_folder_continue(
        &self,
        auth: &TokenSet,
        cursor: &str,
    ) -> Result<ListFolderResult, UpstreamError> {
        self.rpc(
            auth,
            "files/list_folder/continue",
            &json!({ "cursor": cursor }),
        )
        .await
    }

    /// `files/download`, optionally with a Range header passed through.
    pub async fn download(
        &self,
        auth: &TokenSet,
        path: &str,
        range: Option<&str>,
    ) -> Result<Download, UpstreamError> {
        self.content(
            auth,
            "files/download",
            &json!({ "path": path }),
            range,
            |result| serde_json::from_slice::<FileMetadata>(result),
        )
        .await
    }

    /// `files/get_thumbnail_v2` of `resource` (a path, or a link with app auth): the image's
    /// bytes, and the `PreviewResult` (what it was made of) from `Dropbox-API-Result`.
    /// Thumbnails are small; more than `MAX_RPC_ANSWER` is refused.
    pub async fn thumbnail(
        &self,
        auth: &TokenSet,
        resource: Value,
        size: &str,
        format: &str,
        mode: &str,
    ) -> Result<(Bytes, Value), UpstreamError> {
        let url = format!("{}/2/files/get_thumbnail_v2", self.endpoints.content);
        let arg = to_header_safe(&json!({
            "resource": resource,
            "size": {".tag": size},
            "format": {".tag": format},
            "mode": {".tag": mode},
        }));
        self.with_retries(auth, |token, permits| {
            let req = Request::builder()
                .method(Method::POST)
                .uri(&url)
                .header(AUTHORIZATION, auth.authorization(&token))
                .header("Dropbox-API-Arg", arg.as_str())
                .header(USER_AGENT, UA)
                .body(Full::default());
            async move {
                let resp = self.send(req.map_err(UpstreamError::Request)?).await?;
                let made_of = resp
                    .headers()
                    .get("dropbox-api-result")
                    .and_then(|v| serde_json::from_slice(v.as_bytes()).ok())
                    .unwrap_or(Value::Null);
                let bytes = self.read_all(resp).await?;
                drop(permits);
                Ok((bytes, made_of))
            }
        })
        .await
    }
}
