//! `sharing/*` routes (reference §4): creating links, their metadata, their files; app auth
//! (Basic `app_key:app_secret`) works wherever Dropbox accepts it.

use super::files::{file_download, resolve, user};
use super::state::{Link, World};
use super::tree::{Node, lower};
use super::wire::{ApiError, union_tag};
use super::{Call, Emulator, Reply};
use crate::upstream::json::to_header_safe;
use crate::upstream::types::timestamp;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Value, json};
use std::time::SystemTime;

/// Finds the link a URL names (`/scl/fi/<key>/…?rlkey=…` or `/scl/fo/<key>/…?rlkey=…`) and
/// checks its password and expiry. The error is a `SharedLinkError` tag.
pub(super) fn find_link<'w>(
    world: &'w World,
    url: &str,
    password: Option<&str>,
) -> Result<&'w Link, ApiError> {
    let not_found = || ApiError::route(json!({".tag": "shared_link_not_found"}));
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    let key = ["/scl/fi/", "/scl/fo/"]
        .iter()
        .find_map(|p| path.find(p).map(|i| &path[i + p.len()..]))
        .and_then(|rest| rest.split('/').next())
        .ok_or_else(not_found)?;
    let rlkey = form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "rlkey")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    let link = world
        .links
        .iter()
        .find(|l| l.key == key && l.rlkey == rlkey)
        .ok_or_else(not_found)?;
    if link.expires.is_some_and(|e| e <= SystemTime::now()) {
        return Err(not_found());
    }
    if let Some(want) = &link.password
        && password != Some(want.as_str())
    {
        return Err(ApiError::route(
            json!({".tag": "shared_link_access_denied"}),
        ));
    }
    Ok(link)
}

/// The node a link (plus an optional path inside a folder link) points at.
fn target<'w>(world: &'w World, link: &Link, rel: Option<&str>) -> Result<&'w Node, ApiError> {
    let not_found = || ApiError::route(json!({".tag": "shared_link_not_found"}));
    let ns = &world.accounts[link.account].ns;
    let node = ns.by_id(&link.node_id).ok_or_else(not_found)?;
    match rel {
        None | Some("") => Ok(node),
        Some(_) if !link.is_folder => Err(not_found()),
        Some(r) => ns
            .get(&format!("{}{}", lower(&node.display), lower(r)))
            .ok_or_else(not_found),
    }
}

fn permissions(link: &Link, owner: bool) -> Value {
    let visibility = if link.password.is_some() {
        "password"
    } else {
        "public"
    };
    json!({
        "resolved_visibility": {".tag": visibility},
        "can_revoke": owner,
        "visibility_policies": [],
        "can_set_expiry": false,
        "can_remove_expiry": false,
        "allow_download": true,
        "can_allow_download": true,
        "can_disallow_download": false,
        "allow_comments": true,
        "team_restricts_comments": false,
    })
}

/// `SharedLinkMetadata` with `.tag`; `path_lower` only for the link's owner.
fn link_metadata(link: &Link, node: &Node, owner: bool) -> Value {
    let mut v = json!({
        ".tag": if node.is_folder() { "folder" } else { "file" },
        "url": link.url,
        "id": node.id,
        "name": node.name(),
        "link_permissions": permissions(link, owner),
    });
    if owner {
        v["path_lower"] = json!(lower(&node.display));
    }
    if let Some(e) = link.expires {
        v["expires"] = json!(timestamp(e));
    }
    if let Some(f) = node.file() {
        v["client_modified"] = json!(timestamp(f.client_modified));
        v["server_modified"] = json!(timestamp(f.server_modified));
        v["rev"] = json!(f.rev);
        v["size"] = json!(f.size);
    }
    v
}

fn random_key(len: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    (0..len)
        .map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char)
        .collect()
}

