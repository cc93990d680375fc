//! DiskKv under a one-node replica (core-kv's Rsm) across a crash: the
//! replica restarts from its Raft storage (log and snapshot, all persisted)
//! and a copy of the database file taken mid-run, and ends in the state of
//! a store that applied every request once. The store is durable
//! (`StateMachine::DURABLE`), so the replica compacts its log with external
//! snapshots (no copy of the state) up to the store's durable index, making
//! the latest applies durable first if needed: after a crash the store is
//! never behind the log's start, and keeps its own state. A store that is
//! (a state file swapped for an older one) is refused.

mod common;

use common::{drain, Scratch};
use core_kv::{
    ClientId, ClientRequest, KvStore, LogIndex, Op, Rsm, RsmAction, RsmConfig, RsmInput, Seq,
    StateMachine,
};
use core_raft::{Config, Durable, NodeId};
use kv_disk::{DiskKv, Options};

fn config() -> RsmConfig {
    let mut raft = Config::new(NodeId(1), vec![NodeId(1)]);
    raft.leader_noop = false;
    RsmConfig {
        max_raft_state: Some(4000),
        ..RsmConfig::new(raft)
    }
}

fn request(i: u64) -> ClientRequest {
    ClientRequest {
        client: ClientId(1 + i % 3),
        seq: Seq(1 + i / 3),
        op: if i.is_multiple_of(4) {
            Op::Append {
                key: format!("k{}", i % 7),
                value: format!("-{i}"),
            }
        } else {
            Op::Set {
                key: format!("k{}", i % 11),
                value: "x".repeat(40) + &i.to_string(),
            }
        },
    }
}

/// Step the replica, keeping its persists in `durable` (Raft storage that
/// syncs at once).
fn step(rsm: &mut Rsm<DiskKv>, durable: &mut Durable, input: RsmInput<ClientRequest>) {
    for a in rsm.step(input) {
        if let RsmAction::Raft(action) = &a {
            durable.persist(action);
        }
    }
}

fn lead(rsm: &mut Rsm<DiskKv>, durable: &mut Durable) {
    for _ in 0..1000 {
        if rsm.raft().is_leader() {
            return;
        }
        step(rsm, durable, RsmInput::Tick);
    }
    panic!("no leader");
}

fn run(durable_every: u64) -> (Option<LogIndex>, LogIndex) {
    let dir = Scratch::new("replica");
    let options = Options {
        durable_every,
        ..Options::default()
    };
    let mut durable = Durable::default();
    let kv = DiskKv::open_with(dir.file("kv.redb"), options).unwrap();
    let mut rsm = Rsm::restore(config(), durable.clone(), kv).unwrap();
    lead(&mut rsm, &mut durable);
    let mut mem = KvStore::new();
    for i in 0..300 {
        step(
            &mut rsm,
            &mut durable,
            RsmInput::Submit {
                id: i,
                op: request(i),
            },
        );
        mem.apply(&request(i));
    }
    let stored = durable.snapshot.as_ref().expect("the log was compacted");
    assert!(
        stored.external && stored.data.is_empty(),
        "compaction made no copy of the state: {stored}"
    );
    let snapshot = stored.index;
    // An empty store under this log would miss everything through the
    // snapshot: refused, with advice.
    let empty = DiskKv::open_with(dir.file("empty.redb"), options).unwrap();
    let refused = match Rsm::restore(config(), durable.clone(), empty) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("a store behind an external snapshot was accepted"),
    };
    assert!(refused.contains("add the node back"), "{refused}");
    std::fs::copy(dir.file("kv.redb"), dir.file("crashed.redb")).unwrap();
    drop(rsm);

    let kv = DiskKv::open_with(dir.file("crashed.redb"), options).unwrap();
    let reopened = kv.applied_index();
    let mut rsm = Rsm::restore(config(), durable.clone(), kv).unwrap();
    let after_restore = rsm.state().applied_index();
    assert_eq!(after_restore, reopened, "its own state kept");
    lead(&mut rsm, &mut durable);
    for i in 300..320 {
        step(
            &mut rsm,
            &mut durable,
            RsmInput::Submit {
                id: i,
                op: request(i),
            },
        );
        mem.apply(&request(i));
    }
    assert_eq!(rsm.state().last_applied(), Some(rsm.raft().applied_index()));
    let mut kv = rsm.into_state();
    kv.make_durable();
    assert_eq!(drain(kv.snapshot()), mem.to_snapshot());
    (reopened, snapshot)
}

#[test]
fn with_rare_durable_commits_compaction_makes_the_store_durable_first() {
    let (reopened, snapshot) = run(1000);
    assert!(
        reopened.is_some_and(|k| k >= snapshot),
        "{reopened:?} {snapshot}"
    );
}

#[test]
fn a_store_past_the_snapshot_keeps_its_state_and_skips_what_it_holds() {
    let (reopened, snapshot) = run(1);
    assert!(
        reopened.is_some_and(|k| k >= snapshot),
        "{reopened:?} {snapshot}"
    );
}
