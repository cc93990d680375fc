//! Cluster membership (thesis §4.1): which nodes vote, which only learn,
//! and how it changes, one server at a time.
//!
//! A membership travels in the log as an entry ([`Payload::Membership`]
//! holding the whole new membership, not a delta) and in snapshots. A node
//! uses the latest membership in its log as soon as it has *appended* it,
//! committed or not; if the entry is later overwritten by a new leader, the
//! node falls back to the one before. A leader accepts a change only when
//! no earlier change is uncommitted and an entry of its own term is
//! committed (the fix from the 2015 raft-dev report on single-server
//! changes), so every membership that can still decide (the latest
//! committed one, and any appended after it on a log that holds it) is one
//! change from the latest committed one, and their majorities intersect.
//! (Memberships in effect in one term can be further apart: a leader may
//! commit two changes in one term.)
//!
//! [`Payload::Membership`]: crate::Payload::Membership

use crate::types::{LogIndex, NodeId};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use thiserror::Error;

/// Who a member is, beyond its id: where it listens and which life of its
/// data directory it is. Raft itself only stores these; node shells check
/// every peer connection against them, so that a node whose disk was
/// wiped (a new incarnation) cannot speak, and vote, under its old one.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Member {
    /// The address peers and clients reach it at (empty if unknown, as in
    /// the simulator).
    pub addr: String,
    /// A random number created with the member's data directory (0 if
    /// unknown).
    pub incarnation: u64,
}

/// The members of a cluster.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Membership {
    /// Nodes that vote and count toward majorities.
    pub voters: BTreeSet<NodeId>,
    /// Nodes that receive the log and snapshots but do not vote.
    pub learners: BTreeSet<NodeId>,
    /// Address and incarnation of each member that has them.
    pub members: BTreeMap<NodeId, Member>,
    /// Ids removed from the cluster. A node shell never adds one of these
    /// back on its own (an operator may, with an explicit change).
    pub retired: BTreeSet<NodeId>,
}

/// One single-server change.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MembershipChange {
    /// Add a new node as a learner, with its address and incarnation.
    AddLearner(NodeId, Member),
    /// Make a learner a voter.
    Promote(NodeId),
    /// Remove a voter or a learner.
    Remove(NodeId),
}

/// Why a leader refused a membership change.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum ChangeRefused {
    /// An earlier change is not committed yet; retry once it is.
    #[error("an earlier membership change (entry {0}) is not committed yet")]
    ChangeInProgress(LogIndex),
    /// The leader has not yet committed an entry of its term; retry shortly.
    #[error("the leader has not committed an entry of its term yet")]
    TermNotCommitted,
    /// The node is already a member.
    #[error("{0} is already a member")]
    AlreadyMember(NodeId),
    /// Only learners can be promoted.
    #[error("{0} is not a learner")]
    NotALearner(NodeId),
    /// The node is not a member.
    #[error("{0} is not a member")]
    NotAMember(NodeId),
    /// A cluster keeps at least one voter.
    #[error("removing {0} would leave no voter")]
    LastVoter(NodeId),
}

impl Membership {
    /// A membership of `voters` and no learners.
    pub fn with_voters(voters: impl IntoIterator<Item = NodeId>) -> Membership {
        Membership {
            voters: voters.into_iter().collect(),
            ..Membership::default()
        }
    }

    /// The address and incarnation of member `id`, if known.
    pub fn member(&self, id: NodeId) -> Option<&Member> {
        self.members.get(&id)
    }

    /// True if `id` votes.
    pub fn is_voter(&self, id: NodeId) -> bool {
        self.voters.contains(&id)
    }

    /// True if `id` is a voter or a learner.
    pub fn contains(&self, id: NodeId) -> bool {
        self.voters.contains(&id) || self.learners.contains(&id)
    }

    /// Votes that make a majority of the voters.
    pub fn quorum(&self) -> usize {
        self.voters.len() / 2 + 1
    }

    /// Every member but `me`, in ascending order.
    pub fn others(&self, me: NodeId) -> Vec<NodeId> {
        self.voters
            .iter()
            .chain(self.learners.iter())
            .copied()
            .filter(|n| *n != me)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect()
    }

    /// The membership after `change`, or why it is not allowed.
    pub fn changed(&self, change: MembershipChange) -> Result<Membership, ChangeRefused> {
        let mut next = self.clone();
        match change {
            MembershipChange::AddLearner(id, member) => {
                if self.contains(id) {
                    return Err(ChangeRefused::AlreadyMember(id));
                }
                next.learners.insert(id);
                next.retired.remove(&id);
                next.members.insert(id, member);
            }
            MembershipChange::Promote(id) => {
                if !next.learners.remove(&id) {
                    return Err(ChangeRefused::NotALearner(id));
                }
                next.voters.insert(id);
            }
            MembershipChange::Remove(id) => {
                if !next.learners.remove(&id) {
                    if !next.voters.contains(&id) {
                        return Err(ChangeRefused::NotAMember(id));
                    }
                    if next.voters.len() == 1 {
                        return Err(ChangeRefused::LastVoter(id));
                    }
                    next.voters.remove(&id);
                }
                next.members.remove(&id);
                next.retired.insert(id);
            }
        }
        Ok(next)
    }
}

