//! Everything the emulator remembers: accounts and their namespaces, access and refresh tokens,
//! OAuth codes, shared links and temporary links.

use super::tree::{Backing, Namespace, lower};
use super::wire::ApiError;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::watch;

/// One account to serve.
#[derive(Debug, Clone)]
pub struct AccountSpec {
    pub name: String,
    /// A fixed, never-expiring access token.
    pub token: Option<String>,
    /// Files on disk; `None` keeps them in memory.
    pub root: Option<PathBuf>,
}

impl std::str::FromStr for AccountSpec {
    type Err = String;

    /// `NAME[:TOKEN[:DIR]]`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut parts = s.splitn(3, ':');
        let name = parts.next().unwrap_or_default();
        if name.is_empty() {
            return Err(format!("bad account {s:?}: expected NAME[:TOKEN[:DIR]]"));
        }
        Ok(AccountSpec {
            name: name.to_owned(),
            token: parts.next().filter(|t| !t.is_empty()).map(str::to_owned),
            root: parts.next().map(PathBuf::from),
        })
    }
}

pub struct Account {
    pub name: String,
    /// `dbid:` + 35 chars, exactly 40.
    pub account_id: String,
    /// The legacy numeric id (`uid` in token answers, `delta.users` in webhooks).
    pub uid: u64,
    pub email: String,
    pub ns: Namespace,
    /// The namespace's journal position, for longpolls.
    pub changes: watch::Sender<u64>,
}

impl Account {
    pub fn new(spec: &AccountSpec, index: usize) -> std::io::Result<Self> {
        let digest = Sha256::digest(format!("dropcache-emulator:{}", spec.name).as_bytes());
        let account_id = format!("dbid:{}", &URL_SAFE_NO_PAD.encode(digest)[..35]);
        let backing = match &spec.root {
            Some(dir) => Backing::Disk(dir.clone()),
            None => Backing::Memory,
        };
        let ns = Namespace::new(backing)?;
        let (changes, _) = watch::channel(ns.seq());
        Ok(Account {
            email: format!("{}@example.com", lower(&spec.name).replace(' ', ".")),
            name: spec.name.clone(),
            account_id,
            uid: 100_000 + index as u64,
            ns,
            changes,
        })
    }

    /// `root_namespace_id` / `home_namespace_id`: digits, stable per account.
    pub fn namespace_id(&self) -> String {
        (3_000_000_000u64 + self.uid).to_string()
    }
}

pub struct AccessToken {
    pub account: usize,
    /// `None` for fixed tokens given on the command line.
    pub expires: Option<Instant>,
    /// The refresh token it was minted from.
    pub refresh: Option<String>,
}

pub struct RefreshGrant {
    pub account: usize,
    pub scope: String,
    /// Came from a PKCE flow: refreshing needs no client secret.
    pub pkce: bool,
}

pub struct CodeGrant {
    pub account: usize,
    pub redirect_uri: Option<String>,
    /// (method, challenge).
    pub challenge: Option<(String, String)>,
    pub offline: bool,
    pub scope: String,
    pub created: Instant,
}

pub struct Link {
    /// The part of the URL after `/scl/fi/` or `/scl/fo/`.
    pub key: String,
    pub rlkey: String,
    pub url: String,
    pub account: usize,
    /// The file or folder it points to (follows moves).
    pub node_id: String,
    pub is_folder: bool,
    pub password: Option<String>,
    pub expires: Option<SystemTime>,
}

pub struct TempLink {
    pub account: usize,
    pub node_id: String,
    pub expires: Instant,
}

/// The emulator's whole state, behind one mutex.
#[derive(Default)]
pub struct World {
    pub accounts: Vec<Account>,
    pub tokens: HashMap<String, AccessToken>,
    pub refresh: HashMap<String, RefreshGrant>,
    pub codes: HashMap<String, CodeGrant>,
    pub links: Vec<Link>,
    pub temp_links: HashMap<String, TempLink>,
    /// The account signed in to the browser: `/oauth2/authorize` approves for it.
    pub signed_in: usize,
}

