//! The fuzz targets' bodies: each takes arbitrary bytes, feeds them to a parser that faces
//! clients or Dropbox, and checks what must hold of any answer (not only "no panic"). The
//! cargo-fuzz targets in `fuzz_targets/` call these; `tests/fuzz_smoke.rs` runs them over the
//! corpus and mutations of it on stable Rust, in the test command.

use dropcache::config::Config;
use dropcache::http::conditional::{Validators, evaluate};
use dropcache::http::etag::{EntityTag, TagList};
use dropcache::http::header_rules::HeaderRules;
use dropcache::http::range::{Decision, decide};
use dropcache::http::redirects::Redirects;
use dropcache::proxy::normalize::{normalize, site_path};
use dropcache::upstream::client::error_from_answer;
use dropcache::upstream::types;
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use std::time::{Duration, SystemTime};

/// Splits `data` at NUL bytes into up to `n` text fields (lossy UTF-8).
fn fields(data: &[u8], n: usize) -> Vec<String> {
    let mut out: Vec<String> = data
        .splitn(n, |&b| b == 0)
        .map(|f| String::from_utf8_lossy(f).into_owned())
        .collect();
    out.resize(n, String::new());
    out
}

/// Request paths: what `normalize` accepts is a clean path, the same when normalized again.
pub fn path(data: &[u8]) {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(t) = normalize(raw) {
        assert!(!t.alias().is_empty() && !t.alias().contains('/'));
        assert_eq!(t.lower(), t.display().to_lowercase());
        assert!(t.display().is_empty() || t.display().starts_with('/'));
        for seg in t.display().split('/').skip(1) {
            assert!(
                !seg.is_empty() && seg != "." && seg != "..",
                "{raw:?} → {t:?}"
            );
        }
        // Normalizing the decoded form again (re-encoded) gives the same target.
        let again = format!(
            "/{}{}{}",
            t.alias(),
            dropcache::http::pattern::encode_path(t.display()),
            if t.trailing_slash && !t.display().is_empty() {
                "/"
            } else {
                ""
            }
        );
        if let Ok(u) = normalize(&again) {
            assert_eq!(
                (u.display(), u.lower()),
                (t.display(), t.lower()),
                "{raw:?}"
            );
        }
    }
    if let Ok((display, lower, _)) = site_path(raw) {
        assert_eq!(lower, display.to_lowercase());
        assert!(!display.split('/').any(|s| s == ".."), "{raw:?}");
    }
}

/// Range headers: every range answered lies within the representation, in ascending order
/// without overlap, and no more of them than allowed.
pub fn range(data: &[u8]) {
    if data.len() < 9 {
        return;
    }
    let len = u64::from_le_bytes(data[..8].try_into().unwrap()) % (1 << 40);
    let max = usize::from(data[8] % 8);
    let header = String::from_utf8_lossy(&data[9..]);
    match decide(&header, len, max) {
        Decision::Whole => {}
        Decision::Unsatisfiable => {}
        Decision::Single(r) => {
            assert!(
                r.start() <= r.end() && *r.end() < len,
                "{header:?} {len} → {r:?}"
            );
        }
        Decision::Multi(parts) => {
            assert!(
                parts.len() >= 2 && parts.len() <= max,
                "{header:?} → {parts:?}"
            );
            for w in parts.windows(2) {
                assert!(w[0].end().saturating_add(1) < *w[1].start(), "{parts:?}");
            }
            for r in &parts {
                assert!(r.start() <= r.end() && *r.end() < len);
            }
        }
    }
}

/// Conditional headers: any mix of If-* and Range headers gets a verdict, and a request
/// naming the representation's own ETag in If-None-Match is never told to proceed.
pub fn conditional(data: &[u8]) {
    let f = fields(data, 7);
    let names = [
        "if-match",
        "if-none-match",
        "if-modified-since",
        "if-unmodified-since",
        "if-range",
        "range",
    ];
    let mut headers = HeaderMap::new();
    for (name, value) in names.iter().zip(&f[1..]) {
        if let Ok(v) = HeaderValue::from_str(value)
            && !value.is_empty()
        {
            headers.insert(HeaderName::from_static(name), v);
        }
    }
    let etag = EntityTag::parse(&f[0]);
    let _ = TagList::parse(&f[0]);
    let v = Validators {
        etag: etag.clone(),
        last_modified: Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)),
    };
    for method in [hyper::Method::GET, hyper::Method::HEAD, hyper::Method::POST] {
        let _ = evaluate(&method, &headers, &v);
    }
    if let Some(tag) = etag {
        let mut own = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_str(&f[0]) {
            own.insert(HeaderName::from_static("if-none-match"), v);
            let out = evaluate(
                &hyper::Method::GET,
                &own,
                &Validators {
                    etag: Some(tag),
                    last_modified: None,
                },
            );
            assert_eq!(
                out,
                dropcache::http::conditional::Outcome::NotModified,
                "{:?}",
                f[0]
            );
        }
    }
}

