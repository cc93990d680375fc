//! Lab 3B (log replication), ported from 6.5840 S25 `raft1/raft_test.go`
//! (catalogue §4.2), in virtual time over several seeds.

use core_raft::LogIndex;
use model_tests::sim::lab::{cmd, ELECTION_TIMEOUT_MS};
use model_tests::sim::seeds::run_seeds;
use model_tests::sim::{Cluster, SimConfig};

const SEEDS: u64 = 10;

fn random_cmd(c: &mut Cluster) -> Vec<u8> {
    cmd(c.rng().next_u64())
}

/// TestBasicAgree3B: nothing is committed before Start; three commands land
/// at indexes 1, 2, 3.
#[test]
fn basic_agree_3b() {
    run_seeds("basic_agree_3b", SEEDS, |seed| {
        let servers = 3;
        let mut c = Cluster::new(SimConfig::lab(servers, true, seed));
        for index in 1..=3u64 {
            let (nd, _) = c.n_committed(LogIndex(index));
            assert_eq!(nd, 0, "some have committed before Start()");
            let xindex = c.one(cmd(index * 100), servers, false);
            assert_eq!(
                xindex,
                LogIndex(index),
                "got index {xindex}, expected {index}"
            );
        }
        c.check_time_limit();
    });
}

/// TestRPCBytes3B: ten 5000-byte commands; each must cross to each peer
/// about once. The lab bounds args + replies by `servers * sent + 50 000`
/// under gob; a leader never sends to itself, so with postcard we bound by
/// `(servers - 1) * sent + 50 000`, a tighter check of the same rule.
#[test]
fn rpc_bytes_3b() {
    run_seeds("rpc_bytes_3b", SEEDS, |seed| {
        let servers = 3;
        let mut c = Cluster::new(SimConfig::lab(servers, true, seed));
        c.one(cmd(99), servers, false);
        let bytes0 = c.net.bytes_sent;
        let mut sent = 0u64;
        for index in 2..12u64 {
            let s: Vec<u8> = (0..5000).map(|_| b'a' + c.rng().below(26) as u8).collect();
            let xindex = c.one(s, servers, false);
            assert_eq!(
                xindex,
                LogIndex(index),
                "got index {xindex}, expected {index}"
            );
            sent += 5000;
        }
        let got = c.net.bytes_sent - bytes0;
        let expected = (servers as u64 - 1) * sent;
        assert!(
            got <= expected + 50_000,
            "too many RPC bytes; got {got}, expected at most {}",
            expected + 50_000
        );
        c.check_time_limit();
    });
}

/// TestFollowerFailure3B: progress with one follower gone; with both gone
/// the leader still accepts Start (index 4) but nothing commits.
#[test]
fn follower_failure_3b() {
    run_seeds("follower_failure_3b", SEEDS, |seed| {
        let servers = 3;
        let mut c = Cluster::new(SimConfig::lab(servers, true, seed));
        c.one(cmd(101), servers, false);
        let leader1 = c.check_one_leader();
        c.disconnect((leader1 + 1) % servers);
        c.one(cmd(102), servers - 1, false);
        c.run_for(ELECTION_TIMEOUT_MS);
        c.one(cmd(103), servers - 1, false);
        let leader2 = c.check_one_leader();
        c.disconnect((leader2 + 1) % servers);
        c.disconnect((leader2 + 2) % servers);
        let (index, _, ok) = c.start_cmd(leader2, cmd(104));
        assert!(ok, "leader rejected Start()");
        assert_eq!(index, LogIndex(4), "expected index 4, got {index}");
        c.run_for(2 * ELECTION_TIMEOUT_MS);
        let (n, _) = c.n_committed(index);
        assert_eq!(n, 0, "{n} committed but no majority");
        c.check_time_limit();
    });
}

/// TestLeaderFailure3B: progress after the leader goes; with the second
/// leader gone too, Start(104) on everyone commits nothing.
#[test]
fn leader_failure_3b() {
    run_seeds("leader_failure_3b", SEEDS, |seed| {
        let servers = 3;
        let mut c = Cluster::new(SimConfig::lab(servers, true, seed));
        c.one(cmd(101), servers, false);
        let leader1 = c.check_one_leader();
        c.disconnect(leader1);
        c.one(cmd(102), servers - 1, false);
        c.run_for(ELECTION_TIMEOUT_MS);
        c.one(cmd(103), servers - 1, false);
        let leader2 = c.check_one_leader();
        c.disconnect(leader2);
        for i in 0..servers {
            c.start_cmd(i, cmd(104));
        }
        c.run_for(2 * ELECTION_TIMEOUT_MS);
        let (n, _) = c.n_committed(LogIndex(4));
        assert_eq!(n, 0, "{n} committed but no majority");
        c.check_time_limit();
    });
}

