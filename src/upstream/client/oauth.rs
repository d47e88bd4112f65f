//! OAuth and the account behind the tokens: the `/oauth2/token` endpoint (refreshes and code
//! exchanges share it), who the tokens belong to, and revoking them.

use super::{Dropbox, TokenSet, UA};
use crate::secret::Secret;
use crate::upstream::error::{UpstreamError, redact};
use crate::upstream::types::TokenResponse;
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{CONTENT_TYPE, USER_AGENT};
use hyper::{Method, Request, StatusCode};
use serde_json::Value;
use tokio::time::Instant;

impl Dropbox {
    /// `POST /oauth2/token` with a form; a refusal is `Token(<OAuth error code>)`.
    ///
    /// SECURITY: the form holds secrets; errors carry Dropbox's error code only.
    pub(super) async fn token_call(&self, form: String) -> Result<TokenResponse, UpstreamError> {
        let req = Request::builder()
            .method(Method::POST)
            .uri(format!("{}/oauth2/token", self.endpoints.oauth))
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(USER_AGENT, UA)
            .body(Full::new(Bytes::from(form)))
            .map_err(UpstreamError::Request)?;
        let started = Instant::now();
        let sent = tokio::time::timeout(self.read_timeout, self.http.request(req))
            .await
            .map_err(|_| UpstreamError::Timeout(self.read_timeout))
            .and_then(|r| r.map_err(UpstreamError::Transport));
        let outcome = match &sent {
            Ok(r) if r.status().is_success() => "ok",
            Ok(r) if r.status() == StatusCode::TOO_MANY_REQUESTS => "rate_limited",
            Ok(r) if r.status().is_server_error() => "server_error",
            Ok(_) => "auth_error",
            Err(e) => e.outcome(),
        };
        self.metrics
            .call("oauth2/token", outcome, started.elapsed());
        let resp = sent?;
        let status = resp.status();
        let body = self.read_all(resp).await?;
        if !status.is_success() {
            let code = serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_owned))
                .unwrap_or_else(|| status.to_string());
            return Err(UpstreamError::Token(redact(&code)));
        }
        serde_json::from_slice(&body).map_err(UpstreamError::Decode)
    }

    /// Exchanges an authorization code (PKCE: the verifier stands in for the app secret).
    pub async fn exchange_code(
        &self,
        app_key: &str,
        code: &str,
        verifier: &Secret<String>,
        redirect_uri: Option<&str>,
    ) -> Result<TokenResponse, UpstreamError> {
        let form = {
            let mut form = form_urlencoded::Serializer::new(String::new());
            form.append_pair("grant_type", "authorization_code")
                .append_pair("code", code)
                .append_pair("client_id", app_key)
                .append_pair("code_verifier", verifier.expose());
            if let Some(uri) = redirect_uri {
                form.append_pair("redirect_uri", uri);
            }
            form.finish()
        };
        self.token_call(form).await
    }

    /// The account's Dropbox id (`users/get_current_account`), which webhooks name.
    pub async fn account_id(&self, auth: &TokenSet) -> Result<String, UpstreamError> {
        Ok(self.current_account(auth).await?.account_id)
    }

    /// `users/get_current_account`: who the tokens belong to.
    pub async fn current_account(&self, auth: &TokenSet) -> Result<CurrentAccount, UpstreamError> {
        self.rpc(auth, "users/get_current_account", &Value::Null)
            .await
    }

    /// `auth/token/revoke`: the access token, its refresh token and every token minted from
    /// it stop working.
    pub async fn revoke(&self, auth: &TokenSet) -> Result<(), UpstreamError> {
        self.rpc::<Value>(auth, "auth/token/revoke", &Value::Null)
            .await
            .map(drop)
    }
}

/// The parts of `FullAccount` (reference §5.4) the proxy keeps.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct CurrentAccount {
    pub account_id: String,
    pub name: AccountName,
    #[serde(default)]
    pub email: String,
}

#[derive(Debug, Clone, serde::Deserialize)]
pub struct AccountName {
    pub display_name: String,
}
