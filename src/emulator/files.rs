//! `files/*` routes: listing and cursors (reference §2), metadata, download and temporary
//! links (§3), and the writes tests and users change content with.

use super::body::{self, Download};
use super::sharing;
use super::state::{Account, TempLink, World};
use super::tree::{Content, Namespace, WriteError, WriteMode, lower};
use super::wire::{ApiError, Arg, union_tag};
use super::{Call, Caller, Emulator, Reply, lock};
use crate::http::Body;
use crate::upstream::content_hash::is_content_hash;
use crate::upstream::json::to_header_safe;
use crate::upstream::types::Metadata;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// Page size when the client names none.
const DEFAULT_LIMIT: u64 = 1000;
/// Temporary links live four hours.
const TEMP_LINK_LIFE: Duration = Duration::from_secs(4 * 3600);

/// What a cursor remembers; sent as opaque base64url JSON.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Cursor {
    /// Account index.
    a: usize,
    /// Scope: `path_lower` of the folder, or the path inside a shared link.
    p: String,
    r: bool,
    /// Page size.
    n: u64,
    /// Journal position.
    s: u64,
    /// Namespace epoch (a forced reset bumps it).
    e: u64,
    /// Shared link key, for link listings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    l: Option<String>,
    /// Pending listing page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    g: Option<u64>,
    /// Entries carry paths (the caller owns them).
    o: bool,
}

impl Cursor {
    fn encode(&self) -> String {
        let json = serde_json::to_vec(self).expect("a cursor serialises");
        format!("AAE{}", URL_SAFE_NO_PAD.encode(json))
    }

    fn decode(s: &str) -> Option<Cursor> {
        let raw = URL_SAFE_NO_PAD.decode(s.strip_prefix("AAE")?).ok()?;
        serde_json::from_slice(&raw).ok()
    }
}

fn reset() -> ApiError {
    ApiError::route(json!({".tag": "reset"}))
}

/// The account of a user-auth call (user routes never see another caller).
pub(super) fn user(call: &Call) -> Result<usize, ApiError> {
    call.caller
        .account()
        .ok_or(ApiError::Auth("invalid_access_token"))
}

/// Checks the path rules Dropbox enforces after the pattern: no trailing slash or whitespace,
/// no empty, `.` or `..` components.
fn malformed(rel: &str) -> bool {
    rel.ends_with('/')
        || rel.ends_with(char::is_whitespace)
        || rel
            .split('/')
            .skip(1)
            .any(|c| c.is_empty() || c == "." || c == "..")
}

/// Resolves a path argument (`/p`, `id:…[/rel]`, `rev:…`, `ns:…[/rel]`, `""`) to a
/// `path_lower` in this account, or the LookupError under `tag`.
pub(super) fn resolve(account: &Account, p: &str, tag: &str) -> Result<String, ApiError> {
    let lookup = |what| ApiError::lookup(tag, what);
    let (base, rel) = if p.is_empty() {
        return Ok(String::new());
    } else if p.starts_with('/') {
        (String::new(), p)
    } else if let Some(rest) = p.strip_prefix("id:") {
        let (id, rel) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let node = account
            .ns
            .by_id(&format!("id:{id}"))
            .ok_or_else(|| lookup("not_found"))?;
        (lower(&node.display), rel)
    } else if let Some(rev) = p.strip_prefix("rev:") {
        let node = account.ns.by_rev(rev).ok_or_else(|| lookup("not_found"))?;
        return Ok(lower(&node.display));
    } else if let Some(rest) = p.strip_prefix("ns:") {
        let (ns, rel) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if ns != account.namespace_id() {
            return Err(lookup("not_found"));
        }
        (String::new(), rel)
    } else {
        return Err(lookup("malformed_path"));
    };
    if malformed(rel) {
        return Err(lookup("malformed_path"));
    }
    Ok(format!("{base}{}", lower(rel)))
}

/// A write path: only `/…` (or `ns:` relative) paths, never the root or an id.
fn write_path<'a>(arg: &'a Arg, field: &str, tag: &str) -> Result<&'a str, ApiError> {
    let p = arg.path(field, false)?;
    if !p.starts_with('/') {
        return Err(ApiError::bad_field(
            arg.source,
            field,
            format!("'{p}' did not match pattern '(/(.|[\\r\\n])*)|(ns:[0-9]+(/.*)?)'"),
        ));
    }
    if malformed(p) {
        return Err(ApiError::route(
            json!({".tag": tag, tag: {".tag": "malformed_path"}}),
        ));
    }
    Ok(p)
}

