//! The first frame each side of a connection sends.

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Fixed bytes at the start of every [`Hello`], so that a stray client
/// (an HTTP probe, another program) is told apart from a version mismatch.
pub const HELLO_MAGIC: [u8; 4] = *b"6824";

/// The handshake: who is speaking, which protocol, which cluster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// Always [`HELLO_MAGIC`].
    pub magic: [u8; 4],
    /// The service's message-set version (each service defines its own).
    pub protocol: u32,
    /// Which cluster (or job) this node belongs to.
    pub cluster: u64,
    /// The sender's node id within the cluster.
    pub node: u64,
}

/// Why a peer's [`Hello`] was refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum HandshakeError {
    /// The peer does not speak this wire format at all.
    #[error("peer is not speaking this protocol (bad magic {0:?})")]
    BadMagic([u8; 4]),
    /// The peer runs another protocol version.
    #[error(
        "protocol version mismatch: we speak {ours}, peer speaks {theirs}; run matching releases"
    )]
    Version {
        /// Our version.
        ours: u32,
        /// Theirs.
        theirs: u32,
    },
    /// The peer belongs to another cluster.
    #[error("cluster id mismatch: we are in cluster {ours}, peer is in cluster {theirs}; check the --cluster setting")]
    Cluster {
        /// Our cluster.
        ours: u64,
        /// Theirs.
        theirs: u64,
    },
    /// The peer's node id is not a member.
    #[error("node {0} is not a member of this cluster")]
    UnknownNode(u64),
}

impl Hello {
    /// Our own hello.
    pub fn new(protocol: u32, cluster: u64, node: u64) -> Self {
        Hello {
            magic: HELLO_MAGIC,
            protocol,
            cluster,
            node,
        }
    }

    /// Checks a peer's hello against ours; `is_member` decides whether its
    /// node id is acceptable (services where anyone may join pass `|_| true`).
    pub fn check(
        &self,
        peer: &Hello,
        is_member: impl Fn(u64) -> bool,
    ) -> Result<(), HandshakeError> {
        if peer.magic != HELLO_MAGIC {
            return Err(HandshakeError::BadMagic(peer.magic));
        }
        if peer.protocol != self.protocol {
            return Err(HandshakeError::Version {
                ours: self.protocol,
                theirs: peer.protocol,
            });
        }
        if peer.cluster != self.cluster {
            return Err(HandshakeError::Cluster {
                ours: self.cluster,
                theirs: peer.cluster,
            });
        }
        if !is_member(peer.node) {
            return Err(HandshakeError::UnknownNode(peer.node));
        }
        Ok(())
    }
}
