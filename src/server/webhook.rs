//! `/webhook`: Dropbox's change notifications (reference §6).
//!
//! `GET /webhook?challenge=X` echoes X (the verification Dropbox makes when the URL is set).
//! `POST /webhook` carries `{"list_folder": {"accounts": [...]}, ...}` signed with
//! `X-Dropbox-Signature`, the hex HMAC-SHA256 of the raw body keyed by the app secret. A good
//! signature is answered at once and pokes each named account's change feed (on whichever
//! instance holds it); a bad or missing one is 403 and nothing happens.

use crate::app::App;
use crate::http::{Body, plain};
use hmac::{Hmac, Mac};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::http::request::Parts;
use hyper::{Method, Response, StatusCode};
use serde::Deserialize;
use sha2::Sha256;
use std::sync::Arc;

/// Largest notification body read: Dropbox's are small (a list of account ids), so 64 KiB.
const MAX_BODY: usize = 64 * 1024;
/// Longest challenge echoed.
const MAX_CHALLENGE: usize = 1024;

#[derive(Deserialize)]
struct Notification {
    #[serde(default)]
    list_folder: Option<ListFolder>,
}

#[derive(Deserialize)]
struct ListFolder {
    #[serde(default)]
    accounts: Vec<String>,
}

/// The account ids a notification names (`{"list_folder": {"accounts": [...]}}`), or None
/// when the body is not a notification.
pub fn named_accounts(raw: &[u8]) -> Option<Vec<String>> {
    let note = serde_json::from_slice::<Notification>(raw).ok()?;
    Some(note.list_folder.map(|l| l.accounts).unwrap_or_default())
}

/// Answers `/webhook`.
pub async fn handle(app: &Arc<App>, parts: &Parts, body: Incoming) -> Response<Body> {
    match parts.method {
        Method::GET => challenge(parts),
        Method::POST => notification(app, parts, body).await,
        _ => {
            let mut resp = plain(StatusCode::METHOD_NOT_ALLOWED, "GET or POST\n");
            resp.headers_mut()
                .insert(hyper::header::ALLOW, HeaderValue::from_static("GET, POST"));
            resp
        }
    }
}

fn challenge(parts: &Parts) -> Response<Body> {
    let query = parts.uri.query().unwrap_or_default();
    let challenge = form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "challenge")
        .map(|(_, v)| v.into_owned());
    match challenge {
        Some(c) if !c.is_empty() && c.len() <= MAX_CHALLENGE => {
            // SECURITY: the echo is the caller's own text; `plain` says nosniff.
            plain(StatusCode::OK, c)
        }
        _ => plain(
            StatusCode::BAD_REQUEST,
            "expected ?challenge= (1 to 1024 characters)\n",
        ),
    }
}

/// Whether `signature` (hex) is the HMAC-SHA256 of `body` under `secret`, compared in
/// constant time.
pub fn verify(secret: &[u8], body: &[u8], signature: &str) -> bool {
    let Ok(given) = hex::decode(signature.trim()) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key");
    mac.update(body);
    mac.verify_slice(&given).is_ok()
}

async fn notification(app: &Arc<App>, parts: &Parts, body: Incoming) -> Response<Body> {
    let outcome = |o: &str| app.metrics.webhooks.with_label_values(&[o]).inc();
    let forbidden = || {
        outcome("forbidden");
        plain(StatusCode::FORBIDDEN, "bad or missing signature\n")
    };
    // SECURITY: nothing is read into action before the signature over the raw bytes holds.
    let Some(secret) = &app.config.dropbox.app_secret else {
        tracing::warn!("webhook refused: dropbox.app_secret is not configured");
        return forbidden();
    };
    // SECURITY: a missing or malformed signature (not 64 hex digits) is refused before a
    // byte of the body is read; a declared length over the cap too.
    let Some(signature) = parts
        .headers
        .get("x-dropbox-signature")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|s| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()))
    else {
        return forbidden();
    };
    let too_large = || {
        outcome("malformed");
        plain(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("a notification is at most {} KiB\n", MAX_BODY / 1024),
        )
    };
    let declared = parts
        .headers
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        return too_large();
    }
    // The body arrives within `server.body_read_timeout`, or not at all.
    let deadline = app.config.server.body_read_timeout;
    let read = tokio::time::timeout(deadline, Limited::new(body, MAX_BODY).collect());
    let raw = match read.await {
        Ok(Ok(c)) => c.to_bytes(),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => return too_large(),
        Ok(Err(_)) => {
            outcome("malformed");
            return plain(StatusCode::BAD_REQUEST, "the body broke off\n");
        }
        Err(_) => {
            outcome("malformed");
            return plain(
                StatusCode::REQUEST_TIMEOUT,
                format!("the body did not arrive within {deadline:?}\n"),
            );
        }
    };
    if !verify(secret.expose().as_bytes(), &raw, signature) {
        tracing::warn!("webhook refused: bad signature");
        return forbidden();
    }
    let Some(named) = named_accounts(&raw) else {
        outcome("malformed");
        return plain(StatusCode::BAD_REQUEST, "not a Dropbox notification\n");
    };
    outcome("accepted");
    if !app.config.feed.enabled {
        tracing::info!(
            accounts = named.len(),
            "webhook received; the change feed is off"
        );
        return plain(StatusCode::OK, "ok\n");
    }
    // Accounts whose id is not learned yet might be the ones named: poke them too.
    let poked: Vec<_> = app
        .accounts
        .all()
        .into_iter()
        .filter(|a| {
            a.feed
                .account_id()
                .is_none_or(|id| named.iter().any(|n| n == id))
        })
        .collect();
    tracing::info!(named = named.len(), poked = poked.len(), "webhook received");
    // Answer at once; telling the other instances may wait on Redis.
    let app = app.clone();
    tokio::spawn(async move {
        for account in poked {
            app.feeds.poke(&account).await;
        }
    });
    plain(StatusCode::OK, "ok\n")
}

#[cfg(test)]
mod tests {
    #[test]
    fn signatures_verify_only_over_the_exact_bytes_and_key() {
        // RFC 4231 test case 2.
        let sig = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";
        let body = b"what do ya want for nothing?";
        assert!(super::verify(b"Jefe", body, sig));
        assert!(super::verify(b"Jefe", body, &sig.to_uppercase()));
        assert!(!super::verify(b"Jeff", body, sig));
        assert!(!super::verify(
            b"Jefe",
            b"what do ya want for nothing!",
            sig
        ));
        assert!(!super::verify(b"Jefe", body, &sig[..62]));
        assert!(!super::verify(b"Jefe", body, "not hex"));
        assert!(!super::verify(b"Jefe", body, ""));
    }
}
