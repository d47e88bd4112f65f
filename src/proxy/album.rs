//! `GET /<alias>/<folder>/?album[&sort=taken|name|modified]` (or `Accept: ALBUM_TYPE`): the
//! folder as a photo album a gallery frontend can render at once. For each image: its URL and
//! bytes, `width` × `height` as displayed (after EXIF orientation), `taken` (EXIF
//! DateTimeOriginal with its offset, else `client_modified`), orientation, camera, a
//! `placeholder` (mean colour and BlurHash) and `srcset` (thumbnail URLs at Dropbox's sizes with
//! their real size); videos with their type; sub-folders as albums with a cover and a count.
//!
//! Facts are read once per content hash (`body::facts`, from the file's first bytes: one Range
//! request, or none when the body is cached; the placeholder from Dropbox's smallest
//! thumbnail), kept in the store (`facts:<content_hash>`, shared by every instance, account
//! and copy) and in memory. The answer has its own strong ETag (a digest of its bytes).

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
/// Images whose facts are read at once for one answer.
const CONCURRENCY: usize = 8;
/// Sub-folders described (cover, count) in one answer; the rest are listed by name only.
const MAX_SUBALBUMS: usize = 64;

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

/// Image facts by content hash, in memory and in the store, read once however many ask; and
/// the folders seen as albums lately (warm on change recomputes their photos' facts).
pub struct Albums {
    bodies: Arc<crate::body::Bodies>,
    store: crate::store::Store,
    facts: std::sync::Mutex<lru::LruCache<String, Arc<Kept>>>,
    flights: crate::flight::Flights<Option<Arc<Kept>>>,
    /// `(alias, folder lowercase)` of albums asked for lately.
    viewed: std::sync::Mutex<lru::LruCache<(String, String), ()>>,
}

