//! The bookkeeping of the body cache: which blobs exist, their sizes, their order of use, and
//! which are being read. It names victims; it never touches the disk (`disk` deletes them).

use super::handles::Handles;
use super::memory::Memory;
use bytes::Bytes;
use lru::LruCache;
use std::collections::HashMap;
use std::sync::Arc;

/// What the index knows of one blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Blob {
    pub size: u64,
    /// Its bytes were hashed against its name since it was found on disk.
    pub verified: bool,
    /// Seconds since the epoch when its mtime was last set (its last use, kept across restarts).
    pub touched: u64,
}

pub struct Index {
    /// Hashed with foldhash, as the memory tier and the handles (SipHash was a twentieth of a
    /// hit's instructions); the names are content hashes, not chosen by clients.
    lru: LruCache<String, Blob, foldhash::fast::RandomState>,
    /// Bytes of the blobs plus the bytes reserved by fills under way.
    total: u64,
    /// Bytes reserved by fills under way (counted in `total`, never victims).
    reserved: u64,
    max: u64,
    /// Readers per blob; a pinned blob is never named a victim. Foldhash too: every read from
    /// disk pins and unpins (SipHash on its 64-byte name was 3% of a 206's instructions).
    pins: HashMap<Arc<str>, usize, foldhash::fast::RandomState>,
    /// Blobs named victims so far.
    evicted: u64,
    /// Hot small blobs' bytes; a blob leaves it when it leaves the index.
    memory: Memory,
    /// Hot blobs' open files; closed when the blob leaves the index.
    handles: Handles,
    /// Blobs removed or replaced so far: bytes read before a removal are not kept in memory
    /// (the name may stand for other bytes by now).
    removals: u64,
}

impl Index {
    pub fn new(max: u64) -> Index {
        Index {
            lru: LruCache::unbounded_with_hasher(Default::default()),
            total: 0,
            reserved: 0,
            max,
            pins: HashMap::default(),
            evicted: 0,
            memory: Memory::new(0, 0),
            handles: Handles::new(0),
            removals: 0,
        }
    }

    /// Keeps up to `max` hot blobs' files open.
    pub fn with_open_files(mut self, max: usize) -> Index {
        self.handles = Handles::new(max);
        self
    }

    /// The blob's open file, if one is kept (a verified blob's: only those are kept).
    pub fn open_file(&mut self, hash: &str) -> Option<std::sync::Arc<std::fs::File>> {
        self.handles.get(hash)
    }

    /// Keeps a verified blob's file, opened when `removals()` was `since`, open: if no blob was
    /// removed or replaced since (the file may be another's by now) and it is still indexed.
    pub fn keep_open(&mut self, hash: &str, file: std::sync::Arc<std::fs::File>, since: u64) {
        if self.removals == since && self.lru.peek(hash).is_some_and(|b| b.verified) {
            self.handles.put(hash, file);
        }
    }

    /// Files kept open.
    pub fn open_files(&self) -> usize {
        self.handles.len()
    }

    /// Keeps hot blobs up to `object_max` bytes in memory too, within `budget` bytes.
    pub fn with_memory(mut self, budget: u64, object_max: u64) -> Index {
        self.memory = Memory::new(budget, object_max);
        self
    }

    /// The blob's bytes from memory, both marked as just used; None if not held there.
    pub fn in_memory(&mut self, hash: &str) -> Option<(Bytes, &mut Blob)> {
        let bytes = self.memory.get(hash)?;
        Some((bytes, self.lru.get_mut(hash)?))
    }

    /// Whether a blob of `size` bytes is kept in memory once read.
    pub fn memory_takes(&self, size: u64) -> bool {
        self.memory.takes(size)
    }

    /// Blobs removed or replaced so far (see `keep_in_memory`).
    pub fn removals(&self) -> u64 {
        self.removals
    }

    /// Keeps a blob's bytes, read when `removals()` was `since`, in memory: if no blob was
    /// removed or replaced meanwhile and this one is still here, at their size.
    pub fn keep_in_memory(&mut self, hash: &str, bytes: Bytes, since: u64) {
        if self.removals == since
            && self
                .lru
                .peek(hash)
                .is_some_and(|b| b.size == bytes.len() as u64)
        {
            self.memory.put(hash, bytes);
        }
    }

    /// Bytes and blobs held in memory.
    pub fn memory_usage(&self) -> (u64, usize) {
        self.memory.usage()
    }

    /// Bytes accounted.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Bytes reserved by fills under way.
    pub fn reserved(&self) -> u64 {
        self.reserved
    }

    /// Reserves `size` bytes for a fill, evicting unpinned blobs to make room under the cap.
    /// Returns whether it is reserved, and the victims (to delete). When it cannot fit (the
    /// rest is pinned or reserved), nothing is evicted.
    pub fn reserve(&mut self, size: u64) -> (bool, Vec<String>) {
        let pinned: u64 = self
            .pins
            .keys()
            .filter_map(|k| self.lru.peek(&**k).map(|b| b.size))
            .sum();
        if self.reserved + pinned + size > self.max {
            return (false, Vec::new());
        }
        let victims = self.evict(size);
        self.total += size;
        self.reserved += size;
        (true, victims)
    }

