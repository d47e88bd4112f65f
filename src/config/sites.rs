//! `[[site]]` and `[sites]`: websites published from a folder of an account, reached by host
//! name (`hosts`) or under a path prefix (`path`), and what a host no site claims gets.

use super::raw::{RawSite, RawSites};
use super::{ConfigError, invalid, parse_root};
use crate::http::route::{is_reserved, valid_alias};
use std::collections::HashSet;

/// One site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteConfig {
    pub name: String,
    /// The account (alias) whose files it serves: configured or linked.
    pub account: String,
    /// The site's root under the account's published root: `""` or `/Folder`.
    pub folder: String,
    /// Host names (lowercase, IDNs as punycode) it answers on, any port.
    pub hosts: Vec<String>,
    /// A path prefix it also answers under (`/name`), for setups without DNS.
    pub path: Option<String>,
    pub html_extension: HtmlExtension,
    /// Other origins that may read it (`cors`); None: no CORS.
    pub cors: Option<crate::http::cors::Policy>,
}

/// The one canonical form of an HTML page's URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HtmlExtension {
    /// `/about` serves `about.html`; `/about.html` redirects to `/about` (the default).
    Strip,
    /// `/about` redirects to `/about.html`, which is served.
    Keep,
    /// Names are served as they are; nothing is redirected.
    Exact,
}

/// What a request whose host no site claims gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnknownHost {
    /// Today's routing: `/<alias>/<path>`, `/s/<link>/…`, and the site prefixes.
    Paths,
    /// 404 for published paths (the operator's routes, `/healthz` and the like, still answer).
    NotFound,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SitesConfig {
    pub sites: Vec<SiteConfig>,
    pub unknown_host: UnknownHost,
    pub warm: WarmConfig,
}

/// Warm on change: when the feed reports a new version of a file under a site, its body is
/// fetched before the cache switches to it (the old version is served until then).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WarmConfig {
    /// Bytes fetched this way per minute, at most ("0B": off).
    pub bytes_per_minute: u64,
    /// Files fetched at once.
    pub concurrency: usize,
    /// The longest the feed waits for a batch's bodies before it switches anyway.
    pub wait: std::time::Duration,
}

/// A `Host` header's name, as sites are keyed: lowercase, without the port or a trailing
/// dot, an IDN as punycode; None when it is not a host name.
pub fn host_key(text: &str) -> Option<String> {
    let text = text.trim();
    // `[v6]:port`, `name:port`, `name`.
    let name = if let Some(rest) = text.strip_prefix('[') {
        let end = rest.find(']')?;
        return Some(format!("[{}]", rest[..end].to_ascii_lowercase()));
    } else {
        match text.rsplit_once(':') {
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
            Some(_) => return None,
            None => text,
        }
    };
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() || name.len() > 253 {
        return None;
    }
    if name.is_ascii() {
        let ok = name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_');
        return ok.then(|| name.to_ascii_lowercase());
    }
    idna::domain_to_ascii(name).ok().filter(|n| !n.is_empty())
}

