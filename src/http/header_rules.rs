//! A site's `_headers` file, Netlify's grammar: a path pattern on a line of its own (see
//! `pattern`), then its headers on indented `Name: value` lines; `#` comments.
//!
//! Every rule whose pattern matches the request path applies, in file order; a name set by
//! several is joined with `, ` (as Netlify does). They are applied last, over the proxy's own
//! headers, except the ones the proxy's semantics rest on, which a file may not set:
//! framing (`Content-Length`, `Transfer-Encoding`, `Content-Range`, `Content-Encoding`),
//! validators (`ETag`, `Last-Modified`), hop-by-hop headers, `X-Cache-Status`, `Date`, `Age`
//! and `Location` (redirects are `_redirects`' to make). `Vary` adds to the proxy's own.
//! Netlify's `Basic-Auth` is refused: here it would only send the passwords to everyone. A line
//! that does not parse is reported with its number and skipped; the rest applies.

use super::pattern::Pattern;
use super::redirects::LineError;
use hyper::header::{HeaderMap, HeaderName, HeaderValue};

/// The most rules (path lines) one file may hold, and headers per rule.
pub const MAX_RULES: usize = 1000;
pub const MAX_HEADERS_PER_RULE: usize = 64;

/// Names a `_headers` file may not set.
const REFUSED: [&str; 16] = [
    "content-length",
    "transfer-encoding",
    "content-range",
    "content-encoding",
    "etag",
    "last-modified",
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
    "x-cache-status",
    "location",
    "date",
    "age",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub line: usize,
    pub path: Pattern,
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderRules {
    pub rules: Vec<Rule>,
    pub errors: Vec<LineError>,
}

impl HeaderRules {
    pub fn parse(text: &str) -> HeaderRules {
        let mut out = HeaderRules::default();
        // Whether header lines now belong to a rule (false after a bad path line, so its
        // headers are skipped with it rather than reported one by one).
        let mut open = false;
        let mut skipping = false;
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let l = raw.trim();
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            let indented = raw.starts_with([' ', '\t']);
            let mut error = |error: String| out.errors.push(LineError { line, error });
            if !indented {
                if out.rules.len() == MAX_RULES {
                    error(format!(
                        "more than {MAX_RULES} rules: this one and the rest are ignored"
                    ));
                    break;
                }
                match Pattern::parse(l) {
                    Ok(path) => {
                        out.rules.push(Rule {
                            line,
                            path,
                            headers: Vec::new(),
                        });
                        open = true;
                        skipping = false;
                    }
                    Err(e) => {
                        error(format!("{e} (a rule starts with a path, unindented)"));
                        open = false;
                        skipping = true;
                    }
                }
                continue;
            }
            if skipping {
                continue;
            }
            if !open {
                error("a header before any path: indent headers under a path line".into());
                continue;
            }
            match parse_header(l) {
                Ok(h) => {
                    let rule = out.rules.last_mut().expect("a rule is open");
                    if rule.headers.len() == MAX_HEADERS_PER_RULE {
                        error(format!(
                            "more than {MAX_HEADERS_PER_RULE} headers for one path"
                        ));
                    } else {
                        rule.headers.push(h);
                    }
                }
                Err(e) => error(e),
            }
        }
        out
    }

    /// Sets the headers of every rule matching `path` on `headers`.
    pub fn apply(&self, path: &str, headers: &mut HeaderMap) {
        let mut set: Vec<(&HeaderName, Vec<&HeaderValue>)> = Vec::new();
        for rule in &self.rules {
            if rule.path.matches(path).is_none() {
                continue;
            }
            for (name, value) in &rule.headers {
                match set.iter_mut().find(|(n, _)| *n == name) {
                    Some((_, values)) => values.push(value),
                    None => set.push((name, vec![value])),
                }
            }
        }
        for (name, values) in set {
            // `Vary` adds to the proxy's own (which says what the answer was chosen by).
            if name == hyper::header::VARY {
                for v in values.iter().filter_map(|v| v.to_str().ok()) {
                    for n in v.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                        super::cors::append_vary(headers, n);
                    }
                }
                continue;
            }
            let joined = if values.len() == 1 {
                values[0].clone()
            } else {
                let text: Vec<&[u8]> = values.iter().map(|v| v.as_bytes()).collect();
                HeaderValue::from_bytes(&text.join(&b", "[..]))
                    .expect("values joined by \", \" stay valid")
            };
            headers.insert(name.clone(), joined);
        }
    }
}

