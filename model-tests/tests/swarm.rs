//! Randomised swarm runs: each seed picks cluster size 3/5/7, spare nodes
//! and its own fault mix, membership changes and leadership transfers
//! included; invariants are checked after every step and liveness at the
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

/// The swarm must exercise membership changes: across seeds, leaders
/// append and commit changes, remove themselves, replace voters and hand
/// leadership over (the membership invariants would otherwise hold
/// vacuously).
#[test]
fn swarm_changes_membership() {
    let reports: Vec<_> = (1..=20)
        .map(|s| run_swarm(s, 5_000, TraceMode::Off))
        .collect();
    let sum = |f: fn(&model_tests::sim::swarm::SwarmReport) -> u64| -> u64 {
        reports.iter().map(f).sum()
    };
    let counts = [
        ("changes appended", sum(|r| r.reconfig.proposed)),
        ("changes committed", sum(|r| r.memberships_committed)),
        ("learners added", sum(|r| r.reconfig.added)),
        ("learners promoted", sum(|r| r.reconfig.promoted)),
        (
            "leaders removed by themselves",
            sum(|r| r.reconfig.leaders_removed),
        ),
        ("voters replaced", sum(|r| r.reconfig.replaced)),
        ("leadership transfers", sum(|r| r.reconfig.transfers)),
    ];
    for (what, n) in counts {
        assert!(n > 0, "no {what} over 20 seeds: {counts:?}");
    }
}
