//! A simulated service: servers running a replicated state machine behind
//! the same pure node shell the drivers run (`node_shell::ReplicaNode`), or
//! one unreplicated server (lab 2), and clients that talk to them over the
//! simulated network, all on the simulator's shared pieces (one event
//! queue, one seed, the network model, lossy disks, the Raft invariants).
//!
//! Everything a real node sees, the shell sees here: connections are
//! accepted and closed, bytes arrive (whole frames, which the network may
//! drop, duplicate, delay and reorder), persist batches are written to a
//! [`SimDisk`] and acknowledged when its sync completes a random delay
//! later, and a crash keeps only part of what was not synced. Raft's
//! invariants are checked after every server step, every message a server
//! releases is checked against its synced disk, plus an optional
//! service-level check on each batch of applied entries.

use crate::sim::cluster::{Delivery, Envelope};
use crate::sim::disk::SimDisk;
use crate::sim::durability::{check_mirror, check_release};
use crate::sim::invariants::{Checker, Violation};
use crate::sim::network::{NetConfig, Network};
use crate::sim::queue::EventQueue;
use crate::sim::rng::SimRng;
use crate::sim::trace::{Trace, TraceMode};
use core_kv::{NotLeader, Rsm, RsmConfig, SnapshotRule, StateMachine};
use core_raft::{Action, Config, Entry, LogIndex, Member, Message, NodeId};
use node_shell::{
    Bootstrap, ConnId, Frame, NodeAction, NodeConfig, NodeInput, PeerIdentity, ReplicaNode,
    CLIENT_NODE, DEFAULT_MAX_FRAME_BYTES,
};
use std::collections::BTreeMap;
use wire::{encode_frame, Hello};

/// The answer a server gives a client's submission.
pub type Answer<S> = Result<<S as StateMachine>::Output, NotLeader>;

/// The simulated services' handshake protocol and cluster id.
const PROTOCOL: u32 = 1;
const CLUSTER: u64 = 1;

/// How to build a simulated service.
#[derive(Clone, Debug)]
pub struct WorldConfig {
    /// Number of servers.
    pub servers: usize,
    /// One server applying operations directly, without Raft (lab 2).
    pub single: bool,
    /// The run's seed.
    pub seed: u64,
    /// Network faults (servers and clients alike).
    pub net: NetConfig,
    /// Raft settings (id, voters and seed filled in per server).
    pub raft: Config,
    /// Snapshot threshold (`None`: never).
    pub max_raft_state: Option<usize>,
    /// How the threshold scales (the lab ports keep the lab's fixed rule).
    pub snapshot_rule: SnapshotRule,
    /// Serve read-only operations with ReadIndex.
    pub read_index: bool,
    /// Snapshot captures are encoded "off the loop": each comes back as a
    /// later event, 0..=30 virtual ms after it was taken (by hand: at the
    /// end of the step), as the drivers do it on a worker thread.
    pub capture_off_loop: bool,
    /// Virtual milliseconds per tick (servers and clients).
    pub tick_ms: u64,
    /// Longest virtual time a disk sync takes (each one takes 0..=this).
    pub sync_ms_max: u64,
    /// In virtual time, or by hand ([`super::scenario`]): then nothing
    /// moves unless the test says so, disks sync at the end of every step,
    /// and answers are recorded in [`World::answers`] at once.
    pub delivery: Delivery,
    /// Record a readable trace.
    pub trace: TraceMode,
    /// Virtual time at which the world starts (a world joining a larger
    /// simulation, such as a shard group started mid-run, starts at the
    /// simulation's current time).
    pub start_ms: u64,
    /// The last `joiners` servers start knowing no membership (empty
    /// bootstrap voters): they serve once an operator adds them. The
    /// others are the bootstrap voters. Every server accepts every other
    /// as a peer.
    pub joiners: usize,
}

impl WorldConfig {
    /// The lab-4 setting: `servers` replicas, default timing, leader no-op on.
    pub fn replicated(servers: usize, reliable: bool, seed: u64) -> Self {
        WorldConfig {
            servers,
            single: false,
            seed,
            net: if reliable {
                NetConfig::reliable()
            } else {
                NetConfig::unreliable()
            },
            raft: Config::new(NodeId(1), vec![NodeId(1)]),
            max_raft_state: None,
            snapshot_rule: SnapshotRule::Fixed,
            read_index: true,
            capture_off_loop: false,
            tick_ms: core_raft::DEFAULT_TICK_MS,
            sync_ms_max: 1,
            delivery: Delivery::Timed,
            trace: TraceMode::from_env(),
            start_ms: 0,
            joiners: 0,
        }
    }

    /// The lab-2 setting: one server, no Raft.
    pub fn single(reliable: bool, seed: u64) -> Self {
        WorldConfig {
            single: true,
            ..Self::replicated(1, reliable, seed)
        }
    }
}

/// The Raft id of server `i` (servers are numbered from 1 on the wire:
/// node id 0 marks a client in the handshake).
pub fn server_id(i: usize) -> NodeId {
    NodeId(i as u64 + 1)
}

/// Requests a client wants sent: (server, request id, operation).
pub struct Outbox<Op> {
    sends: Vec<(usize, u64, Op)>,
}

impl<Op> Outbox<Op> {
    /// Send `op` to `server`, tagged `id` (echoed in the answer).
    pub fn send(&mut self, server: usize, id: u64, op: Op) {
        self.sends.push((server, id, op));
    }
}

/// A simulated client. It is ticked every `tick_ms` and told every answer;
/// it never blocks.
pub trait SimClient<S: StateMachine> {
    /// A tick of the client's clock.
    fn on_tick(&mut self, now_ms: u64, out: &mut Outbox<S::Op>);
    /// An answer from `server` to the request tagged `id`.
    fn on_answer(
        &mut self,
        now_ms: u64,
        server: usize,
        id: u64,
        answer: Answer<S>,
        out: &mut Outbox<S::Op>,
    );
    /// True once the client has nothing more to do.
    fn finished(&self) -> bool;
}

