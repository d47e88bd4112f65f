//! `GET /<alias>/<folder>/?album[&sort=taken|name|modified]` (or `Accept: ALBUM_TYPE`): the
//! folder as a photo album a gallery frontend can render at once. For each image: its URL and
//! bytes, `width` × `height` as displayed (after EXIF orientation), `taken` (EXIF
//! DateTimeOriginal with its offset, else `client_modified`), orientation, camera, a
//! `placeholder` (mean colour and BlurHash) and `srcset` (thumbnail URLs at Dropbox's sizes with
//! their real size); videos with their type; sub-folders as albums with a cover and a count.
//!
//! Facts are read once per content hash (`body::facts`, from the file's first bytes: one Range
//! request, or none when the body is cached; the placeholder from the thumbnail a camera
//! embeds in the EXIF when there is one, else from Dropbox's smallest thumbnail), kept in the store (`facts:<content_hash>`, shared by every instance, account
//! and copy, for `FACTS_TTL`) and in memory. The answer has its own strong ETag (a digest of
//! its bytes); a complete one is kept, so a 304 or a repeat builds nothing.
//!
//! Bounded: one answer reads at most `albums.reads_per_answer` new facts within
//! `albums.answer_time` (the rest come without, `"complete": false`, `Cache-Control:
//! no-store`, and the next answer goes on), eight at once across all requests; a failed read is not retried for a minute; at most `MAX_IMAGES` images
//! (`"truncated": true` past it) and `MAX_SUBALBUMS` described sub-folders an answer.

use super::listing::{self, entry_path, href};
use super::{Proxy, ProxyError, respond};
use crate::account::Account;
use crate::body::facts::{self, Facts, HEAD_BYTES, Placeholder};
use crate::body::thumb::Spec;
use crate::http::conditional::{self, Outcome, Validators};
use crate::http::etag::EntityTag;
use crate::http::representation::content_type;
use crate::http::{Body, full};
use crate::meta::{Listing, Source, State};
use crate::upstream::types::{FileMetadata, Metadata};
use bytes::Bytes;
use hyper::header::{ACCEPT, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, ETAG, HeaderValue, VARY};
use hyper::http::request::Parts;
use hyper::{Method, Response, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::sync::Arc;

/// The media type of an album answer (also asked for by `Accept`).
pub const ALBUM_TYPE: &str = "application/vnd.dropcache.album+json";
/// Image facts kept in memory (the store keeps them all).
pub const FACTS_IN_MEMORY: usize = 16_384;
/// Facts read from Dropbox at once, over every request.
const CONCURRENCY: usize = 8;
/// Images one answer holds.
pub const MAX_IMAGES: usize = 5000;
/// Sub-folders described (cover, count) in one answer; the rest are listed by name only.
const MAX_SUBALBUMS: usize = 16;
/// How long the store keeps an image's facts (a read renews nothing: they are cheap to redo).
const FACTS_TTL: std::time::Duration = std::time::Duration::from_secs(60 * 24 * 3600);
/// A failed read is tried again after this.
const RETRY_FAILED: std::time::Duration = std::time::Duration::from_secs(60);
/// The most Dropbox makes thumbnails of (its limit on a thumbnail's source).
const THUMBNAIL_MAX_SOURCE: u64 = 20 << 20;
/// The longer read when a header is not within `HEAD_BYTES`.
const HEAD_BYTES_MORE: u64 = 1 << 20;
/// Complete answers kept, and the largest kept.
const BUILT: usize = 64;
const MAX_BUILT: usize = 4 << 20;

const IMAGES: &[&str] = &[
    "jpg", "jpeg", "png", "gif", "webp", "heic", "heif", "avif", "tif", "tiff", "bmp",
];
const VIDEOS: &[&str] = &[
    "mp4", "m4v", "mov", "webm", "mkv", "avi", "3gp", "mpg", "mpeg",
];

fn extension(name: &str) -> String {
    name.rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default()
}

pub fn is_image(name: &str) -> bool {
    IMAGES.contains(&extension(name).as_str())
}

fn is_video(name: &str) -> bool {
    VIDEOS.contains(&extension(name).as_str())
}

/// How an album is sorted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sort {
    Taken,
    Name,
    Modified,
}

