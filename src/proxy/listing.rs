//! Folder listings as representations: JSON by default, a plain HTML index for browsers.
//! Both are built only from the cached listing, so equal listings give equal bytes and the
//! listing's digest is a sound strong validator (one per representation).

use crate::http::pattern::SEGMENT;
use crate::http::representation::content_type;
use crate::meta::Listing;
use crate::upstream::types::Metadata;
use percent_encoding::utf8_percent_encode;
use serde_json::{Value, json};

/// Which representation of a listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Html,
}

impl Format {
    /// HTML when the client lists `text/html` in Accept (browsers do); JSON otherwise.
    pub fn from_accept(accept: Option<&str>) -> Format {
        let html = accept.is_some_and(|a| {
            a.split(',').any(|item| {
                let mut params = item.split(';');
                let media = params.next().unwrap_or("").trim();
                let refused = params.any(|p| {
                    p.trim()
                        .strip_prefix("q=")
                        .is_some_and(|q| q.trim().parse::<f32>().is_ok_and(|q| q == 0.0))
                });
                media.eq_ignore_ascii_case("text/html") && !refused
            })
        });
        if html { Format::Html } else { Format::Json }
    }

    /// The media type of this representation.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::Html => "text/html; charset=utf-8",
        }
    }

    /// The entity tag of this representation of a listing.
    pub fn etag(self, listing: &Listing) -> String {
        match self {
            Format::Json => listing.tag.clone(),
            Format::Html => format!("{}-html", listing.tag),
        }
    }
}

/// A Dropbox display path made relative to the published root (`/` for the root itself).
fn under_root(path_display: &str, root_depth: usize) -> String {
    let rest: Vec<&str> = path_display.split('/').skip(1 + root_depth).collect();
    format!("/{}", rest.join("/"))
}

/// How many components the published root has (`""` → 0, `/A/B` → 2).
pub fn depth(root: &str) -> usize {
    root.split('/').filter(|s| !s.is_empty()).count()
}

pub fn entry_path(m: &Metadata, folder_path: &str, root_depth: usize) -> String {
    let display = match m {
        Metadata::File(f) => f.path_display.as_deref(),
        Metadata::Folder(f) => f.path_display.as_deref(),
        Metadata::Deleted(d) => d.path_display.as_deref(),
    };
    match display {
        Some(d) => under_root(d, root_depth),
        None => format!("{}/{}", folder_path.trim_end_matches('/'), m.name()),
    }
}

/// The folder's own path under the root.
pub fn folder_path(listing: &Listing, root_depth: usize) -> String {
    listing
        .folder
        .as_ref()
        .and_then(|f| f.path_display.as_deref())
        .map(|d| under_root(d, root_depth))
        .unwrap_or_else(|| "/".into())
}