/// TestFailAgree3B: a disconnected follower catches up after rejoining.
#[test]
fn fail_agree_3b() {
    run_seeds("fail_agree_3b", SEEDS, |seed| {
        let servers = 3;
        let mut c = Cluster::new(SimConfig::lab(servers, true, seed));
        c.one(cmd(101), servers, false);
        let leader = c.check_one_leader();
        c.disconnect((leader + 1) % servers);
        c.one(cmd(102), servers - 1, false);
        c.one(cmd(103), servers - 1, false);
        c.run_for(ELECTION_TIMEOUT_MS);
        c.one(cmd(104), servers - 1, false);
        c.one(cmd(105), servers - 1, false);
        c.connect((leader + 1) % servers);
        c.one(cmd(106), servers, true);
        c.run_for(ELECTION_TIMEOUT_MS);
        c.one(cmd(107), servers, true);
        c.check_time_limit();
    });
}

/// TestFailNoAgree3B: with 3 of 5 followers gone, Start(20) gets index 2 and
/// does not commit; after repair the new leader's Start lands at 2 or 3.
#[test]
fn fail_no_agree_3b() {
    run_seeds("fail_no_agree_3b", SEEDS, |seed| {
        let servers = 5;
        let mut c = Cluster::new(SimConfig::lab(servers, true, seed));
        c.one(cmd(10), servers, false);
        let leader = c.check_one_leader();
        for k in 1..=3 {
            c.disconnect((leader + k) % servers);
        }
        let (index, _, ok) = c.start_cmd(leader, cmd(20));
        assert!(ok, "leader rejected Start()");
        assert_eq!(index, LogIndex(2), "expected index 2, got {index}");
        c.run_for(2 * ELECTION_TIMEOUT_MS);
        let (n, _) = c.n_committed(index);
        assert_eq!(n, 0, "{n} committed but no majority");
        for k in 1..=3 {
            c.connect((leader + k) % servers);
        }
        let leader2 = c.check_one_leader();
        let (index2, _, ok2) = c.start_cmd(leader2, cmd(30));
        assert!(ok2, "leader2 rejected Start()");
        assert!((2..=3).contains(&index2.0), "unexpected index {index2}");
        c.one(cmd(1000), servers, true);
        c.check_time_limit();
    });
}

/// TestConcurrentStarts3B: five Starts issued together at the leader all
/// commit on all servers (retried if the term changes; fails if it changes
/// in every try).
#[test]
fn concurrent_starts_3b() {
    run_seeds("concurrent_starts_3b", SEEDS, |seed| {
        let servers = 3;
        let mut c = Cluster::new(SimConfig::lab(servers, true, seed));
        let mut success = false;
        'tries: for attempt in 0..5 {
            if attempt > 0 {
                c.run_for(3000);
            }
            let leader = c.check_one_leader();
            let (_, term, ok) = c.start_cmd(leader, cmd(1));
            if !ok {
                continue;
            }
            let mut indexes = Vec::new();
            for i in 0..5u64 {
                let (index, t, ok) = c.start_cmd(leader, cmd(100 + i));
                if ok && t == term {
                    indexes.push(index);
                }
            }
            for j in 0..servers {
                if c.raft(j).is_some_and(|r| r.term() != term) {
                    continue 'tries;
                }
            }
            let mut seen = Vec::new();
            for index in indexes {
                match c.wait(index, servers, Some(term)) {
                    Some(v) => seen.push(v),
                    None => continue 'tries,
                }
            }
            for i in 0..5u64 {
                assert!(seen.contains(&cmd(100 + i)), "cmd {} missing", 100 + i);
            }
            success = true;
            break;
        }
        assert!(success, "term changed too often");
        c.check_time_limit();
    });
}

/// TestRejoin3B: a partitioned leader's divergent entries are overwritten
/// when it rejoins.
#[test]
fn rejoin_3b() {
    run_seeds("rejoin_3b", SEEDS, |seed| {
        let servers = 3;
        let mut c = Cluster::new(SimConfig::lab(servers, true, seed));
        c.one(cmd(101), servers, true);
        let leader1 = c.check_one_leader();
        c.disconnect(leader1);
        c.start_cmd(leader1, cmd(102));
        c.start_cmd(leader1, cmd(103));
        c.start_cmd(leader1, cmd(104));
        c.one(cmd(103), 2, true);
        let leader2 = c.check_one_leader();
        c.disconnect(leader2);
        c.connect(leader1);
        c.one(cmd(104), 2, true);
        c.connect(leader2);
        c.one(cmd(105), servers, true);
        c.check_time_limit();
    });
}

