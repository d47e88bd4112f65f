//! Applying Dropbox's deltas to the cache: a file's new metadata replaces its entry, a deleted
//! path goes with everything under it, and each parent listing takes the delta in place.

use super::Message;
use crate::account::Account;
use crate::meta::MetaCache;
use crate::meta::entry::{Entry, State};
use crate::store::StoreError;
use crate::upstream::types::Metadata;
use std::sync::Arc;

/// `abs` (a Dropbox `path_lower`) relative to the root `root_lower`: `""` for the root.
pub(super) fn relative<'a>(root_lower: &str, abs: &'a str) -> Option<&'a str> {
    let rest = abs.strip_prefix(root_lower)?;
    (rest.is_empty() || rest.starts_with('/')).then_some(rest)
}

/// The folder holding `rel` (`""` is the root), None for the root itself.
pub(super) fn parent_of(rel: &str) -> Option<&str> {
    rel.rfind('/').map(|i| &rel[..i])
}

/// Applies deltas in order to L1 and the store; returns what other instances must drop.
pub(super) async fn apply(
    meta: &MetaCache,
    account: &Account,
    deltas: &[Metadata],
    from: &str,
) -> Result<Message, StoreError> {
    let root = account.root.to_lowercase();
    let mut msg = Message::new(from, &account.alias);
    if deltas.is_empty() {
        return Ok(msg);
    }
    // Lookups under way may have read the old state: they must not cache it.
    account.feed.bump();
    let since = account.feed.since_ms();
    let mut parents: Vec<(String, Vec<Metadata>)> = Vec::new();
    for m in deltas {
        let Some(rel) = m.path_lower().and_then(|abs| relative(&root, abs)) else {
            continue;
        };
        let key = MetaCache::key(account, rel);
        match m {
            // A file replaces anything at its path, children included.
            Metadata::File(f) => {
                meta.save(&key, Arc::new(Entry::new(State::File(f.clone()))))
                    .await?;
                msg.prefixes.push(format!("{key}/"));
            }
            // Gone, with everything under it: remembered as missing (a tombstone, so a slower
            // lookup cannot bring the old entry back).
            Metadata::Deleted(_) => {
                meta.save(&key, Arc::new(Entry::new(State::Missing)))
                    .await?;
                msg.prefixes.push(format!("{key}/"));
            }
            // A folder keeps its children; a listing already cached stays as it is.
            Metadata::Folder(_) => {
                let cached = meta.load(&key).await;
                if !matches!(
                    cached.as_deref(),
                    Some(Entry {
                        state: State::Folder(_),
                        ..
                    })
                ) {
                    meta.forget_key(&key).await?;
                }
            }
        }
        msg.keys.push(key);
        if let Some(parent) = parent_of(rel) {
            match parents.iter_mut().find(|(p, _)| p == parent) {
                Some((_, ds)) => ds.push(m.clone()),
                None => parents.push((parent.to_owned(), vec![m.clone()])),
            }
        }
    }
    msg.prefixes.sort();
    msg.prefixes.dedup();
    meta.forget_prefixes(account, &msg.prefixes).await?;
    // Each parent listing takes its deltas in place (it keeps its own cursor: replaying them
    // on a later revalidation changes nothing).
    for (parent, ds) in parents {
        let key = MetaCache::key(account, &parent);
        let cached = meta.load(&key).await;
        let updated = match cached.as_deref() {
            Some(Entry {
                state: State::Folder(listing),
                checked_ms,
                ..
            }) => listing
                .apply(&format!("{root}{parent}"), &ds, listing.cursor.clone())
                .map(|l| {
                    let mut e = Entry::new(State::Folder(l));
                    // A listing the feed did not vouch for stays unvouched: it may lack a
                    // change from before the feed's start.
                    if *checked_ms < since {
                        e.checked_ms = *checked_ms;
                    }
                    e
                }),
            _ => None,
        };
        match updated {
            Some(entry) => meta.save(&key, Arc::new(entry)).await?,
            None => meta.forget_key(&key).await?,
        }
        msg.keys.push(key);
    }
    msg.keys.sort();
    msg.keys.dedup();
    Ok(msg)
}
