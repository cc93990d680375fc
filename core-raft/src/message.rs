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
    /// The cluster's new membership (one single-server change from the one
    /// before). In effect on every node as soon as it is appended. The
    /// application skips it but must still count its index as applied.
    Membership(crate::Membership),
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
            Payload::Membership(m) => {
                8 * (m.voters.len() + m.learners.len() + m.retired.len())
                    + m.members.values().map(|i| 16 + i.addr.len()).sum::<usize>()
            }
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
    /// The membership in effect at `index`.
    pub membership: crate::Membership,
    /// The application's serialized state (empty when `external`).
    pub data: Vec<u8>,
    /// The application keeps the state through `index` itself (a state
    /// machine on disk that commits its applied index with its data), so
    /// this snapshot holds no copy: `data` is empty. Such a snapshot only
    /// compacts the log ([`crate::Input::Compact`]); it is never sent, and
    /// a restart does not restore from it. A leader that must bring a
    /// follower up to date asks the application for a copy
    /// ([`crate::Action::SnapshotWanted`]).
    #[serde(default)]
    pub external: bool,
}

impl Snapshot {
    /// A snapshot of the state through `index` with its bytes.
    pub fn new(
        index: crate::LogIndex,
        term: crate::Term,
        membership: crate::Membership,
        data: Vec<u8>,
    ) -> Snapshot {
        Snapshot {
            index,
            term,
            membership,
            data,
            external: false,
        }
    }
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
///
/// Each variant wraps a struct of the same name, so a handler takes the whole
/// message as one value. postcard encodes a newtype variant around a struct
/// exactly like a struct variant with the same fields, so this shape has the
/// same wire and disk bytes as the struct-variant enum it replaced (a unit
/// test below holds it to that).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Message {
    /// Ask for a vote (§5.2), or probe with a pre-vote (thesis §9.6).
    RequestVote(RequestVote),
    /// Answer to [`Message::RequestVote`].
    RequestVoteResponse(RequestVoteResponse),
    /// Replicate entries and/or assert leadership (§5.3).
    AppendEntries(AppendEntries),
    /// Answer to [`Message::AppendEntries`].
    AppendEntriesResponse(AppendEntriesResponse),
    /// Send a whole snapshot to a follower whose next entry is compacted away (§7).
    InstallSnapshot(InstallSnapshot),
    /// Answer to [`Message::InstallSnapshot`].
    InstallSnapshotResponse(InstallSnapshotResponse),
    /// Leadership transfer (thesis §3.10): the leader tells an up-to-date
    /// voter to campaign at once.
    TimeoutNow(TimeoutNow),
}

/// Campaign now, without waiting for an election timeout or a pre-vote:
/// the leader of `term` hands its leadership over.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TimeoutNow {
    /// The leader's term.
    pub term: Term,
}

/// Ask for a vote (§5.2). With `pre_vote` set, this is a pre-vote probe
/// (thesis §9.6): `term` is the term the candidate *would* use, and
/// granting it changes nothing on the voter.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RequestVote {
    /// Candidate's (prospective) term.
    pub term: Term,
    /// Index of the candidate's last log entry.
    pub last_log_index: LogIndex,
    /// Term of the candidate's last log entry.
    pub last_log_term: Term,
    /// True for a pre-vote probe.
    pub pre_vote: bool,
    /// True when the leader asked for this election (leadership transfer):
    /// voters then ignore their leader lease.
    pub transfer: bool,
}

/// Answer to [`Message::RequestVote`].
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RequestVoteResponse {
    /// For a real vote, the voter's current term; for a pre-vote, the
    /// term the probe asked about when granted, the voter's term otherwise.
    pub term: Term,
    /// Whether the vote (or pre-vote) was granted.
    pub granted: bool,
    /// Echoes the request's `pre_vote`.
    pub pre_vote: bool,
}

/// Replicate entries and/or assert leadership (§5.3). An empty `entries`
/// is a heartbeat.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AppendEntries {
    /// Leader's term.
    pub term: Term,
    /// Index of the entry immediately preceding `entries`.
    pub prev_log_index: LogIndex,
    /// Term of that entry.
    pub prev_log_term: Term,
    /// Entries to store (possibly none).
    pub entries: Vec<Entry>,
    /// Leader's commit index.
    pub leader_commit: LogIndex,
    /// The leader's heartbeat round; echoed in the response so the leader
    /// knows which rounds a majority has acknowledged (ReadIndex, check-quorum).
    pub round: u64,
}

/// Answer to [`Message::AppendEntries`].
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AppendEntriesResponse {
    /// Follower's current term.
    pub term: Term,
    /// On success: the index of the last entry now known to match the
    /// leader's log. On failure: unused (zero).
    pub match_index: LogIndex,
    /// On failure: where the leader should retry (see `conflict_term`).
    pub reject: Option<Reject>,
    /// Echo of the request's `round`.
    pub round: u64,
}

