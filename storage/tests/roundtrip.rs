//! Random sequences of persist actions, with syncs and restarts at random
//! points: what `DiskStorage` recovers always equals an in-memory `Durable`
//! that received the same actions.

mod common;

use common::{random_action, TempDir};
use core_raft::rng::SplitMix64;
use core_raft::{Action, Durable};
use storage::{DiskStorage, StorageOptions};

/// The active segment and its length: everything up to there is durable.
fn synced_position(disk: &DiskStorage) -> (std::path::PathBuf, u64) {
    let active = disk.segment_paths().last().unwrap().clone();
    let len = std::fs::metadata(&active).unwrap().len();
    (active, len)
}

/// Runs one seed; returns the log segments live at the end.
fn run(seed: u64) -> Vec<std::path::PathBuf> {
    eprintln!("round trip with seed {seed} (replay with STORAGE_SEED={seed})");
    let dir = TempDir::new(&format!("roundtrip-{seed}"));
    let mut rng = SplitMix64::new(seed);
    let options = StorageOptions {
        segment_bytes: rng.range_inclusive(1, 4096),
    };
    // A term of at least 1 before any entry, as a real node would have.
    let mut model = Durable::default();
    let (mut disk, recovered, _) = DiskStorage::open_with(dir.path(), options).unwrap();
    assert_eq!(recovered, model, "seed {seed}: fresh directory");
    let first = common::hard_state(1, None, 0);
    model.persist(&first);
    disk.persist_batch(&[first]).unwrap();

    // The states a crash may leave: the last synced one and every later one.
    let mut candidates = vec![model.clone()];
    let mut synced_at = synced_position(&disk);
    for step in 0..120 {
        let batch_len = rng.range_inclusive(1, 4);
        let mut batch = Vec::new();
        for _ in 0..batch_len {
            let action = random_action(&mut rng, &model);
            model.persist(&action);
            candidates.push(model.clone());
            batch.push(action);
        }
        // Non-persist actions are ignored.
        batch.push(Action::NotLeader { leader_hint: None });
        disk.append(&batch).unwrap();
        if rng.range_inclusive(0, 3) == 0 {
            disk.sync().unwrap();
            assert_eq!(disk.pending_bytes(), 0);
            candidates = vec![model.clone()];
            synced_at = synced_position(&disk);
        }
        match rng.range_inclusive(0, 15) {
            0 => {
                // Clean restart.
                disk.sync().unwrap();
                drop(disk);
                let (reopened, recovered, report) =
                    DiskStorage::open_with(dir.path(), options).unwrap();
                assert_eq!(
                    recovered, model,
                    "seed {seed}: state after restart at step {step} differs"
                );
                assert_eq!(report.torn_tail, None, "seed {seed}");
                disk = reopened;
                candidates = vec![model.clone()];
                synced_at = synced_position(&disk);
            }
            1 => {
                // Crash: the active segment keeps any prefix of its unsynced bytes.
                let active = disk.segment_paths().last().unwrap().clone();
                let len = std::fs::metadata(&active).unwrap().len();
                let from = if active == synced_at.0 {
                    synced_at.1
                } else {
                    0
                };
                drop(disk);
                let cut = rng.range_inclusive(from, len);
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(&active)
                    .unwrap()
                    .set_len(cut)
                    .unwrap();
                let (reopened, recovered, _) = DiskStorage::open_with(dir.path(), options).unwrap();
                let Some(kept) = candidates.iter().position(|c| *c == recovered) else {
                    panic!("seed {seed}: crash at step {step} (cut {active:?} at {cut}) recovered a state no prefix of the writes produces");
                };
                model = candidates[kept].clone();
                candidates = vec![model.clone()];
                disk = reopened;
                synced_at = synced_position(&disk);
            }
            _ => {}
        }
    }
    disk.sync().unwrap();
    let live_segments = disk.segment_paths();
    drop(disk);
    let (_, recovered, _) = DiskStorage::open_with(dir.path(), options).unwrap();
    assert_eq!(
        recovered, model,
        "seed {seed}: final state differs (rerun with STORAGE_SEED={seed})"
    );
    live_segments
}

#[test]
fn recovered_state_equals_the_in_memory_model() {
    let seeds: Vec<u64> = match std::env::var("STORAGE_SEED") {
        Ok(s) => vec![s.parse().expect("STORAGE_SEED is a number")],
        Err(_) => (1..=3).collect(),
    };
    let mut truncated = false;
    for seed in seeds {
        let live = run(seed);
        // The first segment is gone once a snapshot allowed deleting it.
        truncated |= !live[0].ends_with(format!("log-{:020}.seg", 1));
    }
    assert!(
        truncated,
        "no seed exercised log truncation after a snapshot"
    );
}
