//! What a leader knows about each follower's log (Figure 2's nextIndex and
//! matchIndex), plus the flow-control state that bounds in-flight messages.

use crate::types::LogIndex;
use std::collections::VecDeque;

/// How the leader is currently feeding a follower.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// The follower's log position is unknown: one AppendEntries at a time
    /// until one succeeds.
    Probe,
    /// The follower is in sync: stream up to `max_inflight_messages` appends.
    Replicate,
    /// A snapshot through this index is on its way.
    Snapshot(LogIndex),
}

/// Replication state of one follower, as seen by the leader.
#[derive(Clone, Debug)]
pub(crate) struct Progress {
    /// Highest index known to be replicated on the follower.
    pub(crate) match_index: LogIndex,
    /// Next index to send.
    pub(crate) next_index: LogIndex,
    pub(crate) mode: Mode,
    /// Last index and send tick of each unacknowledged append carrying entries
    /// (Replicate), or of the single probe / snapshot (Probe / Snapshot).
    pub(crate) inflight: VecDeque<(LogIndex, u64)>,
    /// Highest heartbeat round the follower has echoed in this term.
    pub(crate) acked_round: u64,
    /// The follower answered since the last check-quorum sweep.
    pub(crate) recently_active: bool,
}

impl Progress {
    pub(crate) fn new(next_index: LogIndex) -> Self {
        Progress {
            match_index: LogIndex(0),
            next_index,
            mode: Mode::Probe,
            inflight: VecDeque::new(),
            acked_round: 0,
            recently_active: false,
        }
    }

    /// Whether another message with entries may be sent now.
    pub(crate) fn can_send(&self, max_inflight: usize) -> bool {
        match self.mode {
            Mode::Probe => self.inflight.is_empty(),
            Mode::Replicate => self.inflight.len() < max_inflight,
            Mode::Snapshot(_) => false,
        }
    }

    /// Record that the follower holds everything through `index`.
    /// Returns true if that was news.
    pub(crate) fn ack(&mut self, index: LogIndex) -> bool {
        while self.inflight.front().is_some_and(|(i, _)| *i <= index) {
            self.inflight.pop_front();
        }
        if index <= self.match_index {
            return false;
        }
        self.match_index = index;
        if self.next_index <= index {
            self.next_index = index.next();
        }
        true
    }

    /// Forget everything in flight and probe from `next`.
    pub(crate) fn reset_to_probe(&mut self, next: LogIndex) {
        self.mode = Mode::Probe;
        self.inflight.clear();
        self.next_index = next.max(self.match_index.next());
    }

    /// True if the oldest unacknowledged message, sent at tick `sent`, has
    /// waited at least `stale_after` ticks by tick `now`: presume it lost.
    pub(crate) fn stalled(&self, now: u64, stale_after: u64) -> bool {
        self.inflight
            .front()
            .is_some_and(|(_, sent)| now.saturating_sub(*sent) >= stale_after)
    }
}
