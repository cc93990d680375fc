//! Lab 4A (the replicated-state-machine layer) and rsm's TestSnapshot4C,
//! ported from 6.5840 S25 `kvraft1/rsm/rsm_test.go` (catalogue §5.1): a
//! replicated counter whose `Dec` must never be applied, in virtual time
//! over several seeds.

use model_tests::kvsim::counter::{Counter, CounterOp, CounterOut, Submitter};
use model_tests::kvsim::{World, WorldConfig};
use model_tests::sim::seeds::run_seeds;
use std::cell::RefCell;
use std::rc::Rc;

const SEEDS: u64 = 6;
const NSRV: usize = 3;
/// The tests' NSEC: how long a Submit may be retried, in ms.
const NSEC_MS: u64 = 10_000;

struct T {
    w: World<Counter>,
    sub: Rc<RefCell<Submitter>>,
    /// Servers the tester considers connected.
    connected: Vec<bool>,
    leader: usize,
}

impl T {
    fn new(seed: u64, max_raft_state: Option<usize>) -> T {
        let mut config = WorldConfig::replicated(NSRV, true, seed);
        config.max_raft_state = max_raft_state;
        let mut w = World::new(config);
        let sub = Rc::new(RefCell::new(Submitter::default()));
        w.add_client(Box::new(sub.clone()), None);
        T {
            w,
            sub,
            connected: vec![true; NSRV],
            leader: 0,
        }
    }

    /// Submit at `server` and wait for its answer (at most `limit_ms`).
    fn submit_wait(
        &mut self,
        server: usize,
        op: CounterOp,
        limit_ms: u64,
    ) -> Option<Result<CounterOut, core_kv::NotLeader>> {
        self.sub.borrow_mut().submit(server, op);
        self.w.run_for(self.w_tick());
        let id = *self.sub.borrow().log.keys().last().unwrap();
        let deadline = self.w.now_ms + limit_ms;
        while self.w.now_ms < deadline {
            if let Some((_, answer)) = self.sub.borrow().log[&id].answered.clone() {
                return Some(answer);
            }
            self.w.run_for(5);
        }
        None
    }

    fn w_tick(&self) -> u64 {
        core_raft::DEFAULT_TICK_MS
    }

    /// `onePartition`: try the connected servers of `p` until one leads and
    /// answers; 50 ms between rounds; fatal after NSEC.
    fn one_partition(&mut self, p: &[usize], op: CounterOp) -> CounterOut {
        let t0 = self.w.now_ms;
        while self.w.now_ms - t0 < NSEC_MS {
            let mut index = self.leader;
            for _ in 0..NSRV {
                if self.connected[index] && p.contains(&index) && self.w.is_up(index) {
                    if let Some(Ok(out)) = self.submit_wait(index, op.clone(), NSEC_MS) {
                        self.leader = index;
                        return out;
                    }
                }
                index = (index + 1) % NSRV;
            }
            self.w.run_for(50);
        }
        self.w.fail(format!(
            "one_partition({op:?}) made no progress in {NSEC_MS} ms"
        ))
    }

    fn one_inc(&mut self) -> u64 {
        match self.one_partition(&[0, 1, 2], CounterOp::Inc) {
            CounterOut::N(n) => n,
            other => self.w.fail(format!("Inc answered {other:?}")),
        }
    }

    /// `checkCounter`: poll with backoff until `n` servers show value `v`.
    fn check_counter(&mut self, v: u64, n: usize) {
        let mut to = 10;
        for _ in 0..30 {
            if self.count_value(v) >= n {
                return;
            }
            self.w.run_for(to);
            to = (to * 2).min(1000);
        }
        let got = self.count_value(v);
        self.w
            .fail(format!("only {got} servers have counter {v}, wanted {n}"));
    }

    fn count_value(&self, v: u64) -> usize {
        (0..NSRV)
            .filter(|i| self.w.state(*i).is_some_and(|c| c.n == v))
            .count()
    }

