//! Lab 3C (persistence), ported from 6.5840 S25 `raft1/raft_test.go`
//! (catalogue §4.2), in virtual time over several seeds.

use model_tests::sim::cluster::Client;
use model_tests::sim::lab::{cmd, ELECTION_TIMEOUT_MS};
use model_tests::sim::seeds::run_seeds;
use model_tests::sim::{Cluster, NetConfig, SimConfig};
use std::cell::RefCell;
use std::rc::Rc;

const SEEDS: u64 = 12;

fn random_cmd(c: &mut Cluster) -> Vec<u8> {
    cmd(c.rng().next_u64())
}

/// TestPersist13C: state survives shutting everything down, leader crashes
/// and follower crashes.
#[test]
fn persist1_3c() {
    run_seeds("persist1_3c", SEEDS, |seed| {
        let servers = 3;
        let mut c = Cluster::new(SimConfig::lab(servers, true, seed));
        c.one(cmd(11), servers, true);
        for i in 0..servers {
            c.shutdown(i);
        }
        for i in 0..servers {
            c.restart(i);
        }
        c.one(cmd(12), servers, true);
        let leader1 = c.check_one_leader();
        c.shutdown(leader1);
        c.restart(leader1);
        c.one(cmd(13), servers, true);
        let leader2 = c.check_one_leader();
        c.shutdown(leader2);
        c.one(cmd(14), servers - 1, true);
        c.restart(leader2);
        // Wait for leader2 to join before killing i3.
        c.wait(core_raft::LogIndex(4), servers, None);
        let i3 = (c.check_one_leader() + 1) % servers;
        c.shutdown(i3);
        c.one(cmd(15), servers - 1, true);
        c.restart(i3);
        c.one(cmd(16), servers, true);
        c.check_time_limit();
    });
}

/// TestPersist23C: five rounds of crashing and restarting most of a
/// 5-server cluster in awkward orders.
#[test]
fn persist2_3c() {
    run_seeds("persist2_3c", SEEDS, |seed| {
        let servers = 5;
        let mut c = Cluster::new(SimConfig::lab(servers, true, seed));
        let mut index = 1;
        for _ in 0..5 {
            c.one(cmd(10 + index), servers, true);
            index += 1;
            let leader1 = c.check_one_leader();
            c.shutdown((leader1 + 1) % servers);
            c.shutdown((leader1 + 2) % servers);
            c.one(cmd(10 + index), servers - 2, true);
            index += 1;
            c.shutdown(leader1 % servers);
            c.shutdown((leader1 + 3) % servers);
            c.shutdown((leader1 + 4) % servers);
            c.restart((leader1 + 1) % servers);
            c.restart((leader1 + 2) % servers);
            c.run_for(ELECTION_TIMEOUT_MS);
            c.restart((leader1 + 3) % servers);
            c.one(cmd(10 + index), servers - 2, true);
            index += 1;
            c.restart((leader1 + 4) % servers);
            c.restart(leader1 % servers);
        }
        c.one(cmd(1000), servers, true);
        c.check_time_limit();
    });
}

/// TestPersist33C: a partitioned server plus crashes of the other two.
#[test]
fn persist3_3c() {
    run_seeds("persist3_3c", SEEDS, |seed| {
        let servers = 3;
        let mut c = Cluster::new(SimConfig::lab(servers, true, seed));
        c.one(cmd(101), 3, true);
        let leader = c.check_one_leader();
        c.disconnect((leader + 2) % servers);
        c.one(cmd(102), 2, true);
        c.shutdown(leader % servers);
        c.shutdown((leader + 1) % servers);
        c.connect((leader + 2) % servers);
        c.restart(leader % servers);
        c.one(cmd(103), 2, true);
        c.restart((leader + 1) % servers);
        c.one(cmd(104), servers, true);
        c.check_time_limit();
    });
}

