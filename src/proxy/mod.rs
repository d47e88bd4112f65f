//! The read path for `GET` / `HEAD /<alias>/<path>` and `/s/<link>/<path>`, top to bottom in
//! `Proxy::serve`: 1. method → 2. normalize → 3. account → 4. metadata → 5. validators and
//! conditionals (and ranges) → 6. body → 7. respond. `respond` builds the responses from what
//! it is given; `thumb` answers `?thumb=` in place of 5–7. What a hit does not need is
//! boxed where it is awaited: a future holds the largest of everything it may await, and
//! every request's future is moved whole, so a hit's must stay small.

pub mod album;
pub mod error;
pub mod link;
pub mod listing;
pub mod normalize;
pub mod respond;
pub mod site;
pub mod thumb;
pub mod warm;

use crate::account::Account;
use crate::account::Accounts;
use crate::account::links::Links;
use crate::account::sites::Sites;
use crate::body::{Bodies, OpenError, Ranged};
use crate::http::conditional::{self, Outcome};
use crate::http::provenance::Provenance;
use crate::http::range::{self, Decision};
use crate::http::route::Route;
use crate::http::{Body, CacheStatus};
use crate::meta::{MetaCache, Source, State};
use crate::upstream::types::FileMetadata;
pub use error::ProxyError;
use hyper::header::{CONTENT_SECURITY_POLICY, HeaderValue, RANGE};
use hyper::http::request::Parts;
use hyper::{Method, Response};
use normalize::Target;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What the read path needs, built once by `app` from the config.
pub struct Proxy {
    pub accounts: Arc<Accounts>,
    /// Shared links served under `/s/`.
    pub links: Links,
    /// Websites from folders (`[[site]]`), by host or prefix.
    pub sites: Arc<Sites>,
    /// Fetches sites' new versions before the feed switches to them.
    pub warmer: Arc<warm::Warmer>,
    pub meta: Arc<MetaCache>,
    pub bodies: Arc<Bodies>,
    /// `cache.cache_control`, ready to send.
    pub cache_control: HeaderValue,
    /// `[[cache.rule]]`s, each with its value ready to send.
    pub cache_rules: Vec<(crate::config::CacheRule, HeaderValue)>,
    /// `[compression]`.
    pub compression: crate::config::CompressionConfig,
    /// Albums' image facts by content hash.
    pub albums: Arc<album::Albums>,
    /// Listings in a coding, by their ETag (None: too small to code); bounded.
    pub coded_listings: std::sync::Mutex<lru::LruCache<String, Option<bytes::Bytes>>>,
    /// Accounts' `cors` policies, by alias.
    pub cors: std::collections::HashMap<String, crate::http::cors::Policy>,
    /// `max_ranges`: more ranges than this are answered whole.
    pub max_ranges: usize,
}

impl Proxy {
    /// A listing in the coding `req` takes, if it takes one and the listing is worth it: made
    /// once per (listing version, format, coding), then kept in a bounded memory cache.
    fn coded_listing(
        &self,
        req: &Parts,
        account: &Account,
        listing: &crate::meta::Listing,
        source: Source,
        cc: &HeaderValue,
    ) -> Option<Response<Body>> {
        use crate::body::compress::{Effort, compress_with};
        use crate::http::encoding::{Encoding, choose};
        use listing::Format;
        if !self.compression.enabled || (req.method != Method::GET && req.method != Method::HEAD) {
            return None;
        }
        let accept = req
            .headers
            .get(hyper::header::ACCEPT_ENCODING)
            .and_then(|v| v.to_str().ok());
        let enc = choose(accept, &Encoding::ALL)?;
        let format = Format::from_accept(
            req.headers
                .get(hyper::header::ACCEPT)
                .and_then(|v| v.to_str().ok()),
        );
        let tag = format!("{}-{}", format.etag(listing), enc.token());
        // The bytes name the account's alias and depend on its root: so does the key.
        let key = format!("{}\0{}\0{tag}", account.alias, account.root);
        let lock = || {
            self.coded_listings
                .lock()
                .unwrap_or_else(|p| p.into_inner())
        };
        let known = lock().get(&key).cloned();
        let coded = match known {
            Some(coded) => coded,
            None => {
                let (raw, _) = respond::listing_bytes(format, account, listing);
                // Coded here, per request: only listings of a bounded size.
                let coded = (raw.len() as u64 >= self.compression.min_size
                    && raw.len() <= MAX_CODED_LISTING * 4)
                    .then(|| compress_with(&raw, enc, Effort::Fast).ok())
                    .flatten()
                    .filter(|c| c.len() < raw.len() && c.len() <= MAX_CODED_LISTING)
                    .map(bytes::Bytes::from);
                lock().put(key, coded.clone());
                coded
            }
        }?;
        Some(respond::coded_folder(
            cc, req, format, &tag, enc, coded, source,
        ))
    }

