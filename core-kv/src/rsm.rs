//! A replicated state machine on `core-raft` (lab 4A's RSM layer): submit an
//! operation, get its output once it is committed and applied in log order.
//! Any deterministic [`StateMachine`] can be replicated this way; the
//! key/value store is one.
//!
//! A submission waits on the (index, term) its proposal landed at. By log
//! matching, an entry applied at that index *with that term* is exactly the
//! one proposed, so the waiter is answered with its output; any other entry
//! there means leadership was lost and the waiter is told to retry. Waiters
//! are not failed merely because the node stepped down: the entry may still
//! commit under the next leader.

use core_raft::{
    Action, ChangeRefused, Config, Durable, Entry, Input, LogIndex, Message, NodeId, Payload, Raft,
    RestoreError, Snapshot, Term,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A deterministic state machine to replicate: the one interface between
/// the replication layer ([`Rsm`], and the node shells and drivers on top
/// of it) and an application. The key/value store is one implementation;
/// [`crate::Sessioned`] makes any of them exactly-once.
///
/// Decisions that later work builds on (see ARCHITECTURE.md):
///
/// * `apply` is told the log index of the entry it applies, so a machine
///   that keeps its state on disk can commit its data and its applied index
///   together, and report that index through [`StateMachine::applied_index`]
///   after a restart instead of being handed those entries again.
/// * Operations and outputs are serde types: they travel in the log and,
///   through the node shells, over the wire between clients and replicas.
/// * A snapshot is produced as an owned reader and installed from a reader,
///   so it can be written and read in chunks, away from the event loop,
///   without ever holding a second copy of a large state in one buffer.
///   Raft carries the snapshot's bytes; the cluster configuration travels
///   beside them in Raft's own snapshot record, not inside the machine's.
pub trait StateMachine {
    /// An operation, as stored in the log and sent by clients.
    type Op: Serialize + DeserializeOwned + Clone;
    /// What applying (or querying) an operation returns to its client.
    type Output: Serialize + DeserializeOwned + Clone;
    /// A capture of the state for a snapshot: an owned reader (for example a
    /// `Cursor<Vec<u8>>` over the encoded state, or a read view of a
    /// database), which may be drained on another thread.
    type Snapshot: std::io::Read + Send + 'static;

    /// Apply the committed operation at log position `index`. Must be
    /// deterministic: every replica applies the same operations in the same
    /// order and must reach the same state and outputs.
    fn apply(&mut self, index: LogIndex, op: &Self::Op) -> Self::Output;

    /// True if `op` only reads: it may then be answered through ReadIndex
    /// without writing the log, by [`StateMachine::query`].
    fn is_read_only(&self, _op: &Self::Op) -> bool {
        false
    }

    /// Answer a read-only operation from the current state.
    fn query(&self, op: &Self::Op) -> Self::Output;

    /// True for a machine that keeps its state durably itself, committed
    /// together with its [`StateMachine::applied_index`] (a database on
    /// disk). The replica then compacts the log up to that index without a
    /// copy of the state (`core_raft::Input::Compact`), captures the state
    /// only when a lagging follower needs it, and on a restart trusts the
    /// machine's own state rather than restoring it. False (the default)
    /// for machines rebuilt from the snapshot and the log.
    const DURABLE: bool = false;

    /// The index through which this state has applied the log, for a
    /// machine that keeps its state durably (committed together with the
    /// index). The replica then skips entries at or below it after a
    /// restart. In-memory machines, rebuilt from the snapshot and the log,
    /// return `None` (the default).
    fn applied_index(&self) -> Option<LogIndex> {
        None
    }

    /// A [`StateMachine::DURABLE`] machine: make every apply so far durable
    /// now, and return the durable applied index. The replica calls it
    /// when the log has grown past its limit and the durable index has not
    /// moved since the last compaction. The default returns
    /// [`StateMachine::applied_index`].
    fn make_durable(&mut self) -> Option<LogIndex> {
        self.applied_index()
    }

    /// The replica has applied a run of committed entries (one or more
    /// [`StateMachine::apply`] calls) and will answer from the state next:
    /// a machine that keeps its state on disk may commit them together
    /// here, in one transaction rather than one per entry (or keep the
    /// transaction open for more, as long as [`StateMachine::query`] sees
    /// it). Before a capture ([`StateMachine::snapshot`]) of a
    /// [`StateMachine::DURABLE`] machine the replica calls
    /// [`StateMachine::make_durable`]. The default does nothing.
    fn applied_batch(&mut self) {}

    /// Where the state lives and how large it is, for an operator's status
    /// display (for example `disk (redb), 1.2 GiB at DIR/state.redb`).
    /// `None` (the default): in memory, size unknown.
    fn storage_summary(&self) -> Option<String> {
        None
    }

    /// Capture the whole state as of the last applied operation.
    fn snapshot(&self) -> Self::Snapshot;

    /// Replace the state with the one a snapshot holds. An error means the
    /// snapshot is corrupt; the replica then refuses to start or to install
    /// it.
    fn restore(&mut self, snapshot: &mut dyn std::io::Read) -> Result<(), String>;

    /// [`StateMachine::restore`] from a snapshot of the log through
    /// `index`: what the replica calls. A machine that keeps its state
    /// durably records `index` as its [`StateMachine::applied_index`],
    /// committed together with the restored state (without the index it
    /// could not tell after a restart which entries the snapshot holds).
    /// The default forgets the index and calls `restore`.
    fn restore_at(
        &mut self,
        index: LogIndex,
        snapshot: &mut dyn std::io::Read,
    ) -> Result<(), String> {
        let _ = index;
        self.restore(snapshot)
    }
}

/// Settings of one replica.
#[derive(Clone, Debug)]
pub struct RsmConfig {
    /// The Raft node's configuration.
    pub raft: Config,
    /// Snapshot once the un-compacted log exceeds this many bytes (`None`:
    /// never; the lab's `maxraftstate = -1`), scaled as `snapshot_rule`
    /// says.
    pub max_raft_state: Option<usize>,
    /// When a snapshot is due.
    pub snapshot_rule: SnapshotRule,
    /// Serve read-only operations with ReadIndex instead of through the log.
    pub read_index: bool,
    /// Echo every `Apply` / `ApplySnapshot` the replica carries out as
    /// [`RsmAction::Observed`], for invariant checkers. Drivers leave it off.
    pub observe_applies: bool,
    /// Hand snapshot captures to the driver ([`RsmAction::Capture`]) to be
    /// encoded off the event loop, instead of encoding them inside `step`.
    /// Worth it when [`StateMachine::snapshot`] is cheap and its reader
    /// does the work (the key/value store's is: a copy-on-write clone).
    pub capture_off_loop: bool,
}

impl RsmConfig {
    /// Defaults for a service: no snapshots, ReadIndex reads, no observation.
    pub fn new(raft: Config) -> Self {
        RsmConfig {
            raft,
            max_raft_state: None,
            snapshot_rule: SnapshotRule::Fixed,
            read_index: true,
            observe_applies: false,
            capture_off_loop: false,
        }
    }
}

/// When a replica compacts its log into a snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SnapshotRule {
    /// Once the log holds `max_raft_state` bytes: the lab's rule, which its
    /// tests' size bounds depend on. Each snapshot writes the whole state,
    /// so with a state much larger than `max_raft_state` every few writes
    /// rewrite all of it.
    Fixed,
    /// Once the log holds `max(max_raft_state, S / 2)` bytes, where S is the
    /// size of the latest snapshot. A snapshot of S bytes then follows at
    /// least S/2 bytes of log, so snapshots add at most two bytes written
    /// per byte of log whatever the state's size, for a log at most half
    /// the state (in memory and on disk). Drivers use this rule.
    ScaleWithState,
}

