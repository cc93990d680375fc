//! The engine comparison behind kv-disk's choice of redb (see
//! ARCHITECTURE.md, "State machine on disk"): what the key/value state
//! machine does to its database, on redb and on fjall.
//!
//! ```text
//! cargo run --release -p kv-disk --features bench-fjall --example engine_bench -- [KEYS] [N] [RUNS]
//! ```
//!
//! * load: batches of 64 upserts of 256-byte values into KEYS keys (each
//!   key once, in a random order), each batch committed non-durably, one
//!   durable commit every N batches (defaults: 1,000,000 keys, N = 16, so
//!   one fsync per 1,024 applies);
//! * point reads: 100,000 random keys, each in its own read view (as a
//!   replica's `query` does);
//! * scan: every key in order from one read view (a snapshot's stream);
//! * reopen: close the database cleanly, open it again, read one key.
//!
//! Each figure is measured RUNS times (default 3) on a fresh database in
//! `target/engine-bench`; the median and the range are printed.

use redb::ReadableDatabase as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const BATCH: usize = 64;
const VALUE_BYTES: usize = 256;
const READS: usize = 100_000;

/// A small deterministic PRNG (splitmix64): the same keys on every engine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

fn key(i: u64) -> String {
    format!("key{i:010}")
}

/// Every key once, in a random order.
fn load_order(keys: u64) -> Vec<u64> {
    let mut order: Vec<u64> = (0..keys).collect();
    let mut rng = Rng(1);
    for i in (1..order.len()).rev() {
        let j = (rng.next() % (i as u64 + 1)) as usize;
        order.swap(i, j);
    }
    order
}

#[derive(Default)]
struct Figures {
    load: Vec<Duration>,
    reads: Vec<Duration>,
    scan: Vec<Duration>,
    reopen: Vec<Duration>,
    size: Vec<u64>,
}

trait Engine {
    const NAME: &'static str;
    fn open(dir: &Path) -> Self;
    /// One batch of upserts, committed durably or not.
    fn upsert(&mut self, batch: &[(String, Vec<u8>)], durable: bool);
    fn get(&self, key: &str) -> Option<usize>;
    /// Bytes of every pair, in key order, from one read view.
    fn scan(&self) -> (u64, u64);
}

struct Redb(redb::Database);

const DATA: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new("data");

impl Engine for Redb {
    const NAME: &'static str = "redb";

    fn open(dir: &Path) -> Self {
        let db = redb::Database::create(dir.join("state.redb")).unwrap();
        Redb(db)
    }

    fn upsert(&mut self, batch: &[(String, Vec<u8>)], durable: bool) {
        let mut tx = self.0.begin_write().unwrap();
        if !durable {
            tx.set_durability(redb::Durability::None).unwrap();
        }
        {
            let mut t = tx.open_table(DATA).unwrap();
            for (k, v) in batch {
                t.insert(k.as_str(), v.as_slice()).unwrap();
            }
        }
        tx.commit().unwrap();
    }

    fn get(&self, key: &str) -> Option<usize> {
        let tx = self.0.begin_read().unwrap();
        let t = tx.open_table(DATA).unwrap();
        t.get(key).unwrap().map(|v| v.value().len())
    }

    fn scan(&self) -> (u64, u64) {
        let tx = self.0.begin_read().unwrap();
        let t = tx.open_table(DATA).unwrap();
        let (mut n, mut bytes) = (0, 0);
        for pair in t.range::<&str>(..).unwrap() {
            let (k, v) = pair.unwrap();
            n += 1;
            bytes += (k.value().len() + v.value().len()) as u64;
        }
        (n, bytes)
    }
}

struct Fjall(fjall::Database, fjall::Keyspace);

impl Engine for Fjall {
    const NAME: &'static str = "fjall";

    fn open(dir: &Path) -> Self {
        let db = fjall::Database::builder(dir.join("state.fjall"))
            .open()
            .unwrap();
        let ks = db
            .keyspace("data", fjall::KeyspaceCreateOptions::default)
            .unwrap();
        Fjall(db, ks)
    }

    fn upsert(&mut self, batch: &[(String, Vec<u8>)], durable: bool) {
        let mut b = self.0.batch();
        if durable {
            b = b.durability(Some(fjall::PersistMode::SyncAll));
        }
        for (k, v) in batch {
            b.insert(&self.1, k.as_str(), v.as_slice());
        }
        b.commit().unwrap();
    }

