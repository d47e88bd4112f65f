//! `[store]`: where state shared between instances lives: one Redis, a Redis Cluster, or the
//! embedded store.
//!
//! `redis_url` is one URL (`redis://…`), a cluster written as one URL with several hosts
//! (`redis+cluster://[user:password@]host:port,host:port`), or a list of URLs, which are the
//! seed nodes of a cluster.

use super::raw::{RawRedisUrl, RawStore};
use super::{ConfigError, invalid};
use crate::secret::Secret;
use std::path::PathBuf;

#[derive(Debug, Clone)]
pub enum StoreConfig {
    Redis {
        url: Secret<String>,
    },
    /// A Redis Cluster, by its seed nodes (`redis://host:port` each; the client learns the
    /// rest of the cluster from them).
    RedisCluster {
        nodes: Vec<Secret<String>>,
    },
    Embedded {
        path: PathBuf,
    },
}

const KEY: &str = "store.redis_url";

impl StoreConfig {
    /// The store one `redis_url` value names (a server or a cluster), as the config reads it.
    pub fn from_redis_url(url: &str) -> Result<StoreConfig, ConfigError> {
        StoreConfig::try_from(RawStore {
            redis_url: Some(RawRedisUrl::One(url.to_owned())),
            path: None,
        })
    }
}

impl TryFrom<RawStore> for StoreConfig {
    type Error = ConfigError;

    fn try_from(raw: RawStore) -> Result<Self, ConfigError> {
        let store = match raw.redis_url {
            Some(RawRedisUrl::One(u)) if u.is_empty() => embedded(raw.path),
            None => embedded(raw.path),
            Some(RawRedisUrl::One(u)) => match cluster_nodes(&u)? {
                Some(nodes) => StoreConfig::RedisCluster { nodes },
                None => {
                    check_scheme(&u)?;
                    StoreConfig::Redis {
                        url: Secret::new(u),
                    }
                }
            },
            Some(RawRedisUrl::Many(list)) => {
                if list.is_empty() {
                    return Err(invalid(
                        KEY,
                        "a list of cluster nodes must name at least one",
                    ));
                }
                for u in &list {
                    check_scheme(u)?;
                }
                StoreConfig::RedisCluster {
                    nodes: list.into_iter().map(Secret::new).collect(),
                }
            }
        };
        Ok(store)
    }
}

fn embedded(path: Option<PathBuf>) -> StoreConfig {
    StoreConfig::Embedded {
        path: path.unwrap_or_else(|| PathBuf::from("dropcache-store")),
    }
}

// SECURITY: a URL may hold a password; errors name the key, never the value.
fn check_scheme(u: &str) -> Result<(), ConfigError> {
    if u.starts_with("redis://") || u.starts_with("rediss://") {
        Ok(())
    } else {
        Err(invalid(
            KEY,
            "must start with redis://, rediss:// or redis+cluster://",
        ))
    }
}

/// `redis+cluster://[auth@]h:p,h:p[/…]` → one `redis://[auth@]h:p` per host; None for any
/// other scheme.
fn cluster_nodes(u: &str) -> Result<Option<Vec<Secret<String>>>, ConfigError> {
    let (scheme, rest) = if let Some(rest) = u.strip_prefix("redis+cluster://") {
        ("redis://", rest)
    } else if let Some(rest) = u.strip_prefix("rediss+cluster://") {
        ("rediss://", rest)
    } else {
        return Ok(None);
    };
    let (authority, tail) = rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len()));
    // A cluster has one database; the query (if any) is not passed on.
    let db = tail.split('?').next().unwrap_or("").trim_start_matches('/');
    if !(db.is_empty() || db == "0") {
        return Err(invalid(KEY, "a cluster has only database 0"));
    }
    let (auth, hosts) = match authority.rfind('@') {
        Some(at) => (&authority[..=at], &authority[at + 1..]),
        None => ("", authority),
    };
    let nodes: Vec<Secret<String>> = hosts
        .split(',')
        .map(|h| h.trim())
        .map(|h| {
            if h.is_empty() || h.contains(['@', ' ']) {
                Err(invalid(
                    KEY,
                    "a cluster URL lists host:port entries, comma-separated",
                ))
            } else {
                Ok(Secret::new(format!("{scheme}{auth}{h}")))
            }
        })
        .collect::<Result<_, _>>()?;
    Ok(Some(nodes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml_value: &str) -> Result<StoreConfig, ConfigError> {
        let raw: RawStore = toml::from_str(&format!("redis_url = {toml_value}")).unwrap();
        StoreConfig::try_from(raw)
    }

    fn nodes(c: StoreConfig) -> Vec<String> {
        match c {
            StoreConfig::RedisCluster { nodes } => {
                nodes.iter().map(|n| n.expose().clone()).collect()
            }
            other => panic!("not a cluster: {other:?}"),
        }
    }

    #[test]
    fn a_cluster_is_one_url_with_several_hosts_or_a_list() {
        assert_eq!(
            nodes(parse(r#""redis+cluster://:pw@a:7000,b:7001, c:7002""#).unwrap()),
            [
                "redis://:pw@a:7000",
                "redis://:pw@b:7001",
                "redis://:pw@c:7002"
            ]
        );
        assert_eq!(
            nodes(parse(r#""rediss+cluster://a:1""#).unwrap()),
            ["rediss://a:1"]
        );
        assert_eq!(
            nodes(parse(r#"["redis://a:1", "redis://b:2"]"#).unwrap()),
            ["redis://a:1", "redis://b:2"]
        );
        assert!(matches!(
            parse(r#""redis://a:1/0""#).unwrap(),
            StoreConfig::Redis { .. }
        ));
        assert!(matches!(
            parse(r#""""#).unwrap(),
            StoreConfig::Embedded { .. }
        ));
    }

    #[test]
    fn bad_cluster_urls_are_clear_errors_without_the_password() {
        for bad in [
            r#""redis+cluster://:hunter2@a:1,,b:2""#,
            r#""redis+cluster://:hunter2@a:1/3""#,
            r#"["redis://:hunter2@a:1", "http://:hunter2@b"]"#,
            "[]",
            r#""http://:hunter2@x""#,
        ] {
            let err = parse(bad).expect_err(bad).to_string();
            assert!(err.contains(KEY), "{err}");
            assert!(!err.contains("hunter2"), "{err}");
        }
    }
}
