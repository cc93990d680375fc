//! Leader election scenarios (Raft paper §5.2 and §5.4.1; thesis §4.2.3,
//! §6.2 and §9.6), in the style of raft-rs `test_raft_paper.rs`.

use core_raft::{Action, Input, LogIndex, Message, RequestVote, RequestVoteResponse, Role, Term};
use model_tests::sim::scenario::*;

fn vote_request(term: u64, last_index: u64, last_term: u64) -> Message {
    Message::RequestVote(RequestVote {
        term: Term(term),
        last_log_index: LogIndex(last_index),
        last_log_term: Term(last_term),
        pre_vote: false,
        transfer: false,
    })
}

/// The vote answer in `actions`, if any.
fn vote_answer(actions: &[Action]) -> Option<bool> {
    actions.iter().find_map(|a| match a {
        Action::Send {
            msg: Message::RequestVoteResponse(RequestVoteResponse { granted, .. }),
            ..
        } => Some(*granted),
        _ => None,
    })
}

/// §5.2: a cluster started from scratch elects exactly one leader, every
/// node learns who it is, and a healthy leader keeps its term.
#[test]
fn single_leader_is_elected_and_stays() {
    for size in [1, 3, 5] {
        let mut c = Scenario::new(size, |_| {});
        c.run(100);
        let leader = c.leader().expect("a leader");
        let term = c.node(leader).term();
        let leaders = c.ids().iter().filter(|id| c.node(**id).is_leader()).count();
        assert_eq!(leaders, 1, "size {size}");
        for id in c.ids() {
            assert_eq!(c.node(id).leader_hint(), Some(leader), "size {size}, {id}");
            assert_eq!(c.node(id).term(), term);
        }
        c.run(500);
        assert_eq!(c.leader(), Some(leader), "size {size}: leadership changed");
        assert_eq!(c.node(leader).term(), term, "size {size}: term moved");
    }
}

/// §5.4.1: a voter denies its vote to a candidate whose log is less up to
/// date (lower last term, or same last term and shorter), and grants it to
/// one whose last term is higher even if its log is shorter.
#[test]
fn votes_go_only_to_up_to_date_logs() {
    let voter = durable(2, None, 0, log_with_terms(&[1, 2, 2]));
    let mut c = Scenario::with_durable(vec![voter, Default::default(), Default::default()], |_| {});
    // Same last term, shorter log.
    let a = c.step(
        n(1),
        Input::Receive {
            from: n(2),
            msg: vote_request(3, 2, 2),
        },
    );
    assert_eq!(vote_answer(&a), Some(false));
    // Longer log, lower last term.
    let a = c.step(
        n(1),
        Input::Receive {
            from: n(2),
            msg: vote_request(3, 9, 1),
        },
    );
    assert_eq!(vote_answer(&a), Some(false));
    assert_eq!(c.node(n(1)).vote(), None);
    // Same last term, same length: up to date.
    let a = c.step(
        n(1),
        Input::Receive {
            from: n(3),
            msg: vote_request(3, 3, 2),
        },
    );
    assert_eq!(vote_answer(&a), Some(true));
    assert_eq!(c.node(n(1)).vote(), Some(n(3)));

    // Higher last term beats a longer log.
    let voter = durable(2, None, 0, log_with_terms(&[1, 2, 2]));
    let mut c = Scenario::with_durable(vec![voter, Default::default(), Default::default()], |_| {});
    let a = c.step(
        n(1),
        Input::Receive {
            from: n(2),
            msg: vote_request(4, 1, 3),
        },
    );
    assert_eq!(vote_answer(&a), Some(true));
}

/// §5.2 and Figure 2: a node votes for at most one candidate per term, and
/// `votedFor` is persistent, so the vote survives a restart.
#[test]
fn one_vote_per_term_survives_restart() {
    let mut c = Scenario::new(3, |_| {});
    let a = c.step(
        n(1),
        Input::Receive {
            from: n(2),
            msg: vote_request(1, 0, 0),
        },
    );
    assert_eq!(vote_answer(&a), Some(true));
    let a = c.step(
        n(1),
        Input::Receive {
            from: n(3),
            msg: vote_request(1, 0, 0),
        },
    );
    assert_eq!(vote_answer(&a), Some(false), "second vote in the same term");
    assert_eq!(c.durable(n(1)).hard_state.vote, Some(n(2)));

    c.crash(n(1));
    c.restart(n(1));
    assert_eq!(c.node(n(1)).vote(), Some(n(2)));
    assert_eq!(c.node(n(1)).term(), Term(1));
    let a = c.step(
        n(1),
        Input::Receive {
            from: n(3),
            msg: vote_request(1, 0, 0),
        },
    );
    assert_eq!(vote_answer(&a), Some(false), "voted twice across a restart");
    // A retransmitted request from the candidate it voted for is granted again.
    let a = c.step(
        n(1),
        Input::Receive {
            from: n(2),
            msg: vote_request(1, 0, 0),
        },
    );
    assert_eq!(vote_answer(&a), Some(true));
    // A new term frees the vote.
    let a = c.step(
        n(1),
        Input::Receive {
            from: n(3),
            msg: vote_request(2, 0, 0),
        },
    );
    assert_eq!(vote_answer(&a), Some(true));
    assert_eq!(c.node(n(1)).vote(), Some(n(3)));
}

