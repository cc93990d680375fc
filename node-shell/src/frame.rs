//! What replica nodes and their clients say on the wire, after the
//! handshake: length-prefixed postcard frames (`wire`) of [`Frame`].

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
/// `Op` and outputs `Out`.
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
    },
}
