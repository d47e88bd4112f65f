//! Resolving a `Range` header against a representation's length (RFC 9110 §14.1–14.2).
//!
//! `http-range-header` does the strict syntax; the RFC's rules on top are ours:
//! a header that does not parse is ignored (the whole representation is sent); a range whose
//! first byte is past the end is unsatisfiable and dropped; a suffix longer than the
//! representation means all of it; a last byte past the end is clamped; if no range is left,
//! the answer is 416.

use http_range_header::{EndPosition, RangeUnsatisfiableError, StartPosition, parse_range_header};
use std::ops::RangeInclusive;

/// What a Range header asks of a representation of a given length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ranges {
    /// No usable Range header: send everything with 200.
    Ignore,
    /// Nothing satisfiable: 416 with `Content-Range: bytes */len`.
    Unsatisfiable,
    /// Satisfiable byte ranges, in request order, clamped to the length.
    Satisfiable(Vec<RangeInclusive<u64>>),
}

/// Resolves `header` (the raw Range value) for a representation of `len` bytes.
pub fn resolve(header: &str, len: u64) -> Ranges {
    let parsed = match parse_range_header(header.trim()) {
        Ok(p) => p,
        // `-0` is syntactically fine but can never be satisfied.
        Err(RangeUnsatisfiableError::ZeroSuffix) => return Ranges::Unsatisfiable,
        Err(_) => return Ranges::Ignore,
    };
    let mut out = Vec::with_capacity(parsed.ranges.len());
    for r in &parsed.ranges {
        let (start, end) = match (r.start, r.end) {
            (StartPosition::Index(s), EndPosition::Index(e)) if e < s => return Ranges::Ignore,
            (StartPosition::Index(s), EndPosition::Index(e)) => (s, e.min(len.saturating_sub(1))),
            (StartPosition::Index(s), EndPosition::LastByte) => (s, len.saturating_sub(1)),
            (StartPosition::FromLast(n), _) => (len.saturating_sub(n), len.saturating_sub(1)),
        };
        if start < len {
            out.push(start..=end);
        }
    }
    if out.is_empty() {
        Ranges::Unsatisfiable
    } else {
        Ranges::Satisfiable(out)
    }
}

/// How to answer a Range request, after the server's own limits (RFC 9110 §14.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// 200 with the whole representation.
    Whole,
    /// 206 with one `Content-Range`.
    Single(RangeInclusive<u64>),
    /// 206 `multipart/byteranges`, parts in ascending order.
    Multi(Vec<RangeInclusive<u64>>),
    /// 416 with `Content-Range: bytes */len`.
    Unsatisfiable,
}

/// Resolves `header` and applies the limits: more than `max_ranges` ranges → the whole
/// representation (a server may ignore such a Range); overlapping or adjacent ranges are
/// coalesced, so no byte is sent twice and a request that covers one span gets one part.
pub fn decide(header: &str, len: u64, max_ranges: usize) -> Decision {
    let mut ranges = match resolve(header, len) {
        Ranges::Ignore => return Decision::Whole,
        Ranges::Unsatisfiable => return Decision::Unsatisfiable,
        Ranges::Satisfiable(r) if r.len() > max_ranges => return Decision::Whole,
        Ranges::Satisfiable(r) => r,
    };
    // One range (nearly every request): nothing to sort or merge.
    if ranges.len() == 1 {
        return Decision::Single(ranges.swap_remove(0));
    }
    ranges.sort_by_key(|r| *r.start());
    let mut merged: Vec<RangeInclusive<u64>> = Vec::with_capacity(ranges.len());
    for r in ranges {
        match merged.last_mut() {
            Some(last) if *r.start() <= last.end().saturating_add(1) => {
                *last = *last.start()..=(*last.end()).max(*r.end());
            }
            _ => merged.push(r),
        }
    }
    match merged.len() {
        1 => Decision::Single(merged.remove(0)),
        _ => Decision::Multi(merged),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions_cap_and_coalesce() {
        use Decision::*;
        let cases: &[(&str, u64, Decision)] = &[
            ("bytes=0-4", 10, Single(0..=4)),
            ("bytes=0-1,4-5", 10, Multi(vec![0..=1, 4..=5])),
            // Out of order: sent ascending.
            ("bytes=6-7,0-1", 10, Multi(vec![0..=1, 6..=7])),
            // Overlapping and adjacent ranges merge.
            ("bytes=0-4,2-6", 10, Single(0..=6)),
            ("bytes=0-4,5-9", 10, Single(0..=9)),
            ("bytes=0-1,3-4,1-3", 10, Single(0..=4)),
            ("bytes=-2,0-1", 10, Multi(vec![0..=1, 8..=9])),
            // More than the cap (3 here): the whole file.
            ("bytes=0-0,2-2,4-4,6-6", 10, Whole),
            ("bytes=0-0,2-2,4-4", 10, Multi(vec![0..=0, 2..=2, 4..=4])),
            ("bytes=20-30", 10, Unsatisfiable),
            ("bytes=9-5", 10, Whole),
        ];
        for (h, len, want) in cases {
            assert_eq!(&decide(h, *len, 3), want, "{h} of {len}");
        }
    }

    #[test]
    fn rfc9110_cases() {
        use Ranges::*;
        let cases: &[(&str, u64, Ranges)] = &[
            ("bytes=0-4", 10, Satisfiable(vec![0..=4])),
            ("bytes=5-", 10, Satisfiable(vec![5..=9])),
            ("bytes=-3", 10, Satisfiable(vec![7..=9])),
            // A suffix longer than the representation is all of it.
            ("bytes=-30", 10, Satisfiable(vec![0..=9])),
            // A last byte past the end is clamped.
            ("bytes=8-100", 10, Satisfiable(vec![8..=9])),
            ("bytes=10-", 10, Unsatisfiable),
            ("bytes=0-0", 0, Unsatisfiable),
            ("bytes=-5", 0, Unsatisfiable),
            ("bytes=-0", 10, Unsatisfiable),
            // Unsatisfiable members are dropped, the rest served.
            ("bytes=0-1, 20-30", 10, Satisfiable(vec![0..=1])),
            ("bytes=0-1,4-5", 10, Satisfiable(vec![0..=1, 4..=5])),
            // Not parseable, or reversed: ignored.
            ("pages=1-2", 10, Ignore),
            ("bytes=x", 10, Ignore),
            ("bytes=5-3", 10, Ignore),
            ("bytes=", 10, Ignore),
        ];
        for (h, len, want) in cases {
            assert_eq!(&resolve(h, *len), want, "{h} of {len}");
        }
    }
}
