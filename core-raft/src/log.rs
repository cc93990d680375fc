//! The in-memory view of the replicated log: a compacted prefix (summarised
//! by the snapshot's index and term) followed by the live entries.

use crate::message::Entry;
use crate::types::{LogIndex, Term};

/// The log as the state machine sees it. `entries[0].index == snap_index + 1`.
#[derive(Clone, Debug, Default)]
pub(crate) struct RaftLog {
    snap_index: LogIndex,
    snap_term: Term,
    entries: Vec<Entry>,
    /// Sum of `Entry::size_bytes` over `entries`, kept current so callers can
    /// decide when to snapshot without walking the log.
    bytes: usize,
}

impl RaftLog {
    /// A log starting after a snapshot at (`snap_index`, `snap_term`).
    pub(crate) fn new(snap_index: LogIndex, snap_term: Term, entries: Vec<Entry>) -> Self {
        let bytes = entries.iter().map(Entry::size_bytes).sum();
        RaftLog {
            snap_index,
            snap_term,
            entries,
            bytes,
        }
    }

    /// Approximate size of the live entries, in bytes.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    pub(crate) fn snapshot_index(&self) -> LogIndex {
        self.snap_index
    }

    pub(crate) fn snapshot_term(&self) -> Term {
        self.snap_term
    }

    pub(crate) fn last_index(&self) -> LogIndex {
        LogIndex(self.snap_index.0 + self.entries.len() as u64)
    }

    pub(crate) fn last_term(&self) -> Term {
        self.entries.last().map_or(self.snap_term, |e| e.term)
    }

    /// Position of `index` in `entries`, if it is a live entry.
    fn offset(&self, index: LogIndex) -> Option<usize> {
        if index <= self.snap_index || index > self.last_index() {
            return None;
        }
        Some((index.0 - self.snap_index.0 - 1) as usize)
    }

    /// The term of the entry at `index`; the snapshot's term at its index;
    /// `None` for compacted or missing positions.
    pub(crate) fn term_at(&self, index: LogIndex) -> Option<Term> {
        if index == self.snap_index {
            return Some(self.snap_term);
        }
        self.offset(index).map(|o| self.entries[o].term)
    }

    /// Entries from `from` on, at most `max_count` of them and at most
    /// `max_bytes` (but always at least one if any exist).
    pub(crate) fn slice(&self, from: LogIndex, max_count: usize, max_bytes: usize) -> Vec<Entry> {
        let Some(start) = self.offset(from) else {
            return Vec::new();
        };
        let mut bytes = 0;
        let mut out = Vec::new();
        for e in self.entries[start..].iter().take(max_count) {
            bytes += e.size_bytes();
            if !out.is_empty() && bytes > max_bytes {
                break;
            }
            out.push(e.clone());
        }
        out
    }

    /// Entries in `from..=to` (both live).
    pub(crate) fn range(&self, from: LogIndex, to: LogIndex) -> Vec<Entry> {
        match (self.offset(from), self.offset(to)) {
            (Some(a), Some(b)) if a <= b => self.entries[a..=b].to_vec(),
            _ => Vec::new(),
        }
    }

    /// Append one entry at `last_index() + 1`.
    pub(crate) fn push(&mut self, entry: Entry) {
        assert_eq!(
            entry.index,
            self.last_index().next(),
            "log append out of order"
        );
        self.bytes += entry.size_bytes();
        self.entries.push(entry);
    }

    /// Drop every entry at or after `index`.
    pub(crate) fn truncate_from(&mut self, index: LogIndex) {
        if let Some(o) = self.offset(index) {
            self.bytes -= self.entries[o..]
                .iter()
                .map(Entry::size_bytes)
                .sum::<usize>();
            self.entries.truncate(o);
        }
    }

    /// The first index of the run of entries sharing the term of `index`
    /// (never below the first live entry).
    pub(crate) fn first_index_of_term_at(&self, index: LogIndex) -> LogIndex {
        let Some(mut o) = self.offset(index) else {
            return index;
        };
        let term = self.entries[o].term;
        while o > 0 && self.entries[o - 1].term == term {
            o -= 1;
        }
        self.entries[o].index
    }

    /// The last index holding an entry of `term`, if any live entry has it.
    pub(crate) fn last_index_of_term(&self, term: Term) -> Option<LogIndex> {
        // Terms are non-decreasing along the log, so a binary search finds the
        // end of the run.
        let end = self.entries.partition_point(|e| e.term <= term);
        if end == 0 || self.entries[end - 1].term != term {
            return (term == self.snap_term && end == 0).then_some(self.snap_index);
        }
        Some(self.entries[end - 1].index)
    }

    /// The log's structure, walked in full (so for debug builds only): as a
    /// message naming what broke, or `None`. Indexes run on from the
    /// snapshot without a gap, terms never decrease from the snapshot's and
    /// never exceed `current_term`, and `bytes` matches the entries.
    pub(crate) fn broken_invariant(&self, current_term: Term) -> Option<String> {
        let mut prev_term = self.snap_term;
        for (i, e) in self.entries.iter().enumerate() {
            let expected = LogIndex(self.snap_index.0 + 1 + i as u64);
            if e.index != expected {
                return Some(format!("entry {expected} is stored as {}", e.index));
            }
            if e.term < prev_term || e.term > current_term {
                return Some(format!(
                    "entry {} has {} after {prev_term} (current term {current_term})",
                    e.index, e.term
                ));
            }
            prev_term = e.term;
        }
        let bytes: usize = self.entries.iter().map(Entry::size_bytes).sum();
        if bytes != self.bytes {
            return Some(format!(
                "{bytes} bytes of entries counted as {}",
                self.bytes
            ));
        }
        None
    }

    /// Discard entries through `index`, which becomes the snapshot point.
    pub(crate) fn compact(&mut self, index: LogIndex, term: Term) {
        match self.offset(index) {
            Some(o) => {
                let dropped: usize = self.entries.drain(..=o).map(|e| e.size_bytes()).sum();
                self.bytes -= dropped;
            }
            None => {
                self.entries.clear();
                self.bytes = 0;
            }
        }
        self.snap_index = index;
        self.snap_term = term;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Payload;

    fn log_with_terms(snap: u64, terms: &[u64]) -> RaftLog {
        let entries = terms
            .iter()
            .enumerate()
            .map(|(i, t)| Entry {
                index: LogIndex(snap + 1 + i as u64),
                term: Term(*t),
                payload: Payload::Noop,
            })
            .collect();
        RaftLog::new(LogIndex(snap), Term(1), entries)
    }

    #[test]
    fn term_lookup_respects_snapshot_boundary() {
        let log = log_with_terms(5, &[1, 2, 2, 3]);
        assert_eq!(log.term_at(LogIndex(4)), None);
        assert_eq!(log.term_at(LogIndex(5)), Some(Term(1)));
        assert_eq!(log.term_at(LogIndex(7)), Some(Term(2)));
        assert_eq!(log.term_at(LogIndex(9)), Some(Term(3)));
        assert_eq!(log.term_at(LogIndex(10)), None);
        assert_eq!(log.last_index(), LogIndex(9));
    }

    #[test]
    fn term_runs_are_found_from_both_ends() {
        let log = log_with_terms(0, &[1, 1, 4, 4, 4, 5]);
        assert_eq!(log.first_index_of_term_at(LogIndex(5)), LogIndex(3));
        assert_eq!(log.last_index_of_term(Term(4)), Some(LogIndex(5)));
        assert_eq!(log.last_index_of_term(Term(2)), None);
        assert_eq!(log.last_index_of_term(Term(5)), Some(LogIndex(6)));
    }

    #[test]
    fn compaction_and_truncation_keep_indexes_consistent() {
        let mut log = log_with_terms(0, &[1, 1, 2, 2, 3]);
        log.compact(LogIndex(2), Term(1));
        assert_eq!(log.range(LogIndex(3), LogIndex(5)).len(), 3);
        assert_eq!(log.term_at(LogIndex(2)), Some(Term(1)));
        log.truncate_from(LogIndex(4));
        assert_eq!(log.last_index(), LogIndex(3));
        assert_eq!(log.range(LogIndex(3), LogIndex(3)).len(), 1);
        assert_eq!(log.bytes(), 24);
        log.compact(LogIndex(10), Term(7));
        assert_eq!(log.bytes(), 0);
        assert_eq!(log.last_index(), LogIndex(10));
        assert_eq!(log.last_term(), Term(7));
    }

    #[test]
    fn slice_honours_count_and_byte_limits_but_sends_one() {
        let log = log_with_terms(0, &[1; 10]);
        assert_eq!(log.slice(LogIndex(1), 3, usize::MAX).len(), 3);
        assert_eq!(log.slice(LogIndex(1), 100, 1).len(), 1);
        assert_eq!(log.slice(LogIndex(11), 100, 100).len(), 0);
    }
}
