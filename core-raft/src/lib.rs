//! Raft consensus (the extended paper, Figure 2, §5.4 and §7, plus the
//! thesis' pre-vote, check-quorum and ReadIndex) as a pure state machine.
//!
//! [`Raft`] performs no I/O, reads no clock and owns no thread. Everything
//! that happens to it is an [`Input`]; everything it wants done is an
//! [`Action`]. The caller's duties, in order:
//!
//! 1. Build the node with [`Raft::new`] (fresh) or [`Raft::restore`] (from
//!    the [`Durable`] state a previous incarnation persisted).
//! 2. Call [`Raft::step`] with [`Input::Tick`] at a fixed interval
//!    ([`config::DEFAULT_TICK_MS`] by default), with every message received
//!    from a peer, and with the application's proposals, read requests and
//!    snapshots.
//! 3. Execute every returned [`Action`] in order before the next `step`:
//!    make `Persist*` actions durable before performing any later action in
//!    the list (group commit of consecutive persists is fine), send `Send`
//!    messages best-effort, feed `Apply` / `ApplySnapshot` to the application
//!    in order.
//! 4. After a crash, rebuild with [`Raft::restore`] from what was durable,
//!    and hand the stored snapshot (if any) to the application yourself:
//!    the machine resumes applying after the snapshot's index.
//!
//! Given the same [`Config`] and the same input sequence, a machine produces
//! byte-identical actions: election jitter comes from [`Config::rng_seed`].
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod config;
mod display;
pub mod durable;
mod election;
mod invariants;
pub mod io;
mod log;
pub mod membership;
pub mod message;
mod progress;
mod read;
mod replication;
pub mod rng;
mod snapshot;
mod transfer;
pub mod types;

pub use config::{Config, ConfigError, DEFAULT_TICK_MS};
pub use durable::{Durable, RestoreError};
pub use io::{Action, Input};
pub use membership::{ChangeRefused, Member, Membership, MembershipChange};
pub use message::{
    AppendEntries, AppendEntriesResponse, Entry, HardState, InstallSnapshot,
    InstallSnapshotResponse, Message, Payload, Reject, RequestVote, RequestVoteResponse, Snapshot,
};
pub use transfer::TransferRefused;
pub use types::{LogIndex, NodeId, Term};

use log::RaftLog;
use progress::Progress;
use read::ReadQueue;
use rng::SplitMix64;
use std::collections::BTreeMap;

/// The part a node currently plays.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Follows a leader (or waits for one).
    Follower,
    /// Probing with a pre-vote whether an election could succeed.
    PreCandidate,
    /// Campaigning for votes in its current term.
    Candidate,
    /// Leads its current term.
    Leader,
}

/// [`Raft::bootstrap`] on a node that already has state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("only a node that has never belonged to a cluster can bootstrap one")]
pub struct BootstrapRefused;

/// One Raft node.
#[derive(Debug)]
pub struct Raft {
    config: Config,
    /// Voters other than this node, in ascending order.
    peers: Vec<NodeId>,
    rng: SplitMix64,

    // Durable state (mirrors what the Persist actions have recorded).
    term: Term,
    vote: Option<NodeId>,
    log: RaftLog,
    /// Latest snapshot, kept to send to lagging followers.
    snapshot: Option<Snapshot>,
    /// Leader: [`Action::SnapshotWanted`] was asked and no snapshot has
    /// come since.
    snapshot_wanted: bool,
    /// The membership as of the snapshot (or, before any snapshot, the one
    /// the cluster was bootstrapped with: `Config::voters`).
    base_membership: Membership,
    /// Membership entries in the log after the snapshot, in index order.
    /// The last one is in effect (appended is enough: §4.1).
    membership_log: Vec<(LogIndex, Membership)>,

