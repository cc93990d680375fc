//! Log replication (§5.3): the leader's side (proposals, AppendEntries with
//! pipelining and flow control, commit by majority of the current term) and
//! the follower's side (consistency check, conflict truncation, fast backup).

use crate::message::{AppendEntries, AppendEntriesResponse, Entry, Message, Payload, Reject};
use crate::progress::Mode;
use crate::types::{LogIndex, NodeId};
use crate::{Action, Raft, Role};

impl Raft {
    /// Leader: heartbeats, lost-message recovery and the check-quorum sweep.
    pub(crate) fn tick_leader(&mut self) {
        self.expire_transfer();
        self.heartbeat_elapsed += 1;
        self.election_elapsed += 1;
        if self.election_elapsed >= self.config.election_ticks_min {
            self.election_elapsed = 0;
            if self.config.check_quorum && !self.quorum_recently_active() {
                tracing::debug!(node = %self.config.id, term = %self.term, "lost contact with a majority; stepping down");
                self.become_follower(self.term, None);
                return;
            }
        }
        if self.heartbeat_elapsed >= self.config.heartbeat_ticks {
            self.heartbeat_elapsed = 0;
            self.heartbeat();
        }
    }

    /// Whether a majority (this node included) answered since the last sweep;
    /// clears the marks for the next sweep.
    fn quorum_recently_active(&mut self) -> bool {
        let active = self.voters_where(|p| p.recently_active);
        for pr in self.progress.values_mut() {
            pr.recently_active = false;
        }
        active >= self.quorum()
    }

    /// One heartbeat round to every follower. A follower whose oldest
    /// in-flight message has gone unanswered for two heartbeat intervals is
    /// presumed to have lost it and is probed again.
    fn heartbeat(&mut self) {
        self.round += 1;
        let stale_after = 2 * self.config.heartbeat_ticks;
        for peer in self.peers.clone() {
            let now = self.ticks;
            let pr = self
                .progress
                .get_mut(&peer)
                .expect("leader tracks every peer");
            if pr.stalled(now, stale_after) {
                match pr.mode() {
                    // Retry the lost probe from the same point.
                    Mode::Probe => pr.become_probe(pr.next_index()),
                    Mode::Replicate => pr.become_probe(pr.match_index().next()),
                    Mode::Snapshot(_) => {
                        // Resend from the last acknowledged byte (or the
                        // latest snapshot from the start, if newer).
                        self.resume_snapshot(peer);
                        continue;
                    }
                }
            }
            if pr.can_send(self.config.max_inflight_messages) {
                self.send_append(peer);
            } else {
                self.send_heartbeat(peer);
            }
        }
    }

    /// Leader: append commands to the log and start replicating them.
    pub(crate) fn propose(&mut self, batch: Vec<Vec<u8>>) {
        if self.role != Role::Leader || self.transfer_target().is_some() {
            // While handing over, the leader takes nothing new: the
            // target is about to lead.
            let leader_hint = self.transfer_target().or(self.leader);
            self.out.push(Action::NotLeader { leader_hint });
            return;
        }
        if batch.is_empty() {
            return;
        }
        let mut new = Vec::with_capacity(batch.len());
        for data in batch {
            let entry = Entry {
                index: self.log.last_index().next(),
                term: self.term,
                payload: Payload::Command(data),
            };
            self.log.push(entry.clone());
            new.push(entry);
        }
        let indexes: Vec<LogIndex> = new.iter().map(|e| e.index).collect();
        self.out.push(Action::PersistEntries(new));
        for index in indexes {
            self.out.push(Action::Proposed {
                index,
                term: self.term,
            });
        }
        self.broadcast_append();
        self.maybe_commit();
    }

    /// Send new entries to every follower whose flow control allows it.
    fn broadcast_append(&mut self) {
        let last = self.log.last_index();
        for peer in self.peers.clone() {
            let pr = &self.progress[&peer];
            if pr.next_index() <= last && pr.can_send(self.config.max_inflight_messages) {
                self.send_append(peer);
            }
        }
    }

