//! Opening (errors a user can act on, a fast reopen after a clean close)
//! and restoring (a bad snapshot changes nothing).

mod common;

use common::{drain, Scratch, Workload};
use core_kv::{KvStore, LogIndex, StateMachine};
use kv_disk::{DiskKv, Error, Options, FORMAT};
use std::time::{Duration, Instant};

/// A store that applied `n` random requests, and its memory twin.
fn filled(path: &std::path::Path, n: u64) -> (DiskKv, KvStore) {
    let mut work = Workload::new(3, 40, 3);
    let mut kv = DiskKv::open(path).unwrap();
    let mut mem = KvStore::new();
    for i in 1..=n {
        let req = work.next();
        assert_eq!(kv.apply(LogIndex(i), &req), mem.apply(&req));
        kv.applied_batch();
    }
    (kv, mem)
}

#[test]
fn a_corrupt_or_cut_snapshot_leaves_the_state_as_it_was() {
    let dir = Scratch::new("corrupt");
    let (mut kv, mem) = filled(&dir.file("kv.redb"), 300);
    kv.make_durable();
    let before = drain(kv.snapshot());
    let applied = (kv.applied_index(), kv.last_applied());

    let mut good = KvStore::new();
    for (i, k) in ["x", "y", "z"].iter().enumerate() {
        good.apply(&core_kv::ClientRequest {
            client: core_kv::ClientId(9),
            seq: core_kv::Seq(i as u64 + 1),
            op: core_kv::Op::Set {
                key: k.to_string(),
                value: "new".into(),
            },
        });
    }
    let snapshot = good.to_snapshot();
    let mut bad: Vec<Vec<u8>> = (0..snapshot.len())
        .map(|n| snapshot[..n].to_vec())
        .collect();
    bad.push([snapshot.clone(), vec![0]].concat()); // trailing bytes
    bad.push(vec![0xff; 12]); // a varint that overflows
    let mut hostile = postcard::to_allocvec(&(1u64 << 60)).unwrap();
    hostile.extend_from_slice(&[1, b'k', 1, b'v', 0]);
    bad.push(hostile); // claims 2^60 pairs
    bad.push(vec![1, 0xf0, 0xff, 0xff, 0xff, 0x0f, b'k']); // a 4 GiB key, 1 byte of it
    bad.push(vec![1, 2, 0xc3, 0x28, 0, 0, 0, 0]); // a key that is not UTF-8
    for (i, b) in bad.iter().enumerate() {
        assert!(
            KvStore::from_snapshot(b).is_err(),
            "case {i} decodes in memory"
        );
        let err = kv.restore_at(LogIndex(999), &mut b.as_slice());
        assert!(err.is_err(), "case {i}: {b:?} restored");
        assert_eq!(drain(kv.snapshot()), before, "case {i}: {err:?}");
        assert_eq!((kv.applied_index(), kv.last_applied()), applied);
    }
    assert_eq!(drain(kv.snapshot()), mem.to_snapshot());

    // The good one replaces the state, and its index becomes the durable
    // applied index.
    kv.restore_at(LogIndex(999), &mut snapshot.as_slice())
        .unwrap();
    assert_eq!(drain(kv.snapshot()), snapshot);
    assert_eq!(kv.applied_index(), Some(LogIndex(999)));
    drop(kv);
    let kv = DiskKv::open(dir.file("kv.redb")).unwrap();
    assert_eq!(kv.applied_index(), Some(LogIndex(999)));
    assert_eq!(drain(kv.snapshot()), snapshot);
}

#[test]
fn a_clean_close_reopens_fast_with_nothing_to_replay() {
    let dir = Scratch::new("reopen");
    let path = dir.file("kv.redb");
    let (kv, mem) = filled(&path, 3005);
    assert!(
        kv.applied_index() < kv.last_applied(),
        "some applies not yet durable"
    );
    let size = kv.size_on_disk().unwrap().unwrap();
    drop(kv);
    let start = Instant::now();
    let kv = DiskKv::open(&path).unwrap();
    let took = start.elapsed();
    eprintln!("reopened a {size}-byte database in {took:?}");
    assert!(took < Duration::from_secs(2), "{took:?}");
    assert_eq!(kv.applied_index(), Some(LogIndex(3005)));
    assert_eq!(kv.last_applied(), Some(LogIndex(3005)));
    assert_eq!(kv.len().unwrap(), mem.len() as u64);
    assert_eq!(drain(kv.snapshot()), mem.to_snapshot());
}

#[test]
fn opening_a_file_in_use_is_refused() {
    let dir = Scratch::new("inuse");
    let path = dir.file("kv.redb");
    let _kv = DiskKv::open(&path).unwrap();
    let err = DiskKv::open(&path).unwrap_err();
    assert!(matches!(err, Error::InUse { .. }), "{err:?}");
    assert!(err.to_string().contains("in use"), "{err}");
}

#[test]
fn opening_a_file_that_is_not_a_database_is_refused_and_leaves_it_alone() {
    let dir = Scratch::new("garbage");
    let path = dir.file("kv.redb");
    let garbage: Vec<u8> = (0..10_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&path, &garbage).unwrap();
    let err = DiskKv::open(&path).unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. }), "{err:?}");
    assert!(err.to_string().contains("kv.redb"), "{err}");
    eprintln!("{err}");
    assert_eq!(std::fs::read(&path).unwrap(), garbage);
}

#[test]
fn a_database_of_another_format_is_refused_with_both_formats_named() {
    let dir = Scratch::new("format");
    let path = dir.file("kv.redb");
    drop(DiskKv::open(&path).unwrap());
    {
        let db = redb::Database::open(&path).unwrap();
        let tx = db.begin_write().unwrap();
        {
            let meta: redb::TableDefinition<&str, u64> = redb::TableDefinition::new("meta");
            let mut meta = tx.open_table(meta).unwrap();
            meta.insert("format", FORMAT + 1).unwrap();
        }
        tx.commit().unwrap();
    }
    let err = DiskKv::open(&path).unwrap_err();
    assert!(matches!(err, Error::Format { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains(&format!(
            "this database was written by format {}; this build reads format {FORMAT}",
            FORMAT + 1
        )),
        "{msg}"
    );
}

/// Applies become durable every `durable_every`, or at `sync`.
#[test]
fn durability_follows_the_rule() {
    let dir = Scratch::new("rule");
    let mut kv = DiskKv::open_with(
        dir.file("kv.redb"),
        Options {
            durable_every: 10,
            ..Options::default()
        },
    )
    .unwrap();
    let mut work = Workload::new(5, 10, 2);
    for i in 1..=25 {
        kv.apply(LogIndex(i), &work.next());
        kv.applied_batch();
        let want = (i / 10) * 10;
        assert_eq!(kv.applied_index(), (want > 0).then_some(LogIndex(want)));
        assert_eq!(kv.last_applied(), Some(LogIndex(i)));
    }
    assert_eq!(kv.sync().unwrap(), Some(LogIndex(25)));
    assert_eq!(kv.applied_index(), Some(LogIndex(25)));
}
