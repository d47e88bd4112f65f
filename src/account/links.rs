//! Shared links (`GET /s/<link>/<path>`), read with the app's key and secret alone (reference
//! §4). `<link>` is a name from the config (`[[shared_link]]`) or, when `sharing.by_url` allows
//! it, the link's URL itself, percent-encoded into one segment. Each link is served like an
//! account whose root is the link: the same metadata cache, body cache and ETag / 304 / Range
//! answers; a folder answers its metadata and contents as JSON in the manner of Dropbox's old
//! `/metadata/link`.
//!
//! SECURITY: a link named by URL is a stranger's content on the operator's origin: off by
//! default, keyed by its canonical form (one cache key and one blob per link, whatever its
//! query string), and answered with `Content-Security-Policy: sandbox`. Every link spends the
//! app's one rate limit: they share one governor, so cycling URLs forgets nothing.

use super::feed::FeedStatus;
use super::{Account, LinkRef, Origin};
use crate::config::Config;
use crate::http::route::valid_alias;
use crate::secret::Secret;
use crate::upstream::client::TokenSet;
use lru::LruCache;
use percent_encoding::percent_decode_str;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};

/// Links named by URL kept at once (each holds its governor; the cache is by key anyway).
const BY_URL: usize = 1024;

/// The shared links this proxy serves: the config's by name, others by URL as asked.
pub struct Links {
    named: HashMap<String, Arc<Account>>,
    by_url: Mutex<LruCache<String, Arc<Account>>>,
    /// The app's credentials and governor, shared by every link; None: no link can be read
    /// (links need app auth).
    app: Option<Arc<TokenSet>>,
    /// Links named by URL are served (`sharing.by_url`).
    by_url_allowed: bool,
}

impl Links {
    pub fn from_config(config: &Config) -> Links {
        let d = &config.dropbox;
        let app = d
            .app_key
            .as_ref()
            .zip(d.app_secret.as_ref())
            .map(|(key, secret)| {
                Arc::new(
                    TokenSet::app(key, secret).with_max_concurrent(d.max_concurrent_per_account),
                )
            });
        let mut links = Links {
            named: HashMap::new(),
            by_url: Mutex::new(LruCache::new(NonZeroUsize::new(BY_URL).expect("non-zero"))),
            app,
            by_url_allowed: config.shared_links_by_url,
        };
        for l in &config.shared_links {
            // Validation guarantees the app's key and secret when links are configured.
            if let Some(account) = links.account(&l.name, &l.url, l.password.clone()) {
                links.named.insert(l.name.clone(), account);
            }
        }
        links
    }

    /// An account standing for one link, keyed `~<name>` in the caches.
    fn account(
        &self,
        key: &str,
        url: &str,
        password: Option<Secret<String>>,
    ) -> Option<Arc<Account>> {
        Some(Arc::new(Account {
            alias: format!("~{key}"),
            root: String::new(),
            tokens: self.app.clone()?,
            feed: FeedStatus::default(),
            origin: Origin::Link(LinkRef {
                url: Secret::new(url.to_owned()),
                password,
            }),
            used: Default::default(),
        }))
    }

    /// The link a request's first segment names (still percent-encoded), and whether it was
    /// named by URL (a stranger's content: its answers are sandboxed).
    ///
    /// SECURITY: a URL is served only when `sharing.by_url` allows it, and must be a Dropbox
    /// shared link (https, a dropbox.com host): the app's credentials are never sent anywhere
    /// else, and nothing else is fetched.
    pub fn resolve(&self, segment: &str) -> Option<(Arc<Account>, bool)> {
        let decoded = percent_decode_str(segment).decode_utf8().ok()?;
        if valid_alias(&decoded) {
            return self
                .named
                .get(decoded.as_ref())
                .cloned()
                .map(|a| (a, false));
        }
        if !self.by_url_allowed {
            return None;
        }
        let url = canonical(&decoded)?;
        let mut cache = self.by_url.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(a) = cache.get(&url) {
            return Some((a.clone(), true));
        }
        let key = hex::encode(&Sha256::digest(url.as_bytes())[..16]);
        let account = self.account(&key, &url, None)?;
        cache.put(url, account.clone());
        Some((account, true))
    }
}

/// The one form of a Dropbox shared link (`https://www.dropbox.com/s/…`, `/sh/…`, `/scl/fi/…`,
/// `/scl/fo/…`, any dropbox.com host): https, the host lowercased (`dropbox.com` as
/// `www.dropbox.com`), the path as given, and of the query only `rlkey` (the link's key; `dl`,
/// `raw` and the rest change nothing Dropbox serves). None if it is not such a link.
fn canonical(url: &str) -> Option<String> {
    let uri = url.parse::<hyper::Uri>().ok()?;
    let host = uri.host()?.to_ascii_lowercase();
    let path = uri.path();
    let ok = uri.scheme_str() == Some("https")
        && (host == "dropbox.com" || host.ends_with(".dropbox.com"))
        && uri.port().is_none()
        && ["/s/", "/sh/", "/scl/fi/", "/scl/fo/"]
            .iter()
            .any(|p| path.starts_with(p));
    if !ok {
        return None;
    }
    let host = if host == "dropbox.com" {
        "www.dropbox.com"
    } else {
        &host
    };
    let rlkey = uri.query().and_then(|q| {
        form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "rlkey")
            .map(|(_, v)| v.into_owned())
    });
    Some(match rlkey {
        Some(key) => format!(
            "https://{host}{path}?rlkey={}",
            form_urlencoded::byte_serialize(key.as_bytes()).collect::<String>()
        ),
        None => format!("https://{host}{path}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_dropbox_shared_links_are_fetched_in_one_form() {
        for (given, want) in [
            (
                "https://www.dropbox.com/scl/fo/abc/def?rlkey=x&dl=0",
                "https://www.dropbox.com/scl/fo/abc/def?rlkey=x",
            ),
            (
                "https://WWW.Dropbox.com/scl/fo/abc/def?dl=1&st=zz&rlkey=x",
                "https://www.dropbox.com/scl/fo/abc/def?rlkey=x",
            ),
            (
                "https://www.dropbox.com/scl/fi/abc/a.jpg?rlkey=x",
                "https://www.dropbox.com/scl/fi/abc/a.jpg?rlkey=x",
            ),
            (
                "https://dropbox.com/s/abc/a.jpg?dl=0",
                "https://www.dropbox.com/s/abc/a.jpg",
            ),
            (
                "https://www.dropbox.com/sh/abc/def",
                "https://www.dropbox.com/sh/abc/def",
            ),
        ] {
            assert_eq!(canonical(given).as_deref(), Some(want), "{given}");
        }
        for bad in [
            "http://www.dropbox.com/scl/fo/abc",
            "https://evil.example/scl/fo/abc",
            "https://www.dropbox.com.evil.example/scl/fo/abc",
            "https://www.dropbox.com:8443/scl/fo/abc",
            "https://www.dropbox.com/home",
            "https://user@evil.example/s/x",
            "not a url",
        ] {
            assert_eq!(canonical(bad), None, "{bad}");
        }
    }
}
