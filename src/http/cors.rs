//! CORS (the Fetch standard's CORS protocol) for a site's or an account's files, so a gallery
//! frontend on another origin can read listings and files. Off unless configured.
//!
//! - A preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`) is answered
//!   here, 204, from the policy alone: nothing is looked up, Dropbox is never asked. An origin,
//!   method or header the policy does not allow gets 403 and no CORS headers.
//! - Any other answer to an allowed `Origin` carries `Access-Control-Allow-Origin` (the
//!   origin, or `*` when every origin is allowed) and `Access-Control-Expose-Headers`;
//!   `Vary: Origin` whenever the answer depends on it.

use super::{Body, empty, plain};
use hyper::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE, ACCESS_CONTROL_REQUEST_HEADERS,
    ACCESS_CONTROL_REQUEST_METHOD, ALLOW, HeaderMap, HeaderValue, ORIGIN, VARY,
};
use hyper::{Method, Response, StatusCode};

/// A validated policy (from `cors` under `[[site]]` or `[[account]]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Exact origins (`scheme://host[:port]`, lowercase), or empty with `any_origin`.
    pub origins: Vec<String>,
    pub any_origin: bool,
    pub methods: Vec<Method>,
    /// Request headers a preflight may ask for (lowercase).
    pub headers: Vec<String>,
    pub expose: HeaderValue,
    pub max_age_secs: u64,
}

impl Policy {
    /// The request headers a cross-origin reader of files needs by default.
    pub const DEFAULT_HEADERS: [&'static str; 5] = [
        "range",
        "if-none-match",
        "if-modified-since",
        "if-match",
        "if-unmodified-since",
    ];
    /// The answer headers a script may read by default (beyond the CORS-safelisted ones).
    pub const DEFAULT_EXPOSE: &'static str =
        "ETag, Content-Range, Content-Length, Accept-Ranges, Last-Modified, X-Cache-Status";

    fn allows_origin(&self, origin: &str) -> bool {
        self.any_origin || self.origins.iter().any(|o| o.eq_ignore_ascii_case(origin))
    }

    fn allow_origin_value(&self, origin: &HeaderValue) -> HeaderValue {
        if self.any_origin {
            HeaderValue::from_static("*")
        } else {
            origin.clone()
        }
    }
}

/// Whether `req` is a CORS preflight.
pub fn is_preflight(method: &Method, req: &HeaderMap) -> bool {
    method == Method::OPTIONS
        && req.contains_key(ORIGIN)
        && req.contains_key(ACCESS_CONTROL_REQUEST_METHOD)
}

/// The answer to an `OPTIONS` request under `policy`: a preflight's verdict, or the
/// methods served.
pub fn options(policy: &Policy, req: &HeaderMap) -> Response<Body> {
    let allowed = allow_header(policy);
    let origin = req
        .get(ORIGIN)
        .and_then(|o| o.to_str().ok().map(|s| (o, s)));
    let Some((origin, origin_text)) =
        origin.filter(|_| req.contains_key(ACCESS_CONTROL_REQUEST_METHOD))
    else {
        let mut resp = Response::new(empty());
        *resp.status_mut() = StatusCode::NO_CONTENT;
        resp.headers_mut().insert(ALLOW, allowed);
        return resp;
    };
    let method_ok = req
        .get(ACCESS_CONTROL_REQUEST_METHOD)
        .and_then(|m| Method::from_bytes(m.as_bytes()).ok())
        .is_some_and(|m| policy.methods.contains(&m));
    let asked: Vec<String> = req
        .get_all(ACCESS_CONTROL_REQUEST_HEADERS)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|h| h.trim().to_ascii_lowercase())
        .filter(|h| !h.is_empty())
        .collect();
    let headers_ok = asked.iter().all(|h| policy.headers.contains(h));
    if !policy.allows_origin(origin_text) || !method_ok || !headers_ok {
        let mut resp = plain(
            StatusCode::FORBIDDEN,
            "CORS: this origin, method or header is not allowed here\n",
        );
        resp.headers_mut()
            .insert(VARY, HeaderValue::from_static("Origin"));
        return resp;
    }
    let mut resp = Response::new(empty());
    *resp.status_mut() = StatusCode::NO_CONTENT;
    let h = resp.headers_mut();
    h.insert(
        ACCESS_CONTROL_ALLOW_ORIGIN,
        policy.allow_origin_value(origin),
    );
    h.insert(ACCESS_CONTROL_ALLOW_METHODS, allowed.clone());
    if !asked.is_empty() {
        let list = asked.join(", ");
        h.insert(
            ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_str(&list).expect("checked against the policy's names"),
        );
    }
    h.insert(
        ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from(policy.max_age_secs),
    );
    h.insert(ALLOW, allowed);
    if !policy.any_origin {
        h.insert(VARY, HeaderValue::from_static("Origin"));
    }
    resp
}