/// Everything that can happen to a replica.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RsmInput<Op> {
    /// A clock tick (see `core_raft::Config` for the tick length).
    Tick,
    /// A Raft message from a peer.
    Receive {
        /// The sender.
        from: NodeId,
        /// The message.
        msg: Message,
    },
    /// Submit an operation; `id` is the caller's handle, echoed in the
    /// [`RsmAction::Reply`]. Ids must not be reused while pending.
    Submit {
        /// Caller's handle.
        id: u64,
        /// The operation.
        op: Op,
    },
    /// An operator's request to change the cluster (a membership change or
    /// a leadership transfer); `id` is echoed in the [`RsmAction::Changed`]
    /// that answers it.
    Change {
        /// Caller's handle.
        id: u64,
        /// What to change.
        change: ClusterChange,
    },
    /// A [`RsmAction::Capture`] has been run: the encoded state through
    /// `index`, or why it could not be read.
    Captured {
        /// The capture's [`SnapshotJob::index`].
        index: LogIndex,
        /// [`SnapshotJob::run`]'s result.
        data: Result<Vec<u8>, String>,
    },
}

/// A snapshot capture to encode away from the event loop (see
/// [`RsmConfig::capture_off_loop`]): [`SnapshotJob::run`] drains the state
/// machine's reader, on any thread, and the result goes back to the replica
/// as [`RsmInput::Captured`]. Until it does, the replica takes no other
/// snapshot; the log keeps growing meanwhile, and nothing else waits.
#[derive(Clone)]
pub struct SnapshotJob {
    index: LogIndex,
    reader: std::sync::Arc<std::sync::Mutex<Option<Box<dyn std::io::Read + Send>>>>,
}

impl SnapshotJob {
    fn new(index: LogIndex, reader: impl std::io::Read + Send + 'static) -> Self {
        SnapshotJob {
            index,
            reader: std::sync::Arc::new(std::sync::Mutex::new(Some(Box::new(reader)))),
        }
    }

    /// The log index the captured state is at.
    pub fn index(&self) -> LogIndex {
        self.index
    }

    /// Read the capture to its end. A job runs once: a clone run again
    /// gets an error.
    pub fn run(&self) -> Result<Vec<u8>, String> {
        let reader = self
            .reader
            .lock()
            .map_err(|_| "the capture's reader panicked".to_string())?
            .take();
        match reader {
            Some(mut r) => crate::snapshot::read_all(&mut r),
            None => Err(format!("the capture at {} was already run", self.index)),
        }
    }
}

impl std::fmt::Debug for SnapshotJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SnapshotJob({})", self.index)
    }
}

/// Two jobs are equal when they are clones of one capture.
impl PartialEq for SnapshotJob {
    fn eq(&self, other: &Self) -> bool {
        self.index == other.index && std::sync::Arc::ptr_eq(&self.reader, &other.reader)
    }
}

impl Eq for SnapshotJob {}

/// A change to the cluster itself rather than to the state machine.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ClusterChange {
    /// One single-server membership change.
    Membership(core_raft::MembershipChange),
    /// Hand leadership to this voter.
    TransferLeadership(NodeId),
}

