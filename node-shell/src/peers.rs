//! Where a replica node's peers are and who they are: the address book
//! behind its outbound connections, and the identities peers presented.
//!
//! Addresses come from three places, latest wins: the bootstrap peers the
//! node was started with, the identities peers present when they connect
//! (so a node that is not yet in a cluster can answer the leader that adds
//! it), and the cluster's membership (which wins, once it names one).

use crate::frame::PeerIdentity;
use core_raft::{Membership, NodeId};
use std::collections::BTreeMap;

/// How a replica node joins its cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Bootstrap {
    /// The Raft configuration's voters are the cluster (the simulator and
    /// hand-driven tests): no bootstrap step, no automatic changes.
    Static,
    /// Started with these peers (id → address, this node included). The
    /// node with the lowest id bootstraps a one-voter cluster once every
    /// other peer has said it belongs to no cluster yet; the leader adds
    /// each other peer as a learner when it connects and promotes it once
    /// it has caught up. Only used while the log says nothing else: the
    /// log's membership wins from then on.
    Peers(BTreeMap<NodeId, String>),
    /// Started to join an existing cluster: wait until its leader adds
    /// this node (an operator asks it to).
    Join,
}

impl Bootstrap {
    /// The bootstrap peers' addresses (empty unless [`Bootstrap::Peers`]).
    pub fn peers(&self) -> Option<&BTreeMap<NodeId, String>> {
        match self {
            Bootstrap::Peers(p) => Some(p),
            _ => None,
        }
    }
}

/// The address book.
#[derive(Debug, Default)]
pub struct PeerBook {
    /// Bootstrap peers' addresses.
    bootstrap: BTreeMap<NodeId, String>,
    /// The identity each peer presented last.
    seen: BTreeMap<NodeId, PeerIdentity>,
    /// The address handed to the driver for each peer.
    dialed: BTreeMap<NodeId, String>,
}

impl PeerBook {
    /// A book that starts from the bootstrap peers.
    pub fn new(bootstrap: &Bootstrap) -> PeerBook {
        PeerBook {
            bootstrap: bootstrap.peers().cloned().unwrap_or_default(),
            ..PeerBook::default()
        }
    }

    /// Remember what `peer` presented.
    pub fn saw(&mut self, peer: NodeId, identity: PeerIdentity) {
        self.seen.insert(peer, identity);
    }

    /// The identity `peer` presented last, if it connected.
    pub fn seen(&self, peer: NodeId) -> Option<&PeerIdentity> {
        self.seen.get(&peer)
    }

    /// The address of `peer`: the membership's, else the one it presented,
    /// else the bootstrap one.
    pub fn address(&self, peer: NodeId, membership: &Membership) -> Option<String> {
        membership
            .member(peer)
            .map(|m| m.addr.clone())
            .filter(|a| !a.is_empty())
            .or_else(|| {
                self.seen
                    .get(&peer)
                    .map(|s| s.addr.clone())
                    .filter(|a| !a.is_empty())
            })
            .or_else(|| self.bootstrap.get(&peer).cloned())
    }

    /// Peers whose address is new or changed since the last call: the
    /// driver (re)opens an outbound connection to each. Every member, every
    /// bootstrap peer and every peer that connected is dialed.
    pub fn new_dials(&mut self, me: NodeId, membership: &Membership) -> Vec<(NodeId, String)> {
        let mut ids: Vec<NodeId> = membership.others(me);
        ids.extend(self.bootstrap.keys().copied());
        ids.extend(self.seen.keys().copied());
        ids.sort();
        ids.dedup();
        let mut out = Vec::new();
        for id in ids {
            if id == me {
                continue;
            }
            let Some(addr) = self.address(id, membership) else {
                continue;
            };
            if self.dialed.get(&id) != Some(&addr) {
                self.dialed.insert(id, addr.clone());
                out.push((id, addr));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core_raft::Member;

    #[test]
    fn the_membership_wins_over_what_peers_said_and_the_command_line() {
        let me = NodeId(1);
        let boot = Bootstrap::Peers(
            [(NodeId(1), "a:1".into()), (NodeId(2), "a:2".into())]
                .into_iter()
                .collect(),
        );
        let mut book = PeerBook::new(&boot);
        let mut m = Membership::with_voters([me]);
        assert_eq!(book.new_dials(me, &m), vec![(NodeId(2), "a:2".to_string())]);
        assert!(book.new_dials(me, &m).is_empty(), "dialed once");
        book.saw(
            NodeId(3),
            PeerIdentity {
                incarnation: 7,
                addr: "b:3".into(),
                formed: false,
                expected: 0,
            },
        );
        assert_eq!(book.new_dials(me, &m), vec![(NodeId(3), "b:3".to_string())]);
        m.members.insert(
            NodeId(2),
            Member {
                addr: "c:2".into(),
                incarnation: 9,
            },
        );
        m.voters.insert(NodeId(2));
        assert_eq!(book.new_dials(me, &m), vec![(NodeId(2), "c:2".to_string())]);
        assert_eq!(book.address(NodeId(9), &m), None);
    }
}
