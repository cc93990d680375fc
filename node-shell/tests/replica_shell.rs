//! The replica shell driven by hand, as a driver would drive it: bytes in,
//! bytes and persist batches out. A one-replica cluster elects itself, so a
//! client's request goes the whole way (decode, submit, persist, apply,
//! reply) without peers; a three-replica shell shows the handshake rules.

use core_kv::{
    ChangeOutcome, ClientId, ClientRequest, ClusterChange, KvStore, Op, Outcome, RsmConfig, Seq,
    KV_PROTOCOL_VERSION,
};
use core_raft::{Config, Durable, Member, MembershipChange, NodeId};
use node_shell::{
    AdminReply, AdminRequest, Bootstrap, ConnId, Frame, NodeAction, NodeConfig, NodeInput,
    PeerIdentity, ReplicaNode, CLIENT_NODE,
};
use wire::{encode_frame, Hello};

const MAX: u32 = 1 << 20;
const CLUSTER: u64 = 9;

fn node(id: u64, members: u64) -> ReplicaNode<KvStore> {
    node_with_limits(id, members, node_shell::ClientLimits::default())
}

fn node_with_limits(
    id: u64,
    members: u64,
    limits: node_shell::ClientLimits,
) -> ReplicaNode<KvStore> {
    let ids: Vec<NodeId> = (1..=members).map(NodeId).collect();
    let config = NodeConfig {
        id: NodeId(id),
        identity: Member::default(),
        bootstrap: Bootstrap::Static,
        cluster: CLUSTER,
        protocol: KV_PROTOCOL_VERSION,
        max_frame_bytes: MAX,
        limits,
    };
    let rsm = RsmConfig::new(Config::new(NodeId(id), ids));
    ReplicaNode::restore(config, rsm, Durable::default(), KvStore::default()).unwrap()
}

fn hello(protocol: u32, cluster: u64, node: u64) -> Vec<u8> {
    encode_frame(&Hello::new(protocol, cluster, node), MAX).unwrap()
}

/// What peer `node` writes first on a connection: hello, then identity.
fn peer_hello(node: u64, incarnation: u64, addr: &str, formed: bool) -> Vec<u8> {
    peer_hello_expecting(node, incarnation, addr, formed, 0)
}