    fn get(&self, key: &str) -> Option<usize> {
        use fjall::Readable as _;
        let snapshot = self.0.snapshot();
        snapshot.get(&self.1, key).unwrap().map(|v| v.len())
    }

    fn scan(&self) -> (u64, u64) {
        use fjall::Readable as _;
        let snapshot = self.0.snapshot();
        let (mut n, mut bytes) = (0, 0);
        for guard in snapshot.iter(&self.1) {
            let (k, v) = guard.into_inner().unwrap();
            n += 1;
            bytes += (k.len() + v.len()) as u64;
        }
        (n, bytes)
    }
}

fn dir_size(path: &Path) -> u64 {
    let meta = std::fs::metadata(path).unwrap();
    if meta.is_file() {
        return meta.len();
    }
    std::fs::read_dir(path)
        .unwrap()
        .map(|e| dir_size(&e.unwrap().path()))
        .sum()
}

fn run<E: Engine>(dir: &Path, keys: u64, every: usize, figures: &mut Figures) {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap();
    let order = load_order(keys);
    let mut rng = Rng(2);

    let mut db = E::open(dir);
    let start = Instant::now();
    for (i, chunk) in order.chunks(BATCH).enumerate() {
        let batch: Vec<(String, Vec<u8>)> = chunk
            .iter()
            .map(|k| (key(*k), vec![(rng.next() & 0xff) as u8; VALUE_BYTES]))
            .collect();
        let durable = (i + 1) % every == 0 || (i + 1) * BATCH >= order.len();
        db.upsert(&batch, durable);
    }
    figures.load.push(start.elapsed());

    let start = Instant::now();
    let mut found = 0;
    for _ in 0..READS {
        found += db.get(&key(rng.next() % keys)).is_some() as usize;
    }
    figures.reads.push(start.elapsed());
    assert_eq!(found, READS);

    let start = Instant::now();
    let (n, bytes) = db.scan();
    figures.scan.push(start.elapsed());
    assert_eq!(n, keys, "{bytes} bytes");

    drop(db);
    let start = Instant::now();
    let db = E::open(dir);
    assert!(db.get(&key(0)).is_some());
    figures.reopen.push(start.elapsed());
    drop(db);
    figures.size.push(dir_size(dir));
}

fn summary(name: &str, xs: &[Duration], per: Option<(usize, &str)>) {
    let mut ms: Vec<f64> = xs.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    ms.sort_by(f64::total_cmp);
    let median = ms[ms.len() / 2];
    let rate = per.map_or(String::new(), |(n, unit)| {
        format!(
            "  ({:.0} {unit}/s at the median)",
            n as f64 / (median / 1000.0)
        )
    });
    println!(
        "  {name:<8} median {median:>10.1} ms   range {:.1}..{:.1} ms{rate}",
        ms[0],
        ms[ms.len() - 1]
    );
}

fn bench<E: Engine>(root: &Path, keys: u64, every: usize, runs: usize) {
    let mut figures = Figures::default();
    for r in 0..runs {
        eprintln!("{} run {}/{runs}", E::NAME, r + 1);
        run::<E>(&root.join(E::NAME), keys, every, &mut figures);
    }
    println!(
        "{}: {keys} keys, batches of {BATCH} x {VALUE_BYTES} B, a durable commit every {every} batches, {runs} runs",
        E::NAME
    );
    summary("load", &figures.load, Some((keys as usize, "upserts")));
    summary("reads", &figures.reads, Some((READS, "reads")));
    summary("scan", &figures.scan, Some((keys as usize, "pairs")));
    summary("reopen", &figures.reopen, None);
    let mut size = figures.size.clone();
    size.sort();
    println!(
        "  on disk  median {:.1} MiB",
        size[size.len() / 2] as f64 / (1 << 20) as f64
    );
    let _ = std::fs::remove_dir_all(root.join(E::NAME));
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, default: u64| args.get(i).map_or(default, |a| a.parse().unwrap());
    let keys = arg(0, 1_000_000);
    let every = arg(1, 16) as usize;
    let runs = arg(2, 3) as usize;
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/engine-bench");
    bench::<Redb>(&root, keys, every, runs);
    bench::<Fjall>(&root, keys, every, runs);
}
