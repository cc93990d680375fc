//! What DiskKv itself costs: one transaction per apply, snapshot streaming,
//! restore, and reopening after a clean close and after a crash.
//!
//! ```text
//! cargo run --release -p kv-disk --example diskkv_bench -- [KEYS] [RUNS] [DURABLE_EVERY]
//! ```
//!
//! Applies KEYS `Set`s of 256-byte values, each to a new key in a random
//! order (defaults: 200,000 keys, 3 runs, a durable commit every 1,000
//! applies), then drains a snapshot, restores it into a second database,
//! copies the file while the last applies are not yet durable (what a
//! crash of the process leaves), closes cleanly, and reopens both.

use core_kv::{ClientId, ClientRequest, LogIndex, Op, Seq, StateMachine};
use kv_disk::{DiskKv, Options};
use std::io::Read;
use std::path::PathBuf;
use std::time::{Duration, Instant};

fn median(name: &str, xs: &mut [Duration], per: Option<u64>) {
    xs.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let m = xs[xs.len() / 2];
    let rate = per.map_or(String::new(), |n| {
        format!("  ({:.0}/s at the median)", n as f64 / m.as_secs_f64())
    });
    println!(
        "  {name:<14} median {:>9.1} ms   range {:.1}..{:.1} ms{rate}",
        ms(m),
        ms(xs[0]),
        ms(xs[xs.len() - 1])
    );
}

fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| a.parse().unwrap())
        .collect();
    let keys = args.first().copied().unwrap_or(200_000);
    let runs = args.get(1).copied().unwrap_or(3);
    let options = Options {
        durable_every: args.get(2).copied().unwrap_or(1000),
        ..Options::default()
    };
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/diskkv-bench");
    let mut order: Vec<u64> = (0..keys).collect();
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for i in (1..order.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        order.swap(i, (x % (i as u64 + 1)) as usize);
    }
    let (mut apply, mut snap, mut restore, mut reopen, mut crashed) =
        (vec![], vec![], vec![], vec![], vec![]);
    let mut sizes = vec![];
    for run in 0..runs {
        eprintln!("run {}/{runs}", run + 1);
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        let mut kv = DiskKv::open_with(root.join("a.redb"), options).unwrap();
        let start = Instant::now();
        for (i, k) in order.iter().enumerate() {
            let req = ClientRequest {
                client: ClientId(1 + (i as u64 % 8)),
                seq: Seq(1 + i as u64 / 8),
                op: Op::Set {
                    key: format!("key{k:010}"),
                    value: "v".repeat(256),
                },
            };
            kv.apply(LogIndex(i as u64 + 1), &req);
            // The replica commits what one step applied: batches of 64
            // stand for a loaded node.
            if i % 64 == 63 {
                kv.applied_batch();
            }
        }
        kv.applied_batch();
        apply.push(start.elapsed());

        let start = Instant::now();
        let mut bytes = Vec::new();
        kv.snapshot().read_to_end(&mut bytes).unwrap();
        snap.push(start.elapsed());
        sizes.push((bytes.len(), kv.size_on_disk().unwrap().unwrap()));

        let mut b = DiskKv::open_with(root.join("b.redb"), options).unwrap();
        let start = Instant::now();
        b.restore_at(LogIndex(keys), &mut bytes.as_slice()).unwrap();
        restore.push(start.elapsed());
        drop(b);

        std::fs::copy(root.join("a.redb"), root.join("crashed.redb")).unwrap();
        let pending = kv.last_applied().unwrap().0 - kv.applied_index().map_or(0, |a| a.0);
        drop(kv);
        let start = Instant::now();
        let kv = DiskKv::open_with(root.join("a.redb"), options).unwrap();
        reopen.push(start.elapsed());
        assert_eq!(kv.applied_index(), Some(LogIndex(keys)));
        drop(kv);
        let start = Instant::now();
        let kv = DiskKv::open_with(root.join("crashed.redb"), options).unwrap();
        crashed.push(start.elapsed());
        eprintln!(
            "  crash copy: {pending} applies not durable; reopened at {:?}",
            kv.applied_index()
        );
    }
    let _ = std::fs::remove_dir_all(&root);
    println!(
        "DiskKv: {keys} applies (Set, 256 B, new key each), a durable commit every {} applies, {runs} runs",
        options.durable_every
    );
    median("apply", &mut apply, Some(keys));
    median("snapshot", &mut snap, Some(keys));
    median("restore", &mut restore, Some(keys));
    median("reopen (clean)", &mut reopen, None);
    median("reopen (crash)", &mut crashed, None);
    let (snapshot, file) = sizes[sizes.len() / 2];
    println!(
        "  snapshot {:.1} MiB, database file {:.1} MiB",
        snapshot as f64 / (1 << 20) as f64,
        file as f64 / (1 << 20) as f64
    );
}
