//! Randomised runs of the replicated key/value service: each seed picks its
//! own cluster size, clients, workload and faults, membership changes
//! included (see `model_tests::kvsim::swarm`). `SIM_SEEDS` raises the
//! count; `SIM_SEED` replays one.

use model_tests::kvsim::swarm::{run_kv_swarm, KvSwarmReport};
use model_tests::sim::seeds::run_seeds;

#[test]
fn kv_swarm_exactly_once_and_linearizable() {
    run_seeds("kv_swarm_exactly_once_and_linearizable", 40, |seed| {
        let report = run_kv_swarm(seed, 5_000);
        assert!(report.ops > 0, "seed {seed}: no client operation completed");
    });
}

/// The swarm must exercise the exactly-once machinery and membership
/// changes: across seeds, some retried mutation was answered from a
/// session table, and leaders appended and committed membership changes,
/// replaced a server and handed leadership over while clients ran.
#[test]
fn kv_swarm_exercises_retries() {
    let reports: Vec<_> = (1..=20).map(|s| run_kv_swarm(s, 5_000)).collect();
    let sum = |f: fn(&KvSwarmReport) -> u64| -> u64 { reports.iter().map(f).sum() };
    assert!(
        sum(|r| r.duplicates_avoided) > 0,
        "no seed ever retried an applied mutation"
    );
    let counts = [
        ("changes appended", sum(|r| r.reconfig.proposed)),
        ("changes committed", sum(|r| r.memberships_committed)),
        ("servers replaced", sum(|r| r.reconfig.replaced)),
        ("leadership transfers", sum(|r| r.reconfig.transfers)),
    ];
    for (what, n) in counts {
        assert!(n > 0, "no {what} over 20 seeds: {counts:?}");
    }
}
