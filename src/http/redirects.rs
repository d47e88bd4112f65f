//! A site's `_redirects` file, Netlify's grammar: one rule a line,
//! `from [query matches] to [status][!]`, `#` comments, first match wins.
//!
//! - `from` is a path pattern (`pattern`: `:placeholders`, a trailing `*` bound to `:splat`),
//!   or an absolute URL whose host must also match (a domain-level rule).
//! - query matches are `key=:name` (binds the parameter) or `key=value` (must equal it); every
//!   one must be present.
//! - `to` is a site path or an absolute URL; its `:name`s are replaced by the captures.
//! - status: 301 (the default), 302, 303, 307, 308 redirect; 200 rewrites (serves `to` in
//!   place, a site path only: proxying to another site is not supported); 404, 410, 451 serve
//!   `to` as the page of that status. `!` forces the rule even where a file exists at the path
//!   (otherwise an existing file shadows it).
//!
//! A line that does not parse is reported with its number and skipped: a bad line never takes
//! the rest of the file down. Conditions (`Country=`, `Language=`, `Role=`, `Cookie=`) need
//! what a proxy does not have, so such lines are reported and skipped.

use super::pattern::{Captures, Pattern, encode_path, substitute};

/// The most rules one file may hold; the rest are reported and ignored.
pub const MAX_RULES: usize = 1000;
/// The longest target a rule may have.
pub const MAX_TARGET: usize = 2048;

/// One rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// 1-based line number in the file.
    pub line: usize,
    /// A domain-level rule's host (lowercase).
    pub host: Option<String>,
    pub from: Pattern,
    pub query: Vec<(String, QueryMatch)>,
    pub to: String,
    pub status: u16,
    pub force: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryMatch {
    Bind(String),
    Equals(String),
}

/// A line that was skipped, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LineError {
    pub line: usize,
    pub error: String,
}

/// A parsed file: its rules in order and the lines it skipped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Redirects {
    pub rules: Vec<Rule>,
    pub errors: Vec<LineError>,
}

/// What a matching rule asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Action {
    pub status: u16,
    pub force: bool,
    /// `to`, substituted: a site path (possibly with `?query`) or an absolute URL.
    pub to: String,
    /// The rule matched query parameters (then the request's query is not passed on).
    pub matched_query: bool,
}

impl Redirects {
    pub fn parse(text: &str) -> Redirects {
        let mut out = Redirects::default();
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let l = raw.trim();
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            if out.rules.len() == MAX_RULES {
                out.errors.push(LineError {
                    line,
                    error: format!(
                        "more than {MAX_RULES} rules: this one and the rest are ignored"
                    ),
                });
                break;
            }
            match parse_rule(line, l) {
                Ok(rule) => out.rules.push(rule),
                Err(error) => out.errors.push(LineError { line, error }),
            }
        }
        out
    }

    /// The first rule matching `path` (decoded, `/…`) with `query` on `host`, and what it asks
    /// for.
    pub fn find(&self, host: Option<&str>, path: &str, query: Option<&str>) -> Option<Action> {
        let params: Vec<(String, String)> = query
            .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
            .unwrap_or_default();
        self.rules.iter().find_map(|rule| {
            if rule.host.is_some() && rule.host.as_deref() != host {
                return None;
            }
            // Captures go into a URL: encoded again (query values below already are).
            let mut captures: Captures = rule
                .from
                .matches(path)?
                .into_iter()
                .map(|(k, v)| (k, encode_path(&v)))
                .collect();
            for (key, m) in &rule.query {
                let value = params.iter().find(|(k, _)| k == key).map(|(_, v)| v)?;
                match m {
                    QueryMatch::Bind(name) => captures.push((name.clone(), encode(value))),
                    QueryMatch::Equals(want) if want == value => {}
                    QueryMatch::Equals(_) => return None,
                }
            }
            // A target a request would make too long is refused (414), not passed over: the
            // next rule, or the file, must not answer instead.
            Some(match substitute(&rule.to, &captures) {
                Some(to) => Action {
                    status: rule.status,
                    force: rule.force,
                    to,
                    matched_query: !rule.query.is_empty(),
                },
                None => Action {
                    status: 414,
                    force: true,
                    to: String::new(),
                    matched_query: !rule.query.is_empty(),
                },
            })
        })
    }
}

/// A query value put back into a path: percent-encoded as a path segment would be.
fn encode(value: &str) -> String {
    percent_encoding::utf8_percent_encode(value, super::pattern::SEGMENT).to_string()
}