/// A client shared with the test that created it (so the test can steer it
/// and read its results while the world owns a handle).
impl<S: StateMachine, C: SimClient<S>> SimClient<S> for std::rc::Rc<std::cell::RefCell<C>> {
    fn on_tick(&mut self, now_ms: u64, out: &mut Outbox<S::Op>) {
        self.borrow_mut().on_tick(now_ms, out)
    }

    fn on_answer(
        &mut self,
        now_ms: u64,
        server: usize,
        id: u64,
        answer: Answer<S>,
        out: &mut Outbox<S::Op>,
    ) {
        self.borrow_mut().on_answer(now_ms, server, id, answer, out)
    }

    fn finished(&self) -> bool {
        self.borrow().finished()
    }
}

/// A service-level invariant, checked on a replica after every step that
/// applied entries: given its state and the entries just applied.
pub type ServiceCheck<S> = fn(&S, &[Entry]) -> Result<(), String>;

/// What the event queue holds.
enum Event {
    /// A frame from server `from` (in incarnation `from_inc`) to server `to`.
    Peer {
        from: usize,
        from_inc: u64,
        to: usize,
        bytes: Vec<u8>,
    },
    /// A client's request frame.
    Request {
        client: usize,
        to: usize,
        id: u64,
        bytes: Vec<u8>,
    },
    /// A server's reply frame to a client.
    Answer {
        client: usize,
        from: usize,
        bytes: Vec<u8>,
    },
    ServerTick {
        node: usize,
        incarnation: u64,
    },
    Sync {
        node: usize,
        incarnation: u64,
    },
    /// A snapshot capture encoded "on a worker thread".
    Captured {
        node: usize,
        incarnation: u64,
        index: LogIndex,
        data: Result<Vec<u8>, String>,
    },
    ClientTick,
}

enum Server<S: StateMachine> {
    Replica(Box<ReplicaNode<S>>),
    Single(S),
}

/// Who is on the other end of a connection a server accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Remote {
    Peer(usize),
    Client(usize),
}

struct Slot<S: StateMachine> {
    server: Option<Server<S>>,
    disk: SimDisk,
    incarnation: u64,
    /// The last persist batch written to the disk.
    written_batch: u64,
    /// This incarnation's connections: from a peer incarnation or a client.
    peer_conns: BTreeMap<(usize, u64), ConnId>,
    client_conns: BTreeMap<usize, ConnId>,
    remotes: BTreeMap<ConnId, Remote>,
    /// Requests delivered and not yet answered: (client, request id).
    outstanding: BTreeMap<(usize, u64), ()>,
    /// Operations the single (lab 2) server applied, its own log index.
    applied: u64,
}

struct ClientSlot<S: StateMachine> {
    client: Box<dyn SimClient<S>>,
    /// Servers this client can reach (the lab's `MakeClientTo`).
    reach: Vec<bool>,
}

/// The simulated service.
pub struct World<S: StateMachine> {
    /// Virtual time in milliseconds.
    pub now_ms: u64,
    config: WorldConfig,
    /// Builds the state machine of a server that starts from scratch (its
    /// snapshot, if any, is restored into it).
    make_state: std::rc::Rc<dyn Fn() -> S>,
    slots: Vec<Slot<S>>,
    clients: Vec<Option<ClientSlot<S>>>,
    /// The network.
    pub net: Network,
    rng: SimRng,
    queue: EventQueue<Event>,
    next_conn: u64,
    /// Raft invariants.
    pub checker: Checker,
    service_check: Option<ServiceCheck<S>>,
    trace: Trace,
    /// Steps taken by all servers.
    pub steps: u64,
    /// With manual delivery: every answer a server gave, in order.
    pub answers: Vec<Answered<S>>,
    /// With manual delivery: the actions of the last server step.
    last_actions: Vec<NodeAction>,
    /// With manual delivery: every Raft message a server released, in order.
    pub sent: Vec<Envelope>,
    /// With manual delivery: the first entry any server applied at each index.
    pub applied: BTreeMap<LogIndex, Entry>,
    /// With manual delivery: servers whose shell asked to stop, and why.
    pub stopped: Vec<(usize, String)>,
}

/// One answer recorded with manual delivery.
pub struct Answered<S: StateMachine> {
    /// The client slot it is for.
    pub client: usize,
    /// The answering server.
    pub server: usize,
    /// The request's id.
    pub id: u64,
    /// The answer.
    pub answer: Answer<S>,
    /// [`World::steps`] when it was given.
    pub step: u64,
}

impl<S> World<S>
where
    S: StateMachine + Default + 'static,
{
    /// Build the service and start every server.
    pub fn new(config: WorldConfig) -> World<S> {
        World::with_state(config, S::default)
    }
}

