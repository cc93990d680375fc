//! Membership changes in `core-raft` (thesis §4.1), driven by hand:
//! learners catch up and are promoted, one change at a time, only after the
//! leader has committed an entry of its term, in effect when appended and
//! undone when overwritten, carried by snapshots, and a removed leader
//! steps down and never campaigns again. Then leadership transfer (§3.10).
//! Every step runs under the simulator's Raft invariants.

use core_raft::{
    Action, ChangeRefused, Input, LogIndex, Member, Membership, MembershipChange, Message, NodeId,
    Payload, Role,
};
use model_tests::sim::scenario::{n, Scenario};

fn voters(ids: &[u64]) -> Membership {
    Membership::with_voters(ids.iter().map(|i| NodeId(*i)))
}

/// Who votes and who learns (the members' identities and the retired ids
/// are checked where they matter).
fn roles(m: &Membership) -> (Vec<NodeId>, Vec<NodeId>) {
    (
        m.voters.iter().copied().collect(),
        m.learners.iter().copied().collect(),
    )
}

fn change(c: &mut Scenario, leader: NodeId, ch: MembershipChange) -> Vec<Action> {
    c.step(leader, Input::ChangeMembership(ch))
}

fn proposed(actions: &[Action]) -> Option<LogIndex> {
    actions.iter().find_map(|a| match a {
        Action::Proposed { index, .. } => Some(*index),
        _ => None,
    })
}

fn refused(actions: &[Action]) -> Option<ChangeRefused> {
    actions.iter().find_map(|a| match a {
        Action::MembershipRefused(r) => Some(r.clone()),
        _ => None,
    })
}

/// Tick `id` alone `ticks` times, delivering nothing; true if it ever sent
/// a vote request.
fn campaigns_when_ticked(c: &mut Scenario, id: NodeId, ticks: u64) -> bool {
    let mut asked = false;
    for _ in 0..ticks {
        let actions = c.tick(id);
        asked |= actions.iter().any(|a| {
            matches!(
                a,
                Action::Send {
                    msg: Message::RequestVote(_),
                    ..
                }
            )
        });
    }
    c.drop_where(|_| true);
    asked
}

/// Leader `leader` appends "add `id` as a learner" (no address: simulated).
#[track_caller]
fn add_learner(c: &mut Scenario, leader: NodeId, id: NodeId) {
    let a = change(
        c,
        leader,
        MembershipChange::AddLearner(id, Member::default()),
    );
    assert!(proposed(&a).is_some(), "{a:?}");
}

#[test]
fn a_learner_catches_up_votes_only_once_promoted_and_then_counts() {
    let mut c = Scenario::with_joiners(3, 1, |_| {});
    c.elect(n(1));
    for i in 0..5u8 {
        c.propose(n(1), &[i]);
    }
    c.deliver_all();
    let a = change(
        &mut c,
        n(1),
        MembershipChange::AddLearner(n(4), Member::default()),
    );
    assert!(proposed(&a).is_some(), "{a:?}");
    c.deliver_all();
    c.run(3);
    let mut learners = voters(&[1, 2, 3]);
    learners.learners.insert(n(4));
    for id in [n(1), n(2), n(3), n(4)] {
        assert_eq!(roles(c.node(id).membership()), roles(&learners), "{id}");
    }
    // Caught up: the leader reports it, and the learner holds the log.
    assert_eq!(
        c.node(n(1)).match_index(n(4)),
        Some(c.node(n(1)).last_index())
    );
    assert_eq!(c.node(n(4)).commit_index(), c.node(n(1)).commit_index());
    assert!(
        !campaigns_when_ticked(&mut c, n(4), 200),
        "a learner never campaigns"
    );
    let a = change(&mut c, n(1), MembershipChange::Promote(n(4)));
    assert!(proposed(&a).is_some(), "{a:?}");
    c.deliver_all();
    c.run(3);
    for id in [n(1), n(2), n(3), n(4)] {
        assert_eq!(
            roles(c.node(id).membership()),
            roles(&voters(&[1, 2, 3, 4])),
            "{id}"
        );
    }
    // Four voters: a quorum is three. The leader and the new voter alone
    // cannot commit; with one more they can.
    c.isolate(n(2));
    c.isolate(n(3));
    c.heal_between(n(1), n(4));
    let before = c.node(n(1)).commit_index();
    c.propose(n(1), b"x");
    c.deliver_all();
    assert_eq!(c.node(n(1)).commit_index(), before, "2 of 4 is no quorum");
    c.heal();
    c.run(4);
    assert!(c.node(n(1)).commit_index() > before);
}

