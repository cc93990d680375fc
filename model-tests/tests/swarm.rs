//! Randomised swarm runs: each seed picks cluster size 3/5/7 and its own
//! fault mix; invariants are checked after every step and liveness at the
//! end. `SIM_SEEDS` raises the seed count; `SIM_SEED` replays one.

use model_tests::sim::seeds::{run_seeds, seeds};
use model_tests::sim::swarm::run_swarm;
use model_tests::sim::TraceMode;

/// Virtual time of the chaotic phase of each seed.
const CHAOS_MS: u64 = 20_000;

#[test]
fn swarm_raft_invariants_and_liveness() {
    run_seeds("swarm_raft_invariants_and_liveness", 500, |seed| {
        run_swarm(seed, CHAOS_MS, TraceMode::from_env());
    });
}

/// The determinism self-check: the same seed twice gives the same trace.
#[test]
fn swarm_is_deterministic() {
    for seed in seeds(10) {
        let a = run_swarm(seed, 5_000, TraceMode::Off);
        let b = run_swarm(seed, 5_000, TraceMode::Off);
        assert_eq!(a, b, "seed {seed} ran differently twice");
    }
}

/// The swarm must actually exercise the protocol: across seeds, entries get
/// committed and leadership changes hands (a run that never elects or never
/// commits would vacuously satisfy every invariant).
#[test]
fn swarm_makes_progress() {
    let reports: Vec<_> = (1..=20)
        .map(|s| run_swarm(s, 5_000, TraceMode::Off))
        .collect();
    assert!(
        reports.iter().all(|r| r.committed > 0),
        "a seed committed nothing"
    );
    assert!(
        reports.iter().any(|r| r.leader_terms > 3),
        "no seed saw leadership change hands"
    );
}
