//! Listing and cursors (reference §2): `list_folder` and its continuation, the latest cursor,
//! and longpoll; a cursor is opaque base64url JSON naming a journal position.

use super::resolve;
use crate::emulator::sharing;
use crate::emulator::state::World;
use crate::emulator::tree::{Namespace, lower};
use crate::emulator::wire::ApiError;
use crate::emulator::{Call, Caller, Emulator, Reply, lock};
use crate::upstream::types::Metadata;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::time::Duration;

/// Page size when the client names none.
const DEFAULT_LIMIT: u64 = 1000;

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

pub(in crate::emulator) fn list_folder(emu: &Emulator, call: &Call) -> Result<Reply, ApiError> {
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

pub(in crate::emulator) fn get_latest_cursor(
    emu: &Emulator,
    call: &Call,
) -> Result<Reply, ApiError> {
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

pub(in crate::emulator) fn list_folder_continue(
    emu: &Emulator,
    call: &Call,
) -> Result<Reply, ApiError> {
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

pub(in crate::emulator) async fn longpoll(emu: &Emulator, call: &Call) -> Result<Reply, ApiError> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
