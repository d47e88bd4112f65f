//! `[store]`: where state shared between instances lives, Redis or the embedded store.

use super::raw::RawStore;
use super::{ConfigError, invalid};
use crate::secret::Secret;
use std::path::PathBuf;

#[derive(Debug, Clone)]
pub enum StoreConfig {
    Redis { url: Secret<String> },
    Embedded { path: PathBuf },
}

impl TryFrom<RawStore> for StoreConfig {
    type Error = ConfigError;

    fn try_from(raw: RawStore) -> Result<Self, ConfigError> {
        let store = match raw.redis_url.filter(|u| !u.is_empty()) {
            Some(u) if u.starts_with("redis://") || u.starts_with("rediss://") => {
                StoreConfig::Redis {
                    url: Secret::new(u),
                }
            }
            // SECURITY: the URL may hold a password; name the key, not the value.
            Some(_) => {
                return Err(invalid(
                    "store.redis_url",
                    "must start with redis:// or rediss://",
                ));
            }
            None => StoreConfig::Embedded {
                path: raw.path.unwrap_or_else(|| PathBuf::from("dropcache-store")),
            },
        };
        Ok(store)
    }
}
