//! `files/*` routes: listing and cursors (reference §2), metadata, download and temporary
//! links (§3), and the writes tests and users change content with.

mod download;
mod listing;
mod write;

pub(super) use download::{
    download, file_download, get_metadata, get_temporary_link, temporary_link_get,
};
pub(super) use listing::{get_latest_cursor, list_folder, list_folder_continue, longpoll};
pub(super) use write::{create_folder, delete, move_v2, upload};

use super::Call;
use super::state::Account;
use super::tree::lower;
use super::wire::ApiError;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emulator::state::AccountSpec;
    use crate::emulator::tree::WriteMode;

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
