//! Log replication scenarios (Raft paper §5.3, §5.4.2 and Figure 8; the
//! lab's "fast backup"), plus the persist-before-send order of every action
//! list that reveals new state.

use core_raft::{
    Action, AppendEntries, AppendEntriesResponse, Input, LogIndex, Message, NodeId, Payload,
    RequestVoteResponse, Role, Term,
};
use model_tests::sim::scenario::*;
use model_tests::sim::Envelope;

fn is_append_to(e: &Envelope, from: NodeId, to: NodeId) -> bool {
    e.from == from && e.to == to && matches!(e.msg, Message::AppendEntries(_))
}

/// §5.3: a leader replicates a proposal to every follower, commits it once a
/// majority holds it, and every node applies it exactly once, in order.
#[test]
fn proposals_are_replicated_committed_and_applied_everywhere() {
    let mut c = Scenario::new(5, |_| {});
    c.elect(n(1));
    for i in 0..20u8 {
        let a = c.propose(n(1), &[i]);
        assert!(a.iter().any(|a| matches!(a, Action::Proposed { .. })));
        if i % 3 == 0 {
            c.deliver_all();
        }
    }
    c.deliver_all();
    c.run(5);
    let want: Vec<Vec<u8>> = (0..20u8).map(|i| vec![i]).collect();
    for id in c.ids() {
        assert_eq!(c.applied_commands(id), want, "{id}");
        assert_eq!(c.node(id).commit_index(), c.node(n(1)).last_index());
    }
}

/// §5.3: `ProposeBatch` answers one `Proposed` per command, at consecutive
/// indexes in the leader's term.
#[test]
fn propose_batch_answers_each_command() {
    let mut c = Scenario::new(3, |_| {});
    c.elect(n(1));
    let last = c.node(n(1)).last_index();
    let term = c.node(n(1)).term();
    let a = c.step(n(1), Input::ProposeBatch(vec![vec![1], vec![2], vec![3]]));
    let proposed: Vec<(LogIndex, Term)> = a
        .iter()
        .filter_map(|a| match a {
            Action::Proposed { index, term } => Some((*index, *term)),
            _ => None,
        })
        .collect();
    let want: Vec<(LogIndex, Term)> = (1..=3).map(|i| (LogIndex(last.0 + i), term)).collect();
    assert_eq!(proposed, want);
    // One PersistEntries and one AppendEntries per follower for the batch.
    let persists = a
        .iter()
        .filter(|a| matches!(a, Action::PersistEntries(_)))
        .count();
    assert_eq!(persists, 1);
    assert_eq!(c.step(n(1), Input::ProposeBatch(vec![])), vec![]);
    c.deliver_all();
    c.run(3);
    assert_eq!(c.applied_commands(n(3)), vec![vec![1], vec![2], vec![3]]);
}

/// A follower (or a node that knows no leader) refuses proposals and names
/// the leader it believes in.
#[test]
fn not_leader_carries_the_hint() {
    let mut c = Scenario::new(3, |_| {});
    let a = c.propose(n(2), b"x");
    assert_eq!(a, vec![Action::NotLeader { leader_hint: None }]);
    c.elect(n(1));
    let a = c.propose(n(2), b"x");
    assert_eq!(
        a,
        vec![Action::NotLeader {
            leader_hint: Some(n(1))
        }]
    );
    let a = c.step(n(3), Input::ProposeBatch(vec![vec![1], vec![2]]));
    assert_eq!(
        a,
        vec![Action::NotLeader {
            leader_hint: Some(n(1))
        }]
    );
}

/// The Figure 8 cluster: S1 leads term 5 with an entry of term 2 at index 2
/// that S5 (last entry of term 3) does not have.
fn figure8_cluster() -> Scenario {
    let s1 = durable(4, None, 1, log_with_terms(&[1, 2]));
    let s2 = durable(4, None, 1, log_with_terms(&[1, 2]));
    let s3 = durable(4, None, 1, log_with_terms(&[1]));
    let s4 = durable(4, None, 1, log_with_terms(&[1]));
    let s5 = durable(4, None, 1, log_with_terms(&[1, 3]));
    let mut c = Scenario::with_durable(vec![s1, s2, s3, s4, s5], |cfg| {
        // The scenario needs entries of old terms to stay uncommitted, and S5
        // to win while the others still remember S1.
        cfg.leader_noop = false;
        cfg.check_quorum = false;
    });
    c.isolate(n(5));
    c.elect(n(1));
    assert_eq!(c.node(n(1)).term(), Term(5));
    c
}

