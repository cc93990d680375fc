//! Hostile and invalid input: unknown senders, malformed and stale messages,
//! invalid durable state and configuration. The design contract: a core
//! never panics on an input, drops what it cannot use, and never lets such
//! input corrupt its state. Also: determinism of the whole machine.

use core_raft::rng::SplitMix64;
use core_raft::{
    Action, AppendEntries, AppendEntriesResponse, Config, ConfigError, Entry, Input,
    InstallSnapshot, InstallSnapshotResponse, LogIndex, Message, NodeId, Payload, Raft, Reject,
    RequestVote, RequestVoteResponse, RestoreError, Role, Snapshot, Term,
};
use model_tests::sim::scenario::*;
use model_tests::sim::Envelope;

/// Everything observable about a node's replicated state.
fn state(r: &Raft) -> (Term, Option<NodeId>, LogIndex, LogIndex, Vec<Entry>, Role) {
    (
        r.term(),
        r.vote(),
        r.commit_index(),
        r.applied_index(),
        r.entries(r.snapshot_index().next(), r.last_index()),
        r.role(),
    )
}

/// A 3-node cluster led by node 1, with a few commands committed everywhere.
fn busy_cluster() -> Scenario {
    let mut c = Scenario::new(3, |_| {});
    c.elect(n(1));
    for i in 0..5u8 {
        c.propose(n(1), &[i]);
    }
    c.run(3);
    c
}

fn receive(from: NodeId, msg: Message) -> Input {
    Input::Receive { from, msg }
}

fn no_state_change(actions: &[Action]) -> bool {
    !actions.iter().any(|a| {
        matches!(
            a,
            Action::PersistEntries(_)
                | Action::PersistHardState(_)
                | Action::PersistSnapshot { .. }
                | Action::Apply(_)
                | Action::ApplySnapshot(_)
        )
    })
}

/// Messages from nodes outside the membership (or claiming to come from
/// the node itself) are dropped without a trace. The one
/// exception: a leader's AppendEntries or InstallSnapshot from a node this
/// one does not know obeys the term rules like any other (thesis §4.1: a
/// joining node, or one that missed a promotion, learns the membership from
/// the leader's log; connections are authenticated below the core); the
/// membership scenarios cover it.
#[test]
fn messages_from_unknown_nodes_are_dropped() {
    let mut c = busy_cluster();
    let term = c.node(n(1)).term();
    let last = c.node(n(1)).last_index();
    let msgs = vec![
        Message::RequestVote(RequestVote {
            term: term.next(),
            last_log_index: LogIndex(100),
            last_log_term: term.next(),
            pre_vote: false,
            transfer: false,
        }),
        Message::RequestVoteResponse(RequestVoteResponse {
            term,
            granted: true,
            pre_vote: false,
        }),
        Message::AppendEntries(AppendEntries {
            term: term.next(),
            prev_log_index: LogIndex(0),
            prev_log_term: Term(0),
            entries: vec![cmd(1, term.next().0, b"evil")],
            leader_commit: LogIndex(1),
            round: 0,
        }),
        Message::AppendEntriesResponse(AppendEntriesResponse {
            term,
            match_index: last,
            reject: None,
            round: 1_000,
        }),
        Message::InstallSnapshot(InstallSnapshot::whole(
            term.next(),
            &Snapshot {
                membership: core_raft::Membership::with_voters((1..=3).map(core_raft::NodeId)),
                index: LogIndex(50),
                term,
                data: vec![],
                external: false,
            },
            0,
        )),
        Message::InstallSnapshotResponse(InstallSnapshotResponse {
            term,
            match_index: last,
            index: last,
            offset: 0,
            received: 0,
            round: 0,
        }),
    ];
    for id in c.ids() {
        for from in [NodeId(99), NodeId(0), id, NodeId(u64::MAX)] {
            for msg in &msgs {
                let leader_msg =
                    matches!(msg, Message::AppendEntries(_) | Message::InstallSnapshot(_));
                if leader_msg && from != id && !c.ids().contains(&from) {
                    continue; // term rules apply (see the doc comment)
                }
                let before = state(c.node(id));
                let a = c.step(id, receive(from, msg.clone()));
                assert_eq!(a, vec![], "{id} answered {from}");
                assert_eq!(state(c.node(id)), before);
            }
        }
    }
}

