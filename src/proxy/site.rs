//! A site's request (`[[site]]`, routed by host or prefix): the static hosts' conventions on top
//! of the read path, top to bottom in `Proxy::serve_site`:
//! 1. method → 2. path (checked as `normalize` checks any) → 3. the site's account and its
//!    `_redirects` / `_headers` (read through the cache, parsed once per version) →
//! 4. the first matching redirect rule, unless a file at the path shadows it (no `!`) →
//! 5. the path itself: a file; a folder's `index.html` (`/docs` → 301 `/docs/`); `about.html`
//!    for `/about` (and `/about.html` → 301 `/about`, by `html_extension`) →
//! 6. else the nearest `404.html` up the tree, with status 404 (none: a plain 404) →
//! 7. `_headers` for the request path, applied last.
//!
//! SECURITY: names starting with `_` or `.` (the rule files, `.git`, `.env`) are never served,
//! by any route through a site: request, rewrite, or error page.

use super::normalize::{self, Target};
use super::{Proxy, ProxyError};
use crate::account::Account;
use crate::account::sites::{Site, SiteFiles};
use crate::config::HtmlExtension;
use crate::http::encoding::{Encoding, choose, compressible};
use crate::http::header_rules::HeaderRules;
use crate::http::pattern::encode_path;
use crate::http::provenance::Provenance;
use crate::http::redirects::Redirects;
use crate::http::representation::content_type;
use crate::http::{Body, plain};
use crate::meta::State;
use crate::upstream::types::FileMetadata;
use crate::upstream::types::Metadata;
use http_body_util::BodyExt;
use hyper::header::{
    ACCEPT_ENCODING, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_TYPE, HeaderValue, LOCATION, RANGE,
};
use hyper::http::request::Parts;
use hyper::{Method, Request, Response, StatusCode};
use std::sync::Arc;

/// The largest `_redirects` or `_headers` read; a larger one is reported and not applied.
pub const MAX_RULE_FILE: u64 = 1 << 20;
/// A rule file that could not be read is tried again this long after.
const RETRY_UNREAD: std::time::Duration = std::time::Duration::from_secs(10);

/// What a site path comes to on its own (no redirect rules).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Resolved {
    /// This file (a site path, display case) answers.
    File(String),
    /// The canonical URL is this site path (percent-encoded), with the request's query.
    Canonical(String),
    NotFound,
}

impl Proxy {
    /// Serves `rest` (the path after the site's `prefix`, still percent-encoded) of `site`.
    pub async fn serve_site(
        &self,
        req: &Parts,
        site: &Site,
        prefix: &str,
        rest: &str,
        noted: &Provenance,
    ) -> Result<Response<Body>, ProxyError> {
        // 1. method
        if req.method != Method::GET && req.method != Method::HEAD {
            return Err(ProxyError::Method);
        }
        // 2. path
        if rest.is_empty() {
            return Ok(redirect(301, &format!("{prefix}/"), req.uri.query()));
        }
        let (display, _, trailing_slash) = normalize::site_path(rest)?;
        // 3. account and rule files
        let account = self
            .accounts
            .lookup(&site.config.account)
            .ok_or(ProxyError::UnknownAccount)?;
        let files = self.site_files(site, &account).await;
        let host = req
            .headers
            .get(hyper::header::HOST)
            .and_then(|h| h.to_str().ok())
            .or(req.uri.host())
            .and_then(crate::config::host_key);
        let ctx = Ctx {
            proxy: self,
            req,
            site,
            account: &account,
            prefix,
            noted,
        };
        // 4. redirect rules, 5. the path, 6. the 404 page
        // SECURITY: rules see the path as the files are found (decoded; matched without case).
        let mut resp = match files
            .redirects
            .find(host.as_deref(), &display, req.uri.query())
        {
            Some(rule) => {
                let shadowed = !rule.force
                    && ctx.resolve(&display, trailing_slash, true).await? != Resolved::NotFound;
                if shadowed {
                    ctx.path(&display, trailing_slash).await?
                } else {
                    ctx.apply(&rule).await?
                }
            }
            None => ctx.path(&display, trailing_slash).await?,
        };
        // 7. headers
        files.headers.apply(&display, resp.headers_mut());
        Ok(resp)
    }