impl fmt::Display for Membership {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("voters=[")?;
        for (i, v) in self.voters.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{v}")?;
        }
        f.write_str("]")?;
        if !self.learners.is_empty() {
            f.write_str(" learners=[")?;
            for (i, l) in self.learners.iter().enumerate() {
                if i > 0 {
                    f.write_str(",")?;
                }
                write!(f, "{l}")?;
            }
            f.write_str("]")?;
        }
        Ok(())
    }
}

/// Whether every voter majority of `a` intersects every voter majority of
/// `b` (true for memberships one single-server change apart; used by the
/// invariant checks). The worst case: `a`'s majority takes as many voters
/// as it can from outside `b`, and `b`'s majority avoids the rest of it.
pub fn majorities_intersect(a: &Membership, b: &Membership) -> bool {
    let only_a = a.voters.difference(&b.voters).count();
    let forced_shared = a.quorum().saturating_sub(only_a);
    b.voters.len().saturating_sub(forced_shared) < b.quorum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(voters: &[u64], learners: &[u64]) -> Membership {
        Membership {
            voters: voters.iter().map(|v| NodeId(*v)).collect(),
            learners: learners.iter().map(|v| NodeId(*v)).collect(),
            ..Membership::default()
        }
    }

    #[test]
    fn changes_follow_the_single_server_rules() {
        let a = m(&[1, 2, 3], &[]);
        let four = Member {
            addr: "h4:7004".into(),
            incarnation: 44,
        };
        let b = a
            .changed(MembershipChange::AddLearner(NodeId(4), four.clone()))
            .unwrap();
        assert_eq!(
            (&b.voters, &b.learners),
            (&a.voters, &m(&[], &[4]).learners)
        );
        assert_eq!(b.member(NodeId(4)), Some(&four));
        let c = b.changed(MembershipChange::Promote(NodeId(4))).unwrap();
        assert_eq!(c.voters, m(&[1, 2, 3, 4], &[]).voters);
        assert_eq!(
            c.member(NodeId(4)),
            Some(&four),
            "promotion keeps the identity"
        );
        let d = c.changed(MembershipChange::Remove(NodeId(1))).unwrap();
        assert_eq!(d.voters, m(&[2, 3, 4], &[]).voters);
        assert!(d.retired.contains(&NodeId(1)));
        let e = d.changed(MembershipChange::Remove(NodeId(4))).unwrap();
        assert_eq!(
            e.member(NodeId(4)),
            None,
            "a removed member's identity goes"
        );
        let back = e
            .changed(MembershipChange::AddLearner(NodeId(1), Member::default()))
            .unwrap();
        assert!(
            !back.retired.contains(&NodeId(1)),
            "an explicit add un-retires"
        );
        assert_eq!(
            a.changed(MembershipChange::AddLearner(NodeId(2), Member::default())),
            Err(ChangeRefused::AlreadyMember(NodeId(2)))
        );
        assert_eq!(
            a.changed(MembershipChange::Promote(NodeId(2))),
            Err(ChangeRefused::NotALearner(NodeId(2)))
        );
        assert_eq!(
            a.changed(MembershipChange::Remove(NodeId(9))),
            Err(ChangeRefused::NotAMember(NodeId(9)))
        );
        assert_eq!(
            m(&[1], &[]).changed(MembershipChange::Remove(NodeId(1))),
            Err(ChangeRefused::LastVoter(NodeId(1)))
        );
        assert_eq!(b.others(NodeId(2)), vec![NodeId(1), NodeId(3), NodeId(4)]);
        assert_eq!(d.to_string(), "voters=[n2,n3,n4]");
        assert_eq!(b.to_string(), "voters=[n1,n2,n3] learners=[n4]");
    }

    #[test]
    fn one_change_apart_majorities_intersect_two_apart_they_may_not() {
        let three = m(&[1, 2, 3], &[]);
        assert!(majorities_intersect(&three, &m(&[1, 2, 3, 4], &[])));
        assert!(majorities_intersect(&three, &m(&[1, 2], &[])));
        assert!(majorities_intersect(
            &m(&[1, 2, 3, 4], &[]),
            &m(&[1, 2, 3, 4, 5], &[])
        ));
        // Two servers added at once: {1,2} and {3,4,5} are majorities.
        assert!(!majorities_intersect(&three, &m(&[1, 2, 3, 4, 5], &[])));
        // Disjoint.
        assert!(!majorities_intersect(&m(&[1, 2], &[]), &m(&[3, 4], &[])));
    }
}
