//! Randomised runs of the replicated key/value service: each seed picks its
//! own cluster size, clients, workload and faults (see
//! `model_tests::kvsim::swarm`). `SIM_SEEDS` raises the count; `SIM_SEED`
//! replays one.

use model_tests::kvsim::swarm::run_kv_swarm;
use model_tests::sim::seeds::run_seeds;

#[test]
fn kv_swarm_exactly_once_and_linearizable() {
    run_seeds("kv_swarm_exactly_once_and_linearizable", 40, |seed| {
        let report = run_kv_swarm(seed, 5_000);
        assert!(report.ops > 0, "seed {seed}: no client operation completed");
    });
}

/// The swarm must exercise the exactly-once machinery: across seeds, some
/// retried mutation was answered from a session table.
#[test]
fn kv_swarm_exercises_retries() {
    let avoided: u64 = (1..=20)
        .map(|s| run_kv_swarm(s, 5_000).duplicates_avoided)
        .sum();
    assert!(avoided > 0, "no seed ever retried an applied mutation");
}
