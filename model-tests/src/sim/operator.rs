//! The swarms' operator: membership changes and leadership transfers,
//! chosen from the seed like every other fault and run against whatever
//! node believes it leads (a stale leader on the minority side of a
//! partition included).
//!
//! Each decision either goes on with a replacement under way or picks one
//! of: add a spare node as a learner, promote a caught-up learner, remove a
//! member (the leader too), start replacing a voter (add a fresh node as a
//! learner, promote it once caught up, remove the old one), or transfer
//! leadership to another voter. A node removed once is never added back
//! (a replacement is a new id, as an operator replacing a machine would
//! do). Refusals are normal (an earlier change not committed yet, no entry
//! of the leader's term committed yet, a transfer under way, not the
//! leader any more): they are counted and the operator tries again at a
//! later decision.
//!
//! The operator drives any simulated world through [`Admin`]: the Raft
//! cluster ([`super::cluster::Cluster`]) and the replicated services
//! (`crate::kvsim::World`).

use super::rng::SimRng;
use core_raft::{LogIndex, Membership, MembershipChange, NodeId, Raft};
use std::collections::BTreeSet;

/// Most voters the operator grows a cluster to.
pub const MAX_VOTERS: usize = 7;
/// Most members (voters and learners) the operator grows a cluster to.
pub const MAX_MEMBERS: usize = 9;
/// A learner within this many entries of its leader's last index counts as
/// caught up and may be promoted.
pub const CAUGHT_UP_ENTRIES: u64 = 5;
/// A replacement not finished within this much virtual time is given up
/// (its new node stays wherever it got to: a learner, or a voter).
pub const REPLACE_MS: u64 = 10_000;

/// What a leader did with a membership change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Appended at this index.
    Proposed(LogIndex),
    /// Refused (retry later).
    Refused,
    /// The node does not lead (any more), or is handing over.
    NotLeader,
}

/// A simulated world the operator can administer.
pub trait Admin {
    /// Number of node slots (members or not).
    fn slots(&self) -> usize;
    /// The Raft id of slot `i`.
    fn node_id(&self, i: usize) -> NodeId;
    /// The Raft core of slot `i`, if it is up.
    fn raft_at(&self, i: usize) -> Option<&Raft>;
    /// Virtual time.
    fn now(&self) -> u64;
    /// The world's RNG (the operator's choices replay with the seed).
    fn admin_rng(&mut self) -> &mut SimRng;
    /// Ask slot `i` to append `change`.
    fn change_membership(&mut self, i: usize, change: MembershipChange) -> Outcome;
    /// Ask slot `i` to hand leadership to `to`; true if it took the request.
    fn transfer_leadership(&mut self, i: usize, to: NodeId) -> bool;
    /// Stop the node at slot `i` for good (its removal is committed) and
    /// start a new joiner, with a new id, on a wiped disk in its place.
    /// Returns the new id; `None` if the world cannot.
    fn recycle(&mut self, _i: usize) -> Option<NodeId> {
        None
    }
}

/// What the operator did over a run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReconfigStats {
    /// Membership changes a leader appended.
    pub proposed: u64,
    /// Membership changes a leader refused (retried later).
    pub refused: u64,
    /// Requests made to a node that turned out not to lead.
    pub not_leader: u64,
    /// Learners added.
    pub added: u64,
    /// Learners promoted.
    pub promoted: u64,
    /// Members removed (appended removals).
    pub removed: u64,
    /// Removals of the leader by itself.
    pub leaders_removed: u64,
    /// Leadership transfers a leader took on.
    pub transfers: u64,
    /// Replacements finished: the new node votes and the old one's removal
    /// is committed.
    pub replaced: u64,
    /// Replacements given up.
    pub replace_abandoned: u64,
    /// Removed nodes whose machine came back as a new node (a new id).
    pub recycled: u64,
}

/// A replacement under way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Replace {
    old: NodeId,
    new: NodeId,
    give_up_at: u64,
}

/// The operator of one run.
#[derive(Debug)]
pub struct Operator {
    /// Out of 1000, per decision: act at all.
    per_mille: u64,
    /// Ids the operator ever asked to remove: never added back.
    removed: BTreeSet<NodeId>,
    replace: Option<Replace>,
    /// What it did.
    pub stats: ReconfigStats,
}

