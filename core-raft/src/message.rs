//! What Raft nodes say to each other, and the log and snapshot records they
//! carry. All of it is plain data: drivers encode it (postcard) and the
//! simulator copies it; nothing here refers to a socket or a clock.

use crate::types::{LogIndex, NodeId, Term};
use serde::{Deserialize, Serialize};

/// What a log entry carries.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Payload {
    /// An empty entry a new leader appends so that it can commit entries of
    /// earlier terms and serve reads (thesis §6.4). The application skips it
    /// but must still count its index as applied.
    Noop,
    /// An opaque application command.
    Command(Vec<u8>),
}

/// One replicated log entry.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Entry {
    /// Position in the log.
    pub index: LogIndex,
    /// Term of the leader that created the entry.
    pub term: Term,
    /// What the entry carries.
    pub payload: Payload,
}

impl Entry {
    /// Approximate encoded size, used for the per-message byte budget.
    pub fn size_bytes(&self) -> usize {
        let body = match &self.payload {
            Payload::Noop => 0,
            Payload::Command(data) => data.len(),
        };
        body + 24
    }
}

/// A snapshot of the application state covering the log through `index`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Snapshot {
    /// Last log index the snapshot covers.
    pub index: LogIndex,
    /// Term of the entry at `index`.
    pub term: Term,
    /// The application's serialized state.
    pub data: Vec<u8>,
}

/// The durable scalar state of a node (Figure 2, "persistent state").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct HardState {
    /// Latest term this node has seen.
    pub term: Term,
    /// Candidate voted for in `term`, if any.
    pub vote: Option<NodeId>,
    /// A lower bound on the commit index, refreshed whenever term or vote is
    /// written. Raft does not need it for safety; a restarted node uses it to
    /// apply known-committed entries without waiting for a leader.
    pub commit: LogIndex,
}

/// A message between two Raft nodes. Every message carries the sender's term;
/// responses are matched to requests by content, never by connection, so any
/// message may be lost, duplicated or reordered.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Message {
    /// Ask for a vote (§5.2). With `pre_vote` set, this is a pre-vote probe
    /// (thesis §9.6): `term` is the term the candidate *would* use, and
    /// granting it changes nothing on the voter.
    RequestVote {
        /// Candidate's (prospective) term.
        term: Term,
        /// Index of the candidate's last log entry.
        last_log_index: LogIndex,
        /// Term of the candidate's last log entry.
        last_log_term: Term,
        /// True for a pre-vote probe.
        pre_vote: bool,
    },
    /// Answer to [`Message::RequestVote`].
    RequestVoteResponse {
        /// For a real vote, the voter's current term; for a pre-vote, the
        /// term the probe asked about when granted, the voter's term otherwise.
        term: Term,
        /// Whether the vote (or pre-vote) was granted.
        granted: bool,
        /// Echoes the request's `pre_vote`.
        pre_vote: bool,
    },
    /// Replicate entries and/or assert leadership (§5.3). An empty `entries`
    /// is a heartbeat.
    AppendEntries {
        /// Leader's term.
        term: Term,
        /// Index of the entry immediately preceding `entries`.
        prev_log_index: LogIndex,
        /// Term of that entry.
        prev_log_term: Term,
        /// Entries to store (possibly none).
        entries: Vec<Entry>,
        /// Leader's commit index.
        leader_commit: LogIndex,
        /// The leader's heartbeat round; echoed in the response so the leader
        /// knows which rounds a majority has acknowledged (ReadIndex, check-quorum).
        round: u64,
    },
    /// Answer to [`Message::AppendEntries`].
    AppendEntriesResponse {
        /// Follower's current term.
        term: Term,
        /// On success: the index of the last entry now known to match the
        /// leader's log. On failure: unused (zero).
        match_index: LogIndex,
        /// On failure: where the leader should retry (see `conflict_term`).
        reject: Option<Reject>,
        /// Echo of the request's `round`.
        round: u64,
    },
    /// Send a whole snapshot to a follower whose next entry is compacted away (§7).
    InstallSnapshot {
        /// Leader's term.
        term: Term,
        /// The snapshot.
        snapshot: Snapshot,
        /// Leader's heartbeat round (as in AppendEntries).
        round: u64,
    },
    /// Answer to [`Message::InstallSnapshot`].
    InstallSnapshotResponse {
        /// Follower's current term.
        term: Term,
        /// The last index the follower now holds (at least the snapshot's index
        /// when it was accepted).
        match_index: LogIndex,
        /// Echo of the request's `round`.
        round: u64,
    },
}

/// Why a follower refused an AppendEntries, with what the leader needs to
/// skip a whole conflicting term in one round trip (the "fast backup" of the
/// 6.824 lab and the Raft paper's §5.3 note).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Reject {
    /// The `prev_log_index` of the refused request, so the leader can tell a
    /// refusal of its current probe from a stale one.
    pub prev_log_index: LogIndex,
    /// Term of the follower's entry at `prev_log_index`, if it has one.
    pub conflict_term: Option<Term>,
    /// If `conflict_term` is set: the first index the follower holds with
    /// that term. Otherwise: one past the follower's last index.
    pub conflict_index: LogIndex,
}

impl Message {
    /// The sender's term, carried by every message.
    pub fn term(&self) -> Term {
        match self {
            Message::RequestVote { term, .. }
            | Message::RequestVoteResponse { term, .. }
            | Message::AppendEntries { term, .. }
            | Message::AppendEntriesResponse { term, .. }
            | Message::InstallSnapshot { term, .. }
            | Message::InstallSnapshotResponse { term, .. } => *term,
        }
    }

    /// True for requests (the messages that would be RPC calls in the lab);
    /// false for responses. The simulator counts RPCs with it.
    pub fn is_request(&self) -> bool {
        matches!(
            self,
            Message::RequestVote { .. }
                | Message::AppendEntries { .. }
                | Message::InstallSnapshot { .. }
        )
    }
}