fn parse_header(l: &str) -> Result<(HeaderName, HeaderValue), String> {
    let (name, value) = l
        .split_once(':')
        .ok_or_else(|| format!("{l:?} is not `Name: value`"))?;
    let name = HeaderName::from_bytes(name.trim().as_bytes())
        .map_err(|_| format!("{:?} is not a header name", name.trim()))?;
    if name.as_str() == "basic-auth" {
        return Err(
            "Basic-Auth (Netlify's password protection) is not supported: the line would send \
             the passwords to every visitor, so it is refused"
                .into(),
        );
    }
    if REFUSED.contains(&name.as_str()) {
        return Err(format!(
            "{name} is the proxy's to set (framing, validators or hop-by-hop): refused"
        ));
    }
    let value = HeaderValue::from_str(value.trim())
        .map_err(|_| format!("the value of {name} is not a valid header value"))?;
    Ok((name, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matching_rules_apply_in_order_and_repeated_names_join() {
        let file = "\
# Netlify's examples
/*
  X-Frame-Options: DENY
  X-Content-Type-Options: nosniff
/templates/index.html
  X-Frame-Options: SAMEORIGIN
  X-Hint: none
/assets/*
  Cache-Control: public, max-age=31536000, immutable
/blog/:year/*
  X-Year: placeholder
";
        let r = HeaderRules::parse(file);
        assert_eq!(r.errors, vec![]);
        assert_eq!(r.rules.len(), 4);
        let applied = |path: &str| {
            let mut h = HeaderMap::new();
            h.insert(
                "cache-control",
                HeaderValue::from_static("public, max-age=60"),
            );
            r.apply(path, &mut h);
            h
        };
        let h = applied("/templates/index.html");
        assert_eq!(h["x-frame-options"], "DENY, SAMEORIGIN");
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(h["cache-control"], "public, max-age=60", "untouched");
        let h = applied("/assets/app.3f9a.js");
        assert_eq!(
            h["cache-control"], "public, max-age=31536000, immutable",
            "the file's wins over the default"
        );
        assert_eq!(applied("/blog/2024/post")["x-year"], "placeholder");
        assert!(applied("/blog").get("x-year").is_none());
    }

    #[test]
    fn refused_and_bad_lines_are_reported_and_the_rest_applies() {
        let file = "\
  X-Orphan: before any path
/a
  Content-Length: 5
  ETag: \"x\"
  Transfer-Encoding: chunked
  Content-Range: bytes 0-1/2
  Not a header
  Bad Name: x
  X-Good: yes
  Basic-Auth: someuser:somepassword
  Vary: Origin
not-a-path
  X-Skipped: with its bad path
/b
  X-B: b
";
        let r = HeaderRules::parse(file);
        let lines: Vec<usize> = r.errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![1, 3, 4, 5, 6, 7, 8, 10, 12], "{:#?}", r.errors);
        let mut h = HeaderMap::new();
        h.insert("vary", HeaderValue::from_static("Accept-Encoding"));
        r.apply("/a", &mut h);
        assert_eq!(h.len(), 2);
        assert_eq!(h["x-good"], "yes");
        assert_eq!(
            h["vary"], "Accept-Encoding, Origin",
            "added to, not replaced"
        );
        let mut h = HeaderMap::new();
        r.apply("/b", &mut h);
        assert_eq!(h["x-b"], "b");
    }
}
