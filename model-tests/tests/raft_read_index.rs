//! Linearizable reads without log writes: ReadIndex (Raft thesis §6.4).

use core_raft::{Action, AppendEntries, AppendEntriesResponse, Input, LogIndex, Message, NodeId};
use model_tests::sim::scenario::*;

fn ready(actions: &[Action]) -> Vec<(u64, LogIndex)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::ReadReady { id, index } => Some((*id, *index)),
            _ => None,
        })
        .collect()
}

fn all_ready(c: &Scenario, id: NodeId) -> Vec<(u64, LogIndex)> {
    ready(c.outputs(id))
}

/// Thesis §6.4: the leader answers a read only after a majority has
/// acknowledged a heartbeat round sent after the read arrived; the read
/// point is the commit index at arrival.
#[test]
fn read_ready_only_after_a_majority_acknowledges() {
    let mut c = Scenario::new(5, |_| {});
    c.elect(n(1));
    c.run(3);
    let commit = c.node(n(1)).commit_index();
    let a = c.step(n(1), Input::ReadIndex { id: 7 });
    assert!(ready(&a).is_empty());
    let probes = c.take_queue();
    assert_eq!(probes.len(), 4, "one confirmation message per follower");
    // Followers 2 and 3 answer; their answers arrive one at a time.
    let mut answers = Vec::new();
    for e in probes.iter().filter(|e| e.to == n(2) || e.to == n(3)) {
        c.deliver(e.clone());
        answers.extend(c.take_queue());
    }
    c.deliver(answers[0].clone());
    assert!(all_ready(&c, n(1)).is_empty(), "ready with 2 of 5");
    c.deliver(answers[1].clone());
    assert_eq!(all_ready(&c, n(1)), vec![(7, commit)]);
}

/// An acknowledgement of a round sent before the read arrived does not
/// confirm it.
#[test]
fn acks_of_older_rounds_do_not_confirm_a_read() {
    let mut c = Scenario::new(3, |_| {});
    c.elect(n(1));
    c.run(3);
    // A heartbeat round is in flight when the read arrives.
    for _ in 0..c.config(n(1)).heartbeat_ticks {
        c.tick(n(1));
    }
    let old_round = c.take_queue();
    assert!(!old_round.is_empty());
    c.step(n(1), Input::ReadIndex { id: 1 });
    let new_round = c.take_queue();
    for e in old_round {
        c.deliver(e);
    }
    c.deliver_all();
    assert!(all_ready(&c, n(1)).is_empty(), "confirmed by a stale round");
    for e in new_round {
        c.deliver(e);
    }
    c.deliver_all();
    assert_eq!(all_ready(&c, n(1)).len(), 1);
}

/// A read that arrives before the new leader has committed an entry of its
/// own term waits for that commit (its commit index is not yet a safe read
/// point), then reads at or after the no-op.
#[test]
fn read_waits_for_the_leaders_first_commit() {
    // Deliver the election by hand, stopping as soon as node 1 leads: its
    // no-op is then still in flight.
    let mut c = Scenario::new(3, |_| {});
    for _ in 0..=20 {
        c.tick(n(1));
        if c.node(n(1)).role() != core_raft::Role::Follower {
            break;
        }
    }
    while !c.node(n(1)).is_leader() {
        c.deliver_one().expect("election in progress");
    }
    let noop = c.node(n(1)).last_index();
    assert!(c.node(n(1)).commit_index() < noop);
    let a = c.step(n(1), Input::ReadIndex { id: 3 });
    assert!(ready(&a).is_empty());
    c.deliver_all();
    let r = all_ready(&c, n(1));
    assert_eq!(r.len(), 1);
    assert!(r[0].1 >= noop);
}

/// A follower cannot serve ReadIndex; it names the leader it knows.
#[test]
fn read_on_follower_fails_with_leader_hint() {
    let mut c = Scenario::new(3, |_| {});
    let a = c.step(n(2), Input::ReadIndex { id: 5 });
    assert_eq!(
        a,
        vec![Action::ReadFailed {
            id: 5,
            leader_hint: None
        }]
    );
    c.elect(n(1));
    let a = c.step(n(2), Input::ReadIndex { id: 6 });
    assert_eq!(
        a,
        vec![Action::ReadFailed {
            id: 6,
            leader_hint: Some(n(1))
        }]
    );
}