#[test]
fn a_second_change_waits_until_the_first_is_committed() {
    let mut c = Scenario::with_joiners(3, 2, |_| {});
    c.elect(n(1));
    let a = change(
        &mut c,
        n(1),
        MembershipChange::AddLearner(n(4), Member::default()),
    );
    let first = proposed(&a).expect("the first change is appended");
    let a = change(
        &mut c,
        n(1),
        MembershipChange::AddLearner(n(5), Member::default()),
    );
    assert_eq!(refused(&a), Some(ChangeRefused::ChangeInProgress(first)));
    c.deliver_all();
    let a = change(
        &mut c,
        n(1),
        MembershipChange::AddLearner(n(5), Member::default()),
    );
    assert!(
        proposed(&a).is_some(),
        "once committed, the next goes: {a:?}"
    );
}

#[test]
fn a_new_leader_changes_nothing_before_an_entry_of_its_term_commits() {
    let mut c = Scenario::with_joiners(3, 1, |_| {});
    // Tick n1 into a campaign and deliver only until it wins: its no-op
    // is appended but not yet acknowledged.
    while c.node(n(1)).role() == Role::Follower {
        c.tick(n(1));
    }
    while !c.node(n(1)).is_leader() {
        c.deliver_one().expect("the campaign's messages");
    }
    c.drop_where(|_| true);
    let a = change(
        &mut c,
        n(1),
        MembershipChange::AddLearner(n(4), Member::default()),
    );
    assert_eq!(refused(&a), Some(ChangeRefused::TermNotCommitted));
    c.run(3);
    let a = change(
        &mut c,
        n(1),
        MembershipChange::AddLearner(n(4), Member::default()),
    );
    assert!(proposed(&a).is_some(), "{a:?}");
    // Not the leader: told so.
    let a = change(&mut c, n(2), MembershipChange::Remove(n(3)));
    assert!(a.iter().any(|x| matches!(x, Action::NotLeader { .. })));
}

#[test]
fn invalid_changes_are_refused_and_change_nothing() {
    let mut c = Scenario::new(3, |_| {});
    c.elect(n(1));
    let before = c.node(n(1)).last_index();
    for (ch, why) in [
        (
            MembershipChange::AddLearner(n(2), Member::default()),
            ChangeRefused::AlreadyMember(n(2)),
        ),
        (
            MembershipChange::Promote(n(3)),
            ChangeRefused::NotALearner(n(3)),
        ),
        (
            MembershipChange::Remove(n(9)),
            ChangeRefused::NotAMember(n(9)),
        ),
    ] {
        assert_eq!(refused(&change(&mut c, n(1), ch)), Some(why));
    }
    assert_eq!(c.node(n(1)).last_index(), before);
}

#[test]
fn a_removed_leader_steps_down_once_committed_and_never_campaigns() {
    let mut c = Scenario::new(3, |_| {});
    c.elect(n(1));
    let a = change(&mut c, n(1), MembershipChange::Remove(n(1)));
    let at = proposed(&a).expect("appended");
    // In effect at once: the leader no longer counts itself, but leads
    // until the change commits.
    assert_eq!(roles(c.node(n(1)).membership()), roles(&voters(&[2, 3])));
    assert!(c.node(n(1)).is_leader());
    c.deliver_all();
    assert!(c.node(n(1)).commit_index() >= at);
    assert_eq!(c.node(n(1)).role(), Role::Follower);
    assert!(!campaigns_when_ticked(&mut c, n(1), 200));
    // The other two elect a leader between them.
    c.run(30);
    let leader = c.leader().expect("n2 and n3 elect a leader");
    assert_ne!(leader, n(1));
    c.propose(leader, b"after");
    c.deliver_all();
    c.run(2);
    for id in [n(2), n(3)] {
        assert_eq!(c.applied_commands(id).last(), Some(&b"after".to_vec()));
    }
    assert!(
        c.applied_commands(n(1)).last() != Some(&b"after".to_vec()),
        "the removed node is not replicated to any more"
    );
}

