//! Conditional requests (RFC 9110 §13.2.2), evaluated in the RFC's order:
//! If-Match → If-Unmodified-Since → If-None-Match → If-Modified-Since → If-Range.
//!
//! 1. `If-Match` present: no strong match → 412.
//! 2. Else `If-Unmodified-Since` present and valid: modified after it → 412.
//! 3. `If-None-Match` present: a weak match → 304 for GET/HEAD (412 otherwise).
//! 4. Else (no If-None-Match) GET/HEAD with a valid `If-Modified-Since`: not modified since → 304.
//! 5. GET with `Range` and `If-Range`: the range is honoured only if If-Range matches (a strong
//!    ETag match, or a date equal to Last-Modified); otherwise the whole representation is sent.
//!
//! Invalid dates and malformed tag lists are ignored, as the RFC requires of invalid fields.

use super::etag::{EntityTag, list_matches};
use hyper::Method;
use hyper::header::{self, HeaderMap};
use std::time::SystemTime;

/// What the server knows of the selected representation.
#[derive(Debug, Clone, Default)]
pub struct Validators {
    pub etag: Option<EntityTag>,
    /// Whole seconds, as HTTP dates carry them.
    pub last_modified: Option<SystemTime>,
}

/// The verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Serve it; `honor_range` says whether a Range header may be applied.
    Proceed {
        honor_range: bool,
    },
    NotModified,
    PreconditionFailed,
}

/// A header's text. Entity tags may hold obs-text (RFC 9110 §8.8.3), so any UTF-8 is read,
/// not only visible ASCII: a list naming one such tag beside ours still matches ours (found
/// by fuzzing: the whole header was ignored).
fn header(h: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    h.get(name)
        .and_then(|v| std::str::from_utf8(v.as_bytes()).ok())
}

fn date(h: &HeaderMap, name: header::HeaderName) -> Option<SystemTime> {
    header(h, name).and_then(|v| httpdate::parse_http_date(v).ok())
}

