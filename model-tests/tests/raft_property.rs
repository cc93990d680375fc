//! A quickcheck property over random schedules of a 3-node cluster: any
//! interleaving of ticks, deliveries, drops, duplicates, proposals, reads,
//! snapshots, crashes, restarts and partitions never produces two leaders in
//! one term, never applies different entries at one index (Raft paper §5.4.3,
//! Figure 3), keeps leader completeness and persist-before-send, and a
//! healed cluster converges again.
//!
//! On failure quickcheck shrinks the schedule and prints it as
//! `Arguments: ([Op, ...])`; paste that list into [`replay`] in a new test to
//! reproduce it deterministically.

use core_raft::{Config, Input, LogIndex, NodeId};
use model_tests::sim::scenario::*;
use quickcheck::{Arbitrary, Gen, QuickCheck};

/// One scheduling decision. Node numbers are taken modulo the cluster size
/// and queue positions modulo the queue length, so every value is valid.
#[derive(Clone, Debug)]
enum Op {
    Tick(u8),
    TickAll,
    Deliver(u8),
    DeliverAll,
    Drop(u8),
    Duplicate(u8),
    Propose(u8, u8),
    Read(u8),
    Snapshot(u8),
    Crash(u8),
    Restart(u8),
    Isolate(u8),
    Heal,
}

impl Arbitrary for Op {
    fn arbitrary(g: &mut Gen) -> Op {
        let x = u8::arbitrary(g);
        let y = u8::arbitrary(g);
        match u8::arbitrary(g) % 100 {
            0..=24 => Op::TickAll,
            25..=36 => Op::Tick(x),
            37..=61 => Op::Deliver(x),
            62..=66 => Op::DeliverAll,
            67..=71 => Op::Drop(x),
            72..=74 => Op::Duplicate(x),
            75..=82 => Op::Propose(x, y),
            83..=86 => Op::Read(x),
            87..=89 => Op::Snapshot(x),
            90..=91 => Op::Crash(x),
            92..=95 => Op::Restart(x),
            96 => Op::Isolate(x),
            _ => Op::Heal,
        }
    }
}

fn fast_timers(cfg: &mut Config) {
    cfg.election_ticks_min = 4;
    cfg.election_ticks_max = 8;
    cfg.heartbeat_ticks = 1;
    cfg.max_entries_per_message = 3;
    cfg.max_inflight_messages = 2;
}

/// Run `ops`, then heal everything and check that the cluster converges.
/// Safety is checked by the harness after every step (it panics on a
/// violation, which quickcheck reports as a failure with the input).
fn replay(ops: Vec<Op>) -> bool {
    replay_with(0, ops)
}

