//! Persist before send, across steps: the one ordering rule of every core
//! ("a persist is durable before any later action is carried out"), kept
//! for a driver that makes persists durable asynchronously.
//!
//! Each step's persists become one numbered batch that the driver writes
//! and syncs in the background; the step's other actions are held until
//! every batch handed out before them is durable. A driver may sync several
//! batches with one fsync (group commit) and report only the highest. An
//! action that says it does not wait for persists
//! ([`Gated::waits_for_persists`], decided by the core) goes out at once.

use core_kv::RsmAction;
use std::collections::VecDeque;

/// Numbers persist batches, 1, 2, 3, ... in the order they must become
/// durable.
pub type BatchId = u64;

/// What the gate needs to know about an action.
pub trait Gated {
    /// True if the action is a write to make durable.
    fn is_persist(&self) -> bool;
    /// True if the action must wait until every persist before it is
    /// durable. Only the core that produced the action decides this.
    fn waits_for_persists(&self) -> bool;
}

impl<Out> Gated for RsmAction<Out> {
    fn is_persist(&self) -> bool {
        RsmAction::is_persist(self)
    }

    fn waits_for_persists(&self) -> bool {
        RsmAction::waits_for_persists(self)
    }
}

impl Gated for core_raft::Action {
    fn is_persist(&self) -> bool {
        core_raft::Action::is_persist(self)
    }

    fn waits_for_persists(&self) -> bool {
        core_raft::Action::waits_for_persists(self)
    }
}

/// Actions held until their persists are durable, in order.
#[derive(Debug)]
pub struct PersistGate<A> {
    /// The last batch handed out.
    submitted: BatchId,
    /// The last batch the driver reported durable.
    durable: BatchId,
    /// Held actions with the batch each waits for, oldest first. The batch
    /// numbers never decrease along the queue.
    held: VecDeque<(BatchId, A)>,
}

/// What one step's actions turned into.
#[derive(Debug, PartialEq, Eq)]
pub struct Admitted<A> {
    /// The step's persists, to make durable as batch `.0`.
    pub batch: Option<(BatchId, Vec<A>)>,
    /// Actions that may be carried out now, in order.
    pub ready: Vec<A>,
}

impl<A> Default for PersistGate<A> {
    fn default() -> Self {
        PersistGate {
            submitted: 0,
            durable: 0,
            held: VecDeque::new(),
        }
    }
}

impl<A: Gated> PersistGate<A> {
    /// A gate with nothing in flight.
    pub fn new() -> Self {
        Self::default()
    }

    /// Take one step's actions, in the order the core returned them.
    pub fn admit(&mut self, actions: Vec<A>) -> Admitted<A> {
        let this_batch = self.submitted + 1;
        let mut persists = Vec::new();
        let mut ready = Vec::new();
        for action in actions {
            if action.is_persist() {
                persists.push(action);
            } else if !action.waits_for_persists() {
                ready.push(action);
            } else {
                // It depends on this step's batch only if a persist of this
                // step came before it.
                let needs = if persists.is_empty() {
                    self.submitted
                } else {
                    this_batch
                };
                self.hold(needs, action);
                ready.extend(self.release());
            }
        }
        let batch = if persists.is_empty() {
            None
        } else {
            self.submitted = this_batch;
            Some((this_batch, persists))
        };
        Admitted { batch, ready }
    }

    /// Every batch through `batch` is durable: returns the actions that may
    /// now be carried out, in order. A report beyond what was handed out is
    /// a driver bug and is clamped.
    pub fn persisted(&mut self, batch: BatchId) -> Vec<A> {
        debug_assert!(
            batch <= self.submitted,
            "batch {batch} reported durable, but only {} were handed out",
            self.submitted
        );
        self.durable = self.durable.max(batch.min(self.submitted));
        self.release()
    }

    /// Batches handed out and not yet reported durable.
    pub fn in_flight(&self) -> u64 {
        self.submitted - self.durable
    }

    /// Actions waiting for a persist.
    pub fn held(&self) -> usize {
        self.held.len()
    }

    fn hold(&mut self, needs: BatchId, action: A) {
        debug_assert!(self.held.back().is_none_or(|(b, _)| *b <= needs));
        self.held.push_back((needs, action));
    }

    fn release(&mut self) -> Vec<A> {
        let mut out = Vec::new();
        while self.held.front().is_some_and(|(b, _)| *b <= self.durable) {
            out.push(self.held.pop_front().expect("front exists").1);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A test action: a persist, an ordered action, or one that does not wait.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    enum T {
        P(u8),
        S(u8),
        Free(u8),
    }

    impl Gated for T {
        fn is_persist(&self) -> bool {
            matches!(self, T::P(_))
        }
        fn waits_for_persists(&self) -> bool {
            !matches!(self, T::Free(_))
        }
    }

    #[test]
    fn sends_after_a_persist_wait_for_its_batch() {
        let mut g = PersistGate::new();
        let a = g.admit(vec![T::S(1), T::P(1), T::S(2), T::Free(3)]);
        assert_eq!(a.batch, Some((1, vec![T::P(1)])));
        // S(1) came before the persist; Free(3) does not wait.
        assert_eq!(a.ready, vec![T::S(1), T::Free(3)]);
        assert_eq!(g.held(), 1);
        assert_eq!(g.persisted(1), vec![T::S(2)]);
        assert_eq!(g.in_flight(), 0);
    }

    #[test]
    fn later_steps_queue_behind_earlier_batches_and_group_commit_releases_all() {
        let mut g = PersistGate::new();
        let a = g.admit(vec![T::P(1), T::S(1)]);
        let b = g.admit(vec![T::S(2)]);
        let c = g.admit(vec![T::P(3), T::S(3)]);
        assert_eq!(a.batch.map(|b| b.0), Some(1));
        assert!(
            b.batch.is_none() && b.ready.is_empty(),
            "S(2) waits for batch 1"
        );
        assert_eq!(c.batch.map(|b| b.0), Some(2));
        assert_eq!(g.in_flight(), 2);
        // One fsync covered both batches.
        assert_eq!(g.persisted(2), vec![T::S(1), T::S(2), T::S(3)]);
    }

    #[test]
    fn a_partial_report_releases_only_what_it_covers() {
        let mut g = PersistGate::new();
        g.admit(vec![T::P(1), T::S(1)]);
        g.admit(vec![T::P(2), T::S(2)]);
        assert_eq!(g.persisted(1), vec![T::S(1)]);
        assert_eq!(g.persisted(1), vec![]);
        assert_eq!(g.persisted(2), vec![T::S(2)]);
    }

    #[test]
    fn with_nothing_in_flight_actions_go_out_at_once() {
        let mut g: PersistGate<T> = PersistGate::new();
        let a = g.admit(vec![T::S(1), T::S(2)]);
        assert_eq!(a.ready, vec![T::S(1), T::S(2)]);
        assert!(a.batch.is_none());
    }
}
