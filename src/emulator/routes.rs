//! The routes the emulator serves (each one's style, auth and whether its argument is
//! `Void`), and how a call's argument and body are read by endpoint style.

use super::wire::{ApiError, Arg};
use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::HeaderMap;
use hyper::body::Incoming;
use hyper::header::CONTENT_TYPE;
use serde_json::Value;

/// Largest `files/upload` body (Dropbox's single-request limit).
const MAX_UPLOAD: usize = 150 * 1024 * 1024;
/// Largest RPC argument body.
const MAX_RPC_BODY: usize = 1024 * 1024;

/// How an endpoint takes its argument and returns its result (reference §1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Style {
    Rpc,
    Download,
    Upload,
}

/// Which credentials an endpoint accepts (reference §4.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum AuthKind {
    User,
    AppOrUser,
    App,
    NoAuth,
}

/// Every route the emulator serves: name, style, auth, and whether its argument is `Void`.
pub(super) const ROUTES: &[(&str, Style, AuthKind, bool)] = &[
    ("files/list_folder", Style::Rpc, AuthKind::AppOrUser, false),
    (
        "files/list_folder/continue",
        Style::Rpc,
        AuthKind::AppOrUser,
        false,
    ),
    (
        "files/list_folder/get_latest_cursor",
        Style::Rpc,
        AuthKind::User,
        false,
    ),
    (
        "files/list_folder/longpoll",
        Style::Rpc,
        AuthKind::NoAuth,
        false,
    ),
    ("files/get_metadata", Style::Rpc, AuthKind::User, false),
    ("files/download", Style::Download, AuthKind::User, false),
    (
        "files/get_thumbnail_v2",
        Style::Download,
        AuthKind::AppOrUser,
        false,
    ),
    (
        "files/get_temporary_link",
        Style::Rpc,
        AuthKind::User,
        false,
    ),
    ("files/upload", Style::Upload, AuthKind::User, false),
    ("files/delete_v2", Style::Rpc, AuthKind::User, false),
    ("files/move_v2", Style::Rpc, AuthKind::User, false),
    ("files/create_folder_v2", Style::Rpc, AuthKind::User, false),
    (
        "sharing/create_shared_link_with_settings",
        Style::Rpc,
        AuthKind::User,
        false,
    ),
    (
        "sharing/get_shared_link_metadata",
        Style::Rpc,
        AuthKind::AppOrUser,
        false,
    ),
    (
        "sharing/get_shared_link_file",
        Style::Download,
        AuthKind::AppOrUser,
        false,
    ),
    (
        "sharing/list_shared_links",
        Style::Rpc,
        AuthKind::User,
        false,
    ),
    (
        "users/get_current_account",
        Style::Rpc,
        AuthKind::User,
        true,
    ),
    ("auth/token/revoke", Style::Rpc, AuthKind::User, true),
    ("check/user", Style::Rpc, AuthKind::User, false),
    ("check/app", Style::Rpc, AuthKind::App, false),
];

/// Reads the argument (and an upload's bytes) the way the endpoint style says.
pub(super) async fn read_call(
    style: Style,
    void: bool,
    headers: &HeaderMap,
    arg_param: Option<&str>,
    incoming: Incoming,
) -> Result<(Arg, Bytes), ApiError> {
    let content_type = headers
        .get(CONTENT_TYPE)
        .map(|v| v.to_str().unwrap_or("\u{fffd}").to_owned());
    let cors_hack = "text/plain; charset=dropbox-cors-hack";
    let bad_ct = |ct: &str, expecting: &str| {
        ApiError::BadInput(format!(
            "Bad HTTP \"Content-Type\" header: \"{ct}\".  Expecting one of {expecting}."
        ))
    };
    let limit = if style == Style::Upload {
        MAX_UPLOAD
    } else {
        MAX_RPC_BODY
    };
    let body = Limited::new(incoming, limit)
        .collect()
        .await
        .map_err(|e| ApiError::BadInput(format!("request body: {e}")))?
        .to_bytes();
    match style {
        Style::Rpc => {
            let ok_types = [
                "application/json",
                "application/json; charset=utf-8",
                cors_hack,
            ];
            match content_type.as_deref() {
                Some(ct) if ok_types.iter().any(|t| t.eq_ignore_ascii_case(ct.trim())) => {}
                // Void routes: curl sends no body and no Content-Type.
                None if body.is_empty() => {}
                Some(ct) => {
                    return Err(bad_ct(
                        ct,
                        "\"application/json\", \"application/json; charset=utf-8\", \"text/plain; charset=dropbox-cors-hack\"",
                    ));
                }
                None => return Err(bad_ct("", "\"application/json\"")),
            }
            let value = if body.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(&body).map_err(|e| {
                    ApiError::BadInput(format!(
                        "request body: could not decode input as JSON ({e})"
                    ))
                })?
            };
            if void && !value.is_null() {
                return Err(ApiError::BadInput(
                    "request body: expected null, got value".into(),
                ));
            }
            if !void && !value.is_object() {
                return Err(ApiError::BadInput(format!(
                    "request body: expected object, got {}",
                    if value.is_null() { "null" } else { "value" }
                )));
            }
            Ok((Arg::new(value, "request body"), Bytes::new()))
        }
        Style::Download | Style::Upload => {
            if style == Style::Download {
                if let Some(ct) = content_type.as_deref().filter(|c| !c.is_empty()) {
                    return Err(bad_ct(ct, "(none): this function takes no request body"));
                }
            } else {
                match content_type.as_deref() {
                    Some(ct)
                        if ct.eq_ignore_ascii_case("application/octet-stream")
                            || ct.eq_ignore_ascii_case(cors_hack) => {}
                    other => {
                        return Err(bad_ct(
                            other.unwrap_or(""),
                            "\"application/octet-stream\", \"text/plain; charset=dropbox-cors-hack\"",
                        ));
                    }
                }
            }
            let (raw, source) = match (headers.get("dropbox-api-arg"), arg_param) {
                (Some(h), _) => {
                    // SECURITY: the header must be ASCII; raw UTF-8 is rejected as Dropbox does.
                    let s = std::str::from_utf8(h.as_bytes())
                        .ok()
                        .filter(|s| s.is_ascii())
                        .ok_or_else(|| {
                            ApiError::BadInput(
                                "HTTP header \"Dropbox-API-Arg\": could not decode input as JSON"
                                    .into(),
                            )
                        })?;
                    (s.to_owned(), "HTTP header \"Dropbox-API-Arg\"")
                }
                (None, Some(p)) => (p.to_owned(), "URL parameter \"arg\""),
                (None, None) => {
                    return Err(ApiError::BadInput(
                        "Must provide HTTP header \"Dropbox-API-Arg\" or URL parameter \"arg\"."
                            .into(),
                    ));
                }
            };
            let value: Value = serde_json::from_str(&raw).map_err(|_| {
                ApiError::BadInput(format!("{source}: could not decode input as JSON"))
            })?;
            if !value.is_object() {
                return Err(ApiError::BadInput(format!("{source}: expected object")));
            }
            Ok((Arg::new(value, source), body))
        }
    }
}