    fn disconnect(&mut self, i: usize) {
        self.connected[i] = false;
        self.w.isolate(i);
    }

    fn connect_all(&mut self) {
        self.connected = vec![true; NSRV];
        self.w.heal();
    }

    fn shutdown_all(&mut self) {
        for i in 0..NSRV {
            self.w.shutdown(i);
        }
    }

    fn restart_all(&mut self) {
        for i in 0..NSRV {
            self.w.start(i);
        }
        self.connect_all();
    }
}

/// TestBasic4A: ten Incs; the i-th returns i+1; all servers reach 10.
#[test]
fn basic_4a() {
    run_seeds("basic_4a", SEEDS, |seed| {
        let mut t = T::new(seed, None);
        for i in 0..10 {
            let n = t.one_inc();
            assert_eq!(
                n,
                i + 1,
                "seed {seed}: Inc returned {n}, expected {}",
                i + 1
            );
        }
        t.check_counter(10, NSRV);
    });
}

/// TestConcurrent4A: 50 concurrent Incs; all servers reach 50.
#[test]
fn concurrent_4a() {
    run_seeds("concurrent_4a", SEEDS, |seed| {
        let mut t = T::new(seed, None);
        t.one_partition(&[0, 1, 2], CounterOp::Null);
        let leader = t.leader;
        let first = t.sub.borrow().log.keys().last().copied().unwrap_or(0) + 1;
        for _ in 0..50 {
            t.sub.borrow_mut().submit(leader, CounterOp::Inc);
        }
        t.w.run_until_clients_finish(NSEC_MS);
        // Retry any that landed at a deposed leader, one at a time.
        let failed = t
            .sub
            .borrow()
            .log
            .range(first..first + 50)
            .filter(|(_, s)| matches!(s.answered, Some((_, Err(_)))))
            .count();
        for _ in 0..failed {
            t.one_inc();
        }
        t.check_counter(50, NSRV);
    });
}

/// TestLeaderFailure4A: progress with the leader cut off; it catches up.
#[test]
fn leader_failure_4a() {
    run_seeds("leader_failure_4a", SEEDS, |seed| {
        let mut t = T::new(seed, None);
        assert_eq!(t.one_inc(), 1);
        let l = t.leader;
        t.disconnect(l);
        let others: Vec<usize> = (0..NSRV).filter(|i| *i != l).collect();
        assert_eq!(t.one_partition(&others, CounterOp::Inc), CounterOut::N(2));
        t.connect_all();
        t.check_counter(2, NSRV);
    });
}

/// TestLeaderPartition4A: 100 Decs at a leader partitioned into the
/// minority never succeed; they do not all return within 1 s while the
/// partition lasts, and all return within 1 s after it heals.
#[test]
fn leader_partition_4a() {
    run_seeds("leader_partition_4a", SEEDS, |seed| {
        let mut t = T::new(seed, None);
        assert_eq!(t.one_inc(), 1);
        let l = t.leader;
        // MakePartition: the majority without l, the rest with l.
        let p1: Vec<usize> = (0..NSRV).filter(|i| *i != l).take(NSRV / 2 + 1).collect();
        let p2: Vec<usize> = (0..NSRV).filter(|i| !p1.contains(i)).collect();
        t.w.partition(&p1, &p2);
        let first_dec = t.sub.borrow().log.keys().last().copied().unwrap_or(0) + 1;
        for _ in 0..100 {
            t.sub.borrow_mut().submit(l, CounterOp::Dec);
        }
        t.w.run_for(10);
        assert_eq!(t.one_partition(&p1, CounterOp::Inc), CounterOut::N(2));
        let decs = |t: &T| -> (usize, usize) {
            let sub = t.sub.borrow();
            let mut answered = 0;
            for (id, s) in sub.log.range(first_dec..first_dec + 100) {
                if let Some((_, a)) = &s.answered {
                    assert!(
                        a.is_err(),
                        "Dec submission {id} returned OK: a minority committed"
                    );
                    answered += 1;
                }
            }
            (answered, sub.log.range(first_dec..first_dec + 100).count())
        };
        t.w.run_for(1000);
        let (answered, total) = decs(&t);
        assert_eq!(total, 100);
        assert!(
            answered < total,
            "seed {seed}: all Dec submissions returned while partitioned"
        );
        t.connect_all();
        t.w.run_for(1000);
        let (answered, total) = decs(&t);
        assert_eq!(
            answered,
            total,
            "seed {seed}: {} Dec submissions still pending 1 s after healing",
            total - answered
        );
        t.check_counter(2, NSRV);
    });
}