/// Malformed AppendEntries (gaps, terms above the message term, terms going
/// backwards, a `prev_log_term` above the message term, indexes at and past
/// `u64::MAX`, an absurd `leader_commit`) change nothing on the follower.
#[test]
fn malformed_append_entries_change_nothing() {
    let mut c = busy_cluster();
    let term = c.node(n(2)).term();
    let last = c.node(n(2)).last_index();
    let t = term.0;
    let ae = |prev: u64, prev_term: u64, entries: Vec<Entry>, commit: u64| {
        Message::AppendEntries(AppendEntries {
            term,
            prev_log_index: LogIndex(prev),
            prev_log_term: Term(prev_term),
            entries,
            leader_commit: LogIndex(commit),
            round: 0,
        })
    };
    let l = last.0;
    let cases = vec![
        (
            "gap",
            ae(l, t, vec![cmd(l + 1, t, b"a"), cmd(l + 3, t, b"b")], 0),
        ),
        ("gap after prev", ae(l, t, vec![cmd(l + 2, t, b"a")], 0)),
        ("index before prev", ae(l, t, vec![cmd(l, t, b"a")], 0)),
        (
            "entry term above message",
            ae(l, t, vec![cmd(l + 1, t + 1, b"a")], 0),
        ),
        ("prev term above message", ae(l, t + 1, vec![], l + 1)),
        (
            "terms go backwards",
            ae(l, t, vec![cmd(l + 1, t, b"a"), cmd(l + 2, t - 1, b"b")], 0),
        ),
        (
            "entry term below prev term",
            ae(l, t, vec![cmd(l + 1, t - 1, b"a")], 0),
        ),
        ("u64::MAX prev", ae(u64::MAX, t, vec![], u64::MAX)),
        (
            "past u64::MAX",
            ae(u64::MAX, t, vec![cmd(0, t, b"a")], u64::MAX),
        ),
        (
            "entry at u64::MAX",
            ae(u64::MAX - 1, t, vec![cmd(u64::MAX, t, b"a")], u64::MAX),
        ),
        (
            "wrong prev term, huge commit",
            ae(l, t - 1, vec![], u64::MAX),
        ),
        (
            "beyond our log",
            ae(l + 10, t, vec![cmd(l + 11, t, b"a")], u64::MAX),
        ),
    ];
    for (name, msg) in cases {
        let before = state(c.node(n(2)));
        let a = c.step(n(2), receive(n(1), msg));
        assert!(no_state_change(&a), "{name}: {a:?}");
        assert_eq!(state(c.node(n(2))), before, "{name}");
        c.take_queue();
    }
    // The cluster still works.
    c.propose(n(1), b"ok");
    c.run(3);
    assert_eq!(c.applied_commands(n(2)).last(), Some(&b"ok".to_vec()));
}

/// An AppendEntries that would overwrite a committed entry is refused.
#[test]
fn append_entries_never_rewrite_committed_entries() {
    let mut c = busy_cluster();
    c.set_safety_checks(false);
    let term = c.node(n(2)).term();
    let commit = c.node(n(2)).commit_index();
    let before = state(c.node(n(2)));
    // Same term (a forged "leader"), rewriting index 2 with different data.
    let msg = Message::AppendEntries(AppendEntries {
        term,
        prev_log_index: LogIndex(1),
        prev_log_term: c.node(n(2)).term_at(LogIndex(1)).unwrap(),
        entries: vec![cmd(2, term.0, b"rewrite")],
        leader_commit: commit,
        round: 0,
    });
    let a = c.step(n(2), receive(n(1), msg));
    assert!(no_state_change(&a), "{a:?}");
    assert_eq!(state(c.node(n(2))), before);
}