pub(super) fn sites(
    raw: Vec<RawSite>,
    raw_sites: RawSites,
    aliases: &HashSet<&str>,
) -> Result<SitesConfig, ConfigError> {
    let unknown_host = match raw_sites.unknown_host.as_deref().unwrap_or("paths") {
        "paths" => UnknownHost::Paths,
        "not_found" => UnknownHost::NotFound,
        other => {
            return Err(invalid(
                "sites.unknown_host",
                format!("{other:?} must be \"paths\" or \"not_found\""),
            ));
        }
    };
    let mut sites = Vec::new();
    let (mut names, mut hosts, mut paths) = (HashSet::new(), HashSet::new(), HashSet::new());
    for (i, s) in raw.into_iter().enumerate() {
        let key = |k: &str| format!("site[{i}].{k}");
        if !valid_alias(&s.name) {
            return Err(invalid(
                key("name"),
                format!("{:?} must be 1-64 of a-z, 0-9, '-', '_'", s.name),
            ));
        }
        if !names.insert(s.name.clone()) {
            return Err(invalid(key("name"), format!("{:?} is used twice", s.name)));
        }
        if !valid_alias(&s.account) {
            return Err(invalid(
                key("account"),
                format!("{:?} is not an account alias", s.account),
            ));
        }
        let folder = parse_root(&s.folder).ok_or_else(|| {
            invalid(
                key("folder"),
                format!("{:?} must be \"\" or a folder such as \"/Site\"", s.folder),
            )
        })?;
        let mut site_hosts = Vec::new();
        for h in &s.hosts {
            let name = host_key(h)
                .filter(|n| !h.contains(':') || n.starts_with('['))
                .ok_or_else(|| {
                    invalid(key("hosts"), format!("{h:?} is not a host name (no port)"))
                })?;
            if !hosts.insert(name.clone()) {
                return Err(invalid(
                    key("hosts"),
                    format!("{name:?} belongs to another site already"),
                ));
            }
            site_hosts.push(name);
        }
        let path = match s.path {
            None => None,
            Some(p) => {
                let name = p.trim_end_matches('/').strip_prefix('/').unwrap_or("");
                if !valid_alias(name) {
                    return Err(invalid(
                        key("path"),
                        format!("{p:?} must be one segment such as \"/blog\" (a-z, 0-9, '-', '_')"),
                    ));
                }
                if is_reserved(name) || aliases.contains(name) {
                    return Err(invalid(
                        key("path"),
                        format!("{p:?} is taken by the proxy's own routes or by an account"),
                    ));
                }
                if !paths.insert(name.to_owned()) {
                    return Err(invalid(key("path"), format!("{p:?} is used twice")));
                }
                Some(format!("/{name}"))
            }
        };
        if site_hosts.is_empty() && path.is_none() {
            return Err(invalid(
                key("hosts"),
                "a site needs host names, a path, or both",
            ));
        }
        let html_extension = match s.html_extension.as_deref().unwrap_or("strip") {
            "strip" => HtmlExtension::Strip,
            "keep" => HtmlExtension::Keep,
            "exact" => HtmlExtension::Exact,
            other => {
                return Err(invalid(
                    key("html_extension"),
                    format!("{other:?} must be \"strip\", \"keep\" or \"exact\""),
                ));
            }
        };
        let cors = super::cors::cors(&format!("site[{i}]"), s.cors)?;
        sites.push(SiteConfig {
            name: s.name,
            account: s.account,
            folder,
            hosts: site_hosts,
            path,
            html_extension,
            cors,
        });
    }
    let warm = WarmConfig {
        bytes_per_minute: super::units::size(
            "sites.warm_bytes_per_minute",
            raw_sites.warm_bytes_per_minute,
            "256MiB",
        )?,
        concurrency: raw_sites.warm_concurrency.unwrap_or(4),
        wait: super::units::duration("sites.warm_wait", raw_sites.warm_wait, "10s")?,
    };
    if warm.concurrency == 0 {
        return Err(invalid("sites.warm_concurrency", "must be at least 1"));
    }
    Ok(SitesConfig {
        sites,
        unknown_host,
        warm,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_are_keyed_without_port_case_or_unicode() {
        let cases = [
            ("Example.COM", Some("example.com")),
            ("example.com:8080", Some("example.com")),
            ("example.com.", Some("example.com")),
            ("bücher.example", Some("xn--bcher-kva.example")),
            ("xn--bcher-kva.example:443", Some("xn--bcher-kva.example")),
            ("127.0.0.1:80", Some("127.0.0.1")),
            ("[::1]:8080", Some("[::1]")),
            ("exa mple.com", None),
            ("example.com:http", None),
            ("", None),
            ("a/b", None),
        ];
        for (text, want) in cases {
            assert_eq!(host_key(text).as_deref(), want, "{text}");
        }
    }
}
