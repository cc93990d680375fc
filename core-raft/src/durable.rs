//! The durable state of a node and the rules for rebuilding a machine from it.
//!
//! [`Durable`] is also a complete in-memory storage: [`Durable::persist`]
//! applies a `Persist*` action exactly as a disk driver must, so the simulator
//! and the tests share one definition of what each action means.

use crate::io::Action;
use crate::message::{Entry, HardState, Snapshot};
use crate::types::{LogIndex, Term};
use thiserror::Error;

/// Everything a node keeps across a crash.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Durable {
    /// Term, vote and a commit lower bound.
    pub hard_state: HardState,
    /// The latest snapshot, if any.
    pub snapshot: Option<Snapshot>,
    /// Log entries after the snapshot, consecutive.
    pub entries: Vec<Entry>,
}

impl Durable {
    /// Apply one action to this storage. Returns false (and changes nothing)
    /// for actions that are not persists.
    pub fn persist(&mut self, action: &Action) -> bool {
        match action {
            Action::PersistHardState(hs) => {
                self.hard_state = *hs;
                true
            }
            Action::PersistEntries(new) => {
                if let Some(first) = new.first() {
                    // Entries are in index order, so the kept prefix is found
                    // by binary search: appends stay O(1) however long the log.
                    let keep = self.entries.partition_point(|e| e.index < first.index);
                    self.entries.truncate(keep);
                    self.entries.extend(new.iter().cloned());
                }
                true
            }
            Action::PersistSnapshot {
                snapshot,
                discard_log,
            } => {
                if *discard_log {
                    self.entries.clear();
                } else {
                    self.entries.retain(|e| e.index > snapshot.index);
                }
                self.snapshot = Some(snapshot.clone());
                true
            }
            _ => false,
        }
    }

    /// Index of the last entry held (log or snapshot).
    pub fn last_index(&self) -> LogIndex {
        match (self.entries.last(), &self.snapshot) {
            (Some(e), _) => e.index,
            (None, Some(s)) => s.index,
            (None, None) => LogIndex(0),
        }
    }

    /// Check that this state could have been written by a correct node.
    pub fn validate(&self) -> Result<(), RestoreError> {
        let (snap_index, snap_term) = self
            .snapshot
            .as_ref()
            .map(|s| (s.index, s.term))
            .unwrap_or((LogIndex(0), Term(0)));
        let mut expected = snap_index.next();
        let mut prev_term = snap_term;
        for e in &self.entries {
            if e.index != expected {
                return Err(RestoreError::Gap {
                    expected,
                    found: e.index,
                });
            }
            if e.term < prev_term {
                return Err(RestoreError::TermRegression { index: e.index });
            }
            if e.term > self.hard_state.term {
                return Err(RestoreError::FutureTerm { index: e.index });
            }
            prev_term = e.term;
            expected = expected.next();
        }
        if snap_term > self.hard_state.term {
            return Err(RestoreError::FutureTerm { index: snap_index });
        }
        Ok(())
    }
}

/// Durable state that a correct node could not have written.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum RestoreError {
    /// The log has a hole or does not start right after the snapshot.
    #[error("log is not contiguous: expected entry {expected}, found {found}")]
    Gap {
        /// The index that should come next.
        expected: LogIndex,
        /// The index found instead.
        found: LogIndex,
    },
    /// An entry's term is lower than the term of the entry before it.
    #[error("entry {index} has a lower term than the entry before it")]
    TermRegression {
        /// The offending entry.
        index: LogIndex,
    },
    /// An entry or the snapshot carries a term above the stored current term.
    #[error("entry {index} carries a term above the stored current term")]
    FutureTerm {
        /// The offending entry (or snapshot index).
        index: LogIndex,
    },
    /// The configuration was rejected.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
}