/// How the leader took a [`ClusterChange`].
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ChangeOutcome {
    /// The membership entry is appended at `index` in `term`; it is final
    /// once committed (see `Raft::membership_index` and the commit index).
    Proposed {
        /// Its log index.
        index: LogIndex,
        /// Its term.
        term: Term,
    },
    /// The transfer has started; the target campaigns once caught up.
    TransferStarted,
    /// This replica does not lead; ask the leader.
    NotLeader(NotLeader),
    /// The leader refused; `reason` says why. `retry` is true when the same
    /// request can succeed shortly (an earlier change is not committed yet,
    /// or the new leader has not committed an entry of its term).
    Refused {
        /// Why.
        reason: String,
        /// Whether retrying soon can succeed.
        retry: bool,
    },
}

/// This replica cannot serve the submission; retry at `leader_hint`. The
/// submission may or may not take effect later: only a state machine with
/// duplicate detection (sessions) makes a retry safe.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NotLeader {
    /// Who this replica believes leads, if anyone.
    pub leader_hint: Option<NodeId>,
}

/// A side effect for the driver, in order.
///
/// The ordering rule is Raft's ([`core_raft::Action`]): a persist is
/// durable before any later action is carried out, unless that action says
/// it does not wait ([`RsmAction::waits_for_persists`]). Drivers and node
/// shells must ask the action, never guess.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RsmAction<Out> {
    /// A Raft `Persist*` or `Send` action, with `core_raft::Action`'s
    /// ordering rule: persists are durable before any later action.
    Raft(Action),
    /// Only with [`RsmConfig::observe_applies`]: an `Apply` or
    /// `ApplySnapshot` the replica has just carried out. Nothing to do.
    Observed(Action),
    /// The answer to a submission.
    Reply {
        /// The submission's handle.
        id: u64,
        /// Its output, or where to retry.
        result: Result<Out, NotLeader>,
    },
    /// The answer to a [`RsmInput::Change`].
    Changed {
        /// The request's handle.
        id: u64,
        /// How the leader took it.
        outcome: ChangeOutcome,
    },
    /// Only with [`RsmConfig::capture_off_loop`]: run this capture (on
    /// another thread) and feed the result back as [`RsmInput::Captured`].
    Capture(SnapshotJob),
}

impl<Out> RsmAction<Out> {
    /// True for the actions that must be made durable (Raft's persists).
    pub fn is_persist(&self) -> bool {
        matches!(
            self,
            RsmAction::Raft(
                Action::PersistHardState(_)
                    | Action::PersistEntries(_)
                    | Action::PersistSnapshot { .. }
            )
        )
    }

    /// Whether this action must wait until every persist returned before it
    /// is durable. True for every action today; the two exceptions the
    /// design contract allows (a leader's AppendEntries sent while its own
    /// append is in flight, and the answer to a read whose read point is
    /// already applied) will be marked here by the replica, and only here,
    /// so that drivers and shells need no change when they are.
    pub fn waits_for_persists(&self) -> bool {
        match self {
            RsmAction::Raft(a) => a.waits_for_persists(),
            // An observation is for checkers, at the moment the replica
            // applies; a capture reads the local state. Neither reveals
            // anything to anyone.
            RsmAction::Observed(_) | RsmAction::Capture(_) => false,
            RsmAction::Reply { .. } | RsmAction::Changed { .. } => true,
        }
    }
}

/// A replica: a Raft node plus the state machine it feeds.
pub struct Rsm<S: StateMachine> {
    raft: Raft,
    sm: S,
    config: RsmConfig,
    /// Submissions waiting for their entry: index -> (id, term).
    waiting: BTreeMap<LogIndex, (u64, Term)>,
    /// Reads waiting for Raft to confirm a read point: read id -> (id, op).
    confirming: BTreeMap<u64, (u64, S::Op)>,
    /// Reads whose read point is known, waiting for the apply to reach it.
    ready: Vec<(LogIndex, u64, S::Op)>,
    next_read: u64,
    /// Set when a snapshot from the leader would not restore: the replica's
    /// state no longer matches its log, so it stops serving.
    failure: Option<String>,
    /// Bytes of the latest snapshot taken, installed or restored (the
    /// state's size, for [`SnapshotRule::ScaleWithState`]).
    snapshot_bytes: usize,
    /// The index of a capture handed to the driver and not yet returned.
    capturing: Option<LogIndex>,
    /// Raft asked for a copy of the state to send a follower
    /// (`Action::SnapshotWanted`): capture one at the end of the step.
    copy_wanted: bool,
    /// A durable machine installed the leader's snapshot: compact at its
    /// index at the end of the step, so that Raft drops its copy.
    drop_copy_at: Option<LogIndex>,
    out: Vec<RsmAction<S::Output>>,
}

