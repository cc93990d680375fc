//! Safety invariants of Raft (Figure 3 of the paper), checked by the
//! simulator after every step of every node rather than only at the end,
//! and the two that membership changes add (thesis §4.1-4.2; see
//! [`Checker::after_step`]).

use core_raft::membership::majorities_intersect;
use core_raft::{
    Entry, HardState, LogIndex, Membership, NodeId, Payload, Raft, Role, Snapshot, Term,
};
use std::collections::{BTreeMap, HashMap};

/// A broken invariant, described for a human.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation(pub String);

/// Global knowledge the invariants are checked against.
#[derive(Clone, Debug, Default)]
pub struct Checker {
    /// Election safety: the one leader seen for each term.
    leaders: BTreeMap<Term, NodeId>,
    /// State-machine safety: (term, payload fingerprint) of each committed index.
    committed: Vec<(Term, u64)>,
    /// Log matching: for every (index, term) ever stored, the payload
    /// fingerprint and the term of the entry before it.
    stored: HashMap<(u64, u64), (u64, Option<Term>)>,
    /// Per node: the index it applied last (this incarnation).
    applied: BTreeMap<NodeId, LogIndex>,
    /// Per node: the last persisted hard state. Its term never goes back,
    /// and within one term the persisted vote never changes.
    persisted: BTreeMap<NodeId, HardState>,
    /// The latest membership known committed: its index (the entry's, or
    /// the snapshot's that carries it), the term there, and the membership.
    committed_membership: Option<(LogIndex, Term, Membership)>,
    /// Membership entries known committed (applied somewhere).
    memberships_committed: u64,
}

/// A stable fingerprint of an entry's payload (FNV-1a 64).
pub fn fingerprint(payload: &Payload) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let membership;
    let bytes: &[u8] = match payload {
        Payload::Noop => b"\x00noop",
        Payload::Command(c) => c,
        Payload::Membership(m) => {
            membership = format!("\x00membership {m}");
            membership.as_bytes()
        }
    };
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    if matches!(payload, Payload::Command(_)) {
        h ^= 1;
    }
    h
}

impl Checker {
    /// Number of indexes known to be committed (applied somewhere).
    pub fn committed_len(&self) -> u64 {
        self.committed.len() as u64
    }

    /// Number of membership entries known committed (applied somewhere).
    pub fn memberships_committed(&self) -> u64 {
        self.memberships_committed
    }

    /// Term of the committed entry at `index`, if known.
    pub fn committed_term(&self, index: LogIndex) -> Option<Term> {
        let i = index.0.checked_sub(1)? as usize;
        self.committed.get(i).map(|c| c.0)
    }

    /// A node (re)started with its applied index at its snapshot.
    pub fn on_start(&mut self, node: NodeId, applied: LogIndex) {
        self.applied.insert(node, applied);
    }

    /// Log matching, recorded as entries are persisted: two entries with the
    /// same index and term carry the same payload and follow entries of the
    /// same term (which, by induction, makes the whole prefixes identical).
    pub fn on_persist_entries(&mut self, raft: &Raft, entries: &[Entry]) -> Result<(), Violation> {
        let mut prev_term = entries.first().and_then(|e| raft.term_at(e.index.prev()));
        for e in entries {
            let record = (
                fingerprint(&e.payload),
                if e.index.0 == 1 {
                    Some(Term(0))
                } else {
                    prev_term
                },
            );
            match self.stored.get(&(e.index.0, e.term.0)) {
                None => {
                    self.stored.insert((e.index.0, e.term.0), record);
                }
                Some(seen) => {
                    if seen.0 != record.0 {
                        return Err(Violation(format!(
                            "log matching: {} stored a different entry at {} in {} than another node",
                            raft.id(),
                            e.index,
                            e.term
                        )));
                    }
                    if let (Some(a), Some(b)) = (seen.1, record.1) {
                        if a != b {
                            return Err(Violation(format!(
                                "log matching: entry {}/{} on {} follows an entry of {} but elsewhere one of {}",
                                e.index,
                                e.term,
                                raft.id(),
                                b,
                                a
                            )));
                        }
                    }
                }
            }
            prev_term = Some(e.term);
        }
        Ok(())
    }

