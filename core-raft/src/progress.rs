//! What a leader knows about each follower's log (Figure 2's nextIndex and
//! matchIndex), plus the flow-control state that bounds in-flight messages.
//!
//! As in etcd's `tracker/progress.go`, every change of state is a method
//! (`become_probe`, `become_replicate`, `become_snapshot`, `sent_append`,
//! `ack`), so the leader's code says *what happened* and this file alone keeps
//! the fields consistent. Each method checks the invariants on its way out.

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
///
/// Invariants (checked after every transition):
/// * `match_index < next_index`: nothing the follower is known to hold is
///   sent again as new, and the next message never skips past a gap.
/// * `inflight` is strictly increasing in index, and every index in it is
///   above `match_index`, except that a probe carrying no entries is recorded
///   at its `prev_log_index`, which may equal `match_index`.
/// * In `Probe` at most one message is in flight; in `Snapshot(i)` exactly
///   the snapshot, at index `i`, is (as one record, however many of its
///   chunks are on the way), and its acknowledged bytes never pass the
///   bytes sent.
#[derive(Clone, Debug)]
pub(crate) struct Progress {
    /// Highest index known to be replicated on the follower. Only grows
    /// within a term. Always below `next_index`.
    match_index: LogIndex,
    /// Next index to send. Always above `match_index`; may move back (to
    /// probe) but never to or below `match_index`.
    next_index: LogIndex,
    mode: Mode,
    /// Last index and send tick of each unacknowledged append carrying entries
    /// (Replicate), or of the single probe / snapshot (Probe / Snapshot).
    /// Ordered by index, strictly increasing; see the invariants above for
    /// how it relates to `match_index`.
    inflight: VecDeque<(LogIndex, u64)>,
    /// Highest heartbeat round the follower has echoed in this term.
    pub(crate) acked_round: u64,
    /// The follower answered since the last check-quorum sweep.
    pub(crate) recently_active: bool,
    /// In `Snapshot` mode: how far the chunks have gone.
    chunks: ChunkCursor,
}

/// Where a chunked snapshot transfer stands, in bytes of the snapshot.
///
/// Invariant: `acked <= next` except transiently inside a method; chunks
/// in flight cover `acked..next`, at most a window's worth.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct ChunkCursor {
    /// Bytes the follower has confirmed assembling.
    acked: u64,
    /// Offset of the next chunk to send.
    next: u64,
    /// The last chunk has been sent (and not rewound since). Needed besides
    /// `next == total` so that an empty snapshot still sends one chunk.
    sent_last: bool,
}

impl Progress {
    /// A follower the new leader knows nothing about: probe from `next_index`
    /// (the leader's last index + 1).
    pub(crate) fn new(next_index: LogIndex) -> Self {
        let pr = Progress {
            match_index: LogIndex(0),
            next_index,
            mode: Mode::Probe,
            inflight: VecDeque::new(),
            acked_round: 0,
            recently_active: false,
            chunks: ChunkCursor::default(),
        };
        pr.debug_check();
        pr
    }

    /// Highest index known to be replicated on the follower.
    pub(crate) fn match_index(&self) -> LogIndex {
        self.match_index
    }

    /// Next index to send.
    pub(crate) fn next_index(&self) -> LogIndex {
        self.next_index
    }

