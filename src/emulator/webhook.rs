//! Webhooks out (reference §6): the verification GET first, then after changes a POST of
//! `{"list_folder": {"accounts": […]}, "delta": {"users": […]}}` signed with
//! `X-Dropbox-Signature` = hex HMAC-SHA256 of the exact body, keyed by the app secret.

use crate::http::BoxError;
use crate::upstream::transport::HttpClient;
use bytes::Bytes;
use hmac::{Hmac, Mac};
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use sha2::Sha256;
use std::time::Duration;
use tokio::sync::mpsc;

/// Hands changed accounts to the sender task.
pub struct Notifier {
    tx: mpsc::UnboundedSender<(String, u64)>,
}

impl Notifier {
    /// Starts the sender task (needs a Tokio runtime).
    pub fn start(url: String, app_secret: String) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(url, app_secret, rx));
        Notifier { tx }
    }

    pub fn notify(&self, account_id: String, uid: u64) {
        let _ = self.tx.send((account_id, uid));
    }
}

fn client() -> HttpClient {
    crate::upstream::transport::http_client(Duration::from_secs(5), None)
        .expect("no extra CA file to read")
}

/// Hex HMAC-SHA256 of `body` keyed by the app secret.
pub fn sign(app_secret: &str, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(app_secret.as_bytes()).expect("HMAC takes any key");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

async fn verify(client: &HttpClient, url: &str) -> Result<(), BoxError> {
    let challenge = super::state::secret(16);
    let sep = if url.contains('?') { '&' } else { '?' };
    let req = Request::get(format!("{url}{sep}challenge={challenge}"))
        .header("User-Agent", "DropboxWebhooks/1.0")
        .body(Full::default())?;
    let resp = tokio::time::timeout(Duration::from_secs(10), client.request(req)).await??;
    let status = resp.status();
    let body = resp.into_body().collect().await?.to_bytes();
    if status != StatusCode::OK || body != challenge.as_bytes() {
        return Err(format!("verification answered {status} without echoing the challenge").into());
    }
    Ok(())
}

async fn post(client: &HttpClient, url: &str, secret: &str, body: Bytes) -> Result<(), BoxError> {
    let req = Request::builder()
        .method(Method::POST)
        .uri(url)
        .header("Content-Type", "application/json")
        .header("User-Agent", "DropboxWebhooks/1.0")
        .header("X-Dropbox-Signature", sign(secret, &body))
        .body(Full::new(body))?;
    let resp = tokio::time::timeout(Duration::from_secs(10), client.request(req)).await??;
    if !resp.status().is_success() {
        return Err(format!("webhook answered {}", resp.status()).into());
    }
    Ok(())
}

async fn run(url: String, secret: String, mut rx: mpsc::UnboundedReceiver<(String, u64)>) {
    let client = client();
    let mut verified = false;
    let check = async |verified: &mut bool| {
        if !*verified {
            match verify(&client, &url).await {
                Ok(()) => *verified = true,
                Err(e) => tracing::warn!(error = %e, %url, "webhook verification failed"),
            }
        }
    };
    check(&mut verified).await;
    while let Some(first) = rx.recv().await {
        let mut accounts = vec![first];
        while let Ok(more) = rx.try_recv() {
            if !accounts.contains(&more) {
                accounts.push(more);
            }
        }
        check(&mut verified).await;
        if !verified {
            continue;
        }
        let body = serde_json::json!({
            "list_folder": {"accounts": accounts.iter().map(|a| &a.0).collect::<Vec<_>>()},
            "delta": {"users": accounts.iter().map(|a| a.1).collect::<Vec<_>>()},
        });
        let body = Bytes::from(serde_json::to_vec(&body).expect("JSON serialises"));
        // Dropbox retries with backoff; a few quick tries are enough locally.
        for attempt in 0..4u32 {
            match post(&client, &url, &secret, body.clone()).await {
                Ok(()) => break,
                Err(e) => {
                    tracing::warn!(error = %e, attempt, "webhook delivery failed");
                    tokio::time::sleep(Duration::from_millis(250 << attempt)).await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn signature_is_hex_hmac_sha256() {
        // RFC 4231 test case 2.
        assert_eq!(
            super::sign("Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