    /// Ends a reservation of `size` bytes (its fill ended; a blob it made is inserted apart).
    pub fn release(&mut self, size: u64) {
        let size = size.min(self.reserved);
        self.reserved -= size;
        self.total -= size;
    }

    /// The cap on bytes.
    pub fn max(&self) -> u64 {
        self.max
    }

    /// Blobs evicted since the index was made.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    pub fn len(&self) -> usize {
        self.lru.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lru.is_empty()
    }

    /// Whether the blob is here (its use not counted).
    pub fn contains(&self, hash: &str) -> bool {
        self.lru.contains(hash)
    }

    /// The blob's size, if it is here (its use not counted).
    pub fn size_of(&self, hash: &str) -> Option<u64> {
        self.lru.peek(hash).map(|b| b.size)
    }

    /// The blob, marked as just used.
    pub fn get(&mut self, hash: &str) -> Option<&mut Blob> {
        self.lru.get_mut(hash)
    }

    /// Adds (or replaces) a blob as the most recently used; returns the victims evicted to keep
    /// the total within the cap.
    pub fn insert(&mut self, hash: &str, blob: Blob) -> Vec<String> {
        if let Some(old) = self.lru.put(hash.to_owned(), blob) {
            self.total -= old.size;
            self.gone(hash);
        }
        self.total += blob.size;
        self.evict_except(0, Some(hash))
    }

    /// Adds a blob as the least recently used (for the start-up scan, oldest last).
    pub fn insert_oldest(&mut self, hash: &str, blob: Blob) {
        if let Some(old) = self
            .lru
            .push(hash.to_owned(), blob)
            .filter(|(k, _)| k == hash)
        {
            self.total -= old.1.size;
        }
        self.lru.demote(hash);
        self.total += blob.size;
    }

    pub fn remove(&mut self, hash: &str) -> Option<Blob> {
        let blob = self.lru.pop(hash)?;
        self.total -= blob.size;
        self.gone(hash);
        Some(blob)
    }

    /// The blob `hash` was removed or replaced: its memory copy and open file go with it (only
    /// indexed blobs are in either), and what was read before now is not kept.
    fn gone(&mut self, hash: &str) {
        self.memory.remove(hash);
        self.handles.remove(hash);
        self.removals += 1;
    }

    /// Evicts least recently used, unpinned blobs until `room` more bytes fit under the cap;
    /// returns their names.
    pub fn evict(&mut self, room: u64) -> Vec<String> {
        self.evict_except(room, None)
    }

    /// As `evict`, sparing `except` (a blob just added is never its own victim).
    fn evict_except(&mut self, room: u64, except: Option<&str>) -> Vec<String> {
        let mut victims = Vec::new();
        while self.total + room > self.max {
            let Some(victim) = self
                .lru
                .iter()
                .rev()
                .map(|(k, _)| k)
                .find(|k| !self.pins.contains_key(k.as_str()) && Some(k.as_str()) != except)
                .cloned()
            else {
                break;
            };
            self.remove(&victim);
            victims.push(victim);
        }
        self.evicted += victims.len() as u64;
        victims
    }

    /// Evicts least recently used, unpinned blobs totalling at least `bytes`; returns their
    /// names and how many bytes they freed.
    pub fn evict_bytes(&mut self, bytes: u64) -> (Vec<String>, u64) {
        let before = self.total;
        let max = std::mem::replace(&mut self.max, before.saturating_sub(bytes));
        let victims = self.evict(0);
        self.max = max;
        (victims, before - self.total)
    }

    /// Pins a blob (it is not evicted while pinned); returns its name as the pins keep it,
    /// for the guard that releases the pin (shared: a pin of a pinned blob allocates nothing).
    pub fn pin(&mut self, hash: &str) -> Arc<str> {
        if let Some(n) = self.pins.get_mut(hash) {
            *n += 1;
            let (name, _) = self.pins.get_key_value(hash).expect("just found");
            return name.clone();
        }
        let name: Arc<str> = hash.into();
        self.pins.insert(name.clone(), 1);
        name
    }

    /// Releases a pin; returns victims if the cap was exceeded while it was held.
    pub fn unpin(&mut self, hash: &str) -> Vec<String> {
        if let Some(n) = self.pins.get_mut(hash) {
            *n -= 1;
            if *n == 0 {
                self.pins.remove(hash);
            }
        }
        self.evict(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob(size: u64) -> Blob {
        Blob {
            size,
            verified: true,
            touched: 0,
        }
    }

    #[test]
    fn eviction_keeps_the_cap_in_lru_order() {
        let mut ix = Index::new(100);
        assert!(ix.insert("a", blob(40)).is_empty());
        assert!(ix.insert("b", blob(40)).is_empty());
        ix.get("a"); // a is now more recent than b
        assert_eq!(ix.insert("c", blob(40)), ["b"]);
        assert_eq!(ix.total(), 80);
        assert_eq!(ix.insert("d", blob(70)), ["a", "c"]);
        assert_eq!(ix.total(), 70);
    }

    #[test]
    fn pinned_blobs_are_never_victims() {
        let mut ix = Index::new(100);
        ix.insert("a", blob(60));
        ix.pin("a");
        assert!(
            ix.insert("b", blob(60)).is_empty(),
            "a is read; over the cap for now"
        );
        assert_eq!(ix.total(), 120);
        ix.get("b");
        assert_eq!(ix.unpin("a"), ["a"], "released, the oldest goes");
        assert_eq!(ix.total(), 60);
    }

    #[test]
    fn the_scan_order_and_evicting_for_free_space() {
        let mut ix = Index::new(1000);
        // Scanned newest first: each later one is older.
        ix.insert_oldest("new", blob(10));
        ix.insert_oldest("mid", blob(10));
        ix.insert_oldest("old", blob(10));
        let (victims, freed) = ix.evict_bytes(15);
        assert_eq!(victims, ["old", "mid"]);
        assert_eq!(freed, 20);
        assert_eq!(ix.len(), 1);
    }

    #[test]
    fn reservations_hold_room_under_the_cap() {
        let mut ix = Index::new(100);
        ix.insert("a", blob(30));
        assert_eq!(ix.reserve(50), (true, vec![]));
        // A second fill cannot push the total past the cap, and evicts nothing trying.
        assert_eq!(ix.reserve(60), (false, vec![]));
        assert_eq!((ix.total(), ix.reserved()), (80, 50));
        // Pinned blobs are not room either.
        ix.pin("a");
        assert_eq!(ix.reserve(30), (false, vec![]));
        ix.unpin("a");
        // 20 more fit as things are; 21 only by evicting a.
        assert_eq!(ix.reserve(21), (true, vec!["a".to_owned()]));
        ix.release(21);
        assert_eq!(ix.reserve(50), (true, vec![]));
        assert_eq!(ix.total(), 100);
        // The first fill ends: its blob goes in as its reservation goes out.
        ix.release(50);
        assert!(ix.insert("f1", blob(50)).is_empty());
        assert_eq!((ix.total(), ix.reserved()), (100, 50));
        ix.release(50);
        assert_eq!((ix.total(), ix.reserved()), (50, 0));
    }

    #[test]
    fn a_blob_leaves_memory_when_it_leaves_the_index() {
        let mut ix = Index::new(100).with_memory(60, 40);
        let bytes = |n: usize| Bytes::from(vec![7u8; n]);
        ix.insert("a", blob(30));
        ix.insert("b", blob(30));
        let since = ix.removals();
        ix.keep_in_memory("a", bytes(30), since);
        ix.keep_in_memory("b", bytes(30), since);
        ix.keep_in_memory("gone", bytes(10), since);
        ix.keep_in_memory("a", bytes(29), since);
        assert_eq!(ix.memory_usage(), (60, 2), "only blobs here, at their size");
        assert!(ix.in_memory("a").is_some());
        // Evicted to make room: gone from memory too ("b" is the least recently used).
        let victims = ix.insert("c", blob(50));
        assert_eq!(victims, ["b"]);
        assert_eq!(ix.memory_usage(), (30, 1));
        assert!(ix.in_memory("b").is_none());
        // Removed (purged, found wrong): gone from memory.
        ix.remove("a");
        assert_eq!(ix.memory_usage(), (0, 0));
        // Bytes read before a removal are not kept: the name may stand for others by now.
        ix.insert("a", blob(30));
        ix.keep_in_memory("a", bytes(30), since);
        assert_eq!(ix.memory_usage(), (0, 0));
        ix.keep_in_memory("a", bytes(30), ix.removals());
        assert_eq!(ix.memory_usage(), (30, 1));
        assert!(!ix.memory_takes(41) && ix.memory_takes(40));
    }

    #[test]
    fn a_blob_closes_its_file_when_it_leaves_the_index() {
        let file = || std::sync::Arc::new(tempfile::tempfile().unwrap());
        let mut ix = Index::new(100).with_open_files(8);
        for name in ["a", "b", "c", "d"] {
            ix.insert(name, blob(20));
        }
        ix.insert(
            "unverified",
            Blob {
                verified: false,
                ..blob(10)
            },
        );
        let since = ix.removals();
        for name in ["a", "b", "c", "d", "unverified", "absent"] {
            ix.keep_open(name, file(), since);
        }
        assert_eq!(ix.open_files(), 4, "only indexed, verified blobs");
        ix.remove("a");
        assert!(ix.open_file("a").is_none(), "removed");
        ix.insert("b", blob(20));
        assert!(
            ix.open_file("b").is_none(),
            "replaced: the name may be other bytes"
        );
        ix.insert("big", blob(40));
        assert!(ix.open_file("c").is_none(), "evicted");
        assert!(ix.open_file("d").is_some());
        // A file opened before a removal is not kept (it may be the removed blob's).
        ix.keep_open("big", file(), since);
        assert!(ix.open_file("big").is_none());
        ix.keep_open("big", file(), ix.removals());
        assert!(ix.open_file("big").is_some());
    }
}