/// Adds the CORS headers of an actual (not preflight) answer.
pub fn decorate(policy: &Policy, req: &HeaderMap, resp: &mut HeaderMap) {
    if !policy.any_origin {
        append_vary(resp, "Origin");
    }
    let Some(origin) = req.get(ORIGIN) else {
        return;
    };
    if origin.to_str().is_ok_and(|o| policy.allows_origin(o)) {
        resp.insert(
            ACCESS_CONTROL_ALLOW_ORIGIN,
            policy.allow_origin_value(origin),
        );
        resp.insert(ACCESS_CONTROL_EXPOSE_HEADERS, policy.expose.clone());
    }
}

fn allow_header(policy: &Policy) -> HeaderValue {
    let mut names: Vec<&str> = policy.methods.iter().map(Method::as_str).collect();
    names.push("OPTIONS");
    names.dedup();
    HeaderValue::from_str(&names.join(", ")).expect("method names are tokens")
}

/// Adds `name` to `Vary` unless it is there.
pub fn append_vary(resp: &mut HeaderMap, name: &str) {
    let had = resp
        .get(VARY)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let value = match had {
        Some(v) if v.split(',').any(|n| n.trim().eq_ignore_ascii_case(name)) => return,
        Some(v) if !v.trim().is_empty() => format!("{v}, {name}"),
        _ => name.to_owned(),
    };
    if let Ok(v) = HeaderValue::from_str(&value) {
        resp.insert(VARY, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(origins: &[&str]) -> Policy {
        Policy {
            origins: origins.iter().map(|o| o.to_string()).collect(),
            any_origin: origins.is_empty(),
            methods: vec![Method::GET, Method::HEAD],
            headers: Policy::DEFAULT_HEADERS
                .iter()
                .map(|h| h.to_string())
                .collect(),
            expose: HeaderValue::from_static(Policy::DEFAULT_EXPOSE),
            max_age_secs: 3600,
        }
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| {
                (
                    hyper::header::HeaderName::from_static(k),
                    HeaderValue::from_static(v),
                )
            })
            .collect()
    }

    #[test]
    fn preflights_are_answered_from_the_policy() {
        let p = policy(&["https://gallery.example"]);
        let ok = options(
            &p,
            &headers(&[
                ("origin", "https://gallery.example"),
                ("access-control-request-method", "GET"),
                ("access-control-request-headers", "Range, if-none-match"),
            ]),
        );
        assert_eq!(ok.status(), StatusCode::NO_CONTENT);
        let h = ok.headers();
        assert_eq!(h[ACCESS_CONTROL_ALLOW_ORIGIN], "https://gallery.example");
        assert_eq!(h[ACCESS_CONTROL_ALLOW_METHODS], "GET, HEAD, OPTIONS");
        assert_eq!(h[ACCESS_CONTROL_ALLOW_HEADERS], "range, if-none-match");
        assert_eq!(h[ACCESS_CONTROL_MAX_AGE], "3600");
        assert_eq!(h[VARY], "Origin");
        let cases: &[&[(&str, &str)]] = &[
            &[
                ("origin", "https://evil.example"),
                ("access-control-request-method", "GET"),
            ],
            &[
                ("origin", "https://gallery.example"),
                ("access-control-request-method", "DELETE"),
            ],
            &[
                ("origin", "https://gallery.example"),
                ("access-control-request-method", "GET"),
                ("access-control-request-headers", "authorization"),
            ],
        ];
        for case in cases {
            let refused = options(&p, &headers(case));
            assert_eq!(refused.status(), StatusCode::FORBIDDEN, "{case:?}");
            assert!(!refused.headers().contains_key(ACCESS_CONTROL_ALLOW_ORIGIN));
        }
        let any = options(
            &policy(&[]),
            &headers(&[
                ("origin", "https://x.example"),
                ("access-control-request-method", "HEAD"),
            ]),
        );
        assert_eq!(any.headers()[ACCESS_CONTROL_ALLOW_ORIGIN], "*");
        assert!(!any.headers().contains_key(VARY));
        // Not a preflight: the methods served.
        let plain_options = options(&p, &HeaderMap::new());
        assert_eq!(plain_options.status(), StatusCode::NO_CONTENT);
        assert_eq!(plain_options.headers()[ALLOW], "GET, HEAD, OPTIONS");
    }

    #[test]
    fn answers_to_allowed_origins_carry_the_headers() {
        let p = policy(&["https://gallery.example"]);
        let mut resp = headers(&[("vary", "Accept")]);
        decorate(
            &p,
            &headers(&[("origin", "https://gallery.example")]),
            &mut resp,
        );
        assert_eq!(resp[ACCESS_CONTROL_ALLOW_ORIGIN], "https://gallery.example");
        assert_eq!(resp[ACCESS_CONTROL_EXPOSE_HEADERS], Policy::DEFAULT_EXPOSE);
        assert_eq!(resp[VARY], "Accept, Origin");
        let mut other = HeaderMap::new();
        decorate(
            &p,
            &headers(&[("origin", "https://evil.example")]),
            &mut other,
        );
        assert!(!other.contains_key(ACCESS_CONTROL_ALLOW_ORIGIN));
        assert_eq!(
            other[VARY], "Origin",
            "a cache must not reuse it for the allowed origin"
        );
    }
}