    /// 5–7 with `f`'s compressed copy in the coding `req` takes, if it has one; None when the
    /// client takes none, or the copy is not made yet (it is started, for the next request).
    /// SECURITY: a copy is served only to an account that has had the file's bytes (`used`, or
    /// its blob in the account's used set): a coded first answer would tell that another
    /// tenant brought the same content. The others get the plain bytes (their MISS) first.
    #[allow(clippy::too_many_arguments)]
    async fn encoded(
        &self,
        req: &Parts,
        account: &Arc<Account>,
        path: &str,
        f: &FileMetadata,
        head: &crate::http::representation::Representation,
        cc: &HeaderValue,
        cache: CacheStatus,
        used: bool,
    ) -> Option<Response<Body>> {
        use crate::http::encoding::{Encoding, choose};
        let accept = req
            .headers
            .get(hyper::header::ACCEPT_ENCODING)
            .and_then(|v| v.to_str().ok());
        let enc = choose(accept, &Encoding::ALL)?;
        let source = crate::body::blob_name(account, path, f)?;
        if !(used || account.used.contains(&source)) {
            return None;
        }
        let name = Bodies::compressed_name(&source, enc);
        let Some(len) = self.bodies.kept_size(&name) else {
            self.bodies.compress_later(&source, enc);
            return None;
        };
        let rep = head.encoded(enc.token(), len);
        // The conditionals and the range first: a 304, 412, 416 or HEAD reads nothing.
        let honor_range = match conditional::evaluate(&req.method, &req.headers, &rep.validators) {
            Outcome::PreconditionFailed => return Some(respond::precondition_failed()),
            Outcome::NotModified => return Some(respond::not_modified(cc, &rep, cache)),
            Outcome::Proceed { honor_range } => honor_range,
        };
        // Ranges are of the coded bytes; several ranges get the whole copy.
        let decision = match req.headers.get(RANGE).and_then(|v| v.to_str().ok()) {
            Some(r) if honor_range && req.method == Method::GET => {
                match range::decide(r, rep.len, self.max_ranges) {
                    Decision::Multi(_) => Decision::Whole,
                    d => d,
                }
            }
            _ => Decision::Whole,
        };
        let mut resp = match &decision {
            Decision::Unsatisfiable => return Some(respond::unsatisfiable(cc, &rep, cache)),
            _ if req.method == Method::HEAD => respond::head_only(cc, &rep, cache),
            _ => {
                // Gone since (evicted): the plain bytes this time.
                let bytes = self.bodies.compressed(&name).await?;
                if bytes.len() as u64 != len {
                    return None;
                }
                let (start, end) = match &decision {
                    Decision::Single(r) => (*r.start(), r.end() + 1),
                    _ => (0, rep.len),
                };
                let opened = crate::body::Opened {
                    offset: start,
                    stream: crate::http::full(bytes.slice(start as usize..end as usize)),
                    cache: CacheStatus::Hit,
                    offer: None,
                };
                respond::file(cc, &rep, decision, Ranged::Span(opened), cache)
            }
        };
        resp.headers_mut().insert(
            hyper::header::CONTENT_ENCODING,
            HeaderValue::from_static(enc.token()),
        );
        Some(resp)
    }

    /// The `Cache-Control` of a path (lowercase, under the account's root) of `content_type`
    /// (None: a listing): the first `[[cache.rule]]` that matches, else `cache.cache_control`.
    pub fn cache_control_for(&self, lower: &str, content_type: Option<&str>) -> &HeaderValue {
        let essence = content_type.map(|ct| ct.split(';').next().unwrap_or("").trim());
        self.cache_rules
            .iter()
            .find(|(rule, _)| {
                rule.path
                    .as_ref()
                    .is_none_or(|g| crate::http::pattern::glob(g, lower))
                    && rule.content_type.as_ref().is_none_or(|want| {
                        essence.is_some_and(|got| match want.strip_suffix("/*") {
                            Some(kind) => got
                                .split_once('/')
                                .is_some_and(|(t, _)| t.eq_ignore_ascii_case(kind)),
                            None => got.eq_ignore_ascii_case(want),
                        })
                    })
            })
            .map_or(&self.cache_control, |(_, v)| v)
    }
}

/// Listings kept in a coding, and the largest kept.
pub const CODED_LISTINGS: usize = 256;
const MAX_CODED_LISTING: usize = 256 * 1024;

/// What serving a file came to.
pub enum Served {
    Done(Response<Body>),
    /// Dropbox has a different version than the metadata said (the newer one, or None if
    /// the file is gone): refresh the metadata and start again.
    Changed(Option<FileMetadata>),
}

