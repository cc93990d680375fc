//! Quickcheck properties: random fault schedules against a simulated
//! cluster. Every invariant is checked after every step; a failing schedule
//! shrinks to a minimal one, which quickcheck prints. `QUICKCHECK_TESTS`
//! raises the number of schedules, `QUICKCHECK_GENERATOR_SIZE` their length.

use model_tests::sim::lab::cmd;
use model_tests::sim::{Cluster, NetConfig, SimConfig, TraceMode};
use quickcheck::{Arbitrary, Gen, QuickCheck, TestResult};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// One step of a fault schedule.
#[derive(Clone, Debug)]
enum FaultOp {
    /// Offer a command to node `i % n`.
    Propose(u8),
    /// Let virtual time pass.
    Run { ms: u16 },
    /// Crash node `i % n`.
    Crash(u8),
    /// Restart node `i % n` if it is down.
    Restart(u8),
    /// Cut node `i % n` off.
    Disconnect(u8),
    /// Reconnect everyone.
    Heal,
    /// Split by bit mask.
    Partition(u8),
    /// Switch between a reliable and a lossy, duplicating network.
    Lossy(bool),
}

impl Arbitrary for FaultOp {
    fn arbitrary(g: &mut Gen) -> FaultOp {
        match u8::arbitrary(g) % 16 {
            0..=4 => FaultOp::Propose(u8::arbitrary(g)),
            5..=9 => FaultOp::Run {
                ms: u16::arbitrary(g) % 1500,
            },
            10 => FaultOp::Crash(u8::arbitrary(g)),
            11 => FaultOp::Restart(u8::arbitrary(g)),
            12 => FaultOp::Disconnect(u8::arbitrary(g)),
            13 => FaultOp::Heal,
            14 => FaultOp::Partition(u8::arbitrary(g)),
            _ => FaultOp::Lossy(bool::arbitrary(g)),
        }
    }

    fn shrink(&self) -> Box<dyn Iterator<Item = FaultOp>> {
        match self {
            FaultOp::Run { ms } if *ms > 1 => {
                Box::new(std::iter::once(FaultOp::Run { ms: ms / 2 }))
            }
            _ => Box::new(std::iter::empty()),
        }
    }
}

/// Play a schedule on a cluster of `n` nodes, then heal and require
/// agreement. Panics on any violation.
fn play(n: usize, snapshot: bool, schedule: &[FaultOp]) {
    let mut config = SimConfig::lab(n, true, 7);
    config.raft.leader_noop = true;
    config.snapshot_interval = snapshot.then_some(5);
    config.trace = TraceMode::Off;
    let mut c = Cluster::new(config);
    let mut next = 1u64;
    for op in schedule {
        match *op {
            FaultOp::Propose(i) => {
                let i = i as usize % n;
                if c.is_up(i) {
                    next += 1;
                    c.propose(i, cmd(next));
                }
            }
            FaultOp::Run { ms } => c.run_for(u64::from(ms)),
            FaultOp::Crash(i) => c.crash(i as usize % n),
            FaultOp::Restart(i) => {
                let i = i as usize % n;
                if !c.is_up(i) {
                    c.start(i);
                }
            }
            FaultOp::Disconnect(i) => c.disconnect(i as usize % n),
            FaultOp::Heal => c.connect_all(),
            FaultOp::Partition(mask) => {
                let (a, b): (Vec<usize>, Vec<usize>) = (0..n).partition(|i| mask & (1 << i) != 0);
                c.partition(&a, &b);
            }
            FaultOp::Lossy(lossy) => c.set_net(if lossy {
                NetConfig {
                    duplicate_per_mille: 200,
                    ..NetConfig::unreliable()
                }
            } else {
                NetConfig::reliable()
            }),
        }
    }
    c.set_net(NetConfig::reliable());
    for i in 0..n {
        if !c.is_up(i) {
            c.start(i);
        }
    }
    c.connect_all();
    next += 1;
    c.one(cmd(next), n, true);
}

fn check(n: usize, snapshot: bool, schedule: &[FaultOp]) -> TestResult {
    // Quiet the default panic output while quickcheck shrinks; the final
    // minimal schedule is printed by quickcheck itself.
    match catch_unwind(AssertUnwindSafe(|| play(n, snapshot, schedule))) {
        Ok(()) => TestResult::passed(),
        Err(panic) => {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            TestResult::error(message)
        }
    }
}

fn three_nodes(schedule: Vec<FaultOp>) -> TestResult {
    check(3, false, &schedule)
}

fn five_nodes_with_snapshots(schedule: Vec<FaultOp>) -> TestResult {
    check(5, true, &schedule)
}

#[test]
fn three_nodes_survive_any_fault_schedule() {
    QuickCheck::new()
        .tests(150)
        .quickcheck(three_nodes as fn(Vec<FaultOp>) -> TestResult);
}

#[test]
fn five_nodes_with_snapshots_survive_any_fault_schedule() {
    QuickCheck::new()
        .tests(100)
        .quickcheck(five_nodes_with_snapshots as fn(Vec<FaultOp>) -> TestResult);
}
