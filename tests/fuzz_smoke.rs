//! A short run of every fuzz target on stable Rust: the bodies of `tests/fuzz/fuzz_targets/`
//! (shared from `tests/fuzz/src/lib.rs`) over their seed corpus, every input a fuzzer ever
//! crashed (`tests/fuzz/regressions/<target>/`), and a fixed set of mutations of them. The
//! long runs are cargo-fuzz's (`tests/fuzz/run`, README "Fuzzing").

#[path = "fuzz/src/lib.rs"]
mod targets;

use std::path::Path;

/// Mutations per target: enough to reach past the seeds, quick in a debug build.
const MUTATIONS: usize = 20_000;

/// Inputs under `dir` (none when it does not exist).
fn inputs(dir: &Path) -> Vec<Vec<u8>> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<_> = entries.map(|e| e.unwrap().path()).collect();
    files.sort();
    // A file a running fuzzer removes meanwhile (it reduces its corpus) is passed over.
    files.iter().filter_map(|f| std::fs::read(f).ok()).collect()
}

/// xorshift64*: a fixed, repeatable sequence.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Bytes that parsers care about, for insertion.
const TOKENS: &[&[u8]] = &[
    b"%",
    b"%2F",
    b"%00",
    b"/",
    b"..",
    b"\0",
    b"\n",
    b"\r\n",
    b"\"",
    b"W/",
    b",",
    b"-",
    b"=",
    b"*",
    b":splat",
    b":",
    b"!",
    b"[",
    b"]",
    b"{",
    b"}",
    b"\xff",
    b"\xe2\x82\xac",
    b"99999999999999999999",
];

fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut out = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        match rng.below(5) {
            0 if !out.is_empty() => {
                let i = rng.below(out.len());
                out[i] ^= 1 << rng.below(8);
            }
            1 if !out.is_empty() => {
                let i = rng.below(out.len());
                let n = 1 + rng.below(8);
                out.drain(i..(i + n).min(out.len()));
            }
            2 => {
                let i = rng.below(out.len() + 1);
                let t = TOKENS[rng.below(TOKENS.len())];
                out.splice(i..i, t.iter().copied());
            }
            3 if !out.is_empty() => {
                let i = rng.below(out.len());
                out[i] = rng.next() as u8;
            }
            _ => {
                let i = rng.below(out.len() + 1);
                let n = rng.below(out.len() + 1);
                let copy: Vec<u8> = out.iter().skip(i).take(n).copied().collect();
                out.extend(copy);
            }
        }
    }
    out
}

#[test]
fn every_fuzz_target_survives_its_corpus_and_mutations_of_it() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz");
    for (name, target) in targets::TARGETS {
        let mut seeds = inputs(&root.join("corpus").join(name));
        assert!(!seeds.is_empty(), "{name} has a seed corpus");
        seeds.extend(inputs(&root.join("regressions").join(name)));
        for s in &seeds {
            target(s);
        }
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let started = std::time::Instant::now();
        for _ in 0..MUTATIONS {
            let seed = &seeds[rng.below(seeds.len())];
            target(&mutate(&mut rng, seed));
        }
        println!(
            "{name}: {} seeds, {MUTATIONS} mutations in {:?}",
            seeds.len(),
            started.elapsed()
        );
    }
}

#[test]
fn every_fuzz_target_is_a_cargo_fuzz_binary() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz");
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    for (name, _) in targets::TARGETS {
        let file = root.join("fuzz_targets").join(format!("{name}.rs"));
        let body = std::fs::read_to_string(&file).unwrap();
        assert!(
            body.contains(&format!("dropcache_fuzz::{name}(data)")),
            "{file:?}"
        );
        assert!(
            manifest.contains(&format!("name = \"{name}\"")),
            "{name} in Cargo.toml"
        );
    }
}
