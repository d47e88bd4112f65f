//! The change journal that cursors read (every change appends the changed paths), and the
//! pages of long listings still to be handed out.

use super::{Namespace, deleted, in_scope};
use crate::upstream::types::Metadata;
use std::collections::HashMap;

/// Journal entries kept before the oldest cursors are answered with `reset`.
const JOURNAL_CAP: usize = 100_000;

impl Namespace {
    /// Can a cursor at `seq` (of `epoch`) still be answered?
    pub fn cursor_valid(&self, seq: u64, epoch: u64) -> bool {
        epoch == self.epoch && seq >= self.floor && seq <= self.seq
    }

    /// The paths under scope changed since `seq`, each in its current state, in change order.
    pub fn changes_since(&self, seq: u64, scope: &str, recursive: bool) -> Vec<Metadata> {
        // Each path once, at the position of its last change.
        let mut last: HashMap<&str, u64> = HashMap::new();
        for (s, path) in self.journal.iter().filter(|(s, _)| *s > seq) {
            if in_scope(path, scope, recursive) {
                last.insert(path, *s);
            }
        }
        let mut order: Vec<(u64, &str)> = last.into_iter().map(|(p, s)| (s, p)).collect();
        order.sort_unstable();
        order
            .into_iter()
            .map(|(_, p)| match self.nodes.get(p) {
                Some(n) => n.metadata(),
                None => self.tombstone(p).unwrap_or_else(|| deleted(p)),
            })
            .collect()
    }

    pub fn has_changes_since(&self, seq: u64, scope: &str, recursive: bool) -> bool {
        self.journal
            .iter()
            .any(|(s, p)| *s > seq && in_scope(p, scope, recursive))
    }

    pub(super) fn record(&mut self, path_lower: String) {
        self.seq += 1;
        self.journal.push_back((self.seq, path_lower));
        while self.journal.len() > JOURNAL_CAP {
            if let Some((s, _)) = self.journal.pop_front() {
                self.floor = s;
            }
        }
    }

    /// Invalidates every cursor (the emulator's forced reset).
    pub fn reset_cursors(&mut self) {
        self.epoch = self.epoch.wrapping_add(1);
        self.pages.clear();
        self.page_order.clear();
    }

    /// Keeps the rest of a long listing for later pages; returns its snapshot id.
    pub fn stash_page(&mut self, rest: Vec<Metadata>) -> u64 {
        const MAX_PAGES: usize = 256;
        let id = self.next_page;
        self.next_page += 1;
        self.pages.insert(id, rest);
        self.page_order.push_back(id);
        while self.page_order.len() > MAX_PAGES {
            if let Some(old) = self.page_order.pop_front() {
                self.pages.remove(&old);
            }
        }
        id
    }

    pub fn take_page(&mut self, id: u64) -> Option<Vec<Metadata>> {
        self.page_order.retain(|p| *p != id);
        self.pages.remove(&id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emulator::tree::{Backing, WriteMode};
    use bytes::Bytes;

    fn ns() -> Namespace {
        Namespace::new(Backing::Memory).unwrap()
    }

    #[test]
    fn journal_reports_changes_in_scope_once_in_order() {
        let mut ns = ns();
        ns.create_folder("/A", false).unwrap();
        let start = ns.seq();
        ns.put_file(
            "/A/x",
            Bytes::from_static(b"1"),
            &WriteMode::Add,
            false,
            None,
        )
        .unwrap();
        ns.put_file("/B", Bytes::from_static(b"1"), &WriteMode::Add, false, None)
            .unwrap();
        ns.put_file(
            "/A/x",
            Bytes::from_static(b"2"),
            &WriteMode::Overwrite,
            false,
            None,
        )
        .unwrap();
        let in_a = ns.changes_since(start, "/a", false);
        assert_eq!(in_a.len(), 1);
        let all = ns.changes_since(start, "", true);
        let names: Vec<_> = all.iter().map(|m| m.name()).collect();
        assert_eq!(names, ["B", "x"]);
        let before_delete = ns.seq();
        ns.delete("/a").unwrap();
        let d = ns.changes_since(before_delete, "", true);
        assert!(d.iter().all(|m| matches!(m, Metadata::Deleted(_))));
        assert_eq!(d.len(), 2, "folder and child: {d:?}");
        assert!(!ns.has_changes_since(ns.seq(), "", true));
    }
}
