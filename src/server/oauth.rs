//! Linking accounts through OAuth 2 (reference §5): `start` makes the authorize URL (offline
//! access, PKCE S256, a signed single-use expiring `state`), `finish` exchanges the code that
//! comes back and publishes the account, `unlink` revokes its token and stops publishing it.
//!
//! `state` is `<nonce>.<expiry ms>.<signature>`: a forged one fails the signature, an old one
//! its expiry, and a replayed one finds its pending record (`oauth:<nonce>`, taken atomically
//! from the store) gone. The PKCE verifier is derived from the nonce with the vault's key, so
//! no secret waits in the store while the owner is at Dropbox's page.

use crate::account::vault::Vault;
use crate::account::{Account, AccountRecord, Linked};
use crate::app::App;
use crate::config::parse_root;
use crate::http::route::{is_reserved, valid_alias};
use crate::secret::Secret;
use crate::store::StoreError;
use crate::store::now_ms;
use crate::upstream::client::TokenSet;
use crate::upstream::error::UpstreamError;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// Linking needs a setting that is not there.
    #[error("linking accounts needs {0} in the config")]
    Off(&'static str),
    #[error("{0:?} is not a valid alias (1-64 of a-z, 0-9, '-', '_', not a reserved word)")]
    BadAlias(String),
    #[error("{0:?} is not a published root (\"\" or an absolute path like /Public)")]
    BadRoot(String),
    #[error("{0:?} is configured in the config file; change it there")]
    Configured(String),
    #[error("no linked account {0:?}")]
    Unknown(String),
    /// The `state` that came back is not one we made, has expired, or was used.
    #[error("this link is {0}; start again")]
    BadState(&'static str),
    /// The owner (or Dropbox) declined; the OAuth error code.
    #[error("Dropbox did not authorize the link ({0})")]
    Denied(String),
    #[error("Dropbox gave no refresh token (the link must ask for offline access)")]
    NoRefreshToken,
    #[error("Dropbox refused the link: {0}")]
    Dropbox(#[source] UpstreamError),
    #[error("cannot save the account: {0}")]
    Store(#[from] StoreError),
}

/// What waits in the store while the owner is at Dropbox.
#[derive(Debug, Serialize, Deserialize)]
struct Pending {
    alias: String,
    root: String,
    redirect_uri: Option<String>,
}

/// A started link.
pub struct Started {
    pub authorize_url: String,
}

/// How an unlink went.
pub struct Unlinked {
    /// Dropbox revoked the token; otherwise why not (revoke it in Dropbox's settings).
    pub revoked: Result<(), UpstreamError>,
}

fn pending_name(nonce: &str) -> String {
    format!("oauth:{nonce}")
}

/// `base64url(sha256(verifier))`, PKCE's S256 challenge.
fn challenge(verifier: &Secret<String>) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.expose().as_bytes()))
}

/// What linking needs from the config: the vault (`oauth.secret_key`) and the app key.
fn keys(app: &App) -> Result<(&Vault, &str), LinkError> {
    let vault = app
        .accounts
        .vault
        .as_ref()
        .ok_or(LinkError::Off("oauth.secret_key"))?;
    let app_key = app
        .config
        .dropbox
        .app_key
        .as_deref()
        .ok_or(LinkError::Off("dropbox.app_key"))?;
    Ok((vault, app_key))
}

/// Checks that `alias` may be linked.
fn linkable(app: &App, alias: &str) -> Result<(), LinkError> {
    if !valid_alias(alias) || is_reserved(alias) {
        return Err(LinkError::BadAlias(alias.to_owned()));
    }
    if app.accounts.is_configured(alias) {
        return Err(LinkError::Configured(alias.to_owned()));
    }
    Ok(())
}

/// Begins linking `alias` (published at `root`): the URL to send the owner to. With
/// `redirect` false Dropbox shows the code for the owner to paste instead of sending the
/// browser back to `oauth.redirect_uri`.
pub async fn start(
    app: &App,
    alias: &str,
    root: &str,
    redirect: bool,
) -> Result<Started, LinkError> {
    let (vault, app_key) = keys(app)?;
    linkable(app, alias)?;
    let root = parse_root(root).ok_or_else(|| LinkError::BadRoot(root.to_owned()))?;
    let ttl = app.config.oauth.state_ttl;
    let nonce = hex::encode(rand::random::<[u8; 16]>());
    let signed = format!("{nonce}.{}", now_ms() + ttl.as_millis() as u64);
    let state = format!("{signed}.{}", vault.sign(&signed));
    let redirect_uri = redirect.then(|| app.config.oauth.redirect_uri.clone());
    let pending = Pending {
        alias: alias.to_owned(),
        root,
        redirect_uri: redirect_uri.clone(),
    };
    let value = serde_json::to_vec(&pending).expect("a pending link serializes");
    app.store
        .set(&pending_name(&nonce), &value, Some(ttl))
        .await?;
    let mut q = form_urlencoded::Serializer::new(String::new());
    q.append_pair("client_id", app_key)
        .append_pair("response_type", "code")
        .append_pair("token_access_type", "offline")
        .append_pair("code_challenge", &challenge(&vault.derive(&nonce)))
        .append_pair("code_challenge_method", "S256")
        .append_pair("state", &state);
    if let Some(uri) = &redirect_uri {
        q.append_pair("redirect_uri", uri);
    }
    Ok(Started {
        authorize_url: format!("{}?{}", app.config.dropbox.endpoints.authorize, q.finish()),
    })
}