/// TestRestartReplay4A: after 100 Incs and a restart of every server, the
/// next Inc returns 101 (the log is replayed).
#[test]
fn restart_replay_4a() {
    run_seeds("restart_replay_4a", SEEDS, |seed| {
        let mut t = T::new(seed, None);
        for _ in 0..100 {
            t.one_inc();
        }
        t.shutdown_all();
        t.w.run_for(1000);
        t.restart_all();
        assert_eq!(t.one_inc(), 101, "seed {seed}: the log was not replayed");
        t.check_counter(101, NSRV);
    });
}

/// Submit `count` Nulls at the leader, shut everything down after 20 ms,
/// and require every submission to return within NSEC + 1 s.
fn nulls_then_shutdown(t: &mut T, count: usize) {
    t.one_partition(&[0, 1, 2], CounterOp::Null);
    let leader = t.leader;
    let first = t.sub.borrow().log.keys().last().copied().unwrap_or(0) + 1;
    for _ in 0..count {
        t.sub.borrow_mut().submit(leader, CounterOp::Null);
    }
    t.w.run_for(20);
    t.shutdown_all();
    t.w.run_for(NSEC_MS + 1000);
    let pending = t
        .sub
        .borrow()
        .log
        .range(first..)
        .filter(|(_, s)| s.answered.is_none())
        .count();
    assert_eq!(
        pending, 0,
        "{pending} submissions did not return after shutdown"
    );
}

/// TestShutdown4A: shutting down releases every pending submission.
#[test]
fn shutdown_4a() {
    run_seeds("shutdown_4a", SEEDS, |seed| {
        let mut t = T::new(seed, None);
        nulls_then_shutdown(&mut t, 100);
    });
}

/// TestRestartSubmit4A: restarts mixed with pending submissions; old
/// submissions are never confused with new ones and counters agree.
#[test]
fn restart_submit_4a() {
    run_seeds("restart_submit_4a", SEEDS, |seed| {
        let mut t = T::new(seed, None);
        for _ in 0..100 {
            t.one_inc();
        }
        t.shutdown_all();
        t.w.run_for(1000);
        t.restart_all();
        assert_eq!(t.one_inc(), 101);
        nulls_then_shutdown(&mut t, 100);
        t.restart_all();
        assert_eq!(
            t.one_inc(),
            102,
            "seed {seed}: an old submission was applied as a new one"
        );
        t.check_counter(102, NSRV);
    });
}

/// rsm TestSnapshot4C: with maxraftstate 1000, 100 Incs keep the persisted
/// state under 2 × 1000 bytes, and a full restart restores the counter from
/// the snapshot.
#[test]
fn rsm_snapshot_4c() {
    run_seeds("rsm_snapshot_4c", SEEDS, |seed| {
        let mut t = T::new(seed, Some(1000));
        for _ in 0..100 {
            t.one_inc();
        }
        let size = t.w.max_raft_state_size();
        assert!(
            size <= 2 * 1000,
            "seed {seed}: raft state {size} bytes > 2000"
        );
        assert!(
            t.w.max_snapshot_size() > 0,
            "seed {seed}: no snapshot was taken"
        );
        t.shutdown_all();
        t.restart_all();
        assert_eq!(t.one_inc(), 101, "seed {seed}: state lost across restart");
        t.check_counter(101, NSRV);
    });
}
