//! What a file's answers say of it whatever the request: its strong validator, its
//! modification date, its media type and length, each ready as a header value. Built once per
//! cached entry (`meta::Entry::representation`), so a hit formats nothing.

use super::conditional::Validators;
use super::etag::EntityTag;
use hyper::header::HeaderValue;

#[derive(Debug, Clone)]
pub struct Representation {
    /// The strong ETag and the modification date, as the conditionals read them.
    pub validators: Validators,
    pub etag_value: HeaderValue,
    pub last_modified_value: Option<HeaderValue>,
    pub content_type: HeaderValue,
    pub len: u64,
    /// `len` as a `Content-Length`.
    pub len_value: HeaderValue,
    /// Its type is worth compressing (`encoding::compressible`).
    pub compressible: bool,
}

impl Representation {
    /// From a strong validator (a content hash or a rev: hex and ASCII), an RFC 3339
    /// modification time, the file's name and length.
    pub fn new(validator: &str, modified: &str, name: &str, len: u64) -> Representation {
        let etag = EntityTag::strong(validator.to_owned());
        let last_modified = humantime::parse_rfc3339(modified).ok();
        let ct = content_type(name);
        Representation {
            etag_value: HeaderValue::from_str(&etag.to_string())
                .expect("content hashes and revs are valid header values"),
            last_modified_value: last_modified.map(|t| {
                HeaderValue::from_str(&httpdate::fmt_http_date(t)).expect("an HTTP date is ASCII")
            }),
            validators: Validators {
                etag: Some(etag),
                last_modified,
            },
            content_type: HeaderValue::from_str(&ct).expect("media types are ASCII"),
            compressible: super::encoding::compressible(&ct),
            len,
            len_value: HeaderValue::from(len),
        }
    }
}

impl Representation {
    /// The same content in another coding (`br`, `gzip`), `len` bytes long: its own strong
    /// ETag (`"<validator>-<coding>"`), the same date and type.
    pub fn encoded(&self, coding: &str, len: u64) -> Representation {
        let base = self
            .validators
            .etag
            .as_ref()
            .map_or("", |e| e.tag.as_str())
            .to_owned();
        let etag = EntityTag::strong(format!("{base}-{coding}"));
        Representation {
            etag_value: HeaderValue::from_str(&etag.to_string())
                .expect("validators and codings are valid header values"),
            validators: Validators {
                etag: Some(etag),
                last_modified: self.validators.last_modified,
            },
            last_modified_value: self.last_modified_value.clone(),
            content_type: self.content_type.clone(),
            compressible: self.compressible,
            len,
            len_value: HeaderValue::from(len),
        }
    }
}

/// The Content-Type for a file name (`charset=utf-8` on text).
pub fn content_type(name: &str) -> String {
    let mime = mime_guess::from_path(name).first_or_octet_stream();
    let textual = mime.type_() == mime_guess::mime::TEXT
        || matches!(
            mime.essence_str(),
            "application/javascript" | "application/json"
        );
    if textual && mime.get_param("charset").is_none() {
        format!("{}; charset=utf-8", mime.essence_str())
    } else {
        mime.essence_str().to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_by_name() {
        assert_eq!(content_type("a.JPG"), "image/jpeg");
        assert_eq!(content_type("index.html"), "text/html; charset=utf-8");
        assert_eq!(content_type("app.js"), "text/javascript; charset=utf-8");
        assert_eq!(content_type("noext"), "application/octet-stream");
    }

    #[test]
    fn header_values_are_made_once_from_the_file() {
        let r = Representation::new("abc123", "2026-11-22T10:00:00Z", "a.txt", 5);
        assert_eq!(r.etag_value, "\"abc123\"");
        assert_eq!(
            r.last_modified_value.as_ref().unwrap(),
            "Sun, 22 Nov 2026 10:00:00 GMT"
        );
        assert_eq!(r.content_type, "text/plain; charset=utf-8");
        assert_eq!(r.len_value, "5");
        let none = Representation::new("abc123", "not a date", "x", 0);
        assert!(none.validators.last_modified.is_none() && none.last_modified_value.is_none());
    }
}
