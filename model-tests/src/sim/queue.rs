//! The one event queue of a simulated world: events ordered by virtual time
//! and, within one instant, by the order they were scheduled. Every world
//! (Raft clusters, replicated services) keeps its future in one of these,
//! and the hand-delivery mode of the scenario tests reads and edits it
//! directly (deliver the oldest message, drop some, reorder).

use std::collections::BTreeMap;

/// Events keyed by (virtual milliseconds, sequence number).
#[derive(Debug)]
pub struct EventQueue<E> {
    events: BTreeMap<(u64, u64), E>,
    seq: u64,
}

impl<E> Default for EventQueue<E> {
    fn default() -> Self {
        EventQueue {
            events: BTreeMap::new(),
            seq: 0,
        }
    }
}

impl<E> EventQueue<E> {
    /// Schedule `event` at virtual time `at`, after everything already
    /// scheduled for that instant.
    pub fn push(&mut self, at: u64, event: E) {
        self.seq += 1;
        self.events.insert((at, self.seq), event);
    }

    /// Remove and return the earliest event due at or before `until`, with
    /// its time.
    pub fn pop_due(&mut self, until: u64) -> Option<(u64, E)> {
        let entry = self.events.first_entry()?;
        if entry.key().0 > until {
            return None;
        }
        let ((at, _), event) = entry.remove_entry();
        Some((at, event))
    }

    /// Remove and return the first event matching `pred`, in queue order.
    pub fn take_first(&mut self, pred: impl Fn(&E) -> bool) -> Option<E> {
        let key = *self.events.iter().find(|(_, e)| pred(e))?.0;
        self.events.remove(&key)
    }

    /// Remove every event matching `pred`, returning them in queue order.
    pub fn take_all(&mut self, pred: impl Fn(&E) -> bool) -> Vec<E> {
        let keys: Vec<(u64, u64)> = self
            .events
            .iter()
            .filter(|(_, e)| pred(e))
            .map(|(k, _)| *k)
            .collect();
        keys.into_iter()
            .filter_map(|k| self.events.remove(&k))
            .collect()
    }

    /// Keep only the events for which `keep` returns true (called once per
    /// event, in queue order).
    pub fn retain(&mut self, mut keep: impl FnMut(&E) -> bool) {
        self.events.retain(|_, e| keep(e));
    }

    /// Remove the `n`-th event (0-based, in queue order) among those
    /// matching `pred`.
    pub fn remove_nth(&mut self, pred: impl Fn(&E) -> bool, n: usize) -> Option<E> {
        let key = *self.events.iter().filter(|(_, e)| pred(e)).nth(n)?.0;
        self.events.remove(&key)
    }

    /// The events in queue order.
    pub fn iter(&self) -> impl Iterator<Item = &E> {
        self.events.values()
    }

    /// Number of events scheduled.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// True if nothing is scheduled.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_come_out_by_time_then_by_scheduling_order() {
        let mut q = EventQueue::default();
        q.push(5, "b");
        q.push(1, "a");
        q.push(5, "c");
        assert_eq!(q.pop_due(0), None);
        assert_eq!(q.pop_due(10), Some((1, "a")));
        assert_eq!(q.take_first(|e| *e == "c"), Some("c"));
        assert_eq!(q.take_all(|_| true), vec!["b"]);
        assert!(q.is_empty());
    }
}
