//! Accounts: an alias in the URL → the Dropbox published root and the tokens that reach it.
//!
//! Accounts come from the config or are linked through OAuth (`server::oauth`). Linked accounts live
//! in the store (`account:<alias>`, the refresh token sealed by the `vault`), so every
//! instance and every restart finds them; config accounts are recorded there too, without
//! secrets, so tools can see what is published. Lookups never touch the store: the registry
//! is in memory, and an instance hears of links and unlinks made elsewhere over pub/sub.

pub mod feed;
pub mod links;
pub mod sites;
pub mod vault;

use crate::config::{AccountConfig, Config, DropboxConfig};
use crate::secret::Secret;
use crate::store::{Store, StoreError};
use crate::upstream::client::{Download, Dropbox, RefreshGrant, TokenSet};
use crate::upstream::error::UpstreamError;
use crate::upstream::types::{
    FileMetadata, FolderMetadata, LinkArg, ListFolderResult, Metadata, SharedLinkMetadata,
};
use feed::FeedStatus;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use vault::Vault;

/// Version of the stored account record.
const RECORD_VERSION: u32 = 1;

/// Where an account comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Config,
    /// Linked through OAuth; what Dropbox said of the account then.
    Linked(Linked),
    /// A shared link, read with the app's key and secret (`/s/<link>/…`).
    Link(LinkRef),
}

/// A shared link (the URL holds its key, so it is a secret) and its password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkRef {
    pub url: Secret<String>,
    pub password: Option<Secret<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Linked {
    pub account_id: String,
    pub name: String,
    pub email: String,
    /// Unix ms of the link (a re-link replaces the account everywhere).
    pub linked_ms: u64,
}

/// One published Dropbox.
#[derive(Debug)]
pub struct Account {
    pub alias: String,
    /// `""` (the whole Dropbox, or the app folder) or `/Folder`.
    pub root: String,
    /// Shared by every shared link (they all spend the app's one rate limit).
    pub tokens: Arc<TokenSet>,
    /// What this instance knows of the account's change feed.
    pub feed: FeedStatus,
    pub origin: Origin,
    /// Blobs served to this account lately (this instance's memory).
    pub used: UsedBlobs,
}

/// The blobs an account has been served lately, so a blob another account brought into the
/// cache is reported as this account's MISS the first time (what other tenants hold is not
/// told), and its own as a HIT. Bounded; forgetting only reports a MISS too many.
#[derive(Debug)]
pub struct UsedBlobs(std::sync::Mutex<lru::LruCache<u64, ()>>);

/// Blob names remembered per account.
const USED_BLOBS: usize = 4096;

impl Default for UsedBlobs {
    /// Empty, and grown as used (a by-URL link may be no more than a name).
    fn default() -> Self {
        UsedBlobs(std::sync::Mutex::new(lru::LruCache::unbounded()))
    }
}

impl UsedBlobs {
    fn id(name: &str) -> u64 {
        use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
        BuildHasherDefault::<DefaultHasher>::default().hash_one(name)
    }

    /// Whether `name` was served to the account lately.
    pub fn contains(&self, name: &str) -> bool {
        let id = Self::id(name);
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
            .is_some()
    }

    /// Notes that `name` was served to the account; whether that is news.
    pub fn insert(&self, name: &str) -> bool {
        let id = Self::id(name);
        let mut used = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let new = used.put(id, ()).is_none();
        if used.len() > USED_BLOBS {
            used.pop_lru();
        }
        new
    }
}

impl Account {
    /// The Dropbox path of `display` (`""` or `/a/b`) under the published root.
    ///
    /// SECURITY: `display` has been through `normalize`, so it has no `.`/`..` segments and
    /// cannot leave the root; this is the only place request paths become Dropbox paths.
    pub fn dropbox_path(&self, display: &str) -> String {
        // Not `format!`: this runs on every request (a hundredth of a 304's CPU that way).
        let mut path = String::with_capacity(self.root.len() + display.len());
        path.push_str(&self.root);
        path.push_str(display);
        path
    }

    /// The store key prefix of this account's entries.
    pub fn key(&self) -> &str {
        &self.alias
    }

    /// The shared link this stands for, if it is one.
    pub fn link(&self) -> Option<&LinkRef> {
        match &self.origin {
            Origin::Link(l) => Some(l),
            _ => None,
        }
    }

    /// Downloads the file at Dropbox path `path` (for a link: the path inside it, `""` for a
    /// file link's own file), optionally a range of it.
    pub async fn download(
        &self,
        dropbox: &Dropbox,
        path: &str,
        range: Option<&str>,
    ) -> Result<Download, UpstreamError> {
        match self.link() {
            None => dropbox.download(&self.tokens, path, range).await,
            Some(link) => {
                dropbox
                    .shared_link_file(&self.tokens, &link.arg(path), range)
                    .await
            }
        }
    }
}