impl<S> World<S>
where
    S: StateMachine + 'static,
{
    /// Build the service, with `make_state` building each server's state
    /// machine, and start every server.
    pub fn with_state(config: WorldConfig, make_state: impl Fn() -> S + 'static) -> World<S> {
        let n = config.servers;
        let mut world = World {
            now_ms: config.start_ms,
            make_state: std::rc::Rc::new(make_state),
            net: Network::new(n, config.net.clone()),
            rng: SimRng::new(config.seed),
            queue: EventQueue::default(),
            next_conn: 0,
            checker: Checker::default(),
            service_check: None,
            trace: Trace::new(config.trace),
            steps: 0,
            answers: Vec::new(),
            last_actions: Vec::new(),
            sent: Vec::new(),
            applied: BTreeMap::new(),
            stopped: Vec::new(),
            clients: Vec::new(),
            slots: (0..n)
                .map(|_| Slot {
                    server: None,
                    disk: SimDisk::default(),
                    incarnation: 0,
                    written_batch: 0,
                    peer_conns: BTreeMap::new(),
                    client_conns: BTreeMap::new(),
                    remotes: BTreeMap::new(),
                    outstanding: BTreeMap::new(),
                    applied: 0,
                })
                .collect(),
            config,
        };
        for i in 0..n {
            world.start(i);
        }
        if world.config.delivery == Delivery::Timed {
            let tick = world.config.tick_ms;
            world.queue.push(world.now_ms + tick, Event::ClientTick);
        }
        world
    }

    /// Check this service-level invariant after every step that applies entries.
    pub fn set_service_check(&mut self, check: ServiceCheck<S>) {
        self.service_check = Some(check);
    }

    /// The world's RNG (scenario choices that must replay).
    pub fn rng(&mut self) -> &mut SimRng {
        &mut self.rng
    }

    /// The run's seed.
    pub fn seed(&self) -> u64 {
        self.config.seed
    }

    /// Number of servers.
    pub fn servers(&self) -> usize {
        self.slots.len()
    }

    /// Whether server `i` is up.
    pub fn is_up(&self, i: usize) -> bool {
        self.slots[i].server.is_some()
    }

    /// The replica at server `i`, if up and replicated.
    pub fn replica(&self, i: usize) -> Option<&Rsm<S>> {
        match &self.slots[i].server {
            Some(Server::Replica(node)) => Some(node.replica()),
            _ => None,
        }
    }

    /// The state machine at server `i`, if up.
    pub fn state(&self, i: usize) -> Option<&S> {
        match &self.slots[i].server {
            Some(Server::Replica(node)) => Some(node.replica().state()),
            Some(Server::Single(s)) => Some(s),
            None => None,
        }
    }

    /// The leader among up servers with the highest term, if any.
    pub fn leader(&self) -> Option<usize> {
        (0..self.servers())
            .filter_map(|i| self.replica(i).map(|r| (i, r.raft())))
            .filter(|(_, r)| r.is_leader())
            .max_by_key(|(_, r)| r.term())
            .map(|(i, _)| i)
    }

    /// The lab's `LogSize`: the largest persisted Raft state (hard state and
    /// log, postcard-encoded) over all servers.
    pub fn max_raft_state_size(&self) -> usize {
        self.slots
            .iter()
            .map(|s| {
                let d = s.disk.written();
                postcard::to_allocvec(&(&d.hard_state, &d.entries)).map_or(0, |b| b.len())
            })
            .max()
            .unwrap_or(0)
    }

    /// The lab's `SnapshotSize`: the largest stored snapshot.
    pub fn max_snapshot_size(&self) -> usize {
        self.slots
            .iter()
            .map(|s| {
                s.disk
                    .written()
                    .snapshot
                    .as_ref()
                    .map_or(0, |s| s.data.len())
            })
            .max()
            .unwrap_or(0)
    }

    /// Per server: the persisted Raft state (hard state and log,
    /// postcard-encoded) and the stored snapshot, in bytes (what the lab's
    /// `RaftStateSize` and `SnapshotSize` measure).
    pub fn disk_sizes(&self) -> Vec<(usize, usize)> {
        self.slots
            .iter()
            .map(|s| {
                let d = s.disk.written();
                let raft =
                    postcard::to_allocvec(&(&d.hard_state, &d.entries)).map_or(0, |b| b.len());
                let snap = d.snapshot.as_ref().map_or(0, |s| s.data.len());
                (raft, snap)
            })
            .collect()
    }

    /// Start (or restart) server `i` from what its disk holds.
    pub fn start(&mut self, i: usize) {
        assert!(self.slots[i].server.is_none(), "server {i} is already up");
        let server = if self.config.single {
            Server::Single((self.make_state)())
        } else {
            Server::Replica(Box::new(self.restore_replica(i)))
        };
        let slot = &mut self.slots[i];
        slot.server = Some(server);
        slot.incarnation += 1;
        slot.written_batch = 0;
        let incarnation = slot.incarnation;
        if !self.config.single && self.config.delivery == Delivery::Timed {
            let phase = 1 + self.rng.below(self.config.tick_ms);
            let at = self.now_ms + phase;
            self.queue.push(
                at,
                Event::ServerTick {
                    node: i,
                    incarnation,
                },
            );
        }
        self.trace.line(self.now_ms, || {
            format!("s{i} starts (incarnation {incarnation})")
        });
    }

    /// The bootstrap voters of server `i`: none for a joiner.
    fn bootstrap_voters(&self, i: usize) -> Vec<NodeId> {
        let voters = self.servers() - self.config.joiners.min(self.servers());
        if i < voters {
            (0..voters).map(server_id).collect()
        } else {
            Vec::new()
        }
    }

    fn restore_replica(&mut self, i: usize) -> ReplicaNode<S> {
        let mut raft = self.config.raft.clone();
        raft.id = server_id(i);
        raft.voters = self.bootstrap_voters(i);
        raft.rng_seed = match self.config.delivery {
            Delivery::Timed => self.rng.next_u64(),
            // By hand, a server's jitter depends only on the run's seed and
            // its id, so that restarting it replays the same timeouts.
            Delivery::Manual => self.config.seed.wrapping_mul(1000).wrapping_add(raft.id.0),
        };
        let rsm = RsmConfig {
            raft,
            max_raft_state: self.config.max_raft_state,
            snapshot_rule: self.config.snapshot_rule,
            read_index: self.config.read_index,
            observe_applies: true,
            capture_off_loop: self.config.capture_off_loop,
        };
        let node = NodeConfig {
            id: server_id(i),
            identity: Member::default(),
            bootstrap: Bootstrap::Static,
            cluster: CLUSTER,
            protocol: PROTOCOL,
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
            limits: node_shell::ClientLimits::default(),
        };
        let durable = self.slots[i].disk.written().clone();
        let applied = durable.snapshot.as_ref().map_or(LogIndex(0), |s| s.index);
        let node = ReplicaNode::restore(node, rsm, durable, (self.make_state)())
            .unwrap_or_else(|e| self.fail(format!("server {i} cannot restart: {e}")));
        self.checker.on_start(server_id(i), applied);
        node
    }

    /// Crash server `i`: everything not synced may be lost, and so are its
    /// connections and the answers it owed. A single (lab 2) server loses
    /// its whole state.
    pub fn crash(&mut self, i: usize) {
        if self.slots[i].server.take().is_none() {
            return;
        }
        let slot = &mut self.slots[i];
        slot.incarnation += 1;
        slot.peer_conns.clear();
        slot.client_conns.clear();
        slot.remotes.clear();
        slot.outstanding.clear();
        let kept = slot.disk.crash(&mut self.rng);
        let hs = slot.disk.synced().hard_state;
        self.trace.line(self.now_ms, || {
            format!("s{i} crashes; {kept} unsynced writes survive")
        });
        let r = self.checker.on_persist_hard_state(server_id(i), &hs);
        self.check(r);
        // Its peers see their connections from it close.
        for b in 0..self.servers() {
            let gone: Vec<ConnId> = self.slots[b]
                .remotes
                .iter()
                .filter(|(_, r)| **r == Remote::Peer(i))
                .map(|(c, _)| *c)
                .collect();
            for conn in gone {
                self.forget_conn(b, conn);
                self.server_step(b, NodeInput::Closed { conn });
            }
        }
    }

    /// The lab's `ShutdownServer` for services: the server's in-process
    /// callers are released (pending submissions answered "not leader", as
    /// Kill unblocking `Submit`), then it crashes.
    pub fn shutdown(&mut self, i: usize) {
        let pending: Vec<(usize, u64)> = self.slots[i].outstanding.keys().copied().collect();
        for (client, id) in pending {
            let frame: Frame<S::Op, S::Output> = Frame::Reply {
                id,
                result: Err(NotLeader { leader_hint: None }),
                leader_addr: None,
            };
            let bytes = encode_frame(&frame, DEFAULT_MAX_FRAME_BYTES).expect("a reply fits");
            self.answer(client, i, bytes);
        }
        self.crash(i);
    }

    /// Cut server `i` off from every other server (clients still reach it).
    pub fn isolate(&mut self, i: usize) {
        for j in 0..self.servers() {
            self.net.set_link(i, j, false);
        }
    }

    /// Reconnect all servers.
    pub fn heal(&mut self) {
        self.net.heal();
    }

    /// Split the servers in two sides.
    pub fn partition(&mut self, a: &[usize], b: &[usize]) {
        self.net.partition(a, b);
    }

    /// Change network faults.
    pub fn set_net(&mut self, net: NetConfig) {
        self.net.config = net;
    }

    /// Add a client that can reach `reach` (all servers if `None`); returns
    /// its index.
    pub fn add_client(&mut self, client: Box<dyn SimClient<S>>, reach: Option<&[usize]>) -> usize {
        let n = self.servers();
        let reach = match reach {
            None => vec![true; n],
            Some(r) => (0..n).map(|i| r.contains(&i)).collect(),
        };
        self.clients.push(Some(ClientSlot { client, reach }));
        self.clients.len() - 1
    }

    /// Change which servers client `c` can reach.
    pub fn set_reach(&mut self, c: usize, reach: &[usize]) {
        let n = self.servers();
        if let Some(slot) = self.clients[c].as_mut() {
            slot.reach = (0..n).map(|i| reach.contains(&i)).collect();
        }
    }

    /// Remove client `c`, returning it (for its results).
    pub fn remove_client(&mut self, c: usize) -> Option<Box<dyn SimClient<S>>> {
        self.clients[c].take().map(|s| s.client)
    }

    /// True once client `c` reports it is finished (or is gone).
    pub fn clients_finished_one(&self, c: usize) -> bool {
        self.clients[c].as_ref().is_none_or(|s| s.client.finished())
    }

    /// True once every client reports it is finished.
    pub fn clients_finished(&self) -> bool {
        self.clients.iter().flatten().all(|c| c.client.finished())
    }

    /// Submit `op` directly at server `i` as if from client slot `client`
    /// (the 4A tests call `Submit` on a server). The answer goes to the client.
    pub fn submit_from(&mut self, client: usize, server: usize, id: u64, op: S::Op) {
        let bytes = Self::request_bytes(id, op);
        self.handle_request(client, server, id, bytes);
    }

    /// Advance virtual time by `ms`.
    pub fn run_for(&mut self, ms: u64) {
        let until = self.now_ms + ms;
        while let Some((time, event)) = self.queue.pop_due(until) {
            self.now_ms = time;
            self.handle(event);
        }
        self.now_ms = until;
    }

    /// Run until every client is finished, failing after `limit_ms`.
    pub fn run_until_clients_finish(&mut self, limit_ms: u64) {
        let deadline = self.now_ms + limit_ms;
        while !self.clients_finished() {
            if self.now_ms >= deadline {
                self.fail(format!("clients did not finish within {limit_ms} ms"));
            }
            self.run_for(10);
        }
    }

    /// Feed one input to server `i` now and return its shell's actions
    /// (manual delivery: the disk syncs at the end of the step, and the
    /// actions that released are included).
    pub fn step_server(&mut self, i: usize, input: NodeInput) -> Vec<NodeAction> {
        self.server_step(i, input)
    }

    /// One tick of server `i`.
    pub fn tick(&mut self, i: usize) -> Vec<NodeAction> {
        self.server_step(i, NodeInput::Tick)
    }

    /// Raft messages waiting between servers, oldest first (manual delivery).
    pub fn queued(&self) -> Vec<Envelope> {
        self.queue.iter().filter_map(|e| self.envelope(e)).collect()
    }

    fn envelope(&self, event: &Event) -> Option<Envelope> {
        let Event::Peer {
            from, to, bytes, ..
        } = event
        else {
            return None;
        };
        match decode_frame::<Frame<S::Op, S::Output>>(bytes) {
            Ok(Frame::Raft(msg)) => Some(Envelope {
                from: server_id(*from),
                to: server_id(*to),
                msg,
            }),
            _ => None,
        }
    }

    /// Remove and return the oldest waiting message.
    pub fn pop_queued(&mut self) -> Option<Envelope> {
        let event = self.queue.take_first(|e| matches!(e, Event::Peer { .. }))?;
        self.envelope(&event)
    }

    /// Drop every waiting message.
    pub fn clear_queued(&mut self) {
        self.queue.take_all(|e| matches!(e, Event::Peer { .. }));
    }

    /// Queue a message (a duplicate, a reordering, or a forgery) at the end.
    pub fn push_queued(&mut self, env: Envelope) {
        let from = (env.from.0 - 1) as usize;
        let event = Event::Peer {
            from,
            from_inc: self.slots[from].incarnation,
            to: (env.to.0 - 1) as usize,
            bytes: Self::raft_bytes(env.msg),
        };
        self.queue.push(self.now_ms, event);
    }

    /// Deliver a message now, on the connection from its sender's current
    /// incarnation (dropped if the link is cut or the recipient is down).
    pub fn deliver(&mut self, env: Envelope) -> Vec<NodeAction> {
        let (from, to) = ((env.from.0 - 1) as usize, (env.to.0 - 1) as usize);
        if !self.is_up(to) || !self.net.linked(from, to) {
            return Vec::new();
        }
        let from_inc = self.slots[from].incarnation;
        self.deliver_peer(from, from_inc, to, Self::raft_bytes(env.msg))
    }

    fn raft_bytes(msg: Message) -> Vec<u8> {
        let frame: Frame<S::Op, S::Output> = Frame::Raft(msg);
        encode_frame(&frame, DEFAULT_MAX_FRAME_BYTES).expect("a Raft message fits")
    }

    /// The configuration server `i` restarts with.
    pub fn rsm_config(&self, i: usize) -> RsmConfig {
        let mut raft = self.config.raft.clone();
        raft.id = server_id(i);
        raft.voters = self.bootstrap_voters(i);
        raft.rng_seed = self.config.seed.wrapping_mul(1000).wrapping_add(raft.id.0);
        RsmConfig {
            raft,
            max_raft_state: self.config.max_raft_state,
            snapshot_rule: self.config.snapshot_rule,
            read_index: self.config.read_index,
            observe_applies: true,
            capture_off_loop: self.config.capture_off_loop,
        }
    }

    /// What server `i` wrote to its disk (synced or not).
    pub fn durable(&self, i: usize) -> &core_raft::Durable {
        self.slots[i].disk.written()
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::ServerTick { node, incarnation } => {
                if self.slots[node].incarnation == incarnation && self.is_up(node) {
                    self.server_step(node, NodeInput::Tick);
                    if self.slots[node].incarnation == incarnation {
                        let at = self.now_ms + self.config.tick_ms;
                        self.queue.push(at, Event::ServerTick { node, incarnation });
                    }
                }
            }
            Event::Sync { node, incarnation } => {
                if self.slots[node].incarnation == incarnation && self.is_up(node) {
                    self.sync(node);
                }
            }
            Event::Captured {
                node,
                incarnation,
                index,
                data,
            } => {
                if self.slots[node].incarnation == incarnation && self.is_up(node) {
                    self.server_step(node, NodeInput::Captured { index, data });
                }
            }
            Event::Peer {
                from,
                from_inc,
                to,
                bytes,
            } => {
                if self.is_up(to) && self.net.linked(from, to) {
                    self.deliver_peer(from, from_inc, to, bytes);
                }
            }
            Event::Request {
                client,
                to,
                id,
                bytes,
            } => {
                if self.is_up(to) && self.reaches(client, to) {
                    self.handle_request(client, to, id, bytes);
                }
            }
            Event::Answer {
                client,
                from,
                bytes,
            } => self.deliver_answer(client, from, &bytes),
            Event::ClientTick => {
                for c in 0..self.clients.len() {
                    if let Some(mut slot) = self.clients[c].take() {
                        let mut out = Outbox { sends: Vec::new() };
                        slot.client.on_tick(self.now_ms, &mut out);
                        self.clients[c] = Some(slot);
                        self.dispatch(c, out);
                    }
                }
                let at = self.now_ms + self.config.tick_ms;
                self.queue.push(at, Event::ClientTick);
            }
        }
    }

    /// A peer's frame reaches server `to` on the connection from that
    /// peer's incarnation (opened, with its hello, on first use).
    fn deliver_peer(
        &mut self,
        from: usize,
        from_inc: u64,
        to: usize,
        bytes: Vec<u8>,
    ) -> Vec<NodeAction> {
        if frame_is_request(&bytes) {
            self.net.requests_delivered[to] += 1;
        }
        let conn = match self.slots[to].peer_conns.get(&(from, from_inc)) {
            Some(c) => *c,
            None => {
                let conn = self.open_conn(to, Remote::Peer(from), server_id(from).0);
                self.slots[to].peer_conns.insert((from, from_inc), conn);
                conn
            }
        };
        self.server_step(to, NodeInput::Received { conn, bytes })
    }

    /// Accept a connection at server `to` and feed it the remote's hello.
    fn open_conn(&mut self, to: usize, remote: Remote, node: u64) -> ConnId {
        self.next_conn += 1;
        let conn = ConnId(self.next_conn);
        self.slots[to].remotes.insert(conn, remote);
        self.server_step(to, NodeInput::Accepted { conn });
        let hello = Hello::new(PROTOCOL, CLUSTER, node);
        let mut bytes = encode_frame(&hello, DEFAULT_MAX_FRAME_BYTES).expect("a hello fits");
        if node != CLIENT_NODE {
            // Simulated replicas have no data directories: incarnation 0
            // ("unknown") is never checked.
            let identity: Frame<S::Op, S::Output> = Frame::PeerIdentity(PeerIdentity {
                incarnation: 0,
                addr: String::new(),
                formed: true,
                expected: 0,
            });
            bytes.extend(encode_frame(&identity, DEFAULT_MAX_FRAME_BYTES).expect("it fits"));
        }
        self.server_step(to, NodeInput::Received { conn, bytes });
        conn
    }

    fn forget_conn(&mut self, server: usize, conn: ConnId) {
        let slot = &mut self.slots[server];
        slot.remotes.remove(&conn);
        slot.peer_conns.retain(|_, c| *c != conn);
        slot.client_conns.retain(|_, c| *c != conn);
    }

    fn reaches(&self, client: usize, server: usize) -> bool {
        self.clients
            .get(client)
            .and_then(|c| c.as_ref())
            .is_some_and(|c| c.reach[server])
    }

    fn request_bytes(id: u64, op: S::Op) -> Vec<u8> {
        let frame: Frame<S::Op, S::Output> = Frame::Request { id, op };
        encode_frame(&frame, DEFAULT_MAX_FRAME_BYTES).expect("a request fits")
    }

    fn dispatch(&mut self, client: usize, out: Outbox<S::Op>) {
        if self.config.delivery == Delivery::Manual {
            for (to, id, op) in out.sends {
                self.submit_from(client, to, id, op);
            }
            return;
        }
        for (to, id, op) in out.sends {
            let linked = to < self.servers() && self.reaches(client, to);
            let bytes = Self::request_bytes(id, op);
            for delay in self.net.fate(&mut self.rng, linked, bytes.len(), false) {
                let event = Event::Request {
                    client,
                    to,
                    id,
                    bytes: bytes.clone(),
                };
                self.queue.push(self.now_ms + delay, event);
            }
        }
    }

    /// A client's request frame reaches server `server`.
    fn handle_request(&mut self, client: usize, server: usize, id: u64, bytes: Vec<u8>) {
        match self.slots[server].server.as_mut() {
            None => {}
            Some(Server::Single(_)) => {
                let Ok(Frame::Request { op, .. }) = decode_frame::<Frame<S::Op, S::Output>>(&bytes)
                else {
                    self.fail(format!(
                        "client {client} sent a frame that is not a request"
                    ));
                };
                // No log: the single server numbers what it applies itself.
                let slot = &mut self.slots[server];
                slot.applied += 1;
                let index = LogIndex(slot.applied);
                let Some(Server::Single(sm)) = slot.server.as_mut() else {
                    unreachable!("matched above")
                };
                let output = sm.apply(index, &op);
                let frame: Frame<S::Op, S::Output> = Frame::Reply {
                    id,
                    result: Ok(output),
                    leader_addr: None,
                };
                let reply = encode_frame(&frame, DEFAULT_MAX_FRAME_BYTES).expect("a reply fits");
                self.answer(client, server, reply);
            }
            Some(Server::Replica(_)) => {
                let conn = match self.slots[server].client_conns.get(&client) {
                    Some(c) => *c,
                    None => {
                        let conn = self.open_conn(server, Remote::Client(client), CLIENT_NODE);
                        self.slots[server].client_conns.insert(client, conn);
                        conn
                    }
                };
                self.slots[server].outstanding.insert((client, id), ());
                self.server_step(server, NodeInput::Received { conn, bytes });
            }
        }
    }

    fn answer(&mut self, client: usize, server: usize, bytes: Vec<u8>) {
        if self.config.delivery == Delivery::Manual {
            let Ok(Frame::Reply { id, result, .. }) =
                decode_frame::<Frame<S::Op, S::Output>>(&bytes)
            else {
                self.fail(format!(
                    "server {server} answered with a frame that is not a reply"
                ));
            };
            let step = self.steps;
            self.answers.push(Answered {
                client,
                server,
                id,
                answer: result,
                step,
            });
            return;
        }
        let linked = self.reaches(client, server);
        for delay in self.net.fate(&mut self.rng, linked, bytes.len(), true) {
            let event = Event::Answer {
                client,
                from: server,
                bytes: bytes.clone(),
            };
            self.queue.push(self.now_ms + delay, event);
        }
    }

    fn deliver_answer(&mut self, client: usize, from: usize, bytes: &[u8]) {
        if !self.reaches(client, from) {
            return;
        }
        let Ok(Frame::Reply { id, result, .. }) = decode_frame::<Frame<S::Op, S::Output>>(bytes)
        else {
            self.fail(format!(
                "server {from} sent client {client} a frame that is not a reply"
            ));
        };
        if let Some(mut slot) = self.clients[client].take() {
            let mut out = Outbox { sends: Vec::new() };
            slot.client
                .on_answer(self.now_ms, from, id, result, &mut out);
            self.clients[client] = Some(slot);
            self.dispatch(client, out);
        }
    }

    /// Server `i`'s disk syncs: its shell learns that every batch written so
    /// far is durable.
    fn sync(&mut self, i: usize) {
        let slot = &mut self.slots[i];
        slot.disk.sync();
        let hs = slot.disk.synced().hard_state;
        let batch = slot.written_batch;
        let r = self.checker.on_persist_hard_state(server_id(i), &hs);
        self.check(r);
        let actions = self.server_step(i, NodeInput::Persisted { batch });
        self.last_actions = actions;
    }

    /// Feed one input to server `i`'s shell and carry out its actions,
    /// checking Raft's invariants and the service check.
    fn server_step(&mut self, i: usize, input: NodeInput) -> Vec<NodeAction> {
        let Some(Server::Replica(node)) = self.slots[i].server.as_mut() else {
            return Vec::new();
        };
        let actions = node.step(input);
        self.steps += 1;
        let manual = self.config.delivery == Delivery::Manual;
        if manual {
            self.last_actions = actions.clone();
        }
        let mut applied: Vec<Entry> = Vec::new();
        let mut wrote = false;
        let mut captures = Vec::new();
        for action in actions {
            wrote |= matches!(action, NodeAction::Persist { .. });
            match action {
                NodeAction::Capture(job) => captures.push(job),
                action => self.carry_out(i, action, &mut applied),
            }
        }
        self.after_step(i, &applied);
        let mut actions = std::mem::take(&mut self.last_actions);
        if manual && wrote && self.is_up(i) {
            // By hand, a disk syncs at the end of the step that wrote.
            self.sync(i);
            actions.extend(std::mem::take(&mut self.last_actions));
        }
        for job in captures {
            // The encoding is deterministic; only its completion time is
            // drawn (in virtual time).
            let (index, data) = (job.index(), job.run());
            if manual {
                if self.is_up(i) {
                    actions.extend(self.server_step(i, NodeInput::Captured { index, data }));
                }
                continue;
            }
            let event = Event::Captured {
                node: i,
                incarnation: self.slots[i].incarnation,
                index,
                data,
            };
            let delay = self.rng.below(31);
            self.queue.push(self.now_ms + delay, event);
        }
        actions
    }

    fn carry_out(&mut self, i: usize, action: NodeAction, applied: &mut Vec<Entry>) {
        let id = server_id(i);
        match action {
            NodeAction::Persist { batch, actions } => self.write(i, batch, actions),
            NodeAction::Send { to, bytes } => self.route_send(i, to, bytes),
            NodeAction::Write { conn, bytes } => match self.slots[i].remotes.get(&conn) {
                Some(Remote::Client(client)) => {
                    let client = *client;
                    if let Ok(Frame::Reply { id, .. }) =
                        decode_frame::<Frame<S::Op, S::Output>>(&bytes)
                    {
                        self.slots[i].outstanding.remove(&(client, id));
                    }
                    self.answer(client, i, bytes);
                }
                other => self.fail(format!("s{i} wrote to {conn} ({other:?}), not a client")),
            },
            NodeAction::Close { conn, reason, .. } => {
                self.fail(format!("s{i} closed {conn}: {reason}"));
            }
            // Simulated links need no dialing: the world routes by id.
            NodeAction::Dial { .. } => {}
            // A simulated connection has no socket to stop reading: bytes
            // that arrive meanwhile wait in the shell's decoder, which is
            // what a paused socket's last read leaves there too.
            NodeAction::PauseReading { .. } | NodeAction::ResumeReading { .. } => {}
            // By hand, a test may break a replica on purpose and look at
            // what it does next; in virtual time a stopped replica is a bug.
            NodeAction::Stop { reason } if self.config.delivery == Delivery::Manual => {
                self.stopped.push((i, reason));
            }
            NodeAction::Stop { reason } => self.fail(format!("server {i} failed: {reason}")),
            NodeAction::Observed(Action::Apply(entries)) => {
                let r = self.checker.on_apply(id, &entries);
                self.check(r);
                if self.config.delivery == Delivery::Manual {
                    for e in &entries {
                        self.applied.entry(e.index).or_insert_with(|| e.clone());
                    }
                }
                applied.extend(entries);
            }
            NodeAction::Observed(Action::ApplySnapshot(s)) => {
                let r = self.checker.on_apply_snapshot(id, &s);
                self.check(r);
            }
            NodeAction::Observed(_) => {}
            NodeAction::Capture(_) => unreachable!("server_step runs captures"),
        }
    }

    /// A frame for a peer: checked against the synced disk (persist before
    /// send), then handed to the network (or queued, by hand).
    fn route_send(&mut self, i: usize, to: NodeId, bytes: Vec<u8>) {
        let id = server_id(i);
        let Ok(Frame::Raft(msg)) = decode_frame::<Frame<S::Op, S::Output>>(&bytes) else {
            self.fail(format!(
                "s{i} sent a peer a frame that is not a Raft message"
            ));
        };
        let send = Action::Send { to, msg };
        let r = check_release(id, self.slots[i].disk.synced(), &send, &[]);
        self.check(r);
        let t = (to.0 - 1) as usize;
        let from_inc = self.slots[i].incarnation;
        if self.config.delivery == Delivery::Manual {
            if let Action::Send { msg, .. } = send {
                self.sent.push(Envelope { from: id, to, msg });
            }
            let event = Event::Peer {
                from: i,
                from_inc,
                to: t,
                bytes,
            };
            self.queue.push(self.now_ms, event);
            return;
        }
        let linked = self.net.linked(i, t);
        let reply = !frame_is_request(&bytes);
        if frame_is_snapshot(&bytes) {
            self.net.snapshots_sent += 1;
        }
        for delay in self.net.fate(&mut self.rng, linked, bytes.len(), reply) {
            let event = Event::Peer {
                from: i,
                from_inc,
                to: t,
                bytes: bytes.clone(),
            };
            self.queue.push(self.now_ms + delay, event);
        }
    }

    /// Write a persist batch to server `i`'s disk; its sync completes after
    /// a random delay.
    fn write(&mut self, i: usize, batch: u64, actions: Vec<Action>) {
        for a in &actions {
            if let Action::PersistEntries(entries) = a {
                let Some(Server::Replica(node)) = self.slots[i].server.as_ref() else {
                    return;
                };
                let r = self
                    .checker
                    .on_persist_entries(node.replica().raft(), entries);
                self.check(r);
            }
        }
        let slot = &mut self.slots[i];
        slot.disk.write(&actions);
        slot.written_batch = batch;
        if self.config.delivery == Delivery::Manual {
            return; // Synced at the end of the step.
        }
        let incarnation = slot.incarnation;
        let delay = self.rng.below(self.config.sync_ms_max + 1);
        let event = Event::Sync {
            node: i,
            incarnation,
        };
        self.queue.push(self.now_ms + delay, event);
    }

    fn after_step(&mut self, i: usize, applied: &[Entry]) {
        let Some(Server::Replica(node)) = self.slots[i].server.as_ref() else {
            return;
        };
        let rsm = node.replica();
        let raft = rsm.raft();
        // A failed replica withheld its last step's persists on purpose (so
        // that a restart recovers): its core is ahead of its disk.
        if rsm.failure().is_none() {
            let r = check_mirror(raft, self.slots[i].disk.written(), false);
            self.check(r);
        }
        let r = self.checker.after_step(raft);
        self.check(r);
        if let (Some(check), false) = (self.service_check, applied.is_empty()) {
            if let Err(v) = check(rsm.state(), applied) {
                self.fail(format!("server {i}: {v}"));
            }
        }
    }

    fn check(&self, result: Result<(), Violation>) {
        if let Err(Violation(v)) = result {
            self.fail(v);
        }
    }

    /// Stop the run with a report naming the seed.
    pub fn fail(&self, what: String) -> ! {
        let mut nodes = String::new();
        for i in 0..self.servers() {
            let line = match self.replica(i) {
                None if self.is_up(i) => format!("  s{i}: up (single)\n"),
                None => format!("  s{i}: down\n"),
                Some(r) => {
                    let raft = r.raft();
                    format!(
                        "  s{i}: {:?} {} last={} commit={} applied={} snap={} pending={} unsynced={} voters={:?} learners={:?}\n",
                        raft.role(),
                        raft.term(),
                        raft.last_index(),
                        raft.commit_index(),
                        raft.applied_index(),
                        raft.snapshot_index(),
                        r.pending(),
                        self.slots[i].disk.unsynced(),
                        raft.membership().voters,
                        raft.membership().learners,
                    )
                }
            };
            nodes.push_str(&line);
        }
        panic!(
            "seed {}: at {} ms: {what}\n{nodes}{}",
            self.config.seed,
            self.now_ms,
            self.trace.report()
        );
    }
}