/// Pending reads fail when the leader learns of a newer term (here from the
/// new leader's heartbeat), carrying the new leader as the hint.
#[test]
fn pending_reads_fail_when_leader_steps_down() {
    let mut c = Scenario::new(3, |_| {});
    c.elect(n(1));
    c.isolate(n(1));
    c.step(n(1), Input::ReadIndex { id: 1 });
    c.step(n(1), Input::ReadIndex { id: 2 });
    // Nodes 2 and 3 elect a new leader among themselves.
    let mut new_leader = None;
    for _ in 0..200 {
        for id in [n(2), n(3)] {
            c.tick(id);
        }
        c.deliver_all();
        new_leader = [n(2), n(3)].into_iter().find(|id| c.node(*id).is_leader());
        if new_leader.is_some() {
            break;
        }
    }
    let new_leader = new_leader.expect("a new leader");
    c.heal();
    c.run(5);
    let failed: Vec<_> = c
        .outputs(n(1))
        .iter()
        .filter_map(|a| match a {
            Action::ReadFailed { id, leader_hint } => Some((*id, *leader_hint)),
            _ => None,
        })
        .collect();
    assert!(all_ready(&c, n(1)).is_empty());
    // Either check-quorum (no hint) or the new leader's message (hint) ended
    // the old leadership; both reads fail exactly once.
    assert_eq!(failed.iter().map(|f| f.0).collect::<Vec<_>>(), vec![1, 2]);
    assert!(failed
        .iter()
        .all(|f| f.1.is_none() || f.1 == Some(new_leader)));
}

/// Pending reads fail when a newer term arrives while still leader, and the
/// hint names the sender of the AppendEntries.
#[test]
fn pending_reads_fail_on_higher_term_append() {
    let mut c = Scenario::new(3, |_| {});
    c.elect(n(1));
    c.step(n(1), Input::ReadIndex { id: 9 });
    c.take_queue();
    let term = c.node(n(1)).term();
    let a = c.step(
        n(1),
        Input::Receive {
            from: n(2),
            msg: Message::AppendEntries(AppendEntries {
                term: term.next(),
                prev_log_index: c.node(n(1)).last_index(),
                prev_log_term: c.node(n(1)).last_term(),
                entries: vec![],
                leader_commit: LogIndex(0),
                round: 1,
            }),
        },
    );
    assert!(a.contains(&Action::ReadFailed {
        id: 9,
        leader_hint: Some(n(2))
    }));
}

/// Check-quorum step-down also fails pending reads.
#[test]
fn pending_reads_fail_on_check_quorum_step_down() {
    let mut c = Scenario::new(3, |_| {});
    c.elect(n(1));
    c.isolate(n(1));
    c.step(n(1), Input::ReadIndex { id: 4 });
    for _ in 0..40 {
        c.tick(n(1));
        c.deliver_all();
    }
    assert!(!c.node(n(1)).is_leader());
    assert!(c.outputs(n(1)).contains(&Action::ReadFailed {
        id: 4,
        leader_hint: None
    }));
}

/// A single-node cluster is its own majority: reads are answered at once.
#[test]
fn single_node_answers_reads_at_once() {
    let mut c = Scenario::new(1, |_| {});
    c.elect(n(1));
    let a = c.step(n(1), Input::ReadIndex { id: 11 });
    assert_eq!(ready(&a), vec![(11, c.node(n(1)).commit_index())]);
    c.propose(n(1), b"w");
    let a = c.step(n(1), Input::ReadIndex { id: 12 });
    assert_eq!(ready(&a), vec![(12, c.node(n(1)).last_index())]);
}

/// Reads arriving together share one confirmation round.
#[test]
fn concurrent_reads_share_a_round() {
    let mut c = Scenario::new(3, |_| {});
    c.elect(n(1));
    c.run(3);
    for id in 0..100 {
        c.step(n(1), Input::ReadIndex { id });
    }
    let sent = c.queue_len();
    assert!(sent <= 2 * 2, "{sent} messages for 100 reads");
    c.deliver_all();
    let got: Vec<u64> = all_ready(&c, n(1)).iter().map(|r| r.0).collect();
    assert_eq!(got, (0..100).collect::<Vec<_>>());
}

/// An acknowledgement echoing a round the leader never sent (forged or
/// corrupted) must not pre-confirm later reads.
#[test]
fn ack_of_an_unsent_round_does_not_confirm_reads() {
    let mut c = Scenario::new(3, |_| {});
    c.elect(n(1));
    c.run(3);
    let term = c.node(n(1)).term();
    let match_index = c.node(n(1)).last_index();
    for round in [u64::MAX, 1_000_000] {
        c.step(
            n(1),
            Input::Receive {
                from: n(2),
                msg: Message::AppendEntriesResponse(AppendEntriesResponse {
                    term,
                    match_index,
                    reject: None,
                    round,
                }),
            },
        );
    }
    let a = c.step(n(1), Input::ReadIndex { id: 1 });
    assert!(ready(&a).is_empty(), "{a:?}");
    c.deliver_all();
    assert_eq!(all_ready(&c, n(1)).len(), 1);
}
