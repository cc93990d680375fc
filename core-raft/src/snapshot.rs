//! Log compaction (§7): the application's snapshots, and InstallSnapshot
//! for followers whose next entry the leader has discarded.

use crate::log::RaftLog;
use crate::message::{InstallSnapshot, InstallSnapshotResponse, Message, Snapshot};
use crate::progress::Mode;
use crate::types::{LogIndex, NodeId};
use crate::{Action, Raft, Role};

impl Raft {
    /// The application captured its state through `index`: discard the log
    /// prefix it covers.
    pub(crate) fn compact(&mut self, index: LogIndex, data: Vec<u8>) {
        if index <= self.log.snapshot_index() || index > self.applied {
            tracing::debug!(node = %self.config.id, %index, applied = %self.applied, "ignoring snapshot outside (snapshot, applied]");
            return;
        }
        let term = self
            .log
            .term_at(index)
            .expect("applied entries after the snapshot are in the log");
        let membership = self.membership_at(index).clone();
        self.log.compact(index, term);
        self.base_membership = membership.clone();
        self.membership_log.retain(|(at, _)| *at > index);
        let snapshot = Snapshot {
            index,
            term,
            membership,
            data,
        };
        self.snapshot = Some(snapshot.clone());
        self.out.push(Action::PersistSnapshot {
            snapshot,
            discard_log: false,
        });
    }

    /// Leader: ship the latest snapshot to `peer`.
    pub(crate) fn send_snapshot(&mut self, peer: NodeId) {
        let Some(snapshot) = self.snapshot.clone() else {
            unreachable!("a compacted log always has a snapshot");
        };
        let now = self.ticks;
        self.progress
            .get_mut(&peer)
            .expect("leader tracks every peer")
            .become_snapshot(snapshot.index, now);
        let msg = InstallSnapshot {
            term: self.term,
            snapshot,
            round: self.round,
        };
        self.send(peer, Message::InstallSnapshot(msg));
    }

    /// Follower: replace state with the leader's snapshot unless it is old news.
    pub(crate) fn handle_install_snapshot(&mut self, from: NodeId, m: InstallSnapshot) {
        let InstallSnapshot {
            term,
            snapshot,
            round,
        } = m;
        if self.role == Role::Leader {
            tracing::warn!(node = %self.config.id, %from, "InstallSnapshot from another leader of our term; dropped");
            return;
        }
        if self.role != Role::Follower {
            self.become_follower(term, Some(from));
        }
        self.leader = Some(from);
        self.reset_election_timer();
        if snapshot.term > term
            || snapshot.index == LogIndex(0)
            || snapshot.membership.voters.is_empty()
        {
            tracing::debug!(node = %self.config.id, %from, "malformed InstallSnapshot dropped");
            return;
        }
        let index = snapshot.index;
        if index > self.commit {
            // Keep the suffix only if it extends the snapshot (§7: "if existing
            // log entry has same index and term as snapshot's last included
            // entry, retain log entries following it").
            let keep = self.log.term_at(index) == Some(snapshot.term);
            if keep {
                self.log.compact(index, snapshot.term);
                self.membership_log.retain(|(at, _)| *at > index);
            } else {
                self.log = RaftLog::new(index, snapshot.term, Vec::new());
                self.membership_log.clear();
            }
            self.base_membership = snapshot.membership.clone();
            self.refresh_membership();
            self.commit = index;
            self.applied = index;
            self.snapshot = Some(snapshot.clone());
            self.out.push(Action::PersistSnapshot {
                snapshot: snapshot.clone(),
                discard_log: !keep,
            });
            self.out.push(Action::ApplySnapshot(snapshot));
        }
        // Either way we now hold everything through `index`: it is at or
        // below our commit index, or we just installed it.
        let reply = InstallSnapshotResponse {
            term,
            match_index: index,
            round,
        };
        self.send(from, Message::InstallSnapshotResponse(reply));
    }

    /// Leader: a follower finished (or refused, if stale) a snapshot.
    pub(crate) fn handle_snapshot_response(&mut self, from: NodeId, m: InstallSnapshotResponse) {
        if self.role != Role::Leader {
            return;
        }
        let match_index = m.match_index;
        self.note_peer_alive(from, m.round);
        if match_index == LogIndex(0) || match_index > self.log.last_index() {
            return;
        }
        let pr = self
            .progress
            .get_mut(&from)
            .expect("leader tracks every peer");
        let news = pr.ack(match_index);
        if let Mode::Snapshot(index) = pr.mode() {
            if pr.match_index() >= index {
                // Confirm the position with a probe before streaming.
                pr.become_probe(pr.match_index().next());
            }
        }
        if news {
            self.maybe_commit();
        }
        self.send_more(from);
    }
}