    /// The site's parsed `_redirects` and `_headers`: read again only when a file's version
    /// (its content hash) is not the one last parsed. A file that cannot be read leaves the
    /// last good rules in force (none at first), reported at `/admin/sites`.
    pub async fn site_files(&self, site: &Site, account: &Arc<Account>) -> Arc<SiteFiles> {
        let last = site.files();
        let (r_meta, h_meta) = tokio::join!(
            self.rule_file(account, site, "_redirects"),
            self.rule_file(account, site, "_headers")
        );
        let version = |m: &Result<Option<_>, String>| -> Result<Option<String>, ()> {
            match m {
                Ok(Some(f)) => Ok(Some(file_version(f))),
                Ok(None) => Ok(None),
                Err(_) => Err(()),
            }
        };
        if let Some(last) = &last {
            let same =
                |v: Result<Option<String>, ()>, had: &Option<String>| v.map_or(true, |v| v == *had);
            // A file that could not be read is tried again after a while, not per request.
            let settled =
                last.unread.is_empty() || last.read_at.is_some_and(|t| t.elapsed() < RETRY_UNREAD);
            if settled
                && same(version(&r_meta), &last.redirects_version)
                && same(version(&h_meta), &last.headers_version)
            {
                return last.clone();
            }
            if !settled {
                // One request tries again; the others go on with the last rules meanwhile.
                site.keep_files(Arc::new(SiteFiles {
                    read_at: Some(std::time::Instant::now()),
                    ..(**last).clone()
                }));
            }
        }
        let mut files = SiteFiles {
            read_at: Some(std::time::Instant::now()),
            ..SiteFiles::default()
        };
        let (r_text, r_version) = self
            .read_rule_file(account, site, "_redirects", r_meta)
            .await;
        let (h_text, h_version) = self.read_rule_file(account, site, "_headers", h_meta).await;
        match r_text {
            Ok(text) => files.redirects = Redirects::parse(&text),
            Err(why) => {
                files.redirects = last
                    .as_ref()
                    .map(|l| l.redirects.clone())
                    .unwrap_or_default();
                files.unread.push(("_redirects", why));
            }
        }
        match h_text {
            Ok(text) => files.headers = HeaderRules::parse(&text),
            Err(why) => {
                files.headers = last.as_ref().map(|l| l.headers.clone()).unwrap_or_default();
                files.unread.push(("_headers", why));
            }
        }
        files.redirects_version = r_version;
        files.headers_version = h_version;
        // Once per version read: what was skipped, by line.
        for (name, errors) in [
            ("_redirects", &files.redirects.errors),
            ("_headers", &files.headers.errors),
        ] {
            for e in errors {
                tracing::warn!(site = %site.config.name, file = name, line = e.line, error = %e.error, "a line of a site's rule file is skipped");
            }
        }
        for (name, why) in &files.unread {
            tracing::warn!(site = %site.config.name, file = name, error = %why, "a site's rule file could not be read");
        }
        let files = Arc::new(files);
        site.keep_files(files.clone());
        files
    }

    /// A rule file's metadata: None when there is none; Err when Dropbox could not say.
    async fn rule_file(
        &self,
        account: &Arc<Account>,
        site: &Site,
        name: &str,
    ) -> Result<Option<crate::upstream::types::FileMetadata>, String> {
        let display = format!("{}/{name}", site.config.folder);
        match self
            .meta
            .lookup(account, &display, &display.to_lowercase())
            .await
        {
            Ok(looked) => match &looked.entry.state {
                State::File(f) => Ok(Some(f.clone())),
                _ => Ok(None),
            },
            Err(e) => Err(format!("looking it up failed: {e}")),
        }
    }

    /// A rule file's text (empty when there is none) and its version; Err says why not.
    async fn read_rule_file(
        &self,
        account: &Arc<Account>,
        site: &Site,
        name: &str,
        meta: Result<Option<crate::upstream::types::FileMetadata>, String>,
    ) -> (Result<String, String>, Option<String>) {
        let f = match meta {
            Ok(None) => return (Ok(String::new()), None),
            Ok(Some(f)) => f,
            Err(why) => return (Err(why), None),
        };
        let version = Some(file_version(&f));
        if f.size > MAX_RULE_FILE {
            return (
                Err(format!(
                    "{} bytes, more than the {MAX_RULE_FILE} read",
                    f.size
                )),
                version,
            );
        }
        let path = account.dropbox_path(&format!("{}/{name}", site.config.folder));
        let text = async {
            let opened = self
                .bodies
                .open(account, &path, &f, None)
                .await
                .map_err(|_| "reading it failed".to_owned())?;
            let mut body = opened.stream;
            let mut bytes = Vec::new();
            while let Some(frame) = body.frame().await {
                let Ok(frame) = frame else {
                    return Err("reading it failed".to_owned());
                };
                if let Ok(data) = frame.into_data() {
                    if (bytes.len() + data.len()) as u64 > MAX_RULE_FILE {
                        return Err(format!("more than the {MAX_RULE_FILE} bytes read"));
                    }
                    bytes.extend_from_slice(&data);
                }
            }
            String::from_utf8(bytes).map_err(|_| "it is not UTF-8 text".to_owned())
        }
        .await;
        (text, version)
    }
}

