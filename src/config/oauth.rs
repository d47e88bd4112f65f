//! `[oauth]`: linking accounts through OAuth (the redirect URI, the key that seals refresh
//! tokens and signs `state`, how long a started link may take).

use super::raw::RawOauth;
use super::units::{duration, url};
use super::{ConfigError, invalid};
use crate::secret::Secret;
use base64::Engine;
use std::net::SocketAddr;
use std::time::Duration;

/// Linking accounts through OAuth (reference §5).
#[derive(Debug, Clone)]
pub struct OauthConfig {
    /// Where Dropbox sends the browser back: this proxy's `/oauth/callback`.
    pub redirect_uri: String,
    /// 32 bytes: seals refresh tokens at rest and signs OAuth `state`. None: linking is off.
    pub secret_key: Option<Secret<[u8; 32]>>,
    /// How long a started link may take to come back.
    pub state_ttl: Duration,
}

/// `[oauth]`; the redirect URI defaults to `server.listen`'s port, and `env` may hold the key
/// (`DROPCACHE_SECRET_KEY`).
pub(super) fn oauth(
    o: RawOauth,
    env: &dyn Fn(&str) -> Option<String>,
    listen: SocketAddr,
) -> Result<OauthConfig, ConfigError> {
    let redirect_uri = url(
        "oauth.redirect_uri",
        o.redirect_uri,
        &format!("http://localhost:{}/oauth/callback", listen.port()),
    )?;
    let secret_key = match o.secret_key.or_else(|| env("DROPCACHE_SECRET_KEY")) {
        None => None,
        Some(text) if text.is_empty() => None,
        // SECURITY: never echo the key.
        Some(text) => Some(Secret::new(
            base64::engine::general_purpose::STANDARD
                .decode(text.trim())
                .ok()
                .and_then(|k| <[u8; 32]>::try_from(k).ok())
                .ok_or_else(|| {
                    invalid(
                        "oauth.secret_key",
                        "must be 32 bytes in base64 (e.g. from `openssl rand -base64 32`)",
                    )
                })?,
        )),
    };
    let oauth = OauthConfig {
        redirect_uri,
        secret_key,
        state_ttl: duration("oauth.state_ttl", o.state_ttl, "10m")?,
    };
    if oauth.state_ttl.is_zero() {
        return Err(invalid("oauth.state_ttl", "must be above zero"));
    }
    Ok(oauth)
}