/// InstallSnapshot with index 0, or with a snapshot term above the message
/// term, is dropped; an old snapshot is acknowledged without being applied.
#[test]
fn malformed_and_old_install_snapshot_change_nothing() {
    let mut c = busy_cluster();
    let term = c.node(n(2)).term();
    let is = |index: u64, sterm: Term| {
        Message::InstallSnapshot(InstallSnapshot::whole(
            term,
            &Snapshot {
                membership: core_raft::Membership::with_voters((1..=3).map(core_raft::NodeId)),
                index: LogIndex(index),
                term: sterm,
                data: b"junk".to_vec(),
                external: false,
            },
            0,
        ))
    };
    for (name, msg) in [
        ("index 0", is(0, Term(0))),
        ("index 0 with term", is(0, term)),
        ("snapshot term above message", is(100, term.next())),
        (
            "already committed",
            is(2, c.node(n(2)).term_at(LogIndex(2)).unwrap()),
        ),
    ] {
        let before = state(c.node(n(2)));
        let a = c.step(n(2), receive(n(1), msg));
        assert!(no_state_change(&a), "{name}: {a:?}");
        assert_eq!(state(c.node(n(2))), before, "{name}");
        assert_eq!(c.node(n(2)).snapshot_index(), LogIndex(0));
        c.take_queue();
    }
}

/// Stale, duplicated, forged and out-of-range responses on the leader
/// neither panic nor move its commit index or log; the cluster keeps working.
#[test]
fn stale_and_duplicated_responses_are_harmless() {
    let mut c = busy_cluster();
    let term = c.node(n(1)).term();
    let last = c.node(n(1)).last_index();
    let before = state(c.node(n(1)));
    // Replay every response ever sent to the leader, twice.
    let replies: Vec<Envelope> = c
        .sent()
        .iter()
        .filter(|e| e.to == n(1) && !e.msg.is_request())
        .cloned()
        .collect();
    assert!(!replies.is_empty());
    for e in replies.iter().chain(replies.iter()) {
        c.deliver(e.clone());
    }
    c.take_queue();
    let junk = [
        Message::AppendEntriesResponse(AppendEntriesResponse {
            term: Term(0),
            match_index: last,
            reject: None,
            round: 0,
        }),
        Message::AppendEntriesResponse(AppendEntriesResponse {
            term,
            match_index: LogIndex(u64::MAX),
            reject: None,
            round: u64::MAX,
        }),
        Message::AppendEntriesResponse(AppendEntriesResponse {
            term,
            match_index: LogIndex(0),
            reject: Some(Reject {
                prev_log_index: LogIndex(u64::MAX),
                conflict_term: Some(Term(u64::MAX)),
                conflict_index: LogIndex(u64::MAX),
            }),
            round: 0,
        }),
        Message::AppendEntriesResponse(AppendEntriesResponse {
            term,
            match_index: LogIndex(0),
            reject: Some(Reject {
                prev_log_index: last,
                conflict_term: None,
                conflict_index: LogIndex(0),
            }),
            round: 0,
        }),
        Message::InstallSnapshotResponse(InstallSnapshotResponse {
            term,
            match_index: LogIndex(0),
            index: LogIndex(0),
            offset: 0,
            received: 0,
            round: 0,
        }),
        Message::InstallSnapshotResponse(InstallSnapshotResponse {
            term,
            match_index: LogIndex(u64::MAX),
            index: LogIndex(u64::MAX),
            offset: u64::MAX,
            received: u64::MAX,
            round: u64::MAX,
        }),
        Message::InstallSnapshotResponse(InstallSnapshotResponse {
            term,
            match_index: LogIndex(0),
            index: last,
            offset: 1 << 40,
            received: u64::MAX,
            round: 1,
        }),
        Message::InstallSnapshotResponse(InstallSnapshotResponse {
            term,
            match_index: LogIndex(2),
            index: LogIndex(2),
            offset: 0,
            received: 3,
            round: 1,
        }),
        Message::RequestVoteResponse(RequestVoteResponse {
            term,
            granted: true,
            pre_vote: false,
        }),
        Message::RequestVoteResponse(RequestVoteResponse {
            term: term.next(),
            granted: true,
            pre_vote: true,
        }),
    ];
    for msg in junk {
        for id in c.ids() {
            let from = if id == n(1) { n(2) } else { n(1) };
            c.step(id, receive(from, msg.clone()));
        }
        c.take_queue();
    }
    let after = state(c.node(n(1)));
    assert_eq!(after, before);
    c.run(3);
    c.propose(n(1), b"still works");
    c.run(3);
    for id in c.ids() {
        assert_eq!(
            c.applied_commands(id).last(),
            Some(&b"still works".to_vec()),
            "{id}"
        );
    }
}

