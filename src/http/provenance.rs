//! Where an answer came from, as the read path notes it on the response and the access log and
//! metrics read it back: its `X-Cache-Status` (an enum, set as the header alone, as nginx's
//! `$upstream_cache_status` names it: what the client was told is what is counted), and, in one
//! `Provenance` extension, where the body's bytes come from and how long the request waited on
//! Dropbox.

use hyper::Response;
use hyper::header::{HeaderName, HeaderValue};
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
/// `X-Cache-Status`, as one response extension (each extension costs allocations: one for
/// both facts). Answers with no body of their own (a 304) carry none.
#[derive(Debug, Clone, Copy, Default)]
pub struct Provenance {
    /// Where the body's bytes come from (None: "generated").
    pub source: Option<&'static str>,
    /// How long the request waited on Dropbox (None: it did not).
    pub upstream: Option<Duration>,
}

impl Provenance {
    /// What was noted on `resp` (all None if nothing was).
    pub fn of<B>(resp: &Response<B>) -> Provenance {
        resp.extensions()
            .get::<Provenance>()
            .copied()
            .unwrap_or_default()
    }
}

fn of_mut<B>(resp: &mut Response<B>) -> &mut Provenance {
    resp.extensions_mut().get_or_insert_default::<Provenance>()
}

/// Notes where a file's body comes from, by its cache status as the body cache gave it: a HIT
/// is read from disk; anything else is a download, and the time since `asked` was spent
/// waiting on Dropbox.
pub fn body_from<B>(resp: &mut Response<B>, cache: CacheStatus, asked: Instant) {
    let from = if cache == CacheStatus::Hit {
        "disk"
    } else {
        add_upstream(resp, asked.elapsed());
        "dropbox"
    };
    of_mut(resp).source = Some(from);
}

/// Adds `d` to the response's Dropbox time.
pub fn add_upstream<B>(resp: &mut Response<B>, d: Duration) {
    let upstream = &mut of_mut(resp).upstream;
    *upstream = Some(upstream.map_or(d, |t| t + d));
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
}
