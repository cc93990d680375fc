//! Rebalancing: quickcheck properties over random sequences of Join, Leave
//! and Move on [`ShardConfig`] (10 and 12 shards), the classic
//! [`Controller`] applying the same operations on three replicas, and the
//! lab's `TestMinimalAgain`.
//!
//! The properties run a fixed number of cases from a fixed seed, so a run is
//! replayable; a failing sequence is shrunk and printed by quickcheck.
//!
//! # The minimal number of moves
//!
//! After a Join or Leave let `G` be the members (`g = |G| >= 1`), `n` the
//! number of shards, and `c_h` the number of shards member `h` held before
//! the change (shards on a non-member, [`GroupId::NONE`] included, must
//! move whatever happens). Any assignment whose loads differ by at most one
//! gives `base = n / g` shards to every member and one more to exactly
//! `extra = n % g` of them. A member with quota `q` keeps at most
//! `min(c_h, q)` of its shards, so the number of shards that change owner
//! is at least
//!
//! ```text
//! n - sum_h min(c_h, base) - min(extra, #{h : c_h > base})
//! ```
//!
//! where the last term counts the `base + 1` quotas that can be used by a
//! member holding more than `base` (a larger quota helps a member only if it
//! holds more than `base`, and then by exactly one). The bound is reached
//! by giving the larger quotas to the members holding the most, so it is the
//! exact minimum: the properties assert that the number of changed shards
//! *equals* it. (The weaker bound of the lab's handout, orphans plus
//! `sum_h max(0, c_h - ceil(n / g))`, is implied.) With no members left,
//! every shard not already on [`GroupId::NONE`] changes, and must.

use core_kv::{LogIndex, StateMachine};
use core_shard::classic::{Controller, CtrlOp, CtrlReply};
use core_shard::{ConfigNum, GroupId, ShardConfig, ShardId};
use quickcheck::{Arbitrary, Gen, QuickCheck, TestResult};
use std::collections::BTreeMap;
use std::io::Read;

/// Cases per property, and the seed they are drawn from.
const CASES: u64 = 300;
const SEED: u64 = 0x5eed_0005;
/// Largest sequence length quickcheck generates.
const MAX_LEN: usize = 40;

/// One step of a random history.
#[derive(Clone, Debug)]
enum Step {
    /// Join these groups at once; the `u8` picks a server-list variant, so
    /// a group already present may be given a new list.
    Join(Vec<(u64, u8)>),
    /// Leave these groups (some may not be members).
    Leave(Vec<u64>),
    /// Give shard `shard % n` to group `gid` (which may not be a member).
    Move { shard: u32, gid: u64 },
}

fn gid(g: &mut Gen) -> u64 {
    u64::arbitrary(g) % 20 + 1
}

fn one_to_three(g: &mut Gen) -> usize {
    usize::arbitrary(g) % 3 + 1
}

impl Arbitrary for Step {
    fn arbitrary(g: &mut Gen) -> Step {
        match u8::arbitrary(g) % 5 {
            0 | 1 => Step::Join(
                (0..one_to_three(g))
                    .map(|_| (gid(g), u8::arbitrary(g) % 3))
                    .collect(),
            ),
            2 | 3 => Step::Leave((0..one_to_three(g)).map(|_| gid(g)).collect()),
            _ => Step::Move {
                shard: u32::arbitrary(g),
                gid: gid(g),
            },
        }
    }

    fn shrink(&self) -> Box<dyn Iterator<Item = Step>> {
        // Fewer groups in a Join or Leave (never none).
        match self {
            Step::Join(gs) if gs.len() > 1 => Box::new(
                (0..gs.len())
                    .map(|i| {
                        let mut fewer = gs.clone();
                        fewer.remove(i);
                        Step::Join(fewer)
                    })
                    .collect::<Vec<_>>()
                    .into_iter(),
            ),
            Step::Leave(gs) if gs.len() > 1 => Box::new(
                (0..gs.len())
                    .map(|i| {
                        let mut fewer = gs.clone();
                        fewer.remove(i);
                        Step::Leave(fewer)
                    })
                    .collect::<Vec<_>>()
                    .into_iter(),
            ),
            _ => Box::new(std::iter::empty()),
        }
    }
}

