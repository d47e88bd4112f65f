//! Path patterns of `_redirects` and `_headers` (Netlify's grammar): literal segments,
//! `:name` placeholders (one segment each) and a trailing `*` (the rest, as `:splat`).
//!
//! SECURITY: matching is on the decoded path and case-insensitive, as the files themselves are
//! found (Dropbox's names are case-insensitive): `/%70rivate/x` or `/PRIVATE/x` cannot slip past
//! a rule for `/private/*`. (Netlify matches case-sensitively, but its files are too.) A
//! pattern's literals are percent-decoded once, as Netlify's files write them encoded; captures
//! keep the request's case and are encoded again where they go into a URL. A trailing `/` is
//! ignored on both sides, so `/blog` and `/blog/` match alike.

/// A parsed path pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    segments: Vec<Segment>,
    /// Ends in `*`: matches the rest of the path, bound to `splat`.
    splat: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Placeholder(String),
}

/// What a match bound: `(name, value)` pairs, `splat` among them when the pattern has `*`.
pub type Captures = Vec<(String, String)>;

impl Pattern {
    /// Parses a pattern that starts with `/`. `*` may only end it (`/a/*`, or `/a*` as Netlify
    /// also reads it).
    pub fn parse(text: &str) -> Result<Pattern, String> {
        if !text.starts_with('/') {
            return Err(format!("a path must start with '/': {text:?}"));
        }
        if text.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err("a path cannot hold white space or control characters".into());
        }
        let (body, splat) = match text.strip_suffix('*') {
            Some(rest) => (rest, true),
            None => (text, false),
        };
        if body.contains('*') {
            return Err(format!("'*' may only end a path: {text:?}"));
        }
        let body = body.trim_end_matches('/');
        let mut segments = Vec::new();
        for seg in body.split('/').skip(1) {
            segments.push(match seg.strip_prefix(':') {
                Some(name) if valid_name(name) => Segment::Placeholder(name.to_owned()),
                Some(_) => return Err(format!("a placeholder needs a name: {text:?}")),
                None => {
                    let decoded = percent_encoding::percent_decode_str(seg)
                        .decode_utf8()
                        .map_err(|_| format!("{text:?} is not valid percent-encoded UTF-8"))?;
                    // A request's `/` and `*` are decoded before it is split: an encoded one
                    // in a pattern could never match (or would read as a splat).
                    if decoded.contains(['/', '*']) {
                        return Err(format!("{text:?}: an encoded '/' or '*' cannot match"));
                    }
                    Segment::Literal(decoded.to_lowercase())
                }
            });
        }
        // `/a*` reads as `/a/*` would, but also matches `/abc`: keep the partial segment.
        let partial = splat && !text.ends_with("/*") && text != "*";
        if let (true, Some(Segment::Literal(last))) = (partial, segments.last_mut()) {
            last.push('*');
        }
        Ok(Pattern { segments, splat })
    }

    /// The captures if `path` (a decoded request path, `/…`) matches.
    pub fn matches(&self, path: &str) -> Option<Captures> {
        let mut rest = path.trim_end_matches('/');
        let mut captures = Vec::new();
        for (i, seg) in self.segments.iter().enumerate() {
            let last = i + 1 == self.segments.len();
            let tail = rest.strip_prefix('/')?;
            let (this, after) = match tail.find('/') {
                Some(at) => (&tail[..at], &tail[at..]),
                None => (tail, ""),
            };
            match seg {
                Segment::Literal(lit) if last && self.splat && lit.ends_with('*') => {
                    // `/a*`: a prefix of this segment; the rest of the path is the splat.
                    let prefix = &lit[..lit.len() - 1];
                    let n = prefix.chars().count();
                    let cut = tail.char_indices().nth(n).map_or(tail.len(), |(i, _)| i);
                    if tail[..cut].to_lowercase() != prefix {
                        return None;
                    }
                    captures.push(("splat".to_owned(), tail[cut..].to_owned()));
                    return Some(captures);
                }
                Segment::Literal(lit) if this.to_lowercase() == *lit => {}
                Segment::Literal(_) => return None,
                Segment::Placeholder(_) if this.is_empty() => return None,
                Segment::Placeholder(name) => captures.push((name.clone(), this.to_owned())),
            }
            rest = after;
        }
        if self.splat {
            let splat = rest.strip_prefix('/').unwrap_or(rest);
            captures.push(("splat".to_owned(), splat.to_owned()));
            Some(captures)
        } else {
            rest.is_empty().then_some(captures)
        }
    }
}

/// Whether `text` matches `glob`, where `*` stands for any run of characters (`/` too) and
/// everything else for itself (`*.html`, `/site/assets/*`, `*/img/*.png`).
pub fn glob(glob: &str, text: &str) -> bool {
    let mut parts = glob.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// A placeholder's name: ASCII letters, digits and `_`, not empty.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// The longest a substituted target may be: a rule cannot make an answer grow without bound.
pub const MAX_SUBSTITUTED: usize = 8 * 1024;

/// `text` with each `:name` replaced by its capture (`:splat` included); a `:` not followed
/// by a captured name stays as it is (`https://`, `a:b`). None when the result would be
/// longer than `MAX_SUBSTITUTED`.
pub fn substitute(text: &str, captures: &Captures) -> Option<String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(':') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let len = after
            .bytes()
            .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
            .count();
        // The longest captured name that the text starts with (`:splat`, `:year`).
        let found = (1..=len)
            .rev()
            .find_map(|n| captures.iter().find(|(k, _)| k.as_str() == &after[..n]));
        match found {
            Some((name, value)) => {
                out.push_str(value);
                rest = &after[name.len()..];
            }
            None => {
                out.push(':');
                rest = after;
            }
        }
        if out.len() > MAX_SUBSTITUTED {
            return None;
        }
    }
    out.push_str(rest);
    (out.len() <= MAX_SUBSTITUTED).then_some(out)
}

