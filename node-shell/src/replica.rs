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
//! 3. Keep one outbound connection to each peer; write [`ReplicaNode::hello`]
//!    first on each new one, then the bytes of every [`NodeAction::Send`]
//!    for that peer. A send to a peer that is not connected may be dropped:
//!    Raft retransmits.
//! 4. Feed [`NodeInput::Tick`] every `tick_ms`.
//! 5. Write every [`NodeAction::Persist`] batch to storage and sync it, in
//!    batch order (several batches may share one sync), then feed
//!    [`NodeInput::Persisted`] with the highest batch now durable.
//! 6. Carry out [`NodeAction::Write`] and [`NodeAction::Close`] on accepted
//!    connections, in order, and log the reason of every close.
//! 7. On [`NodeAction::Stop`], stop the node and report the reason:
//!    restarting from storage is safe.

use crate::frame::{Frame, CLIENT_NODE};
use crate::gate::{BatchId, PersistGate};
use crate::ConnId;
use core_kv::{NotLeader, Rsm, RsmAction, RsmConfig, RsmError, RsmInput, StateMachine};
use core_raft::{Action, Durable, MembershipChange, NodeId};
use std::collections::BTreeMap;
use wire::{encode_frame, Decoder, Hello};

/// Who a replica node is and what it accepts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeConfig {
    /// This replica's id.
    pub id: NodeId,
    /// Every replica's id (this one included): the node ids a peer
    /// connection may claim.
    pub members: Vec<NodeId>,
    /// Cluster id; every handshake must carry the same one.
    pub cluster: u64,
    /// The service's protocol version; every handshake must carry the same
    /// one, so a node of another service or release is refused by name.
    pub protocol: u32,
    /// Largest frame accepted or sent.
    pub max_frame_bytes: u32,
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
    /// An operator asks this replica, if it leads, to append a
    /// single-server membership change (see
    /// `core_kv::RsmInput::ChangeMembership`: nothing is answered; the
    /// outcome shows in the replica's Raft state).
    ChangeMembership(MembershipChange),
    /// An operator asks this replica, if it leads, to hand leadership to
    /// voter `to`.
    TransferLeadership {
        /// The voter to hand over to.
        to: NodeId,
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
    /// Close an accepted connection; log `reason`.
    Close {
        /// The connection.
        conn: ConnId,
        /// Why, for the log.
        reason: String,
    },
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
    /// A replica of this cluster.
    Peer(NodeId),
    /// A client.
    Client,
}

#[derive(Debug)]
struct Conn {
    decoder: Decoder,
    role: Role,
}

/// A replica node: the replica, its connections and its unanswered clients.
pub struct ReplicaNode<S: StateMachine> {
    config: NodeConfig,
    replica: Rsm<S>,
    conns: BTreeMap<ConnId, Conn>,
    /// Submissions in flight: submission id -> (connection, client's id).
    pending: BTreeMap<u64, (ConnId, u64)>,
    next_submission: u64,
    gate: PersistGate<RsmAction<S::Output>>,
    stopped: bool,
    out: Vec<NodeAction>,
}

