//! Accounts: an alias in the URL → the Dropbox published root and the tokens that reach it.
//!
//! For now accounts come from the config. Each is recorded in the store at start-up (alias,
//! published root, how it authenticates: no token) so other instances and tools can see what is
//! published; the tokens stay in process, because secrets at rest wait for encryption, which
//! arrives with account linking. Lookups never touch the store: the registry is in memory.

use crate::config::{AccountConfig, DropboxConfig};
use crate::meta::feed::FeedStatus;
use crate::store::{Store, StoreError};
use crate::upstream::client::{RefreshGrant, TokenSet};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;

/// Version of the stored account record.
const RECORD_VERSION: u32 = 1;

/// One published Dropbox.
#[derive(Debug)]
pub struct Account {
    pub alias: String,
    /// `""` (the whole Dropbox, or the app folder) or `/Folder`, as configured.
    pub root: String,
    pub tokens: TokenSet,
    /// What this instance knows of the account's change feed.
    pub feed: FeedStatus,
}

impl Account {
    /// The Dropbox path of `display` (`""` or `/a/b`) under the published root.
    ///
    /// SECURITY: `display` has been through `normalize`, so it has no `.`/`..` segments and
    /// cannot leave the root; this is the only place request paths become Dropbox paths.
    pub fn dropbox_path(&self, display: &str) -> String {
        format!("{}{display}", self.root)
    }

    /// The store key prefix of this account's entries.
    pub fn key(&self) -> &str {
        &self.alias
    }
}

/// What the store keeps of an account (no secrets).
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccountRecord {
    pub v: u32,
    pub alias: String,
    pub root: String,
    /// `access_token` or `refresh_token`.
    pub auth: String,
}

/// Every account, by alias.
#[derive(Debug, Default)]
pub struct Accounts {
    by_alias: HashMap<String, Arc<Account>>,
}

impl Accounts {
    /// Builds the registry from the validated config.
    pub fn from_config(accounts: &[AccountConfig], dropbox: &DropboxConfig) -> Accounts {
        let by_alias = accounts
            .iter()
            .map(|a| {
                let refresh = a.refresh_token.clone().map(|refresh_token| RefreshGrant {
                    refresh_token,
                    // Validation guarantees an app key when there is a refresh token.
                    app_key: dropbox.app_key.clone().unwrap_or_default(),
                    app_secret: dropbox.app_secret.clone(),
                });
                let account = Account {
                    alias: a.alias.clone(),
                    root: a.root.clone(),
                    tokens: TokenSet::new(a.access_token.clone(), refresh)
                        .with_max_concurrent(dropbox.max_concurrent_per_account),
                    feed: FeedStatus::default(),
                };
                (a.alias.clone(), Arc::new(account))
            })
            .collect();
        Accounts { by_alias }
    }

    /// Every account.
    pub fn all(&self) -> Vec<Arc<Account>> {
        self.by_alias.values().cloned().collect()
    }

    /// The account published as `alias`, if any.
    pub fn lookup(&self, alias: &str) -> Option<Arc<Account>> {
        self.by_alias.get(alias).cloned()
    }

    pub fn len(&self) -> usize {
        self.by_alias.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_alias.is_empty()
    }

    /// Writes each account's record (`account:<alias>`) to the store.
    pub async fn record(&self, store: &Store) -> Result<(), StoreError> {
        for a in self.by_alias.values() {
            let record = AccountRecord {
                v: RECORD_VERSION,
                alias: a.alias.clone(),
                root: a.root.clone(),
                auth: if a.tokens.has_refresh() {
                    "refresh_token".into()
                } else {
                    "access_token".into()
                },
            };
            let value = serde_json::to_vec(&record).expect("a record serializes");
            store
                .set(&format!("account:{}", a.alias), &value, None)
                .await?;
        }
        Ok(())
    }
}