    /// How the follower is being fed.
    pub(crate) fn mode(&self) -> Mode {
        self.mode
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
    ///
    /// The mode is left alone: the caller decides whether the ack ends a
    /// probe or a snapshot (and calls `become_*`), so the per-mode invariants
    /// are checked only once that decision is made.
    pub(crate) fn ack(&mut self, index: LogIndex) -> bool {
        while self.inflight.front().is_some_and(|(i, _)| *i <= index) {
            self.inflight.pop_front();
        }
        if index <= self.match_index {
            self.debug_check_indexes();
            return false;
        }
        self.match_index = index;
        if self.next_index <= index {
            self.next_index = index.next();
        }
        self.debug_check_indexes();
        true
    }

    /// Forget everything in flight and probe from `next` (never at or below
    /// the match point, which the follower is known to hold).
    pub(crate) fn become_probe(&mut self, next: LogIndex) {
        self.mode = Mode::Probe;
        self.inflight.clear();
        self.next_index = next.max(self.match_index.next());
        self.debug_check();
    }

    /// The follower's position is confirmed: stream appends from
    /// `next_index`, with nothing counted in flight yet.
    pub(crate) fn become_replicate(&mut self) {
        self.mode = Mode::Replicate;
        self.inflight.clear();
        // Already true by the invariant; kept so the transition alone
        // guarantees it.
        self.next_index = self.next_index.max(self.match_index.next());
        self.debug_check();
    }

    /// A transfer of the snapshot through `index` starts at tick `now`, from
    /// its first byte. Until it ends it is the only thing in flight; its
    /// `inflight` record carries the tick of its latest progress, so a
    /// transfer that stalls is noticed like a lost message.
    pub(crate) fn become_snapshot(&mut self, index: LogIndex, now: u64) {
        self.mode = Mode::Snapshot(index);
        self.inflight.clear();
        self.inflight.push_back((index, now));
        self.chunks = ChunkCursor::default();
        self.debug_check();
    }

    /// The next chunk of a snapshot of `total` bytes to send, as (offset,
    /// length), if the window of `window` unacknowledged bytes allows one;
    /// marks it sent.
    pub(crate) fn next_snapshot_chunk(
        &mut self,
        total: u64,
        chunk: u64,
        window: u64,
    ) -> Option<(u64, u64)> {
        let c = &mut self.chunks;
        if !matches!(self.mode, Mode::Snapshot(_)) || c.sent_last {
            return None;
        }
        if c.next > c.acked && c.next - c.acked >= window {
            return None;
        }
        let offset = c.next.min(total);
        let len = chunk.min(total - offset);
        c.next = offset + len;
        c.sent_last = c.next == total;
        Some((offset, len))
    }

    /// The follower answered the chunk at `offset`: it has assembled
    /// `received` bytes. Less than `offset` means it missed an earlier
    /// chunk (lost, or it restarted): send again from there. Otherwise it
    /// is progress (or an old answer), and the window moves on.
    pub(crate) fn snapshot_chunk_answered(&mut self, offset: u64, received: u64, now: u64) {
        let c = &mut self.chunks;
        if received < offset && offset >= c.next {
            // It answers a chunk sent before the leader last moved back
            // (nothing at or past `next` has been sent since): that gap is
            // already being filled.
            return;
        }
        if received < offset {
            c.acked = received;
            c.next = received;
            c.sent_last = false;
        } else if received > c.acked {
            c.acked = received;
            c.next = c.next.max(received);
        } else {
            return;
        }
        if let Some(front) = self.inflight.front_mut() {
            front.1 = now;
        }
        self.debug_check();
    }

    /// The transfer stalled: resend from the last acknowledged byte.
    pub(crate) fn rewind_snapshot(&mut self, now: u64) {
        self.chunks.next = self.chunks.acked;
        self.chunks.sent_last = false;
        if let Some(front) = self.inflight.front_mut() {
            front.1 = now;
        }
        self.debug_check();
    }

    /// An AppendEntries whose last entry is `last` (its `prev_log_index` when
    /// it carries none) was sent at tick `now`. While replicating, an append
    /// with entries joins the pipeline and moves `next_index` past it; a probe
    /// is tracked even when empty, so that a lost probe is noticed; anything
    /// else (an empty append while replicating) is not tracked.
    pub(crate) fn sent_append(&mut self, last: LogIndex, now: u64) {
        match self.mode {
            // `last >= next_index` exactly when the message carried entries.
            Mode::Replicate if last >= self.next_index => {
                self.inflight.push_back((last, now));
                self.next_index = last.next();
            }
            Mode::Probe => self.inflight.push_back((last, now)),
            _ => {}
        }
        self.debug_check();
    }

    /// True if the oldest unacknowledged message, sent at tick `sent`, has
    /// waited at least `stale_after` ticks by tick `now`: presume it lost.
    pub(crate) fn stalled(&self, now: u64, stale_after: u64) -> bool {
        self.inflight
            .front()
            .is_some_and(|(_, sent)| now.saturating_sub(*sent) >= stale_after)
    }

    /// `match_index < next_index` only: O(1), so the leader checks it for
    /// every follower after every step, in release builds too.
    pub(crate) fn indexes_hold(&self) -> bool {
        self.match_index < self.next_index
    }

    /// Every invariant in the type's doc, as a message naming what broke
    /// (`None` if all hold). Walks `inflight`, at most
    /// `max_inflight_messages` long.
    pub(crate) fn broken_invariant(&self) -> Option<String> {
        if !self.indexes_hold() {
            return Some(format!(
                "match_index {} is not below next_index {}",
                self.match_index, self.next_index
            ));
        }
        let ordered = self
            .inflight
            .iter()
            .zip(self.inflight.iter().skip(1))
            .all(|((a, _), (b, _))| a < b);
        if !ordered {
            return Some(format!("inflight not increasing: {:?}", self.inflight));
        }
        let above_match = match (self.mode, self.inflight.front()) {
            (_, None) => true,
            // An empty probe is recorded at its prev_log_index.
            (Mode::Probe, Some((first, _))) => *first >= self.match_index,
            (_, Some((first, _))) => *first > self.match_index,
        };
        if !above_match {
            return Some(format!(
                "inflight {:?} not above match_index {} ({:?})",
                self.inflight, self.match_index, self.mode
            ));
        }
        let shape_ok = match self.mode {
            Mode::Probe => self.inflight.len() <= 1,
            Mode::Replicate => true,
            Mode::Snapshot(index) => {
                self.inflight.len() == 1
                    && self.inflight.front().is_some_and(|(i, _)| *i == index)
                    && self.chunks.acked <= self.chunks.next
            }
        };
        if !shape_ok {
            return Some(format!("{:?} with inflight {:?}", self.mode, self.inflight));
        }
        None
    }

    /// The index invariants, which must hold even between an `ack` and the
    /// mode change it leads to.
    fn debug_check_indexes(&self) {
        debug_assert!(
            self.indexes_hold(),
            "progress: match_index {} is not below next_index {}",
            self.match_index,
            self.next_index
        );
    }

    /// Every invariant, after a complete transition.
    fn debug_check(&self) {
        if cfg!(debug_assertions) {
            if let Some(broken) = self.broken_invariant() {
                panic!("progress invariant broken: {broken}");
            }
        }
    }
}
