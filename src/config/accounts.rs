//! `[[account]]` and `[[shared_link]]`: the published accounts (alias, root, tokens from the
//! file or the environment) and shared links, each checked against `[dropbox]`.

use super::dropbox::DropboxConfig;
use super::raw::{RawAccount, RawSharedLink};
use super::{ConfigError, invalid};
use crate::http::route::{is_reserved, valid_alias};
use crate::secret::Secret;
use std::collections::HashSet;

#[derive(Debug, Clone)]
pub struct AccountConfig {
    pub alias: String,
    /// The published folder: `""` (the whole Dropbox) or `/Folder`.
    pub root: String,
    pub access_token: Option<Secret<String>>,
    pub refresh_token: Option<Secret<String>>,
    /// Other origins that may read its files (`cors`); None: no CORS.
    pub cors: Option<crate::http::cors::Policy>,
}

/// A shared link published under `/s/<name>/`.
#[derive(Debug, Clone)]
pub struct SharedLinkConfig {
    pub name: String,
    pub url: String,
    pub password: Option<Secret<String>>,
}

/// A published root: `""` (everything) or an absolute Dropbox path with no empty, `.` or `..`
/// segment (a trailing `/` is dropped); None when it is not one.
pub fn parse_root(text: &str) -> Option<String> {
    let root = text.trim_end_matches('/');
    let ok = (root.is_empty() || root.starts_with('/'))
        && root.len() <= 1024
        && !root.chars().any(char::is_control)
        && !root
            .split('/')
            .skip(1)
            .any(|s| s.is_empty() || s == "." || s == ".." || s.contains('\\'));
    ok.then(|| root.to_owned())
}

/// The environment variable name for an account secret.
pub fn account_env(alias: &str, what: &str) -> String {
    format!(
        "DROPCACHE_ACCOUNT_{}_{what}",
        alias.to_uppercase().replace('-', "_")
    )
}

/// `[[shared_link]]`: names unique and valid; reading them needs the app's key and secret.
pub(super) fn shared_links(
    raw: Vec<RawSharedLink>,
    dropbox: &DropboxConfig,
) -> Result<Vec<SharedLinkConfig>, ConfigError> {
    let mut shared_links = Vec::new();
    let mut names = HashSet::new();
    for (i, l) in raw.into_iter().enumerate() {
        let key = |k: &str| format!("shared_link[{i}].{k}");
        if !valid_alias(&l.name) {
            return Err(invalid(
                key("name"),
                format!("{:?} must be 1-64 of a-z, 0-9, '-', '_'", l.name),
            ));
        }
        if !names.insert(l.name.clone()) {
            return Err(invalid(key("name"), format!("{:?} is used twice", l.name)));
        }
        if !l.url.starts_with("https://") {
            return Err(invalid(
                key("url"),
                "must be a Dropbox shared link (https://www.dropbox.com/...)",
            ));
        }
        shared_links.push(SharedLinkConfig {
            name: l.name,
            url: l.url,
            password: l.password.map(Secret::new),
        });
    }
    if !shared_links.is_empty() && (dropbox.app_key.is_none() || dropbox.app_secret.is_none()) {
        return Err(invalid(
            "dropbox.app_secret",
            "shared links are read with the app's key and secret: set both",
        ));
    }
    Ok(shared_links)
}

/// `[[account]]`: aliases unique, valid and not reserved; each with a token (from the file or
/// `env`), and a refresh token only with the app key.
pub(super) fn accounts(
    raw: Vec<RawAccount>,
    env: &dyn Fn(&str) -> Option<String>,
    dropbox: &DropboxConfig,
) -> Result<Vec<AccountConfig>, ConfigError> {
    let mut seen = HashSet::new();
    let mut accounts = Vec::new();
    for (i, a) in raw.into_iter().enumerate() {
        let key = |k: &str| format!("account[{i}].{k}");
        if !valid_alias(&a.alias) {
            return Err(invalid(
                key("alias"),
                format!("{:?} must be 1-64 of a-z, 0-9, '-', '_'", a.alias),
            ));
        }
        if is_reserved(&a.alias) {
            return Err(invalid(
                key("alias"),
                format!("{:?} is reserved for the proxy's own endpoints", a.alias),
            ));
        }
        if !seen.insert(a.alias.clone()) {
            return Err(invalid(
                key("alias"),
                format!("{:?} is used twice", a.alias),
            ));
        }
        let root = parse_root(&a.root).ok_or_else(|| {
            invalid(
                key("root"),
                format!(
                    "{:?} must be \"\" or an absolute Dropbox path like \"/Public\"",
                    a.root
                ),
            )
        })?;
        let access_token = a
            .access_token
            .or_else(|| env(&account_env(&a.alias, "ACCESS_TOKEN")))
            .filter(|t| !t.is_empty())
            .map(Secret::new);
        let refresh_token = a
            .refresh_token
            .or_else(|| env(&account_env(&a.alias, "REFRESH_TOKEN")))
            .filter(|t| !t.is_empty())
            .map(Secret::new);
        if access_token.is_none() && refresh_token.is_none() {
            return Err(invalid(
                key("access_token"),
                format!(
                    "account {:?} needs access_token or refresh_token (or {})",
                    a.alias,
                    account_env(&a.alias, "ACCESS_TOKEN")
                ),
            ));
        }
        if refresh_token.is_some() && dropbox.app_key.is_none() {
            return Err(invalid(
                "dropbox.app_key",
                format!(
                    "account {:?} has a refresh_token, which needs the app key",
                    a.alias
                ),
            ));
        }
        let cors = super::cors::cors(&format!("account[{i}]"), a.cors)?;
        accounts.push(AccountConfig {
            alias: a.alias,
            root,
            access_token,
            refresh_token,
            cors,
        });
    }
    Ok(accounts)
}
