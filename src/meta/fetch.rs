//! Asking Dropbox: a lookup's miss or revalidation (`get_metadata`, or `list_folder` and its
//! continuations for a folder), stale answers when Dropbox fails, refreshes behind an
//! `UPDATING` answer, and "not found" read from a fresh listing of the parent.

use super::{Entry, Listing, Looked, MetaCache, Source, State, entry, lock};
use crate::account::Account;
use crate::upstream::error::UpstreamError;
use crate::upstream::types::Metadata;
use std::sync::Arc;

impl MetaCache {
    /// "Not found", if a fresh listing of `lower`'s parent folder (in L1, else the store) says
    /// so: the name is not among its entries, or the parent is a file or missing. Derived each
    /// time, never stored: the listing is the fact.
    pub(super) async fn absent_by_parent(
        &self,
        account: &Account,
        lower: &str,
    ) -> Option<Arc<Entry>> {
        let (parent, name) = lower.rsplit_once('/')?;
        let key = Self::key(account, parent);
        let cached = lock(&self.l1).peek(&key).cloned();
        let entry = match cached {
            Some(e) => e,
            None => self.load(&key).await?,
        };
        // Vouched for by the feed, or (TTLs only) confirmed within the TTL of a "not found":
        // an answer derived from the listing is never older than Dropbox's own would be kept.
        let fresh = match self.feed_since(account) {
            Some(since) => entry.checked_ms >= since,
            None => entry.is_fresh(self.fresh.negative_ttl.min(self.ttl(&entry))),
        };
        if !fresh {
            return None;
        }
        let absent = match &entry.state {
            State::Folder(listing) => !listing.entries.iter().any(|m| {
                m.name().to_lowercase() == name
                    || m.path_lower().and_then(|p| p.rsplit('/').next()) == Some(name)
            }),
            State::File(_) | State::Missing => true,
        };
        absent.then(|| {
            let mut missing = Entry::new(State::Missing);
            missing.checked_ms = entry.checked_ms;
            Arc::new(missing)
        })
    }

    /// Serves `entry` now (UPDATING) and refreshes it in the background, once however many
    /// requests ask meanwhile (they join the same flight).
    pub(super) fn update_behind(
        self: &Arc<Self>,
        account: &Arc<Account>,
        display: &str,
        lower: &str,
        entry: Arc<Entry>,
    ) -> Looked {
        let key = Self::key(account, lower);
        let running = self.flights.contains(&key);
        if !running {
            let me = self.clone();
            let account = account.clone();
            let display = display.to_owned();
            let stale = entry.clone();
            self.behind(async move {
                let generation = account.feed.generation();
                let refreshed = me
                    .flights
                    .run(
                        &key,
                        me.fetch_or_stale(&account, &display, &key, Some(stale), generation),
                    )
                    .await;
                if let Err(e) = refreshed {
                    tracing::warn!(error = %e, "background refresh failed");
                }
            });
        }
        Looked {
            entry,
            source: Source::Updating,
        }
    }

    /// Asks Dropbox; when Dropbox fails, serves `stale` if it was confirmed recently enough.
    /// The answer is cached unless the account's feed changed something since `generation`
    /// (the answer may predate that change).
    pub(super) async fn fetch_or_stale(
        &self,
        account: &Account,
        display: &str,
        key: &str,
        stale: Option<Arc<Entry>>,
        generation: u64,
    ) -> Result<Looked, Arc<UpstreamError>> {
        let started = entry::now_ms();
        match self.fetch(account, display, stale.as_deref()).await {
            Ok((mut entry, source)) => {
                // Confirmed as of the question, not the answer: a change the feed reports
                // meanwhile is newer than this.
                entry.checked_ms = started;
                let entry = Arc::new(entry);
                if account.feed.generation() == generation
                    && let Err(e) = self.save(key, entry.clone()).await
                {
                    tracing::warn!(error = %e, "cannot write a metadata entry to the store");
                }
                Ok(Looked { entry, source })
            }
            Err(e) if e.is_outage() => match stale {
                Some(entry)
                    if !matches!(entry.state, State::Missing)
                        && entry.is_fresh(self.fresh.stale_if_error) =>
                {
                    tracing::warn!(error = %e, "Dropbox failed; serving stale metadata");
                    Ok(Looked {
                        entry,
                        source: Source::Stale,
                    })
                }
                _ => Err(Arc::new(e)),
            },
            Err(e) => Err(Arc::new(e)),
        }
    }

    /// Asks Dropbox, revalidating `stale` when it can.
    pub(super) async fn fetch(
        &self,
        account: &Account,
        display: &str,
        stale: Option<&Entry>,
    ) -> Result<(Entry, Source), UpstreamError> {
        let path = account.dropbox_path(display);
        let path_lower = path.to_lowercase();
        // A stale listing: only what changed since its cursor.
        if let Some(Entry {
            state: State::Folder(listing),
            ..
        }) = stale
        {
            match self.changes(account, &listing.cursor).await {
                Ok((deltas, cursor)) => {
                    let deltas = account.place(deltas, &path);
                    if let Some(updated) = listing.apply(&path_lower, &deltas, cursor) {
                        let source = if updated.tag == listing.tag {
                            Source::Revalidated
                        } else {
                            Source::Dropbox
                        };
                        return Ok((Entry::new(State::Folder(updated)), source));
                    }
                }
                // Cursor reset, folder gone or replaced: look again from scratch.
                Err(UpstreamError::Reset | UpstreamError::NotFound | UpstreamError::NotFolder) => {}
                Err(e) => return Err(e),
            }
        }
        // The root of a Dropbox has no metadata (None): list it directly.
        let folder = match account.metadata(&self.dropbox, &path).await {
            Ok(Some(Metadata::File(f))) => {
                let unchanged = matches!(stale,
                    Some(Entry { state: State::File(old), .. }) if old.rev == f.rev);
                let source = if unchanged {
                    Source::Revalidated
                } else {
                    Source::Dropbox
                };
                return Ok((Entry::new(State::File(f)), source));
            }
            Ok(Some(Metadata::Folder(f))) => Some(f),
            Ok(None) => None,
            Ok(Some(Metadata::Deleted(_))) | Err(UpstreamError::NotFound) => {
                return Ok((Entry::new(State::Missing), Source::Dropbox));
            }
            Err(e) => return Err(e),
        };
        let first = match account.list_folder(&self.dropbox, &path).await {
            Ok(r) => r,
            // Deleted or replaced between the two calls.
            Err(UpstreamError::NotFound | UpstreamError::NotFolder) => {
                return Ok((Entry::new(State::Missing), Source::Dropbox));
            }
            Err(e) => return Err(e),
        };
        let mut entries = first.entries;
        let mut cursor = first.cursor;
        if first.has_more {
            let (more, last) = self.changes(account, &cursor).await?;
            entries.extend(more);
            cursor = last;
        }
        let entries = account.place(entries, &path);
        let listing = Listing::new(folder, &path_lower, entries, cursor);
        Ok((Entry::new(State::Folder(listing)), Source::Dropbox))
    }

    /// Every entry `list_folder/continue` has after `cursor`, following `has_more`.
    pub(super) async fn changes(
        &self,
        account: &Account,
        cursor: &str,
    ) -> Result<(Vec<Metadata>, String), UpstreamError> {
        let mut entries = Vec::new();
        let mut cursor = cursor.to_owned();
        loop {
            let page = self
                .dropbox
                .list_folder_continue(&account.tokens, &cursor)
                .await?;
            entries.extend(page.entries);
            cursor = page.cursor;
            if !page.has_more {
                return Ok((entries, cursor));
            }
        }
    }
}