impl<S: StateMachine> Rsm<S> {
    /// Start a replica from durable state (empty for a new one), restoring
    /// `sm` from the stored snapshot, unless `sm` keeps its state durably
    /// and has applied at least through that snapshot already (its
    /// [`StateMachine::applied_index`]): its own state is then the newer.
    pub fn restore(config: RsmConfig, durable: Durable, mut sm: S) -> Result<Rsm<S>, RsmError> {
        if let Some(s) = durable.snapshot.as_ref().filter(|s| s.external) {
            // The log was compacted up to state the machine said it holds.
            let held = sm.applied_index();
            if !S::DURABLE || held.is_none_or(|a| a < s.index) {
                return Err(RsmError::Snapshot {
                    index: s.index,
                    reason: format!(
                        "the log was compacted through {} on the state machine's word that \
                         it holds the state through there itself, but it holds it through \
                         {} only (its state file was removed, replaced or restored from a \
                         backup, or the node was started with another backend). Move this \
                         node's data directory away and add the node back as a new member",
                        s.index.0,
                        held.map_or(0, |a| a.0)
                    ),
                });
            }
        }
        let stored = durable
            .snapshot
            .as_ref()
            .filter(|s| !s.external && sm.applied_index().is_none_or(|a| a < s.index));
        if let Some(s) = stored {
            sm.restore_at(s.index, &mut s.data.as_slice())
                .map_err(|e| RsmError::Snapshot {
                    index: s.index,
                    reason: e,
                })?;
        }
        let snapshot_bytes = durable.snapshot.as_ref().map_or(0, |s| s.data.len());
        let raft = Raft::restore(config.raft.clone(), durable)?;
        Ok(Rsm {
            raft,
            sm,
            config,
            waiting: BTreeMap::new(),
            confirming: BTreeMap::new(),
            ready: Vec::new(),
            next_read: 0,
            failure: None,
            snapshot_bytes,
            capturing: None,
            copy_wanted: false,
            drop_copy_at: None,
            out: Vec::new(),
        })
    }

    /// The Raft node (read-only).
    pub fn raft(&self) -> &Raft {
        &self.raft
    }

    /// Found a cluster with `membership` (see `Raft::bootstrap`).
    pub fn bootstrap(
        &mut self,
        membership: core_raft::Membership,
    ) -> Result<(), core_raft::BootstrapRefused> {
        self.raft.bootstrap(membership)
    }

    /// The state machine (read-only).
    pub fn state(&self) -> &S {
        &self.sm
    }

    /// Give up the replica, keeping its state machine (a driver returns it
    /// to its caller when the node stops).
    pub fn into_state(self) -> S {
        self.sm
    }

    /// Submissions and reads not yet answered.
    pub fn pending(&self) -> usize {
        self.waiting.len() + self.confirming.len() + self.ready.len()
    }

    /// Why this replica stopped serving, if it did. A driver should stop
    /// the node and report this; restarting from storage is safe.
    pub fn failure(&self) -> Option<&str> {
        self.failure.as_deref()
    }

    /// Feed one input; returns the actions to perform, in order.
    pub fn step(&mut self, input: RsmInput<S::Op>) -> Vec<RsmAction<S::Output>> {
        if self.failure.is_some() {
            match input {
                RsmInput::Submit { id, .. } => self.reply_err(id, None),
                RsmInput::Change { id, .. } => self.out.push(RsmAction::Changed {
                    id,
                    outcome: ChangeOutcome::NotLeader(NotLeader { leader_hint: None }),
                }),
                _ => {}
            }
            return std::mem::take(&mut self.out);
        }
        match input {
            RsmInput::Tick => self.raft_step(Input::Tick),
            RsmInput::Receive { from, msg } => self.raft_step(Input::Receive { from, msg }),
            RsmInput::Submit { id, op } => self.submit(id, op),
            RsmInput::Change { id, change } => self.change(id, change),
            RsmInput::Captured { index, data } => self.captured(index, data),
        }
        self.maybe_snapshot();
        std::mem::take(&mut self.out)
    }

    fn submit(&mut self, id: u64, op: S::Op) {
        if self.config.read_index && self.sm.is_read_only(&op) {
            self.next_read += 1;
            let read = self.next_read;
            self.confirming.insert(read, (id, op));
            self.raft_step(Input::ReadIndex { id: read });
            return;
        }
        let data = postcard::to_allocvec(&op).expect("encoding to a Vec cannot fail");
        let actions = self.raft.step(Input::Propose(data));
        for a in &actions {
            if let Action::Proposed { index, term } = a {
                // Each index holds one entry, and a waiter leaves when its
                // index is applied, rewritten or compacted; a second waiter
                // at one index means that bookkeeping broke.
                let earlier = self.waiting.insert(*index, (id, *term));
                assert!(
                    earlier.is_none(),
                    "{}: two submissions wait on index {index}: {earlier:?} and {id}",
                    self.raft.id()
                );
            }
            if let Action::NotLeader { leader_hint } = a {
                self.reply_err(id, *leader_hint);
            }
        }
        self.execute(actions);
    }

    fn change(&mut self, id: u64, change: ClusterChange) {
        let input = match change {
            ClusterChange::Membership(m) => Input::ChangeMembership(m),
            ClusterChange::TransferLeadership(to) => Input::TransferLeadership { to },
        };
        let transfer = matches!(input, Input::TransferLeadership { .. });
        let actions = self.raft.step(input);
        let mut outcome = None;
        for a in &actions {
            outcome = outcome.or(match a {
                Action::Proposed { index, term } => Some(ChangeOutcome::Proposed {
                    index: *index,
                    term: *term,
                }),
                Action::NotLeader { leader_hint } => Some(ChangeOutcome::NotLeader(NotLeader {
                    leader_hint: *leader_hint,
                })),
                Action::MembershipRefused(why) => Some(ChangeOutcome::Refused {
                    reason: why.to_string(),
                    retry: matches!(
                        why,
                        ChangeRefused::ChangeInProgress(_) | ChangeRefused::TermNotCommitted
                    ),
                }),
                Action::TransferRefused(why) => Some(ChangeOutcome::Refused {
                    reason: why.to_string(),
                    retry: false,
                }),
                _ => None,
            });
        }
        // A transfer that starts says nothing more.
        let outcome = outcome.unwrap_or(if transfer {
            ChangeOutcome::TransferStarted
        } else {
            ChangeOutcome::Refused {
                reason: "the leader neither took nor refused the change".into(),
                retry: false,
            }
        });
        self.execute(actions);
        self.out.push(RsmAction::Changed { id, outcome });
    }