    /// Send the follower an AppendEntries from its next index (entries up to
    /// the per-message limits, possibly none), or the snapshot if that index
    /// is compacted away.
    pub(crate) fn send_append(&mut self, peer: NodeId) {
        let next = self.progress[&peer].next_index();
        if next <= self.log.snapshot_index() {
            self.send_snapshot(peer);
            return;
        }
        let prev = next.prev();
        let prev_term = self
            .log
            .term_at(prev)
            .expect("prev of next_index is at or after the snapshot");
        let entries = self.log.slice(
            next,
            self.config.max_entries_per_message,
            self.config.max_bytes_per_message,
        );
        let last = LogIndex(prev.0 + entries.len() as u64);
        let now = self.ticks;
        self.progress
            .get_mut(&peer)
            .expect("leader tracks every peer")
            .sent_append(last, now);
        let msg = AppendEntries {
            term: self.term,
            prev_log_index: prev,
            prev_log_term: prev_term,
            entries,
            leader_commit: self.commit,
            round: self.round,
        };
        self.send(peer, Message::AppendEntries(msg));
    }

    /// An empty AppendEntries anchored at the follower's known match point:
    /// it asserts leadership, carries the commit index and the current round,
    /// and never disturbs flow control.
    pub(crate) fn send_heartbeat(&mut self, peer: NodeId) {
        let matched = self.progress[&peer].match_index();
        let (prev, prev_term) = match self.log.term_at(matched) {
            Some(t) => (matched, t),
            None => (self.log.snapshot_index(), self.log.snapshot_term()),
        };
        let msg = AppendEntries {
            term: self.term,
            prev_log_index: prev,
            prev_log_term: prev_term,
            entries: Vec::new(),
            leader_commit: self.commit.min(prev),
            round: self.round,
        };
        self.send(peer, Message::AppendEntries(msg));
    }

    /// Leader side of an AppendEntries answer. Its term is ours: the term
    /// rules in `receive` dropped older answers and stepped down on newer ones.
    pub(crate) fn handle_append_response(&mut self, from: NodeId, m: AppendEntriesResponse) {
        if self.role != Role::Leader {
            return;
        }
        self.note_peer_alive(from, m.round);
        match m.reject {
            None => self.on_append_success(from, m.match_index),
            Some(r) => self.on_append_reject(from, r),
        }
    }

    /// Record that `peer` answered in this term, echoing `round`.
    pub(crate) fn note_peer_alive(&mut self, peer: NodeId, round: u64) {
        let pr = self
            .progress
            .get_mut(&peer)
            .expect("leader tracks every peer");
        pr.recently_active = true;
        if round > pr.acked_round && round <= self.round {
            pr.acked_round = round;
            self.release_ready_reads();
        }
    }

    fn on_append_success(&mut self, peer: NodeId, match_index: LogIndex) {
        if match_index > self.log.last_index() {
            tracing::debug!(node = %self.config.id, %peer, %match_index, "ignoring ack beyond our log");
            return;
        }
        let pr = self
            .progress
            .get_mut(&peer)
            .expect("leader tracks every peer");
        let news = pr.ack(match_index);
        match pr.mode() {
            // The probe point matched: stream from here on.
            Mode::Probe if match_index >= pr.next_index().prev() => pr.become_replicate(),
            // The follower holds the snapshot (and possibly more): its
            // position is known, so stream from just after its match point.
            Mode::Snapshot(index) if pr.match_index() >= index => pr.become_replicate(),
            _ => {}
        }
        if news {
            self.maybe_commit();
        }
        self.send_more(peer);
        if self.transfer_target() == Some(peer) {
            self.send_timeout_now_if_caught_up();
        }
    }

