//! Open file handles of hot blobs read from disk (as nginx's `open_file_cache`): a hit on one
//! opens nothing and needs no hop to the blocking pool before its first read. Bookkeeping only,
//! owned by the `Index` as the memory tier is, so a blob that leaves the index (evicted,
//! purged, found wrong, replaced) closes its handle with it; readers share a handle (`pread`).

use lru::LruCache;
use std::fs::File;
use std::sync::Arc;

pub struct Handles {
    lru: LruCache<String, Arc<File>, foldhash::fast::RandomState>,
    max: usize,
}

impl Handles {
    /// At most `max` handles (0: none kept).
    pub fn new(max: usize) -> Handles {
        Handles {
            lru: LruCache::unbounded_with_hasher(Default::default()),
            max,
        }
    }

    /// The blob's handle, marked as just used.
    pub fn get(&mut self, name: &str) -> Option<Arc<File>> {
        self.lru.get(name).cloned()
    }

    /// Keeps `file` open as `name`, closing the least recently used beyond `max`.
    pub fn put(&mut self, name: &str, file: Arc<File>) {
        if self.max == 0 {
            return;
        }
        self.lru.put(name.to_owned(), file);
        while self.lru.len() > self.max {
            self.lru.pop_lru();
        }
    }

    pub fn remove(&mut self, name: &str) {
        self.lru.pop(name);
    }

    pub fn len(&self) -> usize {
        self.lru.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_max_are_kept_and_the_least_recently_used_close_first() {
        let file = || Arc::new(tempfile::tempfile().unwrap());
        let mut h = Handles::new(2);
        h.put("a", file());
        h.put("b", file());
        assert!(h.get("a").is_some());
        h.put("c", file());
        assert_eq!(h.len(), 2);
        assert!(h.get("b").is_none(), "b was the least recently used");
        h.remove("a");
        assert!(h.get("a").is_none());
        let mut none = Handles::new(0);
        none.put("a", file());
        assert_eq!(none.len(), 0);
    }
}