    // Volatile state.
    role: Role,
    leader: Option<NodeId>,
    commit: LogIndex,
    /// The commit index at the end of the previous step (or at start-up):
    /// `check_invariants` holds `commit` to never going below it.
    commit_checked: LogIndex,
    applied: LogIndex,
    election_elapsed: u64,
    election_timeout: u64,
    heartbeat_elapsed: u64,
    /// Ticks seen by this incarnation; ages in-flight messages.
    ticks: u64,
    /// Votes (or pre-votes) granted to this node in the current campaign.
    votes: BTreeMap<NodeId, bool>,
    /// Leader only: per-follower replication state.
    progress: BTreeMap<NodeId, Progress>,
    /// Leader only: the current heartbeat round.
    round: u64,
    /// Leader only: a leadership transfer under way, to this voter, given
    /// up at this tick.
    transfer: Option<(NodeId, u64)>,
    reads: ReadQueue,
    /// Follower only: a snapshot being received in chunks.
    incoming: Option<snapshot::IncomingSnapshot>,

    /// Actions produced by the current step.
    out: Vec<Action>,
}

impl Raft {
    /// A fresh node with an empty log.
    pub fn new(config: Config) -> Result<Raft, ConfigError> {
        config.validate()?;
        Ok(Self::build(config, Durable::default()))
    }

    /// Rebuild a node from the state a previous incarnation made durable.
    pub fn restore(config: Config, durable: Durable) -> Result<Raft, RestoreError> {
        config.validate()?;
        durable.validate()?;
        Ok(Self::build(config, durable))
    }

    fn build(config: Config, durable: Durable) -> Raft {
        let base_membership = match &durable.snapshot {
            Some(s) => s.membership.clone(),
            None => Membership {
                members: config.bootstrap_members.clone(),
                ..Membership::with_voters(config.voters.iter().copied())
            },
        };
        let membership_log: Vec<(LogIndex, Membership)> = durable
            .entries
            .iter()
            .filter_map(|e| match &e.payload {
                Payload::Membership(m) => Some((e.index, m.clone())),
                _ => None,
            })
            .collect();
        let peers = membership_log
            .last()
            .map_or(&base_membership, |(_, m)| m)
            .others(config.id);
        let (snap_index, snap_term) = durable
            .snapshot
            .as_ref()
            .map_or((LogIndex(0), Term(0)), |s| (s.index, s.term));
        let log = RaftLog::new(snap_index, snap_term, durable.entries);
        let commit = durable
            .hard_state
            .commit
            .max(snap_index)
            .min(log.last_index());
        let mut raft = Raft {
            rng: SplitMix64::new(config.rng_seed),
            peers,
            term: durable.hard_state.term,
            vote: durable.hard_state.vote,
            log,
            snapshot: durable.snapshot,
            snapshot_wanted: false,
            base_membership,
            membership_log,
            role: Role::Follower,
            leader: None,
            commit,
            commit_checked: commit,
            applied: snap_index,
            election_elapsed: 0,
            election_timeout: 0,
            heartbeat_elapsed: 0,
            ticks: 0,
            votes: BTreeMap::new(),
            progress: BTreeMap::new(),
            round: 0,
            transfer: None,
            reads: ReadQueue::default(),
            incoming: None,
            out: Vec::new(),
            config,
        };
        raft.reset_election_timer();
        raft.check_invariants();
        raft
    }

    /// Feed one input; returns the actions to execute, in order.
    pub fn step(&mut self, input: Input) -> Vec<Action> {
        match input {
            Input::Tick => self.tick(),
            Input::Receive { from, msg } => self.receive(from, msg),
            Input::Propose(data) => self.propose(vec![data]),
            Input::ProposeBatch(batch) => self.propose(batch),
            Input::ReadIndex { id } => self.read_index(id),
            Input::Snapshot { index, data } => self.compact(index, data),
            Input::Compact { index } => self.compact_external(index),
            Input::ChangeMembership(change) => self.change_membership(change),
            Input::TransferLeadership { to } => self.transfer_leadership(to),
        }
        self.step_down_if_removed();
        self.apply_committed();
        self.check_invariants();
        self.commit_checked = self.commit;
        std::mem::take(&mut self.out)
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.config.id
    }