/// A forged message carrying one of the largest terms must not make a node
/// panic when it later campaigns (the term after `u64::MAX` does not exist),
/// with or without pre-vote.
#[test]
fn maximal_terms_do_not_panic() {
    for pre_vote in [true, false] {
        for term in [u64::MAX, u64::MAX - 1, u64::MAX - 2] {
            let mut c = Scenario::new(3, |cfg| cfg.pre_vote = pre_vote);
            c.elect(n(1));
            c.set_safety_checks(false);
            let msg = Message::AppendEntries(AppendEntries {
                term: Term(term),
                prev_log_index: LogIndex(0),
                prev_log_term: Term(0),
                entries: vec![],
                leader_commit: LogIndex(0),
                round: 0,
            });
            c.isolate(n(1));
            c.step(n(2), receive(n(3), msg.clone()));
            c.step(n(3), receive(n(2), msg));
            c.take_queue();
            for _ in 0..200 {
                c.tick_all();
                c.deliver_all();
            }
        }
    }
}

/// A random forged message from a known peer, with plausible small numbers.
fn random_message(rng: &mut SplitMix64, term: Term, last: LogIndex) -> Message {
    let mut pick = |n: u64| rng.next_u64() % n;
    // Mostly the receiver's own term, so that forged messages reach the
    // handlers instead of only moving terms.
    let t = match pick(10) {
        0 => Term(term.0 + 1),
        1 => Term(term.0.saturating_sub(1)),
        _ => term,
    };
    let i = |x: u64| LogIndex(x);
    let li = last.0 + 3;
    match pick(6) {
        0 => Message::RequestVote(RequestVote {
            term: t,
            last_log_index: i(pick(li)),
            last_log_term: Term(pick(t.0 + 1)),
            pre_vote: pick(2) == 0,
            transfer: false,
        }),
        1 => Message::RequestVoteResponse(RequestVoteResponse {
            term: t,
            granted: pick(2) == 0,
            pre_vote: pick(2) == 0,
        }),
        2 => {
            let prev = pick(li);
            let count = pick(4);
            let mut et = pick(t.0 + 1);
            let entries = (0..count)
                .map(|k| {
                    et = (et + pick(2)).min(t.0);
                    let idx = if pick(10) == 0 {
                        pick(li)
                    } else {
                        prev + 1 + k
                    };
                    Entry {
                        index: i(idx),
                        term: Term(et),
                        payload: Payload::Command(vec![k as u8]),
                    }
                })
                .collect();
            Message::AppendEntries(AppendEntries {
                term: t,
                prev_log_index: i(prev),
                prev_log_term: Term(pick(t.0 + 2)),
                entries,
                leader_commit: i(pick(li)),
                round: pick(20),
            })
        }
        3 => Message::AppendEntriesResponse(AppendEntriesResponse {
            term: t,
            match_index: i(pick(li)),
            reject: (pick(2) == 0).then(|| Reject {
                prev_log_index: i(pick(li)),
                conflict_term: (pick(2) == 0).then(|| Term(pick(t.0 + 2))),
                conflict_index: i(pick(li)),
            }),
            round: pick(20),
        }),
        4 => {
            // A chunk somewhere in a small snapshot, or past its end.
            let total_len = pick(8);
            let offset = pick(10);
            Message::InstallSnapshot(InstallSnapshot {
                term: t,
                index: i(pick(li)),
                snapshot_term: Term(pick(t.0 + 2)),
                membership: core_raft::Membership::with_voters((1..=3).map(core_raft::NodeId)),
                total_len,
                offset,
                data: vec![7; pick(4) as usize],
                round: pick(20),
            })
        }
        _ => Message::InstallSnapshotResponse(InstallSnapshotResponse {
            term: t,
            match_index: i(pick(li)),
            index: i(pick(li)),
            offset: pick(10),
            received: pick(10),
            round: pick(20),
        }),
    }
}

