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
    Action, Config, Durable, Entry, Input, LogIndex, Message, NodeId, Payload, Raft, RestoreError,
    Snapshot, Term,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::BTreeMap;

/// A deterministic state machine to replicate.
pub trait StateMachine {
    /// An operation, as stored in the log.
    type Op: Serialize + DeserializeOwned;
    /// What applying an operation returns.
    type Output;

    /// Apply one committed operation. Must be deterministic.
    fn apply(&mut self, op: &Self::Op) -> Self::Output;

    /// True if `op` only reads: it may then be answered through ReadIndex
    /// without writing the log, by [`StateMachine::query`].
    fn is_read_only(&self, _op: &Self::Op) -> bool {
        false
    }

    /// Answer a read-only operation from the current state.
    fn query(&self, op: &Self::Op) -> Self::Output;

    /// Serialize the whole state.
    fn snapshot(&self) -> Vec<u8>;

    /// Replace the state with a snapshot's. An error means the snapshot is
    /// corrupt; the replica then refuses to start or to install it.
    fn restore(&mut self, data: &[u8]) -> Result<(), String>;
}

/// Settings of one replica.
#[derive(Clone, Debug)]
pub struct RsmConfig {
    /// The Raft node's configuration.
    pub raft: Config,
    /// Snapshot once the un-compacted log exceeds this many bytes (`None`:
    /// never; the lab's `maxraftstate = -1`).
    pub max_raft_state: Option<usize>,
    /// Serve read-only operations with ReadIndex instead of through the log.
    pub read_index: bool,
    /// Echo every `Apply` / `ApplySnapshot` the replica carries out as
    /// [`RsmAction::Observed`], for invariant checkers. Drivers leave it off.
    pub observe_applies: bool,
}

impl RsmConfig {
    /// Defaults for a service: no snapshots, ReadIndex reads, no observation.
    pub fn new(raft: Config) -> Self {
        RsmConfig {
            raft,
            max_raft_state: None,
            read_index: true,
            observe_applies: false,
        }
    }
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
}

/// This replica cannot serve the submission; retry at `leader_hint`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NotLeader {
    /// Who this replica believes leads, if anyone.
    pub leader_hint: Option<NodeId>,
}

/// A side effect for the driver, in order.
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
    out: Vec<RsmAction<S::Output>>,
}

impl<S: StateMachine> Rsm<S> {
    /// Start a replica from durable state (empty for a new one), restoring
    /// `sm` from the stored snapshot.
    pub fn restore(config: RsmConfig, durable: Durable, mut sm: S) -> Result<Rsm<S>, RsmError> {
        if let Some(s) = &durable.snapshot {
            sm.restore(&s.data).map_err(|e| RsmError::Snapshot {
                index: s.index,
                reason: e,
            })?;
        }
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
            out: Vec::new(),
        })
    }

    /// The Raft node (read-only).
    pub fn raft(&self) -> &Raft {
        &self.raft
    }

    /// The state machine (read-only).
    pub fn state(&self) -> &S {
        &self.sm
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
            if let RsmInput::Submit { id, .. } = input {
                self.reply_err(id, None);
            }
            return std::mem::take(&mut self.out);
        }
        match input {
            RsmInput::Tick => self.raft_step(Input::Tick),
            RsmInput::Receive { from, msg } => self.raft_step(Input::Receive { from, msg }),
            RsmInput::Submit { id, op } => self.submit(id, op),
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
                self.waiting.insert(*index, (id, *term));
            }
            if let Action::NotLeader { leader_hint } = a {
                self.reply_err(id, *leader_hint);
            }
        }
        self.execute(actions);
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
            if let Err(e) = self.sm.restore(&snapshot.data) {
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
                Action::Proposed { .. } | Action::NotLeader { .. } => {}
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
        for e in entries {
            let output = match &e.payload {
                Payload::Noop => None,
                Payload::Command(data) => match postcard::from_bytes::<S::Op>(data) {
                    Ok(op) => Some(self.sm.apply(&op)),
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

    fn maybe_snapshot(&mut self) {
        let Some(max) = self.config.max_raft_state else {
            return;
        };
        let applied = self.raft.applied_index();
        if self.raft.log_bytes() >= max && applied > self.raft.snapshot_index() {
            let data = self.sm.snapshot();
            self.raft_step(Input::Snapshot {
                index: applied,
                data,
            });
        }
    }

    fn reply_err(&mut self, id: u64, leader_hint: Option<NodeId>) {
        self.out.push(RsmAction::Reply {
            id,
            result: Err(NotLeader { leader_hint }),
        });
    }
}

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