    /// State-machine safety and in-order application.
    pub fn on_apply(&mut self, node: NodeId, entries: &[Entry]) -> Result<(), Violation> {
        let applied = self.applied.entry(node).or_default();
        for e in entries {
            if e.index != applied.next() {
                return Err(Violation(format!(
                    "{node} applied {} right after {}",
                    e.index, applied
                )));
            }
            *applied = e.index;
            let fp = fingerprint(&e.payload);
            let i = (e.index.0 - 1) as usize;
            match self.committed.get(i) {
                Some((term, seen)) => {
                    if *term != e.term || *seen != fp {
                        return Err(Violation(format!(
                            "state-machine safety: {node} applied {}/{} but {}/{} was applied elsewhere",
                            e.index, e.term, e.index, term
                        )));
                    }
                }
                None if i == self.committed.len() => {
                    self.committed.push((e.term, fp));
                    self.memberships_committed +=
                        u64::from(matches!(e.payload, Payload::Membership(_)));
                }
                None => {
                    // Committed entries below were applied only through
                    // snapshots; record what we can.
                    while self.committed.len() < i {
                        self.committed.push((Term(0), 0));
                    }
                    self.committed.push((e.term, fp));
                    self.memberships_committed +=
                        u64::from(matches!(e.payload, Payload::Membership(_)));
                }
            }
        }
        Ok(())
    }

    /// A node installed a snapshot from its leader.
    pub fn on_apply_snapshot(
        &mut self,
        node: NodeId,
        snapshot: &Snapshot,
    ) -> Result<(), Violation> {
        if let Some(term) = self.committed_term(snapshot.index) {
            if term != snapshot.term && term != Term(0) {
                return Err(Violation(format!(
                    "state-machine safety: {node} installed a snapshot at {}/{} but {} was committed in {}",
                    snapshot.index, snapshot.term, snapshot.index, term
                )));
            }
        }
        let applied = self.applied.entry(node).or_default();
        if snapshot.index <= *applied {
            return Err(Violation(format!(
                "{node} was handed a snapshot at {} after applying {}",
                snapshot.index, applied
            )));
        }
        *applied = snapshot.index;
        Ok(())
    }

    /// A node persisted its hard state: terms only grow, and a vote cast in
    /// a term is never changed (that is what makes one leader per term).
    pub fn on_persist_hard_state(&mut self, node: NodeId, hs: &HardState) -> Result<(), Violation> {
        if let Some(old) = self.persisted.get(&node) {
            if hs.term < old.term {
                return Err(Violation(format!(
                    "{node} persisted {} after {}",
                    hs.term, old.term
                )));
            }
            if hs.term == old.term && old.vote.is_some() && hs.vote != old.vote {
                return Err(Violation(format!(
                    "{node} changed its vote in {} from {:?} to {:?}",
                    hs.term, old.vote, hs.vote
                )));
            }
        }
        self.persisted.insert(node, *hs);
        Ok(())
    }

    /// Checks on a node's visible state after each of its steps.
    pub fn after_step(&mut self, raft: &Raft) -> Result<(), Violation> {
        let id = raft.id();
        if let Some(hs) = self.persisted.get(&id) {
            if raft.term() < hs.term {
                return Err(Violation(format!(
                    "{id} runs in {} below its persisted {}",
                    raft.term(),
                    hs.term
                )));
            }
        }
        if raft.commit_index() > raft.last_index() {
            return Err(Violation(format!(
                "{id} commit {} is beyond its last entry {}",
                raft.commit_index(),
                raft.last_index()
            )));
        }
        if raft.is_leader() {
            match self.leaders.get(&raft.term()) {
                Some(l) if *l != id => {
                    return Err(Violation(format!(
                        "election safety: {} and {id} both lead {}",
                        l,
                        raft.term()
                    )))
                }
                Some(_) => {}
                None => {
                    self.leaders.insert(raft.term(), id);
                    self.check_leader_completeness(raft)?;
                }
            }
        }
        self.check_leader_is_a_voter(raft)?;
        self.check_live_memberships(raft)
    }