    /// The configuration the node runs with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Current term.
    pub fn term(&self) -> Term {
        self.term
    }

    /// Vote cast in the current term.
    pub fn vote(&self) -> Option<NodeId> {
        self.vote
    }

    /// Current role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// True if this node is the leader of its current term.
    pub fn is_leader(&self) -> bool {
        self.role == Role::Leader
    }

    /// The node believed to lead the current term (itself when leader).
    pub fn leader_hint(&self) -> Option<NodeId> {
        self.leader
    }

    /// Highest index known to be committed.
    pub fn commit_index(&self) -> LogIndex {
        self.commit
    }

    /// Highest index handed to the application.
    pub fn applied_index(&self) -> LogIndex {
        self.applied
    }

    /// Index of the last log entry (or of the snapshot if the log is empty).
    pub fn last_index(&self) -> LogIndex {
        self.log.last_index()
    }

    /// Term of the last log entry.
    pub fn last_term(&self) -> Term {
        self.log.last_term()
    }

    /// Index covered by the latest snapshot (0 without one).
    pub fn snapshot_index(&self) -> LogIndex {
        self.log.snapshot_index()
    }

    /// The term of the entry at `index`, if the node still holds it.
    pub fn term_at(&self, index: LogIndex) -> Option<Term> {
        self.log.term_at(index)
    }

    /// The live log entries in `from..=to` (for checkers and debugging).
    pub fn entries(&self, from: LogIndex, to: LogIndex) -> Vec<Entry> {
        self.log.range(from, to)
    }

    /// Approximate size in bytes of the log entries not yet compacted into a
    /// snapshot. Services compare it with their `max_raft_state` to decide
    /// when to snapshot.
    pub fn log_bytes(&self) -> usize {
        self.log.bytes()
    }

    /// Every other member (voters and learners) of the membership in effect.
    pub fn peers(&self) -> &[NodeId] {
        &self.peers
    }

    /// The membership in effect: the latest one in the log (committed or
    /// not), else the snapshot's, else the bootstrap one.
    pub fn membership(&self) -> &Membership {
        self.membership_log
            .last()
            .map_or(&self.base_membership, |(_, m)| m)
    }

    /// Make a node that has never belonged to a cluster (no term, no log,
    /// no snapshot, no members) the founder of one with `membership`, as
    /// if it had been started with it as its bootstrap configuration. A
    /// node shell calls this once it has made sure no cluster exists yet;
    /// the membership is not written to the log, so the node must be
    /// restarted with the same bootstrap configuration (`Config::voters`
    /// and `Config::bootstrap_members`) until the log holds a membership.
    pub fn bootstrap(&mut self, membership: Membership) -> Result<(), BootstrapRefused> {
        let fresh = self.term == Term(0)
            && self.log.last_index() == LogIndex(0)
            && self.snapshot.is_none()
            && self.membership().voters.is_empty()
            && self.membership().learners.is_empty();
        if !fresh {
            return Err(BootstrapRefused);
        }
        self.config.voters = membership.voters.iter().copied().collect();
        self.config.bootstrap_members = membership.members.clone();
        self.base_membership = membership;
        self.refresh_membership();
        self.check_invariants();
        Ok(())
    }

    /// The index of the entry that holds the membership in effect (the
    /// snapshot's index, or 0, if no entry after it holds one). The change
    /// is final once this is committed.
    pub fn membership_index(&self) -> LogIndex {
        self.membership_log
            .last()
            .map_or(self.log.snapshot_index(), |(at, _)| *at)
    }

    /// The membership in effect at `index` (at or after the snapshot).
    fn membership_at(&self, index: LogIndex) -> &Membership {
        self.membership_log
            .iter()
            .rev()
            .find(|(i, _)| *i <= index)
            .map_or(&self.base_membership, |(_, m)| m)
    }