/// TestFigure83C: leaders crash constantly right after accepting entries;
/// the applier's consistency checks catch any Figure 8 violation, and the
/// cluster must agree within 10 s once everyone is back.
#[test]
fn figure8_3c() {
    run_seeds("figure8_3c", SEEDS, |seed| {
        let servers = 5;
        let mut c = Cluster::new(SimConfig::lab(servers, true, seed));
        let x = random_cmd(&mut c);
        c.one(x, 1, true);
        let mut nup = servers;
        for _ in 0..1000 {
            let mut leader = None;
            for i in 0..servers {
                if c.is_up(i) {
                    let x = random_cmd(&mut c);
                    if c.start_cmd(i, x).2 {
                        leader = Some(i);
                    }
                }
            }
            let ms = if c.rng().below(1000) < 100 {
                c.rng().below(ELECTION_TIMEOUT_MS / 2)
            } else {
                c.rng().below(13)
            };
            c.run_for(ms);
            if let Some(l) = leader {
                c.shutdown(l);
                nup -= 1;
            }
            if nup < 3 {
                let s = c.rng().pick(servers);
                if !c.is_up(s) {
                    c.restart(s);
                    nup += 1;
                }
            }
        }
        for i in 0..servers {
            if !c.is_up(i) {
                c.restart(i);
            }
        }
        let x = random_cmd(&mut c);
        c.one(x, servers, true);
        c.check_time_limit();
    });
}

/// TestUnreliableAgree3C: many concurrent agreements on an unreliable
/// network, then one on all five once it is reliable.
#[test]
fn unreliable_agree_3c() {
    run_seeds("unreliable_agree_3c", SEEDS, |seed| {
        let servers = 5;
        let mut c = Cluster::new(SimConfig::lab(servers, false, seed));
        for iters in 1..50u64 {
            for j in 0..4u64 {
                c.spawn_one(cmd(100 * iters + j), 1, true);
            }
            c.one(cmd(iters), 1, true);
        }
        c.set_net(NetConfig::reliable());
        c.join_clients();
        c.one(cmd(100), servers, true);
        c.check_time_limit();
    });
}

/// TestFigure8Unreliable3C: like Figure 8 but with leaders disconnected
/// instead of crashed, on an unreliable network with long reordering of
/// replies from iteration 200 on.
#[test]
fn figure8_unreliable_3c() {
    run_seeds("figure8_unreliable_3c", SEEDS, |seed| {
        let servers = 5;
        let mut c = Cluster::new(SimConfig::lab(servers, false, seed));
        let x = cmd(c.rng().below(10_000));
        c.one(x, 1, true);
        let mut nup = servers;
        for iters in 0..1000 {
            if iters == 200 {
                let mut net = NetConfig::unreliable();
                net.long_reordering = true;
                c.set_net(net);
            }
            let mut leader = None;
            for i in 0..servers {
                let x = cmd(c.rng().below(10_000));
                if c.start_cmd(i, x).2 && c.is_connected(i) {
                    leader = Some(i);
                }
            }
            let ms = if c.rng().below(1000) < 100 {
                c.rng().below(ELECTION_TIMEOUT_MS / 2)
            } else {
                c.rng().below(13)
            };
            c.run_for(ms);
            if let Some(l) = leader {
                if c.rng().below(1000) < ELECTION_TIMEOUT_MS / 2 {
                    c.disconnect(l);
                    nup -= 1;
                }
            }
            if nup < 3 {
                let s = c.rng().pick(servers);
                if !c.is_connected(s) {
                    c.connect(s);
                    nup += 1;
                }
            }
        }
        for i in 0..servers {
            if !c.is_connected(i) {
                c.connect(i);
            }
        }
        let x = cmd(c.rng().below(10_000));
        c.one(x, servers, true);
        c.check_time_limit();
    });
}

/// One of the churn tests' clients: keeps starting commands on every live
/// server and records those it sees committed within 10+20+50+100+200 ms.
struct ChurnClient {
    me: u64,
    stop: Rc<RefCell<bool>>,
    seen: Rc<RefCell<Vec<Vec<u8>>>>,
    /// The command in flight, its index and how many checks were made.
    pending: Option<(Vec<u8>, core_raft::LogIndex, usize)>,
    next_at: u64,
}