/// §5.4.2 and Figure 8: a leader never commits an entry from an earlier term
/// by counting replicas. S1 (term 5) gets index 2 (term 2) onto a majority
/// but must not commit it; S5, whose last entry has term 3, can still win
/// and overwrite index 2 everywhere.
#[test]
fn figure8_old_term_entry_on_a_majority_is_not_committed() {
    let mut c = figure8_cluster();
    for id in [2, 3, 4] {
        assert_eq!(c.node(n(id)).term_at(LogIndex(2)), Some(Term(2)), "S{id}");
    }
    assert_eq!(
        c.node(n(1)).commit_index(),
        LogIndex(1),
        "committed by counting replicas"
    );
    c.run(3);
    assert_eq!(c.node(n(1)).commit_index(), LogIndex(1));
    assert!(c.committed_term(LogIndex(2)).is_none());

    // S1 crashes; S5 wins (its log is more up to date than S2..S4's) and
    // replaces index 2 on the majority.
    c.crash(n(1));
    c.heal();
    for _ in 0..5 {
        c.campaign(n(5));
        if c.node(n(5)).is_leader() {
            break;
        }
    }
    assert!(c.node(n(5)).is_leader());
    c.propose(n(5), b"s5");
    c.deliver_all();
    for id in [2, 3, 4, 5] {
        assert_eq!(c.node(n(id)).term_at(LogIndex(2)), Some(Term(3)), "S{id}");
    }
    assert_eq!(c.committed_term(LogIndex(2)).unwrap(), Term(3));
}

/// §5.4.2: the old-term entry becomes committed indirectly, once an entry of
/// the leader's own term is stored on a majority.
#[test]
fn figure8_old_term_entry_commits_with_a_current_term_entry() {
    let mut c = figure8_cluster();
    assert_eq!(c.node(n(1)).commit_index(), LogIndex(1));
    c.propose(n(1), b"t5");
    c.deliver_all();
    assert_eq!(c.node(n(1)).commit_index(), LogIndex(3));
    assert_eq!(c.committed_term(LogIndex(2)).unwrap(), Term(2));
    assert_eq!(c.committed_term(LogIndex(3)).unwrap(), Term(5));
}

/// §5.3: "If an existing entry conflicts with a new one (same index but
/// different terms), delete the existing entry and all that follow it."
#[test]
fn conflicting_follower_suffix_is_truncated_and_replaced() {
    let s1 = durable(3, None, 2, log_with_terms(&[1, 1, 3, 3]));
    let s2 = durable(2, None, 2, log_with_terms(&[1, 1, 2, 2, 2]));
    let s3 = durable(3, None, 2, log_with_terms(&[1, 1, 3, 3]));
    let mut c = Scenario::with_durable(vec![s1, s2, s3], |_| {});
    c.elect(n(1));
    c.propose(n(1), b"after");
    c.deliver_all();
    let leader_log = c.node(n(1)).entries(LogIndex(1), c.node(n(1)).last_index());
    assert_eq!(leader_log.len(), 6);
    let follower_log = c.node(n(2)).entries(LogIndex(1), c.node(n(2)).last_index());
    assert_eq!(follower_log, leader_log);
    assert_eq!(c.durable(n(2)).entries, leader_log);
    // The truncation was a PersistEntries starting at the first conflict.
    let first_rewrite = c.outputs(n(2)).iter().find_map(|a| match a {
        Action::PersistEntries(es) => Some(es[0].index),
        _ => None,
    });
    assert_eq!(first_rewrite, Some(LogIndex(3)));
}

/// Fast backup (§5.3's optimisation, as in the 6.824 lab): a follower whose
/// log diverges for 100 entries over two terms converges in a number of
/// round trips proportional to the conflicting terms, not entries.
#[test]
fn fast_backup_skips_whole_conflicting_terms() {
    let mut leader_terms = vec![1, 1, 1];
    leader_terms.extend([4; 100]);
    let mut follower_terms = vec![1, 1, 1];
    follower_terms.extend([2; 50]);
    follower_terms.extend([3; 50]);
    let s1 = durable(4, None, 3, log_with_terms(&leader_terms));
    let s2 = durable(3, None, 3, log_with_terms(&follower_terms));
    let s3 = durable(4, None, 3, log_with_terms(&leader_terms));
    let mut c = Scenario::with_durable(vec![s1, s2, s3], |_| {});
    c.elect(n(1));
    let last = c.node(n(1)).last_index();
    assert_eq!(c.node(n(2)).last_index(), last);
    assert_eq!(c.node(n(2)).term_at(LogIndex(4)), Some(Term(4)));
    let appends = c.count_sent(|e| is_append_to(e, n(1), n(2)));
    // One refused probe per conflicting term (3 and 2), then the accepted one.
    assert!(
        appends <= 2 + 1,
        "{appends} AppendEntries for 2 conflicting terms"
    );
}

