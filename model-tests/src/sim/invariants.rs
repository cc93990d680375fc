//! Safety invariants of Raft (Figure 3 of the paper), checked by the
//! simulator after every step of every node rather than only at the end.

use core_raft::{Entry, HardState, LogIndex, NodeId, Payload, Raft, Snapshot, Term};
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
                None if i == self.committed.len() => self.committed.push((e.term, fp)),
                None => {
                    // Committed entries below were applied only through
                    // snapshots; record what we can.
                    while self.committed.len() < i {
                        self.committed.push((Term(0), 0));
                    }
                    self.committed.push((e.term, fp));
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