    fn raft_step(&mut self, input: Input) {
        let actions = self.raft.step(input);
        self.execute(actions);
    }

    fn execute(&mut self, actions: Vec<Action>) {
        // A snapshot from the leader is restored before any action of this
        // step reaches the driver: if it does not restore, none of them (the
        // PersistSnapshot, the acknowledgement) may be carried out, so that
        // storage keeps the last good state and a restart recovers.
        if let Some(Action::ApplySnapshot(snapshot)) = actions
            .iter()
            .find(|a| matches!(a, Action::ApplySnapshot(_)))
        {
            if let Err(e) = self
                .sm
                .restore_at(snapshot.index, &mut snapshot.data.as_slice())
            {
                self.fail_install(snapshot.index, e);
                return;
            }
        }
        let mut log_rewritten = false;
        for action in actions {
            match action {
                // A follower's log rewritten by the leader's entries, or
                // replaced whole by the leader's snapshot.
                Action::PersistEntries(_)
                | Action::PersistSnapshot {
                    discard_log: true, ..
                } => {
                    log_rewritten |= !self.raft.is_leader();
                    self.out.push(RsmAction::Raft(action));
                }
                Action::PersistHardState(_)
                | Action::PersistSnapshot { .. }
                | Action::Send { .. } => self.out.push(RsmAction::Raft(action)),
                Action::Apply(entries) => {
                    if self.config.observe_applies {
                        self.out
                            .push(RsmAction::Observed(Action::Apply(entries.clone())));
                    }
                    self.apply(entries);
                }
                Action::ApplySnapshot(snapshot) => {
                    if self.config.observe_applies {
                        self.out
                            .push(RsmAction::Observed(Action::ApplySnapshot(snapshot.clone())));
                    }
                    self.install(snapshot);
                }
                Action::ReadReady { id, index } => {
                    if let Some((sub, op)) = self.confirming.remove(&id) {
                        self.ready.push((index, sub, op));
                    }
                }
                Action::ReadFailed { id, leader_hint } => {
                    if let Some((sub, _)) = self.confirming.remove(&id) {
                        self.reply_err(sub, leader_hint);
                    }
                }
                Action::SnapshotWanted { .. } => self.copy_wanted = true,
                // Membership changes and transfers are not submitted
                // through the replica.
                Action::Proposed { .. }
                | Action::NotLeader { .. }
                | Action::MembershipRefused(_)
                | Action::TransferRefused(_) => {}
            }
        }
        if log_rewritten {
            self.prune_waiters();
        }
        self.release_reads();
    }

    /// A follower's log was rewritten by a leader (entries, or a snapshot
    /// that replaced it): fail every waiter whose (index, term) the log no
    /// longer holds. Its entry can never apply, and if the log was truncated
    /// below it, no other entry may land there soon.
    fn prune_waiters(&mut self) {
        let raft = &self.raft;
        let lost: Vec<LogIndex> = self
            .waiting
            .iter()
            .filter(|(index, (_, term))| {
                **index > raft.last_index() || raft.term_at(**index).is_some_and(|t| t != *term)
            })
            .map(|(index, _)| *index)
            .collect();
        for index in lost {
            if let Some((id, _)) = self.waiting.remove(&index) {
                self.reply_err(id, self.raft.leader_hint());
            }
        }
    }

    fn apply(&mut self, entries: Vec<Entry>) {
        let mut applied_any = false;
        for e in entries {
            let output = match &e.payload {
                Payload::Noop | Payload::Membership(_) => None,
                // A durable state machine already holds this entry's effect.
                Payload::Command(_) if self.sm.applied_index().is_some_and(|a| e.index <= a) => {
                    None
                }
                Payload::Command(data) => match postcard::from_bytes::<S::Op>(data) {
                    Ok(op) => {
                        applied_any = true;
                        Some(self.sm.apply(e.index, &op))
                    }
                    Err(err) => {
                        // Only a replica of another build could have written
                        // it; applying nothing keeps replicas identical.
                        tracing::error!(index = %e.index, %err, "log entry does not decode; skipped");
                        None
                    }
                },
            };
            if let Some((id, term)) = self.waiting.remove(&e.index) {
                match output {
                    Some(out) if term == e.term => self.out.push(RsmAction::Reply {
                        id,
                        result: Ok(out),
                    }),
                    _ => self.reply_err(id, self.raft.leader_hint()),
                }
            }
        }
        if applied_any {
            self.sm.applied_batch();
        }
    }

    /// A snapshot from the leader does not restore. Raft has moved past its
    /// index, so the state machine can no longer follow the log: stop
    /// serving rather than answer from a wrong state, and answer every
    /// pending submission, reads included. Nothing of the step was
    /// persisted; a restart recovers.
    fn fail_install(&mut self, index: LogIndex, e: String) {
        let why = format!("snapshot at {index} from the leader does not restore: {e}");
        tracing::error!("{why}");
        self.failure = Some(why);
        let writes = std::mem::take(&mut self.waiting)
            .into_values()
            .map(|(id, _)| id);
        let confirming = std::mem::take(&mut self.confirming)
            .into_values()
            .map(|(id, _)| id);
        let ready = std::mem::take(&mut self.ready)
            .into_iter()
            .map(|(_, id, _)| id);
        let ids: Vec<u64> = writes.chain(confirming).chain(ready).collect();
        for id in ids {
            self.reply_err(id, None);
        }
    }