/// Thesis §9.6: a partitioned node running pre-votes never raises its term,
/// and when it rejoins an idle cluster (its log as up to date as everyone
/// else's) it does not depose the healthy leader. Check-quorum's lease
/// (thesis §4.2.3) must make the others ignore its pre-votes as well as its
/// votes: otherwise it wins the pre-vote, bumps its term, and its answer to
/// the next heartbeat forces the leader out.
#[test]
fn pre_vote_keeps_terms_and_rejoining_node_does_not_depose_leader() {
    let mut c = Scenario::new(3, |_| {});
    c.elect(n(1));
    c.run(10);
    let term = c.node(n(1)).term();

    c.isolate(n(3));
    for _ in 0..200 {
        c.tick_all();
        c.deliver_all();
    }
    assert_eq!(c.node(n(3)).term(), term, "a pre-vote moved the term");
    assert_ne!(c.node(n(3)).role(), Role::Candidate);
    assert!(c.count_sent(|e| e.from == n(3)) > 0, "node 3 kept probing");
    assert_eq!(c.leader(), Some(n(1)));

    c.heal();
    // Let node 3 start a fresh pre-vote round right after it rejoins.
    let before = c.sent().len();
    for _ in 0..100 {
        c.tick(n(3));
        if c.sent()[before..].iter().any(|e| e.from == n(3)) {
            break;
        }
    }
    c.deliver_all();
    c.run(100);
    assert_eq!(
        c.leader(),
        Some(n(1)),
        "the rejoining node deposed the leader"
    );
    for id in c.ids() {
        assert_eq!(c.node(id).term(), term, "{id} changed term");
    }
    assert_eq!(c.node(n(3)).leader_hint(), Some(n(1)));
}

/// Thesis §6.2 (check-quorum): a leader that cannot reach a majority steps
/// down. The check runs once per `election_ticks_min`, so a leader cut off
/// right after a successful check notices at the second check, within
/// `2 * election_ticks_min` ticks (here equal to `election_ticks_max`).
#[test]
fn check_quorum_leader_cut_from_majority_steps_down() {
    let mut c = Scenario::new(3, |_| {});
    c.elect(n(1));
    c.run(7);
    let min = c.config(n(1)).election_ticks_min;
    c.isolate(n(1));
    let mut ticks = 0;
    while c.node(n(1)).is_leader() {
        c.tick(n(1));
        c.deliver_all();
        ticks += 1;
        assert!(
            ticks <= 2 * min,
            "leader still leading after {ticks} ticks alone"
        );
    }
    assert_eq!(c.node(n(1)).role(), Role::Follower);
    assert_eq!(c.node(n(1)).leader_hint(), None);

    // Without check-quorum an isolated leader keeps believing it leads.
    let mut c = Scenario::new(3, |cfg| cfg.check_quorum = false);
    c.elect(n(1));
    c.isolate(n(1));
    for _ in 0..10 * min {
        c.tick(n(1));
        c.deliver_all();
    }
    assert!(c.node(n(1)).is_leader());
}

/// §5.2: "If a follower receives no communication over a period of time
/// called the election timeout, then it assumes there is no viable leader."
/// A valid AppendEntries (a heartbeat) restarts that period.
#[test]
fn followers_reset_election_timer_on_append_entries() {
    let mut c = Scenario::new(3, |_| {});
    c.elect(n(1));
    let term = c.node(n(1)).term();
    let min = c.config(n(2)).election_ticks_min;
    let max = c.config(n(2)).election_ticks_max;
    for _ in 0..10 {
        for _ in 0..min - 1 {
            c.tick(n(2));
        }
        assert_eq!(c.node(n(2)).role(), Role::Follower);
        // One heartbeat interval on the leader, delivered.
        for _ in 0..c.config(n(1)).heartbeat_ticks {
            c.tick(n(1));
        }
        c.deliver_all();
    }
    assert_eq!(c.node(n(2)).term(), term);
    assert_eq!(c.leader(), Some(n(1)));
    // Without heartbeats the follower campaigns within the maximum timeout.
    let mut ticks = 0;
    while c.node(n(2)).role() == Role::Follower {
        c.tick(n(2));
        ticks += 1;
        assert!(ticks <= max, "no campaign after {ticks} silent ticks");
    }
    assert!(ticks >= min, "campaigned after only {ticks} ticks");
}

/// §5.2: a candidate that hears an AppendEntries from a leader of its term
/// returns to follower; a stale-term AppendEntries is refused with the
/// newer term so the stale leader steps down.
#[test]
fn candidate_yields_to_leader_and_stale_leader_learns_new_term() {
    let mut c = Scenario::new(3, |cfg| {
        cfg.pre_vote = false;
        // Node 3 still hears from node 1 when node 2 campaigns.
        cfg.check_quorum = false;
    });
    c.elect(n(1));
    let term = c.node(n(1)).term();
    c.isolate(n(1));
    c.campaign(n(2));
    assert!(c.node(n(2)).is_leader());
    let new_term = c.node(n(2)).term();
    assert!(new_term > term);
    c.heal();
    c.run(5);
    assert_eq!(c.node(n(1)).role(), Role::Follower);
    assert_eq!(c.node(n(1)).term(), new_term);
    assert_eq!(c.node(n(1)).leader_hint(), Some(n(2)));
}
