//! The memory tier: hot small blobs' bytes, least recently used dropped first, within a byte
//! budget. Bookkeeping only, owned by the `Index`, so a blob that leaves the index (evicted,
//! purged, found wrong) leaves memory with it.

use bytes::Bytes;
use lru::LruCache;

pub struct Memory {
    lru: LruCache<String, Bytes, foldhash::fast::RandomState>,
    bytes: u64,
    budget: u64,
    /// Blobs up to this size are kept.
    object_max: u64,
}

impl Memory {
    pub fn new(budget: u64, object_max: u64) -> Memory {
        Memory {
            lru: LruCache::unbounded_with_hasher(Default::default()),
            bytes: 0,
            budget,
            object_max: object_max.min(budget),
        }
    }

    /// Whether a blob of `size` bytes would be kept.
    pub fn takes(&self, size: u64) -> bool {
        size <= self.object_max
    }

    /// The blob's bytes, marked as just used.
    pub fn get(&mut self, name: &str) -> Option<Bytes> {
        self.lru.get(name).cloned()
    }

    /// Keeps `bytes` as `name` (if small enough), dropping the least recently used to stay
    /// within the budget.
    pub fn put(&mut self, name: &str, bytes: Bytes) {
        if !self.takes(bytes.len() as u64) {
            return;
        }
        self.bytes += bytes.len() as u64;
        if let Some(old) = self.lru.put(name.to_owned(), bytes) {
            self.bytes -= old.len() as u64;
        }
        while self.bytes > self.budget {
            match self.lru.pop_lru() {
                Some((_, b)) => self.bytes -= b.len() as u64,
                None => break,
            }
        }
    }

    pub fn remove(&mut self, name: &str) {
        if let Some(b) = self.lru.pop(name) {
            self.bytes -= b.len() as u64;
        }
    }

    /// Bytes and blobs held.
    pub fn usage(&self) -> (u64, usize) {
        (self.bytes, self.lru.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_holds_and_the_least_recently_used_go_first() {
        let mut m = Memory::new(10, 4);
        m.put("a", Bytes::from_static(b"aaaa"));
        m.put("b", Bytes::from_static(b"bbbb"));
        assert!(m.get("a").is_some());
        m.put("c", Bytes::from_static(b"cccc"));
        assert_eq!(m.usage(), (8, 2));
        assert!(m.get("b").is_none(), "b was the least recently used");
        assert_eq!(m.get("a").as_deref(), Some(&b"aaaa"[..]));
        m.put("big", Bytes::from_static(b"too big"));
        assert!(m.get("big").is_none(), "over object_max");
        m.put("a", Bytes::from_static(b"AA"));
        assert_eq!(m.usage(), (6, 2), "a replaced, counted once");
        m.remove("a");
        m.remove("nothing");
        assert_eq!(m.usage(), (4, 1));
        let mut none = Memory::new(0, 0);
        none.put("e", Bytes::new());
        none.put("x", Bytes::from_static(b"x"));
        assert!(none.get("x").is_none());
    }
}
