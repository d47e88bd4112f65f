//! Shared-link calls (with app auth): a link's metadata, a folder link's listing, and a
//! link's file.

use super::{Download, Dropbox, TokenSet};
use crate::upstream::error::UpstreamError;
use crate::upstream::types::{LinkArg, ListFolderResult, SharedLinkMetadata};
use serde_json::json;

impl Dropbox {
    /// `sharing/get_shared_link_file`: a shared link's file (or a file inside a folder link),
    /// with app auth. Its result has no content hash.
    pub async fn shared_link_file(
        &self,
        auth: &TokenSet,
        link: &LinkArg<'_>,
        range: Option<&str>,
    ) -> Result<Download, UpstreamError> {
        let arg = link.arg();
        self.content(
            auth,
            "sharing/get_shared_link_file",
            &arg,
            range,
            |result| serde_json::from_slice::<SharedLinkMetadata>(result).map(|m| m.file()),
        )
        .await
    }

    /// `sharing/get_shared_link_metadata`.
    pub async fn shared_link_metadata(
        &self,
        auth: &TokenSet,
        link: &LinkArg<'_>,
    ) -> Result<SharedLinkMetadata, UpstreamError> {
        self.rpc(auth, "sharing/get_shared_link_metadata", &link.arg())
            .await
    }

    /// `files/list_folder` of a folder link (`path` relative to it; non-recursive only).
    pub async fn list_link_folder(
        &self,
        auth: &TokenSet,
        link: &LinkArg<'_>,
    ) -> Result<ListFolderResult, UpstreamError> {
        let mut shared = json!({ "url": link.url });
        if let Some(p) = link.password {
            shared["password"] = json!(p);
        }
        self.rpc(
            auth,
            "files/list_folder",
            &json!({"path": link.path, "shared_link": shared}),
        )
        .await
    }
}
