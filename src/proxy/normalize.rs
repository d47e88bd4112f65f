//! Turning a request path into an account alias and a Dropbox path (the security boundary).
//!
//! SECURITY: the path is percent-decoded exactly once; anything that could climb out of the
//! published root or confuse Dropbox is refused before any lookup: NUL and other control
//! characters, backslashes, `.` / `..` / empty segments, invalid UTF-8, overlong paths.
//! Dropbox paths are case-insensitive, so the cache key is the lowercased path, while the
//! display form keeps the request's case.

use crate::http::route::valid_alias;
use percent_encoding::percent_decode_str;

/// Longest decoded path accepted (Dropbox's own limit is lower per component).
pub const MAX_PATH_BYTES: usize = 1024;

/// A request for `/<alias>/<path>`, decoded and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The alias, the display path and the lowercased one, one after another: one allocation
    /// per request, not three.
    text: String,
    alias_end: usize,
    display_end: usize,
    /// The request ended in `/` (a folder was asked for).
    pub trailing_slash: bool,
}

impl Target {
    /// The target `display` (checked already) of the account `alias`.
    pub fn new(alias: &str, display: &str, trailing_slash: bool) -> Target {
        let mut text = String::with_capacity(alias.len() + 2 * display.len());
        text.push_str(alias);
        text.push_str(display);
        let display_end = text.len();
        push_lowercase(&mut text, display);
        Target {
            text,
            alias_end: alias.len(),
            display_end,
            trailing_slash,
        }
    }

    /// The account's alias.
    pub fn alias(&self) -> &str {
        &self.text[..self.alias_end]
    }

    /// `""` for the account's root, else `/a/b` in the request's case.
    pub fn display(&self) -> &str {
        &self.text[self.alias_end..self.display_end]
    }

