//! The emulator's side of Dropbox's wire format: errors in their exact shapes (reference §1.6),
//! argument extraction by endpoint style (§1.1, §1.4), and reading the Authorization header.

use crate::http::{Body, full};
use crate::upstream::json::to_header_safe;
use crate::upstream::types::tag_chain;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hyper::header::{CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use hyper::{Response, StatusCode};
use serde_json::{Value, json};

/// `Content-Type` of JSON answers: exactly this, the Python SDK asserts it.
pub const JSON: &str = "application/json";

/// A Dropbox API error, rendered exactly once into a response.
#[derive(Debug, Clone)]
pub enum ApiError {
    /// 400, plain text: `Error in call to API function "<route>": <reason>`.
    BadInput(String),
    /// 401 `AuthError` tag: `invalid_access_token`, `expired_access_token`, …
    Auth(&'static str),
    /// 409 with the route's error union.
    Route(Value),
    /// 429 `too_many_requests` with `Retry-After`.
    RateLimited { retry_after: u64 },
    /// 5xx with a plain body.
    Server(StatusCode),
    /// Unknown endpoint.
    NotFound,
}

impl ApiError {
    /// A 409 whose error is the given union value.
    pub fn route(error: Value) -> Self {
        ApiError::Route(error)
    }

    /// `LookupError` under the route's lookup tag (`path`, `path_lookup`, `from_lookup`).
    pub fn lookup(tag: &str, lookup: &str) -> Self {
        ApiError::Route(json!({".tag": tag, tag: {".tag": lookup}}))
    }

    /// 400 for a malformed argument field, with the source Dropbox names.
    pub fn bad_field(source: &str, field: &str, why: impl std::fmt::Display) -> Self {
        ApiError::BadInput(format!("{source}: {field}: {why}"))
    }

    pub fn into_response(self, route: &str) -> Response<Body> {
        match self {
            ApiError::BadInput(reason) => text(
                StatusCode::BAD_REQUEST,
                format!("Error in call to API function \"{route}\": {reason}"),
            ),
            ApiError::Auth(tag) => json_error(StatusCode::UNAUTHORIZED, json!({".tag": tag})),
            ApiError::Route(error) => json_error(StatusCode::CONFLICT, error),
            ApiError::RateLimited { retry_after } => {
                let body = json!({
                    "error_summary": summary(&["too_many_requests"]),
                    "error": {"reason": {".tag": "too_many_requests"}, "retry_after": retry_after},
                });
                let mut resp = json_response(StatusCode::TOO_MANY_REQUESTS, &body);
                resp.headers_mut()
                    .insert(RETRY_AFTER, HeaderValue::from(retry_after));
                resp
            }
            ApiError::Server(status) => text(
                status,
                format!(
                    "{} {}",
                    status.as_u16(),
                    status.canonical_reason().unwrap_or("Server Error")
                ),
            ),
            ApiError::NotFound => text(
                StatusCode::NOT_FOUND,
                format!("Unknown API function: \"{route}\""),
            ),
        }
    }
}

/// `error_summary`: the tag chain joined by `/`, then a random run of dots so that nobody
/// matches it exactly (reference §1.6).
fn summary(tags: &[impl AsRef<str>]) -> String {
    let mut s: String = tags
        .iter()
        .map(|t| t.as_ref())
        .collect::<Vec<_>>()
        .join("/");
    s.push('/');
    s.push_str(&".".repeat(rand::random_range(0..=3)));
    s
}

fn json_error(status: StatusCode, error: Value) -> Response<Body> {
    let body = json!({"error_summary": summary(&tag_chain(&error)), "error": error});
    json_response(status, &body)
}

/// A JSON response with Dropbox's exact content type and ASCII-escaped body.
pub fn json_response(status: StatusCode, value: &Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(CONTENT_TYPE, JSON)
        .body(full(to_header_safe(value)))
        .expect("static headers are valid")
}

pub fn text(status: StatusCode, body: String) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(full(body))
        .expect("static headers are valid")
}

/// What the Authorization header (or `authorization` URL parameter) carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    None,
    Bearer(String),
    Basic { key: String, secret: String },
    Malformed(String),
}

/// Parses an Authorization value. `Bearer` needs exactly one space and a token.
pub fn parse_authorization(value: Option<&str>) -> Credentials {
    let Some(v) = value else {
        return Credentials::None;
    };
    if let Some(token) = v.strip_prefix("Bearer ") {
        if !token.is_empty() && !token.contains(' ') {
            return Credentials::Bearer(token.to_owned());
        }
    } else if let Some(b64) = v.strip_prefix("Basic ")
        && let Ok(raw) = STANDARD.decode(b64.trim())
        && let Ok(pair) = String::from_utf8(raw)
        && let Some((key, secret)) = pair.split_once(':')
    {
        return Credentials::Basic {
            key: key.to_owned(),
            secret: secret.to_owned(),
        };
    }
    Credentials::Malformed(v.to_owned())
}

/// An endpoint's argument, with where it came from (for 400 messages).
#[derive(Debug, Clone)]
pub struct Arg {
    pub value: Value,
    pub source: &'static str,
}

impl Arg {
    pub fn new(value: Value, source: &'static str) -> Self {
        Arg { value, source }
    }