/// A stream of random forged messages from known peers, interleaved with
/// normal operation (ticks, proposals, snapshots, deliveries): no panic,
/// and every node's storage stays valid and mirrors its memory. (Forged
/// messages can impersonate a leader, so Raft's safety is not checked.)
/// `FUZZ_SEEDS=n` runs more seeds.
#[test]
fn random_forged_messages_never_panic() {
    let seeds = std::env::var("FUZZ_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    for seed in 0..seeds {
        let mut rng = SplitMix64::new(seed);
        let mut c = busy_cluster();
        c.set_safety_checks(false);
        for step in 0..2_000 {
            let id = NodeId(1 + rng.next_u64() % 3);
            let from = NodeId(1 + (id.0 + rng.next_u64() % 2) % 3);
            let (term, last) = (c.node(id).term(), c.node(id).last_index());
            let input = match rng.next_u64() % 10 {
                0..=3 => receive(from, random_message(&mut rng, term, last)),
                4..=6 => Input::Tick,
                7 => Input::Propose(vec![step as u8]),
                8 => Input::ReadIndex { id: step },
                _ => Input::Snapshot {
                    index: c.node(id).applied_index(),
                    data: vec![],
                },
            };
            c.step(id, input);
            if rng.range_inclusive(0, 3) == 0 {
                c.deliver_all();
            }
        }
    }
}

/// Determinism: the same configuration and the same inputs give identical
/// actions, and identical bytes on the wire.
#[test]
fn same_inputs_give_identical_actions() {
    let run = || {
        let mut c = Scenario::new(5, |_| {});
        for round in 0..300u64 {
            c.tick_all();
            // Drop a deterministic subset of messages to exercise retries.
            let mut k = 0;
            c.retain_queue(|_| {
                k += 1;
                (k + round) % 7 != 0
            });
            c.deliver_all();
            if let Some(l) = c.leader() {
                if round % 3 == 0 {
                    c.propose(l, &round.to_le_bytes());
                }
                if round % 50 == 0 {
                    let applied = c.node(l).applied_index();
                    c.step(
                        l,
                        Input::Snapshot {
                            index: applied,
                            data: vec![1],
                        },
                    );
                }
            }
            if round == 100 {
                let l = c.leader().unwrap();
                c.crash(l);
            }
            if round == 150 {
                for id in c.ids() {
                    if !c.is_up(id) {
                        c.restart(id);
                    }
                }
            }
        }
        c
    };
    let (a, b) = (run(), run());
    assert_eq!(a.sent(), b.sent());
    assert_eq!(a.all_outputs(), b.all_outputs());
    let wire = |c: &Scenario| -> Vec<Vec<u8>> {
        c.sent()
            .iter()
            .map(|e| postcard::to_allocvec(&e.msg).unwrap())
            .collect()
    };
    assert_eq!(wire(&a), wire(&b));
    assert!(a.sent().len() > 1_000);

    // One machine, fed the same inputs twice.
    let cfg = test_config(n(1), &ids(3));
    let mut x = Raft::new(cfg.clone()).unwrap();
    let mut y = Raft::new(cfg).unwrap();
    let mut rng = SplitMix64::new(7);
    for _ in 0..5_000 {
        let input = if rng.range_inclusive(0, 2) == 0 {
            receive(n(2), random_message(&mut rng, x.term(), x.last_index()))
        } else {
            Input::Tick
        };
        assert_eq!(x.step(input.clone()), y.step(input));
    }
}

