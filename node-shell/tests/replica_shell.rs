//! The replica shell driven by hand, as a driver would drive it: bytes in,
//! bytes and persist batches out. A one-replica cluster elects itself, so a
//! client's request goes the whole way (decode, submit, persist, apply,
//! reply) without peers; a three-replica shell shows the handshake rules.

use core_kv::{ClientId, ClientRequest, KvStore, Op, Outcome, RsmConfig, Seq, KV_PROTOCOL_VERSION};
use core_raft::{Config, Durable, NodeId};
use node_shell::{ConnId, Frame, NodeAction, NodeConfig, NodeInput, ReplicaNode, CLIENT_NODE};
use wire::{encode_frame, Hello};

const MAX: u32 = 1 << 20;
const CLUSTER: u64 = 9;

fn node(id: u64, members: u64) -> ReplicaNode<KvStore> {
    let ids: Vec<NodeId> = (1..=members).map(NodeId).collect();
    let config = NodeConfig {
        id: NodeId(id),
        members: ids.clone(),
        cluster: CLUSTER,
        protocol: KV_PROTOCOL_VERSION,
        max_frame_bytes: MAX,
    };
    let rsm = RsmConfig::new(Config::new(NodeId(id), ids));
    ReplicaNode::restore(config, rsm, Durable::default(), KvStore::default()).unwrap()
}

fn hello(protocol: u32, cluster: u64, node: u64) -> Vec<u8> {
    encode_frame(&Hello::new(protocol, cluster, node), MAX).unwrap()
}

fn request(seq: u64, op: Op) -> Vec<u8> {
    let op = ClientRequest {
        client: ClientId(1),
        seq: Seq(seq),
        op,
    };
    let frame: Frame<ClientRequest, Outcome> = Frame::Request { id: seq, op };
    encode_frame(&frame, MAX).unwrap()
}

/// Tick a fresh node until it leads, making every batch durable at once.
fn elected(n: &mut ReplicaNode<KvStore>) {
    for _ in 0..300 {
        let actions = n.step(NodeInput::Tick);
        persist_all(n, actions);
        if n.replica().raft().is_leader() {
            return;
        }
    }
    panic!("a one-replica cluster did not elect itself");
}

/// Report every persist batch among `actions` durable; returns the other
/// actions, and those the reports released.
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

#[test]
fn a_reply_waits_for_its_batch_and_goes_back_on_its_connection() {
    let mut n = node(1, 1);
    elected(&mut n);
    let conn = ConnId(5);
    n.step(NodeInput::Accepted { conn });
    assert!(n
        .step(NodeInput::Received {
            conn,
            bytes: hello(KV_PROTOCOL_VERSION, CLUSTER, CLIENT_NODE),
        })
        .is_empty());
    let put = Op::Set {
        key: "k".into(),
        value: "v".into(),
    };
    // The request arrives split across two reads.
    let bytes = request(1, put);
    let (a, b) = bytes.split_at(3);
    assert!(n
        .step(NodeInput::Received {
            conn,
            bytes: a.to_vec()
        })
        .is_empty());
    let actions = n.step(NodeInput::Received {
        conn,
        bytes: b.to_vec(),
    });
    assert!(
        actions
            .iter()
            .all(|a| matches!(a, NodeAction::Persist { .. })),
        "nothing but the entry's persist may go out before it is durable: {actions:?}"
    );
    let batch = match actions.as_slice() {
        [NodeAction::Persist { batch, .. }] => *batch,
        other => panic!("{other:?}"),
    };
    assert_eq!(n.pending(), 1);
    let released = n.step(NodeInput::Persisted { batch });
    let reply = released.iter().find_map(|a| match a {
        NodeAction::Write { conn: c, bytes } if *c == conn => Some(bytes.clone()),
        _ => None,
    });
    let reply = reply.expect("the reply is written once its entry is durable");
    let mut d = wire::Decoder::new(MAX);
    d.push(&reply);
    let frame: Frame<ClientRequest, Outcome> = d.next_message().unwrap().unwrap();
    assert_eq!(
        frame,
        Frame::Reply {
            id: 1,
            result: Ok(Outcome::Ok)
        }
    );
    assert_eq!(n.pending(), 0);
}

#[test]
fn handshakes_are_checked_and_refusals_name_the_reason() {
    let mut n = node(2, 3);
    let cases = [
        (
            hello(KV_PROTOCOL_VERSION + 1, CLUSTER, 1),
            "protocol version mismatch",
        ),
        (
            hello(KV_PROTOCOL_VERSION, CLUSTER + 1, 1),
            "cluster id mismatch",
        ),
        (
            hello(KV_PROTOCOL_VERSION, CLUSTER, 7),
            "node 7 is not a member",
        ),
        (
            hello(KV_PROTOCOL_VERSION, CLUSTER, 2),
            "node 2 is not a member",
        ),
        (vec![0, 0, 0, 2, 0xff, 0xff], "bad handshake frame"),
        (vec![0xff, 0xff, 0xff, 0xff], "exceeds the maximum"),
    ];
    for (i, (bytes, why)) in cases.into_iter().enumerate() {
        let conn = ConnId(i as u64);
        n.step(NodeInput::Accepted { conn });
        let out = n.step(NodeInput::Received { conn, bytes });
        match out.as_slice() {
            [NodeAction::Close { conn: c, reason }] => {
                assert_eq!(*c, conn);
                assert!(
                    reason.contains(why),
                    "case {i}: {reason:?} should say {why:?}"
                );
            }
            other => panic!("case {i}: {other:?}"),
        }
    }
    // A peer may not send client requests, nor a client Raft messages; only
    // the offending connection closes.
    let peer = ConnId(100);
    n.step(NodeInput::Accepted { conn: peer });
    n.step(NodeInput::Received {
        conn: peer,
        bytes: hello(KV_PROTOCOL_VERSION, CLUSTER, 1),
    });
    let out = n.step(NodeInput::Received {
        conn: peer,
        bytes: request(1, Op::Get { key: "k".into() }),
    });
    assert!(
        matches!(out.as_slice(), [NodeAction::Close { reason, .. }] if reason.contains("not Raft")),
        "{out:?}"
    );
    let client = ConnId(101);
    n.step(NodeInput::Accepted { conn: client });
    n.step(NodeInput::Received {
        conn: client,
        bytes: hello(KV_PROTOCOL_VERSION, CLUSTER, CLIENT_NODE),
    });
    let get = request(1, Op::Get { key: "k".into() });
    let out = n.step(NodeInput::Received {
        conn: client,
        bytes: get,
    });
    // A follower without a leader answers "not leader" at once.
    assert!(
        matches!(out.as_slice(), [NodeAction::Write { conn, .. }] if *conn == client),
        "{out:?}"
    );
}

#[test]
fn an_answer_for_a_closed_connection_is_dropped() {
    let mut n = node(1, 1);
    elected(&mut n);
    let conn = ConnId(1);
    n.step(NodeInput::Accepted { conn });
    n.step(NodeInput::Received {
        conn,
        bytes: hello(KV_PROTOCOL_VERSION, CLUSTER, CLIENT_NODE),
    });
    let actions = n.step(NodeInput::Received {
        conn,
        bytes: request(
            1,
            Op::Append {
                key: "k".into(),
                value: "x".into(),
            },
        ),
    });
    n.step(NodeInput::Closed { conn });
    let out = persist_all(&mut n, actions);
    assert!(
        !out.iter().any(|a| matches!(a, NodeAction::Write { .. })),
        "{out:?}"
    );
    assert_eq!(n.pending(), 0, "the submission was answered, to no one");
}