impl Account {
    /// The metadata of the Dropbox path `path`; None for the root of a Dropbox, which has
    /// none. A link's is asked of the link (with app auth) and given the path Dropbox leaves
    /// out.
    pub async fn metadata(
        &self,
        dropbox: &Dropbox,
        path: &str,
    ) -> Result<Option<Metadata>, UpstreamError> {
        let Some(link) = self.link() else {
            if path.is_empty() {
                return Ok(None);
            }
            return dropbox.get_metadata(&self.tokens, path).await.map(Some);
        };
        let (lower, display) = (Some(path.to_lowercase()), Some(path.to_owned()));
        Ok(Some(
            match dropbox
                .shared_link_metadata(&self.tokens, &link.arg(path))
                .await?
            {
                SharedLinkMetadata::Folder(f) => Metadata::Folder(FolderMetadata {
                    name: f.name,
                    path_lower: lower,
                    path_display: display,
                    id: f.id.unwrap_or_default(),
                }),
                file => Metadata::File(FileMetadata {
                    path_lower: lower,
                    path_display: display,
                    ..file.file()
                }),
            },
        ))
    }

    /// The first page of the folder `path` (non-recursive); a link's through the link.
    pub async fn list_folder(
        &self,
        dropbox: &Dropbox,
        path: &str,
    ) -> Result<ListFolderResult, UpstreamError> {
        match self.link() {
            None => dropbox.list_folder(&self.tokens, path, false).await,
            Some(link) => {
                dropbox
                    .list_link_folder(&self.tokens, &link.arg(path))
                    .await
            }
        }
    }

    /// Entries of the folder `path` as Dropbox listed them. Dropbox names no paths in a
    /// link's listing, so a link's entries are given theirs (`path` + `/` + name).
    pub fn place(&self, entries: Vec<Metadata>, path: &str) -> Vec<Metadata> {
        if self.link().is_none() {
            return entries;
        }
        entries
            .into_iter()
            .map(|mut m| {
                let full = format!("{path}/{}", m.name());
                let (lower, shown) = match &mut m {
                    Metadata::File(f) => (&mut f.path_lower, &mut f.path_display),
                    Metadata::Folder(f) => (&mut f.path_lower, &mut f.path_display),
                    Metadata::Deleted(d) => (&mut d.path_lower, &mut d.path_display),
                };
                *lower = Some(full.to_lowercase());
                *shown = Some(full);
                m
            })
            .collect()
    }
}

impl LinkRef {
    /// The `sharing/*` argument for `path` inside the link.
    pub fn arg<'a>(&'a self, path: &'a str) -> LinkArg<'a> {
        LinkArg {
            url: self.url.expose(),
            path,
            password: self.password.as_ref().map(|p| p.expose().as_str()),
        }
    }
}

/// What the store keeps of an account; the only secret, a linked account's refresh token, is
/// sealed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccountRecord {
    pub v: u32,
    pub alias: String,
    pub root: String,
    /// `access_token` or `refresh_token` (from the config), or `linked`.
    pub auth: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub linked: Option<Linked>,
    /// The refresh token, sealed for this alias (`vault::Vault::seal`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed_refresh_token: Option<String>,
}

impl AccountRecord {
    pub fn name(alias: &str) -> String {
        format!("account:{alias}")
    }
}

/// The accounts by alias (hashed with foldhash: a request looks its account up).
type ByAlias = HashMap<String, Arc<Account>, foldhash::fast::RandomState>;

/// Every account, by alias.
#[derive(Debug)]
pub struct Accounts {
    by_alias: RwLock<ByAlias>,
    dropbox: DropboxConfig,
    configured: Vec<AccountConfig>,
    /// None when `oauth.secret_key` is unset: nothing can be linked or unsealed.
    pub vault: Option<Vault>,
}

impl Accounts {
    /// The config's accounts (linked ones are added by `load_linked`).
    pub fn from_config(config: &Config) -> Accounts {
        let accounts = Accounts {
            by_alias: RwLock::default(),
            dropbox: config.dropbox.clone(),
            configured: config.accounts.clone(),
            vault: config.oauth.secret_key.as_ref().map(Vault::new),
        };
        for a in &config.accounts {
            let refresh = a.refresh_token.clone().map(|refresh_token| RefreshGrant {
                refresh_token,
                // Validation guarantees an app key when there is a refresh token.
                app_key: config.dropbox.app_key.clone().unwrap_or_default(),
                app_secret: config.dropbox.app_secret.clone(),
            });
            accounts.insert(Arc::new(Account {
                alias: a.alias.clone(),
                root: a.root.clone(),
                tokens: Arc::new(accounts.tokens(TokenSet::new(a.access_token.clone(), refresh))),
                feed: FeedStatus::default(),
                origin: Origin::Config,
                used: UsedBlobs::default(),
            }));
        }
        accounts
    }

    fn tokens(&self, tokens: TokenSet) -> TokenSet {
        tokens.with_max_concurrent(self.dropbox.max_concurrent_per_account)
    }

    /// Every account.
    pub fn all(&self) -> Vec<Arc<Account>> {
        let mut all: Vec<_> = self.read().values().cloned().collect();
        all.sort_by(|a, b| a.alias.cmp(&b.alias));
        all
    }

