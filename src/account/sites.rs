//! Sites: which site a request is for, by its `Host` or its path prefix (`[[site]]`), and each
//! site's parsed `_redirects` and `_headers`, kept by the version of the files they were read
//! from (the read path reads and parses them; `proxy::site`).

use crate::config::{SiteConfig, SitesConfig, UnknownHost, host_key};
use crate::http::header_rules::HeaderRules;
use crate::http::redirects::Redirects;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Whether a site never serves a file or folder of this name (`_redirects`, `.git`, `_drafts`).
pub fn hidden_name(name: &str) -> bool {
    name.starts_with(['_', '.'])
}

/// One site, and what was last read of its rule files.
#[derive(Debug)]
pub struct Site {
    pub config: SiteConfig,
    files: Mutex<Option<Arc<SiteFiles>>>,
}

/// A site's `_redirects` and `_headers` as parsed, with the version (content hash, or rev) of
/// each file they came from: None where there is no such file.
#[derive(Debug, Default, Clone)]
pub struct SiteFiles {
    pub redirects_version: Option<String>,
    pub headers_version: Option<String>,
    pub redirects: Redirects,
    pub headers: HeaderRules,
    /// A file that could not be read at all (too large, Dropbox failing), by name ...
    pub unread: Vec<(&'static str, String)>,
    /// ... and when this was read (a file not read is tried again a while after).
    pub read_at: Option<std::time::Instant>,
}

impl Site {
    /// What was last parsed, if anything.
    pub fn files(&self) -> Option<Arc<SiteFiles>> {
        self.files.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn keep_files(&self, files: Arc<SiteFiles>) {
        *self.files.lock().unwrap_or_else(|p| p.into_inner()) = Some(files);
    }
}

/// Where a request goes.
#[derive(Debug)]
pub enum Routed<'a> {
    /// A site's: `prefix` is `""` on its host, or its `/path`; `rest` is the path after it
    /// (`""` when the prefix was asked for without its `/`).
    Site {
        site: &'a Arc<Site>,
        prefix: &'a str,
        rest: &'a str,
    },
    /// The `/<alias>/…` namespace.
    Paths,
    /// A host no site claims, with `sites.unknown_host = "not_found"`.
    NotFound,
}

#[derive(Debug)]
pub struct Sites {
    all: Vec<Arc<Site>>,
    by_host: HashMap<String, Arc<Site>>,
    by_path: HashMap<String, Arc<Site>>,
    unknown_host: UnknownHost,
}

impl Sites {
    pub fn from_config(config: &SitesConfig) -> Sites {
        let all: Vec<Arc<Site>> = config
            .sites
            .iter()
            .map(|c| {
                Arc::new(Site {
                    config: c.clone(),
                    files: Mutex::new(None),
                })
            })
            .collect();
        let mut by_host = HashMap::new();
        let mut by_path = HashMap::new();
        for site in &all {
            for h in &site.config.hosts {
                by_host.insert(h.clone(), site.clone());
            }
            if let Some(p) = &site.config.path {
                by_path.insert(p[1..].to_owned(), site.clone());
            }
        }
        Sites {
            all,
            by_host,
            by_path,
            unknown_host: config.unknown_host,
        }
    }

    pub fn all(&self) -> &[Arc<Site>] {
        &self.all
    }

    pub fn by_name(&self, name: &str) -> Option<&Arc<Site>> {
        self.all.iter().find(|s| s.config.name == name)
    }

    /// Whether `lower` (a lowercase path under `alias`'s root) is a name a site of that account
    /// never serves (a `_…` or `.…` segment under the site's folder): the `/<alias>/…` route
    /// does not serve it either, so `_redirects` or `.git` cannot be read by another way in.
    pub fn hides(&self, alias: &str, lower: &str) -> bool {
        self.all.iter().any(|site| {
            let c = &site.config;
            c.account == alias
                && lower
                    .strip_prefix(c.folder.to_lowercase().as_str())
                    .filter(|rel| rel.starts_with('/'))
                    .is_some_and(|rel| rel.split('/').any(hidden_name))
        })
    }

    /// Whether the folder `lower` (lowercase, under `alias`'s root) is a site's folder or lies
    /// within one: its listing leaves out the names the site never serves.
    pub fn covers(&self, alias: &str, lower: &str) -> bool {
        self.all.iter().any(|site| {
            let c = &site.config;
            let folder = c.folder.to_lowercase();
            c.account == alias
                && lower
                    .strip_prefix(folder.as_str())
                    .is_some_and(|rel| rel.is_empty() || rel.starts_with('/'))
        })
    }