impl Operator {
    /// An operator acting at `per_mille` of its decisions.
    pub fn new(per_mille: u64) -> Operator {
        Operator {
            per_mille,
            removed: BTreeSet::new(),
            replace: None,
            stats: ReconfigStats::default(),
        }
    }

    /// One decision (the swarms make one every 100 ms of chaos).
    pub fn decide(&mut self, w: &mut impl Admin) {
        if self.per_mille == 0 || !w.admin_rng().chance(self.per_mille, 1000) {
            return;
        }
        let leaders: Vec<usize> = (0..w.slots())
            .filter(|i| w.raft_at(*i).is_some_and(|r| r.is_leader()))
            .collect();
        if leaders.is_empty() {
            return;
        }
        let l = leaders[w.admin_rng().pick(leaders.len())];
        if self.go_on_replacing(w, l) {
            return;
        }
        let r = w.raft_at(l).expect("a leader is up");
        let (me, m) = (r.id(), r.membership().clone());
        let mut spares = self.spares(w, &m);
        if spares.is_empty() && r.membership_index() <= r.commit_index() {
            // Bring a node whose removal is committed back as a new one.
            let gone: Vec<usize> = (0..w.slots())
                .filter(|i| m.retired.contains(&w.node_id(*i)))
                .collect();
            if !gone.is_empty() {
                let i = gone[w.admin_rng().pick(gone.len())];
                if let Some(id) = w.recycle(i) {
                    self.stats.recycled += 1;
                    spares.push(id);
                }
            }
        }
        let r = w.raft_at(l).expect("a leader is up");
        let ready: Vec<NodeId> = m
            .learners
            .iter()
            .copied()
            .filter(|id| caught_up(r, *id))
            .collect();
        let voters: Vec<NodeId> = m.voters.iter().copied().collect();
        let members: Vec<NodeId> = voters.iter().chain(m.learners.iter()).copied().collect();
        let rng = w.admin_rng();
        match rng.pick(8) {
            0 | 1 if !spares.is_empty() && members.len() < MAX_MEMBERS => {
                let id = spares[rng.pick(spares.len())];
                self.change(w, l, MembershipChange::AddLearner(id, Default::default()));
            }
            2 | 3 if !ready.is_empty() && voters.len() < MAX_VOTERS => {
                let id = ready[rng.pick(ready.len())];
                self.change(w, l, MembershipChange::Promote(id));
            }
            // Removing a voter from a small cluster only now and then, so
            // that runs do not all drift down to one voter.
            4 => {
                let id = members[rng.pick(members.len())];
                let voter = m.is_voter(id);
                let allowed = !voter || voters.len() > 3 || (voters.len() > 1 && rng.chance(1, 3));
                if allowed {
                    self.change(w, l, MembershipChange::Remove(id));
                }
            }
            5 | 6
                if self.replace.is_none() && !spares.is_empty() && members.len() < MAX_MEMBERS =>
            {
                let old = voters[rng.pick(voters.len())];
                let new = spares[rng.pick(spares.len())];
                let give_up_at = w.now() + REPLACE_MS;
                self.replace = Some(Replace {
                    old,
                    new,
                    give_up_at,
                });
                self.go_on_replacing(w, l);
            }
            7 if voters.len() > 1 => {
                let others: Vec<NodeId> = voters.iter().copied().filter(|v| *v != me).collect();
                if !others.is_empty() {
                    let to = others[rng.pick(others.len())];
                    if w.transfer_leadership(l, to) {
                        self.stats.transfers += 1;
                    } else {
                        self.stats.not_leader += 1;
                    }
                }
            }
            _ => {}
        }
    }

    /// Nodes that may be added: not members, never removed.
    fn spares(&self, w: &impl Admin, m: &Membership) -> Vec<NodeId> {
        (0..w.slots())
            .map(|i| w.node_id(i))
            .filter(|id| !m.contains(*id) && !m.retired.contains(id) && !self.removed.contains(id))
            .collect()
    }