/// `_redirects` and `_headers`: any text parses (bad lines skipped), and rules found for any
/// path are well formed.
pub fn site_rules(data: &[u8]) {
    let f = fields(data, 4);
    let rules = Redirects::parse(&f[0]);
    let query = (!f[3].is_empty()).then_some(f[3].as_str());
    let host = (!f[2].is_empty()).then_some(f[2].as_str());
    if let Some(action) = rules.find(host, &f[1], query) {
        assert!(matches!(
            action.status,
            // 414: a target the request's captures make too long.
            200 | 301 | 302 | 303 | 307 | 308 | 404 | 410 | 414 | 451
        ));
        assert!(action.to.len() <= 64 * 1024, "a bounded target");
        assert!(!action.to.contains(['\r', '\n']), "{:?}", action.to);
    }
    let headers = HeaderRules::parse(&f[0]);
    let mut out = HeaderMap::new();
    headers.apply(&f[1], &mut out);
    for name in [
        "content-length",
        "transfer-encoding",
        "etag",
        "location",
        "date",
    ] {
        assert!(!out.contains_key(name), "{name} may not be set by _headers");
    }
}

/// Dropbox's answers: JSON bodies of every shape the client reads, `Dropbox-API-Result`
/// headers, and error answers of any status.
pub fn dropbox(data: &[u8]) {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    match which % 8 {
        0 => drop(serde_json::from_slice::<types::Metadata>(rest)),
        1 => drop(serde_json::from_slice::<types::FileMetadata>(rest)),
        2 => drop(serde_json::from_slice::<types::ListFolderResult>(rest)),
        3 => drop(serde_json::from_slice::<types::LongpollResult>(rest)),
        4 => drop(serde_json::from_slice::<types::TokenResponse>(rest)),
        5 => drop(serde_json::from_slice::<types::SharedLinkMetadata>(rest)),
        6 => {
            if let Ok(v) = serde_json::from_slice::<serde_json::Value>(rest) {
                let _ = types::tag_chain(&v);
            }
        }
        _ => {
            let f = fields(rest, 3);
            let status = f[0]
                .bytes()
                .fold(0u16, |a, b| a.wrapping_mul(31).wrapping_add(b.into()));
            let status = 400 + status % 200;
            let e = error_from_answer(status, Some(&f[1]), f[2].as_bytes());
            // A 429 never says "now": at least a second.
            if let Some(wait) = e.retry_after() {
                assert!(wait >= Duration::from_secs(1));
            }
            // SECURITY: what an error says never carries a bearer token it was sent.
            let text = e.to_string();
            assert!(!text.contains("Bearer sl."), "{text}");
        }
    }
}

/// The webhook's body: any bytes are a list of accounts or a clean refusal.
pub fn webhook(data: &[u8]) {
    if let Some(named) = dropcache::server::webhook::named_accounts(data) {
        assert!(named.iter().map(String::len).sum::<usize>() <= data.len());
    }
    let _ = dropcache::server::webhook::verify(b"secret", data, "00");
}

/// Config files: any text is a config or a clear error that names no secret it was given.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Config::parse(text, &|_| None) {
        Ok(_) => {}
        Err(e) => {
            let msg = e.to_string();
            assert!(!msg.is_empty());
            // SECURITY: a TOML error says where, never what is written there (the corpus has
            // secrets named so). A check of a known key may name a value it refuses (a
            // duplicate site name, a bad size), but never one of a secret's key.
            if matches!(e, dropcache::config::ConfigError::Parse { .. }) {
                assert!(!msg.contains("FUZZSECRET"), "{msg}");
            }
        }
    }
}

/// A target's body.
pub type Target = fn(&[u8]);

/// Every target, by name (for the smoke test and the runner).
pub const TARGETS: &[(&str, Target)] = &[
    ("path", path),
    ("range", range),
    ("conditional", conditional),
    ("site_rules", site_rules),
    ("dropbox", dropbox),
    ("webhook", webhook),
    ("config", config),
];