pub(super) fn create(emu: &Emulator, call: &Call) -> Result<Reply, ApiError> {
    let account = user(call)?;
    let path = call.arg.path("path", false)?;
    let settings = call.arg.sub("settings");
    let mut password = None;
    let mut expires = None;
    if let Some(s) = &settings {
        let visibility = s.tag("requested_visibility")?;
        password = s.opt_str("link_password")?.map(str::to_owned);
        if visibility == Some("password") && password.is_none() {
            return Err(ApiError::route(
                json!({".tag": "settings_error", "settings_error": {".tag": "invalid_settings"}}),
            ));
        }
        if let Some(e) = s.opt_str("expires")? {
            expires = Some(humantime::parse_rfc3339(e).map_err(|_| {
                ApiError::bad_field(s.source, "expires", "not a %Y-%m-%dT%H:%M:%SZ timestamp")
            })?);
        }
        if let Some(a) = s.get("audience") {
            union_tag(a)
                .ok_or_else(|| ApiError::bad_field(s.source, "audience", "expected a tag"))?;
        }
    }
    let mut world = emu.world();
    let a = &world.accounts[account];
    let key = resolve(a, path, "path")?;
    let node =
        a.ns.get(&key)
            .ok_or_else(|| ApiError::lookup("path", "not_found"))?
            .clone();
    if let Some(existing) = world
        .links
        .iter()
        .find(|l| l.account == account && l.node_id == node.id)
    {
        return Err(ApiError::route(json!({
            ".tag": "shared_link_already_exists",
            "shared_link_already_exists": {".tag": "metadata",
                "metadata": link_metadata(existing, &node, true)},
        })));
    }
    let link_key = random_key(25);
    let rlkey = random_key(25);
    let url = if node.is_folder() {
        format!(
            "https://www.dropbox.com/scl/fo/{link_key}/{}?rlkey={rlkey}&dl=0",
            random_key(25)
        )
    } else {
        format!(
            "https://www.dropbox.com/scl/fi/{link_key}/{}?rlkey={rlkey}&dl=0",
            utf8_percent_encode(node.name(), NON_ALPHANUMERIC)
        )
    };
    let link = Link {
        key: link_key,
        rlkey,
        url,
        account,
        node_id: node.id.clone(),
        is_folder: node.is_folder(),
        password,
        expires,
    };
    let meta = link_metadata(&link, &node, true);
    world.links.push(link);
    Ok(Reply::Json(meta))
}

pub(super) fn metadata(emu: &Emulator, call: &Call) -> Result<Reply, ApiError> {
    let url = call.arg.str("url")?;
    let rel = call.arg.opt_str("path")?;
    let password = call.arg.opt_str("link_password")?;
    let world = emu.world();
    let link = find_link(&world, url, password)?;
    let node = target(&world, link, rel)?;
    let owner = call.caller.account() == Some(link.account);
    Ok(Reply::Json(link_metadata(link, node, owner)))
}

pub(super) fn file(emu: &Emulator, call: &Call) -> Result<Reply, ApiError> {
    let url = call.arg.str("url")?;
    let rel = call.arg.opt_str("path")?;
    let password = call.arg.opt_str("link_password")?;
    let world = emu.world();
    let link = find_link(&world, url, password)?;
    let node = target(&world, link, rel)?;
    let Some(f) = node.file() else {
        return Err(ApiError::route(json!({".tag": "shared_link_is_directory"})));
    };
    let owner = call.caller.account() == Some(link.account);
    let content = world.accounts[link.account]
        .ns
        .content(node)
        .expect("a file has content");
    let result = to_header_safe(&link_metadata(link, node, owner));
    Ok(Reply::Download(file_download(
        content,
        f.size,
        &f.rev,
        Some(result),
    )))
}

pub(super) fn list(emu: &Emulator, call: &Call) -> Result<Reply, ApiError> {
    let account = user(call)?;
    let path = call.arg.opt_str("path")?;
    call.arg.bool("direct_only", false)?;
    let world = emu.world();
    let a = &world.accounts[account];
    let only = match path {
        Some(p) if !p.is_empty() => Some(resolve(a, p, "path")?),
        _ => None,
    };
    let links: Vec<Value> = world
        .links
        .iter()
        .filter(|l| l.account == account)
        .filter_map(|l| a.ns.by_id(&l.node_id).map(|n| (l, n)))
        .filter(|(_, n)| only.as_ref().is_none_or(|p| &lower(&n.display) == p))
        .map(|(l, n)| link_metadata(l, n, true))
        .collect();
    Ok(Reply::Json(json!({"links": links, "has_more": false})))
}

/// The file a thumbnail `link` resource names, with the `link_metadata` to report.
pub(super) fn link_file(
    world: &World,
    url: &str,
    rel: Option<&str>,
    password: Option<&str>,
) -> Result<(usize, Node, Value), ApiError> {
    let link = find_link(world, url, password)
        .map_err(|_| ApiError::route(json!({".tag": "not_found"})))?;
    let node =
        target(world, link, rel).map_err(|_| ApiError::route(json!({".tag": "not_found"})))?;
    let mut minimal = json!({"url": link.url, "id": node.id});
    if let Some(f) = node.file() {
        minimal["rev"] = json!(f.rev);
    }
    if let Some(r) = rel {
        minimal["path"] = json!(r);
    }
    Ok((link.account, node.clone(), minimal))
}
