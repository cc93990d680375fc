//! DiskKv under a one-node replica (core-kv's Rsm) across a crash: the
//! replica restarts from its Raft storage (log and snapshot, all persisted)
//! and a copy of the database file taken mid-run, and ends in the state of
//! a store that applied every request once. With rare durable commits the
//! store is behind the log's snapshot and is restored from it at its index
//! (`restore_at`); with a durable commit per apply it is past the snapshot
//! and keeps its own state.

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
    let options = Options { durable_every };
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
    let snapshot = durable
        .snapshot
        .as_ref()
        .expect("the log was compacted")
        .index;
    std::fs::copy(dir.file("kv.redb"), dir.file("crashed.redb")).unwrap();
    drop(rsm);

    let kv = DiskKv::open_with(dir.file("crashed.redb"), options).unwrap();
    let reopened = kv.applied_index();
    let mut rsm = Rsm::restore(config(), durable.clone(), kv).unwrap();
    let after_restore = rsm.state().applied_index();
    if reopened.is_none_or(|k| k < snapshot) {
        assert_eq!(
            after_restore,
            Some(snapshot),
            "restored at the snapshot's index"
        );
    } else {
        assert_eq!(after_restore, reopened, "its own, newer state kept");
    }
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
    assert_eq!(drain(rsm.state().snapshot()), mem.to_snapshot());
    (reopened, snapshot)
}

#[test]
fn a_store_behind_the_snapshot_is_restored_from_it_at_its_index() {
    let (reopened, snapshot) = run(1000);
    assert!(
        reopened.is_none_or(|k| k < snapshot),
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