impl Proxy {
    /// Serves one request for a published path (`Route::Published`) or a shared link's
    /// (`Route::Link`).
    /// What it notes of the body goes in `noted`.
    pub async fn serve(
        &self,
        req: &Parts,
        route: Route,
        noted: &Provenance,
    ) -> Result<Response<Body>, ProxyError> {
        // 1. method
        if req.method != Method::GET && req.method != Method::HEAD {
            return Err(ProxyError::Method);
        }
        // 2. normalize (SECURITY: the only way from a URL to a Dropbox path) and
        // 3. account: unknown → 404 before anything reaches Dropbox; a shared link stands for
        //    an account rooted at it.
        let (account, target, by_url) = if route == Route::Link {
            let (segment, target) = link::target(req.uri.path())?;
            let (account, by_url) = self.links.resolve(segment).ok_or(ProxyError::NotFound)?;
            (account, target, by_url)
        } else {
            let target = normalize::normalize(req.uri.path())?;
            let account = self
                .accounts
                .lookup(target.alias())
                .ok_or(ProxyError::UnknownAccount)?;
            // A site's hidden names (`_redirects`, `.git`) are not served by this way either.
            if !self.sites.all().is_empty() && self.sites.hides(&account.alias, target.lower()) {
                return Err(ProxyError::NotFound);
            }
            (account, target, false)
        };
        let thumb = thumb::spec(req.uri.query())?;
        let mut resp = self
            .answer(req, &account, &target, thumb.as_ref(), noted)
            .await?;
        if by_url {
            // SECURITY: a stranger's HTML or SVG must not run as the operator's origin.
            resp.headers_mut()
                .insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static("sandbox"));
        }
        Ok(resp)
    }

    /// Steps 4–7 for `target` (checked by `normalize`) of `account`: its file, a range of it, a
    /// thumbnail of it, or its folder's listing; where the body came from goes in `noted`.
    pub async fn answer(
        &self,
        req: &Parts,
        account: &Arc<Account>,
        target: &Target,
        thumb: Option<&crate::body::thumb::Spec>,
        noted: &Provenance,
    ) -> Result<Response<Body>, ProxyError> {
        let account = account.clone();
        // The Dropbox path, made where it is needed (a hit from memory needs none).
        let path = || account.dropbox_path(target.display());
        let mut retried = false;
        // The answer depends on Accept-Encoding (a compressible file).
        let mut vary_encoding = false;
        let mut waited = Duration::ZERO;
        // A download that meets another version starts once more from 4.
        let mut resp = loop {
            // 4. metadata: from L1 at once, else timed (the wait may be Dropbox's)
            let generation = account.feed.generation();
            let (display, lower) = (target.display(), target.lower());
            let looked = match self.meta.lookup_in_l1(&account, display, lower) {
                Some(looked) => looked,
                None => {
                    let asked = Instant::now();
                    let looked = self.meta.lookup(&account, display, lower).await?;
                    if !matches!(looked.source, Source::Cache | Source::Updating) {
                        waited += asked.elapsed();
                    }
                    looked
                }
            };
            let source = looked.source;
            let cc = self.cache_control_for(target.lower(), None);
            let f = match &looked.entry.state {
                State::Missing => return Err(ProxyError::NotFound),
                State::Folder(_) if thumb.is_some() => {
                    return Err(ProxyError::BadThumb(
                        "thumbnails are of files, not folders".into(),
                    ));
                }
                State::Folder(listing) if account.link().is_some() => {
                    break respond::link_folder(cc, req, target.display(), listing, source);
                }
                State::Folder(listing) => {
                    vary_encoding = self.compression.enabled;
                    // A site's hidden names are not listed either (`_redirects`, `.git`).
                    let visible;
                    let listing = if !self.sites.all().is_empty()
                        && self.sites.covers(&account.alias, target.lower())
                    {
                        visible = crate::meta::Listing {
                            entries: listing
                                .entries
                                .iter()
                                .filter(|e| !crate::account::sites::hidden_name(e.name()))
                                .cloned()
                                .collect(),
                            ..listing.clone()
                        };
                        &visible
                    } else {
                        listing
                    };
                    if let Some(sort) = album::wanted(req)? {
                        break Box::pin(self.album(req, &account, listing, source, sort, cc))
                            .await?;
                    }
                    if let Some(resp) = self.coded_listing(req, &account, listing, source, cc) {
                        break resp;
                    }
                    break respond::folder(cc, req, &account, listing, source);
                }
                State::File(_) if target.trailing_slash => return Err(ProxyError::NotFound),
                State::File(f) => f,
            };
            let newer = if let Some(spec) = thumb {
                // 5–7 for the thumbnail asked for.
                match Box::pin(thumb::serve(self, req, &account, &path(), f, spec, noted)).await? {
                    Served::Done(resp) => break resp,
                    Served::Changed(newer) => newer,
                }
            } else {
                // 5. validators and conditionals, then ranges (GET only, RFC 9110 §14.2;
                //    HEAD answers as a plain GET would)
                let head = looked.entry.representation().expect("a file's entry");
                let cc = match self.cache_rules.is_empty() {
                    true => cc,
                    false => {
                        self.cache_control_for(target.lower(), head.content_type.to_str().ok())
                    }
                };
                let cache = respond::cache_status(source);
                // 5b. a compressed copy, for a client that takes one (`[compression]`)
                let c = &self.compression;
                if head.compressible && c.enabled && (c.min_size..=c.max_size).contains(&f.size) {
                    vary_encoding = true;
                    let used = looked.entry.body_used.get();
                    if f.is_downloadable
                        && let Some(resp) =
                            Box::pin(self.encoded(req, &account, &path(), f, head, cc, cache, used))
                                .await
                    {
                        break resp;
                    }
                }
                let honor_range =
                    match conditional::evaluate(&req.method, &req.headers, &head.validators) {
                        Outcome::PreconditionFailed => break respond::precondition_failed(),
                        Outcome::NotModified => break respond::not_modified(cc, head, cache),
                        Outcome::Proceed { honor_range } => honor_range,
                    };
                if !f.is_downloadable {
                    return Err(ProxyError::NotFound);
                }
                let decision = match req.headers.get(RANGE).and_then(|v| v.to_str().ok()) {
                    Some(r) if honor_range && req.method == Method::GET => {
                        range::decide(r, head.len, self.max_ranges)
                    }
                    _ => Decision::Whole,
                };
                if decision == Decision::Unsatisfiable {
                    break respond::unsatisfiable(cc, head, cache);
                }
                if req.method == Method::HEAD {
                    break respond::head_only(cc, head, cache);
                }
                // 6. body
                //    (from memory at once, else timed: a fill or a download waits on Dropbox)
                let mut opening = None;
                let opened = match &decision {
                    Decision::Multi(rs) => {
                        opening = Some(Instant::now());
                        Box::pin(self.bodies.open_parts(&account, &path(), f, rs)).await
                    }
                    decision => {
                        let span = match decision {
                            Decision::Single(r) => Some(r.clone()),
                            _ => None,
                        };
                        match self.bodies.open_in_memory(f, span.as_ref()) {
                            Some(opened) => Ok(Ranged::Span(opened)),
                            None => {
                                opening = Some(Instant::now());
                                let path = path();
                                let opened = self.bodies.open(&account, &path, f, span).await;
                                opened.map(Ranged::Span)
                            }
                        }
                    }
                };
                match opened {
                    Ok(opened) => {
                        // 7. respond. Stale metadata says so whatever the bytes' own story.
                        // SECURITY: a blob this account has not been served before is its
                        // MISS, whoever brought it: what others' caches hold is not told.
                        let bytes_from = match &opened {
                            Ranged::Span(o) | Ranged::Each { first: o, .. } => o.cache,
                        };
                        let blob =
                            || crate::body::blob_name(&account, &path(), f).map(|b| b.into_owned());
                        let known = looked.entry.body_used.get()
                            || blob().is_some_and(|b| account.used.contains(&b));
                        let cache = match source {
                            Source::Stale | Source::Updating => cache,
                            _ if bytes_from == CacheStatus::Hit && !known => CacheStatus::Miss,
                            _ => bytes_from,
                        };
                        let resp = respond::file(cc, head, decision, opened, cache);
                        // A fill joined or started, or a pass-through: the wait for it was
                        // Dropbox's.
                        noted.body_from(bytes_from, opening);
                        // A GET's body is on its way: the account has had these bytes.
                        if looked.entry.body_used.first() {
                            if let Some(b) = blob() {
                                account.used.insert(&b);
                            }
                            self.meta.keep_used(
                                &account,
                                target.lower(),
                                looked.entry.clone(),
                                generation,
                            );
                        }
                        break resp;
                    }
                    Err(OpenError::Changed(newer)) => newer,
                    Err(OpenError::Upstream(e)) => return Err(ProxyError::Upstream(e)),
                }
            };
            // Dropbox has another version than the metadata said: look it up again, once.
            if retried {
                return Err(ProxyError::Changing);
            }
            match newer {
                Some(newer) => {
                    Box::pin(self.meta.record_file(&account, target.lower(), newer)).await;
                }
                None => Box::pin(self.meta.forget(&account, target.lower())).await,
            }
            retried = true;
        };
        if !waited.is_zero() {
            noted.add_upstream(waited);
        }
        if vary_encoding {
            crate::http::cors::append_vary(resp.headers_mut(), "Accept-Encoding");
        }
        Ok(resp)
    }
}