/// A random URL-safe secret of `bytes` bytes.
pub fn secret(bytes: usize) -> String {
    let raw: Vec<u8> = (0..bytes).map(|_| rand::random::<u8>()).collect();
    URL_SAFE_NO_PAD.encode(raw)
}

impl World {
    pub fn new(specs: &[AccountSpec]) -> std::io::Result<Self> {
        let mut world = World::default();
        for spec in specs {
            world.add_account(spec)?;
        }
        Ok(world)
    }

    pub fn add_account(&mut self, spec: &AccountSpec) -> std::io::Result<usize> {
        let index = self.accounts.len();
        self.accounts.push(Account::new(spec, index)?);
        if let Some(token) = &spec.token {
            self.tokens.insert(
                token.clone(),
                AccessToken {
                    account: index,
                    expires: None,
                    refresh: None,
                },
            );
        }
        Ok(index)
    }

    /// The account a Bearer token acts for.
    pub fn user(&self, token: &str) -> Result<usize, ApiError> {
        let t = self
            .tokens
            .get(token)
            .ok_or(ApiError::Auth("invalid_access_token"))?;
        if t.expires.is_some_and(|e| e <= Instant::now()) {
            return Err(ApiError::Auth("expired_access_token"));
        }
        Ok(t.account)
    }

    /// Mints a short-lived access token.
    pub fn mint(&mut self, account: usize, refresh: Option<String>, life: Duration) -> String {
        let token = format!("sl.{}", secret(48));
        self.tokens.insert(
            token.clone(),
            AccessToken {
                account,
                expires: Some(Instant::now() + life),
                refresh,
            },
        );
        token
    }

    /// `auth/token/revoke`: the token, its refresh token, and every token minted from that.
    pub fn revoke(&mut self, token: &str) {
        if let Some(t) = self.tokens.remove(token)
            && let Some(rt) = t.refresh
        {
            self.refresh.remove(&rt);
            self.tokens
                .retain(|_, o| o.refresh.as_deref() != Some(rt.as_str()));
        }
    }

    /// Forced expiry: the named token, or every token that can be refreshed.
    pub fn expire(&mut self, token: Option<&str>) -> usize {
        let past = Instant::now();
        let mut n = 0;
        for (k, t) in self.tokens.iter_mut() {
            let hit = match token {
                Some(only) => k == only,
                None => t.refresh.is_some(),
            };
            if hit {
                t.expires = Some(past);
                n += 1;
            }
        }
        n
    }

    pub fn account_by_id(&self, account_id: &str) -> Option<usize> {
        self.accounts
            .iter()
            .position(|a| a.account_id == account_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_ids_are_40_chars_and_stable() {
        let spec: AccountSpec = "alice:tok".parse().unwrap();
        let a = Account::new(&spec, 0).unwrap();
        assert_eq!(a.account_id.len(), 40);
        assert!(a.account_id.starts_with("dbid:"));
        assert_eq!(a.account_id, Account::new(&spec, 3).unwrap().account_id);
        assert!("".parse::<AccountSpec>().is_err());
        let s: AccountSpec = "bob::/tmp/x".parse().unwrap();
        assert_eq!((s.token, s.root), (None, Some(PathBuf::from("/tmp/x"))));
    }

    #[test]
    fn revoke_takes_the_refresh_family() {
        let mut w = World::new(&["a:fixed".parse().unwrap()]).unwrap();
        w.refresh.insert(
            "rt".into(),
            RefreshGrant {
                account: 0,
                scope: String::new(),
                pkce: false,
            },
        );
        let t1 = w.mint(0, Some("rt".into()), Duration::from_secs(60));
        let t2 = w.mint(0, Some("rt".into()), Duration::from_secs(60));
        assert_eq!(w.user(&t2).unwrap(), 0);
        w.revoke(&t1);
        assert!(matches!(
            w.user(&t2),
            Err(ApiError::Auth("invalid_access_token"))
        ));
        assert!(!w.refresh.contains_key("rt"));
        assert_eq!(w.user("fixed").unwrap(), 0);
        assert_eq!(w.expire(Some("fixed")), 1);
        assert!(matches!(
            w.user("fixed"),
            Err(ApiError::Auth("expired_access_token"))
        ));
    }
}