/// Group `gid`'s server list, variant `v` (names differ per variant, and
/// are deliberately not in sorted order).
fn servers(gid: u64, v: u8) -> Vec<String> {
    (0..=v).rev().map(|i| format!("g{gid}-v{v}-s{i}")).collect()
}

/// The groups of a Join as a map, inserted in the order given. Later
/// duplicates of a gid win, as repeated inserts into a map do.
fn join_map<'a>(groups: impl Iterator<Item = &'a (u64, u8)>) -> BTreeMap<GroupId, Vec<String>> {
    let mut map = BTreeMap::new();
    for (g, v) in groups {
        map.insert(GroupId(*g), servers(*g, *v));
    }
    map
}

/// The exact minimum number of shards that must change owner to go from
/// `before` to a balanced assignment over `members` (see the crate-level
/// comment of this file).
fn minimal_moves(before: &ShardConfig, members: &[GroupId]) -> usize {
    let n = before.shards.len();
    if members.is_empty() {
        return before
            .shards
            .iter()
            .filter(|g| **g != GroupId::NONE)
            .count();
    }
    let g = members.len();
    let (base, extra) = (n / g, n % g);
    let counts: Vec<usize> = members
        .iter()
        .map(|m| before.shards.iter().filter(|o| *o == m).count())
        .collect();
    let kept_at_base: usize = counts.iter().map(|c| (*c).min(base)).sum();
    let above_base = counts.iter().filter(|c| **c > base).count();
    n - kept_at_base - extra.min(above_base)
}

fn changed(before: &ShardConfig, after: &ShardConfig) -> usize {
    before
        .shards
        .iter()
        .zip(&after.shards)
        .filter(|(a, b)| a != b)
        .count()
}

/// Every check that must hold after a Join or Leave from `before` to
/// `after`, where `expected_groups` is the member map `after` must have.
fn check_rebalance(
    before: &ShardConfig,
    after: &ShardConfig,
    expected_groups: &BTreeMap<GroupId, Vec<String>>,
) -> Result<(), String> {
    after.check_balanced()?;
    if after.num != before.num.next() {
        return Err(format!("{} follows {}", after.num, before.num));
    }
    if after.shards.len() != before.shards.len() {
        return Err("the shard count changed".into());
    }
    if &after.groups != expected_groups {
        return Err(format!(
            "server lists not preserved: {:?} instead of {:?}",
            after.groups, expected_groups
        ));
    }
    for (i, owner) in after.shards.iter().enumerate() {
        let ok = if after.groups.is_empty() {
            *owner == GroupId::NONE
        } else {
            after.groups.contains_key(owner)
        };
        if !ok {
            return Err(format!("shard {i} is on {owner}, not a member"));
        }
    }
    let members: Vec<GroupId> = after.groups.keys().copied().collect();
    let (moved, minimum) = (changed(before, after), minimal_moves(before, &members));
    if moved != minimum {
        return Err(format!(
            "{moved} shards changed owner, the minimum is {minimum}: {before} -> {after}"
        ));
    }
    Ok(())
}

/// Play `steps` on configuration 0 of `shards` shards, checking every Join
/// and Leave.
fn play(shards: u32, steps: &[Step]) -> Result<(), String> {
    let mut c = ShardConfig::initial(shards);
    for step in steps {
        let next = match step {
            Step::Join(gs) => {
                let map = join_map(gs.iter());
                let next = c.join(&map);
                // The same groups inserted in the opposite order.
                let mut other_order = BTreeMap::new();
                for (g, s) in map.iter().rev() {
                    other_order.insert(*g, s.clone());
                }
                if c.join(&other_order) != next {
                    return Err("a Join depends on the map's insertion order".into());
                }
                let mut expected = c.groups.clone();
                expected.extend(map);
                check_rebalance(&c, &next, &expected)?;
                next
            }
            Step::Leave(gs) => {
                let gids: Vec<GroupId> = gs.iter().map(|g| GroupId(*g)).collect();
                let next = c.leave(&gids);
                let mut reversed = gids.clone();
                reversed.reverse();
                if c.leave(&reversed) != next {
                    return Err("a Leave depends on the order of its gids".into());
                }
                let mut expected = c.groups.clone();
                expected.retain(|g, _| !gids.contains(g));
                check_rebalance(&c, &next, &expected)?;
                next
            }
            Step::Move { shard, gid } => {
                let s = ShardId(shard % shards);
                let next = c.moved(s, GroupId(*gid));
                if next.owner(s) != GroupId(*gid) || changed(&c, &next) > 1 {
                    return Err(format!("Move of {s} to g{gid} is not literal"));
                }
                if next.groups != c.groups || next.num != c.num.next() {
                    return Err("Move changed the groups or skipped a number".into());
                }
                next
            }
        };
        c = next;
    }
    Ok(())
}