/// `Raft::restore` rejects durable state a correct node cannot have written,
/// naming the offending entry.
#[test]
fn restore_rejects_invalid_durable_state() {
    let cfg = test_config(n(1), &ids(3));
    let restore = |d| Raft::restore(cfg.clone(), d).map(|_| ());
    let err = restore(durable(2, None, 0, vec![cmd(1, 1, b""), cmd(3, 1, b"")])).unwrap_err();
    assert_eq!(
        err,
        RestoreError::Gap {
            expected: LogIndex(2),
            found: LogIndex(3)
        }
    );
    assert!(
        err.to_string().contains("expected entry i2, found i3"),
        "{err}"
    );

    let err = restore(durable(2, None, 0, vec![cmd(2, 1, b"")])).unwrap_err();
    assert!(
        matches!(err, RestoreError::Gap { .. }),
        "log must start at 1"
    );

    let mut d = durable(3, None, 0, vec![cmd(7, 3, b"")]);
    d.snapshot = Some(Snapshot {
        membership: core_raft::Membership::with_voters((1..=3).map(core_raft::NodeId)),
        index: LogIndex(5),
        term: Term(2),
        data: vec![],
        external: false,
    });
    assert_eq!(
        restore(d).unwrap_err(),
        RestoreError::Gap {
            expected: LogIndex(6),
            found: LogIndex(7)
        }
    );

    let err = restore(durable(1, None, 0, log_with_terms(&[1, 2]))).unwrap_err();
    assert_eq!(err, RestoreError::FutureTerm { index: LogIndex(2) });
    assert!(err.to_string().contains("i2"), "{err}");

    let mut d = durable(1, None, 0, vec![]);
    d.snapshot = Some(Snapshot {
        membership: core_raft::Membership::with_voters((1..=3).map(core_raft::NodeId)),
        index: LogIndex(4),
        term: Term(2),
        data: vec![],
        external: false,
    });
    assert_eq!(
        restore(d).unwrap_err(),
        RestoreError::FutureTerm { index: LogIndex(4) }
    );

    assert_eq!(
        restore(durable(3, None, 0, log_with_terms(&[2, 1]))).unwrap_err(),
        RestoreError::TermRegression { index: LogIndex(2) }
    );

    let mut d = durable(3, None, 0, vec![cmd(6, 1, b"")]);
    d.snapshot = Some(Snapshot {
        membership: core_raft::Membership::with_voters((1..=3).map(core_raft::NodeId)),
        index: LogIndex(5),
        term: Term(2),
        data: vec![],
        external: false,
    });
    assert_eq!(
        restore(d).unwrap_err(),
        RestoreError::TermRegression { index: LogIndex(6) }
    );

    let bad = Config::new(n(9), ids(3));
    assert_eq!(
        Raft::restore(bad, Default::default()).unwrap_err(),
        RestoreError::Config(ConfigError::NotAVoter(n(9)))
    );

    // A commit index beyond the stored log is clamped, not trusted.
    let r = Raft::restore(
        cfg.clone(),
        durable(2, Some(2), 10, log_with_terms(&[1, 2])),
    )
    .unwrap();
    assert_eq!(r.commit_index(), LogIndex(2));
    assert_eq!(r.vote(), Some(n(2)));
    assert_eq!(r.term(), Term(2));
}