/// Fast backup when the leader holds the follower's conflicting term: it
/// jumps to the end of its own run of that term.
#[test]
fn fast_backup_jumps_to_the_end_of_the_leaders_run_of_the_term() {
    let mut follower_terms = vec![1];
    follower_terms.extend([2; 60]);
    let mut leader_terms = vec![1];
    leader_terms.extend([2; 10]);
    leader_terms.extend([3; 50]);
    let s1 = durable(3, None, 1, log_with_terms(&leader_terms));
    let s2 = durable(2, None, 1, log_with_terms(&follower_terms));
    let s3 = durable(3, None, 1, log_with_terms(&leader_terms));
    let mut c = Scenario::with_durable(vec![s1, s2, s3], |_| {});
    c.elect(n(1));
    assert_eq!(
        c.node(n(2)).entries(LogIndex(1), LogIndex(100)),
        c.node(n(1)).entries(LogIndex(1), LogIndex(100))
    );
    let appends = c.count_sent(|e| is_append_to(e, n(1), n(2)));
    assert!(
        appends <= 2,
        "{appends} AppendEntries for 1 conflicting term"
    );
}

/// A follower whose log is merely short is caught up in one more round trip
/// (the rejection names its last index), however many entries it lacks.
#[test]
fn short_follower_log_is_caught_up_in_one_probe() {
    let mut terms = vec![1];
    terms.extend([2; 300]);
    let s1 = durable(2, None, 1, log_with_terms(&terms));
    let s2 = durable(2, None, 1, log_with_terms(&[1]));
    let s3 = durable(2, None, 1, log_with_terms(&terms));
    let mut c = Scenario::with_durable(vec![s1, s2, s3], |cfg| {
        cfg.max_entries_per_message = 1000;
    });
    c.elect(n(1));
    assert_eq!(c.node(n(2)).last_index(), c.node(n(1)).last_index());
    assert!(c.count_sent(|e| is_append_to(e, n(1), n(2))) <= 2);
}

/// Position of the first action matching `pred`.
fn pos(actions: &[Action], pred: impl Fn(&Action) -> bool) -> usize {
    actions.iter().position(pred).expect("action present")
}

/// Figure 2 ("respond to RPCs only after updating stable storage") and the
/// `Action` contract: in each action list, the persist comes before every
/// send that reveals the persisted state. Checked for the candidate's
/// self-vote, a vote grant, a follower's append and a leader's proposal.
/// (The harness also checks this generically for every step of every test.)
#[test]
fn persists_precede_the_sends_that_depend_on_them() {
    let mut c = Scenario::new(3, |cfg| cfg.pre_vote = false);
    // Candidate: new term and self-vote, then RequestVotes.
    let mut a = Vec::new();
    for _ in 0..=20 {
        a = c.tick(n(1));
        if c.node(n(1)).role() == Role::Candidate {
            break;
        }
    }
    let persist = pos(
        &a,
        |a| matches!(a, Action::PersistHardState(hs) if hs.vote == Some(n(1))),
    );
    let first_send = pos(&a, |a| matches!(a, Action::Send { .. }));
    assert!(persist < first_send, "{a:?}");

    // Voter: the vote is persisted before the grant leaves.
    let requests = c.take_queue();
    let to2 = requests.iter().find(|e| e.to == n(2)).unwrap().clone();
    let a = c.step(
        n(2),
        Input::Receive {
            from: to2.from,
            msg: to2.msg,
        },
    );
    let persist = pos(
        &a,
        |a| matches!(a, Action::PersistHardState(hs) if hs.vote == Some(n(1))),
    );
    let grant = pos(&a, |a| {
        matches!(
            a,
            Action::Send {
                msg: Message::RequestVoteResponse(RequestVoteResponse { granted: true, .. }),
                ..
            }
        )
    });
    assert!(persist < grant, "{a:?}");
    c.deliver_all();
    assert!(c.node(n(1)).is_leader());
    c.deliver_all();

    // Leader: the proposal is persisted before it is acknowledged or sent.
    let a = c.propose(n(1), b"p");
    let persist = pos(&a, |a| matches!(a, Action::PersistEntries(_)));
    let proposed = pos(&a, |a| matches!(a, Action::Proposed { .. }));
    let send = pos(&a, |a| matches!(a, Action::Send { .. }));
    assert!(persist < proposed && persist < send, "{a:?}");

    // Follower: the entries are persisted before the acknowledgement.
    let q = c.take_queue();
    let to3 = q.iter().find(|e| e.to == n(3)).unwrap().clone();
    let a = c.step(
        n(3),
        Input::Receive {
            from: to3.from,
            msg: to3.msg,
        },
    );
    let persist = pos(&a, |a| matches!(a, Action::PersistEntries(_)));
    let ack = pos(&a, |a| {
        matches!(
            a,
            Action::Send {
                msg: Message::AppendEntriesResponse(AppendEntriesResponse { reject: None, .. }),
                ..
            }
        )
    });
    assert!(persist < ack, "{a:?}");
}

