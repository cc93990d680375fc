//! Log compaction and InstallSnapshot (Raft paper §7).

use core_raft::{Action, Input, InstallSnapshot, LogIndex, Message, Snapshot};
use model_tests::sim::scenario::*;
use model_tests::sim::Envelope;

fn snapshot(c: &mut Scenario, id: core_raft::NodeId, index: LogIndex) -> Vec<Action> {
    c.step(
        id,
        Input::Snapshot {
            index,
            data: format!("state through {}", index.0).into_bytes(),
        },
    )
}

/// A 3-node cluster led by node 1 with `count` commands applied everywhere.
fn cluster_with_commands(count: u8) -> Scenario {
    let mut c = Scenario::new(3, |_| {});
    c.elect(n(1));
    for i in 0..count {
        c.propose(n(1), &[i]);
    }
    c.deliver_all();
    c.run(3);
    c
}

/// §7: after `Input::Snapshot` the covered log prefix is gone (in memory and
/// in storage) and the suffix is kept; snapshots outside (snapshot, applied]
/// are ignored.
#[test]
fn snapshot_discards_the_covered_prefix() {
    let mut c = cluster_with_commands(10);
    let applied = c.node(n(1)).applied_index();
    assert_eq!(applied, c.node(n(1)).last_index());
    let at = LogIndex(applied.0 - 2);
    let term = c.node(n(1)).term_at(at).unwrap();
    let a = snapshot(&mut c, n(1), at);
    assert!(matches!(
        &a[..],
        [Action::PersistSnapshot { snapshot, discard_log: false }]
            if snapshot.index == at && snapshot.term == term
    ));
    let r = c.node(n(1));
    assert_eq!(r.snapshot_index(), at);
    assert_eq!(r.term_at(at), Some(term));
    assert_eq!(r.term_at(at.prev()), None);
    assert!(r.entries(LogIndex(1), at).is_empty());
    assert_eq!(r.entries(at.next(), applied).len(), 2);
    let d = &c.durable(n(1));
    assert_eq!(d.snapshot.as_ref().map(|s| s.index), Some(at));
    assert_eq!(d.entries.first().map(|e| e.index), Some(at.next()));

    // Not newer than the current snapshot, or beyond what was applied.
    assert_eq!(snapshot(&mut c, n(1), at), vec![]);
    assert_eq!(snapshot(&mut c, n(1), LogIndex(1)), vec![]);
    assert_eq!(snapshot(&mut c, n(1), applied.next()), vec![]);
    // The cluster keeps working on top of the snapshot.
    c.propose(n(1), b"more");
    c.run(3);
    assert_eq!(c.applied_commands(n(2)).last(), Some(&b"more".to_vec()));
}

/// §7: a follower that lags behind the leader's snapshot receives an
/// InstallSnapshot, hands the snapshot to its application, then continues
/// with the entries after it.
#[test]
fn lagging_follower_receives_install_snapshot() {
    let mut c = Scenario::new(3, |_| {});
    c.elect(n(1));
    c.isolate(n(3));
    for i in 0..10u8 {
        c.propose(n(1), &[i]);
    }
    c.run(3);
    let applied = c.node(n(1)).applied_index();
    snapshot(&mut c, n(1), applied);
    c.heal();
    c.run(10);
    assert!(
        c.count_sent(|e| e.from == n(1)
            && e.to == n(3)
            && matches!(e.msg, Message::InstallSnapshot(_)))
            > 0
    );
    let installed = c.outputs(n(3)).iter().find_map(|a| match a {
        Action::ApplySnapshot(s) => Some(s.clone()),
        _ => None,
    });
    let s = installed.expect("node 3 applied a snapshot");
    assert_eq!(s.index, applied);
    assert_eq!(s.data, format!("state through {}", applied.0).into_bytes());
    assert_eq!(c.node(n(3)).snapshot_index(), applied);
    assert_eq!(c.durable(n(3)).snapshot, Some(s));
    assert_eq!(c.node(n(3)).applied_index(), applied);

    c.propose(n(1), b"after");
    c.run(3);
    assert_eq!(c.applied_commands(n(3)), vec![b"after".to_vec()]);
    assert_eq!(c.node(n(3)).last_index(), c.node(n(1)).last_index());
}