/// Finishes a link from what Dropbox sent back (`code`, or `error`, with `state`): the
/// account is stored (its refresh token sealed) and published here and on every instance,
/// replacing an earlier link of the same alias.
pub async fn finish(
    app: &App,
    state: &str,
    code: Option<&str>,
    error: Option<&str>,
) -> Result<Arc<Account>, LinkError> {
    let (vault, app_key) = keys(app)?;
    // 1. state: ours, in time, unused
    let (signed, signature) = state
        .rsplit_once('.')
        .ok_or(LinkError::BadState("not ours"))?;
    if !vault.verify(signed, signature) {
        return Err(LinkError::BadState("not ours"));
    }
    let (nonce, expiry) = signed
        .split_once('.')
        .ok_or(LinkError::BadState("not ours"))?;
    if expiry.parse::<u64>().map_or(true, |e| e <= now_ms()) {
        return Err(LinkError::BadState("expired"));
    }
    let pending: Pending = app
        .store
        .take(&pending_name(nonce))
        .await?
        .and_then(|v| serde_json::from_slice(&v).ok())
        .ok_or(LinkError::BadState("used already"))?;
    // 2. the code, for tokens
    if let Some(e) = error {
        return Err(LinkError::Denied(e.chars().take(64).collect()));
    }
    let code = code.ok_or(LinkError::Denied("no code".into()))?;
    linkable(app, &pending.alias)?;
    let dropbox = &app.dropbox;
    let token = dropbox
        .exchange_code(
            app_key,
            code,
            &vault.derive(nonce),
            pending.redirect_uri.as_deref(),
        )
        .await
        .map_err(LinkError::Dropbox)?;
    let refresh_token = Secret::new(token.refresh_token.ok_or(LinkError::NoRefreshToken)?);
    // 3. whose Dropbox
    let fresh = TokenSet::new(Some(Secret::new(token.access_token)), None);
    let who = dropbox
        .current_account(&fresh)
        .await
        .map_err(LinkError::Dropbox)?;
    let linked = Linked {
        account_id: who.account_id,
        name: who.name.display_name,
        email: who.email,
        linked_ms: now_ms(),
    };
    // 4. stored, then published (here at once, elsewhere on the message)
    let record =
        app.accounts
            .record_for(vault, &pending.alias, &pending.root, linked, &refresh_token);
    let value = serde_json::to_vec(&record).expect("a record serializes");
    app.store
        .set(&AccountRecord::name(&pending.alias), &value, None)
        .await?;
    let account = app
        .accounts
        .from_record(&record)
        .expect("a record made with the vault opens");
    let old = app.accounts.insert(account.clone());
    forget(app, &pending.alias).await;
    app.feeds.follow(account.clone()).await;
    app.feeds.announce_account(&pending.alias).await;
    tracing::info!(alias = %pending.alias, root = %pending.root, replaced = old.is_some(), "account linked");
    if let Some(old) = old {
        // The earlier link's tokens are of no more use: revoke them, in the background.
        let dropbox = app.dropbox.clone();
        tokio::spawn(async move {
            if let Err(e) = dropbox.revoke(&old.tokens).await {
                tracing::warn!(alias = %old.alias, error = %e, "cannot revoke the replaced link's token");
            }
        });
    }
    Ok(account)
}

/// Stops publishing the linked account `alias` (at once, here and on every instance), revokes
/// its token at Dropbox and deletes it from the store with everything cached of it.
pub async fn unlink(app: &App, alias: &str) -> Result<Unlinked, LinkError> {
    if app.accounts.is_configured(alias) {
        return Err(LinkError::Configured(alias.to_owned()));
    }
    let name = AccountRecord::name(alias);
    let stored = app.store.get(&name).await?;
    let Some(account) = app.accounts.remove(alias) else {
        if stored.is_some() {
            // Known to the store only (e.g. it could not be unsealed here): delete it.
            app.store.delete(&name).await?;
            app.feeds.announce_account(alias).await;
            return Ok(Unlinked {
                revoked: Err(UpstreamError::Relink),
            });
        }
        return Err(LinkError::Unknown(alias.to_owned()));
    };
    app.feeds.unfollow(alias).await;
    app.store.delete(&name).await?;
    app.feeds.announce_account(alias).await;
    forget(app, alias).await;
    let revoked = app.dropbox.revoke(&account.tokens).await;
    match &revoked {
        Ok(()) => tracing::info!(alias, "account unlinked; its token is revoked"),
        Err(e) => {
            tracing::warn!(alias, error = %e, "account unlinked, but its token could not be revoked")
        }
    }
    Ok(Unlinked { revoked })
}

/// Drops the cached metadata and the feed's cursor of `alias`.
async fn forget(app: &App, alias: &str) {
    if let Err(e) = app.meta.forget_account(alias).await {
        tracing::warn!(alias, error = %e, "cannot drop a re-linked account's cache");
    }
    if let Err(e) = app
        .store
        .delete(&crate::meta::feed::record_name(alias))
        .await
    {
        tracing::warn!(alias, error = %e, "cannot drop a re-linked account's cursor");
    }
}
