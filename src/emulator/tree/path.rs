//! Path arithmetic: `path_lower` keys, last components and parents, listing scopes, and
//! autorename's alternative names.

pub fn lower(path: &str) -> String {
    path.to_lowercase()
}

pub fn last_component(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// Parent of a `/`-rooted path; the root's parent is the root (`""`).
pub fn parent(path: &str) -> &str {
    match path.rfind('/') {
        Some(i) => &path[..i],
        None => "",
    }
}

/// Is `path` (lowercase) inside the listing scope `scope` (lowercase, `""` = root)?
pub fn in_scope(path: &str, scope: &str, recursive: bool) -> bool {
    if recursive && path == scope && !scope.is_empty() {
        return true;
    }
    let Some(rest) = path.strip_prefix(scope).and_then(|r| r.strip_prefix('/')) else {
        return false;
    };
    !rest.is_empty() && (recursive || !rest.contains('/'))
}

/// "name (1).ext" style alternatives, as Dropbox's autorename makes them.
pub(super) fn renamed(display: &str, n: u32) -> String {
    let dir = parent(display);
    let name = last_component(display);
    let (stem, ext) = match name.rfind('.') {
        Some(i) if i > 0 => (&name[..i], &name[i..]),
        _ => (name, ""),
    };
    format!("{dir}/{stem} ({n}){ext}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_rules() {
        let cases = [
            ("/a", "", false, true),
            ("/a/b", "", false, false),
            ("/a/b", "", true, true),
            ("/a", "/a", true, true),
            ("/a", "/a", false, false),
            ("/a/b", "/a", false, true),
            ("/ab", "/a", true, false),
            ("/a/b/c", "/a", false, false),
        ];
        for (path, scope, rec, want) in cases {
            assert_eq!(
                in_scope(path, scope, rec),
                want,
                "{path} in {scope} rec={rec}"
            );
        }
    }
}
