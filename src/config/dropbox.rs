//! `[dropbox]`: Dropbox's hosts, the app's key and secret, and how calls to Dropbox are made
//! (timeouts, retries, the rate-limit budget, concurrency caps, refreshing tokens ahead).

use super::raw::RawDropbox;
use super::units::{duration, url};
use super::{ConfigError, invalid};
use crate::secret::Secret;
use std::path::PathBuf;
use std::time::Duration;

/// Base URLs of Dropbox's hosts (no trailing slash).
#[derive(Debug, Clone)]
pub struct Endpoints {
    pub api: String,
    pub content: String,
    pub notify: String,
    /// Where `/oauth2/token` lives.
    pub oauth: String,
    /// The browser's authorize page (a full URL).
    pub authorize: String,
}

impl Default for Endpoints {
    fn default() -> Self {
        Endpoints {
            api: "https://api.dropboxapi.com".into(),
            content: "https://content.dropboxapi.com".into(),
            notify: "https://notify.dropboxapi.com".into(),
            oauth: "https://api.dropboxapi.com".into(),
            authorize: "https://www.dropbox.com/oauth2/authorize".into(),
        }
    }
}

impl Endpoints {
    /// All four on one base URL (the emulator).
    pub fn single(base: &str) -> Self {
        let base = base.trim_end_matches('/').to_owned();
        Endpoints {
            api: base.clone(),
            content: base.clone(),
            notify: base.clone(),
            authorize: format!("{base}/oauth2/authorize"),
            oauth: base,
        }
    }
}

#[derive(Debug, Clone)]
pub struct DropboxConfig {
    pub endpoints: Endpoints,
    pub app_key: Option<String>,
    pub app_secret: Option<Secret<String>>,
    pub ca_file: Option<PathBuf>,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    pub max_retries: u32,
    pub rate_limit_budget: Duration,
    /// Most Dropbox calls in flight at once, overall and per account (longpolls aside).
    pub max_concurrent: usize,
    pub max_concurrent_per_account: usize,
    /// Access tokens with a known expiry are refreshed this long before it.
    pub refresh_ahead: Duration,
}

/// `[dropbox]`; `env` may hold the app secret (`DROPCACHE_APP_SECRET`).
pub(super) fn dropbox(
    d: RawDropbox,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<DropboxConfig, ConfigError> {
    let defaults = Endpoints::default();
    let endpoints = Endpoints {
        api: url("dropbox.api_url", d.api_url, &defaults.api)?,
        content: url("dropbox.content_url", d.content_url, &defaults.content)?,
        notify: url("dropbox.notify_url", d.notify_url, &defaults.notify)?,
        oauth: url("dropbox.oauth_url", d.oauth_url, &defaults.oauth)?,
        authorize: url(
            "dropbox.authorize_url",
            d.authorize_url,
            &defaults.authorize,
        )?,
    };
    let app_secret = d
        .app_secret
        .or_else(|| env("DROPCACHE_APP_SECRET"))
        .map(Secret::new);
    let max_retries = d.max_retries.unwrap_or(3);
    if max_retries > 10 {
        return Err(invalid("dropbox.max_retries", "must be at most 10"));
    }
    if let Some(ca) = &d.ca_file
        && !ca.is_file()
    {
        return Err(invalid(
            "dropbox.ca_file",
            format!("{} is not a readable file", ca.display()),
        ));
    }
    let dropbox = DropboxConfig {
        endpoints,
        app_key: d.app_key.filter(|k| !k.is_empty()),
        app_secret,
        ca_file: d.ca_file,
        connect_timeout: duration("dropbox.connect_timeout", d.connect_timeout, "5s")?,
        read_timeout: duration("dropbox.read_timeout", d.read_timeout, "30s")?,
        max_retries,
        rate_limit_budget: duration("dropbox.rate_limit_budget", d.rate_limit_budget, "5s")?,
        max_concurrent: d.max_concurrent.unwrap_or(64),
        max_concurrent_per_account: d.max_concurrent_per_account.unwrap_or(16),
        refresh_ahead: duration("dropbox.refresh_ahead", d.refresh_ahead, "5m")?,
    };
    if dropbox.max_concurrent == 0 {
        return Err(invalid("dropbox.max_concurrent", "must be at least 1"));
    }
    if dropbox.max_concurrent_per_account == 0 {
        return Err(invalid(
            "dropbox.max_concurrent_per_account",
            "must be at least 1",
        ));
    }
    if dropbox.read_timeout.is_zero() || dropbox.connect_timeout.is_zero() {
        return Err(invalid(
            "dropbox.read_timeout",
            "timeouts must be above zero",
        ));
    }
    Ok(dropbox)
}
