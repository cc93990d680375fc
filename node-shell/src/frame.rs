//! What replica nodes and their clients say on the wire, after the
//! handshake: length-prefixed postcard frames (`wire`) of [`Frame`].

use crate::admin::{AdminReply, AdminRequest};
use core_kv::NotLeader;
use core_raft::Message;
use serde::{Deserialize, Serialize};

/// Handshake node id that marks a client (replicas are numbered from 1).
pub const CLIENT_NODE: u64 = 0;

/// Largest frame a replica node accepts or sends by default: room for a
/// snapshot of a few tens of MB (snapshots still travel whole) and for
/// batches of large values.
pub const DEFAULT_MAX_FRAME_BYTES: u32 = 64 << 20;

/// One frame of the replica protocol, for a state machine with operations
/// `Op` and outputs `Out`. `Raft` stays the first variant (postcard tag 0):
/// the simulator's network counters read the tag without decoding.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Frame<Op, Out> {
    /// A Raft message between replicas; the sender is the handshake's node.
    Raft(Message),
    /// A client's request. `id` is the client's own handle, echoed in the
    /// reply (the key/value clerk uses its request number).
    Request {
        /// The client's handle for this request.
        id: u64,
        /// The operation.
        op: Op,
    },
    /// A replica's answer to the request with this `id` on this connection.
    Reply {
        /// The request's handle.
        id: u64,
        /// Its output, or where to retry.
        result: Result<Out, NotLeader>,
        /// With a refusal that names a leader: that leader's address, so a
        /// client that knows only some members' addresses can follow the
        /// hint.
        leader_addr: Option<String>,
    },
    /// An operator's request (status, membership change, leadership
    /// transfer), from a client connection.
    Admin {
        /// The client's handle, echoed in the reply.
        id: u64,
        /// What is asked.
        request: AdminRequest,
    },
    /// The answer to an [`Frame::Admin`].
    AdminReply {
        /// The request's handle.
        id: u64,
        /// The answer.
        reply: AdminReply,
    },
    /// A replica's second frame on its outbound connections, right after
    /// the hello: which life of its data directory it is and where it
    /// listens. Checked against the cluster's membership.
    PeerIdentity(PeerIdentity),
    /// The answer to the request with this `id` when the replica already
    /// holds as many requests as it may (`ClientLimits`): the request was
    /// not taken and did not take effect; retry after a back-off.
    Busy {
        /// The request's handle.
        id: u64,
    },
}

/// Who a replica is beyond its id (see [`Frame::PeerIdentity`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerIdentity {
    /// The random number created with its data directory (0: unknown, in
    /// the simulator).
    pub incarnation: u64,
    /// The address it listens on.
    pub addr: String,
    /// Whether it belongs to a cluster already (it has Raft state or a
    /// membership). A node that is about to bootstrap a new cluster waits
    /// until every peer it was given says no: a yes means this node's own
    /// data directory is new in an existing cluster.
    pub formed: bool,
    /// The incarnation the sender's membership lists for the receiver (0
    /// if none). A receiver with another one is a wiped or copied former
    /// member: it learns so here, even though its own answers are refused.
    pub expected: u64,
}
