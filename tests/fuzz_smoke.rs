//! The fuzz targets of `fuzz/` (PHP's `$_REQUEST`, `(int)`, `json_encode`,
//! `htmlspecialchars`, each against a simple model) on the stable toolchain:
//! first every committed seed of `fuzz/corpus/`, then inputs from a
//! deterministic generator (seeds mutated, and fresh bytes biased towards the
//! characters each parser cares about) for `FUZZ_SMOKE_SECS` seconds per
//! target (default 2), or for exactly `FUZZ_SMOKE_RUNS` inputs. A failure
//! prints the input; `benches/fuzz.sh` runs the
//! same targets for millions of executions, under libFuzzer when cargo-fuzz
//! can run.

// Shared with the fuzz crate, where these items are its public API.
#[path = "../fuzz/src/lib.rs"]
#[allow(unreachable_pub)]
mod targets;

use std::time::{Duration, Instant};

/// xorshift64*: the same inputs on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Pieces the parsers care about.
const PIECES: &[&[u8]] = &[
    b"0",
    b"1",
    b"9",
    b"00",
    b"+",
    b"-",
    b".",
    b"e",
    b"E",
    b" ",
    b"\t",
    b"\n",
    b"\r",
    b"\x0b",
    b"\x0c",
    b"\0",
    b"&",
    b"=",
    b"%",
    b"%2",
    b"%41",
    b"%C3%A9",
    b"%FF",
    b"+",
    b"[",
    b"]",
    b"[]",
    b"_",
    b"user",
    b"room",
    b"lastId",
    b"message",
    b"'",
    b"\"",
    b"<",
    b">",
    b"/",
    b"\\",
    "\u{e9}".as_bytes(),
    "\u{1F600}".as_bytes(),
    "\u{2028}".as_bytes(),
    b"\x7f",
    b"\xc3",
    b"\xff",
    b"9223372036854775807",
    b"9223372036854775808",
    b"-9223372036854775809",
    b"1e308",
    b"1e309",
    b"0x1A",
    b"inf",
    b"NaN",
];

fn generate(rng: &mut Rng, seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut out = if !seeds.is_empty() && rng.below(2) == 0 {
        seeds[rng.below(seeds.len())].clone()
    } else {
        Vec::new()
    };
    let edits = 1 + rng.below(if out.is_empty() { 24 } else { 4 });
    for _ in 0..edits {
        let at = rng.below(out.len() + 1);
        match rng.below(4) {
            0 if !out.is_empty() => {
                let i = rng.below(out.len());
                out[i] = rng.next() as u8;
            }
            1 if !out.is_empty() => {
                out.remove(at.min(out.len() - 1));
            }
            2 => out.insert(at, rng.next() as u8),
            _ => {
                let p = PIECES[rng.below(PIECES.len())];
                out.splice(at..at, p.iter().copied());
            }
        }
    }
    out.truncate(4096);
    out
}

fn seeds(target: &str) -> Vec<Vec<u8>> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files.iter().map(|f| std::fs::read(f).unwrap()).collect()
}

fn smoke(name: &str) {
    let (_, target) = targets::TARGETS
        .iter()
        .find(|(n, _)| *n == name)
        .expect("a target of that name");
    let secs: f64 = std::env::var("FUZZ_SMOKE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2.0);
    let seeds = seeds(name);
    assert!(!seeds.is_empty(), "no committed seeds for {name}");
    let run = |input: &[u8]| {
        if std::panic::catch_unwind(|| target(input)).is_err() {
            panic!("{name} failed on the input {input:?}");
        }
    };
    for s in &seeds {
        run(s);
    }
    let max_runs: Option<u64> = std::env::var("FUZZ_SMOKE_RUNS")
        .ok()
        .and_then(|s| s.parse().ok());
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ name.len() as u64);
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs_f64(secs);
    let mut runs = 0u64;
    loop {
        match max_runs {
            Some(max) if runs >= max => break,
            None if Instant::now() >= deadline => break,
            _ => {}
        }
        for _ in 0..256 {
            run(&generate(&mut rng, &seeds));
        }
        runs += 256;
    }
    eprintln!(
        "{name}: {} seeds, {runs} generated inputs in {:.1?}",
        seeds.len(),
        t0.elapsed()
    );
}

#[test]
fn php_params() {
    smoke("php_params");
}

#[test]
fn int_cast() {
    smoke("int_cast");
}

#[test]
fn json_string() {
    smoke("json_string");
}

#[test]
fn htmlspecialchars() {
    smoke("htmlspecialchars");
}

#[test]
fn profile_load() {
    smoke("profile_load");
}

#[test]
fn every_target_has_a_smoke_test() {
    let names: Vec<&str> = targets::TARGETS.iter().map(|(n, _)| *n).collect();
    assert_eq!(
        names,
        [
            "php_params",
            "int_cast",
            "json_string",
            "htmlspecialchars",
            "profile_load"
        ]
    );
}