    /// The site (if any) a request for `path` on `host` (the `Host` header) is for. A site's
    /// host takes every path; elsewhere a site's prefix takes its own.
    pub fn route<'a>(&'a self, host: Option<&str>, path: &'a str) -> Routed<'a> {
        if self.all.is_empty() {
            return Routed::Paths;
        }
        if let Some(site) = host.and_then(host_key).and_then(|h| self.by_host.get(&h)) {
            return Routed::Site {
                site,
                prefix: "",
                rest: path,
            };
        }
        let first = path[1.min(path.len())..].split('/').next().unwrap_or("");
        if let Some((name, site)) = self.by_path.get_key_value(first) {
            let prefix = &path[..1 + name.len()];
            return Routed::Site {
                site,
                prefix,
                rest: &path[prefix.len()..],
            };
        }
        match self.unknown_host {
            UnknownHost::Paths => Routed::Paths,
            UnknownHost::NotFound => Routed::NotFound,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn requests_go_to_a_site_by_host_then_by_prefix() {
        let text = "[[site]]\nname = \"blog\"\naccount = \"alice\"\nfolder = \"/Blog\"\n\
                    hosts = [\"blog.example\", \"bücher.example\"]\npath = \"/blog\"\n\
                    [[site]]\nname = \"docs\"\naccount = \"alice\"\npath = \"/docs\"\n";
        let config = Config::parse(text, &|_| None).expect("valid");
        let sites = Sites::from_config(&config.sites);
        let site = |r: Routed| match r {
            Routed::Site { site, prefix, rest } => {
                Some((site.config.name.clone(), prefix.to_owned(), rest.to_owned()))
            }
            _ => None,
        };
        let s = |name: &str, prefix: &str, rest: &str| {
            Some((name.to_owned(), prefix.to_owned(), rest.to_owned()))
        };
        assert_eq!(
            site(sites.route(Some("BLOG.example:8080"), "/a")),
            s("blog", "", "/a")
        );
        assert_eq!(
            site(sites.route(Some("xn--bcher-kva.example"), "/docs/x")),
            s("blog", "", "/docs/x"),
            "a site's host takes every path"
        );
        assert_eq!(
            site(sites.route(Some("other"), "/docs/x")),
            s("docs", "/docs", "/x")
        );
        assert_eq!(site(sites.route(None, "/blog")), s("blog", "/blog", ""));
        assert_eq!(site(sites.route(None, "/blog/")), s("blog", "/blog", "/"));
        assert!(matches!(sites.route(None, "/blogs/x"), Routed::Paths));
        assert!(matches!(
            sites.route(Some("other"), "/alice/x"),
            Routed::Paths
        ));
        let strict = Config::parse(
            &format!("{text}[sites]\nunknown_host = \"not_found\"\n"),
            &|_| None,
        )
        .expect("valid");
        let strict = Sites::from_config(&strict.sites);
        assert!(matches!(
            strict.route(Some("other"), "/alice/x"),
            Routed::NotFound
        ));
        assert!(matches!(
            strict.route(Some("other"), "/docs/"),
            Routed::Site { .. }
        ));
    }

    #[test]
    fn site_settings_are_checked_and_name_their_key() {
        let err = |text: &str| {
            Config::parse(text, &|_| None)
                .expect_err("refused")
                .to_string()
        };
        let site = |extra: &str| format!("[[site]]\nname = \"s\"\naccount = \"alice\"\n{extra}");
        assert!(err(&site("")).contains("site[0].hosts"));
        assert!(err(&site("hosts = [\"a.example:80\"]\n")).contains("site[0].hosts"));
        assert!(err(&site("path = \"/admin\"\n")).contains("site[0].path"));
        assert!(err(&site("path = \"/a/b\"\n")).contains("site[0].path"));
        assert!(err(&site("path = \"/x\"\nfolder = \"../up\"\n")).contains("site[0].folder"));
        assert!(
            err(&site("path = \"/x\"\nhtml_extension = \"drop\"\n"))
                .contains("site[0].html_extension")
        );
        let twice = format!(
            "{}{}",
            site("hosts = [\"a.example\"]\n"),
            site("hosts = [\"A.example\"]\n").replace("\"s\"", "\"t\"")
        );
        assert!(err(&twice).contains("site[1].hosts"), "{}", err(&twice));
        let taken = format!(
            "[[account]]\nalias = \"alice\"\naccess_token = \"t\"\n{}",
            site("path = \"/alice\"\n")
        );
        assert!(err(&taken).contains("site[0].path"));
        assert!(err("[sites]\nunknown_host = \"drop\"\n").contains("sites.unknown_host"));
    }
}