/// Seconds since the epoch, so comparisons ignore sub-second precision.
fn secs(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The headers `evaluate` reads.
const CONDITIONAL: [header::HeaderName; 5] = [
    header::IF_MATCH,
    header::IF_UNMODIFIED_SINCE,
    header::IF_NONE_MATCH,
    header::IF_MODIFIED_SINCE,
    header::IF_RANGE,
];

/// Evaluates the preconditions of a request against a representation.
pub fn evaluate(method: &Method, req: &HeaderMap, v: &Validators) -> Outcome {
    // Most requests carry none: one pass over their few names costs less than five lookups
    // (each hashes its name).
    if !req.keys().any(|k| CONDITIONAL.contains(k)) {
        return Outcome::Proceed { honor_range: true };
    }
    let safe = method == Method::GET || method == Method::HEAD;
    // 1–2
    let current = v.etag.as_ref();
    if let Some(matched) =
        header(req, header::IF_MATCH).and_then(|s| list_matches(s, current, true))
    {
        if !matched {
            return Outcome::PreconditionFailed;
        }
    } else if let (Some(ius), Some(lm)) = (date(req, header::IF_UNMODIFIED_SINCE), v.last_modified)
        && secs(lm) > secs(ius)
    {
        return Outcome::PreconditionFailed;
    }
    // 3–4
    if let Some(matched) =
        header(req, header::IF_NONE_MATCH).and_then(|s| list_matches(s, current, false))
    {
        if matched {
            return if safe {
                Outcome::NotModified
            } else {
                Outcome::PreconditionFailed
            };
        }
    } else if safe
        && let (Some(ims), Some(lm)) = (date(req, header::IF_MODIFIED_SINCE), v.last_modified)
        && secs(lm) <= secs(ims)
    {
        return Outcome::NotModified;
    }
    // 5
    let honor_range = match header(req, header::IF_RANGE) {
        None => true,
        Some(_) if method != Method::GET => true,
        Some(value) => match EntityTag::parse(value) {
            Some(tag) => v.etag.as_ref().is_some_and(|cur| tag.strong_eq(cur)),
            None => match (httpdate::parse_http_date(value.trim()), v.last_modified) {
                (Ok(d), Some(lm)) => secs(d) == secs(lm),
                _ => false,
            },
        },
    };
    Outcome::Proceed { honor_range }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_tag_list_with_non_ascii_tags_still_matches_ours() {
        let mut h = HeaderMap::new();
        h.insert(
            header::IF_NONE_MATCH,
            header::HeaderValue::from_str("\"caf\u{e9}\", \"ours\"").unwrap(),
        );
        let v = Validators {
            etag: Some(EntityTag::strong("ours")),
            last_modified: None,
        };
        assert_eq!(evaluate(&Method::GET, &h, &v), Outcome::NotModified);
    }

    use super::*;
    use std::time::Duration;

    const LM: &str = "Tue, 12 May 2015 15:50:38 GMT";
    const BEFORE: &str = "Tue, 12 May 2015 15:50:37 GMT";
    const AFTER: &str = "Tue, 12 May 2015 15:50:39 GMT";

    fn validators() -> Validators {
        Validators {
            etag: Some(EntityTag::strong("abc")),
            last_modified: Some(
                httpdate::parse_http_date(LM).unwrap() + Duration::from_millis(300),
            ),
        }
    }

    /// (method, request headers, verdict)
    type Case = (
        &'static str,
        &'static [(&'static str, &'static str)],
        Outcome,
    );

    #[test]
    fn rfc9110_order_and_rules() {
        use Outcome::*;
        let go = Proceed { honor_range: true };
        let whole = Proceed { honor_range: false };
        let cases: &[Case] = &[
            ("GET", &[], go),
            // If-Match: strong comparison only.
            ("GET", &[("if-match", r#""abc""#)], go),
            ("GET", &[("if-match", r#"W/"abc""#)], PreconditionFailed),
            ("GET", &[("if-match", r#""x", "abc""#)], go),
            ("GET", &[("if-match", "*")], go),
            ("GET", &[("if-match", r#""nope""#)], PreconditionFailed),
            // If-Unmodified-Since, ignored when If-Match is present.
            (
                "GET",
                &[("if-unmodified-since", BEFORE)],
                PreconditionFailed,
            ),
            ("GET", &[("if-unmodified-since", LM)], go),
            (
                "GET",
                &[("if-match", r#""abc""#), ("if-unmodified-since", BEFORE)],
                go,
            ),
            ("GET", &[("if-unmodified-since", "garbage")], go),
            // If-None-Match: weak comparison; 304 for GET/HEAD, 412 for others.
            ("GET", &[("if-none-match", r#""abc""#)], NotModified),
            ("HEAD", &[("if-none-match", r#"W/"abc""#)], NotModified),
            ("GET", &[("if-none-match", r#""x", W/"abc""#)], NotModified),
            ("GET", &[("if-none-match", "*")], NotModified),
            ("GET", &[("if-none-match", r#""other""#)], go),
            (
                "DELETE",
                &[("if-none-match", r#""abc""#)],
                PreconditionFailed,
            ),
            // If-Match failure wins over If-None-Match.
            (
                "GET",
                &[("if-match", r#""nope""#), ("if-none-match", r#""abc""#)],
                PreconditionFailed,
            ),
            // If-Modified-Since only without If-None-Match.
            ("GET", &[("if-modified-since", LM)], NotModified),
            ("GET", &[("if-modified-since", AFTER)], NotModified),
            ("GET", &[("if-modified-since", BEFORE)], go),
            (
                "GET",
                &[
                    ("if-none-match", r#""other""#),
                    ("if-modified-since", AFTER),
                ],
                go,
            ),
            ("POST", &[("if-modified-since", LM)], go),
            ("GET", &[("if-modified-since", "not a date")], go),
            // If-Range: strong ETag or an exact date.
            ("GET", &[("if-range", r#""abc""#)], go),
            ("GET", &[("if-range", r#"W/"abc""#)], whole),
            ("GET", &[("if-range", r#""old""#)], whole),
            ("GET", &[("if-range", LM)], go),
            ("GET", &[("if-range", BEFORE)], whole),
            ("GET", &[("if-range", "nonsense")], whole),
        ];
        for (method, headers, want) in cases {
            let mut h = HeaderMap::new();
            for (k, v) in *headers {
                h.insert(header::HeaderName::from_static(k), v.parse().unwrap());
            }
            let m: Method = method.parse().unwrap();
            assert_eq!(
                evaluate(&m, &h, &validators()),
                *want,
                "{method} {headers:?}"
            );
        }
    }

    #[test]
    fn without_validators_nothing_matches() {
        let mut h = HeaderMap::new();
        h.insert(header::IF_NONE_MATCH, "*".parse().unwrap());
        assert_eq!(
            evaluate(&Method::GET, &h, &Validators::default()),
            Outcome::Proceed { honor_range: true }
        );
        let mut h = HeaderMap::new();
        h.insert(header::IF_MATCH, "*".parse().unwrap());
        assert_eq!(
            evaluate(&Method::GET, &h, &Validators::default()),
            Outcome::PreconditionFailed
        );
    }
}
