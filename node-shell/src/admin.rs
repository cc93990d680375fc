//! The operator's requests a replica node answers on client connections:
//! its status (with the cluster's membership as this node sees it), and
//! changes to the cluster (membership changes, leadership transfer), which
//! only the leader takes.

use core_kv::{ChangeOutcome, ClusterChange};
use core_raft::{LogIndex, Membership, NodeId, Term};
use serde::{Deserialize, Serialize};
use std::fmt;

/// What an operator asks a node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AdminRequest {
    /// This node's status (any node answers).
    Status,
    /// Change the cluster (the leader answers; others say who leads).
    Change(ClusterChange),
}

/// A node's answer to an [`AdminRequest`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AdminReply {
    /// The node's status.
    Status(Box<NodeStatus>),
    /// How a change was taken; with `NotLeader`, `leader_addr` is the
    /// leader's address if this node knows it.
    Changed {
        /// The outcome.
        outcome: ChangeOutcome,
        /// The leader's address, with a `NotLeader` outcome.
        leader_addr: Option<String>,
    },
}

/// One node's view of itself and of the cluster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStatus {
    /// Its id.
    pub id: NodeId,
    /// Its data directory's incarnation.
    pub incarnation: u64,
    /// The address it listens on.
    pub addr: String,
    /// "leader", "candidate", "pre-candidate", "follower", or "learner".
    pub role: String,
    /// Current term.
    pub term: Term,
    /// Who it believes leads.
    pub leader: Option<NodeId>,
    /// The leader's address, if known.
    pub leader_addr: Option<String>,
    /// Highest committed index.
    pub commit: LogIndex,
    /// Highest applied index.
    pub applied: LogIndex,
    /// Last log index.
    pub last_index: LogIndex,
    /// Index covered by its latest snapshot.
    pub snapshot_index: LogIndex,
    /// Approximate bytes of log not yet compacted.
    pub log_bytes: u64,
    /// The membership in effect at this node.
    pub membership: Membership,
    /// The index of the entry holding that membership (final once
    /// `commit` reaches it).
    pub membership_index: LogIndex,
    /// Leader only: how far each other member's log is known to match.
    pub replication: Vec<(NodeId, LogIndex)>,
    /// Whether it belongs to a cluster yet (a node waiting to be added or
    /// to bootstrap does not).
    pub formed: bool,
    /// Where the state machine keeps its state and how large it is, as it
    /// says (`StateMachine::storage_summary`); `None`: in memory.
    pub state: Option<String>,
}

impl NodeStatus {
    /// True once the membership this node sees is committed.
    pub fn membership_committed(&self) -> bool {
        self.commit >= self.membership_index
    }

    /// Leader only: whether `peer` holds every committed entry (a learner
    /// that does is ready to be promoted).
    pub fn caught_up(&self, peer: NodeId) -> bool {
        self.replication
            .iter()
            .any(|(p, m)| *p == peer && *m >= self.commit)
    }
}

impl fmt::Display for NodeStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "node {} at {} (incarnation {:016x}): {}, term {}",
            self.id.0, self.addr, self.incarnation, self.role, self.term.0
        )?;
        match (self.leader, &self.leader_addr) {
            (Some(l), Some(a)) => writeln!(f, "  leader: node {} at {a}", l.0)?,
            (Some(l), None) => writeln!(f, "  leader: node {}", l.0)?,
            (None, _) => writeln!(f, "  leader: unknown")?,
        }
        writeln!(
            f,
            "  log: commit {}, applied {}, last {}, snapshot {}, {} bytes not compacted",
            self.commit.0, self.applied.0, self.last_index.0, self.snapshot_index.0, self.log_bytes
        )?;
        match &self.state {
            Some(state) => writeln!(f, "  state: {state}")?,
            None => writeln!(f, "  state: in memory")?,
        }
        if !self.formed {
            writeln!(f, "  not yet a member of a cluster")?;
        }
        write!(
            f,
            "  membership (entry {}, {}): {}",
            self.membership_index.0,
            if self.membership_committed() {
                "committed"
            } else {
                "not yet committed"
            },
            self.membership
        )
    }
}