/// The swarms' operator changes a service's membership through each
/// replica's node shell, as an operator's tool would. The shell answers
/// nothing: whether a leader appended the change shows in its Raft state.
impl<S: StateMachine + 'static> crate::sim::operator::Admin for World<S> {
    fn slots(&self) -> usize {
        self.servers()
    }

    fn node_id(&self, i: usize) -> NodeId {
        server_id(i)
    }

    fn raft_at(&self, i: usize) -> Option<&core_raft::Raft> {
        self.replica(i).map(|r| r.raft())
    }

    fn now(&self) -> u64 {
        self.now_ms
    }

    fn admin_rng(&mut self) -> &mut SimRng {
        &mut self.rng
    }

    fn change_membership(
        &mut self,
        i: usize,
        change: core_raft::MembershipChange,
    ) -> crate::sim::operator::Outcome {
        use crate::sim::operator::Outcome;
        let before = match self.replica(i).map(|r| r.raft()) {
            Some(r) if r.is_leader() => (r.term(), r.membership_index()),
            _ => return Outcome::NotLeader,
        };
        self.server_step(
            i,
            NodeInput::Change(core_kv::ClusterChange::Membership(change)),
        );
        match self.replica(i).map(|r| r.raft()) {
            Some(r) if (r.term(), r.membership_index()) != before && r.term() == before.0 => {
                Outcome::Proposed(r.membership_index())
            }
            Some(r) if r.is_leader() => Outcome::Refused,
            _ => Outcome::NotLeader,
        }
    }

    fn transfer_leadership(&mut self, i: usize, to: NodeId) -> bool {
        let leads = self
            .replica(i)
            .is_some_and(|r| r.raft().is_leader() && r.raft().membership().is_voter(to));
        if leads {
            let change = core_kv::ClusterChange::TransferLeadership(to);
            self.server_step(i, NodeInput::Change(change));
        }
        leads
    }
}