fn result(r: Result<(), String>) -> TestResult {
    match r {
        Ok(()) => TestResult::passed(),
        Err(e) => TestResult::error(e),
    }
}

fn quickcheck() -> QuickCheck {
    QuickCheck::new()
        .tests(CASES)
        .max_tests(CASES)
        .rng(Gen::from_size_and_seed(MAX_LEN, SEED))
}

#[test]
fn joins_and_leaves_on_10_shards_balance_with_minimal_moves() {
    fn prop(steps: Vec<Step>) -> TestResult {
        result(play(10, &steps))
    }
    quickcheck().quickcheck(prop as fn(Vec<Step>) -> TestResult);
}

#[test]
fn joins_and_leaves_on_12_shards_balance_with_minimal_moves() {
    fn prop(steps: Vec<Step>) -> TestResult {
        result(play(12, &steps))
    }
    quickcheck().quickcheck(prop as fn(Vec<Step>) -> TestResult);
}

/// The controller operation for a step (`shards` to reduce a Move's shard).
fn ctrl_op(shards: u32, step: &Step) -> CtrlOp {
    match step {
        Step::Join(gs) => CtrlOp::Join(join_map(gs.iter())),
        Step::Leave(gs) => CtrlOp::Leave(gs.iter().map(|g| GroupId(*g)).collect()),
        Step::Move { shard, gid } => CtrlOp::Move {
            shard: ShardId(shard % shards),
            gid: GroupId(*gid),
        },
    }
}

fn snapshot_bytes(c: &Controller) -> Vec<u8> {
    let mut bytes = Vec::new();
    c.snapshot()
        .read_to_end(&mut bytes)
        .expect("reading an in-memory snapshot");
    bytes
}

/// Three controller replicas apply the same operations: same answers, the
/// same configurations as [`ShardConfig`] computes directly (a Move to a
/// non-member is refused and makes none), every historical configuration
/// still answered, and byte-identical snapshots that restore.
fn replicas_agree(shards: u32, steps: &[Step]) -> Result<(), String> {
    let mut replicas: Vec<Controller> = (0..3).map(|_| Controller::new(shards)).collect();
    let mut history = vec![ShardConfig::initial(shards)];
    for (i, step) in steps.iter().enumerate() {
        let op = ctrl_op(shards, step);
        let index = LogIndex(i as u64 + 1);
        let answers: Vec<CtrlReply> = replicas.iter_mut().map(|r| r.apply(index, &op)).collect();
        if answers.iter().any(|a| *a != answers[0]) {
            return Err(format!("replicas answered {op:?} differently: {answers:?}"));
        }
        let latest = history.last().expect("configuration 0").clone();
        let expected = match &op {
            CtrlOp::Join(map) => Some(latest.join(map)),
            CtrlOp::Leave(gids) => Some(latest.leave(gids)),
            CtrlOp::Move { shard, gid } if latest.groups.contains_key(gid) => {
                Some(latest.moved(*shard, *gid))
            }
            _ => None,
        };
        match (&answers[0], expected) {
            (CtrlReply::Changed { num }, Some(cfg)) if *num == cfg.num => history.push(cfg),
            (CtrlReply::Invalid(_), None) => {}
            (answer, expected) => {
                return Err(format!("{op:?} answered {answer:?}, expected {expected:?}"))
            }
        }
        if replicas[0].latest() != history.last().expect("nonempty") {
            return Err(format!(
                "controller at {}, direct computation at {}",
                replicas[0].latest(),
                history.last().expect("nonempty")
            ));
        }
    }
    for cfg in &history {
        let q = replicas[1].apply(
            LogIndex(steps.len() as u64 + 1),
            &CtrlOp::Query(Some(cfg.num)),
        );
        if q != CtrlReply::Config(cfg.clone()) {
            return Err(format!("Query({}) answered {q:?}", cfg.num));
        }
    }
    let bytes: Vec<Vec<u8>> = replicas.iter().map(snapshot_bytes).collect();
    if bytes[1] != bytes[0] || bytes[2] != bytes[0] {
        return Err("replica snapshots differ".into());
    }
    let mut restored = Controller::new(shards);
    restored.restore(&mut bytes[0].as_slice())?;
    if restored != replicas[0] {
        return Err("a restored controller differs from the original".into());
    }
    Ok(())
}

