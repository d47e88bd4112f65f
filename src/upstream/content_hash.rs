//! Dropbox's `content_hash`: SHA-256 over the concatenated SHA-256 digests of 4 MiB blocks.
//!
//! See reference §7: split into 4,194,304-byte blocks (the last may be shorter), hash each,
//! hash the concatenation of the raw digests, print lowercase hex. An empty file has no blocks.

use sha2::{Digest, Sha256};

/// Dropbox's block size for `content_hash`.
pub const BLOCK_SIZE: usize = 4 * 1024 * 1024;

/// Incremental hasher: feed bytes in chunks of any size, then [`ContentHasher::finish`].
#[derive(Clone, Default)]
pub struct ContentHasher {
    overall: Sha256,
    block: Sha256,
    block_len: usize,
}

impl ContentHasher {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn update(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let take = (BLOCK_SIZE - self.block_len).min(data.len());
            self.block.update(&data[..take]);
            self.block_len += take;
            data = &data[take..];
            if self.block_len == BLOCK_SIZE {
                self.close_block();
            }
        }
    }

    fn close_block(&mut self) {
        let digest = std::mem::take(&mut self.block).finalize();
        self.overall.update(digest);
        self.block_len = 0;
    }

    /// The 64-char lowercase hex `content_hash`.
    pub fn finish(mut self) -> String {
        if self.block_len > 0 {
            self.close_block();
        }
        hex::encode(self.overall.finalize())
    }
}

/// `content_hash` of a whole buffer.
pub fn content_hash(data: &[u8]) -> String {
    let mut h = ContentHasher::new();
    h.update(data);
    h.finish()
}

/// True when `s` has the shape of a content hash (64 lowercase hex chars).
pub fn is_content_hash(s: &str) -> bool {
    // Every byte looked at, no early exit: the compiler checks them 32 at a time (a hit names
    // its blob by this on every request).
    s.len() == 64
        && s.bytes().fold(true, |ok, b| {
            ok & (b.is_ascii_digit() | (b'a'..=b'f').contains(&b))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Vectors from reference §7 (computed with the official Python SDK's `content_hash`).
    #[test]
    fn official_vectors() {
        let cases: [(Vec<u8>, &str); 5] = [
            (
                vec![],
                "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            ),
            (
                b"hello world".to_vec(),
                "bc62d4b80d9e36da29c16c5d4d9f11731f36052c72401a76c23c0fb5a9b74423",
            ),
            (
                vec![b'a'; BLOCK_SIZE],
                "907a506cf5e706bda5c7a29b43c9c65d8344bd2fa2f22339b359c214812af5a1",
            ),
            (
                vec![b'a'; BLOCK_SIZE + 1],
                "5f858b62ccd88447586305aec6fd53c96747cfebf527cbba129a6dfed47d9624",
            ),
            (
                vec![0u8; 2 * BLOCK_SIZE],
                "03ae066c707c588592d9e27aa2444ca98423e0999024f1ceaa11a153790b37de",
            ),
        ];
        for (data, want) in cases {
            assert_eq!(content_hash(&data), want, "len {}", data.len());
        }
    }

    /// The official three-block construction (milky-way-nasa.jpg): block digests → overall.
    #[test]
    fn official_block_construction() {
        let blocks = [
            "2a846fa617c3361fc117e1c5c1e1838c336b6a5cef982c1a2d9bdf68f2f1992a",
            "c68469027410ea393eba6551b9fa1e26db775f00eae70a0c3c129a0011a39cf9",
            "7376192de020925ce6c5ef5a8a0405e931b0a9a8c75517aacd9ca24a8a56818b",
        ];
        let mut overall = Sha256::new();
        for b in blocks {
            overall.update(hex::decode(b).unwrap());
        }
        assert_eq!(
            hex::encode(overall.finalize()),
            "485291fa0ee50c016982abbfa943957bcd231aae0492ccbaa22c58e3997b35e0"
        );
    }

    /// Chunking must not matter, including chunks that straddle a block boundary.
    #[test]
    fn chunking_is_irrelevant() {
        let data: Vec<u8> = (0..(BLOCK_SIZE * 2 + 17))
            .map(|i| (i % 251) as u8)
            .collect();
        let whole = content_hash(&data);
        for chunk in [1usize << 10, BLOCK_SIZE - 1, BLOCK_SIZE, BLOCK_SIZE + 3] {
            let mut h = ContentHasher::new();
            data.chunks(chunk).for_each(|c| h.update(c));
            assert_eq!(h.finish(), whole, "chunk {chunk}");
        }
        // One full block is sha256(sha256(data)), not sha256(data).
        let one = vec![7u8; 10];
        assert_eq!(
            content_hash(&one),
            hex::encode(Sha256::digest(Sha256::digest(&one)))
        );
        assert!(is_content_hash(&whole));
        assert!(!is_content_hash("ABC"));
        // Any one byte wrong, wherever it is, and any other length, is not a hash.
        for i in [0, 31, 32, 62] {
            for bad in ["A", "g", "/", ".", " "] {
                let text = format!("{}{bad}{}", &whole[..i], &whole[i + 1..]);
                assert!(!is_content_hash(&text), "{text}");
            }
            // Non-ASCII, the length kept: "é" is two bytes.
            let text = format!("{}\u{e9}{}", &whole[..i], &whole[i + 2..]);
            assert_eq!(text.len(), 64);
            assert!(!is_content_hash(&text), "{text}");
        }
        assert!(!is_content_hash(&whole[..63]));
        assert!(!is_content_hash(&format!("{whole}0")));
    }
}
