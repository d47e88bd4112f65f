//! Response bodies: the one boxed body type every response in the crate carries, and the short
//! answers built from bytes.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::Response;

/// Boxed error for response bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// Every response body in this crate.
pub type Body = BoxBody<Bytes, BoxError>;

/// A complete body from bytes.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).map_err(|e| match e {}).boxed()
}

/// A short `text/plain` answer that no cache keeps (errors, health, the webhook's replies).
/// SECURITY: `nosniff`, so a browser never reads one (which may quote the request) as HTML.
pub fn plain(status: hyper::StatusCode, text: impl Into<Bytes>) -> Response<Body> {
    use hyper::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue, X_CONTENT_TYPE_OPTIONS};
    let mut resp = Response::new(full(text));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    resp
}

/// An empty body. Zero-sized, so boxing it allocates nothing (a 304's, a HEAD's).
pub fn empty() -> Body {
    http_body_util::Empty::new().map_err(|e| match e {}).boxed()
}

#[cfg(test)]
mod tests {
    use hyper::body::Body as _;

    #[test]
    fn the_empty_body_is_done_and_says_it_has_no_bytes() {
        let b = super::empty();
        assert!(b.is_end_stream());
        assert_eq!(b.size_hint().exact(), Some(0));
    }
}