const CONDITIONS: [&str; 4] = ["country=", "language=", "role=", "cookie="];

fn parse_rule(line: usize, l: &str) -> Result<Rule, String> {
    let mut words = l.split_whitespace().peekable();
    let from = words.next().expect("the line is not empty");
    let (host, path) = match from.split_once("://") {
        Some((scheme, rest)) if scheme == "http" || scheme == "https" => {
            let (host, path) = match rest.find('/') {
                Some(at) => (&rest[..at], &rest[at..]),
                None => (rest, "/"),
            };
            if host.is_empty() {
                return Err(format!("no host in {from:?}"));
            }
            (Some(host.to_ascii_lowercase()), path)
        }
        Some(_) => return Err(format!("{from:?} is neither a path nor an http(s) URL")),
        None => (None, from),
    };
    let from_pattern = Pattern::parse(path)?;
    let mut query = Vec::new();
    while let Some(w) = words.peek() {
        if w.starts_with('/') || w.starts_with("http://") || w.starts_with("https://") {
            break;
        }
        let (key, value) = w
            .split_once('=')
            .ok_or_else(|| format!("{w:?} is neither a query match (key=value) nor a target"))?;
        let m = match value.strip_prefix(':') {
            Some(name) if super::pattern::valid_name(name) => QueryMatch::Bind(name.to_owned()),
            Some(_) => return Err(format!("{w:?}: a placeholder needs a name")),
            None => QueryMatch::Equals(value.to_owned()),
        };
        query.push((key.to_owned(), m));
        words.next();
    }
    let to = words
        .next()
        .ok_or("no target: a rule is `from to [status]`")?;
    let (status, force) = match words.next() {
        None => (301, false),
        Some(s) => {
            let (digits, force) = match s.strip_suffix('!') {
                Some(d) => (d, true),
                None => (s, false),
            };
            let status: u16 = digits
                .parse()
                .map_err(|_| format!("{s:?} is not a status (e.g. 301, 200, 404!)"))?;
            if !matches!(status, 200 | 301 | 302 | 303 | 307 | 308 | 404 | 410 | 451) {
                return Err(format!(
                    "status {status} is not one of 200, 301, 302, 303, 307, 308, 404, 410, 451"
                ));
            }
            (status, force)
        }
    };
    if let Some(extra) = words.next() {
        let lower = extra.to_ascii_lowercase();
        return Err(if CONDITIONS.iter().any(|c| lower.starts_with(c)) {
            format!("conditions such as {extra:?} are not supported: the rule is skipped")
        } else {
            format!("unexpected {extra:?} after the status")
        });
    }
    let absolute = to.starts_with("http://") || to.starts_with("https://");
    if !absolute && !to.starts_with('/') {
        return Err(format!(
            "the target {to:?} must be a path (/…) or an http(s) URL"
        ));
    }
    if absolute && !(300..400).contains(&status) {
        return Err(format!(
            "status {status} to another site would proxy it, which is not supported"
        ));
    }
    if to.chars().any(char::is_control) {
        return Err("the target holds a control character".into());
    }
    if to.len() > MAX_TARGET {
        return Err(format!("the target is longer than {MAX_TARGET} bytes"));
    }
    Ok(Rule {
        line,
        host,
        from: from_pattern,
        query,
        // Non-ASCII written as it is goes into a Location header: encoded.
        to: percent_encoding::utf8_percent_encode(to, percent_encoding::CONTROLS).to_string(),
        status,
        force,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn action(status: u16, force: bool, to: &str) -> Option<Action> {
        Some(Action {
            status,
            force,
            to: to.into(),
            matched_query: false,
        })
    }

    /// The cases of Netlify's documentation of the grammar, in its order.
    #[test]
    fn netlifys_documented_rules_match_as_documented() {
        let file = "\
# Redirects from what the browser requests to what we serve
/home              /
/blog/my-post.php  /blog/my-post
/news              /blog
/cuties            https://www.petsofnetlify.com
/authors/c%C3%A9line /authors/about-c%C3%A9line
/old-path          /new-path    302
/my-redirect       /            307
/temp              /new-temp    308!
/app/*             /app/index.html   200
/ecommerce         /store-closed     404
/pass-through      /index.html       200
/news/*            /blog/:splat
/stories/:year/:month/:date/:slug  /blog/:year-:month-:date-:slug.html 301
/store id=:id      /blog/:id    301
/articles id=:id tag=:tag  /posts/:tag/:id  301
/things  kind=fruit  /fruit  302
http://blog.example.com/*  https://www.example.com/blog/:splat  301!
/*                 /index.html  200
";
        let r = Redirects::parse(file);
        assert_eq!(r.errors, vec![], "every documented line parses");
        assert_eq!(r.rules.len(), 18);
        let find = |path: &str, query: Option<&str>| r.find(Some("site.test"), path, query);
        assert_eq!(find("/home", None), action(301, false, "/"));
        assert_eq!(find("/home/", None), action(301, false, "/"));
        assert_eq!(
            find("/cuties", None),
            action(301, false, "https://www.petsofnetlify.com")
        );
        assert_eq!(
            find("/authors/céline", None),
            action(301, false, "/authors/about-c%C3%A9line")
        );
        assert_eq!(find("/old-path", None), action(302, false, "/new-path"));
        assert_eq!(find("/my-redirect", None), action(307, false, "/"));
        assert_eq!(find("/temp", None), action(308, true, "/new-temp"));
        assert_eq!(
            find("/app/a/b", None),
            action(200, false, "/app/index.html")
        );
        assert_eq!(
            find("/ecommerce", None),
            action(404, false, "/store-closed")
        );
        assert_eq!(
            find("/news/2024/x", None),
            action(301, false, "/blog/2024/x")
        );
        assert_eq!(
            find("/stories/2024/02/12/my-story", None),
            action(301, false, "/blog/2024-02-12-my-story.html")
        );
        let q = |status, to: &str| {
            Some(Action {
                status,
                force: false,
                to: to.into(),
                matched_query: true,
            })
        };
        assert_eq!(find("/store", Some("id=42")), q(301, "/blog/42"));
        assert_eq!(find("/store", Some("id=a%20b")), q(301, "/blog/a%20b"));
        assert_eq!(
            find("/articles", Some("tag=rust&id=7&x=1")),
            q(301, "/posts/rust/7")
        );
        // A missing parameter or another value: the rule does not match (the catch-all does).
        assert_eq!(find("/store", None), action(200, false, "/index.html"));
        assert_eq!(find("/things", Some("kind=fruit")), q(302, "/fruit"));
        assert_eq!(
            find("/things", Some("kind=veg")),
            action(200, false, "/index.html")
        );
        // Domain-level: only on its host.
        assert_eq!(
            r.find(Some("blog.example.com"), "/a/b", None),
            action(301, true, "https://www.example.com/blog/a/b")
        );
        // First match wins: the catch-all comes last.
        assert_eq!(
            find("/nothing-else", None),
            action(200, false, "/index.html")
        );
        // Case-insensitive, as the files are found: no spelling slips past a rule.
        assert_eq!(find("/HOME", None), action(301, false, "/"));
        // Captures are encoded again into the target.
        assert_eq!(
            find("/news/a b/ü", None),
            action(301, false, "/blog/a%20b/%C3%BC")
        );
    }

    #[test]
    fn bad_lines_are_reported_with_their_numbers_and_the_rest_applies() {
        let file = "\
/ok /fine
/no-target
relative /x
/a /b 999
/c /d 302 Country=au,nz
/e /f 301 extra
/g nonsense /h
/p https://elsewhere.example/ 200
/q /r 302!
ftp://x/y /z
";
        let r = Redirects::parse(file);
        let lines: Vec<usize> = r.errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![2, 3, 4, 5, 6, 7, 8, 10], "{:#?}", r.errors);
        assert!(
            r.errors[3].error.contains("not supported"),
            "{:?}",
            r.errors[3]
        );
        assert_eq!(r.rules.len(), 2);
        assert_eq!(r.find(None, "/q", None), action(302, true, "/r"));
        // A target a request would make too long: 414, not the next rule.
        let greedy = Redirects::parse(&format!(
            "/g/* {} 301\n/* /all 200\n",
            "/:splat".repeat(200)
        ));
        let long = format!("/g/{}", "x".repeat(100));
        assert_eq!(greedy.find(None, &long, None).map(|a| a.status), Some(414));
    }

    #[test]
    fn rules_past_the_cap_are_reported_once_and_ignored() {
        let file: String = (0..MAX_RULES + 5)
            .map(|i| format!("/r{i} /t{i}\n"))
            .collect();
        let r = Redirects::parse(&file);
        assert_eq!(r.rules.len(), MAX_RULES);
        assert_eq!(r.errors.len(), 1);
        assert_eq!(r.errors[0].line, MAX_RULES + 1);
    }
}
