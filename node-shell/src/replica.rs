//! The replica node shell: one replica of any [`StateMachine`] (`core_kv::Rsm`)
//! plus everything its driver would otherwise decide itself: which
//! connection is a peer and which a client (the handshake), decoding frames
//! within the size limit, numbering client submissions and routing their
//! answers back, and holding every send and reply until the persists it
//! depends on are durable ([`PersistGate`]).
//!
//! The driver's duties, in order:
//!
//! 1. Open storage, and build the shell with [`ReplicaNode::restore`] from
//!    the recovered [`Durable`] state.
//! 2. For every accepted connection, feed [`NodeInput::Accepted`], then
//!    [`NodeInput::Received`] with its bytes as they arrive (any chunking),
//!    and [`NodeInput::Closed`] when it ends.
//! 3. Keep one outbound connection to each peer the shell names with
//!    [`NodeAction::Dial`] (again, to the new address, when it names a peer
//!    a second time); write [`ReplicaNode::hello`], fetched anew for each
//!    connection, first on each new one, then the bytes of every
//!    [`NodeAction::Send`] for that peer. A send to a peer that is not
//!    connected may be dropped: Raft retransmits.
//! 4. Feed [`NodeInput::Tick`] every `tick_ms`.
//! 5. Write every [`NodeAction::Persist`] batch to storage and sync it, in
//!    batch order (several batches may share one sync), then feed
//!    [`NodeInput::Persisted`] with the highest batch now durable.
//! 6. Carry out [`NodeAction::Write`] and [`NodeAction::Close`] on accepted
//!    connections, in order, and log the reason of every close.
//! 7. On [`NodeAction::Stop`], stop the node and report the reason:
//!    restarting from storage is safe.
//! 8. Only with fault injection switched on (tests): feed
//!    [`NodeInput::Faults`] whenever the control file changes (see
//!    [`crate::faults`]).

use crate::admin::{AdminReply, AdminRequest, NodeStatus};
use crate::faults::LinkFaults;
use crate::frame::{Frame, PeerIdentity, CLIENT_NODE};
use crate::gate::{BatchId, PersistGate};
use crate::limits::{ClientLimits, HANDSHAKE_TICKS, MAX_HELLO_BYTES};
use crate::peers::{Bootstrap, PeerBook};
use crate::ConnId;
use core_kv::{
    ChangeOutcome, ClusterChange, NotLeader, Rsm, RsmAction, RsmConfig, RsmError, RsmInput,
    SnapshotJob, StateMachine,
};
use core_raft::{
    Action, Durable, LogIndex, Member, Membership, MembershipChange, NodeId, Role as RaftRole,
};
use std::collections::{BTreeMap, BTreeSet};
use wire::{encode_frame, Decoder, Hello};

/// Ticks between "still waiting" log lines of a node that is not yet in a
/// cluster (5 s at 10 ms ticks).
const WAITING_LOG_TICKS: u64 = 500;

/// Ticks between log lines summing up connections closed at the limits
/// (1 s at 10 ms ticks).
const OVERLOAD_LOG_TICKS: u64 = 100;

/// Submission ids from this one up are changes no client waits for (the
/// automatic additions of bootstrap peers, and `NodeInput::Change`).
const OWN_CHANGES: u64 = u64::MAX / 2;

/// Who a replica node is and what it accepts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeConfig {
    /// This replica's id.
    pub id: NodeId,
    /// Where it listens and its data directory's incarnation (both empty
    /// in the simulator, which checks no identities).
    pub identity: Member,
    /// How it comes to belong to a cluster.
    pub bootstrap: Bootstrap,
    /// Cluster id; every handshake must carry the same one.
    pub cluster: u64,
    /// The service's protocol version; every handshake must carry the same
    /// one, so a node of another service or release is refused by name.
    pub protocol: u32,
    /// Largest frame accepted or sent.
    pub max_frame_bytes: u32,
    /// What the node holds for its clients at most.
    pub limits: ClientLimits,
}

/// Everything that can happen to a replica node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeInput {
    /// One tick of the Raft clock.
    Tick,
    /// A connection was accepted; `conn` is the driver's handle for it.
    Accepted {
        /// The new connection.
        conn: ConnId,
    },
    /// Bytes arrived on an accepted connection.
    Received {
        /// The connection.
        conn: ConnId,
        /// The bytes, in any chunking.
        bytes: Vec<u8>,
    },
    /// An accepted connection ended.
    Closed {
        /// The connection.
        conn: ConnId,
    },
    /// Every persist batch through `batch` is durable.
    Persisted {
        /// The highest durable batch.
        batch: BatchId,
    },
    /// An operator inside the process (the simulator's) asks for a change
    /// to the cluster. Nothing is answered: the outcome shows in the
    /// replica's Raft state. Operators outside use `Frame::Admin`.
    Change(ClusterChange),
    /// Fault injection (tests of real clusters; see [`crate::faults`]):
    /// from now on drop the Raft frames of these links, replacing the
    /// links cut before. Drivers feed it only when fault injection is on.
    Faults(LinkFaults),
    /// A [`NodeAction::Capture`] has been run: its result.
    Captured {
        /// The job's index.
        index: LogIndex,
        /// What [`SnapshotJob::run`] returned.
        data: Result<Vec<u8>, String>,
    },
}