    /// The next step of the replacement under way, through leader `l`.
    /// Returns true if the decision was spent on it.
    fn go_on_replacing(&mut self, w: &mut impl Admin, l: usize) -> bool {
        let Some(plan) = self.replace else {
            return false;
        };
        if w.now() >= plan.give_up_at {
            self.replace = None;
            self.stats.replace_abandoned += 1;
            return false;
        }
        let r = w.raft_at(l).expect("a leader is up");
        let m = r.membership();
        let gone = |id: NodeId| m.retired.contains(&id) || self.removed.contains(&id);
        if gone(plan.new) {
            self.replace = None;
            self.stats.replace_abandoned += 1;
            return false;
        }
        if !m.contains(plan.new) {
            if !m.is_voter(plan.old) {
                self.replace = None;
                self.stats.replace_abandoned += 1;
                return false;
            }
            let change = MembershipChange::AddLearner(plan.new, Default::default());
            self.change(w, l, change);
        } else if m.learners.contains(&plan.new) {
            if !caught_up(r, plan.new) || m.voters.len() > MAX_VOTERS {
                return false; // Not yet: the decision may go to another change.
            }
            self.change(w, l, MembershipChange::Promote(plan.new));
        } else if m.contains(plan.old) {
            self.change(w, l, MembershipChange::Remove(plan.old));
        } else if r.membership_index() <= r.commit_index() {
            self.replace = None;
            self.stats.replaced += 1;
        }
        true
    }

    fn change(&mut self, w: &mut impl Admin, l: usize, change: MembershipChange) {
        let me = w.node_id(l);
        match w.change_membership(l, change.clone()) {
            Outcome::Proposed(_) => {
                self.stats.proposed += 1;
                match change {
                    MembershipChange::AddLearner(..) => self.stats.added += 1,
                    MembershipChange::Promote(_) => self.stats.promoted += 1,
                    MembershipChange::Remove(id) => {
                        self.stats.removed += 1;
                        self.stats.leaders_removed += u64::from(id == me);
                        self.removed.insert(id);
                    }
                }
            }
            Outcome::Refused => self.stats.refused += 1,
            Outcome::NotLeader => self.stats.not_leader += 1,
        }
    }
}

/// Whether leader `r` knows learner `id` to be within
/// [`CAUGHT_UP_ENTRIES`] of its last entry.
fn caught_up(r: &Raft, id: NodeId) -> bool {
    r.match_index(id)
        .is_some_and(|at| at.0 + CAUGHT_UP_ENTRIES >= r.last_index().0)
}

impl Admin for super::cluster::Cluster {
    fn slots(&self) -> usize {
        self.len()
    }

    fn node_id(&self, i: usize) -> NodeId {
        self.id(i)
    }

    fn raft_at(&self, i: usize) -> Option<&Raft> {
        self.raft(i)
    }

    fn now(&self) -> u64 {
        self.now_ms
    }

    fn admin_rng(&mut self) -> &mut SimRng {
        self.rng()
    }

    fn change_membership(&mut self, i: usize, change: MembershipChange) -> Outcome {
        let actions = self.step(i, core_raft::Input::ChangeMembership(change));
        actions
            .iter()
            .find_map(|a| match a {
                core_raft::Action::Proposed { index, .. } => Some(Outcome::Proposed(*index)),
                core_raft::Action::MembershipRefused(_) => Some(Outcome::Refused),
                core_raft::Action::NotLeader { .. } => Some(Outcome::NotLeader),
                _ => None,
            })
            .unwrap_or(Outcome::NotLeader)
    }

    fn recycle(&mut self, i: usize) -> Option<NodeId> {
        let next = (0..self.len()).map(|j| self.id(j).0).max().unwrap_or(0) + 1;
        let mut config = self.node_config(i).clone();
        config.id = NodeId(next);
        config.voters = Vec::new();
        self.replace_node(i, config);
        Some(NodeId(next))
    }

    fn transfer_leadership(&mut self, i: usize, to: NodeId) -> bool {
        let actions = self.step(i, core_raft::Input::TransferLeadership { to });
        !actions.iter().any(|a| {
            matches!(
                a,
                core_raft::Action::TransferRefused(_) | core_raft::Action::NotLeader { .. }
            )
        })
    }
}
