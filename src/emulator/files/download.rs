//! Metadata, downloads and temporary links (reference §3): `get_metadata`, `download`,
//! `get_temporary_link` and the link's own unauthenticated `GET`.

use super::{resolve, user};
use crate::emulator::body::{self, Download};
use crate::emulator::state::TempLink;
use crate::emulator::tree::Content;
use crate::emulator::wire::ApiError;
use crate::emulator::{Call, Emulator, Reply, lock};
use crate::http::Body;
use crate::upstream::json::to_header_safe;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::json;
use std::time::{Duration, Instant};

/// Temporary links live four hours.
const TEMP_LINK_LIFE: Duration = Duration::from_secs(4 * 3600);

pub(in crate::emulator) fn get_metadata(emu: &Emulator, call: &Call) -> Result<Reply, ApiError> {
    let account = user(call)?;
    let path = call.arg.path("path", false)?;
    let include_deleted = call.arg.bool("include_deleted", false)?;
    let world = emu.world();
    let a = &world.accounts[account];
    let key = resolve(a, path, "path")?;
    if let Some(node) = a.ns.get(&key) {
        return Ok(Reply::Json(json!(node.metadata())));
    }
    match a.ns.tombstone(&key) {
        Some(d) if include_deleted => Ok(Reply::Json(json!(d))),
        _ => Err(ApiError::lookup("path", "not_found")),
    }
}

/// A file revision's download: strong ETag from the rev, bytes as octet-stream.
pub(in crate::emulator) fn file_download(
    content: Content,
    size: u64,
    rev: &str,
    result: Option<String>,
) -> Download {
    Download {
        content,
        size,
        result,
        etag: format!("\"{rev}\""),
        content_type: "application/octet-stream",
    }
}

pub(in crate::emulator) fn download(emu: &Emulator, call: &Call) -> Result<Reply, ApiError> {
    let account = user(call)?;
    let path = call.arg.path("path", false)?;
    let rev = call.arg.opt_str("rev")?;
    let world = emu.world();
    let a = &world.accounts[account];
    let key = resolve(a, path, "path")?;
    let node =
        a.ns.get(&key)
            .ok_or_else(|| ApiError::lookup("path", "not_found"))?;
    let meta = node
        .file_metadata()
        .ok_or_else(|| ApiError::lookup("path", "not_file"))?;
    if rev.is_some_and(|r| r != meta.rev) {
        return Err(ApiError::lookup("path", "not_found"));
    }
    let content = a.ns.content(node).expect("a file has content");
    let result = to_header_safe(&meta);
    Ok(Reply::Download(file_download(
        content,
        meta.size,
        &meta.rev,
        Some(result),
    )))
}

pub(in crate::emulator) fn get_temporary_link(
    emu: &Emulator,
    call: &Call,
) -> Result<Reply, ApiError> {
    let account = user(call)?;
    let path = call.arg.path("path", false)?;
    let mut world = emu.world();
    let a = &world.accounts[account];
    let key = resolve(a, path, "path")?;
    let node =
        a.ns.get(&key)
            .ok_or_else(|| ApiError::lookup("path", "not_found"))?;
    let meta = node
        .file_metadata()
        .ok_or_else(|| ApiError::lookup("path", "not_file"))?;
    let link_key = crate::emulator::state::secret(24);
    let now = Instant::now();
    world.temp_links.retain(|_, t| t.expires > now);
    world.temp_links.insert(
        link_key.clone(),
        TempLink {
            account,
            node_id: meta.id.clone(),
            expires: now + TEMP_LINK_LIFE,
        },
    );
    let link = format!("{}/temporary_link/{link_key}", call.base_url);
    Ok(Reply::Json(json!({"metadata": meta, "link": link})))
}

/// `GET /temporary_link/<key>`: the file's bytes, no auth, Content-Type from its name.
pub(in crate::emulator) fn temporary_link_get(
    emu: &Emulator,
    req: &Request<Incoming>,
) -> Response<Body> {
    let gone = |why: &str| crate::emulator::wire::text(StatusCode::GONE, why.to_owned());
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return crate::emulator::wire::text(StatusCode::METHOD_NOT_ALLOWED, "GET or HEAD".into());
    }
    let key = req.uri().path().trim_start_matches("/temporary_link/");
    lock(&emu.inner.log).record("temporary_link", "-");
    let dl = {
        let world = emu.world();
        let Some(t) = world.temp_links.get(key) else {
            return crate::emulator::wire::text(StatusCode::NOT_FOUND, "Not Found".into());
        };
        if t.expires <= Instant::now() {
            return gone("This link has expired.");
        }
        let ns = &world.accounts[t.account].ns;
        let Some(node) = ns.by_id(&t.node_id) else {
            return gone("The file is gone.");
        };
        let meta = node
            .file_metadata()
            .expect("temporary links point at files");
        let mut dl = file_download(
            ns.content(node).expect("a file"),
            meta.size,
            &meta.rev,
            None,
        );
        dl.content_type = mime_guess::from_path(&meta.name)
            .first_raw()
            .unwrap_or("application/octet-stream");
        dl
    };
    let fault = lock(&emu.inner.faults).draw("temporary_link", true);
    body::respond(dl, req.headers(), fault)
}
