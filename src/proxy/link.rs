//! `GET /s/<link>/<path>`: the path inside a shared link (`account::links` resolves the link
//! to an account whose root is the link), and a folder's answer in the manner of Dropbox's old
//! `/metadata/link`: its metadata and contents as JSON.

use super::ProxyError;
use super::normalize::{self, Target};
use crate::http::representation::content_type;
use crate::meta::Listing;
use crate::upstream::types::{Metadata, thumbnailable};
use serde_json::{Value, json};

/// Splits `/s/<link>/<rest>` into the link's segment and the normalized path inside it.
pub fn target(path: &str) -> Result<(&str, Target), ProxyError> {
    let rest = path.strip_prefix("/s/").ok_or(ProxyError::NotFound)?;
    let (segment, inner) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    if segment.is_empty() {
        return Err(ProxyError::NotFound);
    }
    // SECURITY: the path inside the link goes through the same normalization as any other.
    let target = normalize::normalize(&format!("/s{inner}"))?;
    Ok((segment, target))
}

/// `"222.8 KB"`: sizes as `/metadata/link` wrote them.
fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["bytes", "KB", "MB", "GB", "TB"];
    let mut size = bytes as f64;
    let mut unit = 0;
    while size >= 1024.0 && unit < UNITS.len() - 1 {
        size /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} bytes")
    } else {
        format!("{size:.1} {}", UNITS[unit])
    }
}

/// `"Fri, 28 Aug 2015 18:39:12 +0000"` from a Dropbox timestamp.
fn rfc2822(timestamp: &str) -> Value {
    humantime::parse_rfc3339(timestamp)
        .map(|t| json!(httpdate::fmt_http_date(t).replace(" GMT", " +0000")))
        .unwrap_or(Value::Null)
}

/// The folder `display` of a link, as `/metadata/link` answered: the folder and its
/// `contents`, paths relative to the link.
pub fn json(listing: &Listing, display: &str) -> Vec<u8> {
    let contents: Vec<Value> = listing
        .entries
        .iter()
        .map(|m| {
            let path = format!("{display}/{}", m.name());
            match m {
                Metadata::File(f) => json!({
                    "name": f.name, "path": path, "is_dir": false,
                    "bytes": f.size, "size": human(f.size), "rev": f.rev,
                    "mime_type": content_type(&f.name),
                    "modified": rfc2822(&f.server_modified),
                    "client_mtime": rfc2822(&f.client_modified),
                    "thumb_exists": thumbnailable(&f.name),
                }),
                _ => json!({
                    "name": m.name(), "path": path, "is_dir": true,
                    "bytes": 0, "size": "0 bytes",
                }),
            }
        })
        .collect();
    let name = listing
        .folder
        .as_ref()
        .map(|f| f.name.clone())
        .unwrap_or_default();
    let mut out = serde_json::to_vec_pretty(&json!({
        "name": name,
        "path": if display.is_empty() { "/" } else { display },
        "is_dir": true,
        "root": "link",
        "hash": listing.tag,
        "contents": contents,
    }))
    .expect("a listing serializes");
    out.push(b'\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_split_the_link_from_the_path() {
        let (seg, t) = target("/s/photos/2024/A.jpg").unwrap();
        assert_eq!(
            (seg, t.display(), t.lower()),
            ("photos", "/2024/A.jpg", "/2024/a.jpg")
        );
        let (seg, t) = target("/s/photos").unwrap();
        assert_eq!((seg, t.display()), ("photos", ""));
        assert!(target("/s/photos/../x").is_err());
        assert!(target("/s/photos/%2e%2e/x").is_err());
        assert!(target("/s/").is_err());
    }

    #[test]
    fn sizes_and_dates_as_metadata_link_wrote_them() {
        assert_eq!(human(7), "7 bytes");
        assert_eq!(human(228_147), "222.8 KB");
        assert_eq!(
            rfc2822("2015-08-28T18:39:12Z"),
            json!("Fri, 28 Aug 2015 18:39:12 +0000")
        );
        assert!(thumbnailable("a.JPG") && !thumbnailable("a.txt") && !thumbnailable("jpg"));
    }
}