    /// The account published as `alias`, if any.
    pub fn lookup(&self, alias: &str) -> Option<Arc<Account>> {
        self.read().get(alias).cloned()
    }

    pub fn len(&self) -> usize {
        self.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }

    /// Whether `alias` is one of the config's (those cannot be linked or unlinked).
    pub fn is_configured(&self, alias: &str) -> bool {
        self.configured.iter().any(|a| a.alias == alias)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, ByAlias> {
        self.by_alias.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, ByAlias> {
        self.by_alias.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Publishes `account`, replacing (and returning) any account of the same alias.
    pub fn insert(&self, account: Arc<Account>) -> Option<Arc<Account>> {
        self.write().insert(account.alias.clone(), account)
    }

    /// Stops publishing `alias`.
    pub fn remove(&self, alias: &str) -> Option<Arc<Account>> {
        self.write().remove(alias)
    }

    /// The account a stored record of a linked account describes. A token that does not
    /// unseal (the key changed) leaves the account needing a re-link.
    pub fn from_record(&self, record: &AccountRecord) -> Option<Arc<Account>> {
        let linked = record.linked.clone()?;
        let refresh = match (&self.vault, &record.sealed_refresh_token) {
            (Some(vault), Some(sealed)) => match vault.open(&record.alias, sealed) {
                Ok(token) => Some(token),
                Err(e) => {
                    tracing::error!(alias = %record.alias, error = %e,
                        "cannot unseal a linked account's refresh token: link it again");
                    None
                }
            },
            _ => {
                tracing::error!(alias = %record.alias,
                    "a linked account needs oauth.secret_key to unseal its refresh token");
                None
            }
        };
        let tokens = match refresh {
            Some(refresh_token) => TokenSet::new(
                None,
                Some(RefreshGrant {
                    refresh_token,
                    app_key: self.dropbox.app_key.clone().unwrap_or_default(),
                    app_secret: self.dropbox.app_secret.clone(),
                }),
            ),
            None => TokenSet::needing_relink(),
        };
        Some(Arc::new(Account {
            alias: record.alias.clone(),
            root: record.root.clone(),
            tokens: Arc::new(self.tokens(tokens)),
            feed: FeedStatus::default(),
            origin: Origin::Linked(linked),
            used: UsedBlobs::default(),
        }))
    }

    /// A record for a newly linked account, its refresh token sealed.
    pub fn record_for(
        &self,
        vault: &Vault,
        alias: &str,
        root: &str,
        linked: Linked,
        refresh_token: &Secret<String>,
    ) -> AccountRecord {
        AccountRecord {
            v: RECORD_VERSION,
            alias: alias.to_owned(),
            root: root.to_owned(),
            auth: "linked".into(),
            linked: Some(linked),
            sealed_refresh_token: Some(vault.seal(alias, refresh_token)),
        }
    }

    /// Writes each config account's record (`account:<alias>`) to the store.
    pub async fn record(&self, store: &Store) -> Result<(), StoreError> {
        for a in &self.configured {
            let record = AccountRecord {
                v: RECORD_VERSION,
                alias: a.alias.clone(),
                root: a.root.clone(),
                auth: if a.refresh_token.is_some() {
                    "refresh_token".into()
                } else {
                    "access_token".into()
                },
                linked: None,
                sealed_refresh_token: None,
            };
            let value = serde_json::to_vec(&record).expect("a record serializes");
            store
                .set(&AccountRecord::name(&a.alias), &value, None)
                .await?;
        }
        Ok(())
    }

    /// Publishes every linked account in the store (config aliases win).
    pub async fn load_linked(&self, store: &Store) -> Result<usize, StoreError> {
        let mut loaded = 0;
        for (_, value) in store.list(&AccountRecord::name("")).await? {
            let Ok(record) = serde_json::from_slice::<AccountRecord>(&value) else {
                tracing::warn!("ignoring an unreadable account record");
                continue;
            };
            if record.v != RECORD_VERSION || self.is_configured(&record.alias) {
                continue;
            }
            if let Some(account) = self.from_record(&record) {
                self.insert(account);
                loaded += 1;
            }
        }
        Ok(loaded)
    }

    /// Brings `alias` in line with its stored record (another instance linked or unlinked
    /// it). Returns the account that went (if any) and the one that came (if any).
    pub async fn reload(
        &self,
        store: &Store,
        alias: &str,
    ) -> Result<(Option<Arc<Account>>, Option<Arc<Account>>), StoreError> {
        if self.is_configured(alias) {
            return Ok((None, None));
        }
        let record = store
            .get(&AccountRecord::name(alias))
            .await?
            .and_then(|v| serde_json::from_slice::<AccountRecord>(&v).ok());
        let current = self.lookup(alias);
        match record.and_then(|r| self.from_record(&r)) {
            Some(new) => {
                if current.as_ref().is_some_and(|c| c.origin == new.origin) {
                    return Ok((None, None));
                }
                Ok((self.insert(new.clone()), Some(new)))
            }
            None => Ok((self.remove(alias), None)),
        }
    }
}
