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
    let keep = Message::InstallSnapshot(InstallSnapshot::whole(
        term,
        &Snapshot {
            membership: core_raft::Membership::with_voters((1..=3).map(core_raft::NodeId)),
            index: last.prev(),
            term,
            data: b"s".to_vec(),
            external: false,
        },
        0,
    ));
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
    let conflict = Message::InstallSnapshot(InstallSnapshot::whole(
        term,
        &Snapshot {
            membership: core_raft::Membership::with_voters((1..=3).map(core_raft::NodeId)),
            index: LogIndex(last.0 + 5),
            term,
            data: b"t".to_vec(),
            external: false,
        },
        0,
    ));
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

/// A 3-node cluster led by node 1 whose node 3 missed `count` commands
/// that node 1 has compacted into a snapshot of `bytes` bytes, sent in
/// chunks of 10 bytes with at most 2 in flight. Nothing has been sent to
/// node 3 yet. Returns the snapshot's data.
fn lagging_behind_a_chunked_snapshot(c: &mut Scenario, bytes: usize) -> Vec<u8> {
    c.elect(n(1));
    c.isolate(n(3));
    for i in 0..5u8 {
        c.propose(n(1), &[i]);
    }
    c.run(3);
    let applied = c.node(n(1)).applied_index();
    let data: Vec<u8> = (0..bytes).map(|i| (i * 7 % 251) as u8).collect();
    c.step(
        n(1),
        Input::Snapshot {
            index: applied,
            data: data.clone(),
        },
    );
    c.take_queue();
    c.heal();
    data
}

fn chunks_config(c: &mut core_raft::Config) {
    c.snapshot_chunk_bytes = 10;
    c.max_inflight_messages = 2;
}

fn chunk(e: &Envelope) -> Option<&InstallSnapshot> {
    match &e.msg {
        Message::InstallSnapshot(m) => Some(m),
        _ => None,
    }
}

fn installed(c: &Scenario, id: core_raft::NodeId) -> Option<Snapshot> {
    c.outputs(id).iter().find_map(|a| match a {
        Action::ApplySnapshot(s) => Some(s.clone()),
        _ => None,
    })
}

/// A snapshot larger than a chunk travels as chunks of at most
/// `snapshot_chunk_bytes`, never more than `max_inflight_messages` of them
/// unanswered, and the follower assembles exactly the leader's bytes.
#[test]
fn a_snapshot_travels_in_chunks_within_the_window() {
    let mut c = Scenario::new(3, chunks_config);
    let data = lagging_behind_a_chunked_snapshot(&mut c, 95);
    let mut offsets = Vec::new();
    for _ in 0..200 {
        if installed(&c, n(3)).is_some() {
            break;
        }
        c.tick_all();
        // Deliver one message at a time, checking the window before each.
        while !c.queue().is_empty() {
            let to_3: Vec<_> = c
                .queue()
                .into_iter()
                .filter(|e| chunk(e).is_some())
                .collect();
            assert!(to_3.len() <= 2, "{} chunks in flight", to_3.len());
            let e = c.deliver_one().unwrap();
            if let Some(m) = chunk(&e) {
                assert!(m.data.len() <= 10, "a chunk of {} bytes", m.data.len());
                assert_eq!(m.total_len, 95);
                offsets.push(m.offset);
            }
        }
    }
    let s = installed(&c, n(3)).expect("node 3 installed the snapshot");
    assert_eq!(s.data, data);
    assert_eq!(c.durable(n(3)).snapshot.as_ref(), Some(&s));
    // Ten chunks, each sent once (nothing was lost).
    assert_eq!(offsets, (0..10).map(|i| i * 10).collect::<Vec<u64>>());
    c.propose(n(1), b"after");
    c.run(3);
    assert_eq!(c.applied_commands(n(3)), vec![b"after".to_vec()]);
}

/// A lost chunk is sent again once the transfer stalls, from the last byte
/// the follower acknowledged, not from the start.
#[test]
fn a_lost_chunk_is_resent_from_the_last_acknowledged_byte() {
    let mut c = Scenario::new(3, chunks_config);
    let data = lagging_behind_a_chunked_snapshot(&mut c, 95);
    let mut dropped = false;
    let mut offsets = Vec::new();
    for _ in 0..200 {
        if installed(&c, n(3)).is_some() {
            break;
        }
        c.tick_all();
        while let Some(e) = c.remove_queued(0) {
            if let Some(m) = chunk(&e) {
                if m.offset == 40 && !dropped {
                    dropped = true;
                    continue;
                }
                offsets.push(m.offset);
            }
            c.deliver(e);
        }
    }
    assert!(dropped);
    let s = installed(&c, n(3)).expect("node 3 installed the snapshot");
    assert_eq!(s.data, data);
    // The chunk after the gap is refused (node 3 says it has 40 bytes); the
    // leader resends from 40, and nothing before it goes twice.
    let sent = |offset: u64| offsets.iter().filter(|o| **o == offset).count();
    for before in [0, 10, 20, 30] {
        assert_eq!(sent(before), 1, "chunk {before} resent: {offsets:?}");
    }
    assert_eq!(sent(40), 1, "{offsets:?}");
}