    /// Leader only: how far `peer`'s log is known to match (to tell when a
    /// learner has caught up enough to be promoted).
    pub fn match_index(&self, peer: NodeId) -> Option<LogIndex> {
        self.progress.get(&peer).map(|p| p.match_index())
    }

    /// Number of votes that make a majority.
    fn quorum(&self) -> usize {
        self.membership().quorum()
    }

    /// Voters that satisfy `counts` (this node, if a voter, always does).
    fn voters_where(&self, counts: impl Fn(&Progress) -> bool) -> usize {
        let m = self.membership();
        let me = usize::from(m.is_voter(self.config.id));
        me + self
            .progress
            .iter()
            .filter(|(id, p)| m.is_voter(**id) && counts(p))
            .count()
    }

    /// The membership changed (appended, truncated, or replaced by a
    /// snapshot): recompute the peers and, on a leader, their progress.
    fn refresh_membership(&mut self) {
        self.peers = self.membership().others(self.config.id);
        if self.role == Role::Leader {
            let next = self.log.last_index().next();
            let peers = self.peers.clone();
            self.progress.retain(|id, _| peers.contains(id));
            for p in peers {
                self.progress
                    .entry(p)
                    .or_insert_with(|| Progress::new(next));
            }
        }
    }

    /// A leader that is no longer a voter leads until the membership that
    /// removed it is committed, without counting itself (thesis §4.2.2),
    /// then steps down; as a non-voter it never campaigns again.
    fn step_down_if_removed(&mut self) {
        if self.role != Role::Leader || self.membership().is_voter(self.config.id) {
            return;
        }
        let decided = self
            .membership_log
            .last()
            .is_none_or(|(index, _)| *index <= self.commit);
        if decided {
            tracing::debug!(node = %self.config.id, "removed from the membership; stepping down");
            self.become_follower(self.term, None);
        }
    }

    fn hard_state(&self) -> HardState {
        HardState {
            term: self.term,
            vote: self.vote,
            commit: self.commit,
        }
    }

    fn persist_hard_state(&mut self) {
        let hs = self.hard_state();
        self.out.push(Action::PersistHardState(hs));
    }

    fn send(&mut self, to: NodeId, msg: Message) {
        self.out.push(Action::Send { to, msg });
    }

    fn reset_election_timer(&mut self) {
        self.election_elapsed = 0;
        self.election_timeout = self.rng.range_inclusive(
            self.config.election_ticks_min,
            self.config.election_ticks_max,
        );
    }

    fn tick(&mut self) {
        self.ticks += 1;
        if self.role == Role::Leader {
            self.tick_leader();
        } else {
            self.tick_election();
        }
    }

    /// Dispatch a peer message after the term rules every message obeys.
    fn receive(&mut self, from: NodeId, msg: Message) {
        // A leader's messages are accepted from a node this one does not
        // know yet: a node joining as a learner learns the membership from
        // the log. Anything else from a non-member (a removed node asking
        // for votes, say) is dropped, so it cannot disrupt the cluster.
        let from_leader = matches!(msg, Message::AppendEntries(_) | Message::InstallSnapshot(_));
        if from == self.config.id || (!self.peers.contains(&from) && !from_leader) {
            tracing::debug!(node = %self.config.id, %from, "dropping message from unknown node");
            return;
        }
        if msg.term() == Term(u64::MAX) {
            // No real cluster gets there (each term takes an election), and
            // adopting it would leave no next term to campaign in.
            tracing::debug!(node = %self.config.id, %from, "dropping message with the maximal term");
            return;
        }
        if !self.observe_term(from, &msg) {
            return;
        }
        match msg {
            Message::RequestVote(m) => self.handle_request_vote(from, m),
            Message::RequestVoteResponse(m) => self.handle_vote_response(from, m),
            Message::AppendEntries(m) => self.handle_append_entries(from, m),
            Message::AppendEntriesResponse(m) => self.handle_append_response(from, m),
            Message::InstallSnapshot(m) => self.handle_install_snapshot(from, m),
            Message::InstallSnapshotResponse(m) => self.handle_snapshot_response(from, m),
            Message::TimeoutNow(m) => self.handle_timeout_now(from, m),
        }
    }

