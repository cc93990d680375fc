//! The shell's fault-injection filter (`NodeInput::Faults`), driven by
//! hand: a cut link loses Raft frames in the chosen direction only, other
//! links are untouched, and clearing the faults restores the link. This is
//! the filter `kv chaos` partitions real clusters with, on both runtimes.

use core_kv::{ClientRequest, KvStore, Outcome, RsmConfig, KV_PROTOCOL_VERSION};
use core_raft::{Config, Durable, LogIndex, Member, Message, NodeId, RequestVote, Term};
use node_shell::{
    Bootstrap, ConnId, Frame, LinkFaults, NodeAction, NodeConfig, NodeInput, PeerIdentity,
    ReplicaNode,
};
use std::collections::BTreeSet;
use wire::{encode_frame, Hello};

const MAX: u32 = 1 << 20;
const CLUSTER: u64 = 9;

type KvFrame = Frame<ClientRequest, Outcome>;

/// Node 1 of a static three-node cluster.
fn node() -> ReplicaNode<KvStore> {
    let ids: Vec<NodeId> = (1..=3).map(NodeId).collect();
    let config = NodeConfig {
        id: NodeId(1),
        identity: Member::default(),
        bootstrap: Bootstrap::Static,
        cluster: CLUSTER,
        protocol: KV_PROTOCOL_VERSION,
        max_frame_bytes: MAX,
        limits: node_shell::ClientLimits::default(),
    };
    let rsm = RsmConfig::new(Config::new(NodeId(1), ids));
    ReplicaNode::restore(config, rsm, Durable::default(), KvStore::default()).unwrap()
}

/// Connect peer `peer` to `n` on connection `conn` (hello and identity).
fn connect(n: &mut ReplicaNode<KvStore>, conn: ConnId, peer: u64) {
    let mut bytes = encode_frame(&Hello::new(KV_PROTOCOL_VERSION, CLUSTER, peer), MAX).unwrap();
    let identity: KvFrame = Frame::PeerIdentity(PeerIdentity {
        incarnation: 0,
        addr: String::new(),
        formed: true,
        expected: 0,
    });
    bytes.extend(encode_frame(&identity, MAX).unwrap());
    n.step(NodeInput::Accepted { conn });
    let out = n.step(NodeInput::Received { conn, bytes });
    assert!(
        !out.iter().any(|a| matches!(a, NodeAction::Close { .. })),
        "{out:?}"
    );
}

/// A vote request of `term` from the peer on `conn`.
fn vote_request(n: &mut ReplicaNode<KvStore>, conn: ConnId, term: u64) -> Vec<NodeAction> {
    let frame: KvFrame = Frame::Raft(Message::RequestVote(RequestVote {
        term: Term(term),
        last_log_index: LogIndex(0),
        last_log_term: Term(0),
        pre_vote: false,
        transfer: false,
    }));
    let bytes = encode_frame(&frame, MAX).unwrap();
    let out = n.step(NodeInput::Received { conn, bytes });
    persist_all(n, out)
}

/// Report every persist batch durable at once; the other actions, and
/// those the reports released.
fn persist_all(n: &mut ReplicaNode<KvStore>, actions: Vec<NodeAction>) -> Vec<NodeAction> {
    let mut rest = Vec::new();
    for a in actions {
        match a {
            NodeAction::Persist { batch, .. } => {
                let released = n.step(NodeInput::Persisted { batch });
                rest.extend(persist_all(n, released));
            }
            other => rest.push(other),
        }
    }
    rest
}

/// The peers the Raft frames among `actions` go to.
fn sent_to(actions: &[NodeAction]) -> BTreeSet<u64> {
    actions
        .iter()
        .filter_map(|a| match a {
            NodeAction::Send { to, .. } => Some(to.0),
            _ => None,
        })
        .collect()
}

fn faults(to: &[u64], from: &[u64]) -> NodeInput {
    NodeInput::Faults(LinkFaults {
        drop_to: to.iter().copied().map(NodeId).collect(),
        drop_from: from.iter().copied().map(NodeId).collect(),
    })
}

#[test]
fn a_cut_link_drops_frames_in_its_direction_only() {
    let mut n = node();
    let from_2 = ConnId(1);
    connect(&mut n, from_2, 2);

    // No faults: node 2's request is heard and answered.
    let out = vote_request(&mut n, from_2, 1);
    assert_eq!(n.replica().raft().term(), Term(1));
    assert_eq!(sent_to(&out), BTreeSet::from([2]), "{out:?}");

    // Frames to 2 are lost: 2's request is still heard (the term moves
    // on), but the answer never leaves.
    assert!(n.step(faults(&[2], &[])).is_empty());
    let out = vote_request(&mut n, from_2, 2);
    assert_eq!(n.replica().raft().term(), Term(2), "inbound still flows");
    assert!(sent_to(&out).is_empty(), "outbound to 2 is cut: {out:?}");

    // Frames from 2 are lost: its request is not heard at all.
    assert!(n.step(faults(&[], &[2])).is_empty());
    let out = vote_request(&mut n, from_2, 3);
    assert_eq!(n.replica().raft().term(), Term(2), "inbound from 2 is cut");
    assert!(out.is_empty(), "nothing happens: {out:?}");

    // Cutting node 3 both ways leaves the link with 2 alone.
    n.step(faults(&[3], &[3]));
    let out = vote_request(&mut n, from_2, 3);
    assert_eq!(n.replica().raft().term(), Term(3));
    assert_eq!(sent_to(&out), BTreeSet::from([2]), "{out:?}");
}

#[test]
fn outbound_cuts_spare_other_peers_and_clearing_restores_them() {
    let mut n = node();
    // Campaign with frames to 3 lost: the (pre-)vote requests reach 2 only.
    n.step(faults(&[3], &[]));
    let first = campaign(&mut n);
    assert_eq!(first, BTreeSet::from([2]));
    // Cleared: the next campaign asks both.
    n.step(faults(&[], &[]));
    let second = campaign(&mut n);
    assert_eq!(second, BTreeSet::from([2, 3]));
}

/// Tick until the node sends something (its next campaign, as nobody
/// answers); the peers it sent to.
fn campaign(n: &mut ReplicaNode<KvStore>) -> BTreeSet<u64> {
    for _ in 0..1000 {
        let out = n.step(NodeInput::Tick);
        let out = persist_all(n, out);
        let to = sent_to(&out);
        if !to.is_empty() {
            return to;
        }
    }
    panic!("no campaign within 1000 ticks");
}
