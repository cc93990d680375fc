//! DiskKv behaves exactly as KvStore: the same outcome for every request,
//! the same snapshot bytes, and each restores from the other's snapshot.
//! Seeded; `KV_DISK_SEED=n` replays one seed.

mod common;

use common::{drain, seeds, Scratch, SeedGuard, Workload};
use core_kv::{KvStore, LogIndex, StateMachine};
use kv_disk::{DiskKv, Options};

const SEEDS: u64 = 12;
const OPS: u64 = 1500;

fn run(seed: u64) {
    let _guard = SeedGuard {
        seed,
        test: "same_as_kvstore",
    };
    let dir = Scratch::new("same");
    let mut work = Workload::new(seed, 1 + seed % 30, 1 + (seed % 6) as usize);
    let durable_every = 1 + work.rng().below(50);
    let mut mem = KvStore::new();
    let mut disk = DiskKv::open_with(
        dir.file("kv.redb"),
        Options {
            durable_every,
            ..Options::default()
        },
    )
    .unwrap();
    // A capture taken mid-run, drained later: it must read as the state
    // at the capture, not as it is when drained.
    let mut capture = None;
    for i in 1..=OPS {
        let req = work.next();
        let want = mem.apply(&req);
        let got = StateMachine::apply(&mut disk, LogIndex(i), &req);
        assert_eq!(got, want, "seed {seed}, entry {i}: {req:?}");
        assert_eq!(disk.last_applied(), Some(LogIndex(i)));
        if req.op.is_read_only() {
            assert_eq!(disk.query(&req), mem.read(&req.op));
        }
        // Batches of random length, as the replica hands them.
        if work.rng().below(4) == 0 || i % 500 == 0 || i == OPS / 2 || i == OPS {
            disk.applied_batch();
        }
        if i == OPS / 2 {
            // As the replica does before a capture.
            disk.make_durable();
            capture = Some((disk.snapshot(), mem.to_snapshot()));
        }
        if i % 500 == 0 {
            disk.make_durable();
            assert_eq!(
                drain(disk.snapshot()),
                mem.to_snapshot(),
                "seed {seed}, entry {i}"
            );
        }
    }
    let (reader, at_capture) = capture.unwrap();
    assert_eq!(drain(reader), at_capture, "seed {seed}: the capture's view");
    assert_eq!(disk.len().unwrap(), mem.len() as u64);
    assert_eq!(disk.sessions().unwrap(), mem.sessions() as u64);
    assert_eq!(disk.duplicates().unwrap(), mem.duplicates());

    // Each restores from the other's snapshot.
    disk.make_durable();
    let bytes = drain(disk.snapshot());
    assert_eq!(bytes, mem.to_snapshot(), "seed {seed}");
    assert_eq!(KvStore::from_snapshot(&bytes).unwrap(), mem);
    let mut other = DiskKv::open(dir.file("other.redb")).unwrap();
    other
        .restore_at(LogIndex(OPS), &mut mem.to_snapshot().as_slice())
        .unwrap();
    assert_eq!(drain(other.snapshot()), mem.to_snapshot(), "seed {seed}");
    assert_eq!(other.applied_index(), Some(LogIndex(OPS)));
    // And both go on alike from there.
    for i in OPS + 1..=OPS + 200 {
        let req = work.next();
        assert_eq!(
            other.apply(LogIndex(i), &req),
            mem.apply(&req),
            "seed {seed}"
        );
        other.applied_batch();
    }
    other.make_durable();
    assert_eq!(drain(other.snapshot()), mem.to_snapshot(), "seed {seed}");
}

#[test]
fn disk_and_memory_stores_answer_and_snapshot_alike() {
    for seed in seeds(SEEDS) {
        run(seed);
    }
}

/// An empty store's snapshot, too.
#[test]
fn empty_stores_snapshot_alike() {
    let dir = Scratch::new("empty");
    let disk = DiskKv::open(dir.file("kv.redb")).unwrap();
    assert_eq!(drain(disk.snapshot()), KvStore::new().to_snapshot());
}