/// Checks that `scope` is a folder (or the root) in `ns`.
fn folder_scope(ns: &Namespace, scope: &str) -> Result<(), ApiError> {
    if scope.is_empty() {
        return Ok(());
    }
    match ns.get(scope) {
        Some(n) if n.is_folder() => Ok(()),
        Some(_) => Err(ApiError::lookup("path", "not_folder")),
        None => Err(ApiError::lookup("path", "not_found")),
    }
}

/// Where a cursor's listing is: (account, folder scope, owner view).
fn cursor_scope(world: &World, c: &Cursor) -> Result<String, ApiError> {
    match &c.l {
        None => Ok(c.p.clone()),
        Some(key) => {
            let link = world
                .links
                .iter()
                .find(|l| &l.key == key)
                .ok_or_else(reset)?;
            let node = world.accounts[link.account]
                .ns
                .by_id(&link.node_id)
                .ok_or_else(reset)?;
            Ok(format!("{}{}", lower(&node.display), c.p))
        }
    }
}

/// A listing entry as a shared-link visitor sees it: no paths.
pub(super) fn without_paths(m: Metadata) -> Metadata {
    match m {
        Metadata::File(mut f) => {
            f.path_lower = None;
            f.path_display = None;
            Metadata::File(f)
        }
        Metadata::Folder(mut f) => {
            f.path_lower = None;
            f.path_display = None;
            Metadata::Folder(f)
        }
        Metadata::Deleted(mut d) => {
            d.path_lower = None;
            d.path_display = None;
            Metadata::Deleted(d)
        }
    }
}

/// One page of entries; the rest is stashed behind the returned cursor.
fn page(ns: &mut Namespace, mut entries: Vec<Metadata>, mut cursor: Cursor) -> Reply {
    let limit = cursor.n as usize;
    let has_more = entries.len() > limit;
    cursor.g = if has_more {
        let rest = entries.split_off(limit);
        Some(ns.stash_page(rest))
    } else {
        None
    };
    Reply::Json(json!({"entries": entries, "cursor": cursor.encode(), "has_more": has_more}))
}

/// The listing a `list_folder` / `get_latest_cursor` argument asks for.
fn open_listing(world: &World, call: &Call) -> Result<Cursor, ApiError> {
    let arg = &call.arg;
    let recursive = arg.bool("recursive", false)?;
    let n = arg.u64_in("limit", 1, 2000)?.unwrap_or(DEFAULT_LIMIT);
    let path = arg.path("path", true)?;
    if let Some(link_arg) = arg.sub("shared_link") {
        if recursive {
            return Err(ApiError::bad_field(
                arg.source,
                "recursive",
                "not supported for shared_link",
            ));
        }
        let url = link_arg.str("url")?;
        let password = link_arg.opt_str("password")?;
        let link = sharing::find_link(world, url, password)?;
        let owner = call.caller.account() == Some(link.account);
        if !link.is_folder {
            return Err(ApiError::lookup("path", "not_folder"));
        }
        let rel = if path.is_empty() {
            String::new()
        } else {
            lower(path)
        };
        let c = Cursor {
            a: link.account,
            p: rel,
            r: false,
            n,
            s: 0,
            e: 0,
            l: Some(link.key.clone()),
            g: None,
            o: owner,
        };
        let scope = cursor_scope(world, &c)?;
        folder_scope(&world.accounts[link.account].ns, &scope)?;
        return Ok(c);
    }
    let Caller::User { account, .. } = call.caller else {
        return Err(ApiError::BadInput(
            "app authentication needs \"shared_link\"; use a user token to list your own files"
                .into(),
        ));
    };
    let scope = resolve(&world.accounts[account], path, "path")?;
    folder_scope(&world.accounts[account].ns, &scope)?;
    Ok(Cursor {
        a: account,
        p: scope,
        r: recursive,
        n,
        s: 0,
        e: 0,
        l: None,
        g: None,
        o: true,
    })
}

