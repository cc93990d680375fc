//! The application every simulated Raft node runs: the 6.5840 tester's
//! "applier", which records each applied command, checks that entries arrive
//! in order, and (in the snapshot tests) snapshots its whole history every
//! `interval` entries.

use core_raft::{Entry, LogIndex, Payload, Snapshot};

/// Applied commands of one node, index 1 first; `None` marks a no-op entry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabApp {
    applied: Vec<Option<Vec<u8>>>,
}

impl LabApp {
    /// The state a node restarts with: the stored snapshot's content, if any.
    pub fn restore(snapshot: Option<&Snapshot>) -> Result<LabApp, String> {
        match snapshot {
            None => Ok(LabApp::default()),
            Some(s) => {
                let mut app = LabApp::default();
                app.install(s)?;
                Ok(app)
            }
        }
    }

    /// Highest applied index.
    pub fn applied_index(&self) -> LogIndex {
        LogIndex(self.applied.len() as u64)
    }

    /// The command applied at `index`, if this node applied it. The outer
    /// `None` means "not applied here"; the inner one marks a no-op.
    pub fn get(&self, index: LogIndex) -> Option<&Option<Vec<u8>>> {
        let i = index.0.checked_sub(1)? as usize;
        self.applied.get(i)
    }

    /// Apply committed entries. Returns the index at which the application
    /// wants a snapshot taken, if one falls due (the lab rule:
    /// `(index + 1) % interval == 0`).
    pub fn apply(
        &mut self,
        entries: &[Entry],
        interval: Option<u64>,
    ) -> Result<Option<LogIndex>, String> {
        let mut due = None;
        for e in entries {
            let expected = self.applied_index().next();
            if e.index != expected {
                return Err(format!(
                    "applied index {} out of order (expected {})",
                    e.index, expected
                ));
            }
            self.applied.push(match &e.payload {
                Payload::Noop | Payload::Membership(_) => None,
                Payload::Command(c) => Some(c.clone()),
            });
            if let Some(k) = interval {
                if (e.index.0 + 1) % k == 0 {
                    due = Some(e.index);
                }
            }
        }
        Ok(due)
    }

    /// Serialize the state through `index` (the lab encodes its whole log).
    pub fn snapshot_data(&self, index: LogIndex) -> Vec<u8> {
        let upto = &self.applied[..index.0 as usize];
        postcard::to_allocvec(&(index.0, upto)).expect("encoding to a Vec cannot fail")
    }

    /// Replace the state with a snapshot's content, checking that the
    /// snapshot says what it claims (the lab's `SnapshotIndex` check).
    pub fn install(&mut self, snapshot: &Snapshot) -> Result<(), String> {
        let (index, log): (u64, Vec<Option<Vec<u8>>>) = postcard::from_bytes(&snapshot.data)
            .map_err(|e| format!("snapshot at {} does not decode: {e}", snapshot.index))?;
        if index != snapshot.index.0 || log.len() as u64 != index {
            return Err(format!(
                "snapshot claims index {} but encodes index {index} with {} entries",
                snapshot.index,
                log.len()
            ));
        }
        self.applied = log;
        Ok(())
    }
}
