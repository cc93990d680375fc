//! Power loss: the store runs on a simulated filesystem (`storage::simfs`)
//! that, at a crash, keeps a random part of everything not yet fsynced
//! (torn and reordered sector writes, directory entries never made durable
//! by a directory fsync). Random persist sequences (hard states, appends,
//! overwrites of a suffix, snapshots that delete segments, segments rolling
//! at small sizes) and the identity file are written until the power is cut
//! at a random point, also during recovery itself; then the node boots again.
//!
//! After every boot the identity acknowledged before must still be there, and
//! the recovered state must be one the writes could have left: the state as
//! of the last acknowledged sync or a later one (so nothing acknowledged is
//! lost and nothing invented), which `Raft::restore` accepts.
//!
//! A seed replays a run: `STORAGE_SEED=<seed> cargo test -p storage --test
//! power_loss`.

mod common;

use common::random_action;
use core_raft::rng::SplitMix64;
use core_raft::{Action, Config, Durable, NodeId, Raft};
use std::path::Path;
use storage::identity::{self, NodeIdentity};
use storage::simfs::SimFs;
use storage::{DiskStorage, StorageError, StorageOptions};

const DIR: &str = "/sim/node-1";
/// Seeds run by default; each boots a node a dozen times.
const SEEDS: u64 = 300;
const BOOTS: usize = 12;

/// What the runs exercised, so that a run that never reaches the
/// interesting cases fails instead of passing vacuously.
#[derive(Debug, Default)]
struct Seen {
    crashes: u64,
    crashes_in_boot: u64,
    acknowledged_syncs: u64,
    torn_tails: u64,
    recoveries_beyond_ack: u64,
    segments_deleted: u64,
    snapshots_restored: u64,
}

/// The states a crash now may leave: the last acknowledged one first, then
/// the state after each action written since.
struct Candidates(Vec<Durable>);

impl Candidates {
    fn acknowledged(state: Durable) -> Candidates {
        Candidates(vec![state])
    }

    fn written(&mut self, action: &Action) {
        let mut next = self.0.last().expect("never empty").clone();
        next.persist(action);
        self.0.push(next);
    }

    fn latest(&self) -> &Durable {
        self.0.last().expect("never empty")
    }
}

/// Boot the node as the drivers do: identity first, then storage. Once an
/// identity was returned, every later boot must return the same one.
fn boot(
    sim: &SimFs,
    options: StorageOptions,
    identity: &mut Option<NodeIdentity>,
) -> Result<(DiskStorage<SimFs>, Durable, bool), StorageError> {
    let (id, _) = identity::load_or_create_in(sim, Path::new(DIR), 6824, 1)?;
    assert_eq!(*identity.get_or_insert(id), id, "the identity changed");
    let (disk, durable, report) = DiskStorage::open_in(sim.clone(), DIR, options)?;
    Ok((disk, durable, report.torn_tail.is_some()))
}

/// Everything but the writing of one run, for the failure message.
fn context(seed: u64, boot: usize, sim: &SimFs) -> String {
    format!(
        "seed {seed}, boot {boot} (replay with STORAGE_SEED={seed}); last filesystem operations:\n  {}",
        sim.trace().join("\n  ")
    )
}

fn run(seed: u64, seen: &mut Seen) {
    let mut rng = SplitMix64::new(seed);
    let sim = SimFs::new(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let options = StorageOptions {
        segment_bytes: rng.range_inclusive(64, 4096),
    };
    let mut identity: Option<NodeIdentity> = None;
    let mut candidates = Candidates::acknowledged(Durable::default());
    for boot_no in 0..BOOTS {
        // The power goes at a random point: during the boot, or after a
        // number of writes.
        sim.cut_power_after(rng.range_inclusive(0, 120));
        let (mut disk, recovered, torn) = match boot(&sim, options, &mut identity) {
            Ok(booted) => booted,
            Err(e) => {
                assert!(
                    sim.power_is_off(),
                    "boot failed without a power cut: {e}\n{}",
                    context(seed, boot_no, &sim)
                );
                seen.crashes_in_boot += 1;
                sim.crash();
                continue;
            }
        };
        let ctx = || context(seed, boot_no, &sim);
        let Some(kept) = candidates.0.iter().position(|c| *c == recovered) else {
            panic!(
                "recovered a state the writes cannot have left (acknowledged: last index {}, \
                 recovered: last index {}, hard state {:?})\n{}",
                candidates.0[0].last_index(),
                recovered.last_index(),
                recovered.hard_state,
                ctx()
            );
        };
        Raft::restore(
            Config::new(NodeId(1), vec![NodeId(1), NodeId(2), NodeId(3)]),
            recovered.clone(),
        )
        .unwrap_or_else(|e| panic!("Raft refuses the recovered state: {e}\n{}", ctx()));
        seen.torn_tails += u64::from(torn);
        seen.recoveries_beyond_ack += u64::from(kept > 0);
        seen.snapshots_restored += u64::from(recovered.snapshot.is_some());
        candidates = Candidates::acknowledged(recovered);

        // Write until the power goes (or a while, then pull the plug).
        let first_seq = |disk: &DiskStorage<SimFs>| disk.segment_paths()[0].clone();
        let first = first_seq(&disk);
        for _ in 0..rng.range_inclusive(1, 60) {
            let batch: Vec<Action> = (0..rng.range_inclusive(1, 4))
                .map(|_| {
                    let action = random_action(&mut rng, candidates.latest());
                    candidates.written(&action);
                    action
                })
                .collect();
            if let Err(e) = disk.append(&batch) {
                assert!(sim.power_is_off(), "append failed: {e}\n{}", ctx());
                break;
            }
            if rng.range_inclusive(0, 2) == 0 {
                match disk.sync() {
                    Ok(()) => {
                        seen.acknowledged_syncs += 1;
                        candidates = Candidates::acknowledged(candidates.latest().clone());
                    }
                    Err(e) => {
                        assert!(sim.power_is_off(), "sync failed: {e}\n{}", ctx());
                        break;
                    }
                }
            }
        }
        if first_seq(&disk) != first {
            seen.segments_deleted += 1;
        }
        drop(disk);
        sim.crash();
        seen.crashes += 1;
    }
}

#[test]
fn acknowledged_writes_survive_any_power_cut() {
    let seeds: Vec<u64> = match std::env::var("STORAGE_SEED") {
        Ok(s) => vec![s.parse().expect("STORAGE_SEED is a number")],
        Err(_) => (1..=SEEDS).collect(),
    };
    let mut seen = Seen::default();
    for seed in &seeds {
        run(*seed, &mut seen);
    }
    eprintln!("{seen:?}");
    if seeds.len() > 1 {
        // The runs reached every case worth reaching.
        assert!(seen.crashes_in_boot > 0, "{seen:?}");
        assert!(seen.torn_tails > 0, "{seen:?}");
        assert!(seen.recoveries_beyond_ack > 0, "{seen:?}");
        assert!(seen.segments_deleted > 0, "{seen:?}");
        assert!(seen.snapshots_restored > 0, "{seen:?}");
    }
}