/// Thesis §4.2.2: a node whose own removal is appended but not committed
/// may hold entries the remaining voters lack, and then only it can win an
/// election; it must still campaign (not counting its own vote) until the
/// removal commits. Found by the swarm (seed 184): a leader removed itself
/// from {n0, n4}, was deposed by n0's campaign before the removal reached
/// n0, refused n0 its vote (n0's log was behind), and never campaigned
/// itself: no leader ever again.
#[test]
fn a_leader_deposed_before_its_removal_commits_campaigns_to_finish_it() {
    let mut c = Scenario::new(2, |cfg| {
        cfg.pre_vote = false;
        cfg.check_quorum = false;
    });
    c.elect(n(1));
    c.propose(n(1), b"a");
    c.deliver_all();
    c.isolate(n(1));
    let a = change(&mut c, n(1), MembershipChange::Remove(n(1)));
    let at = proposed(&a).expect("appended");
    assert_eq!(roles(c.node(n(1)).membership()), roles(&voters(&[2])));
    // n2 never receives the removal and campaigns in vain; once healed,
    // its requests depose n1, which refuses its vote (n2's log is behind).
    c.run(40);
    c.heal();
    c.run(150);
    assert!(
        c.node(n(2)).commit_index() >= at,
        "the removal commits (commit {} < {at})",
        c.node(n(2)).commit_index()
    );
    assert_eq!(roles(c.node(n(2)).membership()), roles(&voters(&[2])));
    assert_eq!(c.leader(), Some(n(2)));
    assert!(!c.node(n(1)).is_leader());
}

#[test]
fn a_removed_node_cannot_disrupt_the_cluster() {
    let mut c = Scenario::new(3, |_| {});
    c.elect(n(1));
    c.isolate(n(3));
    let a = change(&mut c, n(1), MembershipChange::Remove(n(3)));
    assert!(proposed(&a).is_some());
    c.deliver_all();
    c.run(3);
    let term = c.node(n(1)).term();
    // n3 never heard of its removal and keeps campaigning; the others drop
    // its requests (it is not a member), so the leader keeps its term.
    c.heal();
    for _ in 0..10 {
        c.run(10);
    }
    assert!(c.node(n(1)).is_leader());
    assert_eq!(c.node(n(1)).term(), term);
}

#[test]
fn a_membership_is_in_effect_when_appended_and_undone_when_overwritten() {
    let mut c = Scenario::with_joiners(5, 1, |_| {});
    c.elect(n(1));
    // n1 appends the change; only n2 receives it.
    let a = change(
        &mut c,
        n(1),
        MembershipChange::AddLearner(n(6), Member::default()),
    );
    let at = proposed(&a).expect("appended");
    let to_n2: Vec<_> = c
        .take_queue()
        .into_iter()
        .filter(|e| e.to == n(2))
        .collect();
    for e in to_n2 {
        c.deliver(e);
    }
    c.drop_where(|_| true);
    assert!(
        c.node(n(2)).membership().learners.contains(&n(6)),
        "in effect on append"
    );
    assert!(c.node(n(2)).commit_index() < at);
    // n1 and n2 are cut off; n3..n5 elect one of them, whose log lacks
    // the change.
    c.partition(&[n(1), n(2)], &[n(3), n(4), n(5)]);
    c.run(30);
    let leader = c.leader().expect("the majority side elects a leader");
    assert!([n(3), n(4), n(5)].contains(&leader), "{leader}");
    assert!(c.node(leader).membership().learners.is_empty());
    c.heal();
    c.run(5);
    for id in [n(1), n(2), n(3), n(4), n(5)] {
        assert_eq!(
            roles(c.node(id).membership()),
            roles(&voters(&[1, 2, 3, 4, 5])),
            "{id}"
        );
    }
}

