//! Log compaction (§7): the application's snapshots, and InstallSnapshot
//! for followers whose next entry the leader has discarded.

use crate::log::RaftLog;
use crate::message::{InstallSnapshot, InstallSnapshotResponse, Message, Snapshot};
use crate::progress::Mode;
use crate::types::{LogIndex, NodeId, Term};
use crate::{Action, Raft, Role};

impl Raft {
    /// The application captured its state through `index`: discard the log
    /// prefix it covers, and keep the bytes to send to lagging followers.
    /// A capture at the index of an external snapshot replaces it (that is
    /// what [`Action::SnapshotWanted`] asks for).
    pub(crate) fn compact(&mut self, index: LogIndex, data: Vec<u8>) {
        self.snapshot_wanted = false;
        let external_here = self
            .snapshot
            .as_ref()
            .is_some_and(|s| s.external && s.index == index);
        if (index <= self.log.snapshot_index() && !external_here) || index > self.applied {
            tracing::debug!(node = %self.config.id, %index, applied = %self.applied, "ignoring snapshot outside (snapshot, applied]");
            return;
        }
        self.replace_snapshot(index, data, false);
    }

    /// The application holds its state through `index` durably itself:
    /// discard the log prefix it covers, keeping no copy of the state
    /// ([`Snapshot::external`]). Ignored while a follower is being sent a
    /// snapshot (the transfer would have to start over with a copy made for
    /// it), and at or below the latest snapshot unless that one holds bytes
    /// at `index` (a follower that installed the leader's snapshot drops its
    /// copy so).
    pub(crate) fn compact_external(&mut self, index: LogIndex) {
        let copy_here = self
            .snapshot
            .as_ref()
            .is_some_and(|s| !s.external && s.index == index);
        let transferring = self
            .progress
            .values()
            .any(|p| matches!(p.mode(), Mode::Snapshot(_)));
        if (index <= self.log.snapshot_index() && !copy_here)
            || index > self.applied
            || transferring
        {
            tracing::debug!(node = %self.config.id, %index, applied = %self.applied, transferring, "ignoring compaction");
            return;
        }
        self.replace_snapshot(index, Vec::new(), true);
    }

    /// Make the snapshot through `index` (at or after the log's start) the
    /// latest, dropping the log through it.
    fn replace_snapshot(&mut self, index: LogIndex, data: Vec<u8>, external: bool) {
        let term = self
            .log
            .term_at(index)
            .expect("applied entries after the snapshot are in the log");
        let membership = self.membership_at(index).clone();
        if index > self.log.snapshot_index() {
            self.log.compact(index, term);
            self.base_membership = membership.clone();
            self.membership_log.retain(|(at, _)| *at > index);
        }
        let snapshot = Snapshot {
            external,
            ..Snapshot::new(index, term, membership, data)
        };
        self.snapshot = Some(snapshot.clone());
        self.out.push(Action::PersistSnapshot {
            snapshot,
            discard_log: false,
        });
    }

    /// Leader: start shipping the latest snapshot to `peer`, from its first
    /// byte.
    pub(crate) fn send_snapshot(&mut self, peer: NodeId) {
        let Some(snapshot) = self.snapshot.as_ref() else {
            unreachable!("a compacted log always has a snapshot");
        };
        let index = snapshot.index;
        if snapshot.external {
            // The application keeps the state itself: ask it for a copy.
            // Meanwhile the follower waits in probe mode (nothing streams
            // to it); the next heartbeat brings it back here.
            if !self.snapshot_wanted {
                self.snapshot_wanted = true;
                self.out.push(Action::SnapshotWanted { index });
            }
            let pr = self
                .progress
                .get_mut(&peer)
                .expect("leader tracks every peer");
            if pr.mode() != Mode::Probe {
                let next = pr.next_index();
                pr.become_probe(next);
            }
            return;
        }
        let now = self.ticks;
        self.progress
            .get_mut(&peer)
            .expect("leader tracks every peer")
            .become_snapshot(index, now);
        self.send_snapshot_chunks(peer);
    }

    /// Leader: the transfer to `peer` made no progress for a while; resend
    /// from the last byte it acknowledged, or start over if a newer
    /// snapshot has replaced the one being sent.
    pub(crate) fn resume_snapshot(&mut self, peer: NodeId) {
        let now = self.ticks;
        let latest = self.snapshot.as_ref().map(|s| s.index);
        let pr = self
            .progress
            .get_mut(&peer)
            .expect("leader tracks every peer");
        match pr.mode() {
            Mode::Snapshot(index) if Some(index) == latest => {
                pr.rewind_snapshot(now);
                self.send_snapshot_chunks(peer);
            }
            _ => self.send_snapshot(peer),
        }
    }

    /// Leader: send `peer` the next chunks of the snapshot under way, as
    /// many as its window allows. A snapshot replaced by a newer one (the
    /// leader compacted again) restarts the transfer with the new one: the
    /// leader keeps only its latest snapshot.
    fn send_snapshot_chunks(&mut self, peer: NodeId) {
        let Some(snapshot) = self.snapshot.as_ref() else {
            unreachable!("a compacted log always has a snapshot");
        };
        let chunk = self.config.snapshot_chunk_bytes as u64;
        let window = chunk.saturating_mul(self.config.max_inflight_messages as u64);
        let total = snapshot.data.len() as u64;
        let now = self.ticks;
        let pr = self
            .progress
            .get_mut(&peer)
            .expect("leader tracks every peer");
        match pr.mode() {
            Mode::Snapshot(index) if index == snapshot.index => {}
            Mode::Snapshot(_) => pr.become_snapshot(snapshot.index, now),
            _ => return,
        }
        let mut chunks = Vec::new();
        while let Some((offset, len)) = pr.next_snapshot_chunk(total, chunk, window) {
            let range = offset as usize..(offset + len) as usize;
            chunks.push(InstallSnapshot {
                term: self.term,
                index: snapshot.index,
                snapshot_term: snapshot.term,
                membership: snapshot.membership.clone(),
                total_len: total,
                offset,
                data: snapshot.data[range].to_vec(),
                round: self.round,
            });
        }
        for msg in chunks {
            self.send(peer, Message::InstallSnapshot(msg));
        }
    }