/// Whether `req` asks for the album view, and how sorted.
pub fn wanted(req: &Parts) -> Result<Option<Sort>, ProxyError> {
    let pairs: Vec<(String, String)> = req
        .uri
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let by_query = pairs.iter().any(|(k, _)| k == "album");
    let by_accept = req
        .headers
        .get(ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.split(',').any(|t| t.trim().starts_with(ALBUM_TYPE)));
    if !by_query && !by_accept {
        return Ok(None);
    }
    let sort = match pairs
        .iter()
        .find(|(k, _)| k == "sort")
        .map(|(_, v)| v.as_str())
    {
        None | Some("taken") => Sort::Taken,
        Some("name") => Sort::Name,
        Some("modified") => Sort::Modified,
        Some(other) => {
            return Err(ProxyError::BadAlbum(format!(
                "sort {other:?} is not one of taken, name, modified"
            )));
        }
    };
    Ok(Some(sort))
}

/// What is kept per content hash: the facts (None: not an image this reads) and the
/// placeholder (None: Dropbox made no thumbnail).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Kept {
    pub v: u32,
    pub facts: Option<Facts>,
    pub placeholder: Option<Placeholder>,
}

/// The size a Dropbox `bestfit` thumbnail in the box `bw`×`bh` has, for an image displayed
/// `w`×`h`: scaled down (never up) to fit the box, turned to match the image.
fn bestfit(w: u32, h: u32, bw: u32, bh: u32) -> (u32, u32) {
    let (bw, bh) = if (w > h) != (bw > bh) {
        (bh, bw)
    } else {
        (bw, bh)
    };
    if w <= bw && h <= bh {
        return (w, h);
    }
    let scale = (f64::from(bw) / f64::from(w)).min(f64::from(bh) / f64::from(h));
    (
        ((f64::from(w) * scale).round() as u32).max(1),
        ((f64::from(h) * scale).round() as u32).max(1),
    )
}

/// `srcset` entries: each of Dropbox's sizes smaller than the image, with its real size, then
/// the image itself.
fn srcset(url: &str, f: &Facts) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    let mut last = (0, 0);
    for size in crate::upstream::types::THUMBNAIL_SIZES {
        let Some((bw, bh)) = size
            .strip_prefix('w')
            .and_then(|s| s.split_once('h'))
            .and_then(|(w, h)| Some((w.parse::<u32>().ok()?, h.parse::<u32>().ok()?)))
        else {
            continue;
        };
        let (w, h) = bestfit(f.width, f.height, bw, bh);
        if (w, h) == (f.width, f.height) || (w, h) == last || w < 64 && h < 64 {
            continue;
        }
        last = (w, h);
        out.push(json!({
            "url": format!("{url}?thumb={size}&mode=bestfit"),
            "width": w,
            "height": h,
        }));
    }
    out.push(json!({"url": url, "width": f.width, "height": f.height}));
    out
}

/// Image facts by content hash, in memory and in the store, read once however many ask; the
/// folders seen as albums lately (warm on change reads their photos' facts); complete answers.
pub struct Albums {
    config: crate::config::AlbumsConfig,
    bodies: Arc<crate::body::Bodies>,
    store: crate::store::Store,
    facts: std::sync::Mutex<lru::LruCache<String, Arc<Kept>>>,
    flights: crate::flight::Flights<Option<Arc<Kept>>>,
    /// Reads under way, over every request.
    reads: tokio::sync::Semaphore,
    /// Content hashes whose read failed lately, and when.
    failed: std::sync::Mutex<lru::LruCache<String, std::time::Instant>>,
    /// `(alias, folder lowercase)` of albums asked for lately.
    viewed: std::sync::Mutex<lru::LruCache<(String, String), ()>>,
    /// Complete answers by (alias, root, listing tag, sort): the body and its ETag.
    built: std::sync::Mutex<lru::LruCache<String, (Bytes, String)>>,
}

