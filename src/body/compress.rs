//! Compressed copies of text blobs (br, gzip), made once per (blob, coding) in the background
//! of the first request that could take one, and kept in the body cache under a derived name
//! (`proxy` serves them with their own ETag; `http::encoding` says who takes which).
//!
//! SECURITY: a copy is made here, from a blob whose bytes were verified against its content
//! hash, so it is what its name says; nothing a client sends reaches the compressor.

use super::Bodies;
use super::disk::derived_name;
use crate::http::encoding::Encoding;
use bytes::Bytes;
use std::collections::HashSet;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// A copy must save at least this share of the bytes to be kept.
const MIN_SAVING: f64 = 0.05;
/// Names remembered as not worth compressing.
const NOT_WORTH: usize = 4096;
/// Copies made at once (each holds a blob and its copy in memory, and a core) ...
const RUNNING: usize = 2;
/// ... and waiting to be made: past it, a request starts none (a later one will).
const PENDING: usize = 32;

pub struct Compressions {
    in_flight: Mutex<HashSet<String>>,
    not_worth: Mutex<lru::LruCache<String, ()>>,
    running: tokio::sync::Semaphore,
    pub made: AtomicU64,
}

impl Default for Compressions {
    fn default() -> Self {
        Compressions {
            in_flight: Mutex::default(),
            not_worth: Mutex::new(lru::LruCache::unbounded()),
            running: tokio::sync::Semaphore::new(RUNNING),
            made: AtomicU64::new(0),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// How hard to try: `Best` for copies kept per content hash, `Fast` for answers made per
/// request (listings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effort {
    Best,
    Fast,
}

/// `bytes` in `enc`, made with the best effort.
pub fn compress(bytes: &[u8], enc: Encoding) -> std::io::Result<Vec<u8>> {
    compress_with(bytes, enc, Effort::Best)
}

/// `bytes` in `enc`.
pub fn compress_with(bytes: &[u8], enc: Encoding, effort: Effort) -> std::io::Result<Vec<u8>> {
    let best = effort == Effort::Best;
    match enc {
        Encoding::Br => {
            let mut out = Vec::with_capacity(bytes.len() / 3);
            let params = brotli::enc::BrotliEncoderParams {
                quality: if best { 9 } else { 5 },
                lgwin: 22,
                ..Default::default()
            };
            brotli::BrotliCompress(&mut &bytes[..], &mut out, &params)?;
            Ok(out)
        }
        Encoding::Gzip => {
            let mut z = flate2::write::GzEncoder::new(
                Vec::with_capacity(bytes.len() / 3),
                if best {
                    flate2::Compression::best()
                } else {
                    flate2::Compression::fast()
                },
            );
            z.write_all(bytes)?;
            z.finish()
        }
    }
}

impl Bodies {
    /// The name of `source`'s copy in `enc`.
    pub fn compressed_name(source: &str, enc: Encoding) -> String {
        derived_name(&["compressed", source, enc.token()])
    }

    /// The length of the copy named `name`, if the cache holds it (nothing is read).
    pub fn kept_size(&self, name: &str) -> Option<u64> {
        super::lock(&self.index).size_of(name)
    }

    /// The copy named `name`, if the cache holds it.
    pub async fn compressed(&self, name: &str) -> Option<Bytes> {
        if !self.holds(name) {
            return None;
        }
        self.read_small(name).await
    }

    /// Makes `source`'s copy in `enc` in the background, unless it is being made, was found
    /// not worth it, or the cache does not hold `source` (yet).
    pub fn compress_later(self: &Arc<Self>, source: &str, enc: Encoding) {
        let name = Self::compressed_name(source, enc);
        if !self.holds(source) || lock(&self.compressions.not_worth).contains(&name) {
            return;
        }
        {
            let mut in_flight = lock(&self.compressions.in_flight);
            if in_flight.len() >= PENDING || !in_flight.insert(name.clone()) {
                return;
            }
        }
        let (bodies, source) = (self.clone(), source.to_owned());
        tokio::spawn(async move {
            bodies.make_copy(&source, &name, enc).await;
            lock(&bodies.compressions.in_flight).remove(&name);
        });
    }

    /// Makes `source`'s copy in `enc` now, unless the cache has it or it is not worth it.
    pub async fn compress_now(&self, source: &str, enc: Encoding) {
        let name = Self::compressed_name(source, enc);
        if self.holds(&name) || lock(&self.compressions.not_worth).contains(&name) {
            return;
        }
        self.make_copy(source, &name, enc).await;
    }

    async fn make_copy(&self, source: &str, name: &str, enc: Encoding) {
        let Ok(_running) = self.compressions.running.acquire().await else {
            return;
        };
        // Made meanwhile (by warm on change, or another request)?
        if self.holds(name) {
            return;
        }
        let Some(bytes) = self.read_small(source).await else {
            return;
        };
        let len = bytes.len();
        let made = tokio::task::spawn_blocking(move || compress(&bytes, enc)).await;
        match made {
            Ok(Ok(out)) if (out.len() as f64) < len as f64 * (1.0 - MIN_SAVING) => {
                self.keep_small(name, Bytes::from(out)).await;
                self.compressions.made.fetch_add(1, Ordering::Relaxed);
            }
            Ok(Ok(_)) => {
                let mut nw = lock(&self.compressions.not_worth);
                nw.put(name.to_owned(), ());
                if nw.len() > NOT_WORTH {
                    nw.pop_lru();
                }
            }
            _ => tracing::warn!("cannot compress a blob"),
        }
    }

    /// Whether the cache holds the blob `name` (memory or disk), without opening it.
    fn holds(&self, name: &str) -> bool {
        super::lock(&self.index).contains(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn copies_decompress_to_the_original() {
        let text = "<p>hello, compressible world</p>\n".repeat(200);
        let br = compress(text.as_bytes(), Encoding::Br).unwrap();
        let mut back = Vec::new();
        brotli::Decompressor::new(&br[..], 4096)
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, text.as_bytes());
        assert!(br.len() < text.len() / 10);
        let gz = compress(text.as_bytes(), Encoding::Gzip).unwrap();
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, text.as_bytes());
    }
}