    fn bad(&self, field: &str, why: impl std::fmt::Display) -> ApiError {
        ApiError::bad_field(self.source, field, why)
    }

    pub fn get(&self, field: &str) -> Option<&Value> {
        self.value.get(field).filter(|v| !v.is_null())
    }

    pub fn str(&self, field: &str) -> Result<&str, ApiError> {
        match self.get(field) {
            Some(Value::String(s)) => Ok(s),
            Some(other) => Err(self.bad(field, format!("expected string, got {}", kind(other)))),
            None => Err(self.bad(field, "missing required field")),
        }
    }

    pub fn opt_str(&self, field: &str) -> Result<Option<&str>, ApiError> {
        match self.get(field) {
            None => Ok(None),
            Some(_) => self.str(field).map(Some),
        }
    }

    pub fn bool(&self, field: &str, default: bool) -> Result<bool, ApiError> {
        match self.get(field) {
            None => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(other) => Err(self.bad(field, format!("expected boolean, got {}", kind(other)))),
        }
    }

    pub fn u64_in(&self, field: &str, lo: u64, hi: u64) -> Result<Option<u64>, ApiError> {
        match self.get(field) {
            None => Ok(None),
            Some(v) => match v.as_u64() {
                Some(n) if (lo..=hi).contains(&n) => Ok(Some(n)),
                Some(n) => Err(self.bad(field, format!("{n} is not within range [{lo}, {hi}]"))),
                None => Err(self.bad(field, format!("expected integer, got {}", kind(v)))),
            },
        }
    }

    /// A union member: the bare string form (`"add"`) or the object form (`{".tag": "add"}`).
    pub fn tag(&self, field: &str) -> Result<Option<&str>, ApiError> {
        match self.get(field) {
            None => Ok(None),
            Some(v) => union_tag(v)
                .map(Some)
                .ok_or_else(|| self.bad(field, "expected a union tag")),
        }
    }

    /// A nested struct or union value as its own `Arg`.
    pub fn sub(&self, field: &str) -> Option<Arg> {
        self.get(field).map(|v| Arg::new(v.clone(), self.source))
    }

    /// Checks the `(.|[\r\n])*`-style path patterns; returns the path.
    pub fn path(&self, field: &str, allow_root: bool) -> Result<&str, ApiError> {
        let p = self.str(field)?;
        if p == "/" {
            return Err(self.bad(
                field,
                "Specify the root folder as an empty string rather than as \"/\".",
            ));
        }
        if p.is_empty() {
            return if allow_root {
                Ok(p)
            } else {
                Err(self.bad(field, "The root folder is unsupported."))
            };
        }
        let ok = p.starts_with('/')
            || p.starts_with("id:")
            || p.starts_with("ns:")
            || (p.starts_with("rev:") && p.len() >= 13);
        if !ok {
            return Err(self.bad(
                field,
                format!("'{p}' did not match pattern '(/(.|[\\r\\n])*|id:.*)|(rev:[0-9a-f]{{9,}})|(ns:[0-9]+(/(.|[\\r\\n])*)?)'"),
            ));
        }
        Ok(p)
    }
}

/// The tag of a union value in either request form.
pub fn union_tag(v: &Value) -> Option<&str> {
    match v {
        Value::String(s) => Some(s),
        Value::Object(o) => o.get(".tag").and_then(Value::as_str),
        _ => None,
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorization_forms() {
        let basic = format!("Basic {}", STANDARD.encode("key:sec:ret"));
        let cases = [
            (None, Credentials::None),
            (Some("Bearer abc"), Credentials::Bearer("abc".into())),
            (Some("Bearer"), Credentials::Malformed("Bearer".into())),
            (
                Some("Bearer  abc"),
                Credentials::Malformed("Bearer  abc".into()),
            ),
            (
                Some(basic.as_str()),
                Credentials::Basic {
                    key: "key".into(),
                    secret: "sec:ret".into(),
                },
            ),
            (Some("Basic !!"), Credentials::Malformed("Basic !!".into())),
        ];
        for (input, want) in cases {
            assert_eq!(parse_authorization(input), want, "{input:?}");
        }
    }

    #[test]
    fn arg_paths_and_unions() {
        let arg = Arg::new(
            json!({"a": "/x", "root": "", "slash": "/", "bad": "x", "mode": "add",
                   "fmt": {".tag": "png"}, "n": 5}),
            "request body",
        );
        assert_eq!(arg.path("a", false).unwrap(), "/x");
        assert_eq!(arg.path("root", true).unwrap(), "");
        assert!(arg.path("root", false).is_err());
        let ApiError::BadInput(msg) = arg.path("slash", true).unwrap_err() else {
            panic!()
        };
        assert!(msg.contains("empty string rather than"), "{msg}");
        assert!(arg.path("bad", true).is_err());
        assert_eq!(arg.tag("mode").unwrap(), Some("add"));
        assert_eq!(arg.tag("fmt").unwrap(), Some("png"));
        assert!(arg.u64_in("n", 30, 480).is_err());
        assert!(arg.str("missing").is_err());
    }

    #[test]
    fn summaries_prefix_the_tag_chain() {
        let s = summary(&["path", "not_found"]);
        assert!(s.starts_with("path/not_found/"), "{s}");
        assert!(s.trim_end_matches('.').ends_with('/'));
    }
}