/// §7: an InstallSnapshot whose last entry the follower already holds (same
/// index and term) keeps the entries after it; one that conflicts discards
/// the whole log.
#[test]
fn install_snapshot_keeps_a_matching_suffix_and_drops_a_conflicting_log() {
    let mut c = Scenario::new(3, |_| {});
    c.elect(n(1));
    for i in 0..5u8 {
        c.propose(n(1), &[i]);
    }
    // Deliver the appends only: node 2 holds the entries but not their commit.
    let appends: Vec<Envelope> = c
        .take_queue()
        .into_iter()
        .filter(|e| e.to == n(2))
        .collect();
    for e in appends {
        c.deliver(e);
    }
    c.take_queue();
    let commit = c.node(n(2)).commit_index();
    let last = c.node(n(2)).last_index();
    let term = c.node(n(1)).term();
    assert!(commit < last.prev());
    let keep = Message::InstallSnapshot(InstallSnapshot {
        term,
        snapshot: Snapshot {
            membership: core_raft::Membership::with_voters((1..=3).map(core_raft::NodeId)),
            index: last.prev(),
            term,
            data: b"s".to_vec(),
        },
        round: 0,
    });
    let a = c.step(
        n(2),
        Input::Receive {
            from: n(1),
            msg: keep,
        },
    );
    assert!(a.iter().any(|a| matches!(
        a,
        Action::PersistSnapshot {
            discard_log: false,
            ..
        }
    )));
    assert!(a.iter().any(|a| matches!(a, Action::ApplySnapshot(_))));
    assert_eq!(c.node(n(2)).last_index(), last, "matching suffix kept");
    assert_eq!(c.node(n(2)).commit_index(), last.prev());

    // A snapshot at an index node 3 does not hold replaces its log.
    let conflict = Message::InstallSnapshot(InstallSnapshot {
        term,
        snapshot: Snapshot {
            membership: core_raft::Membership::with_voters((1..=3).map(core_raft::NodeId)),
            index: LogIndex(last.0 + 5),
            term,
            data: b"t".to_vec(),
        },
        round: 0,
    });
    let a = c.step(
        n(3),
        Input::Receive {
            from: n(1),
            msg: conflict,
        },
    );
    assert!(a.iter().any(|a| matches!(
        a,
        Action::PersistSnapshot {
            discard_log: true,
            ..
        }
    )));
    assert_eq!(c.node(n(3)).last_index(), LogIndex(last.0 + 5));
    assert!(c.durable(n(3)).entries.is_empty());
}

/// §7 and the crate contract's step 4: a node restored from a snapshot plus
/// log resumes applying right after the snapshot's index.
#[test]
fn restore_from_snapshot_and_log_resumes_after_the_snapshot() {
    // Single node: everything it proposes commits at once.
    let mut c = Scenario::new(1, |_| {});
    c.elect(n(1));
    for i in 0..10u8 {
        c.propose(n(1), &[i]);
    }
    let at = LogIndex(6);
    snapshot(&mut c, n(1), at);
    c.propose(n(1), b"x");
    c.propose(n(1), b"y");
    let last = c.node(n(1)).last_index();
    c.crash(n(1));
    c.restart(n(1));
    assert_eq!(c.node(n(1)).snapshot_index(), at);
    assert_eq!(c.node(n(1)).applied_index(), at);
    assert_eq!(c.node(n(1)).last_index(), last);
    let mark = c.outputs(n(1)).len();
    c.elect(n(1));
    let first_applied = c.outputs(n(1))[mark..].iter().find_map(|a| match a {
        Action::Apply(es) => Some(es[0].index),
        _ => None,
    });
    assert_eq!(first_applied, Some(at.next()));
    assert_eq!(c.node(n(1)).applied_index(), c.node(n(1)).last_index());

    // A follower of a 3-node cluster does the same.
    let mut c = cluster_with_commands(8);
    let at = c.node(n(2)).applied_index();
    snapshot(&mut c, n(2), LogIndex(at.0 - 3));
    c.crash(n(2));
    c.restart(n(2));
    let mark = c.outputs(n(2)).len();
    c.run(3);
    let first_applied = c.outputs(n(2))[mark..].iter().find_map(|a| match a {
        Action::Apply(es) => Some(es[0].index),
        _ => None,
    });
    assert_eq!(first_applied, Some(LogIndex(at.0 - 2)));
    assert_eq!(c.node(n(2)).applied_index(), at);
    assert_eq!(c.node(n(2)).term(), c.node(n(1)).term());
}
