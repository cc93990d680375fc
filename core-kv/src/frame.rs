//! What travels between key/value servers and clerks on a real network.
//! Both drivers encode it the same way (length-prefixed postcard frames,
//! see the `wire` crate), so nodes of either driver can share a cluster.

use crate::op::{ClientReply, ClientRequest};
use core_raft::Message;
use serde::{Deserialize, Serialize};

/// Protocol version carried in the connection handshake.
pub const KV_PROTOCOL_VERSION: u32 = 1;

/// Handshake node id that marks a clerk (servers are numbered from 1).
pub const CLIENT_NODE: u64 = 0;

/// One frame of the key/value protocol.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum KvFrame {
    /// A Raft message between servers; the sender is the handshake's node.
    Raft(Message),
    /// A clerk's request.
    Request(ClientRequest),
    /// A server's answer.
    Reply(ClientReply),
}