#[test]
fn controller_replicas_agree_byte_for_byte_on_10_shards() {
    fn prop(steps: Vec<Step>) -> TestResult {
        result(replicas_agree(10, &steps))
    }
    quickcheck().quickcheck(prop as fn(Vec<Step>) -> TestResult);
}

#[test]
fn controller_replicas_agree_byte_for_byte_on_12_shards() {
    fn prop(steps: Vec<Step>) -> TestResult {
        result(replicas_agree(12, &steps))
    }
    quickcheck().quickcheck(prop as fn(Vec<Step>) -> TestResult);
}

/// The bound itself, on hand-computed cases, so that a wrong bound cannot
/// make the properties pass vacuously.
#[test]
fn minimal_moves_matches_hand_computed_cases() {
    let g = |ids: &[u64]| -> Vec<GroupId> { ids.iter().map(|i| GroupId(*i)).collect() };
    let with = |shards: &[u64]| ShardConfig {
        num: ConfigNum(5),
        shards: shards.iter().map(|s| GroupId(*s)).collect(),
        groups: BTreeMap::new(),
    };
    // 10 shards all on g1, g2 joins: 5 must move.
    assert_eq!(minimal_moves(&with(&[1; 10]), &g(&[1, 2])), 5);
    // 4/3/3 over g1..g3, g1 leaves: its 4 move, nothing else.
    let c = with(&[1, 1, 1, 1, 2, 2, 2, 3, 3, 3]);
    assert_eq!(minimal_moves(&c, &g(&[2, 3])), 4);
    // g4 joins 4/3/3: quotas 3/3/2/2, so g1 gives 1 and g2 or g3 gives 1.
    assert_eq!(minimal_moves(&c, &g(&[1, 2, 3, 4])), 2);
    // Unbalanced after Moves (8/2), a Leave of an absent gid rebalances:
    // 3 move from g1 to g2.
    let m = with(&[1, 1, 1, 1, 1, 1, 1, 1, 2, 2]);
    assert_eq!(minimal_moves(&m, &g(&[1, 2])), 3);
    // No members: everything not on NONE moves.
    assert_eq!(minimal_moves(&with(&[0, 0, 3, 3]), &[]), 2);
    // More groups than shards: 3 shards on g1, 5 groups: 2 move.
    assert_eq!(minimal_moves(&with(&[1, 1, 1]), &g(&[1, 2, 3, 4, 5])), 2);
}

/// A rebalance that moves more than needed fails the check: the check can
/// fail.
#[test]
fn a_balanced_but_wasteful_reassignment_fails_the_check() {
    let before = ShardConfig::initial(10)
        .join(&join_map([(1, 0)].iter()))
        .join(&join_map([(2, 0)].iter()));
    // A Leave of an absent group needs no move at all; this one swaps the
    // halves: still 5/5 and balanced, but all 10 change owner.
    let mut wasteful = before.leave(&[GroupId(9)]);
    assert_eq!(changed(&before, &wasteful), 0);
    for s in wasteful.shards.iter_mut() {
        *s = if *s == GroupId(1) {
            GroupId(2)
        } else {
            GroupId(1)
        };
    }
    assert!(wasteful.check_balanced().is_ok());
    let err = check_rebalance(&before, &wasteful, &before.groups).unwrap_err();
    assert!(
        err.contains("10 shards changed owner, the minimum is 0"),
        "{err}"
    );
}