    /// Figure 2's "if RPC request or response contains term T > currentTerm:
    /// set currentTerm = T, convert to follower", refined by pre-vote and
    /// check-quorum. Returns false if the message must be ignored.
    fn observe_term(&mut self, from: NodeId, msg: &Message) -> bool {
        let term = msg.term();
        if term > self.term {
            match msg {
                // Check-quorum: while we hear from a live leader, a disruptive
                // candidate is ignored (thesis §4.2.3). This covers pre-votes
                // too: granting one would let a rejoining node with an equally
                // up-to-date log raise its term and depose the leader.
                Message::RequestVote(m) if self.in_leader_lease() && !m.transfer => {
                    tracing::debug!(node = %self.config.id, %from, "ignoring vote request inside leader lease");
                    return false;
                }
                // A pre-vote asks about a future term; it never moves ours.
                Message::RequestVote(m) if m.pre_vote => return true,
                // A granted pre-vote echoes the term we would campaign in.
                Message::RequestVoteResponse(m) if m.pre_vote && m.granted => return true,
                _ => {}
            }
            let leader = match msg {
                Message::AppendEntries(_) | Message::InstallSnapshot(_) => Some(from),
                _ => None,
            };
            self.become_follower(term, leader);
            return true;
        }
        if term < self.term {
            // Tell a stale leader or candidate about the newer term so it steps
            // down; stale responses are simply dropped.
            match msg {
                Message::AppendEntries(m) => {
                    let reply = AppendEntriesResponse {
                        term: self.term,
                        match_index: LogIndex(0),
                        reject: Some(Reject {
                            prev_log_index: LogIndex(0),
                            conflict_term: None,
                            conflict_index: LogIndex(0),
                        }),
                        round: m.round,
                    };
                    self.send(from, Message::AppendEntriesResponse(reply));
                }
                Message::InstallSnapshot(m) => {
                    let reply = InstallSnapshotResponse {
                        term: self.term,
                        match_index: LogIndex(0),
                        index: m.index,
                        offset: m.offset,
                        received: 0,
                        round: m.round,
                    };
                    self.send(from, Message::InstallSnapshotResponse(reply));
                }
                Message::RequestVote(m) => {
                    let reply = RequestVoteResponse {
                        term: self.term,
                        granted: false,
                        pre_vote: m.pre_vote,
                    };
                    self.send(from, Message::RequestVoteResponse(reply));
                }
                _ => {}
            }
            return false;
        }
        true
    }

    /// Move to `term` as a follower of `leader` (if known), persisting the new
    /// term and the cleared vote when the term changed.
    fn become_follower(&mut self, term: Term, leader: Option<NodeId>) {
        let was_leader = self.role == Role::Leader;
        if term > self.term {
            self.term = term;
            self.vote = None;
            self.persist_hard_state();
        }
        self.set_role(Role::Follower);
        self.leader = leader;
        self.votes.clear();
        self.progress.clear();
        self.transfer = None;
        self.reset_election_timer();
        if was_leader {
            self.fail_pending_reads();
        }
    }

    /// Hand every newly committed entry to the application, in order.
    fn apply_committed(&mut self) {
        if self.commit <= self.applied {
            return;
        }
        let from = self.applied.next();
        let entries = self.log.range(from, self.commit);
        assert!(
            entries.first().is_some_and(|e| e.index == from)
                && entries.last().is_some_and(|e| e.index == self.commit),
            "committed entries {from}..={} are not all in the log (snapshot at {})",
            self.commit,
            self.log.snapshot_index()
        );
        self.applied = self.commit;
        self.out.push(Action::Apply(entries));
    }
}