/// A follower that restarts mid-transfer has lost what it assembled: it
/// says so (it has 0 bytes), and the leader starts the transfer over.
#[test]
fn a_follower_restarted_mid_transfer_gets_the_snapshot_from_the_start() {
    let mut c = Scenario::new(3, chunks_config);
    let data = lagging_behind_a_chunked_snapshot(&mut c, 95);
    let mut restarted = false;
    let mut firsts = 0;
    for _ in 0..300 {
        if installed(&c, n(3)).is_some() {
            break;
        }
        c.tick_all();
        while let Some(e) = c.deliver_one() {
            firsts += usize::from(chunk(&e).is_some_and(|m| m.offset == 0));
            if !restarted && chunk(&e).is_some_and(|m| m.offset == 30) {
                c.crash(n(3));
                c.restart(n(3));
                restarted = true;
            }
        }
    }
    assert!(restarted);
    assert_eq!(firsts, 2, "the first chunk went again after the restart");
    let s = installed(&c, n(3)).expect("node 3 installed the snapshot");
    assert_eq!(s.data, data);
}

/// The follower answers a chunk of a snapshot it already holds (its commit
/// index is past it) at once as complete: no transfer of the rest.
#[test]
fn a_chunk_of_a_snapshot_the_follower_already_holds_ends_the_transfer() {
    let mut c = Scenario::new(3, chunks_config);
    c.elect(n(1));
    for i in 0..5u8 {
        c.propose(n(1), &[i]);
    }
    c.run(3);
    let commit = c.node(n(2)).commit_index();
    let m = InstallSnapshot {
        term: c.node(n(1)).term(),
        index: commit,
        snapshot_term: c.node(n(1)).term_at(commit).unwrap(),
        membership: core_raft::Membership::with_voters((1..=3).map(core_raft::NodeId)),
        total_len: 1_000,
        offset: 0,
        data: vec![0; 10],
        round: 0,
    };
    let a = c.step(
        n(2),
        Input::Receive {
            from: n(1),
            msg: Message::InstallSnapshot(m),
        },
    );
    let answer = a.iter().find_map(|a| match a {
        Action::Send {
            msg: Message::InstallSnapshotResponse(r),
            ..
        } => Some(r.clone()),
        _ => None,
    });
    assert_eq!(answer.map(|r| r.match_index), Some(commit));
    assert!(!a
        .iter()
        .any(|a| matches!(a, Action::PersistSnapshot { .. })));
}

/// Chunks from a superseded transfer (an earlier snapshot of the same
/// leader) do not disturb the newer one being assembled.
#[test]
fn chunks_of_an_older_transfer_leave_the_newer_one_alone() {
    let mut c = Scenario::new(3, chunks_config);
    c.elect(n(1));
    c.isolate(n(3));
    for i in 0..5u8 {
        c.propose(n(1), &[i]);
    }
    c.run(3);
    c.heal();
    c.take_queue();
    let term = c.node(n(1)).term();
    let voters = core_raft::Membership::with_voters((1..=3).map(core_raft::NodeId));
    let at = |index: LogIndex, offset: u64, data: &[u8]| {
        Message::InstallSnapshot(InstallSnapshot {
            term,
            index,
            snapshot_term: term,
            membership: voters.clone(),
            total_len: 20,
            offset,
            data: data.to_vec(),
            round: 0,
        })
    };
    let last = c.node(n(1)).last_index();
    let newer = last;
    let older = last.prev();
    let receive = |c: &mut Scenario, msg| c.step(n(3), Input::Receive { from: n(1), msg });
    receive(&mut c, at(newer, 0, &[1; 10]));
    receive(&mut c, at(older, 0, &[2; 10]));
    receive(&mut c, at(older, 10, &[2; 10]));
    assert!(installed(&c, n(3)).is_none());
    let a = receive(&mut c, at(newer, 10, &[1; 10]));
    assert!(a.iter().any(|a| matches!(a, Action::ApplySnapshot(_))));
    let s = installed(&c, n(3)).unwrap();
    assert_eq!((s.index, s.data), (newer, vec![1; 20]));
}