    /// The state machine was restored from `snapshot` (in `execute`).
    fn install(&mut self, snapshot: Snapshot) {
        self.snapshot_bytes = snapshot.data.len();
        // Rare and worth knowing: the node was too far behind for the log.
        tracing::info!(
            node = %self.raft.id(),
            index = %snapshot.index,
            bytes = snapshot.data.len(),
            "installed the leader's snapshot"
        );
        // A durable machine committed the snapshot with its index: Raft
        // need not keep the copy.
        if S::DURABLE && self.sm.applied_index() >= Some(snapshot.index) {
            self.drop_copy_at = Some(snapshot.index);
        }
        // Entries through the snapshot were applied elsewhere; we cannot tell
        // whether the waiters' entries are among them.
        let later = self.waiting.split_off(&snapshot.index.next());
        let covered = std::mem::replace(&mut self.waiting, later);
        for (_, (id, _)) in covered {
            self.reply_err(id, self.raft.leader_hint());
        }
    }

    /// Answer every confirmed read whose read point has been applied.
    fn release_reads(&mut self) {
        if self.ready.is_empty() {
            return;
        }
        let applied = self.raft.applied_index();
        let (now, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.ready)
            .into_iter()
            .partition(|(index, _, _)| *index <= applied);
        self.ready = later;
        for (_, id, op) in now {
            let out = self.sm.query(&op);
            self.out.push(RsmAction::Reply {
                id,
                result: Ok(out),
            });
        }
    }

    /// A capture came back: compact the log with it. Raft ignores it if a
    /// snapshot at or past its index arrived meanwhile (from the leader).
    fn captured(&mut self, index: LogIndex, data: Result<Vec<u8>, String>) {
        if self.capturing != Some(index) {
            tracing::debug!(%index, "a capture nobody waits for; dropped");
            return;
        }
        self.capturing = None;
        match data {
            Ok(data) => {
                self.snapshot_bytes = data.len();
                self.raft_step(Input::Snapshot { index, data });
            }
            // The log keeps growing; the next step tries again.
            Err(e) => tracing::error!(%index, "cannot capture a snapshot: {e}"),
        }
    }

    fn maybe_snapshot(&mut self) {
        if let Some(index) = self.drop_copy_at.take() {
            self.raft_step(Input::Compact { index });
        }
        if self.copy_wanted && self.capturing.is_none() {
            self.copy_wanted = false;
            self.capture();
        }
        let Some(max) = self.config.max_raft_state else {
            return;
        };
        if self.capturing.is_some() {
            return;
        }
        if S::DURABLE {
            self.compact_durable(max);
            return;
        }
        let threshold = match self.config.snapshot_rule {
            SnapshotRule::Fixed => max,
            SnapshotRule::ScaleWithState => max.max(self.snapshot_bytes / 2),
        };
        let applied = self.raft.applied_index();
        if self.raft.log_bytes() >= threshold && applied > self.raft.snapshot_index() {
            self.capture();
        }
    }

    /// Capture the state at the applied index and hand it to Raft: on a
    /// worker thread (through [`RsmAction::Capture`]) when the driver does
    /// that, else here.
    fn capture(&mut self) {
        if S::DURABLE {
            // A durable machine may hold applies in an open transaction;
            // a capture reads what is committed.
            self.sm.make_durable();
        }
        let applied = self.raft.applied_index();
        if self.config.capture_off_loop {
            self.capturing = Some(applied);
            let job = SnapshotJob::new(applied, self.sm.snapshot());
            self.out.push(RsmAction::Capture(job));
            return;
        }
        let data = match crate::snapshot::read_all(&mut self.sm.snapshot()) {
            Ok(data) => data,
            Err(e) => {
                // The log keeps growing; the next step tries again.
                tracing::error!(index = %applied, "cannot capture a snapshot: {e}");
                return;
            }
        };
        self.snapshot_bytes = data.len();
        self.raft_step(Input::Snapshot {
            index: applied,
            data,
        });
    }

    /// A durable machine: once the log holds `max` bytes, drop it through
    /// the machine's durable applied index (making the latest applies
    /// durable first if that index has not moved). No copy of the state is
    /// made: compaction costs the same whatever the state's size.
    ///
    /// A leader also keeps what its followers still need, so that one a
    /// little behind catches up from the log rather than from a copy of the
    /// whole state: it compacts no further than the lowest follower's match
    /// index, until the log reaches [`KEEP_FOR_FOLLOWERS`] times `max` (a
    /// follower that is down must not pin the log in memory for ever).
    fn compact_durable(&mut self, max: usize) {
        let bytes = self.raft.log_bytes();
        if bytes < max {
            return;
        }
        let snapshot = self.raft.snapshot_index();
        let mut durable = self.sm.applied_index().unwrap_or(LogIndex(0));
        if durable <= snapshot {
            durable = self.sm.make_durable().unwrap_or(LogIndex(0));
        }
        let mut index = durable.min(self.raft.applied_index());
        if self.raft.is_leader() && bytes < max.saturating_mul(KEEP_FOR_FOLLOWERS) {
            let slowest = self
                .raft
                .peers()
                .iter()
                .filter_map(|p| self.raft.match_index(*p))
                .min();
            if let Some(slowest) = slowest {
                index = index.min(slowest);
            }
        }
        if index > snapshot {
            self.raft_step(Input::Compact { index });
        }
    }

