//! The simulated disk: what a node wrote, and what it synced. A crash
//! keeps everything synced plus a prefix of the writes since the last sync
//! chosen by the world's RNG, the way a power cut keeps part of an
//! unflushed write-back cache (writes to an append-only log reach the
//! platter in order; the storage crate's own tests cover reordering within
//! files). Nothing a node acknowledged may depend on a write a crash can
//! lose: the invariant checker compares every released action with the
//! synced state.

use super::rng::SimRng;
use core_raft::{Action, Durable};

/// One node's disk.
#[derive(Clone, Debug, Default)]
pub struct SimDisk {
    /// Everything written, synced or not: what the node believes it holds.
    written: Durable,
    /// What survives any crash.
    synced: Durable,
    /// Persist actions written since the last sync, in order.
    unsynced: Vec<Action>,
}

impl SimDisk {
    /// A disk holding `durable`, all of it synced.
    pub fn new(durable: Durable) -> SimDisk {
        SimDisk {
            written: durable.clone(),
            synced: durable,
            unsynced: Vec::new(),
        }
    }

    /// Write persist actions (not yet durable).
    pub fn write(&mut self, actions: &[Action]) {
        for a in actions.iter().filter(|a| a.is_persist()) {
            self.written.persist(a);
            self.unsynced.push(a.clone());
        }
    }

    /// Make every write so far durable.
    pub fn sync(&mut self) {
        for a in self.unsynced.drain(..) {
            self.synced.persist(&a);
        }
    }

    /// Everything written, synced or not.
    pub fn written(&self) -> &Durable {
        &self.written
    }

    /// What survives a crash for certain.
    pub fn synced(&self) -> &Durable {
        &self.synced
    }

    /// Writes a crash could lose.
    pub fn unsynced(&self) -> usize {
        self.unsynced.len()
    }

    /// A power cut: keep the synced state plus a random prefix of the
    /// unsynced writes (all of them, none, or anything between), which
    /// becomes the disk's whole content. Returns how many writes survived.
    pub fn crash(&mut self, rng: &mut SimRng) -> usize {
        let keep = rng.below(self.unsynced.len() as u64 + 1) as usize;
        for a in self.unsynced.drain(..).take(keep) {
            self.synced.persist(&a);
        }
        self.written = self.synced.clone();
        keep
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core_raft::{HardState, Term};

    fn hs(t: u64) -> Action {
        Action::PersistHardState(HardState {
            term: Term(t),
            ..HardState::default()
        })
    }

    #[test]
    fn a_crash_keeps_the_synced_state_and_a_prefix_of_the_rest() {
        for seed in 0..50 {
            let mut d = SimDisk::default();
            d.write(&[hs(1)]);
            d.sync();
            d.write(&[hs(2), hs(3)]);
            assert_eq!(d.written().hard_state.term, Term(3));
            assert_eq!(d.synced().hard_state.term, Term(1));
            let kept = d.crash(&mut SimRng::new(seed));
            let term = d.written().hard_state.term;
            assert_eq!(term, Term(1 + kept as u64), "seed {seed}");
            assert_eq!(d.written(), d.synced());
            assert_eq!(d.unsynced(), 0);
        }
    }
}