/// Folders remembered as viewed albums, and failures remembered.
const VIEWED: usize = 4096;

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Albums {
    pub fn new(
        config: crate::config::AlbumsConfig,
        bodies: Arc<crate::body::Bodies>,
        store: crate::store::Store,
    ) -> Albums {
        let n = |n: usize| std::num::NonZeroUsize::new(n).expect("not zero");
        Albums {
            config,
            bodies,
            store,
            facts: std::sync::Mutex::new(lru::LruCache::new(n(FACTS_IN_MEMORY))),
            flights: Default::default(),
            reads: tokio::sync::Semaphore::new(CONCURRENCY),
            failed: std::sync::Mutex::new(lru::LruCache::new(n(VIEWED))),
            viewed: std::sync::Mutex::new(lru::LruCache::new(n(VIEWED))),
            built: std::sync::Mutex::new(lru::LruCache::new(n(BUILT))),
        }
    }

    /// Notes that `folder` (lowercase, under `alias`'s root) was asked for as an album.
    pub fn viewed(&self, alias: &str, folder: &str) {
        lock(&self.viewed).put((alias.to_owned(), folder.to_owned()), ());
    }

    /// Whether `folder` was asked for as an album lately.
    pub fn was_viewed(&self, alias: &str, folder: &str) -> bool {
        lock(&self.viewed).contains(&(alias.to_owned(), folder.to_owned()))
    }

    /// Whether the facts of `hash` are known here (memory only: no store round trip).
    pub fn knows(&self, hash: &str) -> bool {
        lock(&self.facts).contains(hash)
    }

    /// The facts of `f` if they are known (memory, then the store): nothing asked of Dropbox.
    pub async fn known(&self, f: &FileMetadata) -> Option<Arc<Kept>> {
        let hash = f.content_hash.as_deref()?;
        if let Some(k) = lock(&self.facts).get(hash) {
            return Some(k.clone());
        }
        let bytes = self.store.get(&format!("facts:{hash}")).await.ok()??;
        let k = serde_json::from_slice::<Kept>(&bytes).ok()?;
        (k.v == facts::FACTS_VERSION).then(|| self.remember(hash.to_owned(), k))
    }

    /// The facts of `f`, from memory, the store, or read now (and kept); None when they cannot
    /// be had now (not an image with a content hash, or a read failed lately).
    pub async fn facts(
        &self,
        account: &Arc<Account>,
        path: &str,
        f: &FileMetadata,
    ) -> Option<Arc<Kept>> {
        if let Some(k) = self.known(f).await {
            return Some(k);
        }
        let hash = f.content_hash.clone()?;
        if lock(&self.failed)
            .get(&hash)
            .is_some_and(|t| t.elapsed() < RETRY_FAILED)
        {
            return None;
        }
        // Once for concurrent asks (two copies in one folder), per account: an account never
        // waits on, or inherits the failure of, another's call.
        let flight = format!("{}\0{hash}", account.key());
        let got = self
            .flights
            .run(&flight, self.read_facts(account, path, f, hash.clone()))
            .await;
        if got.is_none() {
            lock(&self.failed).put(hash, std::time::Instant::now());
        }
        got
    }

    /// `facts` from the file's first bytes, now.
    async fn read_facts(
        &self,
        account: &Arc<Account>,
        path: &str,
        f: &FileMetadata,
        hash: String,
    ) -> Option<Arc<Kept>> {
        let _read = self.reads.acquire().await.ok()?;
        // One small call: the first bytes (none if the body is cached) ...
        let (mut head, _) = self
            .bodies
            .head_bytes(account, path, f, HEAD_BYTES)
            .await
            .ok()?;
        let mut read = facts::read(&head);
        // ... or, for a header further on (big XMP or ICC segments), once more, longer.
        if read.is_none()
            && head.len() as u64 == HEAD_BYTES
            && f.size > HEAD_BYTES
            && facts::may_need_more(&head)
        {
            head = self
                .bodies
                .head_bytes(account, path, f, HEAD_BYTES_MORE)
                .await
                .ok()?
                .0;
            read = facts::read(&head);
        }
        // A None that more bytes might have changed is not kept for good.
        let mut lasting = read.is_some() || (head.len() as u64) >= f.size;
        // ... and, for an image Dropbox makes thumbnails of, its smallest for the placeholder.
        let thumbnailable =
            crate::upstream::types::thumbnailable(&f.name) && f.size <= THUMBNAIL_MAX_SOURCE;
        // A camera's own thumbnail in the EXIF, when there is one: no call at all.
        let embedded = read
            .as_ref()
            .and_then(|_| facts::embedded_thumbnail(&head))
            .and_then(|t| facts::placeholder(&t));
        let placeholder = match &read {
            Some(_) if embedded.is_some() => embedded,
            Some(_) if thumbnailable => {
                // Under the name `?thumb=w32h32` keeps it, so both share it.
                let spec = Spec::SMALLEST;
                let thumb = spec.blob_name_of(account, path, f);
                match self.bodies.thumbnail(account, path, f, &thumb, &spec).await {
                    Ok((bytes, _)) => facts::placeholder(&bytes),
                    // Dropbox's answer for this content: none.
                    Err(e) if matches!(*e, crate::upstream::error::UpstreamError::Unsupported) => {
                        None
                    }
                    // This account's trouble (a 429, a token): not what the content is.
                    Err(_) => {
                        lasting = false;
                        None
                    }
                }
            }
            _ => None,
        };
        let k = Kept {
            v: facts::FACTS_VERSION,
            facts: read,
            placeholder,
        };
        if lasting && let Ok(bytes) = serde_json::to_vec(&k) {
            let _ = self
                .store
                .set(&format!("facts:{hash}"), &bytes, Some(FACTS_TTL))
                .await;
        }
        Some(self.remember(hash, k))
    }

    fn remember(&self, hash: String, k: Kept) -> Arc<Kept> {
        let k = Arc::new(k);
        lock(&self.facts).put(hash, k.clone());
        k
    }
}