/// TestBackup3B: leaders with long divergent logs; backing up must skip
/// whole terms to finish within the per-agreement limits.
#[test]
fn backup_3b() {
    run_seeds("backup_3b", SEEDS, |seed| {
        let servers = 5;
        let mut c = Cluster::new(SimConfig::lab(servers, true, seed));
        let x = random_cmd(&mut c);
        c.one(x, servers, true);
        // Put the leader and one follower in a partition.
        let leader1 = c.check_one_leader();
        for k in 2..=4 {
            c.disconnect((leader1 + k) % servers);
        }
        // Submit lots of commands that won't commit.
        for _ in 0..50 {
            let x = random_cmd(&mut c);
            c.start_cmd(leader1, x);
        }
        c.run_for(ELECTION_TIMEOUT_MS / 2);
        c.disconnect(leader1 % servers);
        c.disconnect((leader1 + 1) % servers);
        // Allow the other partition to recover.
        for k in 2..=4 {
            c.connect((leader1 + k) % servers);
        }
        for _ in 0..50 {
            let x = random_cmd(&mut c);
            c.one(x, 3, true);
        }
        // Now another partitioned leader and one follower.
        let leader2 = c.check_one_leader();
        let mut other = (leader1 + 2) % servers;
        if leader2 == other {
            other = (leader2 + 1) % servers;
        }
        c.disconnect(other);
        // Lots more commands that won't commit.
        for _ in 0..50 {
            let x = random_cmd(&mut c);
            c.start_cmd(leader2, x);
        }
        c.run_for(ELECTION_TIMEOUT_MS / 2);
        // Bring the original leader back to life.
        for i in 0..servers {
            c.disconnect(i);
        }
        c.connect(leader1 % servers);
        c.connect((leader1 + 1) % servers);
        c.connect(other);
        for _ in 0..50 {
            let x = random_cmd(&mut c);
            c.one(x, 3, true);
        }
        for i in 0..servers {
            c.connect(i);
        }
        let x = random_cmd(&mut c);
        c.one(x, servers, true);
        c.check_time_limit();
    });
}

/// TestCount3B: RPC counts. Initial election 1..=30 RPCs; Start(1) plus 11
/// commands in at most (10 + 1 + 3) * 3 = 42; one second idle at most
/// 3 * 20 = 60 (heartbeats at most 10 per second).
#[test]
fn count_3b() {
    run_seeds("count_3b", SEEDS, |seed| {
        let servers = 3;
        let mut c = Cluster::new(SimConfig::lab(servers, true, seed));
        c.check_one_leader();
        let total1 = c.rpc_total();
        assert!(
            (1..=30).contains(&total1),
            "too many or few RPCs ({total1}) to elect initial leader"
        );
        let mut success = false;
        let mut total2 = 0;
        'tries: for attempt in 0..5 {
            if attempt > 0 {
                c.run_for(3000);
            }
            let leader = c.check_one_leader();
            let total1 = c.rpc_total();
            let iters = 10u64;
            let (starti, term, ok) = c.start_cmd(leader, cmd(1));
            if !ok {
                continue;
            }
            let mut cmds = Vec::new();
            for i in 1..iters + 2 {
                let x = random_cmd(&mut c);
                cmds.push(x.clone());
                let (index1, term1, ok) = c.start_cmd(leader, x);
                if term1 != term || !ok {
                    continue 'tries;
                }
                assert_eq!(index1, LogIndex(starti.0 + i), "Start() failed");
            }
            for i in 1..iters + 1 {
                match c.wait(LogIndex(starti.0 + i), servers, Some(term)) {
                    None => continue 'tries,
                    Some(v) => assert_eq!(v, cmds[(i - 1) as usize], "wrong value committed"),
                }
            }
            if (0..servers).any(|j| c.raft(j).is_some_and(|r| r.term() != term)) {
                continue;
            }
            total2 = c.rpc_total();
            let used = total2 - total1;
            assert!(
                used <= (iters + 1 + 3) * 3,
                "too many RPCs ({used}) for {iters} entries"
            );
            success = true;
            break;
        }
        assert!(success, "term changed too often");
        c.run_for(ELECTION_TIMEOUT_MS);
        let idle = c.rpc_total() - total2;
        assert!(
            idle <= 3 * 20,
            "too many RPCs ({idle}) for 1 second of idleness"
        );
        c.check_time_limit();
    });
}