/// `{"path", "url", "entries": [{name, path, url, is_dir, size, rev, content_hash,
/// server_modified, mime}]}`; folders have null for the file-only fields. `path` is the
/// Dropbox path under the published root, as Dropbox displays it (not URL-encoded); `url` is
/// the proxy's URL path that serves it (`/<alias>/…`, each segment percent-encoded; a folder's
/// ends in `/`).
pub fn json(listing: &Listing, alias: &str, root_depth: usize) -> Vec<u8> {
    let folder = folder_path(listing, root_depth);
    let entries: Vec<Value> = listing
        .entries
        .iter()
        .map(|m| {
            let path = entry_path(m, &folder, root_depth);
            match m {
                Metadata::File(f) => json!({
                    "name": f.name, "url": href(alias, &path, false), "path": path,
                    "is_dir": false, "size": f.size, "rev": f.rev,
                    "content_hash": f.content_hash, "server_modified": f.server_modified,
                    "mime": content_type(&f.name),
                }),
                _ => json!({
                    "name": m.name(), "url": href(alias, &path, true), "path": path,
                    "is_dir": true, "size": null, "rev": null, "content_hash": null,
                    "server_modified": null, "mime": null,
                }),
            }
        })
        .collect();
    let url = href(alias, &folder, true);
    let mut out =
        serde_json::to_vec_pretty(&json!({ "path": folder, "url": url, "entries": entries }))
            .expect("a listing serializes");
    out.push(b'\n');
    out
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `/<alias>/<path>` with each segment percent-encoded.
pub fn href(alias: &str, path: &str, folder: bool) -> String {
    let mut out = format!("/{alias}");
    for seg in path.split('/').filter(|s| !s.is_empty()) {
        out.push('/');
        out.extend(utf8_percent_encode(seg, SEGMENT));
    }
    if folder {
        out.push('/');
    }
    out
}

/// A plain HTML index with links that work from any URL of the folder.
pub fn html(listing: &Listing, alias: &str, root_depth: usize) -> Vec<u8> {
    let folder = folder_path(listing, root_depth);
    let title = escape(&format!(
        "/{alias}{}",
        if folder == "/" { "/" } else { &folder }
    ));
    let mut out = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Index of {title}</title></head>\n\
         <body><h1>Index of {title}</h1>\n<ul>\n"
    );
    if folder != "/" {
        let parent = &folder[..folder.rfind('/').unwrap_or(0)];
        out.push_str(&format!(
            "<li><a href=\"{}\">../</a></li>\n",
            escape(&href(alias, parent, true))
        ));
    }
    for m in &listing.entries {
        let path = entry_path(m, &folder, root_depth);
        let is_dir = matches!(m, Metadata::Folder(_));
        let label = if is_dir {
            format!("{}/", m.name())
        } else {
            m.name().to_owned()
        };
        let size = match m {
            Metadata::File(f) => format!(" ({} bytes)", f.size),
            _ => String::new(),
        };
        out.push_str(&format!(
            "<li><a href=\"{}\">{}</a>{size}</li>\n",
            escape(&href(alias, &path, is_dir)),
            escape(&label)
        ));
    }
    out.push_str("</ul>\n</body></html>\n");
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_picks_html_only_when_asked() {
        let cases = [
            (None, Format::Json),
            (Some("application/json"), Format::Json),
            (Some("*/*"), Format::Json),
            (
                Some("text/html,application/xhtml+xml,*/*;q=0.8"),
                Format::Html,
            ),
            (Some("TEXT/HTML;q=0.9"), Format::Html),
            (Some("text/html;q=0, application/json"), Format::Json),
        ];
        for (accept, want) in cases {
            assert_eq!(Format::from_accept(accept), want, "{accept:?}");
        }
    }

    #[test]
    fn paths_are_relative_to_the_root_and_links_escaped() {
        assert_eq!(depth(""), 0);
        assert_eq!(depth("/Public/Site"), 2);
        assert_eq!(under_root("/Public/Photos/a b.jpg", 1), "/Photos/a b.jpg");
        assert_eq!(under_root("/Public", 1), "/");
        assert_eq!(
            href("alice", "/Photos/a b&<c>.jpg", false),
            "/alice/Photos/a%20b%26%3Cc%3E.jpg"
        );
        assert_eq!(href("alice", "/", true), "/alice/");
        assert_eq!(href("alice", "/Photos", true), "/alice/Photos/");
        assert_eq!(
            escape("<a href='x'>&\""),
            "&lt;a href=&#39;x&#39;&gt;&amp;&quot;"
        );
    }

    #[test]
    fn json_entries_give_the_dropbox_path_and_the_url_that_serves_it() {
        use crate::upstream::types::{FileMetadata, FolderMetadata};
        let file: FileMetadata = serde_json::from_value(json!({
            "name": "a b&c.jpg", "id": "id:1", "path_display": "/Public/Photos/a b&c.jpg",
            "rev": "0123456789a", "size": 3, "server_modified": "2026-01-01T00:00:00Z",
            "client_modified": "2026-01-01T00:00:00Z", "is_downloadable": true,
        }))
        .unwrap();
        let sub: FolderMetadata = serde_json::from_value(json!({
            "name": "Übersicht", "id": "id:2", "path_display": "/Public/Photos/Übersicht",
        }))
        .unwrap();
        let folder: FolderMetadata = serde_json::from_value(json!({
            "name": "Photos", "id": "id:3", "path_display": "/Public/Photos",
        }))
        .unwrap();
        let listing = Listing {
            folder: Some(folder),
            entries: vec![Metadata::File(file), Metadata::Folder(sub)],
            cursor: String::new(),
            tag: "t".into(),
        };
        let v: Value = serde_json::from_slice(&json(&listing, "alice", 1)).unwrap();
        assert_eq!(v["path"], "/Photos");
        assert_eq!(v["url"], "/alice/Photos/");
        assert_eq!(v["entries"][0]["path"], "/Photos/a b&c.jpg");
        assert_eq!(v["entries"][0]["url"], "/alice/Photos/a%20b%26c.jpg");
        assert_eq!(v["entries"][1]["path"], "/Photos/Übersicht");
        assert_eq!(v["entries"][1]["url"], "/alice/Photos/%C3%9Cbersicht/");
    }
}