/// Decode one whole frame (length prefix and payload).
fn decode_frame<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, wire::FrameError> {
    let mut d = wire::Decoder::new(DEFAULT_MAX_FRAME_BYTES);
    d.push(bytes);
    d.next_message::<T>()?.ok_or(wire::FrameError::Truncated {
        got: bytes.len(),
        want: bytes.len() + 1,
    })
}

/// The Raft message kind of a replica frame, read from postcard's variant
/// numbers (a length prefix, `Frame::Raft` = 0, then the message's variant)
/// without decoding the payload: the network's counters only need to know
/// requests from responses and spot snapshots.
fn raft_kind(bytes: &[u8]) -> Option<u8> {
    match bytes.get(wire::LEN_PREFIX_BYTES..wire::LEN_PREFIX_BYTES + 2) {
        Some([0, kind]) => Some(*kind),
        _ => None,
    }
}

/// True for RequestVote, AppendEntries and InstallSnapshot frames.
fn frame_is_request(bytes: &[u8]) -> bool {
    matches!(raft_kind(bytes), Some(0 | 2 | 4))
}

/// True for InstallSnapshot frames.
fn frame_is_snapshot(bytes: &[u8]) -> bool {
    raft_kind(bytes) == Some(4)
}

#[cfg(test)]
mod tests {
    use super::*;
    use core_raft::{
        AppendEntries, AppendEntriesResponse, InstallSnapshot, InstallSnapshotResponse,
        RequestVote, RequestVoteResponse, Snapshot, Term,
    };