/// What a single path segment escapes: everything but RFC 3986's unreserved characters
/// (so `/`, `?`, `#`, `%` and spaces are escaped too).
pub const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A decoded path (or part of one), percent-encoded again for a URL: `/` kept, and what a path
/// segment cannot hold as it is escaped.
pub fn encode_path(decoded: &str) -> String {
    const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
        .add(b' ')
        .add(b'"')
        .add(b'#')
        .add(b'%')
        .add(b'<')
        .add(b'>')
        .add(b'?')
        .add(b'`')
        .add(b'{')
        .add(b'}')
        .add(b'\\')
        .add(b'^')
        .add(b'|');
    percent_encoding::utf8_percent_encode(decoded, SEGMENT).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(pairs: &[(&str, &str)]) -> Captures {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn patterns_match_as_netlify_reads_them() {
        type Case<'a> = (&'a str, &'a str, Option<&'a [(&'a str, &'a str)]>);
        let cases: &[Case] = &[
            ("/home", "/home", Some(&[])),
            ("/home", "/home/", Some(&[])),
            ("/home/", "/home", Some(&[])),
            ("/home", "/Home", Some(&[])),
            ("/Home", "/HOME", Some(&[])),
            ("/home", "/home/x", None),
            ("/", "/", Some(&[])),
            ("/", "/x", None),
            (
                "/news/*",
                "/news/2024/a.html",
                Some(&[("splat", "2024/a.html")]),
            ),
            ("/news/*", "/news", Some(&[("splat", "")])),
            ("/news/*", "/newsletter", None),
            (
                "/*",
                "/anything/at/all",
                Some(&[("splat", "anything/at/all")]),
            ),
            ("/*", "/", Some(&[("splat", "")])),
            ("/news*", "/newsletter", Some(&[("splat", "letter")])),
            (
                "/news/:year/:month/:day/:slug",
                "/news/2024/02/12/my-story",
                Some(&[
                    ("year", "2024"),
                    ("month", "02"),
                    ("day", "12"),
                    ("slug", "my-story"),
                ]),
            ),
            ("/news/:year/:month", "/news/2024", None),
            ("/news/:year", "/news/2024/02", None),
            ("/a/:x/*", "/a/b/c/d", Some(&[("x", "b"), ("splat", "c/d")])),
            ("/caf%C3%A9", "/café", Some(&[])),
            ("/caf%C3%A9", "/CAFÉ", Some(&[])),
            ("/News/*", "/news/A/B", Some(&[("splat", "A/B")])),
            ("/news*", "/NEWSletter", Some(&[("splat", "letter")])),
        ];
        for (pattern, path, want) in cases {
            let p = Pattern::parse(pattern).unwrap_or_else(|e| panic!("{pattern}: {e}"));
            assert_eq!(p.matches(path), want.map(caps), "{pattern} against {path}");
        }
    }

    #[test]
    fn globs_match_any_run_with_a_star() {
        let cases = [
            ("*.html", "/a/b.html", true),
            ("*.html", "/a/b.htm", false),
            ("/site/assets/*", "/site/assets/app.3f9a.js", true),
            ("/site/assets/*", "/site/assetsx", false),
            ("*/img/*.png", "/a/img/b/c.png", true),
            ("*/img/*.png", "/a/im/c.png", false),
            ("/exact", "/exact", true),
            ("/exact", "/exactly", false),
            ("*", "", true),
            ("a*a", "a", false),
            ("a*a", "aa", true),
        ];
        for (g, text, want) in cases {
            assert_eq!(glob(g, text), want, "{g} against {text}");
        }
    }

    #[test]
    fn bad_patterns_are_refused() {
        for bad in [
            "home", "/a/*/b", "/a/:/b", "/a b", "/a/:x-y", "/%ff", "/a%2Fb", "/a%2A/*",
        ] {
            assert!(Pattern::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn placeholders_are_substituted_and_other_colons_kept() {
        let c = caps(&[("year", "2024"), ("month", "02"), ("splat", "a/b")]);
        let sub = |t: &str| substitute(t, &c).unwrap();
        assert_eq!(sub("/blog-:year-:month.html"), "/blog-2024-02.html");
        assert_eq!(sub("https://example.com/:splat"), "https://example.com/a/b");
        assert_eq!(sub("/x/:unknown/:splat"), "/x/:unknown/a/b");
        assert_eq!(sub("/:yearly"), "/2024ly");
        // A target that would grow past the bound is no target.
        let long = vec![("splat".to_owned(), "x".repeat(1000))];
        assert!(substitute(&":splat".repeat(20), &long).is_none());
        assert_eq!(
            encode_path("/Café au lait/a b?c"),
            "/Caf%C3%A9%20au%20lait/a%20b%3Fc"
        );
    }
}