    fn on_append_reject(&mut self, peer: NodeId, reject: Reject) {
        let rejected = reject.prev_log_index;
        let hint = match reject.conflict_term {
            // Skip the follower's whole conflicting term if we have none of
            // it, or jump to the end of our run of that term if we do.
            Some(term) => self
                .log
                .last_index_of_term(term)
                .map_or(reject.conflict_index, |i| i.next()),
            None => reject.conflict_index,
        };
        let pr = self
            .progress
            .get_mut(&peer)
            .expect("leader tracks every peer");
        let current = match pr.mode() {
            Mode::Probe => rejected == pr.next_index().prev(),
            Mode::Replicate => rejected < pr.next_index(),
            Mode::Snapshot(_) => false,
        };
        // A refusal at or below the acknowledged match point is stale (or
        // contradicts the follower's own acknowledgement): retrying it at
        // once would only ping-pong the same probe at network speed.
        if !current || rejected <= pr.match_index() {
            return; // A refusal of something we already moved past.
        }
        // The follower does not match at `rejected`, so the next probe must
        // start at or before it (and `become_probe` keeps it above the match
        // point).
        pr.become_probe(hint.min(rejected));
        self.send_append(peer);
    }

    /// Keep a follower's pipeline full after an acknowledgement.
    pub(crate) fn send_more(&mut self, peer: NodeId) {
        let last = self.log.last_index();
        loop {
            let pr = &self.progress[&peer];
            if pr.next_index() > last || !pr.can_send(self.config.max_inflight_messages) {
                return;
            }
            self.send_append(peer);
            if self.progress[&peer].mode() != Mode::Replicate {
                return;
            }
        }
    }

    /// Advance the commit index to the highest index stored on a majority,
    /// but only through an entry of the current term (§5.4.2, Figure 8).
    pub(crate) fn maybe_commit(&mut self) {
        let m = self.membership();
        let mut matched: Vec<LogIndex> = self
            .progress
            .iter()
            .filter(|(id, _)| m.is_voter(**id))
            .map(|(_, p)| p.match_index())
            .collect();
        if m.is_voter(self.config.id) {
            matched.push(self.log.last_index());
        }
        matched.sort_unstable_by(|a, b| b.cmp(a));
        let Some(&candidate) = matched.get(self.quorum() - 1) else {
            return;
        };
        if candidate > self.commit && self.log.term_at(candidate) == Some(self.term) {
            self.commit = candidate;
            self.on_commit_in_term();
        }
    }

    /// Follower side of AppendEntries (Figure 2, receiver implementation).
    pub(crate) fn handle_append_entries(&mut self, from: NodeId, m: AppendEntries) {
        let term = m.term;
        if self.role == Role::Leader {
            tracing::warn!(node = %self.config.id, %from, %term, "AppendEntries from another leader of our term; dropped");
            return;
        }
        if self.role != Role::Follower {
            self.become_follower(term, Some(from));
        }
        self.leader = Some(from);
        self.reset_election_timer();
        if !well_formed(&m) {
            tracing::debug!(node = %self.config.id, %from, "malformed AppendEntries dropped");
            return;
        }
        let AppendEntries {
            term,
            prev_log_index,
            prev_log_term,
            entries,
            leader_commit,
            round,
        } = m;
        let reply = |match_index, reject| {
            Message::AppendEntriesResponse(AppendEntriesResponse {
                term,
                match_index,
                reject,
                round,
            })
        };
        let sent_through = LogIndex(prev_log_index.0 + entries.len() as u64);
        // Drop the part our snapshot already covers: it is committed, so it
        // matches the leader's log.
        let snap = self.log.snapshot_index();
        let (prev, prev_term, entries) = if prev_log_index < snap {
            if sent_through <= snap {
                self.send(from, reply(sent_through, None));
                return;
            }
            let skip = (snap.0 - prev_log_index.0) as usize;
            let skipped_term = entries[skip - 1].term;
            (snap, skipped_term, entries[skip..].to_vec())
        } else {
            (prev_log_index, prev_log_term, entries)
        };
        match self.log.term_at(prev) {
            Some(t) if t == prev_term => {}
            Some(t) if prev <= self.commit => {
                tracing::warn!(node = %self.config.id, %from, %prev, ours = %t, theirs = %prev_term, "leader disagrees with a committed entry; dropped");
                return;
            }
            found => {
                let reject = match found {
                    Some(t) => Reject {
                        prev_log_index,
                        conflict_term: Some(t),
                        conflict_index: self.log.first_index_of_term_at(prev),
                    },
                    None => Reject {
                        prev_log_index,
                        conflict_term: None,
                        conflict_index: self.log.last_index().next(),
                    },
                };
                self.send(from, reply(LogIndex(0), Some(reject)));
                return;
            }
        }
        if !self.store_entries(entries) {
            return;
        }
        if leader_commit > self.commit {
            // "Index of last new entry": only what this message vouched for.
            let new_commit = leader_commit.min(sent_through);
            if new_commit > self.commit {
                self.commit = new_commit;
            }
        }
        self.send(from, reply(sent_through, None));
    }