    /// A removed node never leads (nor campaigns in) a membership that
    /// leaves it out, except as far as `core_raft` allows it (thesis
    /// §4.2.2): a node that is no voter of its membership in effect may
    /// campaign, win and lead only while that membership is its own
    /// removal, appended and not yet committed. That covers the leader that
    /// removes itself (it leads on, without counting itself, until the
    /// removal commits) and the deposed one whose log alone holds the
    /// removal (it campaigns among the remaining voters to commit it).
    /// After every step: a (pre-)candidate or leader that is no voter is
    /// not a learner either, and its membership in effect is uncommitted;
    /// once that membership commits it has stepped down (and, a non-voter
    /// of a committed membership, never campaigns again).
    fn check_leader_is_a_voter(&mut self, raft: &Raft) -> Result<(), Violation> {
        let id = raft.id();
        let (term, role) = (raft.term(), raft.role());
        let m = raft.membership();
        if role == Role::Follower || m.is_voter(id) {
            return Ok(());
        }
        let at = raft.membership_index();
        if m.learners.contains(&id) {
            return Err(Violation(format!(
                "{id} is {role:?} in {term} as a learner of {m}"
            )));
        }
        if at <= raft.commit_index() {
            return Err(Violation(format!(
                "{id} is {role:?} in {term} though the membership that removed it ({m}, entry {at}) is committed (commit {})",
                raft.commit_index()
            )));
        }
        Ok(())
    }

    /// Membership safety: any two memberships that can decide at the same
    /// time (elect a leader, commit an entry) have intersecting majorities.
    ///
    /// Why not "any two memberships in effect at some node in the same
    /// term": that is false of correct single-server changes. A leader may
    /// commit two changes in one term, {1,2,3} -> {1,2,3,4} -> {2,3,4}, and
    /// {1,2} and {3,4} are disjoint majorities of the first and the last;
    /// and a follower moved to term T by a vote request may still hold an
    /// uncommitted change of an older leader that T's leader never had,
    /// two changes away from T's own. Neither can decide anything: a
    /// membership superseded by a committed later one, or on a log that
    /// contradicts the committed log, belongs to a node that cannot win an
    /// election (its log lacks a committed entry) and leads no term.
    ///
    /// What the rules promise instead (a change is appended only once the
    /// previous one is committed and an entry of the leader's term is; the
    /// thesis' §4.1 argument): every membership still able to decide is the
    /// latest committed one, C, or a membership after C on a log that holds
    /// C, and each of those is one change from C. So after every step: if
    /// the node's membership in effect sits after C on a log holding C, its
    /// majorities intersect C's. (Two such uncommitted memberships of
    /// different leaders need not intersect each other: at most one of
    /// them is on a log that extends the committed one once both leaders
    /// have committed an entry of their terms.) C is learned from any node
    /// whose membership in effect is committed at it, the moment it is.
    fn check_live_memberships(&mut self, raft: &Raft) -> Result<(), Violation> {
        let m = raft.membership();
        if m.voters.is_empty() {
            return Ok(()); // A joiner that has heard from no leader yet.
        }
        let at = raft.membership_index();
        if at <= raft.commit_index() {
            let Some(term) = raft.term_at(at) else {
                return Ok(());
            };
            match &self.committed_membership {
                Some((known, _, _)) if *known > at => {}
                Some((known, t, c)) if *known == at => {
                    if *t == term && at > LogIndex(0) && c.voters != m.voters {
                        return Err(Violation(format!(
                            "{} holds {m} committed at {at}/{term}, another node {c}",
                            raft.id()
                        )));
                    }
                }
                _ => self.committed_membership = Some((at, term, m.clone())),
            }
            return Ok(());
        }
        let Some((known, term, committed)) = &self.committed_membership else {
            return Ok(());
        };
        let holds_committed =
            *known <= raft.snapshot_index() || raft.term_at(*known) == Some(*term);
        if at > *known && holds_committed && !majorities_intersect(committed, m) {
            return Err(Violation(format!(
                "membership safety: {} has {m} in effect (entry {at}, uncommitted) after the committed {committed} (at {known}); their majorities need not intersect",
                raft.id()
            )));
        }
        Ok(())
    }

    /// Leader completeness: a new leader holds every committed entry.
    fn check_leader_completeness(&self, raft: &Raft) -> Result<(), Violation> {
        let from = raft.snapshot_index().0 + 1;
        for index in from..=self.committed.len() as u64 {
            let (term, _) = self.committed[(index - 1) as usize];
            if term == Term(0) {
                continue;
            }
            if raft.term_at(LogIndex(index)) != Some(term) {
                return Err(Violation(format!(
                    "leader completeness: {} leads {} without committed entry {}/{}",
                    raft.id(),
                    raft.term(),
                    index,
                    term
                )));
            }
        }
        Ok(())
    }

    /// Highest term in which a leader was seen.
    pub fn leaders(&self) -> &BTreeMap<Term, NodeId> {
        &self.leaders
    }
}