/// What identifies a version of a file's bytes.
fn file_version(f: &crate::upstream::types::FileMetadata) -> String {
    f.content_hash.clone().unwrap_or_else(|| f.rev.clone())
}

/// What one site request works with.
struct Ctx<'a> {
    proxy: &'a Proxy,
    req: &'a Parts,
    site: &'a Site,
    account: &'a Arc<Account>,
    prefix: &'a str,
    /// Where the answer's body came from (`Proxy::answer` notes it).
    noted: &'a Provenance,
}

impl Ctx<'_> {
    /// 5 and 6: the path's file, its canonical URL, or the 404 page.
    async fn path(
        &self,
        display: &str,
        trailing_slash: bool,
    ) -> Result<Response<Body>, ProxyError> {
        match self.resolve(display, trailing_slash, true).await? {
            Resolved::File(file) => self.file(self.req, &file).await,
            Resolved::Canonical(to) => Ok(redirect(
                301,
                &format!("{}{to}", self.prefix),
                self.req.uri.query(),
            )),
            Resolved::NotFound => self.not_found(display, StatusCode::NOT_FOUND).await,
        }
    }

    /// A matching redirect rule, applied.
    async fn apply(
        &self,
        rule: &crate::http::redirects::Action,
    ) -> Result<Response<Body>, ProxyError> {
        let absolute = rule.to.starts_with("http://") || rule.to.starts_with("https://");
        if (300..400).contains(&rule.status) {
            let to = if absolute {
                rule.to.clone()
            } else {
                format!("{}{}", self.prefix, rule.to)
            };
            let query = (!rule.matched_query && !to.contains('?'))
                .then_some(self.req.uri.query())
                .flatten();
            return Ok(redirect(rule.status, &to, query));
        }
        // 200 serves `to` in place; 404, 410, 451 serve it as that status's page. Its query,
        // if any, is for the page's scripts: the file is the path's.
        let path = rule.to.split(['?', '#']).next().unwrap_or("");
        let status = StatusCode::from_u16(rule.status).expect("parsed statuses are valid");
        let resolved = match normalize::site_path(path) {
            Ok((display, _, slash)) => self.resolve(&display, slash, false).await?,
            Err(_) => Resolved::NotFound,
        };
        match (resolved, status) {
            (Resolved::File(file), StatusCode::OK) => self.file(self.req, &file).await,
            (Resolved::File(file), _) => self.page(&file, status).await,
            (_, StatusCode::OK) => {
                let display = normalize::site_path(path).map(|p| p.0).unwrap_or_default();
                self.not_found(&display, StatusCode::NOT_FOUND).await
            }
            (_, status) => Ok(plain(
                status,
                format!("{}\n", status.canonical_reason().unwrap_or("")),
            )),
        }
    }

    /// What `display` (a site path) is on its own. `canonical`: also say where a name that
    /// has a canonical form elsewhere should go (a request's path; a rewrite's target has none).
    async fn resolve(
        &self,
        display: &str,
        trailing_slash: bool,
        canonical: bool,
    ) -> Result<Resolved, ProxyError> {
        if hidden(display) {
            return Ok(Resolved::NotFound);
        }
        let mode = self.site.config.html_extension;
        if display.is_empty() || trailing_slash {
            return Ok(match self.state(display).await? {
                Kind::Folder => {
                    let index = format!("{display}/index.html");
                    match self.state(&index).await? {
                        Kind::File => Resolved::File(index),
                        _ => Resolved::NotFound,
                    }
                }
                _ => Resolved::NotFound,
            });
        }
        Ok(match self.state(display).await? {
            Kind::Folder => Resolved::Canonical(format!("{}/", encode_path(display))),
            Kind::File if !canonical || mode == HtmlExtension::Exact => {
                Resolved::File(display.to_owned())
            }
            Kind::File => match display.strip_suffix(".html") {
                Some(dir) if display.ends_with("/index.html") => Resolved::Canonical(format!(
                    "{}/",
                    encode_path(&dir[..dir.len() - "/index".len()])
                )),
                Some(bare) if mode == HtmlExtension::Strip => {
                    Resolved::Canonical(encode_path(bare))
                }
                _ => Resolved::File(display.to_owned()),
            },
            Kind::Missing if mode == HtmlExtension::Exact => Resolved::NotFound,
            Kind::Missing => {
                let html = format!("{display}.html");
                match self.state(&html).await? {
                    Kind::File if mode == HtmlExtension::Keep && canonical => {
                        Resolved::Canonical(encode_path(&html))
                    }
                    Kind::File => Resolved::File(html),
                    _ => Resolved::NotFound,
                }
            }
        })
    }

    /// The metadata of a site path (`""` for the site's root), cached as any.
    async fn entry(&self, display: &str) -> Result<Arc<crate::meta::Entry>, ProxyError> {
        let full = format!("{}{display}", self.site.config.folder);
        let looked = self
            .proxy
            .meta
            .lookup(self.account, &full, &full.to_lowercase())
            .await?;
        Ok(looked.entry)
    }

    /// Whether a site path is a file, a folder or nothing.
    async fn state(&self, display: &str) -> Result<Kind, ProxyError> {
        Ok(match &self.entry(display).await?.state {
            State::File(_) => Kind::File,
            State::Folder(_) => Kind::Folder,
            State::Missing => Kind::Missing,
        })
    }

    /// Serves the file at site path `file` for `req` (conditionals and ranges as any file), or
    /// its precompressed sibling (`app.js.br`, `app.js.gz`) in a coding the client takes, when
    /// that is at least as new.
    async fn file(&self, req: &Parts, file: &str) -> Result<Response<Body>, ProxyError> {
        let ct = content_type(file);
        if !compressible(&ct) {
            return self.plain_file(req, file).await;
        }
        let accept = req
            .headers
            .get(ACCEPT_ENCODING)
            .and_then(|v| v.to_str().ok());
        let mut offered = Encoding::ALL.to_vec();
        let mut orig = None;
        while let Some(enc) = choose(accept, &offered) {
            offered.retain(|e| *e != enc);
            let sibling = format!("{file}{}", enc.suffix());
            let Some(sib) = self.file_meta(&sibling).await? else {
                continue;
            };
            if orig.is_none() {
                orig = self.file_meta(file).await?;
            }
            let Some(orig) = &orig else { break };
            let (o, s) = (
                humantime::parse_rfc3339(&orig.server_modified).ok(),
                humantime::parse_rfc3339(&sib.server_modified).ok(),
            );
            if s.is_none() || s < o {
                continue;
            }
            // Several ranges of a sibling are answered whole: a multipart answer's parts
            // would carry the sibling's type.
            let multi = req
                .headers
                .get(RANGE)
                .is_some_and(|r| r.as_bytes().contains(&b','));
            let whole;
            let sib_req = if multi {
                let mut builder = Request::builder()
                    .method(req.method.clone())
                    .uri(req.uri.clone());
                for (k, v) in req.headers.iter().filter(|(k, _)| *k != RANGE) {
                    builder = builder.header(k, v);
                }
                whole = builder
                    .body(())
                    .expect("method, URI and headers come from a request")
                    .into_parts()
                    .0;
                &whole
            } else {
                req
            };
            let mut resp = self.plain_file(sib_req, &sibling).await?;
            let coded = matches!(resp.status(), StatusCode::OK | StatusCode::PARTIAL_CONTENT);
            let lower = format!("{}{file}", self.site.config.folder).to_lowercase();
            let cc = self.proxy.cache_control_for(&lower, Some(&ct)).clone();
            let h = resp.headers_mut();
            h.insert(
                CONTENT_TYPE,
                HeaderValue::from_str(&ct).expect("media types are ASCII"),
            );
            // The file's own Cache-Control rule, not the sibling's name's.
            if h.contains_key(CACHE_CONTROL) {
                h.insert(CACHE_CONTROL, cc);
            }
            if coded {
                h.insert(CONTENT_ENCODING, HeaderValue::from_static(enc.token()));
            }
            crate::http::cors::append_vary(h, "Accept-Encoding");
            return Ok(resp);
        }
        let mut resp = self.plain_file(req, file).await?;
        crate::http::cors::append_vary(resp.headers_mut(), "Accept-Encoding");
        Ok(resp)
    }

    /// A site path's file metadata, None when it is not a file.
    async fn file_meta(&self, display: &str) -> Result<Option<FileMetadata>, ProxyError> {
        Ok(match &self.entry(display).await?.state {
            State::File(f) => Some(f.clone()),
            _ => None,
        })
    }

    /// `file` itself, through the read path.
    async fn plain_file(&self, req: &Parts, file: &str) -> Result<Response<Body>, ProxyError> {
        let display = format!("{}{file}", self.site.config.folder);
        let target = Target::new(&self.account.alias, &display, false);
        Box::pin(
            self.proxy
                .answer(req, self.account, &target, None, self.noted),
        )
        .await
    }

    /// Serves `file` whole as the page of `status` (a 404 page): the request's conditionals
    /// and ranges are about the path asked for, not this page, so they are not applied.
    async fn page(&self, file: &str, status: StatusCode) -> Result<Response<Body>, ProxyError> {
        let (plain_req, ()) = Request::builder()
            .method(self.req.method.clone())
            .uri(self.req.uri.clone())
            .body(())
            .expect("method and URI come from a request")
            .into_parts();
        let mut resp = self.file(&plain_req, file).await?;
        if resp.status() == StatusCode::OK {
            *resp.status_mut() = status;
        }
        Ok(resp)
    }

    /// 6: the nearest `404.html` up the tree from `display`, served with `status`; a plain
    /// answer when there is none. Only folders that exist are looked into, so a made-up
    /// deep path costs no call to Dropbox per segment.
    async fn not_found(
        &self,
        display: &str,
        status: StatusCode,
    ) -> Result<Response<Body>, ProxyError> {
        let mut dir = String::new();
        let mut page = None;
        let mut segments = display.split('/').skip(1);
        loop {
            let entry = self.entry(&dir).await?;
            let State::Folder(listing) = &entry.state else {
                break;
            };
            let has = |name: &str, folder: bool| {
                listing.entries.iter().find(|e| {
                    e.name().eq_ignore_ascii_case(name)
                        && matches!(
                            (e, folder),
                            (Metadata::Folder(_), true) | (Metadata::File(_), false)
                        )
                })
            };
            if let Some(f) = has("404.html", false) {
                page = Some(format!("{dir}/{}", f.name()));
            }
            // Into the next folder on the way to the path (never a hidden one), the last
            // segment too when it is a folder (`/docs/` with no index.html).
            let Some(seg) = segments.next() else { break };
            if hidden(seg) {
                break;
            }
            match has(seg, true) {
                Some(f) => dir = format!("{dir}/{}", f.name()),
                None => break,
            }
        }
        match page {
            Some(page) => self.page(&page, status).await,
            None => Err(ProxyError::NotFound),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    File,
    Folder,
    Missing,
}

/// Whether a site path has a segment that is never served (`_…`, `.…`).
fn hidden(display: &str) -> bool {
    display.split('/').any(crate::account::sites::hidden_name)
}

/// A redirect to `to` (a path or URL), the request's `query` passed on.
fn redirect(status: u16, to: &str, query: Option<&str>) -> Response<Body> {
    let status = StatusCode::from_u16(status).expect("parsed statuses are valid");
    let location = match query {
        Some(q) if !q.is_empty() => format!("{to}?{q}"),
        _ => to.to_owned(),
    };
    let mut resp = plain(status, format!("redirecting to {location}\n"));
    match HeaderValue::from_str(&location) {
        Ok(v) => {
            resp.headers_mut().insert(LOCATION, v);
        }
        // A rule's target that is no header value: not a redirect anyone can follow.
        Err(_) => return plain(StatusCode::INTERNAL_SERVER_ERROR, "bad redirect target\n"),
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_names_are_those_starting_with_underscore_or_dot() {
        for h in [
            "/_redirects",
            "/_headers",
            "/.git/config",
            "/a/.env",
            "/_drafts/x.html",
        ] {
            assert!(hidden(h), "{h}");
        }
        for ok in ["", "/index.html", "/a_b/c.d", "/x/y.html"] {
            assert!(!hidden(ok), "{ok}");
        }
    }
}