    fn reply_err(&mut self, id: u64, leader_hint: Option<NodeId>) {
        self.out.push(RsmAction::Reply {
            id,
            result: Err(NotLeader { leader_hint }),
        });
    }
}

/// A durable machine's leader keeps the log its slowest follower still
/// needs until the log holds this many times `max_raft_state` bytes.
pub const KEEP_FOR_FOLLOWERS: usize = 64;

/// Why a replica could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RsmError {
    /// The Raft state is invalid.
    #[error(transparent)]
    Raft(#[from] RestoreError),
    /// The stored snapshot does not restore.
    #[error("stored snapshot at {index} does not restore: {reason}")]
    Snapshot {
        /// Its index.
        index: LogIndex,
        /// What the state machine said.
        reason: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use core_raft::{HardState, NodeId};

    /// A machine that keeps its state "on disk": it survives a restart
    /// together with the index it applied through, and records what it is
    /// handed.
    #[derive(Default)]
    struct Durable3 {
        applied: Option<LogIndex>,
        seen: Vec<LogIndex>,
        /// The snapshot indexes it was restored at.
        restored: Vec<LogIndex>,
    }

    impl StateMachine for Durable3 {
        type Op = u8;
        type Output = u8;
        type Snapshot = std::io::Cursor<Vec<u8>>;

        fn apply(&mut self, index: LogIndex, op: &u8) -> u8 {
            self.seen.push(index);
            self.applied = Some(index);
            *op
        }

        fn query(&self, op: &u8) -> u8 {
            *op
        }

        fn applied_index(&self) -> Option<LogIndex> {
            self.applied
        }

        fn snapshot(&self) -> Self::Snapshot {
            std::io::Cursor::new(Vec::new())
        }

        fn restore(&mut self, _: &mut dyn std::io::Read) -> Result<(), String> {
            Err("a durable machine is restored at an index".into())
        }

        fn restore_at(&mut self, index: LogIndex, _: &mut dyn std::io::Read) -> Result<(), String> {
            self.restored.push(index);
            self.applied = Some(index);
            Ok(())
        }
    }

    fn entry(index: u64, op: u8) -> Entry {
        Entry {
            index: LogIndex(index),
            term: Term(1),
            payload: Payload::Command(postcard::to_allocvec(&op).unwrap()),
        }
    }

    #[test]
    fn a_durable_machine_is_not_handed_entries_it_already_holds() {
        let durable = Durable {
            hard_state: HardState {
                term: Term(1),
                vote: Some(NodeId(1)),
                commit: LogIndex(4),
            },
            snapshot: None,
            entries: (1..=4).map(|i| entry(i, i as u8)).collect(),
        };
        // The machine's own storage says it applied through 2 before the
        // crash: entries 1 and 2 are not applied again; 3 and 4 are.
        let sm = Durable3 {
            applied: Some(LogIndex(2)),
            ..Durable3::default()
        };
        let config = RsmConfig::new(Config::new(NodeId(1), vec![NodeId(1)]));
        let mut rsm = Rsm::restore(config, durable, sm).unwrap();
        rsm.step(RsmInput::Tick);
        assert_eq!(rsm.state().seen, vec![LogIndex(3), LogIndex(4)]);
        assert_eq!(rsm.raft().applied_index(), LogIndex(4));
    }

    /// A replica whose log was compacted into a snapshot at 3, with
    /// entries 4..=6 after it, committed through 6.
    fn compacted() -> Durable {
        Durable {
            hard_state: HardState {
                term: Term(1),
                vote: Some(NodeId(1)),
                commit: LogIndex(6),
            },
            snapshot: Some(Snapshot {
                index: LogIndex(3),
                term: Term(1),
                membership: core_raft::Membership::with_voters([NodeId(1)]),
                data: Vec::new(),
                external: false,
            }),
            entries: (4..=6).map(|i| entry(i, i as u8)).collect(),
        }
    }

    /// A durable machine that lost its latest applies in a crash and is
    /// behind the stored snapshot is restored from it, told its index, and
    /// handed the entries after it.
    #[test]
    fn a_durable_machine_behind_the_stored_snapshot_is_restored_at_its_index() {
        let sm = Durable3 {
            applied: Some(LogIndex(1)),
            ..Durable3::default()
        };
        let config = RsmConfig::new(Config::new(NodeId(1), vec![NodeId(1)]));
        let mut rsm = Rsm::restore(config, compacted(), sm).unwrap();
        rsm.step(RsmInput::Tick);
        assert_eq!(rsm.state().restored, vec![LogIndex(3)]);
        assert_eq!(rsm.state().seen, (4..=6).map(LogIndex).collect::<Vec<_>>());
    }

    /// A durable machine already past the stored snapshot keeps its own
    /// state: restoring the older snapshot would only be undone by
    /// applying the same entries again.
    #[test]
    fn a_durable_machine_past_the_stored_snapshot_is_not_restored() {
        let sm = Durable3 {
            applied: Some(LogIndex(5)),
            ..Durable3::default()
        };
        let config = RsmConfig::new(Config::new(NodeId(1), vec![NodeId(1)]));
        let mut rsm = Rsm::restore(config, compacted(), sm).unwrap();
        rsm.step(RsmInput::Tick);
        assert!(rsm.state().restored.is_empty());
        assert_eq!(rsm.state().seen, vec![LogIndex(6)]);
    }
}

#[cfg(test)]
mod snapshot_rule_tests {
    use super::*;
    use core_raft::{Durable, NodeId};

    /// A state of `size` bytes that grows by one byte per operation.
    struct Blob(usize);

    impl StateMachine for Blob {
        type Op = Vec<u8>;
        type Output = ();
        type Snapshot = std::io::Cursor<Vec<u8>>;

        fn apply(&mut self, _: LogIndex, op: &Vec<u8>) {
            self.0 += op.len();
        }

        fn query(&self, _: &Vec<u8>) {}

        fn snapshot(&self) -> Self::Snapshot {
            std::io::Cursor::new(vec![0; self.0])
        }

        fn restore(&mut self, r: &mut dyn std::io::Read) -> Result<(), String> {
            let mut bytes = Vec::new();
            r.read_to_end(&mut bytes).map_err(|e| e.to_string())?;
            self.0 = bytes.len();
            Ok(())
        }
    }

    /// Snapshots taken by a one-node replica that starts from a 100 kB
    /// state and applies 200 writes of 100 bytes, with a 1 kB threshold.
    fn snapshots_taken(rule: SnapshotRule) -> usize {
        let mut raft = Config::new(NodeId(1), vec![NodeId(1)]);
        raft.leader_noop = false;
        let config = RsmConfig {
            max_raft_state: Some(1000),
            snapshot_rule: rule,
            ..RsmConfig::new(raft)
        };
        let mut rsm = Rsm::restore(config, Durable::default(), Blob(100_000)).unwrap();
        while !rsm.raft().is_leader() {
            rsm.step(RsmInput::Tick);
        }
        let mut taken = 0;
        for id in 0..200 {
            let actions = rsm.step(RsmInput::Submit {
                id,
                op: vec![7; 100],
            });
            taken += actions
                .iter()
                .filter(|a| matches!(a, RsmAction::Raft(Action::PersistSnapshot { .. })))
                .count();
        }
        taken
    }

    #[test]
    fn snapshots_scale_with_the_state_unless_the_lab_rule_is_asked_for() {
        // 20 kB of log: the fixed rule snapshots the 100 kB state about
        // every 1 kB, writing some 2 MB of snapshots for 20 kB of data; the
        // scaled rule waits for half the state's size of log.
        let fixed = snapshots_taken(SnapshotRule::Fixed);
        let scaled = snapshots_taken(SnapshotRule::ScaleWithState);
        assert!(fixed >= 15, "fixed rule: {fixed} snapshots");
        assert!(scaled <= 1, "scaled rule: {scaled} snapshots");
    }
}

#[cfg(test)]
mod capture_tests {
    use super::*;
    use core_raft::{Durable, NodeId};

    /// A state of as many bytes as operations applied; its capture is a
    /// copy taken at once.
    struct Bytes(Vec<u8>);

    impl StateMachine for Bytes {
        type Op = u8;
        type Output = ();
        type Snapshot = std::io::Cursor<Vec<u8>>;

        fn apply(&mut self, _: LogIndex, op: &u8) {
            self.0.push(*op);
        }

        fn query(&self, _: &u8) {}

        fn snapshot(&self) -> Self::Snapshot {
            std::io::Cursor::new(self.0.clone())
        }

        fn restore(&mut self, r: &mut dyn std::io::Read) -> Result<(), String> {
            self.0.clear();
            r.read_to_end(&mut self.0).map_err(|e| e.to_string())?;
            Ok(())
        }
    }

    /// With `capture_off_loop`, a due snapshot is handed out as one
    /// capture; the replica keeps applying and takes no second capture
    /// while it is out; the capture, once run, holds the state as of its
    /// index, and compacts the log through exactly that index.
    #[test]
    fn an_off_loop_capture_compacts_through_its_own_index_when_it_returns() {
        let mut raft = Config::new(NodeId(1), vec![NodeId(1)]);
        raft.leader_noop = false;
        let config = RsmConfig {
            max_raft_state: Some(200),
            capture_off_loop: true,
            ..RsmConfig::new(raft)
        };
        let mut rsm = Rsm::restore(config, Durable::default(), Bytes(Vec::new())).unwrap();
        while !rsm.raft().is_leader() {
            rsm.step(RsmInput::Tick);
        }
        let mut jobs = Vec::new();
        for id in 0..40u64 {
            for a in rsm.step(RsmInput::Submit { id, op: id as u8 }) {
                assert!(!matches!(
                    a,
                    RsmAction::Raft(Action::PersistSnapshot { .. })
                ));
                if let RsmAction::Capture(job) = a {
                    jobs.push(job);
                }
            }
        }
        assert_eq!(jobs.len(), 1, "one capture at a time: {jobs:?}");
        let job = jobs.pop().unwrap();
        assert!(rsm.raft().applied_index() > job.index(), "applying went on");
        let data = job.run().unwrap();
        assert_eq!(
            data.len() as u64,
            job.index().0,
            "the state as of the capture"
        );
        assert!(job.run().is_err(), "a job runs once");
        let actions = rsm.step(RsmInput::Captured {
            index: job.index(),
            data: Ok(data.clone()),
        });
        let persisted = actions.iter().find_map(|a| match a {
            RsmAction::Raft(Action::PersistSnapshot { snapshot, .. }) => Some(snapshot),
            _ => None,
        });
        let snapshot = persisted.expect("the capture compacts the log");
        assert_eq!((snapshot.index, &snapshot.data), (job.index(), &data));
        assert_eq!(rsm.raft().snapshot_index(), job.index());
    }
}