/// The same, from a peer whose membership lists the receiver with
/// incarnation `expected`.
fn peer_hello_expecting(
    node: u64,
    incarnation: u64,
    addr: &str,
    formed: bool,
    expected: u64,
) -> Vec<u8> {
    let identity: Frame<ClientRequest, Outcome> = Frame::PeerIdentity(PeerIdentity {
        incarnation,
        addr: addr.into(),
        formed,
        expected,
    });
    let mut bytes = hello(KV_PROTOCOL_VERSION, CLUSTER, node);
    bytes.extend(encode_frame(&identity, MAX).unwrap());
    bytes
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
            result: Ok(Outcome::Ok),
            leader_addr: None,
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
            hello(KV_PROTOCOL_VERSION, CLUSTER, 2),
            "node 2 is not a member",
        ),
        // A peer's hello must be followed by its identity.
        (
            [
                hello(KV_PROTOCOL_VERSION, CLUSTER, 1),
                request(1, Op::Get { key: "k".into() }),
            ]
            .concat(),
            "sent no identity",
        ),
        (vec![0, 0, 0, 2, 0xff, 0xff], "bad handshake frame"),
        (vec![0xff, 0xff, 0xff, 0xff], "exceeds the maximum"),
    ];
    for (i, (bytes, why)) in cases.into_iter().enumerate() {
        let conn = ConnId(i as u64);
        n.step(NodeInput::Accepted { conn });
        let out = n.step(NodeInput::Received { conn, bytes });
        match out.as_slice() {
            [NodeAction::Close {
                conn: c, reason, ..
            }] => {
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
        bytes: peer_hello(1, 0, "", true),
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

/// Node `id` of a cluster started from bootstrap peers 1..=`peers` at
/// `h:<id>`, with incarnation `100 + id`.
fn peer_node(id: u64, peers: u64) -> ReplicaNode<KvStore> {
    let config = NodeConfig {
        id: NodeId(id),
        identity: Member {
            addr: format!("h:{id}"),
            incarnation: 100 + id,
        },
        bootstrap: Bootstrap::Peers((1..=peers).map(|p| (NodeId(p), format!("h:{p}"))).collect()),
        cluster: CLUSTER,
        protocol: KV_PROTOCOL_VERSION,
        max_frame_bytes: MAX,
        limits: node_shell::ClientLimits::default(),
    };
    let rsm = RsmConfig::new(Config::new(NodeId(id), Vec::new()));
    ReplicaNode::restore(config, rsm, Durable::default(), KvStore::default()).unwrap()
}

/// A follower's answer that it holds everything the leader has.
fn ack_all(leader: &core_raft::Raft) -> core_raft::Message {
    core_raft::Message::AppendEntriesResponse(core_raft::AppendEntriesResponse {
        term: leader.term(),
        match_index: leader.last_index(),
        reject: None,
        round: 0,
    })
}

fn admin(id: u64, request: AdminRequest) -> Vec<u8> {
    let frame: Frame<ClientRequest, Outcome> = Frame::Admin { id, request };
    encode_frame(&frame, MAX).unwrap()
}

/// The admin replies written on `conn`, in order.
fn admin_replies(actions: &[NodeAction], conn: ConnId) -> Vec<AdminReply> {
    let mut out = Vec::new();
    for a in actions {
        if let NodeAction::Write { conn: c, bytes } = a {
            if *c == conn {
                let mut d = wire::Decoder::new(MAX);
                d.push(bytes);
                if let Some(Frame::AdminReply { reply, .. }) =
                    d.next_message::<Frame<ClientRequest, Outcome>>().unwrap()
                {
                    out.push(reply);
                }
            }
        }
    }
    out
}

fn admin_reply(actions: &[NodeAction], conn: ConnId) -> AdminReply {
    match admin_replies(actions, conn).as_slice() {
        [one] => one.clone(),
        other => panic!("not one admin reply on {conn}: {other:?} in {actions:?}"),
    }
}

fn stop_reason(actions: &[NodeAction]) -> Option<&str> {
    actions.iter().find_map(|a| match a {
        NodeAction::Stop { reason } => Some(reason.as_str()),
        _ => None,
    })
}

/// Connect peer `from` to `n` with the given identity; returns the
/// connection and the actions.
fn connect_peer(
    n: &mut ReplicaNode<KvStore>,
    conn: u64,
    from: u64,
    incarnation: u64,
    formed: bool,
) -> Vec<NodeAction> {
    let conn = ConnId(conn);
    n.step(NodeInput::Accepted { conn });
    n.step(NodeInput::Received {
        conn,
        bytes: peer_hello(from, incarnation, &format!("h:{from}"), formed),
    })
}

#[test]
fn the_lowest_peer_founds_the_cluster_only_once_every_peer_says_none_exists() {
    let mut n = peer_node(1, 3);
    for _ in 0..200 {
        let actions = n.step(NodeInput::Tick);
        persist_all(&mut n, actions);
    }
    assert!(!n.formed(), "it waits for peers 2 and 3");
    assert!(n.replica().raft().membership().voters.is_empty());
    connect_peer(&mut n, 1, 2, 102, false);
    assert!(!n.formed(), "peer 3 has not spoken yet");
    connect_peer(&mut n, 2, 3, 103, false);
    assert!(
        n.formed(),
        "founded once both said they belong to no cluster"
    );
    let m = n.replica().raft().membership().clone();
    assert_eq!(m.voters.iter().map(|v| v.0).collect::<Vec<_>>(), vec![1]);
    assert_eq!(m.member(NodeId(1)).unwrap().incarnation, 101);
    // It elects itself, then adds the peers one at a time as learners with
    // the identities they presented, and promotes each once caught up.
    elected(&mut n);
    let mut seen = Vec::new();
    for _ in 0..400 {
        let actions = n.step(NodeInput::Tick);
        for a in &actions {
            if let NodeAction::Send { to, .. } = a {
                if !seen.contains(to) {
                    seen.push(*to);
                }
            }
        }
        persist_all(&mut n, actions);
        // Stand in for the learners: acknowledge everything at once.
        let raft = n.replica().raft();
        let ack = ack_all(raft);
        for peer in raft.peers().to_vec() {
            let frame: Frame<ClientRequest, Outcome> = Frame::Raft(ack.clone());
            let conn = ConnId(peer.0 - 1);
            let out = n.step(NodeInput::Received {
                conn,
                bytes: encode_frame(&frame, MAX).unwrap(),
            });
            persist_all(&mut n, out);
        }
    }
    let m = n.replica().raft().membership().clone();
    assert_eq!(
        m.voters.iter().map(|v| v.0).collect::<Vec<_>>(),
        vec![1, 2, 3],
        "both peers promoted: {m}"
    );
    assert_eq!(m.member(NodeId(3)).unwrap().incarnation, 103);
    assert_eq!(m.member(NodeId(2)).unwrap().addr, "h:2");
    assert!(seen.contains(&NodeId(2)) && seen.contains(&NodeId(3)));
}

#[test]
fn a_founder_whose_disk_was_wiped_refuses_to_found_a_second_cluster() {
    let mut n = peer_node(1, 3);
    let out = connect_peer(&mut n, 1, 2, 102, true);
    let why = stop_reason(&out).expect("it stops");
    assert!(why.contains("already belongs to a cluster"), "{why}");
    assert!(why.contains("--join"), "{why}");
    assert!(!n.formed());
}

#[test]
fn a_wiped_member_is_refused_under_its_old_id_and_stops_itself() {
    // Node 1 founds a cluster that lists node 2 with incarnation 102.
    let mut n = peer_node(1, 2);
    connect_peer(&mut n, 1, 2, 102, false);
    elected(&mut n);
    let mut promoted = false;
    for _ in 0..400 {
        let actions = n.step(NodeInput::Tick);
        persist_all(&mut n, actions);
        if n.replica().raft().membership().is_voter(NodeId(2)) {
            promoted = true;
            break;
        }
        let raft = n.replica().raft();
        let ack = ack_all(raft);
        if raft.membership().contains(NodeId(2)) {
            let frame: Frame<ClientRequest, Outcome> = Frame::Raft(ack);
            let out = n.step(NodeInput::Received {
                conn: ConnId(1),
                bytes: encode_frame(&frame, MAX).unwrap(),
            });
            persist_all(&mut n, out);
        }
    }
    assert!(promoted, "{}", n.replica().raft().membership());
    // Node 2 comes back with a wiped disk: a new incarnation.
    let out = connect_peer(&mut n, 9, 2, 999, false);
    let reason = out
        .iter()
        .find_map(|a| match a {
            NodeAction::Close { conn, reason, .. } if *conn == ConnId(9) => Some(reason.clone()),
            _ => None,
        })
        .expect("the connection is refused");
    assert!(reason.contains("incarnation"), "{reason}");
    assert!(reason.contains("kv member remove 2"), "{reason}");
    // Its vote would not count: nothing from it reaches Raft.
    assert!(n.replica().raft().is_leader());
    // The old connection, still open, keeps working.
    let raft = n.replica().raft();
    let ack = ack_all(raft);
    let frame: Frame<ClientRequest, Outcome> = Frame::Raft(ack);
    let out = n.step(NodeInput::Received {
        conn: ConnId(1),
        bytes: encode_frame(&frame, MAX).unwrap(),
    });
    assert!(
        !out.iter().any(|a| matches!(a, NodeAction::Close { .. })),
        "{out:?}"
    );

    // The wiped node itself, once it learns the membership, stops.
    let wiped = NodeConfig {
        id: NodeId(2),
        identity: Member {
            addr: "h:2".into(),
            incarnation: 999,
        },
        bootstrap: Bootstrap::Join,
        cluster: CLUSTER,
        protocol: KV_PROTOCOL_VERSION,
        max_frame_bytes: MAX,
        limits: node_shell::ClientLimits::default(),
    };
    let durable = Durable {
        snapshot: Some(core_raft::Snapshot {
            index: core_raft::LogIndex(1),
            term: core_raft::Term(1),
            membership: n.replica().raft().membership().clone(),
            data: {
                let mut bytes = Vec::new();
                let mut reader = core_kv::StateMachine::snapshot(&KvStore::default());
                std::io::Read::read_to_end(&mut reader, &mut bytes).unwrap();
                bytes
            },
            external: false,
        }),
        hard_state: core_raft::HardState {
            term: core_raft::Term(1),
            ..Default::default()
        },
        ..Durable::default()
    };
    let rsm = RsmConfig::new(Config::new(NodeId(2), Vec::new()));
    let mut w = ReplicaNode::restore(wiped, rsm, durable, KvStore::default()).unwrap();
    let out = w.step(NodeInput::Tick);
    let why = stop_reason(&out).expect("the wiped node stops");
    assert!(why.contains("incarnation"), "{why}");
}

#[test]
fn operators_get_status_changes_and_leader_addresses() {
    let mut n = peer_node(1, 1);
    assert!(n.formed(), "a single peer founds at once");
    let client = ConnId(50);
    n.step(NodeInput::Accepted { conn: client });
    n.step(NodeInput::Received {
        conn: client,
        bytes: hello(KV_PROTOCOL_VERSION, CLUSTER, CLIENT_NODE),
    });
    // Before it leads, a change is refused with "not leader".
    let out = n.step(NodeInput::Received {
        conn: client,
        bytes: admin(
            1,
            AdminRequest::Change(ClusterChange::Membership(MembershipChange::Remove(NodeId(
                5,
            )))),
        ),
    });
    let AdminReply::Changed { outcome, .. } = admin_reply(&out, client) else {
        panic!("{out:?}")
    };
    assert!(
        matches!(outcome, ChangeOutcome::NotLeader(_)),
        "{outcome:?}"
    );
    elected(&mut n);
    let out = n.step(NodeInput::Received {
        conn: client,
        bytes: admin(2, AdminRequest::Status),
    });
    let AdminReply::Status(status) = admin_reply(&out, client) else {
        panic!()
    };
    assert_eq!(status.role, "leader");
    assert_eq!(status.incarnation, 101);
    assert_eq!(status.leader_addr.as_deref(), Some("h:1"));
    assert!(status.to_string().contains("voters=[n1]"), "{status}");
    // A learner is added; its identity travels in the entry.
    let add = MembershipChange::AddLearner(
        NodeId(4),
        Member {
            addr: "h:4".into(),
            incarnation: 104,
        },
    );
    let mut out = n.step(NodeInput::Received {
        conn: client,
        bytes: admin(3, AdminRequest::Change(ClusterChange::Membership(add))),
    });
    assert_eq!(
        n.replica()
            .raft()
            .membership()
            .member(NodeId(4))
            .unwrap()
            .incarnation,
        104,
        "in effect once appended"
    );
    // A change the rules forbid is refused, with the reason.
    let again = MembershipChange::AddLearner(NodeId(1), Member::default());
    out.extend(n.step(NodeInput::Received {
        conn: client,
        bytes: admin(4, AdminRequest::Change(ClusterChange::Membership(again))),
    }));
    assert!(
        admin_replies(&out, client).is_empty(),
        "answers wait for the persist"
    );
    let out = persist_all(&mut n, out);
    let replies = admin_replies(&out, client);
    let [AdminReply::Changed { outcome: first, .. }, AdminReply::Changed {
        outcome: second, ..
    }] = replies.as_slice()
    else {
        panic!("{replies:?}")
    };
    assert!(matches!(first, ChangeOutcome::Proposed { .. }), "{first:?}");
    assert!(
        matches!(second, ChangeOutcome::Refused { reason, retry: false } if reason.contains("already a member")),
        "{second:?}"
    );
    // Node 4 is dialed at the address in the membership.
    let out = n.step(NodeInput::Tick);
    assert!(
        out.iter().any(
            |a| matches!(a, NodeAction::Dial { to, addr } if *to == NodeId(4) && addr == "h:4")
        ),
        "{out:?}"
    );
}

#[test]
fn a_wiped_node_learns_it_from_the_first_peer_that_dials_it() {
    // Node 2 restarted on an empty disk (incarnation 102 now); the leader,
    // whose membership lists node 2 as incarnation 55, dials it.
    let mut n = peer_node(2, 3);
    let conn = ConnId(1);
    n.step(NodeInput::Accepted { conn });
    let out = n.step(NodeInput::Received {
        conn,
        bytes: peer_hello_expecting(1, 101, "h:1", true, 55),
    });
    let why = stop_reason(&out).expect("it stops");
    assert!(why.contains("wiped or copied"), "{why}");
    assert!(why.contains("kv member remove 2"), "{why}");
    // The same dial to the node it expects is fine.
    let mut ok = peer_node(2, 3);
    ok.step(NodeInput::Accepted { conn });
    let out = ok.step(NodeInput::Received {
        conn,
        bytes: peer_hello_expecting(1, 101, "h:1", true, 102),
    });
    assert_eq!(stop_reason(&out), None, "{out:?}");
}

fn writes_to(actions: &[NodeAction], conn: ConnId) -> Vec<Frame<ClientRequest, Outcome>> {
    let mut decoder = wire::Decoder::new(MAX);
    for a in actions {
        if let NodeAction::Write { conn: c, bytes } = a {
            if *c == conn {
                decoder.push(bytes);
            }
        }
    }
    std::iter::from_fn(|| decoder.next_message().unwrap()).collect()
}

fn closed(actions: &[NodeAction], conn: ConnId) -> Option<&str> {
    actions.iter().find_map(|a| match a {
        NodeAction::Close {
            conn: c, reason, ..
        } if *c == conn => Some(reason.as_str()),
        _ => None,
    })
}

fn client_conn(n: &mut ReplicaNode<KvStore>, conn: ConnId) {
    n.step(NodeInput::Accepted { conn });
    let bytes = hello(KV_PROTOCOL_VERSION, CLUSTER, CLIENT_NODE);
    assert!(n.step(NodeInput::Received { conn, bytes }).is_empty());
}

/// Bounded memory (issue 12): a node takes at most `max_pending_requests`
/// requests at once. One more is answered `Busy` at once, without being
/// submitted (no persist, no log entry); once the earlier ones are
/// answered, requests are taken again.
#[test]
fn requests_beyond_the_pending_limit_are_answered_busy_unseen() {
    let limits = node_shell::ClientLimits {
        max_pending_requests: 2,
        ..Default::default()
    };
    let mut n = node_with_limits(1, 1, limits);
    elected(&mut n);
    let conn = ConnId(3);
    client_conn(&mut n, conn);
    let last = n.replica().raft().last_index();
    let set = |i: u64| Op::Set {
        key: format!("k{i}"),
        value: "v".into(),
    };
    // Two requests are taken and wait for their persists.
    let mut held = Vec::new();
    for seq in 1..=2 {
        held.extend(n.step(NodeInput::Received {
            conn,
            bytes: request(seq, set(seq)),
        }));
    }
    assert_eq!(n.pending(), 2);
    assert_eq!(n.replica().raft().last_index().0, last.0 + 2);
    // The third is refused unseen.
    let actions = n.step(NodeInput::Received {
        conn,
        bytes: request(3, set(3)),
    });
    assert_eq!(writes_to(&actions, conn), vec![Frame::Busy { id: 3 }]);
    assert_eq!(n.pending(), 2);
    assert_eq!(
        n.replica().raft().last_index().0,
        last.0 + 2,
        "not in the log"
    );
    // The first two are answered; then a request is taken again.
    let released = persist_all(&mut n, held);
    assert_eq!(writes_to(&released, conn).len(), 2, "{released:?}");
    assert_eq!(n.pending(), 0);
    let actions = n.step(NodeInput::Received {
        conn,
        bytes: request(3, set(3)),
    });
    let answers = writes_to(&persist_all(&mut n, actions), conn);
    assert!(
        matches!(
            answers.as_slice(),
            [Frame::Reply {
                id: 3,
                result: Ok(Outcome::Ok),
                ..
            }]
        ),
        "{answers:?}"
    );
}

/// The byte bound on pending requests works the same way, and a lone
/// request larger than it still fits (so no request is refused forever).
#[test]
fn pending_request_bytes_are_bounded_too() {
    let big = |seq: u64| {
        request(
            seq,
            Op::Set {
                key: format!("k{seq}"),
                value: "x".repeat(3000),
            },
        )
    };
    let limits = node_shell::ClientLimits {
        max_pending_bytes: 4000,
        ..Default::default()
    };
    let mut n = node_with_limits(1, 1, limits);
    elected(&mut n);
    let conn = ConnId(3);
    client_conn(&mut n, conn);
    let held = n.step(NodeInput::Received {
        conn,
        bytes: big(1),
    });
    assert_eq!(n.pending(), 1);
    let actions = n.step(NodeInput::Received {
        conn,
        bytes: big(2),
    });
    assert_eq!(writes_to(&actions, conn), vec![Frame::Busy { id: 2 }]);
    persist_all(&mut n, held);
    n.step(NodeInput::Received {
        conn,
        bytes: big(2),
    });
    assert_eq!(n.pending(), 1, "taken once the first is answered");
}

/// A handshake is a few dozen bytes: a connection that claims a larger
/// first frame is closed before the node buffers it; a client's request
/// larger than `max_request_bytes` likewise.
#[test]
fn oversized_hellos_and_requests_close_the_connection_before_buffering() {
    let limits = node_shell::ClientLimits {
        max_request_bytes: 1000,
        ..Default::default()
    };
    let mut n = node_with_limits(1, 1, limits);
    elected(&mut n);
    let conn = ConnId(3);
    n.step(NodeInput::Accepted { conn });
    let mut claim = (node_shell::MAX_HELLO_BYTES + 1).to_be_bytes().to_vec();
    claim.extend([0u8; 16]);
    let actions = n.step(NodeInput::Received { conn, bytes: claim });
    assert!(closed(&actions, conn).is_some(), "{actions:?}");

    let conn = ConnId(4);
    client_conn(&mut n, conn);
    let bytes = request(
        1,
        Op::Set {
            key: "k".into(),
            value: "x".repeat(2000),
        },
    );
    let actions = n.step(NodeInput::Received {
        conn,
        bytes: bytes[..100].to_vec(),
    });
    assert!(closed(&actions, conn).is_some(), "{actions:?}");
    assert_eq!(n.pending(), 0);
}

/// Clients that send half a frame and stop hold at most
/// `max_unfinished_bytes` between them: the one that passes the bound is
/// closed, the others keep their place, and closing one frees its share.
#[test]
fn unfinished_frames_across_connections_are_bounded() {
    let limits = node_shell::ClientLimits {
        max_unfinished_bytes: 2500,
        ..Default::default()
    };
    let mut n = node_with_limits(1, 1, limits);
    elected(&mut n);
    let half = |seq: u64| {
        let bytes = request(
            seq,
            Op::Set {
                key: format!("k{seq}"),
                value: "x".repeat(2000),
            },
        );
        bytes[..1000].to_vec()
    };
    for c in 1..=2 {
        client_conn(&mut n, ConnId(c));
        let actions = n.step(NodeInput::Received {
            conn: ConnId(c),
            bytes: half(c),
        });
        assert!(closed(&actions, ConnId(c)).is_none(), "{actions:?}");
    }
    client_conn(&mut n, ConnId(3));
    let actions = n.step(NodeInput::Received {
        conn: ConnId(3),
        bytes: half(3),
    });
    let reason = closed(&actions, ConnId(3)).expect("the third is closed");
    assert!(reason.contains("unfinished"), "{reason}");
    // Once one of the first two leaves, another half frame fits.
    n.step(NodeInput::Closed { conn: ConnId(1) });
    client_conn(&mut n, ConnId(4));
    let actions = n.step(NodeInput::Received {
        conn: ConnId(4),
        bytes: half(4),
    });
    assert!(closed(&actions, ConnId(4)).is_none(), "{actions:?}");
}

/// Clients may hold all connections but `PEER_RESERVE`: one more client is
/// closed after its hello, while a peer still gets in; and a connection
/// that never finishes its handshake is closed after `HANDSHAKE_TICKS`.
#[test]
fn clients_leave_room_for_peers_and_handshakes_have_a_deadline() {
    let limits = node_shell::ClientLimits {
        max_connections: node_shell::PEER_RESERVE + 2,
        ..Default::default()
    };
    let mut n = node_with_limits(1, 3, limits);
    client_conn(&mut n, ConnId(1));
    client_conn(&mut n, ConnId(2));
    n.step(NodeInput::Accepted { conn: ConnId(3) });
    let bytes = hello(KV_PROTOCOL_VERSION, CLUSTER, CLIENT_NODE);
    let actions = n.step(NodeInput::Received {
        conn: ConnId(3),
        bytes,
    });
    let reason = closed(&actions, ConnId(3)).expect("a third client is refused");
    assert!(reason.contains("clients are connected"), "{reason}");
    // A peer is not a client.
    n.step(NodeInput::Accepted { conn: ConnId(4) });
    let actions = n.step(NodeInput::Received {
        conn: ConnId(4),
        bytes: peer_hello(2, 0, "", true),
    });
    assert!(closed(&actions, ConnId(4)).is_none(), "{actions:?}");
    // A client that leaves frees its place.
    n.step(NodeInput::Closed { conn: ConnId(1) });
    client_conn(&mut n, ConnId(5));

    // Silence after accepting: closed once the handshake's time is up, and
    // not before; finished handshakes are left alone.
    n.step(NodeInput::Accepted { conn: ConnId(6) });
    let mut closed_at = None;
    for tick in 1..=node_shell::HANDSHAKE_TICKS + 1 {
        let actions = n.step(NodeInput::Tick);
        for c in [2, 4, 5] {
            assert!(
                closed(&actions, ConnId(c)).is_none(),
                "conn {c} closed at {tick}"
            );
        }
        if closed(&actions, ConnId(6)).is_some() {
            closed_at = Some(tick);
        }
    }
    assert_eq!(closed_at, Some(node_shell::HANDSHAKE_TICKS));
}

/// A connection with `max_in_flight_per_connection` requests taken is held:
/// the node takes no more of its requests (it says `PauseReading`, and the
/// requests that had arrived wait, undecoded) until an answer makes room;
/// then it takes the waiting ones and says `ResumeReading`. No request is
/// refused or lost: this is back-pressure, not an error.
#[test]
fn a_connection_at_its_in_flight_limit_is_paused_then_resumed() {
    let limits = node_shell::ClientLimits {
        max_in_flight_per_connection: 2,
        ..Default::default()
    };
    let mut n = node_with_limits(1, 1, limits);
    elected(&mut n);
    let conn = ConnId(3);
    client_conn(&mut n, conn);
    let mut bytes = Vec::new();
    for seq in 1..=3 {
        bytes.extend(request(
            seq,
            Op::Set {
                key: format!("k{seq}"),
                value: "v".into(),
            },
        ));
    }
    let actions = n.step(NodeInput::Received { conn, bytes });
    assert_eq!(n.pending(), 2, "two taken, the third waits");
    let pauses = |a: &[NodeAction]| {
        a.iter()
            .filter(|a| matches!(a, NodeAction::PauseReading { conn: c } if *c == conn))
            .count()
    };
    let resumes = |a: &[NodeAction]| {
        a.iter()
            .filter(|a| matches!(a, NodeAction::ResumeReading { conn: c } if *c == conn))
            .count()
    };
    assert_eq!(pauses(&actions), 1, "{actions:?}");
    assert!(writes_to(&actions, conn).is_empty(), "no busy answer");
    // The answers make room: the third is taken and reading resumes.
    let released = persist_all(&mut n, actions);
    assert_eq!(resumes(&released), 1, "{released:?}");
    let released = persist_all(&mut n, released);
    let mut ids: Vec<u64> = writes_to(&released, conn)
        .into_iter()
        .filter_map(|f| match f {
            Frame::Reply {
                id, result: Ok(_), ..
            } => Some(id),
            _ => None,
        })
        .collect();
    ids.sort();
    assert_eq!(
        ids,
        vec![1, 2, 3],
        "every request answered once: {released:?}"
    );
    assert_eq!(n.pending(), 0);
}