/// One chunk of the leader's latest snapshot, for a follower whose next
/// entry is compacted away (§7, with the paper's `offset`/`data`/`done`).
///
/// A snapshot travels in chunks so that no frame holds a whole state: the
/// leader keeps a bounded window of chunks in flight and the follower
/// assembles them in order. A transfer is named by the leader's `term` and
/// the snapshot's `index`: within one term only one leader exists, and it
/// never changes the bytes of its snapshot at an index, so chunks of one
/// name always fit together. `snapshot_term`, `membership` and `total_len`
/// repeat in every chunk, so any chunk is understood on its own.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct InstallSnapshot {
    /// Leader's term.
    pub term: Term,
    /// Last log index the snapshot covers.
    pub index: LogIndex,
    /// Term of the entry at `index`.
    pub snapshot_term: Term,
    /// The membership in effect at `index`.
    pub membership: crate::Membership,
    /// Size of the whole snapshot's data, in bytes.
    pub total_len: u64,
    /// Where `data` starts in the snapshot's data.
    pub offset: u64,
    /// The chunk's bytes; the last chunk ends at `total_len`.
    pub data: Vec<u8>,
    /// Leader's heartbeat round (as in AppendEntries).
    pub round: u64,
}

impl InstallSnapshot {
    /// `snapshot` whole, in one chunk (for tests and hand-made scenarios;
    /// a leader sends chunks of `Config::snapshot_chunk_bytes`).
    pub fn whole(term: Term, snapshot: &Snapshot, round: u64) -> InstallSnapshot {
        InstallSnapshot {
            term,
            index: snapshot.index,
            snapshot_term: snapshot.term,
            membership: snapshot.membership.clone(),
            total_len: snapshot.data.len() as u64,
            offset: 0,
            data: snapshot.data.clone(),
            round,
        }
    }

    /// True for the chunk that completes the snapshot.
    pub fn is_last(&self) -> bool {
        self.offset.saturating_add(self.data.len() as u64) == self.total_len
    }
}

