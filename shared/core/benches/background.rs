//! Figures for the background jobs' building blocks (issue 8), each beside its baseline:
//! - compression (`vaultx_core::compression`, 128 KiB blocks) on a real text corpus — the Rust
//!   sources and docs of crates in the local registry cache (`syn`, `serde_json`,
//!   `wasmtime-environ`), up to 8 MiB — and on random bytes: stored ÷ original and MB/s;
//! - content-defined against fixed-size chunking: stored bytes ÷ unique bytes over ten
//!   successively edited versions of a 100 MiB file (eight inserts or deletes of 1–64 bytes at
//!   random offsets per version), FastCDC (`vaultx_core::cdc`) against fixed 5 MiB chunks.
//!
//!   cargo bench -p vaultx-core --bench background

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Instant;
use vaultx_core::{cdc, compression, digest::sha256};

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

fn corpus() -> Vec<u8> {
    let home = std::env::var_os("CARGO_HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(std::env::var("HOME").unwrap()).join(".cargo"));
    let mut files = Vec::new();
    for index in std::fs::read_dir(home.join("registry/src")).expect("the registry cache (run a build first)").flatten() {
        for krate in std::fs::read_dir(index.path()).into_iter().flatten().flatten() {
            let name = krate.file_name().to_string_lossy().into_owned();
            if ["syn-2", "serde_json-1", "wasmtime-environ-48"].iter().any(|p| name.starts_with(p)) {
                let mut stack = vec![krate.path()];
                while let Some(dir) = stack.pop() {
                    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                        let path = entry.path();
                        if path.is_dir() {
                            stack.push(path);
                        } else if path.extension().is_some_and(|e| e == "rs" || e == "md") {
                            files.push(path);
                        }
                    }
                }
            }
        }
    }
    files.sort();
    let mut out = Vec::new();
    for f in files {
        out.extend(std::fs::read(f).unwrap_or_default());
        if out.len() >= 8 << 20 {
            break;
        }
    }
    out.truncate(8 << 20);
    assert!(out.len() > 1 << 20, "the corpus is too small: {} bytes", out.len());
    out
}

fn compress_figures(name: &str, data: &[u8]) {
    let block = 128 * 1024;
    let started = Instant::now();
    let packed: Vec<Option<Vec<u8>>> = data.chunks(block).map(|b| compression::compress_block(b, compression::DEFAULT_MIN_SAVING)).collect();
    let compress_s = started.elapsed().as_secs_f64();
    let stored: usize = packed.iter().zip(data.chunks(block)).map(|(p, b)| p.as_ref().map_or(b.len(), Vec::len)).sum();
    let started = Instant::now();
    for (p, b) in packed.iter().zip(data.chunks(block)) {
        if let Some(p) = p {
            assert_eq!(compression::decompress_block(p, b.len()).unwrap(), b);
        }
    }
    let inflate_s = started.elapsed().as_secs_f64();
    let mb = data.len() as f64 / 1e6;
    let inflate = if packed.iter().any(Option::is_some) { format!("{:>6.0} MB/s", mb / inflate_s) } else { "(nothing compressed)".into() };
    println!(
        "compression  {name:<28} {mb:>6.2} MB  stored/original {:.3}  compress {:>6.0} MB/s  decompress {inflate}",
        stored as f64 / data.len() as f64,
        mb / compress_s,
    );
}

fn stored_bytes(versions: &[Vec<u8>], cut: impl Fn(&[u8]) -> Vec<(usize, usize)>) -> usize {
    let mut seen = HashSet::new();
    let mut stored = 0;
    for v in versions {
        for (offset, len) in cut(v) {
            if seen.insert(sha256(&v[offset..offset + len])) {
                stored += len;
            }
        }
    }
    stored
}

fn main() {
    let text = corpus();
    compress_figures("real text (crate sources)", &text);
    let mut rng = Rng(0x5EED);
    compress_figures("random bytes", &rng.bytes(8 << 20));

    let size = 100 << 20;
    let mut versions = vec![rng.bytes(size)];
    let mut unique = size;
    for _ in 0..9 {
        let mut next = versions.last().unwrap().clone();
        for _ in 0..8 {
            let at = (rng.next() % next.len() as u64) as usize;
            let n = 1 + (rng.next() % 64) as usize;
            if rng.next() % 2 == 0 {
                let insert = rng.bytes(n);
                next.splice(at..at, insert);
                unique += n;
            } else {
                next.drain(at..(at + n).min(next.len()));
            }
        }
        versions.push(next);
    }
    let started = Instant::now();
    let cdc_stored = stored_bytes(&versions, cdc::blocks);
    let cdc_s = started.elapsed().as_secs_f64();
    let fixed = |data: &[u8]| (0..data.len()).step_by(5 << 20).map(|o| (o, (5 << 20).min(data.len() - o))).collect::<Vec<_>>();
    let fixed_stored = stored_bytes(&versions, fixed);
    println!(
        "dedup        10 versions of 100 MiB, 8 edits each: stored/unique  FastCDC {:.3} ({} blocks avg {} KiB, {:.0} MB/s chunk+hash)  fixed 5 MiB {:.3}",
        cdc_stored as f64 / unique as f64,
        cdc::blocks(&versions[0]).len(),
        size / cdc::blocks(&versions[0]).len() / 1024,
        versions.iter().map(Vec::len).sum::<usize>() as f64 / 1e6 / cdc_s,
        fixed_stored as f64 / unique as f64,
    );
}
