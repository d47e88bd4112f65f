//! Where an answer came from, as the read path notes it on the response and the access log and
//! metrics read it back: its `X-Cache-Status` (an enum, set as the header alone, as nginx's
//! `$upstream_cache_status` names it: what the client was told is what is counted), and, in a
//! `Provenance` the router lends the read path, where the body's bytes come from and how long
//! the request waited on Dropbox.

use hyper::Response;
use hyper::header::{HeaderName, HeaderValue};
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub const X_CACHE_STATUS: HeaderName = HeaderName::from_static("x-cache-status");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheStatus {
    /// Answered from the cache without asking Dropbox.
    Hit,
    /// Dropbox was asked (or the bytes were new to this account).
    Miss,
    /// Dropbox confirmed the cached metadata.
    Revalidated,
    /// Dropbox could not be reached: the last known answer, past its TTL.
    Stale,
    /// Past its TTL, answered at once while a refresh runs behind.
    Updating,
    /// Not cacheable here (a ranged pass-through): relayed from Dropbox.
    Bypass,
}

impl CacheStatus {
    pub const ALL: [CacheStatus; 6] = [
        CacheStatus::Hit,
        CacheStatus::Miss,
        CacheStatus::Revalidated,
        CacheStatus::Stale,
        CacheStatus::Updating,
        CacheStatus::Bypass,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CacheStatus::Hit => "HIT",
            CacheStatus::Miss => "MISS",
            CacheStatus::Revalidated => "REVALIDATED",
            CacheStatus::Stale => "STALE",
            CacheStatus::Updating => "UPDATING",
            CacheStatus::Bypass => "BYPASS",
        }
    }

    /// Sets the header on `resp`: the record of its status (`CacheStatus::of` reads it back;
    /// no extension, whose map costs a 304 three allocations). Only this sets it: a site's
    /// `_headers` may not (`http::header_rules`).
    pub fn mark<B>(self, resp: &mut Response<B>) {
        resp.headers_mut()
            .insert(X_CACHE_STATUS, HeaderValue::from_static(self.as_str()));
    }

    /// What `mark` set on `resp`, if anything.
    pub fn of<B>(resp: &Response<B>) -> Option<CacheStatus> {
        let v = resp.headers().get(X_CACHE_STATUS)?;
        CacheStatus::ALL
            .into_iter()
            .find(|s| s.as_str().as_bytes() == v.as_bytes())
    }
}

/// What the read path tells the access log and the metrics about an answer's body, beyond its
/// `X-Cache-Status`: where its bytes came from and how long the request waited on Dropbox. The
/// router makes one per request and lends it down the read path, which notes through a shared
/// reference (a site's resolver reads through `&self`; atomics keep the request's future
/// `Send`). Not a response extension: the extension map cost each file answer three
/// allocations. Answers with no body of their own (a 304) note nothing.
#[derive(Debug)]
pub struct Provenance {
    /// Where the body's bytes come from: an index into `SOURCES` (0: "generated", none noted).
    source: AtomicU8,
    /// Nanoseconds waited on Dropbox, or `NOT_WAITED`.
    upstream_ns: AtomicU64,
}

const SOURCES: [Option<&str>; 3] = [None, Some("disk"), Some("dropbox")];
const NOT_WAITED: u64 = u64::MAX;

impl Default for Provenance {
    fn default() -> Provenance {
        Provenance {
            source: AtomicU8::new(0),
            upstream_ns: AtomicU64::new(NOT_WAITED),
        }
    }
}

impl Provenance {
    /// Where the body's bytes come from (None: "generated").
    pub fn source(&self) -> Option<&'static str> {
        SOURCES[usize::from(self.source.load(Ordering::Relaxed))]
    }

    /// How long the request waited on Dropbox (None: it did not).
    pub fn upstream(&self) -> Option<Duration> {
        match self.upstream_ns.load(Ordering::Relaxed) {
            NOT_WAITED => None,
            ns => Some(Duration::from_nanos(ns)),
        }
    }

    /// Notes where a file's body comes from, by its cache status as the body cache gave it: a
    /// HIT is read from disk; anything else is a download, and the time since `asked` (when
    /// the body was asked for; None: it was at hand) was spent waiting on Dropbox.
    pub fn body_from(&self, cache: CacheStatus, asked: Option<Instant>) {
        let from = if cache == CacheStatus::Hit {
            1
        } else {
            self.add_upstream(asked.map_or(Duration::ZERO, |t| t.elapsed()));
            2
        };
        self.source.store(from, Ordering::Relaxed);
    }

    /// Adds `d` to the request's Dropbox time.
    pub fn add_upstream(&self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(NOT_WAITED - 1);
        let _ = self
            .upstream_ns
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| {
                Some(match t {
                    NOT_WAITED => ns.min(NOT_WAITED - 1),
                    t => t.saturating_add(ns).min(NOT_WAITED - 1),
                })
            });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marked_responses_carry_the_header_and_the_status() {
        for s in CacheStatus::ALL {
            let mut resp = Response::new(());
            assert_eq!(CacheStatus::of(&resp), None);
            s.mark(&mut resp);
            assert_eq!(CacheStatus::of(&resp), Some(s));
            assert_eq!(resp.headers()[X_CACHE_STATUS], s.as_str());
            // The status alone: no extension made for it.
            assert!(resp.extensions().is_empty());
        }
        // A value no `mark` sets is no status (counted as "none").
        let mut resp = Response::new(());
        for v in ["hit", "HIT ", "", "EXPIRED"] {
            resp.headers_mut()
                .insert(X_CACHE_STATUS, HeaderValue::from_static(v));
            assert_eq!(CacheStatus::of(&resp), None, "{v:?}");
        }
        let names: std::collections::HashSet<_> = CacheStatus::ALL.map(|s| s.as_str()).into();
        assert_eq!(names.len(), 6);
    }

    #[test]
    fn provenance_notes_the_source_and_adds_up_the_waits() {
        let noted = Provenance::default();
        assert_eq!((noted.source(), noted.upstream()), (None, None));
        // A hit from disk waited on nothing.
        noted.body_from(CacheStatus::Hit, Some(Instant::now()));
        assert_eq!((noted.source(), noted.upstream()), (Some("disk"), None));
        // A wait of nothing is still a wait (the log writes 0, not "-").
        let noted = Provenance::default();
        noted.add_upstream(Duration::ZERO);
        assert_eq!(noted.upstream(), Some(Duration::ZERO));
        noted.add_upstream(Duration::from_millis(3));
        noted.add_upstream(Duration::from_millis(4));
        assert_eq!(noted.upstream(), Some(Duration::from_millis(7)));
        // A download: the time since it was asked for is Dropbox's, on top.
        let asked = Instant::now() - Duration::from_millis(20);
        noted.body_from(CacheStatus::Miss, Some(asked));
        assert_eq!(noted.source(), Some("dropbox"));
        assert!(noted.upstream().unwrap() >= Duration::from_millis(27));
        // Absurd waits saturate rather than wrap into "not waited".
        noted.add_upstream(Duration::MAX);
        assert_eq!(noted.upstream(), Some(Duration::from_nanos(u64::MAX - 1)));
    }
}