#[test]
fn snapshots_and_restarts_keep_the_membership() {
    let mut c = Scenario::with_joiners(3, 1, |_| {});
    c.elect(n(1));
    add_learner(&mut c, n(1), n(4));
    c.deliver_all();
    assert!(proposed(&change(&mut c, n(1), MembershipChange::Promote(n(4)))).is_some());
    c.deliver_all();
    c.run(3);
    // Compact every node past the changes, then restart them all.
    for id in [n(1), n(2), n(3), n(4)] {
        let applied = c.node(id).applied_index();
        c.step(
            id,
            Input::Snapshot {
                index: applied,
                data: vec![],
            },
        );
        let snap = c.durable(id).snapshot.clone().expect("a snapshot");
        assert_eq!(
            roles(&snap.membership),
            roles(&voters(&[1, 2, 3, 4])),
            "{id}"
        );
    }
    for id in [n(1), n(2), n(3), n(4)] {
        c.restart(id);
        assert_eq!(
            roles(c.node(id).membership()),
            roles(&voters(&[1, 2, 3, 4])),
            "{id}"
        );
    }
    // A node restarted from a log holding a change (no snapshot) too.
    let mut d = Scenario::with_joiners(3, 1, |_| {});
    d.elect(n(1));
    assert!(proposed(&change(
        &mut d,
        n(1),
        MembershipChange::AddLearner(n(4), Member::default())
    ))
    .is_some());
    d.deliver_all();
    d.restart(n(2));
    assert!(d.node(n(2)).membership().learners.contains(&n(4)));
    let entry = d
        .durable(n(2))
        .entries
        .iter()
        .any(|e| matches!(e.payload, Payload::Membership(_)));
    assert!(entry, "the change is an entry in the log");
}

#[test]
fn a_learner_added_after_compaction_is_sent_the_snapshot_with_the_membership() {
    let mut c = Scenario::with_joiners(3, 1, |_| {});
    c.elect(n(1));
    for i in 0..10u8 {
        c.propose(n(1), &[i]);
    }
    c.deliver_all();
    let applied = c.node(n(1)).applied_index();
    c.step(
        n(1),
        Input::Snapshot {
            index: applied,
            data: vec![7],
        },
    );
    add_learner(&mut c, n(1), n(4));
    c.deliver_all();
    c.run(5);
    assert!(
        c.node(n(4)).snapshot_index() >= applied,
        "installed the snapshot"
    );
    assert!(c.node(n(4)).membership().learners.contains(&n(4)));
    assert_eq!(c.node(n(4)).last_index(), c.node(n(1)).last_index());
}

// Leadership transfer (thesis §3.10).

fn transfer(c: &mut Scenario, leader: NodeId, to: NodeId) -> Vec<Action> {
    c.step(leader, Input::TransferLeadership { to })
}

#[test]
fn leadership_moves_to_a_caught_up_voter_at_once_inside_the_lease() {
    let mut c = Scenario::new(3, |_| {});
    c.elect(n(1));
    c.propose(n(1), b"a");
    c.deliver_all();
    let term = c.node(n(1)).term();
    // Check-quorum is on and every voter heard from n1 just now: an
    // ordinary candidate would be ignored. The transfer is not.
    let a = transfer(&mut c, n(1), n(2));
    assert!(
        a.iter().any(|x| matches!(
            x,
            Action::Send {
                to,
                msg: Message::TimeoutNow(_),
            } if *to == n(2)
        )),
        "{a:?}"
    );
    c.deliver_all();
    assert!(
        c.node(n(2)).is_leader(),
        "no election timeout was waited for"
    );
    assert_eq!(c.node(n(2)).term(), core_raft::Term(term.0 + 1));
    assert_eq!(c.node(n(1)).role(), Role::Follower);
    c.propose(n(2), b"b");
    c.deliver_all();
    c.run(4);
    for id in [n(1), n(2), n(3)] {
        assert_eq!(
            c.applied_commands(id),
            vec![b"a".to_vec(), b"b".to_vec()],
            "{id}"
        );
    }
}

#[test]
fn a_lagging_target_is_caught_up_first_and_proposals_wait_meanwhile() {
    let mut c = Scenario::new(3, |_| {});
    c.elect(n(1));
    c.isolate(n(3));
    for i in 0..5u8 {
        c.propose(n(1), &[i]);
    }
    c.deliver_all();
    c.heal();
    let a = transfer(&mut c, n(1), n(3));
    assert!(
        !a.iter().any(|x| matches!(
            x,
            Action::Send {
                msg: Message::TimeoutNow(_),
                ..
            }
        )),
        "not before n3 holds the whole log"
    );
    // The leader takes nothing new while handing over, and names n3.
    let p = c.propose(n(1), b"late");
    assert!(
        p.iter()
            .any(|x| matches!(x, Action::NotLeader { leader_hint: Some(h) } if *h == n(3))),
        "{p:?}"
    );
    c.deliver_all();
    assert!(c.node(n(3)).is_leader());
    assert_eq!(c.applied_commands(n(3)).len(), 5);
}