/// What a replica node wants done, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeAction {
    /// Make these Raft persists durable (in order), as batch `batch`, then
    /// report it with [`NodeInput::Persisted`].
    Persist {
        /// The batch number.
        batch: BatchId,
        /// `Persist*` actions of `core_raft`, in order.
        actions: Vec<Action>,
    },
    /// Write these bytes (one frame) on the outbound connection to a peer.
    Send {
        /// The peer.
        to: NodeId,
        /// The frame.
        bytes: Vec<u8>,
    },
    /// Write these bytes (one frame) on an accepted connection.
    Write {
        /// The connection.
        conn: ConnId,
        /// The frame.
        bytes: Vec<u8>,
    },
    /// Keep an outbound connection to peer `to` at `addr` (replacing any
    /// to another address), starting with [`ReplicaNode::hello`].
    Dial {
        /// The peer.
        to: NodeId,
        /// Its address.
        addr: String,
    },
    /// Read nothing more from this accepted connection until
    /// [`NodeAction::ResumeReading`]: it has as many requests in flight
    /// as it may (`ClientLimits::max_in_flight_per_connection`). Bytes
    /// already received are kept; TCP's flow control makes the client
    /// wait.
    PauseReading {
        /// The connection.
        conn: ConnId,
    },
    /// Read from this connection again.
    ResumeReading {
        /// The connection.
        conn: ConnId,
    },
    /// Close an accepted connection; log `reason` (at debug level when
    /// `overload`: the node logs a count of those once a second itself, so
    /// that a flood of clients does not flood the log too).
    Close {
        /// The connection.
        conn: ConnId,
        /// Why, for the log.
        reason: String,
        /// Closed to stay within the node's limits (`ClientLimits`).
        overload: bool,
    },
    /// Only with `RsmConfig::capture_off_loop`: encode this snapshot
    /// capture away from the event loop ([`SnapshotJob::run`], on a worker
    /// thread) and report the result with [`NodeInput::Captured`]. Nothing
    /// waits for it meanwhile.
    Capture(SnapshotJob),
    /// Only with `RsmConfig::observe_applies`: an `Apply` or `ApplySnapshot`
    /// the replica has just carried out, for invariant checkers (the
    /// simulator). Drivers leave observation off and never see it.
    Observed(Action),
    /// The replica stopped serving (its state no longer matches its log);
    /// stop the node and report `reason`. Restarting from storage is safe.
    Stop {
        /// What went wrong.
        reason: String,
    },
}

/// Who is on the other end of an accepted connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    /// No handshake yet.
    Unknown,
    /// A replica that sent its hello, not yet its identity.
    PeerHello(NodeId),
    /// A replica of this cluster.
    Peer(NodeId),
    /// A client.
    Client,
}

#[derive(Debug)]
struct Conn {
    decoder: Decoder,
    role: Role,
    /// This connection's share of `ReplicaNode::unfinished_bytes`.
    unfinished: usize,
    /// Its requests taken and not yet answered.
    in_flight: usize,
    /// Reading is paused ([`NodeAction::PauseReading`]) until an answer
    /// makes room.
    paused: bool,
}

/// A replica node: the replica, its connections and its unanswered clients.
pub struct ReplicaNode<S: StateMachine> {
    config: NodeConfig,
    replica: Rsm<S>,
    conns: BTreeMap<ConnId, Conn>,
    /// Submissions in flight: submission id -> (connection, client's id,
    /// request frame bytes).
    pending: BTreeMap<u64, (ConnId, u64, usize)>,
    /// The frame bytes of `pending`.
    pending_bytes: usize,
    /// Bytes of unfinished frames buffered on connections that are not
    /// (yet) from a known peer.
    unfinished_bytes: usize,
    /// Connections that said they are clients.
    clients: usize,
    /// Paused connections that an answer has made room on: their buffered
    /// requests are decoded, and reading resumes, at the end of the step.
    unpaused: BTreeSet<ConnId>,
    /// Connections closed at the limits since the last log line, and the
    /// first one's reason.
    overload_closes: (u64, String),
    /// Accepted connections in order, with the tick by which each must
    /// have finished its handshake.
    handshakes: std::collections::VecDeque<(u64, ConnId)>,
    /// Operators' changes in flight, likewise.
    changes: BTreeMap<u64, (ConnId, u64)>,
    next_submission: u64,
    next_own_change: u64,
    gate: PersistGate<RsmAction<S::Output>>,
    stopped: bool,
    out: Vec<NodeAction>,
    book: PeerBook,
    /// Only on the bootstrap peer with the lowest id, before it founds the
    /// cluster: the peers that have not yet said they belong to none.
    forming: Option<BTreeSet<NodeId>>,
    /// With bootstrap peers: whether the committed membership has come to
    /// hold every one of them as a voter (or has moved on since). Until
    /// then clients are turned away, so that a cluster never acknowledges
    /// a write while it has fewer voters than it was started with.
    bootstrapped: bool,
    ticks: u64,
    /// Links cut by fault injection (empty unless a driver says otherwise).
    faults: LinkFaults,
}

