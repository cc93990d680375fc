//! The machine's one entry point takes an [`Input`] and returns the
//! [`Action`]s the caller must carry out, in order.

use crate::message::{Entry, HardState, Message, Snapshot};
use crate::types::{LogIndex, NodeId, Term};

/// Everything that can happen to a Raft node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// One logical clock tick. Drivers fire it at a fixed interval; every
    /// timeout in [`crate::Config`] is a number of ticks.
    Tick,
    /// A message from a peer, already decoded. Messages from unknown nodes are
    /// dropped.
    Receive {
        /// The sender.
        from: NodeId,
        /// The message.
        msg: Message,
    },
    /// Append one application command to the log (only a leader accepts).
    /// Answered by [`Action::Proposed`] or [`Action::NotLeader`].
    Propose(Vec<u8>),
    /// Append several commands at once; they travel in as few messages as the
    /// per-message limits allow. Answered by one [`Action::Proposed`] per
    /// command, or a single [`Action::NotLeader`].
    ProposeBatch(Vec<Vec<u8>>),
    /// Ask for a linearizable read point without writing the log (ReadIndex,
    /// thesis §6.4). `id` is the caller's handle. Answered later by
    /// [`Action::ReadReady`] or [`Action::ReadFailed`].
    ReadIndex {
        /// Caller-chosen handle echoed in the answer.
        id: u64,
    },
    /// The application has captured its state through `index` (which it has
    /// applied); the log prefix through `index` may be discarded (§7).
    Snapshot {
        /// Last applied index the snapshot covers.
        index: LogIndex,
        /// The application's serialized state.
        data: Vec<u8>,
    },
    /// The application keeps its state through `index` durably itself (a
    /// state machine on disk that commits its applied index with its
    /// data): discard the log through `index` without a copy of the state
    /// ([`Snapshot::external`]). Cheap whatever the state's size; a leader
    /// that later must send a follower a snapshot asks for a copy with
    /// [`Action::SnapshotWanted`].
    Compact {
        /// Index through which the application's durable state reaches.
        index: LogIndex,
    },
    /// Leader only: append a single-server membership change. Answered by
    /// [`Action::Proposed`] (it is in effect at once and done when
    /// applied, like a command), [`Action::NotLeader`], or
    /// [`Action::MembershipRefused`].
    ChangeMembership(crate::MembershipChange),
    /// Leader only: hand leadership to voter `to` (thesis §3.10). The leader
    /// stops accepting proposals (answering `NotLeader` with `to` as the
    /// hint), brings `to` up to date, and tells it to campaign at once. If
    /// `to` has not taken over within `election_ticks_max` ticks, the
    /// leader gives up and serves again. Answered by nothing on success (the
    /// role change shows), [`Action::NotLeader`], or
    /// [`Action::TransferRefused`].
    TransferLeadership {
        /// The voter to hand leadership to.
        to: NodeId,
    },
}

/// A side effect the caller must perform. Actions are ordered: execute them in
/// the order returned, and finish all of them before the next `step`.
///
/// The one ordering rule that matters for safety: **every `Persist*` action is
/// durable before any later `Send` leaves the node and before any later
/// `Proposed`, `Apply*` or `ReadReady` is acted upon.** A driver may merge
/// consecutive persists into one fsync (group commit) as long as that holds.
/// The core never emits a `Send` that depends on state it has not yet asked to
/// persist earlier in the same or an earlier returned list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Durably record the term / vote (and a commit lower bound).
    PersistHardState(HardState),
    /// Durably append `entries` to the log. Any stored entries with index
    /// greater than or equal to the first new entry's index are discarded first
    /// (a follower overwriting a conflicting suffix). `entries` is never empty
    /// and its indexes are consecutive.
    PersistEntries(Vec<Entry>),
    /// Durably store `snapshot`, replacing any older one, and discard stored log
    /// entries up to and including `snapshot.index`. If `discard_log` is true,
    /// discard *all* stored entries: they conflict with the snapshot (an
    /// InstallSnapshot from the leader whose last entry this log does not hold).
    PersistSnapshot {
        /// The new snapshot.
        snapshot: Snapshot,
        /// Drop the whole stored log, not only the covered prefix.
        discard_log: bool,
    },
    /// Send a message to a peer. Delivery is best effort; Raft retries.
    Send {
        /// The recipient.
        to: NodeId,
        /// The message.
        msg: Message,
    },
    /// A proposal was appended at `index` in `term`. It is committed if and
    /// when an [`Action::Apply`] with that index *and term* appears; a
    /// different term at that index means the proposal was lost.
    Proposed {
        /// Where the command landed.
        index: LogIndex,
        /// The leader's term.
        term: Term,
    },
    /// This node is not the leader; `leader_hint` is who it believes leads.
    NotLeader {
        /// The believed leader, if known.
        leader_hint: Option<NodeId>,
    },
    /// Committed entries to apply to the state machine, strictly in index
    /// order, each exactly once per incarnation of the node.
    Apply(Vec<Entry>),
    /// Replace the application state with this snapshot (received from the
    /// leader). Entries after `snapshot.index` follow in later `Apply`s.
    ApplySnapshot(Snapshot),
    /// A leader must send a follower a snapshot, but its latest one is
    /// external (it holds no copy of the state). Capture the state at the
    /// applied index (at least `index`) and hand it in with
    /// [`Input::Snapshot`]; the follower waits until then. Asked once until
    /// a snapshot arrives.
    SnapshotWanted {
        /// The latest snapshot's index: the copy must cover at least this.
        index: LogIndex,
    },
    /// A [`Input::ReadIndex`] is safe to serve once the application has
    /// applied through `index`.
    ReadReady {
        /// The caller's handle.
        id: u64,
        /// Read point: serve the read after applying through this index.
        index: LogIndex,
    },
    /// A [`Input::ChangeMembership`] was refused; nothing changed.
    MembershipRefused(crate::ChangeRefused),
    /// A [`Input::TransferLeadership`] was refused; nothing changed.
    TransferRefused(crate::TransferRefused),
    /// A [`Input::ReadIndex`] cannot be served here (not leader, or leadership
    /// was lost before it was confirmed). Retry at `leader_hint`.
    ReadFailed {
        /// The caller's handle.
        id: u64,
        /// The believed leader, if known.
        leader_hint: Option<NodeId>,
    },
}

impl Action {
    /// True for the actions a storage makes durable: `PersistHardState`,
    /// `PersistEntries` and `PersistSnapshot`.
    pub fn is_persist(&self) -> bool {
        matches!(
            self,
            Action::PersistHardState(_)
                | Action::PersistEntries(_)
                | Action::PersistSnapshot { .. }
        )
    }

    /// Whether this action must wait until every persist returned before it
    /// in the same or an earlier step is durable (the ordering rule on
    /// [`Action`]). True for every action today. The design contract allows
    /// two exceptions, which the core will mark here when it implements
    /// them: a leader's AppendEntries sent while its own append of the same
    /// entries is in flight (it then counts itself toward a commit only once
    /// that persist is done, Raft thesis §10.2.1), and the answer to a read
    /// whose read index is already applied. Drivers ask; they never guess.
    pub fn waits_for_persists(&self) -> bool {
        true
    }
}