/// §5.3: a stale, delayed AppendEntries of the current leader (a prefix of
/// what the follower already holds) must not truncate the follower's log.
#[test]
fn delayed_append_does_not_truncate_newer_entries() {
    let mut c = Scenario::new(3, |_| {});
    c.elect(n(1));
    c.propose(n(1), b"a");
    let early: Vec<Envelope> = c.queue().iter().filter(|e| e.to == n(2)).cloned().collect();
    c.deliver_all();
    c.propose(n(1), b"b");
    c.deliver_all();
    let last = c.node(n(2)).last_index();
    for e in early {
        c.deliver(e);
    }
    assert_eq!(c.node(n(2)).last_index(), last);
    c.run(3);
    assert_eq!(c.applied_commands(n(2)), vec![b"a".to_vec(), b"b".to_vec()]);
}

/// Entries lost in flight are retransmitted after the leader's heartbeat
/// timer notices the missing acknowledgement.
#[test]
fn lost_appends_are_retransmitted() {
    let mut c = Scenario::new(3, |_| {});
    c.elect(n(1));
    for i in 0..10u8 {
        c.propose(n(1), &[i]);
        c.drop_where(|e| e.to == n(3));
        c.deliver_all();
    }
    assert!(c.applied_commands(n(3)).len() < 10);
    c.run(20);
    assert_eq!(c.applied_commands(n(3)).len(), 10);
    assert_eq!(c.node(n(3)).last_index(), c.node(n(1)).last_index());
    let noop_first = c.outputs(n(3)).iter().find_map(|a| match a {
        Action::Apply(es) => Some(es[0].payload.clone()),
        _ => None,
    });
    assert_eq!(noop_first, Some(Payload::Noop));
}

/// Figure 2, AppendEntries receiver rule 5: "set commitIndex =
/// min(leaderCommit, index of last new entry)". A follower whose log still
/// has a stale suffix beyond what the message covers must not commit that
/// suffix, even though the leader's commit index is past it. (The message is
/// what S1 sends when probing with one entry per message, or a delayed
/// retransmission.)
#[test]
fn follower_commits_only_what_the_message_vouches_for() {
    let s1 = durable(5, None, 4, log_with_terms(&[1, 2, 2, 5]));
    let s2 = durable(4, None, 2, log_with_terms(&[1, 2, 2, 4, 4]));
    let s3 = durable(5, None, 4, log_with_terms(&[1, 2, 2, 5]));
    let mut c = Scenario::with_durable(vec![s1, s2, s3], |_| {});
    let leader_entry = c.node(n(1)).entries(LogIndex(3), LogIndex(3));
    let a = c.step(
        n(2),
        Input::Receive {
            from: n(1),
            msg: Message::AppendEntries(AppendEntries {
                term: Term(5),
                prev_log_index: LogIndex(2),
                prev_log_term: Term(2),
                entries: leader_entry,
                leader_commit: LogIndex(4),
                round: 0,
            }),
        },
    );
    assert_eq!(c.node(n(2)).commit_index(), LogIndex(3), "{a:?}");
    assert_eq!(c.node(n(2)).term_at(LogIndex(4)), Some(Term(4)));
    assert_eq!(c.node(n(2)).applied_index(), LogIndex(3));
}

/// The `Action::Proposed` contract (§5.3, §8): a proposal is committed iff an
/// `Apply` carries its index *and term*. A deposed leader's proposal is
/// overwritten, and the entry applied at its index has another term.
#[test]
fn proposal_of_a_deposed_leader_is_lost_and_detectable() {
    let mut c = Scenario::new(3, |_| {});
    c.elect(n(1));
    c.isolate(n(1));
    let a = c.propose(n(1), b"lost");
    let (index, term) = a
        .iter()
        .find_map(|a| match a {
            Action::Proposed { index, term } => Some((*index, *term)),
            _ => None,
        })
        .unwrap();
    let mut leader = None;
    for _ in 0..200 {
        c.tick(n(2));
        c.tick(n(3));
        c.deliver_all();
        leader = [n(2), n(3)].into_iter().find(|id| c.node(*id).is_leader());
        if leader.is_some() {
            break;
        }
    }
    let leader = leader.expect("nodes 2 and 3 elect a leader");
    c.propose(leader, b"won");
    c.heal();
    c.run(30);
    let applied_at_index = c
        .outputs(n(1))
        .iter()
        .filter_map(|a| match a {
            Action::Apply(es) => es.iter().find(|e| e.index == index).cloned(),
            _ => None,
        })
        .next()
        .expect("index applied on the old leader");
    assert_ne!(applied_at_index.term, term);
    assert!(!c.applied_commands(n(1)).contains(&b"lost".to_vec()));
    assert!(c.applied_commands(n(1)).contains(&b"won".to_vec()));
}