/// `Config::validate` (and `Raft::new`) reject each kind of mistake with an
/// actionable message.
#[test]
fn config_validation_errors() {
    let ok = test_config(n(1), &ids(3));
    assert_eq!(ok.validate(), Ok(()));
    assert_eq!(Config::new(n(1), ids(1)).validate(), Ok(()));
    let check = |tweak: &dyn Fn(&mut Config), want: ConfigError, text: &str| {
        let mut cfg = ok.clone();
        tweak(&mut cfg);
        assert_eq!(cfg.validate(), Err(want.clone()));
        assert_eq!(Raft::new(cfg).unwrap_err(), want);
        assert!(want.to_string().contains(text), "{want}");
    };
    check(
        &|c| c.id = n(4),
        ConfigError::NotAVoter(n(4)),
        "not in the voter list",
    );
    // No bootstrap voters: a node joining an existing cluster, valid.
    let mut joining = ok.clone();
    joining.voters = vec![];
    assert_eq!(joining.validate(), Ok(()));
    check(
        &|c| c.voters = vec![n(1), n(2), n(2)],
        ConfigError::DuplicateVoter,
        "twice",
    );
    check(
        &|c| c.heartbeat_ticks = 0,
        ConfigError::ZeroHeartbeat,
        "heartbeat_ticks",
    );
    check(
        &|c| c.election_ticks_min = 3,
        ConfigError::ElectionTimeout {
            min: 3,
            max: 20,
            heartbeat: 3,
        },
        "above the heartbeat interval",
    );
    check(
        &|c| c.election_ticks_max = 9,
        ConfigError::ElectionTimeout {
            min: 10,
            max: 9,
            heartbeat: 3,
        },
        "non-empty range",
    );
    check(
        &|c| c.max_entries_per_message = 0,
        ConfigError::ZeroLimit,
        "at least 1",
    );
    check(
        &|c| c.max_bytes_per_message = 0,
        ConfigError::ZeroLimit,
        "at least 1",
    );
    check(
        &|c| c.max_inflight_messages = 0,
        ConfigError::ZeroLimit,
        "at least 1",
    );
}

/// A follower that rejects an AppendEntries at or below the index it already
/// acknowledged contradicts itself (only a forged acknowledgement, or a lost
/// disk, gets there). The leader must not answer each such rejection with
/// the same probe at once: that is a message storm at network speed. Found
/// by `random_forged_messages_never_panic` (`FUZZ_SEEDS=5000`, seed 80).
#[test]
fn contradicting_rejections_do_not_cause_a_message_storm() {
    let mut c = Scenario::new(3, |_| {});
    c.elect(n(1));
    c.set_safety_checks(false);
    c.isolate(n(3));
    for i in 0..5u8 {
        c.propose(n(1), &[i]);
    }
    c.run(3);
    let term = c.node(n(1)).term();
    let last = c.node(n(1)).last_index();
    assert!(c.node(n(3)).last_index() < last);
    // A forged acknowledgement of everything, "from" node 3.
    c.step(
        n(1),
        Input::Receive {
            from: n(3),
            msg: Message::AppendEntriesResponse(AppendEntriesResponse {
                term,
                match_index: last,
                reject: None,
                round: 0,
            }),
        },
    );
    c.heal();
    let before = c.sent().len();
    c.run(30);
    let sent = c.sent().len() - before;
    // 30 ticks is 10 heartbeat rounds: a few messages each, not thousands.
    assert!(sent < 200, "{sent} messages in 30 ticks");
}

/// Random bytes that happen to decode (postcard) as a `Message` are
/// delivered from a known peer: whatever values come out, no panic, and
/// storage stays valid and mirrors memory.
#[test]
fn random_decoded_messages_never_panic() {
    let mut rng = SplitMix64::new(42);
    let mut decoded = 0;
    for round in 0..200 {
        let mut c = busy_cluster();
        c.set_safety_checks(false);
        for _ in 0..200 {
            let len = rng.range_inclusive(1, 64) as usize;
            let mut bytes: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
            // Keep the variant tag in range most of the time.
            bytes[0] %= 6;
            let id = NodeId(1 + round % 3);
            let from = NodeId(1 + (round + 1) % 3);
            if let Ok(msg) = postcard::from_bytes::<Message>(&bytes) {
                decoded += 1;
                c.step(id, receive(from, msg));
            }
            c.tick(id);
            c.deliver_all();
        }
    }
    assert!(decoded > 1_000, "only {decoded} messages decoded");
}
