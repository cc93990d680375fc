//! Append throughput with group commit: batches of 1, 16 and 256 entries of
//! 256 bytes, one fsync per batch.
//!
//! ```text
//! cargo run --release -p storage --example bench [-- SECONDS_PER_CASE [DIR]]
//! ```
//!
//! DIR defaults to the system temporary directory; point it at the disk the
//! nodes will use, since fsync latency is what this measures.

use core_raft::message::Payload;
use core_raft::{Action, Entry, HardState, LogIndex, Term};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use storage::DiskStorage;

const ENTRY_BYTES: usize = 256;

fn main() {
    let mut args = std::env::args().skip(1);
    let seconds: f64 = args
        .next()
        .map(|s| s.parse().expect("SECONDS_PER_CASE is a number"))
        .unwrap_or(2.0);
    let base: PathBuf = args.next().map_or_else(std::env::temp_dir, PathBuf::from);
    let budget = Duration::from_secs_f64(seconds);

    println!(
        "{:>6} {:>12} {:>10} {:>10} {:>12}",
        "batch", "appends/s", "fsyncs/s", "MiB/s", "us/fsync"
    );
    for batch in [1usize, 16, 256] {
        let dir = base.join(format!("storage-bench-{}-{batch}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (mut disk, _, _) = DiskStorage::open(&dir).expect("open the store");
        disk.persist_batch(&[Action::PersistHardState(HardState {
            term: Term(1),
            ..HardState::default()
        })])
        .expect("write the hard state");

        let mut next = 1u64;
        let mut syncs = 0u64;
        let start = Instant::now();
        while start.elapsed() < budget {
            let entries: Vec<Entry> = (next..next + batch as u64)
                .map(|i| Entry {
                    index: LogIndex(i),
                    term: Term(1),
                    payload: Payload::Command(vec![i as u8; ENTRY_BYTES]),
                })
                .collect();
            next += batch as u64;
            disk.persist_batch(&[Action::PersistEntries(entries)])
                .expect("persist a batch");
            syncs += 1;
        }
        let elapsed = start.elapsed().as_secs_f64();
        let appends = (next - 1) as f64;
        println!(
            "{batch:>6} {:>12.0} {:>10.0} {:>10.1} {:>12.0}",
            appends / elapsed,
            syncs as f64 / elapsed,
            appends * ENTRY_BYTES as f64 / elapsed / (1 << 20) as f64,
            elapsed * 1e6 / syncs as f64,
        );
        drop(disk);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