    /// Follower: take one chunk of the leader's snapshot; once the last one
    /// is in, replace the state with the snapshot unless it is old news.
    pub(crate) fn handle_install_snapshot(&mut self, from: NodeId, m: InstallSnapshot) {
        if self.role == Role::Leader {
            tracing::warn!(node = %self.config.id, %from, "InstallSnapshot from another leader of our term; dropped");
            return;
        }
        if self.role != Role::Follower {
            self.become_follower(m.term, Some(from));
        }
        self.leader = Some(from);
        self.reset_election_timer();
        let fits = m
            .offset
            .checked_add(m.data.len() as u64)
            .is_some_and(|end| end <= m.total_len);
        if m.snapshot_term > m.term
            || m.index == LogIndex(0)
            || m.membership.voters.is_empty()
            || !fits
        {
            tracing::debug!(node = %self.config.id, %from, "malformed InstallSnapshot dropped");
            return;
        }
        let answer = |match_index, received| InstallSnapshotResponse {
            term: m.term,
            match_index,
            index: m.index,
            offset: m.offset,
            received,
            round: m.round,
        };
        if m.index <= self.commit {
            // We hold everything through `index` already: no need for the
            // rest of the transfer.
            let reply = answer(m.index, m.total_len);
            self.send(from, Message::InstallSnapshotResponse(reply));
            return;
        }
        let name = (m.term, m.index);
        let incoming = match self.incoming.take() {
            Some(inc) if inc.name() == name => inc,
            // A chunk of a transfer this one superseded: keep assembling
            // the newer one, and tell the leader we have none of the old.
            Some(inc) if inc.name() > name => {
                self.incoming = Some(inc);
                self.send(
                    from,
                    Message::InstallSnapshotResponse(answer(LogIndex(0), 0)),
                );
                return;
            }
            // None yet, or an older transfer the leader gave up on.
            _ => IncomingSnapshot::new(&m),
        };
        if incoming.total_len != m.total_len || incoming.snapshot_term != m.snapshot_term {
            tracing::warn!(node = %self.config.id, %from, index = %m.index, "InstallSnapshot chunk disagrees with earlier chunks; dropped");
            self.incoming = Some(incoming);
            return;
        }
        let mut incoming = incoming;
        if m.offset == incoming.received() {
            incoming.data.extend_from_slice(&m.data);
        }
        let received = incoming.received();
        if received < m.total_len || m.offset > received {
            // Still assembling, or this chunk came after a gap: say where
            // we are (the leader resends from there).
            self.incoming = Some(incoming);
            self.send(
                from,
                Message::InstallSnapshotResponse(answer(LogIndex(0), received)),
            );
            return;
        }
        let snapshot = Snapshot::new(m.index, m.snapshot_term, m.membership, incoming.data);
        self.install_snapshot(snapshot);
        let reply = answer(m.index, received);
        self.send(from, Message::InstallSnapshotResponse(reply));
    }

    /// Follower: the whole snapshot is in and newer than our commit index:
    /// replace the log prefix (or the whole log) and the state with it.
    fn install_snapshot(&mut self, snapshot: Snapshot) {
        let index = snapshot.index;
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

    /// Leader: a follower answered a chunk: it holds the whole snapshot
    /// (or more), or it tells how far it has assembled it.
    pub(crate) fn handle_snapshot_response(&mut self, from: NodeId, m: InstallSnapshotResponse) {
        if self.role != Role::Leader {
            return;
        }
        self.note_peer_alive(from, m.round);
        let now = self.ticks;
        let pr = self
            .progress
            .get_mut(&from)
            .expect("leader tracks every peer");
        if m.match_index == LogIndex(0) {
            let total = self.snapshot.as_ref().map_or(0, |s| s.data.len() as u64);
            if pr.mode() == Mode::Snapshot(m.index) {
                // Clamped: no follower can hold more than the whole snapshot.
                pr.snapshot_chunk_answered(m.offset, m.received.min(total), now);
                self.send_snapshot_chunks(from);
            }
            return;
        }
        let match_index = m.match_index;
        if match_index > self.log.last_index() {
            return;
        }
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

/// A snapshot a follower is assembling from the leader's chunks. It lives
/// in memory only: a restart starts the transfer over.
#[derive(Debug)]
pub(crate) struct IncomingSnapshot {
    /// The leader's term: with `index`, names the transfer.
    term: Term,
    index: LogIndex,
    snapshot_term: Term,
    total_len: u64,
    /// The bytes assembled so far, in order from offset 0.
    data: Vec<u8>,
}

impl IncomingSnapshot {
    fn new(m: &InstallSnapshot) -> Self {
        IncomingSnapshot {
            term: m.term,
            index: m.index,
            snapshot_term: m.snapshot_term,
            total_len: m.total_len,
            // Not reserved up front: `total_len` comes off the network.
            data: Vec::new(),
        }
    }

    fn name(&self) -> (Term, LogIndex) {
        (self.term, self.index)
    }

    fn received(&self) -> u64 {
        self.data.len() as u64
    }
}