/// Issue 17, snapshots that cost what changed: an application that keeps
/// its state durably itself compacts with `Input::Compact`: the log prefix
/// goes, and the snapshot Raft keeps (and persists) is external, holding no
/// copy of the state. Outside (snapshot, applied] it is ignored, like a
/// snapshot with bytes.
#[test]
fn compact_drops_the_log_without_a_copy_of_the_state() {
    let mut c = cluster_with_commands(10);
    let applied = c.node(n(1)).applied_index();
    let at = LogIndex(applied.0 - 3);
    let a = c.step(n(1), Input::Compact { index: at });
    match &a[..] {
        [Action::PersistSnapshot {
            snapshot,
            discard_log: false,
        }] => {
            assert!(snapshot.external && snapshot.data.is_empty(), "{snapshot}");
            assert_eq!(snapshot.index, at);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(c.node(n(1)).snapshot_index(), at);
    assert!(c
        .durable(n(1))
        .snapshot
        .as_ref()
        .is_some_and(|s| s.external));
    assert_eq!(c.step(n(1), Input::Compact { index: at }), vec![]);
    assert_eq!(
        c.step(
            n(1),
            Input::Compact {
                index: applied.next()
            }
        ),
        vec![]
    );
    // The cluster keeps working on top of it.
    c.propose(n(1), b"more");
    c.run(3);
    assert_eq!(c.applied_commands(n(2)).last(), Some(&b"more".to_vec()));
}

/// A leader whose snapshot is external asks the application for a copy
/// (`Action::SnapshotWanted`, once however often the follower is tried),
/// sends the copy it is given (captured at the applied index, which may be
/// the external snapshot's own), and the follower catches up. While the
/// transfer runs, `Compact` is ignored: it would replace the copy being
/// sent.
#[test]
fn an_external_snapshot_is_copied_on_demand_for_a_lagging_follower() {
    let mut c = Scenario::new(3, |_| {});
    c.elect(n(1));
    c.isolate(n(3));
    for i in 0..10u8 {
        c.propose(n(1), &[i]);
    }
    c.run(3);
    let applied = c.node(n(1)).applied_index();
    c.step(n(1), Input::Compact { index: applied });
    c.heal();
    c.run(10);
    let wanted: Vec<LogIndex> = c
        .outputs(n(1))
        .iter()
        .filter_map(|a| match a {
            Action::SnapshotWanted { index } => Some(*index),
            _ => None,
        })
        .collect();
    assert_eq!(wanted, vec![applied], "asked once, for the compacted index");
    assert_eq!(
        c.count_sent(|e| matches!(e.msg, Message::InstallSnapshot(_))),
        0,
        "nothing to send before the copy"
    );
    // The application hands in a copy at the same index.
    let a = snapshot(&mut c, n(1), applied);
    assert!(
        matches!(&a[..], [Action::PersistSnapshot { snapshot, .. }] if !snapshot.external && snapshot.index == applied),
        "{a:?}"
    );
    // Once the leader has sent the copy, and before node 3 has answered,
    // the transfer runs: a compaction is ignored.
    for _ in 0..50 {
        if c.count_sent(|e| matches!(e.msg, Message::InstallSnapshot(_))) > 0 {
            break;
        }
        c.step(n(1), Input::Tick);
    }
    assert!(c.count_sent(|e| matches!(e.msg, Message::InstallSnapshot(_))) > 0);
    assert_eq!(c.step(n(1), Input::Compact { index: applied }), vec![]);
    c.run(10);
    let installed = c.outputs(n(3)).iter().find_map(|a| match a {
        Action::ApplySnapshot(s) => Some(s.clone()),
        _ => None,
    });
    let s = installed.expect("node 3 installed the copy");
    assert_eq!(s.index, applied);
    assert_eq!(s.data, format!("state through {}", applied.0).into_bytes());
    c.propose(n(1), b"after");
    c.run(3);
    assert_eq!(c.applied_commands(n(3)), vec![b"after".to_vec()]);
    // A follower that installed a copy may drop it at the same index: its
    // application holds the state now.
    let a = c.step(n(3), Input::Compact { index: applied });
    assert!(
        matches!(&a[..], [Action::PersistSnapshot { snapshot, .. }] if snapshot.external && snapshot.index == applied),
        "{a:?}"
    );
}

/// A follower streaming entries (replicate mode) whose window is full
/// when the leader compacts past its next entry waits in probe mode for the
/// copy: on its next acknowledgement the leader must not loop trying to
/// stream it entries it no longer has (it once spun for ever in
/// `send_more`).
#[test]
fn a_streaming_follower_behind_an_external_compaction_waits_for_the_copy() {
    let mut c = Scenario::new(3, |cfg| {
        cfg.max_inflight_messages = 2;
        cfg.max_entries_per_message = 1;
    });
    c.elect(n(1));
    c.propose(n(1), b"first");
    c.deliver_all();
    c.run(3);
    // Node 3's appends are held back: its window fills while node 2
    // acknowledges everything and the entries commit.
    let mut held = Vec::new();
    for i in 0..6u8 {
        c.propose(n(1), &[i]);
        for e in c.take_queue() {
            if e.to == n(3) {
                held.push(e);
            } else {
                c.deliver(e);
            }
        }
        c.deliver_all();
    }
    let applied = c.node(n(1)).applied_index();
    assert!(c.node(n(1)).match_index(n(3)) < Some(applied));
    c.step(n(1), Input::Compact { index: applied });
    // Node 3 acknowledges what it was sent: the leader must ask for a copy
    // rather than spin.
    for e in held {
        c.deliver(e);
    }
    c.run(10);
    let wanted = c
        .outputs(n(1))
        .iter()
        .filter(|a| matches!(a, Action::SnapshotWanted { .. }))
        .count();
    assert_eq!(wanted, 1);
    let now = c.node(n(1)).applied_index();
    snapshot(&mut c, n(1), now);
    c.run(10);
    assert_eq!(c.node(n(3)).last_index(), c.node(n(1)).last_index());
    assert_eq!(c.node(n(3)).applied_index(), now);
}