/// A sortable UTC key for `taken`: `YYYY-MM-DDTHH:MM:SS` with `±HH:MM` or `Z` (a local time with
/// neither is taken as UTC); the text itself when it is no such time.
fn utc_key(taken: &str) -> String {
    let b = taken.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> { taken.get(r)?.parse().ok() };
    let parts = (|| {
        if b.len() < 19 {
            return None;
        }
        let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
        let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
        let offset = match &taken[19..] {
            "" | "Z" => 0,
            o if o.len() == 6 => {
                let sign = if o.starts_with('-') { -1 } else { 1 };
                sign * (num(20..22)? * 3600 + num(23..25)? * 60)
            }
            _ => return None,
        };
        // Days from civil (Howard Hinnant's algorithm).
        let y = if mo <= 2 { y - 1 } else { y };
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let doy = (153 * (if mo > 2 { mo - 3 } else { mo + 9 }) + 2) / 5 + d - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        let days = era * 146_097 + doe - 719_468;
        Some(days * 86_400 + h * 3600 + mi * 60 + sec - offset)
    })();
    match parts {
        Some(secs) => format!("{:020}", secs + 100_000_000_000),
        None => taken.to_owned(),
    }
}

impl Proxy {
    /// The album view of `listing` (the folder `display` of `account`).
    pub async fn album(
        &self,
        req: &Parts,
        account: &Arc<Account>,
        listing: &Listing,
        source: Source,
        sort: Sort,
        cc: &HeaderValue,
    ) -> Result<Response<Body>, ProxyError> {
        let depth = listing::depth(&account.root);
        let folder = listing::folder_path(listing, depth);
        let folder_lower = if folder == "/" {
            String::new()
        } else {
            folder.to_lowercase()
        };
        self.albums.viewed(&account.alias, &folder_lower);
        // A complete answer for this version of the listing was built already.
        let built_key = format!(
            "{}\0{}\0{}\0{sort:?}",
            account.alias, account.root, listing.tag
        );
        let built = lock(&self.albums.built).get(&built_key).cloned();
        let (body, tag, complete) = match built {
            Some((body, tag)) => (body, tag, true),
            None => {
                let (body, complete) =
                    Box::pin(self.build_album(account, listing, &folder, depth, sort)).await;
                let tag = {
                    use sha2::{Digest, Sha256};
                    hex::encode(&Sha256::digest(&body)[..16])
                };
                if complete && body.len() <= MAX_BUILT {
                    lock(&self.albums.built).put(built_key, (body.clone(), tag.clone()));
                }
                (body, tag, complete)
            }
        };
        let etag = EntityTag::strong(format!("{tag}-album"));
        let validators = Validators {
            etag: Some(etag.clone()),
            last_modified: None,
        };
        let cache = respond::cache_status(source);
        let etag_value = HeaderValue::from_str(&etag.to_string()).expect("hex");
        let mut resp = Response::new(full(Bytes::new()));
        match conditional::evaluate(&req.method, &req.headers, &validators) {
            Outcome::PreconditionFailed => return Ok(respond::precondition_failed()),
            Outcome::NotModified => *resp.status_mut() = StatusCode::NOT_MODIFIED,
            Outcome::Proceed { .. } => {
                let h = resp.headers_mut();
                h.insert(CONTENT_TYPE, HeaderValue::from_static(ALBUM_TYPE));
                h.insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
                if req.method != Method::HEAD {
                    *resp.body_mut() = full(body);
                }
            }
        }
        cache.mark(&mut resp);
        let h = resp.headers_mut();
        h.insert(ETAG, etag_value);
        // An album still missing facts is not kept by anyone: the next answer has more.
        h.insert(
            CACHE_CONTROL,
            if complete {
                cc.clone()
            } else {
                HeaderValue::from_static("no-store")
            },
        );
        h.insert(VARY, HeaderValue::from_static("Accept"));
        Ok(resp)
    }

