//! Disk errors (EIO, ENOSPC) on writes and fsyncs, injected through the
//! simulated filesystem: the error names the operation and the file, the
//! write is never acknowledged, and the store never retries an fsync and
//! carries on (on Linux a failed fsync drops the dirty pages and the next one
//! succeeds without writing them: PostgreSQL's "fsyncgate"; the simulated
//! filesystem does the same). Acknowledged writes survive a crash after it.

mod common;

use common::{entries, hard_state, snapshot};
use core_raft::{Action, Durable};
use std::sync::mpsc;
use std::time::Duration;
use storage::simfs::{Fault, SimFs, SimOp, EIO, ENOSPC};
use storage::{Batch, DiskStorage, DiskWriter, StorageError, StorageOptions};

const DIR: &str = "/sim/node-1";
/// Small segments, so that the batches below roll to new ones.
const SMALL: StorageOptions = StorageOptions { segment_bytes: 600 };

/// Batch `n` of a run: entries, with a snapshot in every fourth batch.
fn batch(n: u64) -> Vec<Action> {
    let mut batch = vec![
        hard_state(1, Some(1), n.saturating_sub(1)),
        entries(n, n, 1, 90),
    ];
    if n.is_multiple_of(4) {
        batch.push(snapshot(n - 1, 1, &[n as u8; 700], false));
    }
    batch
}

/// The state after batches `1..=n`.
fn state_after(n: u64) -> Durable {
    let mut durable = Durable::default();
    for b in 1..=n {
        for action in batch(b) {
            durable.persist(&action);
        }
    }
    durable
}

struct Case {
    fault: Fault,
    /// What the error must say (the operation).
    op: &'static str,
    /// Part of the file name the error must name.
    file: &'static str,
    /// The error's text.
    errno_text: &'static str,
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            fault: Fault::new(SimOp::Sync, ".seg", EIO).after(3),
            op: "fsync segment",
            file: ".seg",
            errno_text: "Input/output error",
        },
        Case {
            fault: Fault::new(SimOp::Write, ".seg", ENOSPC).after(4),
            op: "write segment",
            file: ".seg",
            errno_text: "No space left on device",
        },
        Case {
            fault: Fault::new(SimOp::Sync, ".snap.tmp", EIO),
            op: "fsync snapshot",
            file: ".snap.tmp",
            errno_text: "Input/output error",
        },
        Case {
            fault: Fault::new(SimOp::Write, ".snap.tmp", ENOSPC).after(1),
            op: "write snapshot",
            file: ".snap.tmp",
            errno_text: "No space left on device",
        },
        Case {
            fault: Fault::new(SimOp::SyncDir, "node-1", EIO).after(1),
            op: "fsync directory",
            file: "node-1",
            errno_text: "Input/output error",
        },
    ]
}

/// Through the disk thread, as the drivers use it: batches are handed over
/// one at a time until one fails. Returns the last batch acknowledged and
/// the error.
fn write_until_error(sim: &SimFs) -> (Batch, StorageError) {
    let (disk, recovered, _) = DiskStorage::open_in(sim.clone(), DIR, SMALL).unwrap();
    assert_eq!(recovered, Durable::default());
    let (tx, results) = mpsc::channel();
    let writer = DiskWriter::start(disk, move |r| {
        let _ = tx.send(r);
    });
    let mut acked = 0;
    for n in 1..=40 {
        writer.submit(n, batch(n));
        match results.recv_timeout(Duration::from_secs(10)) {
            Ok(Ok(done)) => {
                assert_eq!(done, n, "batches are acknowledged in order");
                acked = done;
            }
            Ok(Err(e)) => {
                // The thread has stopped: later batches are neither
                // written nor acknowledged, and it says why once.
                writer.submit(n + 1, batch(n + 1));
                let end = writer.finish();
                assert!(
                    matches!(end, Err(StorageError::WriterStopped(_))),
                    "{end:?}"
                );
                assert!(results.try_recv().is_err(), "a second report");
                return (acked, e);
            }
            Err(_) => panic!("the disk thread neither acknowledged batch {n} nor failed"),
        }
    }
    panic!("the fault never fired: {:?}", sim.trace());
}

#[test]
fn a_write_or_fsync_error_stops_the_writer_naming_the_file_and_acknowledges_nothing_after() {
    for case in cases() {
        let sim = SimFs::new(7);
        sim.inject(case.fault.clone());
        let (acked, err) = write_until_error(&sim);
        let message = err.to_string();
        let what = format!("{:?}: {message}", case.fault);
        assert!(message.contains(case.op), "{what}");
        assert!(message.contains(case.file), "{what}");
        assert!(message.contains(DIR), "the full path: {what}");
        assert!(message.contains(case.errno_text), "{what}");
        assert_eq!(sim.injected(), 1, "{what}");

        // What was acknowledged survives a power cut now; any part of the
        // failed batch may have reached the disk, and nothing later did.
        sim.clear_faults();
        sim.crash();
        let (_, recovered, _) = DiskStorage::open_in(sim.clone(), DIR, SMALL)
            .unwrap_or_else(|e| panic!("{what}: recovery failed: {e}"));
        let mut allowed = vec![state_after(acked)];
        for action in batch(acked + 1) {
            let mut next = allowed.last().unwrap().clone();
            next.persist(&action);
            allowed.push(next);
        }
        assert!(
            allowed.contains(&recovered),
            "{what}: recovered through index {}, acknowledged through batch {acked}",
            recovered.last_index()
        );
    }
}

#[test]
fn a_failed_fsync_is_never_retried_so_its_writes_are_never_acknowledged() {
    let sim = SimFs::new(1);
    let (mut disk, _, _) = DiskStorage::open_in(sim.clone(), DIR, SMALL).unwrap();
    disk.persist_batch(&batch(1)).unwrap();
    sim.inject(Fault::new(SimOp::Sync, ".seg", EIO));
    disk.append(&batch(2)).unwrap();
    let first = disk.sync().unwrap_err();
    assert!(first.to_string().contains("fsync segment"), "{first}");
    // The simulated kernel has dropped batch 2's pages; an fsync now would
    // succeed. The store must not ask.
    let again = disk.sync().unwrap_err();
    assert!(matches!(again, StorageError::Failed(_)), "{again}");
    assert!(again.to_string().contains("fsync segment"), "{again}");
    let more = disk.append(&batch(3)).unwrap_err();
    assert!(matches!(more, StorageError::Failed(_)), "{more}");
    assert_eq!(sim.injected(), 1, "only one fsync was attempted");
    drop(disk);

    // Why: batch 2 is gone after a crash, though its fsync was "retried".
    sim.crash();
    let (_, recovered, _) = DiskStorage::open_in(sim.clone(), DIR, SMALL).unwrap();
    assert_eq!(recovered, state_after(1));
}
