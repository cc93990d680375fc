//! Shared by kv-disk's tests: a seeded PRNG, random requests, scratch
//! directories, and the seed to replay a failure with.
#![allow(dead_code)]

use core_kv::{ClientId, ClientRequest, Op, Seq, Version};
use std::path::{Path, PathBuf};

/// splitmix64: small, deterministic, seeded.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The seeds to run: `KV_DISK_SEED` alone if set, else 1..=`count`.
pub fn seeds(count: u64) -> Vec<u64> {
    match std::env::var("KV_DISK_SEED") {
        Ok(s) => vec![s.parse().expect("KV_DISK_SEED is a number")],
        Err(_) => (1..=count).collect(),
    }
}

/// Prints how to replay `seed` if the test panics while it is alive.
pub struct SeedGuard {
    pub seed: u64,
    pub test: &'static str,
}

impl Drop for SeedGuard {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "failing seed {}: replay with KV_DISK_SEED={} cargo test -p kv-disk --release --test {}",
                self.seed, self.seed, self.test
            );
        }
    }
}

/// Random client requests over a few keys and clients: fresh mutations,
/// retries of the latest one, stale older ones, and reads.
pub struct Workload {
    rng: Rng,
    keys: u64,
    /// Per client, the latest request number handed out.
    seqs: Vec<u64>,
}

impl Workload {
    pub fn new(seed: u64, keys: u64, clients: usize) -> Workload {
        Workload {
            rng: Rng::new(seed),
            keys,
            seqs: vec![0; clients],
        }
    }

    pub fn rng(&mut self) -> &mut Rng {
        &mut self.rng
    }

    pub fn next(&mut self) -> ClientRequest {
        let c = self.rng.below(self.seqs.len() as u64) as usize;
        let key = format!("k{}", self.rng.below(self.keys));
        let value = "v".repeat(self.rng.below(40) as usize) + &self.rng.below(1000).to_string();
        let op = match self.rng.below(10) {
            0 | 1 => Op::Get { key },
            2..=4 => Op::Put {
                key,
                value,
                version: Version(self.rng.below(4)),
            },
            5 | 6 => Op::Set { key, value },
            _ => Op::Append { key, value },
        };
        let latest = self.seqs[c];
        let seq = match self.rng.below(10) {
            // A retry of the latest request, or a stale older one.
            0 if latest > 0 => latest,
            1 if latest > 1 => 1 + self.rng.below(latest - 1),
            _ => {
                self.seqs[c] += 1;
                self.seqs[c]
            }
        };
        ClientRequest {
            client: ClientId(c as u64 + 1),
            seq: Seq(seq),
            op,
        }
    }
}

/// A scratch directory, removed when dropped.
pub struct Scratch(PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("kv-disk-{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A snapshot reader drained.
pub fn drain(mut r: impl std::io::Read) -> Vec<u8> {
    let mut bytes = Vec::new();
    r.read_to_end(&mut bytes).unwrap();
    bytes
}
