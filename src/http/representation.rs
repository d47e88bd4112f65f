//! What a file's answers say of it whatever the request: its strong validator, its
//! modification date, its media type and length, each ready as a header value. Built once per
//! cached entry (`meta::Entry::representation`), so a hit formats nothing.

use super::conditional::Validators;
use super::etag::EntityTag;
use hyper::HeaderMap;
use hyper::header::{
    ACCEPT_RANGES, CONTENT_LENGTH, CONTENT_TYPE, ETAG, HeaderValue, LAST_MODIFIED,
};

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
    /// The head of a 200 of the whole body, less what each answer sets itself
    /// (`Cache-Control`, `X-Cache-Status`, `X-Request-Id`): made once and cloned per answer.
    /// A clone copies five headers; inserting them one by one hashed each name again, a tenth
    /// of a 1 KiB hit's instructions.
    pub whole_head: HeaderMap,
}

/// Headers a whole file's 200 carries: its five, `Cache-Control`, `X-Cache-Status`,
/// `X-Request-Id`, and some to spare (CORS, `Vary`).
const WHOLE_ANSWER_HEADERS: usize = 12;

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
            whole_head: HeaderMap::new(),
        }
        .with_whole_head()
    }

    /// Fills `whole_head` from the fields.
    fn with_whole_head(mut self) -> Representation {
        // Room for what the answer adds: a clone keeps the index's size, so no answer grows
        // it (growing it cost more than the inserts saved). The clone is what is kept: its
        // list has room for these five only (some 600 bytes an entry, not 1.4 KB).
        let mut h = HeaderMap::with_capacity(WHOLE_ANSWER_HEADERS);
        h.insert(ETAG, self.etag_value.clone());
        h.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        if let Some(lm) = &self.last_modified_value {
            h.insert(LAST_MODIFIED, lm.clone());
        }
        h.insert(CONTENT_TYPE, self.content_type.clone());
        h.insert(CONTENT_LENGTH, self.len_value.clone());
        self.whole_head = h.clone();
        self
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
            whole_head: HeaderMap::new(),
        }
        .with_whole_head()
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
        // A whole 200's head, in one piece, from the same values.
        let head: Vec<_> = r.whole_head.iter().map(|(k, v)| (k.as_str(), v)).collect();
        assert_eq!(
            head,
            [
                ("etag", &r.etag_value),
                ("accept-ranges", &HeaderValue::from_static("bytes")),
                ("last-modified", r.last_modified_value.as_ref().unwrap()),
                ("content-type", &r.content_type),
                ("content-length", &r.len_value),
            ]
        );
        let none = Representation::new("abc123", "not a date", "x", 0);
        assert!(none.validators.last_modified.is_none() && none.last_modified_value.is_none());
        assert!(!none.whole_head.contains_key(LAST_MODIFIED));
        // A coding's has its own tag and length.
        let br = r.encoded("br", 3);
        assert_eq!(br.whole_head[ETAG], "\"abc123-br\"");
        assert_eq!(br.whole_head[CONTENT_LENGTH], "3");
    }
}