fn ctrl_apply(c: &mut Controller, index: u64, op: CtrlOp) -> ShardConfig {
    match c.apply(LogIndex(index), &op) {
        CtrlReply::Changed { num } => match c.apply(LogIndex(index), &CtrlOp::Query(Some(num))) {
            CtrlReply::Config(cfg) => cfg,
            other => panic!("Query answered {other:?}"),
        },
        other => panic!("{op:?} answered {other:?}"),
    }
}

/// The lab's `TestMinimalAgain` (6.5840 2024): after join 1, join 2, a join
/// of 3 only takes shards for 3, and a leave of 1 only moves 1's shards,
/// each changing at most NShards / 3 + 1 = 4 shards.
#[test]
fn minimal_again_join_and_leave_move_only_what_they_must() {
    let mut ctrl = Controller::default();
    let join = |gid: u64| CtrlOp::Join(join_map([(gid, 2)].iter()));
    ctrl_apply(&mut ctrl, 1, join(1));
    let c1 = ctrl_apply(&mut ctrl, 2, join(2));
    let c2 = ctrl_apply(&mut ctrl, 3, join(3));
    for i in 0..10 {
        assert!(
            c2.shards[i] == c1.shards[i] || c2.shards[i] == GroupId(3),
            "shard {i} moved from {} to {}, not to g3",
            c1.shards[i],
            c2.shards[i]
        );
    }
    assert!(changed(&c1, &c2) <= 4, "join moved {}", changed(&c1, &c2));
    let c3 = ctrl_apply(&mut ctrl, 4, CtrlOp::Leave(vec![GroupId(1)]));
    for i in 0..10 {
        if c2.shards[i] != GroupId(1) {
            assert_eq!(c3.shards[i], c2.shards[i], "shard {i} was not on g1");
        }
    }
    assert!(changed(&c2, &c3) <= 4, "leave moved {}", changed(&c2, &c3));
    c3.check_balanced().unwrap();
    assert_eq!(c3.servers(GroupId(2)).unwrap(), servers(2, 2).as_slice());
}

/// The exact assignments a fixed sequence of joins and leaves produces.
/// Rebalancing breaks ties between equally loaded groups by group id; any
/// other order (an unordered map's, say) makes replicas, or two versions of
/// this crate, disagree. This pins the order: a change to it fails here on
/// every run, not only when a random order happens to differ.
#[test]
fn rebalancing_is_pinned_to_group_id_order() {
    let join = |c: &ShardConfig, gids: &[u64]| {
        let groups: BTreeMap<GroupId, Vec<String>> = gids
            .iter()
            .map(|g| (GroupId(*g), vec![format!("s{g}")]))
            .collect();
        c.join(&groups)
    };
    let owners = |c: &ShardConfig| c.shards.iter().map(|g| g.0).collect::<Vec<u64>>();
    let c = join(&ShardConfig::initial(12), &[5, 3, 9, 1, 7]);
    assert_eq!(owners(&c), PINNED[0]);
    let c = join(&c, &[2, 8, 4, 6, 10, 11, 12, 13]);
    assert_eq!(owners(&c), PINNED[1]);
    let c = c.leave(&[GroupId(3), GroupId(12), GroupId(7), GroupId(1)]);
    assert_eq!(owners(&c), PINNED[2]);
    let c = join(&c, &[20, 21]);
    assert_eq!(owners(&c), PINNED[3]);
    let c = c.leave(&[GroupId(2), GroupId(4), GroupId(6), GroupId(8), GroupId(10)]);
    assert_eq!(owners(&c), PINNED[4]);
}

/// Owners after each step of `rebalancing_is_pinned_to_group_id_order`.
const PINNED: [[u64; 12]; 5] = [
    [1, 1, 1, 3, 3, 3, 5, 5, 7, 7, 9, 9],
    [1, 2, 4, 3, 6, 8, 5, 10, 7, 11, 9, 12],
    [2, 2, 4, 4, 6, 8, 5, 10, 5, 11, 9, 13],
    [2, 2, 4, 20, 6, 8, 5, 10, 21, 11, 9, 13],
    [5, 9, 11, 20, 13, 20, 5, 21, 21, 11, 9, 13],
];