    /// Append the entries the log does not hold yet, truncating a conflicting
    /// suffix first. Returns false if that would rewrite a committed entry.
    fn store_entries(&mut self, entries: Vec<Entry>) -> bool {
        let mut first_new = entries.len();
        // Recomputing the peers allocates; only a membership entry
        // appended or overwritten calls for it, not every append.
        let memberships_before = self.membership_log.len();
        let mut membership_changed = false;
        for (i, e) in entries.iter().enumerate() {
            match self.log.term_at(e.index) {
                Some(t) if t == e.term => continue,
                Some(_) if e.index <= self.commit => {
                    tracing::warn!(node = %self.config.id, index = %e.index, "refusing to overwrite a committed entry");
                    return false;
                }
                Some(_) => {
                    self.log.truncate_from(e.index);
                    // Memberships in the overwritten suffix are undone.
                    self.membership_log.retain(|(at, _)| *at < e.index);
                    membership_changed = self.membership_log.len() != memberships_before;
                    first_new = i;
                    break;
                }
                None => {
                    first_new = i;
                    break;
                }
            }
        }
        if first_new < entries.len() {
            let new: Vec<Entry> = entries.into_iter().skip(first_new).collect();
            for e in &new {
                self.log.push(e.clone());
                if let Payload::Membership(m) = &e.payload {
                    self.membership_log.push((e.index, m.clone()));
                    membership_changed = true;
                }
            }
            self.out.push(Action::PersistEntries(new));
        }
        if membership_changed {
            self.refresh_membership();
        }
        true
    }

    /// Leader: append a single-server membership change, if allowed.
    pub(crate) fn change_membership(&mut self, change: crate::MembershipChange) {
        if self.role != Role::Leader || self.transfer_target().is_some() {
            let leader_hint = self.transfer_target().or(self.leader);
            self.out.push(Action::NotLeader { leader_hint });
            return;
        }
        let refused = |r| Action::MembershipRefused(r);
        if let Some((at, _)) = self.membership_log.last() {
            if *at > self.commit {
                self.out
                    .push(refused(crate::ChangeRefused::ChangeInProgress(*at)));
                return;
            }
        }
        if self.log.term_at(self.commit) != Some(self.term) {
            self.out
                .push(refused(crate::ChangeRefused::TermNotCommitted));
            return;
        }
        let next = match self.membership().changed(change) {
            Ok(next) => next,
            Err(e) => {
                self.out.push(refused(e));
                return;
            }
        };
        let entry = Entry {
            index: self.log.last_index().next(),
            term: self.term,
            payload: Payload::Membership(next.clone()),
        };
        let index = entry.index;
        self.log.push(entry.clone());
        self.membership_log.push((index, next));
        self.refresh_membership();
        self.out.push(Action::PersistEntries(vec![entry]));
        self.out.push(Action::Proposed {
            index,
            term: self.term,
        });
        self.broadcast_append();
        self.maybe_commit();
    }
}

/// Structural checks on an AppendEntries, so forged or corrupted messages
/// cannot break the log's invariants: consecutive indexes after
/// `prev_log_index`, terms non-decreasing from `prev_log_term` and never above
/// the leader's term.
fn well_formed(m: &AppendEntries) -> bool {
    let term = m.term;
    if m.prev_log_term > term {
        return false;
    }
    let mut expected = m.prev_log_index.0;
    let mut last_term = m.prev_log_term;
    for e in &m.entries {
        expected = match expected.checked_add(1) {
            Some(i) => i,
            None => return false,
        };
        if e.index.0 != expected || e.term < last_term || e.term > term {
            return false;
        }
        last_term = e.term;
    }
    true
}