/// Answer to [`Message::InstallSnapshot`]: either the follower holds the
/// whole snapshot (`match_index` > 0), or how far it has assembled it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct InstallSnapshotResponse {
    /// Follower's current term.
    pub term: Term,
    /// The last index the follower now holds, once it holds the whole
    /// snapshot (at least the snapshot's index); 0 while the transfer is
    /// under way or when the chunk was refused.
    pub match_index: LogIndex,
    /// The snapshot the answered chunk belongs to.
    pub index: LogIndex,
    /// The offset of the answered chunk.
    pub offset: u64,
    /// How many bytes of that snapshot the follower has assembled in order:
    /// the offset it wants next. Below `offset`, it missed a chunk.
    pub received: u64,
    /// Echo of the request's `round`.
    pub round: u64,
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
            Message::RequestVote(m) => m.term,
            Message::RequestVoteResponse(m) => m.term,
            Message::AppendEntries(m) => m.term,
            Message::AppendEntriesResponse(m) => m.term,
            Message::InstallSnapshot(m) => m.term,
            Message::InstallSnapshotResponse(m) => m.term,
            Message::TimeoutNow(m) => m.term,
        }
    }

    /// True for requests (the messages that would be RPC calls in the lab);
    /// false for responses. The simulator counts RPCs with it.
    pub fn is_request(&self) -> bool {
        matches!(
            self,
            Message::RequestVote(_)
                | Message::AppendEntries(_)
                | Message::InstallSnapshot(_)
                | Message::TimeoutNow(_)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The wire shape of `Message` (key/value protocol version 5),
    /// written out by hand as plain struct variants: a change to the
    /// message types that changes the bytes on the wire fails here, and
    /// must come with a protocol version bump. (Version 4 sent a snapshot
    /// whole in one InstallSnapshot; version 2 had no `transfer` flag and
    /// no `TimeoutNow`, and its snapshots carried no membership.)
    #[derive(Serialize, Deserialize)]
    enum OldMessage {
        RequestVote {
            term: Term,
            last_log_index: LogIndex,
            last_log_term: Term,
            pre_vote: bool,
            transfer: bool,
        },
        RequestVoteResponse {
            term: Term,
            granted: bool,
            pre_vote: bool,
        },
        AppendEntries {
            term: Term,
            prev_log_index: LogIndex,
            prev_log_term: Term,
            entries: Vec<Entry>,
            leader_commit: LogIndex,
            round: u64,
        },
        AppendEntriesResponse {
            term: Term,
            match_index: LogIndex,
            reject: Option<Reject>,
            round: u64,
        },
        InstallSnapshot {
            term: Term,
            index: LogIndex,
            snapshot_term: Term,
            membership: crate::Membership,
            total_len: u64,
            offset: u64,
            data: Vec<u8>,
            round: u64,
        },
        InstallSnapshotResponse {
            term: Term,
            match_index: LogIndex,
            index: LogIndex,
            offset: u64,
            received: u64,
            round: u64,
        },
        TimeoutNow {
            term: Term,
        },
    }

    fn entries() -> Vec<Entry> {
        vec![
            Entry {
                index: LogIndex(6),
                term: Term(2),
                payload: Payload::Noop,
            },
            Entry {
                index: LogIndex(7),
                term: Term(3),
                payload: Payload::Command(vec![1, 2, 3, 200]),
            },
        ]
    }

    fn reject() -> Reject {
        Reject {
            prev_log_index: LogIndex(1 << 40),
            conflict_term: Some(Term(2)),
            conflict_index: LogIndex(129),
        }
    }

    /// Every variant, in the new shape and in the old one, with the same
    /// field values (large ones too, so varint lengths are exercised).
    fn pairs() -> Vec<(Message, OldMessage)> {
        vec![
            (
                Message::RequestVote(RequestVote {
                    term: Term(4),
                    last_log_index: LogIndex(9),
                    last_log_term: Term(3),
                    pre_vote: true,
                    transfer: false,
                }),
                OldMessage::RequestVote {
                    term: Term(4),
                    last_log_index: LogIndex(9),
                    last_log_term: Term(3),
                    pre_vote: true,
                    transfer: false,
                },
            ),
            (
                Message::RequestVoteResponse(RequestVoteResponse {
                    term: Term(u64::MAX - 1),
                    granted: true,
                    pre_vote: false,
                }),
                OldMessage::RequestVoteResponse {
                    term: Term(u64::MAX - 1),
                    granted: true,
                    pre_vote: false,
                },
            ),
            (
                Message::AppendEntries(AppendEntries {
                    term: Term(3),
                    prev_log_index: LogIndex(5),
                    prev_log_term: Term(2),
                    entries: entries(),
                    leader_commit: LogIndex(5),
                    round: 700,
                }),
                OldMessage::AppendEntries {
                    term: Term(3),
                    prev_log_index: LogIndex(5),
                    prev_log_term: Term(2),
                    entries: entries(),
                    leader_commit: LogIndex(5),
                    round: 700,
                },
            ),
            (
                Message::AppendEntriesResponse(AppendEntriesResponse {
                    term: Term(3),
                    match_index: LogIndex(0),
                    reject: Some(reject()),
                    round: 7,
                }),
                OldMessage::AppendEntriesResponse {
                    term: Term(3),
                    match_index: LogIndex(0),
                    reject: Some(reject()),
                    round: 7,
                },
            ),
            (
                Message::AppendEntriesResponse(AppendEntriesResponse {
                    term: Term(3),
                    match_index: LogIndex(8),
                    reject: None,
                    round: 7,
                }),
                OldMessage::AppendEntriesResponse {
                    term: Term(3),
                    match_index: LogIndex(8),
                    reject: None,
                    round: 7,
                },
            ),
            (
                Message::InstallSnapshot(InstallSnapshot {
                    term: Term(5),
                    index: LogIndex(300),
                    snapshot_term: Term(4),
                    membership: crate::Membership::with_voters([NodeId(1), NodeId(2)]),
                    total_len: 1 << 33,
                    offset: 1 << 32,
                    data: vec![9; 130],
                    round: 1 << 20,
                }),
                OldMessage::InstallSnapshot {
                    term: Term(5),
                    index: LogIndex(300),
                    snapshot_term: Term(4),
                    membership: crate::Membership::with_voters([NodeId(1), NodeId(2)]),
                    total_len: 1 << 33,
                    offset: 1 << 32,
                    data: vec![9; 130],
                    round: 1 << 20,
                },
            ),
            (
                Message::InstallSnapshotResponse(InstallSnapshotResponse {
                    term: Term(5),
                    match_index: LogIndex(300),
                    index: LogIndex(300),
                    offset: 1 << 32,
                    received: 1 << 33,
                    round: 3,
                }),
                OldMessage::InstallSnapshotResponse {
                    term: Term(5),
                    match_index: LogIndex(300),
                    index: LogIndex(300),
                    offset: 1 << 32,
                    received: 1 << 33,
                    round: 3,
                },
            ),
            (
                Message::TimeoutNow(TimeoutNow { term: Term(9) }),
                OldMessage::TimeoutNow { term: Term(9) },
            ),
        ]
    }

    #[test]
    fn wire_bytes_match_the_struct_variant_shape() {
        let pairs = pairs();
        // One of each variant, so a variant added later must be added here.
        let mut seen: Vec<std::mem::Discriminant<Message>> = pairs
            .iter()
            .map(|(m, _)| std::mem::discriminant(m))
            .collect();
        seen.dedup();
        assert_eq!(seen.len(), 7);
        for (new, old) in pairs {
            let new_bytes = postcard::to_allocvec(&new).unwrap();
            let old_bytes = postcard::to_allocvec(&old).unwrap();
            assert_eq!(new_bytes, old_bytes, "{new:?} encodes differently");
            // And bytes of that shape decode to the same message.
            let decoded: Message = postcard::from_bytes(&old_bytes).unwrap();
            assert_eq!(decoded, new);
        }
    }
}