pub(super) fn list_folder(emu: &Emulator, call: &Call) -> Result<Reply, ApiError> {
    let include_deleted = call.arg.bool("include_deleted", false)?;
    let mut world = emu.world();
    let mut cursor = open_listing(&world, call)?;
    let scope = cursor_scope(&world, &cursor)?;
    let ns = &mut world.accounts[cursor.a].ns;
    cursor.s = ns.seq();
    cursor.e = ns.epoch;
    let mut entries = ns.list(&scope, cursor.r, include_deleted);
    if !cursor.o {
        entries = entries.into_iter().map(without_paths).collect();
    }
    Ok(page(ns, entries, cursor))
}

pub(super) fn get_latest_cursor(emu: &Emulator, call: &Call) -> Result<Reply, ApiError> {
    let world = emu.world();
    let mut cursor = open_listing(&world, call)?;
    let ns = &world.accounts[cursor.a].ns;
    cursor.s = ns.seq();
    cursor.e = ns.epoch;
    Ok(Reply::Json(json!({"cursor": cursor.encode()})))
}

/// Decodes a cursor and checks the caller may use it and the journal can still answer it.
fn open_cursor(world: &World, call: &Call, raw: &str) -> Result<Cursor, ApiError> {
    let c = Cursor::decode(raw).ok_or_else(reset)?;
    let account = world.accounts.get(c.a).ok_or_else(reset)?;
    let caller_ok = match (&call.caller, &c.l) {
        (Caller::User { account, .. }, None) => *account == c.a,
        (Caller::Anonymous, _) | (_, Some(_)) => true,
        (Caller::App, None) => false,
    };
    if !caller_ok || !account.ns.cursor_valid(c.s, c.e) {
        return Err(reset());
    }
    Ok(c)
}

pub(super) fn list_folder_continue(emu: &Emulator, call: &Call) -> Result<Reply, ApiError> {
    let raw = call.arg.str("cursor")?;
    let mut world = emu.world();
    let mut c = open_cursor(&world, call, raw)?;
    if let Some(g) = c.g {
        let rest = world.accounts[c.a].ns.take_page(g).ok_or_else(reset)?;
        return Ok(page(&mut world.accounts[c.a].ns, rest, c));
    }
    let scope = cursor_scope(&world, &c)?;
    let ns = &mut world.accounts[c.a].ns;
    // ListFolderContinueError `path`: the listed folder itself is gone (or is now a file).
    if !scope.is_empty() && !ns.get(&scope).is_some_and(|n| n.is_folder()) {
        return Err(ApiError::lookup("path", "not_found"));
    }
    let mut entries = ns.changes_since(c.s, &scope, c.r);
    if !c.o {
        entries = entries.into_iter().map(without_paths).collect();
    }
    c.s = ns.seq();
    Ok(page(ns, entries, c))
}