    /// `display` lowercased: the cache key.
    pub fn lower(&self) -> &str {
        &self.text[self.display_end..]
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NormalizeError {
    #[error("the path is not valid percent-encoded UTF-8")]
    Encoding,
    #[error("the path contains a control character")]
    Control,
    #[error("the path contains a backslash")]
    Backslash,
    #[error("the path contains an empty, '.' or '..' segment")]
    Segment,
    #[error("the path is longer than {MAX_PATH_BYTES} bytes")]
    TooLong,
    #[error("the account name is missing or invalid")]
    Alias,
    /// Dropbox refuses a path that ends in white space (reference §1.7) as `malformed_path`.
    #[error("the path ends in white space, which Dropbox does not allow")]
    TrailingSpace,
}

/// Splits and checks a raw request path (`uri.path()`, still percent-encoded).
pub fn normalize(raw: &str) -> Result<Target, NormalizeError> {
    let decoded = decode(raw)?;
    let rest = decoded.strip_prefix('/').ok_or(NormalizeError::Alias)?;
    // Every segment, the alias's too, before anything else: `/../x` is traversal, not a name.
    let inner = rest.strip_suffix('/').unwrap_or(rest);
    if !inner.is_empty() && has_bad_segment(inner) {
        return Err(NormalizeError::Segment);
    }
    let (alias, path) = match rest.bytes().position(|b| b == b'/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    if !valid_alias(alias) {
        return Err(NormalizeError::Alias);
    }
    let (display, trailing_slash) = checked_path(path)?;
    Ok(Target::new(alias, display, trailing_slash))
}

/// A site's request path (after its prefix, `/…`), checked as `normalize` checks the part
/// after an alias: `(display, lower, trailing_slash)` with `display` `""` for the root.
pub fn site_path(raw: &str) -> Result<(String, String, bool), NormalizeError> {
    let decoded = decode(raw)?;
    if !decoded.starts_with('/') {
        return Err(NormalizeError::Segment);
    }
    let (display, trailing_slash) = checked_path(&decoded)?;
    let mut lower = String::with_capacity(display.len());
    push_lowercase(&mut lower, display);
    Ok((display.to_owned(), lower, trailing_slash))
}

/// Appends `display.to_lowercase()` to `out`, byte by byte when the path is ASCII (most are;
/// the same answer, without decoding each character).
fn push_lowercase(out: &mut String, display: &str) {
    if display.is_ascii() {
        let start = out.len();
        out.push_str(display);
        out[start..].make_ascii_lowercase();
    } else {
        out.push_str(&display.to_lowercase());
    }
}

/// Percent-decodes once and refuses what no path may hold (borrowed when nothing was escaped).
fn decode(raw: &str) -> Result<std::borrow::Cow<'_, str>, NormalizeError> {
    if raw.len() > MAX_PATH_BYTES * 3 {
        return Err(NormalizeError::TooLong);
    }
    let bytes = raw.as_bytes();
    // Most paths: nothing escaped, plain ASCII. One pass over every byte, no early exit (the
    // compiler checks them 32 at a time), says whether the checks below are all passed.
    let (escaped, odd) = bytes.iter().fold((false, false), |(escaped, odd), &b| {
        (
            escaped | (b == b'%'),
            odd | !(0x20..0x7f).contains(&b) | (b == b'\\'),
        )
    });
    if !escaped && !odd && raw.len() <= MAX_PATH_BYTES {
        return Ok(std::borrow::Cow::Borrowed(raw));
    }
    // A `%` must start an escape of two hex digits (RFC 3986 §2.1); a stray one is malformed.
    if bytes.iter().enumerate().any(|(i, &b)| {
        b == b'%'
            && !(bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
    }) {
        return Err(NormalizeError::Encoding);
    }
    // Nothing escaped (only odd bytes, checked below): the text is already the decoded path.
    let decoded = match escaped {
        false => std::borrow::Cow::Borrowed(raw),
        true => percent_decode_str(raw)
            .decode_utf8()
            .map_err(|_| NormalizeError::Encoding)?,
    };
    if decoded.len() > MAX_PATH_BYTES {
        return Err(NormalizeError::TooLong);
    }
    // By bytes (a hit runs this on every request); C1 controls (U+0080–U+009F) need chars.
    let d = decoded.as_bytes();
    if d.iter().any(u8::is_ascii_control) || !d.is_ascii() && decoded.chars().any(char::is_control)
    {
        return Err(NormalizeError::Control);
    }
    if d.contains(&b'\\') {
        return Err(NormalizeError::Backslash);
    }
    Ok(decoded)
}

/// Whether `/`-separated `path` has an empty, `.` or `..` segment (by bytes: `/` is never
/// part of a UTF-8 sequence).
fn has_bad_segment(path: &str) -> bool {
    path.as_bytes()
        .split(|&b| b == b'/')
        .any(|seg| seg.is_empty() || seg == b"." || seg == b"..")
}

/// `""`, `/` or `/a/b[/]` (decoded): the display form without the trailing `/`, and whether
/// there was one.
fn checked_path(path: &str) -> Result<(&str, bool), NormalizeError> {
    let trailing_slash = path.len() > 1 && path.ends_with('/') || path == "/";
    let path = path.strip_suffix('/').unwrap_or(path);
    // Every segment after the first `/` (before it: nothing, as `path` starts with one).
    let after_first = path.bytes().position(|b| b == b'/').map(|i| &path[i + 1..]);
    if after_first.is_some_and(has_bad_segment) {
        return Err(NormalizeError::Segment);
    }
    // Dropbox's other rule after its pattern: no white space at the end (`/a /b` is fine).
    if path.ends_with(char::is_whitespace) {
        return Err(NormalizeError::TrailingSpace);
    }
    Ok((path, trailing_slash))
}

#[cfg(test)]
mod tests {
    use super::*;
    use NormalizeError::*;

    #[test]
    fn accepted_paths() {
        let cases = [
            ("/alice", "", false),
            ("/alice/", "", true),
            ("/alice/Photos/Venice/a.jpg", "/Photos/Venice/a.jpg", false),
            ("/alice/Photos/", "/Photos", true),
            ("/alice/Caf%C3%A9%20%F0%9F%98%80.txt", "/Café 😀.txt", false),
            // Decoded once only: %252e stays the literal "%2e".
            ("/alice/%252e%252e/x", "/%2e%2e/x", false),
            ("/alice/a..b/.hidden", "/a..b/.hidden", false),
            ("/alice/a%20/b", "/a /b", false),
        ];
        for (raw, display, slash) in cases {
            let t = normalize(raw).unwrap_or_else(|e| panic!("{raw}: {e}"));
            assert_eq!(
                (t.alias(), t.display(), t.trailing_slash),
                ("alice", display, slash),
                "{raw}"
            );
            assert_eq!(t.lower(), display.to_lowercase());
        }
    }

    /// The traversal corpus: every one is refused.
    #[test]
    fn traversal_corpus() {
        let long = format!("/alice/{}", "a".repeat(MAX_PATH_BYTES + 1));
        let cases: Vec<(&str, NormalizeError)> = vec![
            ("/alice/../bob/x", Segment),
            ("/alice/a/../../etc/passwd", Segment),
            ("/alice/%2e%2e/x", Segment),
            ("/alice/%2E%2E%2Fx", Segment),
            ("/alice/./x", Segment),
            ("/alice/%2e/x", Segment),
            ("/alice//x", Segment),
            ("/alice/a%2f%2fb", Segment),
            ("/alice/..", Segment),
            ("/alice/%00x", Control),
            ("/alice/a%0d%0aSet-Cookie:x", Control),
            ("/alice/a%7f", Control),
            ("/alice/a%5c..%5cb", Backslash),
            ("/alice/a\\b", Backslash),
            ("/alice/%ff%fe", Encoding),
            ("/alice/%", Encoding),
            ("/alice/a%2", Encoding),
            ("/alice/a%zz", Encoding),
            ("/alice/%c0%ae%c0%ae/x", Encoding),
            ("/ALICE/x", Alias),
            ("/../x", Segment),
            ("/%2e%2e/x", Segment),
            ("//x", Segment),
            ("", Alias),
            (&long, TooLong),
            ("/alice/a%20", TrailingSpace),
            ("/alice/a%20/", TrailingSpace),
            ("/alice/x/a%09", Control),
            ("/alice/a%E2%80%83", TrailingSpace),
        ];
        for (raw, want) in cases {
            assert_eq!(normalize(raw), Err(want.clone()), "{raw}");
        }
    }

    /// The checks as first written (by chars and `str::split`), kept as the oracle for the
    /// byte-wise ones the read path runs: both must agree on every path.
    fn by_chars(raw: &str) -> Result<Target, NormalizeError> {
        if raw.len() > MAX_PATH_BYTES * 3 {
            return Err(TooLong);
        }
        let b = raw.as_bytes();
        if b.iter().enumerate().any(|(i, &c)| {
            c == b'%'
                && !(b.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                    && b.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
        }) {
            return Err(Encoding);
        }
        let decoded = percent_decode_str(raw)
            .decode_utf8()
            .map_err(|_| Encoding)?
            .into_owned();
        if decoded.len() > MAX_PATH_BYTES {
            return Err(TooLong);
        }
        if decoded.chars().any(|c| c.is_control()) {
            return Err(Control);
        }
        if decoded.contains('\\') {
            return Err(Backslash);
        }
        let bad = |s: &str| s.is_empty() || s == "." || s == "..";
        let rest = decoded.strip_prefix('/').ok_or(Alias)?;
        let inner = rest.strip_suffix('/').unwrap_or(rest);
        if !inner.is_empty() && inner.split('/').any(bad) {
            return Err(Segment);
        }
        let (alias, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if !valid_alias(alias) {
            return Err(Alias);
        }
        let trailing_slash = path.len() > 1 && path.ends_with('/') || path == "/";
        let path = path.strip_suffix('/').unwrap_or(path);
        if path.split('/').skip(1).any(bad) {
            return Err(Segment);
        }
        if path.ends_with(char::is_whitespace) {
            return Err(TrailingSpace);
        }
        Ok(Target::new(alias, path, trailing_slash))
    }

    #[test]
    fn the_byte_wise_checks_agree_with_the_char_wise_ones_on_every_short_path() {
        // Every path of up to 5 symbols after `/a`, from the characters each check is about.
        let symbols = [
            "/", ".", "a", "%", "2e", "%2f", "%5c", " ", "\\", "é", "\u{85}", "%c2%85", "%0a",
            "\u{7f}",
        ];
        let mut paths = vec![String::from("/a")];
        let mut checked = 0;
        for _ in 0..5 {
            let mut longer = Vec::new();
            for p in &paths {
                assert_eq!(normalize(p), by_chars(p), "{p:?}");
                checked += 1;
                longer.extend(symbols.iter().map(|s| format!("{p}{s}")));
            }
            paths = longer;
        }
        for p in &paths {
            let want = by_chars(p);
            assert_eq!(normalize(p), want, "{p:?}");
            // A site's path is what follows its prefix: here, `/a`.
            if p[2..].starts_with('/') {
                assert_eq!(
                    site_path(&p[2..]),
                    want.map(|t| (
                        t.display().to_owned(),
                        t.lower().to_owned(),
                        t.trailing_slash
                    )),
                    "{p:?}"
                );
            }
        }
        assert!(checked + paths.len() > 500_000);
        for not_rooted in ["", "x", "x/y", "%2e"] {
            assert_eq!(site_path(not_rooted), Err(Segment), "{not_rooted:?}");
        }
    }
}
