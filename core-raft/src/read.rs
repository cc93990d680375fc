//! Linearizable reads without writing the log (ReadIndex, thesis §6.4).
//!
//! The leader records its commit index as the read point, then confirms it
//! is still leader by collecting acknowledgements of a heartbeat round from a
//! majority. Reads arriving while a round is outstanding share the next
//! round, so confirmation cost is amortised under load.

use crate::types::LogIndex;
use crate::{Action, Raft, Role};
use std::collections::VecDeque;

/// Most reads a leader queues; beyond that a read fails fast rather than
/// growing memory without bound.
const MAX_PENDING_READS: usize = 65_536;

/// A read waiting for its leadership confirmation.
#[derive(Clone, Debug)]
struct PendingRead {
    id: u64,
    index: LogIndex,
    round: u64,
}

/// The leader's queue of reads.
#[derive(Clone, Debug, Default)]
pub(crate) struct ReadQueue {
    /// Reads that arrived before the leader committed an entry of its term:
    /// its commit index is not yet a safe read point.
    awaiting_commit: Vec<u64>,
    /// Reads with a read point, in round order.
    confirming: VecDeque<PendingRead>,
}

impl ReadQueue {
    fn len(&self) -> usize {
        self.awaiting_commit.len() + self.confirming.len()
    }
}

impl Raft {
    pub(crate) fn read_index(&mut self, id: u64) {
        if self.role != Role::Leader {
            self.out.push(Action::ReadFailed {
                id,
                leader_hint: self.leader,
            });
            return;
        }
        if self.reads.len() >= MAX_PENDING_READS {
            tracing::debug!(node = %self.config.id, "read queue full; failing read");
            self.out.push(Action::ReadFailed {
                id,
                leader_hint: self.leader,
            });
            return;
        }
        if self.log.term_at(self.commit) != Some(self.term) {
            self.reads.awaiting_commit.push(id);
            return;
        }
        self.queue_read(id);
    }

    fn queue_read(&mut self, id: u64) {
        let read = PendingRead {
            id,
            index: self.commit,
            round: self.round + 1,
        };
        self.reads.confirming.push_back(read);
        self.release_ready_reads();
    }

    /// The leader just committed an entry of its own term: waiting reads get
    /// their read point.
    pub(crate) fn on_commit_in_term(&mut self) {
        for id in std::mem::take(&mut self.reads.awaiting_commit) {
            self.queue_read(id);
        }
    }

    /// Answer every read whose round a majority has acknowledged, then start
    /// the next round if reads are waiting for one.
    pub(crate) fn release_ready_reads(&mut self) {
        while let Some(read) = self.reads.confirming.front() {
            let round = read.round;
            let acks = self.voters_where(|p| p.acked_round >= round);
            if acks < self.quorum() {
                break;
            }
            let (id, index) = (read.id, read.index);
            self.reads.confirming.pop_front();
            self.out.push(Action::ReadReady { id, index });
        }
        // Reads are queued in round order, so if the oldest unconfirmed read
        // waits for a round not yet sent, no round is outstanding: send one.
        let needs_round = self
            .reads
            .confirming
            .front()
            .is_some_and(|r| r.round > self.round);
        if needs_round {
            self.round += 1;
            for peer in self.peers.clone() {
                self.send_heartbeat(peer);
            }
        }
    }

    /// Leadership ended: no queued read can be confirmed any more.
    pub(crate) fn fail_pending_reads(&mut self) {
        let ids: Vec<u64> = std::mem::take(&mut self.reads.awaiting_commit)
            .into_iter()
            .chain(self.reads.confirming.drain(..).map(|r| r.id))
            .collect();
        for id in ids {
            self.out.push(Action::ReadFailed {
                id,
                leader_hint: self.leader,
            });
        }
    }
}