impl<S: StateMachine> ReplicaNode<S> {
    /// Start from durable state (empty for a new node), restoring `sm` from
    /// the stored snapshot. `rsm.raft.id` must be `config.id`.
    ///
    /// With [`Bootstrap::Peers`] or [`Bootstrap::Join`] the shell decides
    /// the Raft bootstrap configuration itself (`rsm.raft.voters` is
    /// ignored): the lowest-id peer founds the cluster, everyone else
    /// waits to be added.
    pub fn restore(
        config: NodeConfig,
        mut rsm: RsmConfig,
        durable: Durable,
        sm: S,
    ) -> Result<Self, RsmError> {
        assert_eq!(config.id, rsm.raft.id, "node and Raft ids differ");
        let fresh = durable.hard_state == Default::default()
            && durable.entries.is_empty()
            && durable.snapshot.is_none();
        let mut forming = None;
        match &config.bootstrap {
            Bootstrap::Static => {}
            Bootstrap::Join => {
                rsm.raft.voters.clear();
                rsm.raft.bootstrap_members.clear();
            }
            Bootstrap::Peers(peers) => {
                rsm.raft.voters.clear();
                rsm.raft.bootstrap_members.clear();
                if peers.keys().next() == Some(&config.id) {
                    if fresh {
                        forming = Some(peers.keys().copied().filter(|p| *p != config.id).collect());
                    } else {
                        // It founded the cluster in an earlier life.
                        rsm.raft.voters = vec![config.id];
                        rsm.raft
                            .bootstrap_members
                            .insert(config.id, config.identity.clone());
                    }
                }
            }
        }
        let mut node = ReplicaNode {
            replica: Rsm::restore(rsm, durable, sm)?,
            book: PeerBook::new(&config.bootstrap),
            config,
            conns: BTreeMap::new(),
            pending: BTreeMap::new(),
            pending_bytes: 0,
            unfinished_bytes: 0,
            clients: 0,
            overload_closes: (0, String::new()),
            unpaused: BTreeSet::new(),
            handshakes: std::collections::VecDeque::new(),
            changes: BTreeMap::new(),
            next_submission: 0,
            next_own_change: OWN_CHANGES,
            gate: PersistGate::new(),
            stopped: false,
            out: Vec::new(),
            forming,
            bootstrapped: false,
            ticks: 0,
            faults: LinkFaults::default(),
        };
        node.found_if_ready();
        Ok(node)
    }

    /// The replica (read-only), for status and checks.
    pub fn replica(&self) -> &Rsm<S> {
        &self.replica
    }

    /// Stop the node, keeping its state machine.
    pub fn into_state(self) -> S {
        self.replica.into_state()
    }

    /// The node's configuration.
    pub fn config(&self) -> &NodeConfig {
        &self.config
    }

    /// Client submissions not yet answered.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Persist batches handed out and not yet reported durable.
    pub fn persists_in_flight(&self) -> u64 {
        self.gate.in_flight()
    }

    /// The frames to write first on every outbound connection to `peer`:
    /// the hello and this node's identity. Fetch them for each new
    /// connection: they say whether the node belongs to a cluster yet, and
    /// which incarnation of `peer` the membership knows.
    pub fn hello(&self, peer: NodeId) -> Vec<u8> {
        let hello = Hello::new(self.config.protocol, self.config.cluster, self.config.id.0);
        let mut bytes =
            encode_frame(&hello, self.config.max_frame_bytes).expect("a hello fits in any frame");
        let identity: Frame<S::Op, S::Output> = Frame::PeerIdentity(PeerIdentity {
            incarnation: self.config.identity.incarnation,
            addr: self.config.identity.addr.clone(),
            formed: self.formed(),
            expected: self
                .replica
                .raft()
                .membership()
                .member(peer)
                .map_or(0, |m| m.incarnation),
        });
        bytes.extend(
            encode_frame(&identity, self.config.max_frame_bytes)
                .expect("an identity fits in any frame"),
        );
        bytes
    }

    /// Whether this node belongs to a cluster (it has a term or members).
    pub fn formed(&self) -> bool {
        let raft = self.replica.raft();
        raft.term().0 > 0 || !raft.membership().voters.is_empty()
    }

