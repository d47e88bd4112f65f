//! `cors` under a `[[site]]` or an `[[account]]`: which other origins may read its files (see
//! `http::cors`). Absent: no CORS headers, and `OPTIONS` is refused as before.

use super::raw::RawCors;
use super::units::duration;
use super::{ConfigError, invalid};
use crate::http::cors::Policy;
use hyper::Method;
use hyper::header::{HeaderName, HeaderValue};

pub(super) fn cors(key: &str, raw: Option<RawCors>) -> Result<Option<Policy>, ConfigError> {
    let Some(raw) = raw else { return Ok(None) };
    let k = |name: &str| format!("{key}.cors.{name}");
    if raw.allow_origins.is_empty() {
        return Err(invalid(
            k("allow_origins"),
            "list the origins allowed (\"https://app.example\"), or [\"*\"] for any",
        ));
    }
    let any_origin = raw.allow_origins.iter().any(|o| o == "*");
    let mut origins = Vec::new();
    for o in &raw.allow_origins {
        if o == "*" {
            continue;
        }
        let ok = (o.starts_with("https://") || o.starts_with("http://"))
            && !o
                .trim_end_matches('/')
                .contains(|c: char| c.is_whitespace())
            && o.split("://")
                .nth(1)
                .is_some_and(|rest| !rest.is_empty() && !rest.contains('/'));
        if !ok {
            return Err(invalid(
                k("allow_origins"),
                format!("{o:?} is not an origin (scheme://host[:port], no path) or \"*\""),
            ));
        }
        origins.push(o.to_ascii_lowercase());
    }
    let methods = match raw.allow_methods {
        None => vec![Method::GET, Method::HEAD],
        Some(list) => list
            .iter()
            .map(|m| match m.to_ascii_uppercase().as_str() {
                "GET" => Ok(Method::GET),
                "HEAD" => Ok(Method::HEAD),
                _ => Err(invalid(
                    k("allow_methods"),
                    format!("{m:?}: only GET and HEAD are served"),
                )),
            })
            .collect::<Result<_, _>>()?,
    };
    let headers = match raw.allow_headers {
        None => Policy::DEFAULT_HEADERS
            .iter()
            .map(|h| h.to_string())
            .collect(),
        Some(list) => list
            .iter()
            .map(|h| {
                HeaderName::from_bytes(h.as_bytes())
                    .map(|n| n.as_str().to_owned())
                    .map_err(|_| invalid(k("allow_headers"), format!("{h:?} is not a header name")))
            })
            .collect::<Result<_, _>>()?,
    };
    let expose = match raw.expose_headers {
        None => HeaderValue::from_static(Policy::DEFAULT_EXPOSE),
        Some(list) => {
            for h in &list {
                HeaderName::from_bytes(h.as_bytes()).map_err(|_| {
                    invalid(k("expose_headers"), format!("{h:?} is not a header name"))
                })?;
            }
            HeaderValue::from_str(&list.join(", ")).expect("header names are valid values")
        }
    };
    let max_age = duration(&k("max_age"), raw.max_age, "1h")?;
    Ok(Some(Policy {
        origins,
        any_origin,
        methods,
        headers,
        expose,
        max_age_secs: max_age.as_secs(),
    }))
}