/// Folders remembered as viewed albums.
const VIEWED: usize = 4096;

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Albums {
    pub fn new(bodies: Arc<crate::body::Bodies>, store: crate::store::Store) -> Albums {
        let n = |n: usize| std::num::NonZeroUsize::new(n).expect("not zero");
        Albums {
            bodies,
            store,
            facts: std::sync::Mutex::new(lru::LruCache::new(n(FACTS_IN_MEMORY))),
            flights: Default::default(),
            viewed: std::sync::Mutex::new(lru::LruCache::new(n(VIEWED))),
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

    /// The facts of `f`, from memory, the store, or read now (and kept).
    pub async fn facts(
        &self,
        account: &Arc<Account>,
        path: &str,
        f: &FileMetadata,
    ) -> Option<Arc<Kept>> {
        let hash = f.content_hash.clone()?;
        if let Some(k) = lock(&self.facts).get(&hash) {
            return Some(k.clone());
        }
        // Once for concurrent asks (two copies in one folder), per account: an account never
        // waits on, or inherits the failure of, another's call.
        let flight = format!("{}\0{hash}", account.key());
        self.flights
            .run(&flight, self.read_facts(account, path, f, hash))
            .await
    }

    /// `facts` beyond memory: the store, or the file's first bytes now.
    async fn read_facts(
        &self,
        account: &Arc<Account>,
        path: &str,
        f: &FileMetadata,
        hash: String,
    ) -> Option<Arc<Kept>> {
        let name = format!("facts:{hash}");
        if let Ok(Some(bytes)) = self.store.get(&name).await
            && let Ok(k) = serde_json::from_slice::<Kept>(&bytes)
            && k.v == facts::FACTS_VERSION
        {
            return Some(self.remember(hash, k));
        }
        // One small call: the first bytes (none if the body is cached) ...
        let head = self
            .bodies
            .head_bytes(account, path, f, HEAD_BYTES)
            .await
            .ok()?;
        let read = facts::read(&head.0);
        // ... and, for an image that reads, its smallest thumbnail for the placeholder.
        let placeholder = match &read {
            Some(_) => {
                let spec = Spec {
                    size: "w32h32",
                    format: "jpeg",
                    mime: "image/jpeg",
                    mode: "strict",
                };
                // The name `?thumb=w32h32` keeps it under, so both share it.
                let file =
                    crate::body::blob_name(account, path, f).unwrap_or_else(|| f.rev.clone());
                let thumb = crate::body::disk::derived_name(&[
                    "thumbnail",
                    &file,
                    "w32h32",
                    "jpeg",
                    "strict",
                ]);
                match self.bodies.thumbnail(account, path, f, &thumb, &spec).await {
                    Ok((bytes, _)) => facts::placeholder(&bytes),
                    Err(_) => None,
                }
            }
            None => None,
        };
        let k = Kept {
            v: facts::FACTS_VERSION,
            facts: read,
            placeholder,
        };
        if let Ok(bytes) = serde_json::to_vec(&k) {
            let _ = self.store.set(&name, &bytes, None).await;
        }
        Some(self.remember(hash, k))
    }

    fn remember(&self, hash: String, k: Kept) -> Arc<Kept> {
        let k = Arc::new(k);
        lock(&self.facts).put(hash, k.clone());
        k
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
        let files: Vec<&FileMetadata> = listing
            .entries
            .iter()
            .filter_map(|m| match m {
                Metadata::File(f) => Some(f),
                _ => None,
            })
            .collect();
        // Facts, a few at a time: one small call per image not seen before, none after.
        let images: Vec<&FileMetadata> = files
            .iter()
            .copied()
            .filter(|f| is_image(&f.name))
            .collect();
        let mut kept: Vec<Option<Arc<Kept>>> = Vec::with_capacity(images.len());
        let started = std::time::Instant::now();
        for (i, chunk) in images.chunks(CONCURRENCY).enumerate() {
            let got = futures_util::future::join_all(chunk.iter().map(|f| {
                let path = f.path_display.clone().unwrap_or_default();
                async move { self.albums.facts(account, &path, f).await }
            }))
            .await;
            kept.extend(got);
            if started.elapsed().as_secs() >= 1 && (i + 1) % 8 == 0 {
                tracing::info!(alias = %account.alias, folder = %folder, done = kept.len(),
                    of = images.len(), "album: reading image facts");
            }
        }
        let mut entries: Vec<(String, String, Value)> = Vec::new();
        for (f, k) in images.iter().zip(&kept) {
            let path = entry_path(&Metadata::File((*f).clone()), &folder, depth);
            let url = href(&account.alias, &path, false);
            let mut item = json!({
                "name": f.name, "url": url, "bytes": f.size,
                "type": content_type(&f.name),
            });
            let facts = k.as_ref().and_then(|k| k.facts.as_ref());
            let taken = facts
                .and_then(|x| x.taken.clone())
                .unwrap_or_else(|| f.client_modified.trim_end_matches('Z').to_owned());
            item["taken"] = json!(taken);
            if let Some(x) = facts {
                item["width"] = json!(x.width);
                item["height"] = json!(x.height);
                item["orientation"] = json!(x.orientation);
                if x.make.is_some() || x.model.is_some() {
                    item["camera"] = json!({"make": x.make, "model": x.model});
                }
                item["srcset"] = json!(srcset(&url, x));
            }
            if let Some(p) = k.as_ref().and_then(|k| k.placeholder.as_ref()) {
                item["placeholder"] = json!(p);
            }
            let key = match sort {
                Sort::Taken => taken,
                Sort::Name => f.name.to_lowercase(),
                Sort::Modified => f.server_modified.clone(),
            };
            entries.push((key, f.name.to_lowercase(), item));
        }
        entries.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        let videos: Vec<Value> = files
            .iter()
            .filter(|f| is_video(&f.name))
            .map(|f| {
                let path = entry_path(&Metadata::File((*f).clone()), &folder, depth);
                json!({"name": f.name, "url": href(&account.alias, &path, false),
                       "bytes": f.size, "type": content_type(&f.name)})
            })
            .collect();
        let mut albums = Vec::new();
        for (i, m) in listing
            .entries
            .iter()
            .filter(|m| matches!(m, Metadata::Folder(_)))
            .enumerate()
        {
            let path = entry_path(m, &folder, depth);
            let mut album = json!({"name": m.name(), "url": href(&account.alias, &path, true)});
            if i < MAX_SUBALBUMS
                && let Ok(looked) = self.meta.lookup(account, &path, &path.to_lowercase()).await
                && let State::Folder(sub) = &looked.entry.state
            {
                let mut pics: Vec<&Metadata> = sub
                    .entries
                    .iter()
                    .filter(|e| matches!(e, Metadata::File(f) if is_image(&f.name)))
                    .collect();
                pics.sort_by_key(|e| e.name().to_lowercase());
                album["count"] = json!(pics.len());
                if let Some(cover) = pics.first() {
                    let cp = entry_path(cover, &path, depth);
                    album["cover"] = json!(href(&account.alias, &cp, false));
                }
            }
            albums.push(album);
        }
        let body = serde_json::to_vec_pretty(&json!({
            "path": folder,
            "url": href(&account.alias, &folder, true),
            "images": entries.into_iter().map(|e| e.2).collect::<Vec<_>>(),
            "videos": videos,
            "albums": albums,
        }))
        .expect("an album serializes");
        let tag = {
            use sha2::{Digest, Sha256};
            hex::encode(&Sha256::digest(&body)[..16])
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
        h.insert(CACHE_CONTROL, cc.clone());
        h.insert(VARY, HeaderValue::from_static("Accept"));
        Ok(resp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