/// As [`replay`], with the optional protocol features turned off by the
/// bits of `flags`: 1 pre-vote, 2 check-quorum, 4 the leader's no-op; bit
/// 8 runs five nodes instead of three.
fn replay_with(flags: u8, ops: Vec<Op>) -> bool {
    let nodes = if flags & 8 == 0 { 3 } else { 5 };
    let node = |x: u8| NodeId(1 + x as u64 % nodes);
    let mut c = Scenario::new(nodes, |cfg| {
        fast_timers(cfg);
        cfg.pre_vote = flags & 1 == 0;
        cfg.check_quorum = flags & 2 == 0;
        cfg.leader_noop = flags & 4 == 0;
    });
    let mut read_id = 0;
    let n_ops = ops.len();
    for op in ops {
        // Even node numbers in proposals, reads, crashes and partitions aim at the
        // current leader (if any), so that leadership changes under load.
        let target = |c: &Scenario, x: u8| match c.leader() {
            Some(l) if x & 1 == 0 => l,
            _ => node(x),
        };
        let op = match op {
            Op::Propose(x, d) => Op::Propose(target(&c, x).0 as u8 - 1, d),
            Op::Read(x) => Op::Read(target(&c, x).0 as u8 - 1),
            Op::Crash(x) => Op::Crash(target(&c, x).0 as u8 - 1),
            Op::Isolate(x) => Op::Isolate(target(&c, x).0 as u8 - 1),
            other => other,
        };
        match op {
            Op::Tick(x) if c.is_up(node(x)) => {
                c.tick(node(x));
            }
            Op::TickAll => c.tick_all(),
            Op::Deliver(k) if c.queue_len() > 0 => {
                let e = c.remove_queued(k as usize % c.queue_len()).unwrap();
                c.deliver(e);
            }
            Op::DeliverAll => c.deliver_all(),
            Op::Drop(k) if c.queue_len() > 0 => {
                c.remove_queued(k as usize % c.queue_len());
            }
            Op::Duplicate(k) if c.queue_len() > 0 => {
                let e = c.queue()[k as usize % c.queue_len()].clone();
                c.push_queued(e);
            }
            Op::Propose(x, data) if c.is_up(node(x)) => {
                c.propose(node(x), &[data]);
            }
            Op::Read(x) if c.is_up(node(x)) => {
                read_id += 1;
                c.step(node(x), Input::ReadIndex { id: read_id });
            }
            Op::Snapshot(x) if c.is_up(node(x)) => {
                let index = c.node(node(x)).applied_index();
                c.step(
                    node(x),
                    Input::Snapshot {
                        index,
                        data: index.0.to_le_bytes().to_vec(),
                    },
                );
            }
            Op::Crash(x) => c.crash(node(x)),
            Op::Restart(x) if !c.is_up(node(x)) => c.restart(node(x)),
            Op::Isolate(x) => c.isolate(node(x)),
            Op::Heal => c.heal(),
            _ => {}
        }
    }
    // Liveness once the network is healthy: a leader emerges and every node
    // catches up with its log.
    c.heal();
    for id in c.ids() {
        if !c.is_up(id) {
            c.restart(id);
        }
    }
    let mut pushed = None;
    for _ in 0..300 {
        c.run(1);
        if let Some(l) = c.leader() {
            // Without the no-op a leader commits earlier terms' entries only
            // along with one of its own.
            let term = c.node(l).term();
            if pushed != Some(term) {
                pushed = Some(term);
                c.propose(l, b"final");
            }
            let commit = c.node(l).commit_index();
            let last = c.node(l).last_index();
            if commit == last
                && c.ids().iter().all(|id| {
                    c.node(*id).applied_index() == commit && c.node(*id).last_index() == last
                })
            {
                if std::env::var("PROPERTY_STATS").is_ok() {
                    eprintln!(
                        "ops {n_ops}: {} terms with a leader, {} entries applied, {} messages, {} reads served",
                        c.leader_terms(),
                        c.max_commit().0,
                        c.sent().len(),
                        c.all_outputs()
                            .values()
                            .flatten()
                            .filter(|a| matches!(a, core_raft::Action::ReadReady { .. }))
                            .count()
                    );
                }
                return true;
            }
        }
    }
    let states: Vec<(NodeId, LogIndex, LogIndex)> = c
        .ids()
        .iter()
        .map(|id| (*id, c.node(*id).commit_index(), c.node(*id).last_index()))
        .collect();
    eprintln!(
        "no convergence after healing: leader {:?}, {states:?}",
        c.leader()
    );
    false
}

#[test]
fn random_schedules_keep_raft_safe() {
    let tests = std::env::var("QUICKCHECK_TESTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    QuickCheck::new()
        .tests(tests)
        .rng(Gen::new(1000))
        .quickcheck(replay as fn(Vec<Op>) -> bool);
}

/// The same property with pre-vote, check-quorum and the leader no-op each
/// switched off in some runs.
#[test]
fn random_schedules_keep_raft_safe_in_every_configuration() {
    let tests = std::env::var("QUICKCHECK_TESTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    QuickCheck::new()
        .tests(tests)
        .rng(Gen::new(1000))
        .quickcheck(replay_with as fn(u8, Vec<Op>) -> bool);
}

/// A fixed schedule, as a regression example of how to replay one.
#[test]
fn replay_a_fixed_schedule() {
    let mut ops = Vec::new();
    for i in 0..50u8 {
        ops.extend([
            Op::TickAll,
            Op::Deliver(i),
            Op::Propose(i, i),
            Op::DeliverAll,
        ]);
        if i % 10 == 0 {
            ops.extend([
                Op::Crash(i),
                Op::TickAll,
                Op::Snapshot(i + 1),
                Op::Restart(i),
            ]);
        }
    }
    assert!(replay(ops));
}