    #[test]
    fn frame_kinds_match_the_message_variants() {
        let t = Term(1);
        let i = LogIndex(1);
        let msgs = [
            (
                Message::RequestVote(RequestVote {
                    term: t,
                    last_log_index: i,
                    last_log_term: t,
                    pre_vote: false,
                    transfer: false,
                }),
                true,
                false,
            ),
            (
                Message::RequestVoteResponse(RequestVoteResponse {
                    term: t,
                    granted: true,
                    pre_vote: false,
                }),
                false,
                false,
            ),
            (
                Message::AppendEntries(AppendEntries {
                    term: t,
                    prev_log_index: i,
                    prev_log_term: t,
                    entries: vec![],
                    leader_commit: i,
                    round: 1,
                }),
                true,
                false,
            ),
            (
                Message::AppendEntriesResponse(AppendEntriesResponse {
                    term: t,
                    match_index: i,
                    reject: None,
                    round: 1,
                }),
                false,
                false,
            ),
            (
                Message::InstallSnapshot(InstallSnapshot::whole(
                    t,
                    &Snapshot {
                        membership: Default::default(),
                        index: i,
                        term: t,
                        data: vec![1],
                        external: false,
                    },
                    1,
                )),
                true,
                true,
            ),
            (
                Message::InstallSnapshotResponse(InstallSnapshotResponse {
                    term: t,
                    match_index: i,
                    index: i,
                    offset: 0,
                    received: 1,
                    round: 1,
                }),
                false,
                false,
            ),
        ];
        for (msg, request, snapshot) in msgs {
            let frame: Frame<u8, u8> = Frame::Raft(msg.clone());
            let bytes = encode_frame(&frame, DEFAULT_MAX_FRAME_BYTES).unwrap();
            assert_eq!(frame_is_request(&bytes), request, "{msg}");
            assert_eq!(msg.is_request(), request, "{msg}");
            assert_eq!(frame_is_snapshot(&bytes), snapshot, "{msg}");
        }
        let reply: Frame<u8, u8> = Frame::Reply {
            id: 0,
            result: Ok(0),
            leader_addr: None,
        };
        assert!(!frame_is_request(&encode_frame(&reply, 1024).unwrap()));
    }
}