pub(super) async fn longpoll(emu: &Emulator, call: &Call) -> Result<Reply, ApiError> {
    let raw = call.arg.str("cursor")?;
    let timeout = call.arg.u64_in("timeout", 30, 480)?.unwrap_or(30);
    let (cursor, scope, mut rx) = {
        let world = emu.world();
        let c = open_cursor(&world, call, raw)?;
        let scope = cursor_scope(&world, &c)?;
        let rx = world.accounts[c.a].changes.subscribe();
        (c, scope, rx)
    };
    let backoff = lock(&emu.inner.faults).longpoll_backoff;
    let answer = |changes: bool| {
        let mut v = json!({ "changes": changes });
        if let Some(b) = backoff {
            v["backoff"] = json!(b);
        }
        Reply::Json(v)
    };
    let jitter = emu.inner.config.longpoll_jitter;
    let jitter = if jitter.is_zero() {
        Duration::ZERO
    } else {
        jitter.mul_f64(rand::random::<f64>())
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(timeout) + jitter;
    loop {
        {
            let world = emu.world();
            let ns = &world.accounts[cursor.a].ns;
            // A reset while waiting: "changes", and continue will answer `reset`.
            if !ns.cursor_valid(cursor.s, cursor.e)
                || ns.has_changes_since(cursor.s, &scope, cursor.r)
            {
                return Ok(answer(true));
            }
        }
        tokio::select! {
            changed = rx.changed() => if changed.is_err() { return Ok(answer(false)) },
            () = tokio::time::sleep_until(deadline) => return Ok(answer(false)),
        }
    }
}

pub(super) fn get_metadata(emu: &Emulator, call: &Call) -> Result<Reply, ApiError> {
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
pub(super) fn file_download(
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

pub(super) fn download(emu: &Emulator, call: &Call) -> Result<Reply, ApiError> {
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

pub(super) fn get_temporary_link(emu: &Emulator, call: &Call) -> Result<Reply, ApiError> {
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
    let link_key = super::state::secret(24);
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
pub(super) fn temporary_link_get(emu: &Emulator, req: &Request<Incoming>) -> Response<Body> {
    let gone = |why: &str| super::wire::text(StatusCode::GONE, why.to_owned());
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return super::wire::text(StatusCode::METHOD_NOT_ALLOWED, "GET or HEAD".into());
    }
    let key = req.uri().path().trim_start_matches("/temporary_link/");
    lock(&emu.inner.log).record("temporary_link", "-");
    let dl = {
        let world = emu.world();
        let Some(t) = world.temp_links.get(key) else {
            return super::wire::text(StatusCode::NOT_FOUND, "Not Found".into());
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

/// The `WriteError` union value of a refused write; storage failures are our 500.
fn write_error_value(e: WriteError) -> Result<Value, ApiError> {
    match e {
        WriteError::Conflict(what) => Ok(json!({".tag": "conflict", "conflict": {".tag": what}})),
        WriteError::NotFound => Ok(json!({".tag": "not_found"})),
        WriteError::IntoItself => Err(ApiError::route(
            json!({".tag": "cant_move_folder_into_itself"}),
        )),
        WriteError::Io(why) => {
            tracing::error!(error = %why, "emulator storage failed");
            Err(ApiError::Server(StatusCode::INTERNAL_SERVER_ERROR))
        }
    }
}

/// A refused write as a route error, the union value nested under `tag`.
fn write_error(tag: &str, e: WriteError) -> ApiError {
    match write_error_value(e) {
        Ok(v) => ApiError::route(json!({".tag": tag, tag: v})),
        Err(e) => e,
    }
}

/// `UploadError.path` is a flattened `UploadWriteFailed {reason: WriteError, upload_session_id}`.
fn upload_error(reason: Value) -> ApiError {
    ApiError::route(json!({".tag": "path", "reason": reason, "upload_session_id": ""}))
}

/// Applies a write to an account's namespace and tells watchers if anything changed.
fn write<T>(
    emu: &Emulator,
    account: usize,
    f: impl FnOnce(&mut Namespace) -> Result<T, ApiError>,
) -> Result<T, ApiError> {
    let mut world = emu.world();
    let before = world.accounts[account].ns.seq();
    let out = f(&mut world.accounts[account].ns)?;
    if world.accounts[account].ns.seq() != before {
        emu.changed(&world, account);
    }
    Ok(out)
}

pub(super) fn upload(emu: &Emulator, call: &Call) -> Result<Reply, ApiError> {
    let account = user(call)?;
    let arg = &call.arg;
    let path = write_path(arg, "path", "path").map_err(|e| match e {
        ApiError::Route(_) => upload_error(json!({".tag": "malformed_path"})),
        other => other,
    })?;
    let mode = match arg.get("mode") {
        None => WriteMode::Add,
        Some(v) => match union_tag(v) {
            Some("add") => WriteMode::Add,
            Some("overwrite") => WriteMode::Overwrite,
            Some("update") => {
                let rev = v
                    .get("update")
                    .and_then(Value::as_str)
                    .ok_or_else(|| ApiError::bad_field(arg.source, "mode", "update needs a rev"))?;
                WriteMode::Update(rev.to_owned())
            }
            _ => return Err(ApiError::bad_field(arg.source, "mode", "unknown tag")),
        },
    };
    let autorename = arg.bool("autorename", false)?;
    arg.bool("mute", false)?;
    arg.bool("strict_conflict", false)?;
    let client_modified = match arg.opt_str("client_modified")? {
        None => None,
        Some(s) => Some(humantime::parse_rfc3339(s).map_err(|_| {
            ApiError::bad_field(
                arg.source,
                "client_modified",
                format!("time data '{s}' does not match format '%Y-%m-%dT%H:%M:%SZ'"),
            )
        })?),
    };
    if let Some(want) = arg.opt_str("content_hash")? {
        if !is_content_hash(want) {
            return Err(ApiError::bad_field(
                arg.source,
                "content_hash",
                "must be 64 hex chars",
            ));
        }
        if crate::upstream::content_hash::content_hash(&call.body) != want {
            return Err(ApiError::route(json!({".tag": "content_hash_mismatch"})));
        }
    }
    let node = write(emu, account, |ns| {
        ns.put_file(path, call.body.clone(), &mode, autorename, client_modified)
            .map_err(|e| match write_error_value(e) {
                Ok(reason) => upload_error(reason),
                Err(e) => e,
            })
    })?;
    Ok(Reply::Json(json!(
        node.file_metadata().expect("uploaded a file")
    )))
}

pub(super) fn delete(emu: &Emulator, call: &Call) -> Result<Reply, ApiError> {
    let account = user(call)?;
    let path = call.arg.path("path", false)?;
    let key = resolve(&emu.world().accounts[account], path, "path_lookup")?;
    let meta = write(emu, account, |ns| {
        ns.delete(&key).map_err(|e| write_error("path_lookup", e))
    })?;
    Ok(Reply::Json(json!({ "metadata": meta })))
}

pub(super) fn move_v2(emu: &Emulator, call: &Call) -> Result<Reply, ApiError> {
    let account = user(call)?;
    let from = call.arg.path("from_path", false)?;
    let to = write_path(&call.arg, "to_path", "to")?;
    let autorename = call.arg.bool("autorename", false)?;
    call.arg.bool("allow_shared_folder", false)?;
    call.arg.bool("allow_ownership_transfer", false)?;
    let from_key = resolve(&emu.world().accounts[account], from, "from_lookup")?;
    let node = write(emu, account, |ns| {
        ns.move_to(&from_key, to, autorename).map_err(|e| match e {
            WriteError::NotFound => ApiError::lookup("from_lookup", "not_found"),
            e => write_error("to", e),
        })
    })?;
    Ok(Reply::Json(json!({ "metadata": node.metadata() })))
}

pub(super) fn create_folder(emu: &Emulator, call: &Call) -> Result<Reply, ApiError> {
    let account = user(call)?;
    let path = write_path(&call.arg, "path", "path")?;
    let autorename = call.arg.bool("autorename", false)?;
    let node = write(emu, account, |ns| {
        ns.create_folder(path, autorename)
            .map_err(|e| write_error("path", e))
    })?;
    // CreateFolderResult.metadata is a plain FolderMetadata: no `.tag`.
    let mut meta = json!(node.metadata());
    meta.as_object_mut().expect("an object").remove(".tag");
    Ok(Reply::Json(json!({ "metadata": meta })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emulator::state::AccountSpec;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let c = Cursor {
            a: 1,
            p: "/x".into(),
            r: true,
            n: 10,
            s: 5,
            e: 9,
            l: None,
            g: Some(3),
            o: true,
        };
        let back = Cursor::decode(&c.encode()).unwrap();
        assert_eq!(
            (back.a, back.p, back.s, back.g),
            (1, "/x".to_owned(), 5, Some(3))
        );
        assert!(Cursor::decode("garbage").is_none());
        assert!(Cursor::decode("AAE!!").is_none());
    }

    #[test]
    fn path_forms_resolve() {
        let spec: AccountSpec = "a".parse().unwrap();
        let mut acct = Account::new(&spec, 0).unwrap();
        let node = acct
            .ns
            .put_file(
                "/Dir/F.txt",
                bytes::Bytes::from_static(b"1"),
                &WriteMode::Add,
                false,
                None,
            )
            .unwrap();
        let dir_id = acct.ns.get("/dir").unwrap().id.clone();
        let rev = node.file().unwrap().rev.clone();
        let ns_id = acct.namespace_id();
        let cases: Vec<(String, Result<&str, &str>)> = vec![
            ("/Dir/F.txt".into(), Ok("/dir/f.txt")),
            ("".into(), Ok("")),
            (node.id.clone(), Ok("/dir/f.txt")),
            (format!("{dir_id}/F.TXT"), Ok("/dir/f.txt")),
            (format!("rev:{rev}"), Ok("/dir/f.txt")),
            (format!("ns:{ns_id}/Dir"), Ok("/dir")),
            ("id:nope".into(), Err("not_found")),
            ("/a/".into(), Err("malformed_path")),
            ("/a/../b".into(), Err("malformed_path")),
            ("/a//b".into(), Err("malformed_path")),
        ];
        for (input, want) in cases {
            let got = resolve(&acct, &input, "path").map_err(|e| match e {
                ApiError::Route(v) => v["path"][".tag"].as_str().unwrap().to_owned(),
                other => format!("{other:?}"),
            });
            assert_eq!(got.as_deref().map_err(|s| s.as_str()), want, "{input}");
        }
    }
}