#[test]
fn a_transfer_to_an_unreachable_voter_is_given_up_and_the_leader_serves_again() {
    let mut c = Scenario::new(3, |_| {});
    c.elect(n(1));
    c.isolate(n(3));
    transfer(&mut c, n(1), n(3));
    let p = c.propose(n(1), b"x");
    assert!(p.iter().any(|x| matches!(x, Action::NotLeader { .. })));
    // Keep n1 and n2 talking so n1 stays leader, past election_ticks_max.
    c.run(25);
    assert!(c.node(n(1)).is_leader());
    let p = c.propose(n(1), b"y");
    assert!(
        p.iter().any(|x| matches!(x, Action::Proposed { .. })),
        "serving again: {p:?}"
    );
}

#[test]
fn a_transfer_to_a_learner_or_to_itself_is_refused() {
    let mut c = Scenario::with_joiners(3, 1, |_| {});
    c.elect(n(1));
    add_learner(&mut c, n(1), n(4));
    c.deliver_all();
    let a = transfer(&mut c, n(1), n(4));
    assert!(a.iter().any(|x| matches!(
        x,
        Action::TransferRefused(core_raft::TransferRefused::NotAVoter(id)) if *id == n(4)
    )));
    let a = transfer(&mut c, n(1), n(1));
    assert!(a.iter().any(|x| matches!(
        x,
        Action::TransferRefused(core_raft::TransferRefused::ToSelf(_))
    )));
    let a = transfer(&mut c, n(2), n(3));
    assert!(a.iter().any(|x| matches!(x, Action::NotLeader { .. })));
    // Nothing changed: n1 still takes proposals.
    let p = c.propose(n(1), b"z");
    assert!(p.iter().any(|x| matches!(x, Action::Proposed { .. })));
}

/// Why node identities exist: Raft's election safety rests on every voter
/// remembering its vote. A voter whose disk is wiped, restarted under its
/// old id, votes again in a term it already voted in, and two leaders win
/// the same term. (The node shells refuse such a node: see
/// node-shell/tests/replica_shell.rs and cli/tests/kv_membership.rs.)
#[test]
fn a_wiped_voter_under_its_old_id_elects_two_leaders_in_one_term() {
    use core_raft::{Config, Raft};
    let config = |id: u64| {
        let mut c = Config::new(n(id), vec![n(1), n(2), n(3)]);
        c.pre_vote = false;
        c.check_quorum = false;
        c
    };
    let campaign = |node: &mut Raft| -> Message {
        for _ in 0..1000 {
            for a in node.step(Input::Tick) {
                if let Action::Send { to, msg } = a {
                    if to == n(3) {
                        return msg;
                    }
                }
            }
        }
        panic!("{} never campaigned", node.id())
    };
    let vote_of = |actions: Vec<Action>| -> Message {
        actions
            .into_iter()
            .find_map(|a| match a {
                Action::Send { msg, .. } => Some(msg),
                _ => None,
            })
            .expect("an answer")
    };
    let mut one = Raft::new(config(1)).unwrap();
    let mut two = Raft::new(config(2)).unwrap();
    let ask_one = campaign(&mut one);
    let ask_two = campaign(&mut two);
    assert_eq!(
        (one.term(), two.term()),
        (two.term(), one.term()),
        "same term"
    );

    let mut three = Raft::new(config(3)).unwrap();
    let yes_to_one = vote_of(three.step(Input::Receive {
        from: n(1),
        msg: ask_one,
    }));
    // With its memory, node 3 turns node 2 down in that term...
    let no_to_two = vote_of(three.step(Input::Receive {
        from: n(2),
        msg: ask_two.clone(),
    }));
    let Message::RequestVoteResponse(r) = &no_to_two else {
        panic!("{no_to_two:?}")
    };
    assert!(!r.granted);
    // ...but wiped, it grants the same term's second request.
    let mut wiped = Raft::new(config(3)).unwrap();
    let yes_to_two = vote_of(wiped.step(Input::Receive {
        from: n(2),
        msg: ask_two,
    }));
    one.step(Input::Receive {
        from: n(3),
        msg: yes_to_one,
    });
    two.step(Input::Receive {
        from: n(3),
        msg: yes_to_two,
    });
    assert!(one.is_leader() && two.is_leader());
    assert_eq!(one.term(), two.term(), "two leaders in one term");
}