    /// The album's bytes, and whether every image has the facts it can have.
    async fn build_album(
        &self,
        account: &Arc<Account>,
        listing: &Listing,
        folder: &str,
        depth: usize,
        sort: Sort,
    ) -> (Bytes, bool) {
        let files: Vec<&FileMetadata> = listing
            .entries
            .iter()
            .filter_map(|m| match m {
                Metadata::File(f) => Some(f),
                _ => None,
            })
            .collect();
        let all_images: Vec<&FileMetadata> = files
            .iter()
            .copied()
            .filter(|f| is_image(&f.name))
            .collect();
        let truncated = all_images.len() > MAX_IMAGES;
        let images = &all_images[..all_images.len().min(MAX_IMAGES)];
        // Facts known already (memory, the store), then at most `reads_per_answer` read now.
        let mut kept: Vec<Option<Arc<Kept>>> = Vec::with_capacity(images.len());
        for f in images {
            kept.push(self.albums.known(f).await);
        }
        let missing: Vec<usize> = (0..images.len())
            .filter(|&i| kept[i].is_none() && images[i].content_hash.is_some())
            .collect();
        let reading = &missing[..missing.len().min(self.albums.config.reads_per_answer)];
        if !reading.is_empty() {
            let started = std::time::Instant::now();
            // Each read within the answer's time (reads cut short are left for the next).
            let deadline = tokio::time::Instant::now() + self.albums.config.answer_time;
            let got = futures_util::future::join_all(reading.iter().map(|&i| {
                let f = images[i];
                let path = f.path_display.clone().unwrap_or_default();
                async move {
                    tokio::time::timeout_at(deadline, self.albums.facts(account, &path, f))
                        .await
                        .ok()
                        .flatten()
                }
            }))
            .await;
            for (&i, k) in reading.iter().zip(got) {
                kept[i] = k;
            }
            tracing::info!(alias = %account.alias, folder, read = reading.len(),
                left = missing.len() - reading.len(), took = ?started.elapsed(),
                "album: image facts read");
        }
        let complete = !truncated
            && (0..images.len()).all(|i| kept[i].is_some() || images[i].content_hash.is_none());
        let mut entries: Vec<(String, String, Value)> = Vec::new();
        for (f, k) in images.iter().zip(&kept) {
            let path = entry_path(&Metadata::File((*f).clone()), folder, depth);
            let url = href(&account.alias, &path, false);
            let mut item = json!({
                "name": f.name, "url": url, "bytes": f.size,
                "type": content_type(&f.name),
            });
            let facts = k.as_ref().and_then(|k| k.facts.as_ref());
            // EXIF's local time (with its offset when known), else Dropbox's UTC time.
            let taken = facts
                .and_then(|x| x.taken.clone())
                .unwrap_or_else(|| f.client_modified.clone());
            if let Some(x) = facts {
                item["width"] = json!(x.width);
                item["height"] = json!(x.height);
                item["orientation"] = json!(x.orientation);
                if x.make.is_some() || x.model.is_some() {
                    item["camera"] = json!({"make": x.make, "model": x.model});
                }
                let thumbs = crate::upstream::types::thumbnailable(&f.name)
                    && f.size <= THUMBNAIL_MAX_SOURCE;
                item["srcset"] = json!(if thumbs {
                    srcset(&url, x)
                } else {
                    vec![json!({"url": url, "width": x.width, "height": x.height})]
                });
            }
            if let Some(p) = k.as_ref().and_then(|k| k.placeholder.as_ref()) {
                item["placeholder"] = json!(p);
            }
            let key = match sort {
                Sort::Taken => utc_key(&taken),
                Sort::Name => f.name.to_lowercase(),
                Sort::Modified => f.server_modified.clone(),
            };
            item["taken"] = json!(taken);
            entries.push((key, f.name.to_lowercase(), item));
        }
        entries.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        let videos: Vec<Value> = files
            .iter()
            .filter(|f| is_video(&f.name))
            .take(MAX_IMAGES)
            .map(|f| {
                let path = entry_path(&Metadata::File((*f).clone()), folder, depth);
                json!({"name": f.name, "url": href(&account.alias, &path, false),
                       "bytes": f.size, "type": content_type(&f.name)})
            })
            .collect();
        // Sub-folders: the first few described (cover, count) from their listings, looked up
        // together, each given a moment; the rest by name.
        let subs: Vec<&Metadata> = listing
            .entries
            .iter()
            .filter(|m| matches!(m, Metadata::Folder(_)))
            .take(MAX_IMAGES)
            .collect();
        let described = futures_util::future::join_all(subs.iter().take(MAX_SUBALBUMS).map(|m| {
            let path = entry_path(m, folder, depth);
            async move {
                let lower = path.to_lowercase();
                let looked = tokio::time::timeout(
                    std::time::Duration::from_secs(2),
                    self.meta.lookup(account, &path, &lower),
                )
                .await
                .ok()?
                .ok()?;
                let State::Folder(sub) = &looked.entry.state else {
                    return None;
                };
                // A site's hidden names are neither counted nor a cover.
                let hide =
                    !self.sites.all().is_empty() && self.sites.covers(&account.alias, &lower);
                let mut pics: Vec<&Metadata> = sub
                    .entries
                    .iter()
                    .filter(|e| matches!(e, Metadata::File(f) if is_image(&f.name)))
                    .filter(|e| !hide || !crate::account::sites::hidden_name(e.name()))
                    .collect();
                pics.sort_by_key(|e| e.name().to_lowercase());
                let cover = pics
                    .first()
                    .map(|c| href(&account.alias, &entry_path(c, &path, depth), false));
                Some((pics.len(), cover))
            }
        }))
        .await;
        let albums: Vec<Value> = subs
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let path = entry_path(m, folder, depth);
                let mut album = json!({"name": m.name(), "url": href(&account.alias, &path, true)});
                if let Some(Some((count, cover))) = described.get(i) {
                    album["count"] = json!(count);
                    if let Some(cover) = cover {
                        album["cover"] = json!(cover);
                    }
                }
                album
            })
            .collect();
        let mut answer = json!({
            "path": folder,
            "url": href(&account.alias, folder, true),
            "complete": complete,
            "images": entries.into_iter().map(|e| e.2).collect::<Vec<_>>(),
            "videos": videos,
            "albums": albums,
        });
        if truncated {
            answer["truncated"] = json!(true);
        }
        let body = serde_json::to_vec_pretty(&answer).expect("an album serializes");
        (Bytes::from(body), complete)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_taken_sort_in_utc() {
        let keys = [
            utc_key("2024-05-01T10:00:00+09:00"), // 01:00Z
            utc_key("2024-05-01T09:00:00+00:00"), // 09:00Z
            utc_key("2024-05-01T08:30:00Z"),      // 08:30Z
            utc_key("2024-05-01T05:00:00-05:00"), // 10:00Z
            utc_key("2024-05-01T09:30:00"),       // no offset: as UTC
        ];
        let mut order: Vec<usize> = (0..keys.len()).collect();
        order.sort_by_key(|&i| keys[i].clone());
        assert_eq!(order, vec![0, 2, 1, 4, 3]);
        assert_eq!(
            utc_key("1970-01-01T00:00:00Z"),
            format!("{:020}", 100_000_000_000i64)
        );
        assert!(utc_key("1969-12-31T23:59:59Z") < utc_key("1970-01-01T00:00:00Z"));
        assert_eq!(utc_key("not a date"), "not a date");
    }

    #[test]
    fn thumbnails_fit_their_box_turned_to_the_image() {
        assert_eq!(bestfit(4000, 3000, 640, 480), (640, 480));
        assert_eq!(bestfit(3000, 4000, 640, 480), (480, 640));
        assert_eq!(bestfit(4000, 2000, 256, 256), (256, 128));
        assert_eq!(bestfit(100, 50, 640, 480), (100, 50), "never up");
    }

    #[test]
    fn a_srcset_lists_the_smaller_sizes_then_the_image() {
        let f = Facts {
            v: 1,
            width: 1200,
            height: 800,
            orientation: 1,
            taken: None,
            make: None,
            model: None,
        };
        let s = srcset("/a/p.jpg", &f);
        let sizes: Vec<(u64, u64)> = s
            .iter()
            .map(|e| (e["width"].as_u64().unwrap(), e["height"].as_u64().unwrap()))
            .collect();
        assert_eq!(
            sizes,
            vec![
                (64, 43),
                (128, 85),
                (256, 171),
                (480, 320),
                (640, 427),
                (960, 640),
                (1024, 683),
                (1200, 800)
            ]
        );
        assert_eq!(s[0]["url"], "/a/p.jpg?thumb=w64h64&mode=bestfit");
        assert_eq!(s.last().unwrap()["url"], "/a/p.jpg");
    }
}