    /// This node's status, as `kv status` shows it.
    pub fn status(&self) -> NodeStatus {
        let raft = self.replica.raft();
        let membership = raft.membership();
        let role = match raft.role() {
            RaftRole::Leader => "leader",
            RaftRole::Candidate => "candidate",
            RaftRole::PreCandidate => "pre-candidate",
            RaftRole::Follower if membership.is_voter(raft.id()) => "follower",
            RaftRole::Follower if membership.contains(raft.id()) => "learner",
            RaftRole::Follower => "not a member",
        };
        let leader = raft.leader_hint();
        NodeStatus {
            id: raft.id(),
            incarnation: self.config.identity.incarnation,
            addr: self.config.identity.addr.clone(),
            role: role.to_string(),
            term: raft.term(),
            leader,
            leader_addr: leader.and_then(|l| self.address_of(l)),
            commit: raft.commit_index(),
            applied: raft.applied_index(),
            last_index: raft.last_index(),
            snapshot_index: raft.snapshot_index(),
            log_bytes: raft.log_bytes() as u64,
            membership: membership.clone(),
            membership_index: raft.membership_index(),
            replication: raft
                .peers()
                .iter()
                .filter_map(|p| raft.match_index(*p).map(|m| (*p, m)))
                .collect(),
            formed: self.formed(),
            state: self.replica.state().storage_summary(),
        }
    }

    /// Where peer `id` listens, if this node knows (itself included).
    pub fn address_of(&self, id: NodeId) -> Option<String> {
        if id == self.config.id {
            return Some(self.config.identity.addr.clone()).filter(|a| !a.is_empty());
        }
        self.book.address(id, self.replica.raft().membership())
    }

    /// Feed one input; returns the actions to carry out, in order.
    pub fn step(&mut self, input: NodeInput) -> Vec<NodeAction> {
        match input {
            NodeInput::Tick => {
                self.ticks += 1;
                self.replica_step(RsmInput::Tick);
                self.end_slow_handshakes();
                self.log_overload();
                self.check_own_identity();
                self.change_membership_on_its_own();
                self.dial_new_peers();
                self.log_if_waiting();
            }
            NodeInput::Accepted { conn } => {
                // Nothing but a hello until the handshake is done.
                let decoder = Decoder::new(MAX_HELLO_BYTES);
                let fresh = Conn {
                    decoder,
                    role: Role::Unknown,
                    unfinished: 0,
                    in_flight: 0,
                    paused: false,
                };
                if self.conns.contains_key(&conn) {
                    tracing::warn!(%conn, "connection handle reused while open; starting it afresh");
                    self.forget(conn);
                }
                self.conns.insert(conn, fresh);
                self.handshakes
                    .push_back((self.ticks + HANDSHAKE_TICKS, conn));
            }
            NodeInput::Received { conn, bytes } => self.received(conn, &bytes),
            NodeInput::Closed { conn } => self.forget(conn),
            NodeInput::Persisted { batch } => {
                let ready = self.gate.persisted(batch);
                self.carry_out(ready);
            }
            NodeInput::Change(change) => {
                self.next_own_change += 1;
                let id = self.next_own_change;
                self.replica_step(RsmInput::Change { id, change });
            }
            NodeInput::Faults(links) => self.faults = links,
            NodeInput::Captured { index, data } => {
                self.replica_step(RsmInput::Captured { index, data });
            }
        }
        self.resume_unpaused();
        std::mem::take(&mut self.out)
    }

    /// Resume reading the paused connections that answers made room on,
    /// first decoding the requests they had already sent.
    fn resume_unpaused(&mut self) {
        while let Some(conn) = self.unpaused.pop_first() {
            let Some(c) = self.conns.get_mut(&conn) else {
                continue;
            };
            c.paused = false;
            self.received(conn, &[]);
            if self.conns.get(&conn).is_some_and(|c| !c.paused) {
                self.out.push(NodeAction::ResumeReading { conn });
            }
        }
    }

    /// Decode what arrived on `conn` and act on every whole frame.
    fn received(&mut self, conn: ConnId, bytes: &[u8]) {
        let Some(c) = self.conns.get_mut(&conn) else {
            tracing::debug!(%conn, "bytes on an unknown connection dropped");
            return;
        };
        c.decoder.push(bytes);
        loop {
            let Some(c) = self.conns.get_mut(&conn) else {
                return;
            };
            let next = match c.role {
                Role::Unknown => self.handshake(conn),
                Role::PeerHello(from) => self.peer_identity(conn, from),
                Role::Peer(from) => self.peer_frame(conn, from),
                Role::Client => self.client_frame(conn),
            };
            match next {
                Ok(true) => {}
                Ok(false) => break,
                Err(reason) => {
                    self.close(conn, reason);
                    return;
                }
            }
        }
        self.count_unfinished(conn);
    }