impl<S: StateMachine> ReplicaNode<S> {
    /// Start from durable state (empty for a new node), restoring `sm` from
    /// the stored snapshot. `rsm.raft.id` must be `config.id`.
    pub fn restore(
        config: NodeConfig,
        rsm: RsmConfig,
        durable: Durable,
        sm: S,
    ) -> Result<Self, RsmError> {
        assert_eq!(config.id, rsm.raft.id, "node and Raft ids differ");
        Ok(ReplicaNode {
            replica: Rsm::restore(rsm, durable, sm)?,
            config,
            conns: BTreeMap::new(),
            pending: BTreeMap::new(),
            next_submission: 0,
            gate: PersistGate::new(),
            stopped: false,
            out: Vec::new(),
        })
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

    /// The handshake frame to write first on every outbound connection.
    pub fn hello(&self) -> Vec<u8> {
        let hello = Hello::new(self.config.protocol, self.config.cluster, self.config.id.0);
        encode_frame(&hello, self.config.max_frame_bytes).expect("a hello fits in any frame")
    }

    /// Feed one input; returns the actions to carry out, in order.
    pub fn step(&mut self, input: NodeInput) -> Vec<NodeAction> {
        match input {
            NodeInput::Tick => self.replica_step(RsmInput::Tick),
            NodeInput::Accepted { conn } => {
                let decoder = Decoder::new(self.config.max_frame_bytes);
                let fresh = Conn {
                    decoder,
                    role: Role::Unknown,
                };
                if self.conns.insert(conn, fresh).is_some() {
                    tracing::warn!(%conn, "connection handle reused while open; starting it afresh");
                }
            }
            NodeInput::Received { conn, bytes } => self.received(conn, &bytes),
            NodeInput::Closed { conn } => {
                self.conns.remove(&conn);
            }
            NodeInput::Persisted { batch } => {
                let ready = self.gate.persisted(batch);
                self.carry_out(ready);
            }
            NodeInput::ChangeMembership(change) => {
                self.replica_step(RsmInput::ChangeMembership(change))
            }
            NodeInput::TransferLeadership { to } => {
                self.replica_step(RsmInput::TransferLeadership { to })
            }
        }
        std::mem::take(&mut self.out)
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
                Role::Peer(from) => self.peer_frame(conn, from),
                Role::Client => self.client_frame(conn),
            };
            match next {
                Ok(true) => {}
                Ok(false) => return,
                Err(reason) => {
                    self.close(conn, reason);
                    return;
                }
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
        let members = &self.config.members;
        ours.check(&hello, |n| {
            n == CLIENT_NODE || (n != self.config.id.0 && members.contains(&NodeId(n)))
        })
        .map_err(|e| format!("refused: {e}"))?;
        c.role = if hello.node == CLIENT_NODE {
            Role::Client
        } else {
            Role::Peer(NodeId(hello.node))
        };
        Ok(true)
    }

    /// One frame from a peer: only Raft messages are expected.
    fn peer_frame(&mut self, conn: ConnId, from: NodeId) -> Result<bool, String> {
        let c = self.conns.get_mut(&conn).expect("caller checked");
        match c.decoder.next_message::<Frame<S::Op, S::Output>>() {
            Ok(None) => Ok(false),
            Ok(Some(Frame::Raft(msg))) => {
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
        match c.decoder.next_message::<Frame<S::Op, S::Output>>() {
            Ok(None) => Ok(false),
            Ok(Some(Frame::Request { id, op })) => {
                self.next_submission += 1;
                let sub = self.next_submission;
                self.pending.insert(sub, (conn, id));
                self.replica_step(RsmInput::Submit { id: sub, op });
                Ok(true)
            }
            Ok(Some(_)) => Err("a client sent a frame that is not a request".into()),
            Err(e) => Err(format!("undecodable frame from a client: {e}")),
        }
    }

    fn close(&mut self, conn: ConnId, reason: String) {
        self.conns.remove(&conn);
        self.out.push(NodeAction::Close { conn, reason });
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
        if let (Some(why), false) = (self.replica.failure(), self.stopped) {
            self.stopped = true;
            self.out.push(NodeAction::Stop {
                reason: why.to_string(),
            });
        }
    }

    /// Turn released replica actions into writes.
    fn carry_out(&mut self, actions: Vec<RsmAction<S::Output>>) {
        for action in actions {
            match action {
                RsmAction::Raft(Action::Send { to, msg }) => {
                    let frame: Frame<S::Op, S::Output> = Frame::Raft(msg);
                    if let Some(bytes) = self.encode(&frame) {
                        self.out.push(NodeAction::Send { to, bytes });
                    }
                }
                RsmAction::Reply { id, result } => self.reply(id, result),
                RsmAction::Observed(a) => self.out.push(NodeAction::Observed(a)),
                // Persists went to their batch.
                RsmAction::Raft(_) => {}
            }
        }
    }

    fn reply(&mut self, submission: u64, result: Result<S::Output, NotLeader>) {
        let Some((conn, id)) = self.pending.remove(&submission) else {
            return;
        };
        if !self.conns.contains_key(&conn) {
            return; // The client left; it will retry elsewhere.
        }
        let frame: Frame<S::Op, S::Output> = Frame::Reply { id, result };
        if let Some(bytes) = self.encode(&frame) {
            self.out.push(NodeAction::Write { conn, bytes });
        }
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
