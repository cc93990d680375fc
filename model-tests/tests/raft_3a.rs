//! Lab 3A (leader election), ported from 6.5840 S25 `raft1/raft_test.go`
//! (catalogue §4.2). Each test runs over several seeds in virtual time;
//! `SIM_SEEDS` raises the count, `SIM_SEED` replays one.

use model_tests::sim::lab::ELECTION_TIMEOUT_MS;
use model_tests::sim::seeds::run_seeds;
use model_tests::sim::{Cluster, SimConfig};

const SEEDS: u64 = 12;

/// TestInitialElection3A: one leader; terms agree and are >= 1 after 50 ms;
/// the term stays put over 2 s of quiet; a leader still exists.
#[test]
fn initial_election_3a() {
    run_seeds("initial_election_3a", SEEDS, |seed| {
        let mut c = Cluster::new(SimConfig::lab(3, true, seed));
        c.check_one_leader();
        c.run_for(50);
        let term1 = c.check_terms();
        assert!(
            term1.0 >= 1,
            "seed {seed}: term is {term1}, but should be at least 1"
        );
        c.run_for(2 * ELECTION_TIMEOUT_MS);
        let term2 = c.check_terms();
        // The lab only warns here; with pre-vote and check-quorum on a
        // reliable network a term change is a real defect, so we fail.
        assert_eq!(term1, term2, "seed {seed}: term changed with no failures");
        c.check_one_leader();
        c.check_time_limit();
    });
}

/// TestReElection3A: a new leader after the leader is cut off; the old
/// leader's return does not disrupt; no leader without a quorum; a leader
/// again once a quorum is back.
#[test]
fn re_election_3a() {
    run_seeds("re_election_3a", SEEDS, |seed| {
        let n = 3;
        let mut c = Cluster::new(SimConfig::lab(n, true, seed));
        let leader1 = c.check_one_leader();
        c.disconnect(leader1);
        c.check_one_leader();
        c.connect(leader1);
        let leader2 = c.check_one_leader();
        c.disconnect(leader2);
        c.disconnect((leader2 + 1) % n);
        c.run_for(2 * ELECTION_TIMEOUT_MS);
        c.check_no_leader();
        c.connect((leader2 + 1) % n);
        c.check_one_leader();
        c.connect(leader2);
        c.check_one_leader();
        c.check_time_limit();
    });
}

/// TestManyElections3A: 7 servers, 9 rounds of disconnecting 3 random
/// servers; a single leader every round.
#[test]
fn many_elections_3a() {
    run_seeds("many_elections_3a", SEEDS, |seed| {
        let n = 7;
        let mut c = Cluster::new(SimConfig::lab(n, true, seed));
        c.check_one_leader();
        for _ in 0..9 {
            let i1 = c.rng().pick(n);
            let i2 = c.rng().pick(n);
            let i3 = c.rng().pick(n);
            c.disconnect(i1);
            c.disconnect(i2);
            c.disconnect(i3);
            // Either the current leader is still alive, or the remaining four
            // elect a new one.
            c.check_one_leader();
            c.connect(i1);
            c.connect(i2);
            c.connect(i3);
        }
        c.check_one_leader();
        c.check_time_limit();
    });
}
