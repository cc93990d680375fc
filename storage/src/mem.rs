//! The [`Storage`] interface both drivers write through, and its in-memory
//! implementation for tests that want no disk.

use crate::error::StorageError;
use core_raft::{Action, Durable};

/// Where a driver makes Raft's `Persist*` actions durable: [`crate::DiskStorage`]
/// on a real node, [`MemStorage`] in tests. Writing and syncing are separate
/// so that a driver can group-commit: append every persist that arrived
/// while the previous sync ran, then sync once.
pub trait Storage {
    /// Write every `Persist*` action in `actions`, in order; ignore the rest.
    /// Not durable until [`Storage::sync`].
    fn append(&mut self, actions: &[Action]) -> Result<(), StorageError>;

    /// Make every write so far durable.
    fn sync(&mut self) -> Result<(), StorageError>;

    /// Bytes written since the last sync (approximate for [`MemStorage`]).
    fn pending_bytes(&self) -> u64;

    /// [`Storage::append`] then [`Storage::sync`].
    fn persist_batch(&mut self, actions: &[Action]) -> Result<(), StorageError> {
        self.append(actions)?;
        self.sync()
    }

    /// Carry out a list of actions in order: each run of consecutive persists
    /// is written and synced once, then the actions after it go to `perform`.
    fn execute(
        &mut self,
        actions: &[Action],
        mut perform: impl FnMut(&Action),
    ) -> Result<(), StorageError>
    where
        Self: Sized,
    {
        let mut rest = actions;
        while !rest.is_empty() {
            let persists = rest.iter().take_while(|a| is_persist(a)).count();
            if persists > 0 {
                self.persist_batch(&rest[..persists])?;
            }
            rest = &rest[persists..];
            let others = rest.iter().take_while(|a| !is_persist(a)).count();
            rest[..others].iter().for_each(&mut perform);
            rest = &rest[others..];
        }
        Ok(())
    }
}

/// True for the actions a [`Storage`] writes: `PersistHardState`,
/// `PersistEntries` and `PersistSnapshot`.
pub fn is_persist(action: &Action) -> bool {
    matches!(
        action,
        Action::PersistHardState(_) | Action::PersistEntries(_) | Action::PersistSnapshot { .. }
    )
}

/// [`Storage`] in memory: what was written and what was synced, so a test
/// can "crash" and keep only the latter.
#[derive(Clone, Debug, Default)]
pub struct MemStorage {
    written: Durable,
    synced: Durable,
    pending: Vec<Action>,
    pending_bytes: u64,
}

impl MemStorage {
    /// Start from `durable`, all of it synced.
    pub fn new(durable: Durable) -> MemStorage {
        MemStorage {
            written: durable.clone(),
            synced: durable,
            pending: Vec::new(),
            pending_bytes: 0,
        }
    }

    /// Everything written, synced or not.
    pub fn written(&self) -> &Durable {
        &self.written
    }

    /// What survives a crash now: the state as of the last sync.
    pub fn synced(&self) -> &Durable {
        &self.synced
    }
}

impl Storage for MemStorage {
    fn append(&mut self, actions: &[Action]) -> Result<(), StorageError> {
        for action in actions.iter().filter(|a| is_persist(a)) {
            self.written.persist(action);
            self.pending_bytes += approximate_bytes(action);
            self.pending.push(action.clone());
        }
        Ok(())
    }

    fn sync(&mut self) -> Result<(), StorageError> {
        for action in self.pending.drain(..) {
            self.synced.persist(&action);
        }
        self.pending_bytes = 0;
        Ok(())
    }

    fn pending_bytes(&self) -> u64 {
        self.pending_bytes
    }
}

fn approximate_bytes(action: &Action) -> u64 {
    let bytes = match action {
        Action::PersistHardState(_) => 24,
        Action::PersistEntries(entries) => entries.iter().map(|e| e.size_bytes()).sum(),
        Action::PersistSnapshot { snapshot, .. } => snapshot.data.len() + 24,
        _ => 0,
    };
    bytes as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use core_raft::{Entry, HardState, LogIndex, Payload, Term};

    #[test]
    fn a_crash_keeps_only_what_was_synced() {
        let mut mem = MemStorage::default();
        let hs = Action::PersistHardState(HardState {
            term: Term(1),
            ..HardState::default()
        });
        mem.persist_batch(&[hs]).unwrap();
        let entry = Entry {
            index: LogIndex(1),
            term: Term(1),
            payload: Payload::Noop,
        };
        mem.append(&[Action::PersistEntries(vec![entry])]).unwrap();
        assert!(mem.pending_bytes() > 0);
        assert_eq!(mem.written().last_index(), LogIndex(1));
        assert_eq!(mem.synced().last_index(), LogIndex(0));
        mem.sync().unwrap();
        assert_eq!(mem.synced(), mem.written());
    }
}