impl Client for ChurnClient {
    fn poll(&mut self, c: &mut Cluster) -> bool {
        const BACKOFF_MS: [u64; 5] = [10, 20, 50, 100, 200];
        if c.now_ms < self.next_at {
            return false;
        }
        if let Some((x, index, checks)) = self.pending.take() {
            let (nd, value) = c.n_committed(index);
            if nd > 0 {
                if value.as_ref() == Some(&x) {
                    self.seen.borrow_mut().push(x);
                }
            } else if checks < BACKOFF_MS.len() {
                self.next_at = c.now_ms + BACKOFF_MS[checks];
                self.pending = Some((x, index, checks + 1));
                return false;
            }
        }
        if *self.stop.borrow() {
            return true;
        }
        let x = cmd(c.rng().next_u64());
        let mut accepted = None;
        for i in 0..c.len() {
            if c.is_up(i) {
                let (index, _, ok) = c.start_cmd(i, x.clone());
                if ok {
                    accepted = Some(index);
                }
            }
        }
        match accepted {
            Some(index) => self.pending = Some((x, index, 0)),
            None => self.next_at = c.now_ms + 79 + self.me * 17,
        }
        false
    }
}

/// The churn scenario shared by the reliable and unreliable variants: every
/// value a client saw committed must be in the final log.
fn churn(seed: u64, reliable: bool) {
    let servers = 5;
    let mut c = Cluster::new(SimConfig::lab(servers, reliable, seed));
    let stop = Rc::new(RefCell::new(false));
    let seen = Rc::new(RefCell::new(Vec::new()));
    for me in 0..3 {
        c.spawn(Box::new(ChurnClient {
            me,
            stop: stop.clone(),
            seen: seen.clone(),
            pending: None,
            next_at: 0,
        }));
    }
    for _ in 0..20 {
        if c.rng().below(1000) < 200 {
            let i = c.rng().pick(servers);
            c.disconnect(i);
        }
        if c.rng().below(1000) < 500 {
            let i = c.rng().pick(servers);
            if !c.is_up(i) {
                c.restart(i);
            }
            c.connect(i);
        }
        if c.rng().below(1000) < 200 {
            let i = c.rng().pick(servers);
            if c.is_up(i) {
                c.shutdown(i);
            }
        }
        // Less than an election timeout, so leaders have a chance to commit.
        c.run_for(ELECTION_TIMEOUT_MS * 7 / 10);
    }
    c.run_for(ELECTION_TIMEOUT_MS);
    c.set_net(NetConfig::reliable());
    for i in 0..servers {
        if !c.is_up(i) {
            c.restart(i);
        }
        c.connect(i);
    }
    *stop.borrow_mut() = true;
    c.join_clients();
    c.run_for(ELECTION_TIMEOUT_MS);
    let x = cmd(c.rng().next_u64());
    let last_index = c.one(x, servers, true);
    let mut really = Vec::new();
    for index in 1..=last_index.0 {
        if let Some(v) = c.wait(core_raft::LogIndex(index), servers, None) {
            really.push(v);
        }
    }
    let seen = seen.borrow();
    assert!(
        !seen.is_empty(),
        "seed {seed}: no client saw any commit during churn"
    );
    for v in seen.iter() {
        assert!(
            really.contains(v),
            "seed {seed}: a value clients saw committed is missing from the final log"
        );
    }
    c.check_time_limit();
}

/// TestReliableChurn3C.
#[test]
fn reliable_churn_3c() {
    run_seeds("reliable_churn_3c", SEEDS, |seed| churn(seed, true));
}

/// TestUnreliableChurn3C.
#[test]
fn unreliable_churn_3c() {
    run_seeds("unreliable_churn_3c", SEEDS, |seed| churn(seed, false));
}