    /// Count what is left in `conn`'s decoder (an unfinished frame) toward
    /// the bytes held for connections not known as peers; past
    /// `max_unfinished_bytes`, close it.
    fn count_unfinished(&mut self, conn: ConnId) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let now = match c.role {
            Role::Peer(_) => 0,
            _ => c.decoder.buffered(),
        };
        self.unfinished_bytes = self.unfinished_bytes - c.unfinished + now;
        c.unfinished = now;
        let max = self.config.limits.max_unfinished_bytes;
        if now > 0 && self.unfinished_bytes > max {
            let reason = format!(
                "clients hold {} bytes of unfinished requests, more than the limit of \
                 {max}; this connection's {now} are dropped",
                self.unfinished_bytes
            );
            self.close_overloaded(conn, reason);
        }
    }

    /// Drop the bookkeeping of a connection that ended.
    fn forget(&mut self, conn: ConnId) {
        if let Some(c) = self.conns.remove(&conn) {
            self.unfinished_bytes -= c.unfinished;
            if c.role == Role::Client {
                self.clients -= 1;
            }
        }
    }

    /// Close the connections whose handshake did not finish in time.
    fn end_slow_handshakes(&mut self) {
        while let Some(&(deadline, conn)) = self.handshakes.front() {
            if deadline > self.ticks {
                return;
            }
            self.handshakes.pop_front();
            let unfinished = self
                .conns
                .get(&conn)
                .is_some_and(|c| matches!(c.role, Role::Unknown | Role::PeerHello(_)));
            if unfinished {
                let reason = format!("no handshake within {HANDSHAKE_TICKS} ticks");
                self.close_overloaded(conn, reason);
            }
        }
    }

    /// Check the hello on `conn`. `Ok(true)` if one was read.
    fn handshake(&mut self, conn: ConnId) -> Result<bool, String> {
        let c = self.conns.get_mut(&conn).expect("caller checked");
        let hello = match c.decoder.next_message::<Hello>() {
            Ok(None) => return Ok(false),
            Ok(Some(h)) => h,
            Err(e) => return Err(format!("bad handshake frame: {e}")),
        };
        let ours = Hello::new(self.config.protocol, self.config.cluster, self.config.id.0);
        // Any id may be a peer: a member this node has not heard of yet
        // (it lags), or the leader adding it. Raft ignores all but a
        // leader's messages from non-members; identities are checked next.
        ours.check(&hello, |n| n != self.config.id.0)
            .map_err(|e| format!("refused: {e}"))?;
        if hello.node == CLIENT_NODE {
            let max = self.config.limits.max_clients();
            if self.clients >= max {
                let reason = format!("{max} clients are connected, the limit (--max-connections)");
                self.close_overloaded(conn, reason);
                return Ok(false);
            }
            self.clients += 1;
            c.role = Role::Client;
            let limits = self.config.limits.within_frame(self.config.max_frame_bytes);
            c.decoder.set_max_frame_bytes(limits.max_request_bytes);
        } else {
            c.role = Role::PeerHello(NodeId(hello.node));
            c.decoder.set_max_frame_bytes(self.config.max_frame_bytes);
        }
        Ok(true)
    }

    /// The identity a peer sends after its hello.
    fn peer_identity(&mut self, conn: ConnId, from: NodeId) -> Result<bool, String> {
        let c = self.conns.get_mut(&conn).expect("caller checked");
        let identity = match c.decoder.next_message::<Frame<S::Op, S::Output>>() {
            Ok(None) => return Ok(false),
            Ok(Some(Frame::PeerIdentity(identity))) => identity,
            Ok(Some(_)) => {
                return Err(format!(
                    "replica {from} sent no identity after its hello (an older release?)"
                ))
            }
            Err(e) => return Err(format!("undecodable identity from replica {from}: {e}")),
        };
        if let Some(why) = self.wrong_incarnation(from, identity.incarnation) {
            return Err(why);
        }
        if let Some(c) = self.conns.get_mut(&conn) {
            c.role = Role::Peer(from);
        }
        let (formed, expected) = (identity.formed, identity.expected);
        let mine = self.config.identity.incarnation;
        if expected != 0 && mine != 0 && expected != mine {
            self.stop(format!(
                "node {} knows this node (node {}) as incarnation {expected:016x}, but this \
                 data directory has incarnation {mine:016x}: it was wiped or copied, and the \
                 cluster refuses it under its old identity. Remove node {} (`kv member remove \
                 {}`) and start this node again with --join to add it back as a new member",
                from.0, self.config.id.0, self.config.id.0, self.config.id.0
            ));
            return Ok(false);
        }
        self.book.saw(from, identity);
        self.dial_new_peers();
        if let Some(waiting) = &mut self.forming {
            if formed {
                self.stop(format!(
                    "node {} already belongs to a cluster, but this node's data directory \
                     is new, so it must not found another one. If its disk was wiped or \
                     replaced, remove node {} from the cluster (`kv member remove {}`) and \
                     start it again with --join to add it back as a new member",
                    from.0, self.config.id.0, self.config.id.0
                ));
                return Ok(false);
            }
            waiting.remove(&from);
            self.found_if_ready();
        }
        Ok(true)
    }

    /// Why a peer claiming to be `peer` with `incarnation` must be refused:
    /// the membership knows that member under another incarnation.
    fn wrong_incarnation(&self, peer: NodeId, incarnation: u64) -> Option<String> {
        let member = self.replica.raft().membership().member(peer)?;
        (member.incarnation != 0 && member.incarnation != incarnation).then(|| {
            format!(
                "refused: node {peer} is a member with incarnation {:016x}, but this \
                 connection presents incarnation {incarnation:016x}: its data directory was \
                 wiped or replaced, and a node that forgot its votes must not vote again. \
                 Remove it (`kv member remove {}`) and add it back as a new member",
                member.incarnation, peer.0
            )
        })
    }

    /// One frame from a peer: only Raft messages are expected.
    fn peer_frame(&mut self, conn: ConnId, from: NodeId) -> Result<bool, String> {
        let c = self.conns.get_mut(&conn).expect("caller checked");
        match c.decoder.next_message::<Frame<S::Op, S::Output>>() {
            Ok(None) => Ok(false),
            // Fault injection: lost on the way in, as if never sent.
            Ok(Some(Frame::Raft(_))) if self.faults.drop_from.contains(&from) => Ok(true),
            Ok(Some(Frame::Raft(msg))) => {
                // The membership may have changed since the handshake.
                let incarnation = self.book.seen(from).map_or(0, |s| s.incarnation);
                if let Some(why) = self.wrong_incarnation(from, incarnation) {
                    return Err(why);
                }
                self.replica_step(RsmInput::Receive { from, msg });
                Ok(true)
            }
            Ok(Some(_)) => Err(format!("replica {from} sent a frame that is not Raft")),
            Err(e) => Err(format!("undecodable frame from replica {from}: {e}")),
        }
    }

    /// One frame from a client: only requests are expected.
    fn client_frame(&mut self, conn: ConnId) -> Result<bool, String> {
        let c = self.conns.get_mut(&conn).expect("caller checked");
        if c.in_flight >= self.config.limits.max_in_flight_per_connection {
            // Decode no more until an answer makes room; the driver stops
            // reading, so what waits is at most one read's worth.
            if !c.paused {
                c.paused = true;
                self.out.push(NodeAction::PauseReading { conn });
            }
            return Ok(false);
        }
        let buffered = c.decoder.buffered();
        let frame = c.decoder.next_message::<Frame<S::Op, S::Output>>();
        let frame_bytes = buffered - c.decoder.buffered();
        match frame {
            Ok(None) => Ok(false),
            Ok(Some(Frame::Request { id, .. })) if self.full(frame_bytes) => {
                let frame: Frame<S::Op, S::Output> = Frame::Busy { id };
                if let Some(bytes) = self.encode(&frame) {
                    self.out.push(NodeAction::Write { conn, bytes });
                }
                Ok(true)
            }
            Ok(Some(Frame::Request { id, .. })) if !self.open_for_clients() => {
                // Not "not leader" with a hint: the client should wait and
                // try again, not chase anyone.
                self.next_submission += 1;
                let sub = self.next_submission;
                self.pending.insert(sub, (conn, id, 0));
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.in_flight += 1;
                }
                self.reply(sub, Err(NotLeader { leader_hint: None }));
                Ok(true)
            }
            Ok(Some(Frame::Request { id, op })) => {
                self.next_submission += 1;
                let sub = self.next_submission;
                self.pending.insert(sub, (conn, id, frame_bytes));
                self.pending_bytes += frame_bytes;
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.in_flight += 1;
                }
                self.replica_step(RsmInput::Submit { id: sub, op });
                Ok(true)
            }
            Ok(Some(Frame::Admin { id, request })) => {
                self.admin(conn, id, request);
                Ok(true)
            }
            Ok(Some(_)) => Err("a client sent a frame that is not a request".into()),
            Err(e) => Err(format!("undecodable frame from a client: {e}")),
        }
    }

    /// Whether taking one more request of `bytes` would pass the limits on
    /// requests in flight (operators' changes count too).
    fn full(&self, bytes: usize) -> bool {
        let limits = &self.config.limits;
        self.pending.len() + self.changes.len() >= limits.max_pending_requests
            || (self.pending_bytes + bytes > limits.max_pending_bytes && !self.pending.is_empty())
    }

    /// An operator's request: the status at once, a change through Raft.
    fn admin(&mut self, conn: ConnId, id: u64, request: AdminRequest) {
        match request {
            AdminRequest::Status => {
                let reply = AdminReply::Status(Box::new(self.status()));
                self.write_admin_reply(conn, id, reply);
            }
            AdminRequest::Change(_) if self.full(0) => {
                let outcome = ChangeOutcome::Refused {
                    reason: "the node is at its limit of requests in flight".into(),
                    retry: true,
                };
                let reply = AdminReply::Changed {
                    outcome,
                    leader_addr: None,
                };
                self.write_admin_reply(conn, id, reply);
            }
            AdminRequest::Change(change) => {
                self.next_submission += 1;
                let sub = self.next_submission;
                self.changes.insert(sub, (conn, id));
                self.replica_step(RsmInput::Change { id: sub, change });
            }
        }
    }

    fn write_admin_reply(&mut self, conn: ConnId, id: u64, reply: AdminReply) {
        let frame: Frame<S::Op, S::Output> = Frame::AdminReply { id, reply };
        if let Some(bytes) = self.encode(&frame) {
            self.out.push(NodeAction::Write { conn, bytes });
        }
    }

    /// Whether clients may be served: always, except while a cluster
    /// started from bootstrap peers is still adding them.
    fn open_for_clients(&mut self) -> bool {
        if self.bootstrapped {
            return true;
        }
        let Some(peers) = self.config.bootstrap.peers() else {
            self.bootstrapped = true;
            return true;
        };
        let raft = self.replica.raft();
        let m = raft.membership();
        let complete = peers.keys().all(|p| m.is_voter(*p))
            || !m.retired.is_empty()
            || m.voters
                .iter()
                .chain(&m.learners)
                .any(|id| !peers.contains_key(id));
        // A snapshot or a log that starts past the membership entries
        // (index > 0 but no entry holding one) comes from a formed cluster.
        self.bootstrapped = complete && raft.membership_index() <= raft.commit_index();
        self.bootstrapped
    }

    /// Found the cluster once no bootstrap peer is left to hear from.
    fn found_if_ready(&mut self) {
        if !self.forming.as_ref().is_some_and(|w| w.is_empty()) {
            return;
        }
        self.forming = None;
        let me = self.config.id;
        let mut membership = Membership::with_voters([me]);
        membership.members.insert(me, self.config.identity.clone());
        match self.replica.bootstrap(membership) {
            Ok(()) => tracing::info!(
                node = %me,
                "no peer belongs to a cluster: founding a new one with this node as its \
                 first voter; the other peers join as learners and are promoted"
            ),
            Err(e) => self.stop(format!("cannot found the cluster: {e}")),
        }
    }

    /// While a cluster started from bootstrap peers is being formed, its
    /// leader adds each of them that has connected as a learner, and
    /// promotes each learner among them that holds every committed entry:
    /// one change at a time, each once the previous one is committed. Once
    /// all are voters, membership is the operator's alone.
    fn change_membership_on_its_own(&mut self) {
        if self.open_for_clients() {
            return;
        }
        let Some(peers) = self.config.bootstrap.peers() else {
            return;
        };
        let raft = self.replica.raft();
        if !raft.is_leader() || raft.membership_index() > raft.commit_index() {
            return;
        }
        let m = raft.membership();
        let change = peers.keys().find_map(|&p| {
            if m.learners.contains(&p) {
                let caught_up = raft.match_index(p)? >= raft.commit_index();
                return caught_up.then_some(MembershipChange::Promote(p));
            }
            if m.contains(p) || m.retired.contains(&p) {
                return None;
            }
            let seen = self.book.seen(p)?;
            let addr = self.book.address(p, m)?;
            Some(MembershipChange::AddLearner(
                p,
                Member {
                    addr,
                    incarnation: seen.incarnation,
                },
            ))
        });
        if let Some(change) = change {
            tracing::info!(node = %raft.id(), "bootstrap peer: {change:?}");
            self.next_own_change += 1;
            let id = self.next_own_change;
            self.replica_step(RsmInput::Change {
                id,
                change: ClusterChange::Membership(change),
            });
        }
    }

    /// A node that finds itself in the membership under another
    /// incarnation is a copy or a wiped former self: it stops.
    fn check_own_identity(&mut self) {
        let me = self.config.id;
        let mine = self.config.identity.incarnation;
        let Some(listed) = self.replica.raft().membership().member(me) else {
            return;
        };
        if mine != 0 && listed.incarnation != 0 && listed.incarnation != mine && !self.stopped {
            self.stop(format!(
                "the cluster lists node {me} with incarnation {:016x}, but this data \
                 directory has incarnation {mine:016x}: it was wiped or copied. Remove node \
                 {} (`kv member remove {}`) and add this node back as a new member",
                listed.incarnation, me.0, me.0
            ));
        }
    }

    fn dial_new_peers(&mut self) {
        let me = self.config.id;
        let dials = self.book.new_dials(me, self.replica.raft().membership());
        for (to, addr) in dials {
            self.out.push(NodeAction::Dial { to, addr });
        }
    }

    fn log_if_waiting(&self) {
        if !self.ticks.is_multiple_of(WAITING_LOG_TICKS) {
            return;
        }
        if let Some(waiting) = &self.forming {
            let ids: Vec<String> = waiting.iter().map(|p| p.0.to_string()).collect();
            tracing::info!(
                node = %self.config.id,
                "waiting for bootstrap peers {} to start before founding the cluster",
                ids.join(", ")
            );
        } else if !self.formed() && self.config.bootstrap != Bootstrap::Static {
            tracing::info!(
                node = %self.config.id,
                "not yet a member: waiting for the cluster's leader to add this node"
            );
        }
    }

    fn stop(&mut self, reason: String) {
        if !self.stopped {
            self.stopped = true;
            self.out.push(NodeAction::Stop { reason });
        }
    }

    fn close(&mut self, conn: ConnId, reason: String) {
        self.close_as(conn, reason, false);
    }

    /// Close `conn` to stay within the limits: counted, and summed up in
    /// the log once a second.
    fn close_overloaded(&mut self, conn: ConnId, reason: String) {
        if self.overload_closes.0 == 0 {
            self.overload_closes.1 = reason.clone();
        }
        self.overload_closes.0 += 1;
        self.close_as(conn, reason, true);
    }

    fn close_as(&mut self, conn: ConnId, reason: String, overload: bool) {
        self.forget(conn);
        self.out.push(NodeAction::Close {
            conn,
            reason,
            overload,
        });
    }

    /// Once a second: how many connections were closed at the limits.
    fn log_overload(&mut self) {
        if self.ticks.is_multiple_of(OVERLOAD_LOG_TICKS) && self.overload_closes.0 > 0 {
            let (n, example) = std::mem::take(&mut self.overload_closes);
            tracing::warn!(node = %self.config.id, "closed {n} client connections at the node's limits, for example: {example}");
        }
    }

    /// Step the replica and pass its actions through the gate.
    fn replica_step(&mut self, input: RsmInput<S::Op>) {
        // A failed replica still answers submissions (not leader) until the
        // driver has stopped the node, and ignores everything else.
        let actions = self.replica.step(input);
        let admitted = self.gate.admit(actions);
        if let Some((batch, persists)) = admitted.batch {
            let actions = persists
                .into_iter()
                .filter_map(|a| match a {
                    RsmAction::Raft(a) => Some(a),
                    _ => None,
                })
                .collect();
            self.out.push(NodeAction::Persist { batch, actions });
        }
        self.carry_out(admitted.ready);
        if let Some(why) = self.replica.failure() {
            let why = why.to_string();
            self.stop(why);
        }
    }

    /// Turn released replica actions into writes.
    fn carry_out(&mut self, actions: Vec<RsmAction<S::Output>>) {
        for action in actions {
            match action {
                // Fault injection: lost on the way out.
                RsmAction::Raft(Action::Send { to, .. }) if self.faults.drop_to.contains(&to) => {}
                RsmAction::Raft(Action::Send { to, msg }) => {
                    let frame: Frame<S::Op, S::Output> = Frame::Raft(msg);
                    if let Some(bytes) = self.encode(&frame) {
                        self.out.push(NodeAction::Send { to, bytes });
                    }
                }
                RsmAction::Reply { id, result } => self.reply(id, result),
                RsmAction::Changed { id, outcome } => self.changed(id, outcome),
                RsmAction::Observed(a) => self.out.push(NodeAction::Observed(a)),
                RsmAction::Capture(job) => self.out.push(NodeAction::Capture(job)),
                // Persists went to their batch.
                RsmAction::Raft(_) => {}
            }
        }
    }

    fn reply(&mut self, submission: u64, result: Result<S::Output, NotLeader>) {
        let Some((conn, id, bytes)) = self.pending.remove(&submission) else {
            return;
        };
        self.pending_bytes -= bytes;
        if let Some(c) = self.conns.get_mut(&conn) {
            c.in_flight -= 1;
            if c.paused {
                self.unpaused.insert(conn);
            }
        }
        if !self.conns.contains_key(&conn) {
            return; // The client left; it will retry elsewhere.
        }
        let leader_addr = match &result {
            Err(NotLeader {
                leader_hint: Some(l),
            }) => self.address_of(*l),
            _ => None,
        };
        let frame: Frame<S::Op, S::Output> = Frame::Reply {
            id,
            result,
            leader_addr,
        };
        if let Some(bytes) = self.encode(&frame) {
            self.out.push(NodeAction::Write { conn, bytes });
        }
    }

    fn changed(&mut self, submission: u64, outcome: ChangeOutcome) {
        if submission > OWN_CHANGES {
            if let ChangeOutcome::Refused { reason, .. } = &outcome {
                tracing::debug!("bootstrap peer change refused: {reason}");
            }
            return;
        }
        let Some((conn, id)) = self.changes.remove(&submission) else {
            return;
        };
        if !self.conns.contains_key(&conn) {
            return;
        }
        let leader_addr = match &outcome {
            ChangeOutcome::NotLeader(NotLeader {
                leader_hint: Some(l),
            }) => self.address_of(*l),
            _ => None,
        };
        self.write_admin_reply(
            conn,
            id,
            AdminReply::Changed {
                outcome,
                leader_addr,
            },
        );
    }

    fn encode(&self, frame: &Frame<S::Op, S::Output>) -> Option<Vec<u8>> {
        match encode_frame(frame, self.config.max_frame_bytes) {
            Ok(bytes) => Some(bytes),
            Err(e) => {
                tracing::warn!(node = %self.config.id, "not sent: {e}");
                None
            }
        }
    }
}
