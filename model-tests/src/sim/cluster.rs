//! A simulated Raft cluster: the cores themselves, each behind the same
//! persist gate the real drivers use and a [`SimDisk`] that keeps written
//! and synced state apart, the lab's applier as the application, a seeded
//! network and a virtual clock, all driven by one [`EventQueue`].
//!
//! Two ways to run it:
//!
//! * [`Delivery::Timed`]: the swarm and the lab ports. Ticks and messages
//!   are events in virtual time; a disk sync completes after a random delay,
//!   so sends and applies wait for it as on a real node, and a crash loses
//!   a random part of what was written but not synced.
//! * [`Delivery::Manual`]: the scenario tests. Nothing happens unless the
//!   test says so: it steps nodes, delivers, drops or reorders queued
//!   messages by hand ([`super::scenario`]); disks sync at the end of every
//!   step.
//!
//! Either way every released action is checked against the node's synced
//! storage ([`super::durability`]), and the Raft invariants run after every
//! step ([`Checker`]).

use super::app::LabApp;
use super::disk::SimDisk;
use super::durability::{check_mirror, check_release, vouched_by, Vouched};
use super::invariants::{Checker, Violation};
use super::network::{NetConfig, Network};
use super::queue::EventQueue;
use super::rng::SimRng;
use super::trace::{Trace, TraceMode};
use core_raft::{Action, Config, Durable, Input, LogIndex, Message, NodeId, Raft, Term};
use node_shell::{Gated, PersistGate};
use std::collections::BTreeMap;

/// How events reach the nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// In virtual time, with the network's delays and faults.
    Timed,
    /// Only when a test delivers them.
    Manual,
}

/// How to build a simulated cluster.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Number of Raft nodes.
    pub nodes: usize,
    /// The id of the first node; the others follow (the lab numbers from 0,
    /// the scenario tests from 1).
    pub first_id: u64,
    /// The run's seed; everything random derives from it.
    pub seed: u64,
    /// Network faults.
    pub net: NetConfig,
    /// The lab's snapshot rule: snapshot when `(index + 1) % interval == 0`.
    pub snapshot_interval: Option<u64>,
    /// Raft settings shared by all nodes (id, voters and seed are filled in).
    pub raft: Config,
    /// Virtual milliseconds per Raft tick.
    pub tick_ms: u64,
    /// Longest virtual time a disk sync takes (each one takes 0..=this).
    pub sync_ms_max: u64,
    /// Out of 1000: after a step, crash the node having released only a
    /// random prefix of the step's actions, before its writes are synced.
    pub torn_crash_per_mille: u64,
    /// Timed or by hand.
    pub delivery: Delivery,
    /// Compare every node's whole log with its disk after every step.
    pub full_mirror: bool,
    /// Run the lab's applier as each node's application (it checks the
    /// order of applies and snapshots its history). Scenario tests, which
    /// hand the core arbitrary snapshot bytes, run without it.
    pub lab_app: bool,
    /// Record a readable trace of every input and action.
    pub trace: TraceMode,
}

impl SimConfig {
    /// The lab's setting: `n` nodes with default timing, no leader no-op (so
    /// indexes match the lab's), reliable or unreliable network.
    pub fn lab(n: usize, reliable: bool, seed: u64) -> Self {
        let mut raft = Config::new(NodeId(0), vec![NodeId(0)]);
        raft.leader_noop = false;
        SimConfig {
            nodes: n,
            first_id: 0,
            seed,
            net: if reliable {
                NetConfig::reliable()
            } else {
                NetConfig::unreliable()
            },
            snapshot_interval: None,
            raft,
            tick_ms: core_raft::DEFAULT_TICK_MS,
            sync_ms_max: 1,
            torn_crash_per_mille: 0,
            delivery: Delivery::Timed,
            full_mirror: false,
            lab_app: true,
            trace: TraceMode::from_env(),
        }
    }

    /// The scenario tests' setting: nodes 1..=n with elections after 10..=20
    /// ticks and heartbeats every 3, delivered by hand.
    pub fn scenario(n: usize) -> Self {
        let mut raft = Config::new(NodeId(1), vec![NodeId(1)]);
        raft.election_ticks_min = 10;
        raft.election_ticks_max = 20;
        raft.heartbeat_ticks = 3;
        SimConfig {
            first_id: 1,
            raft,
            delivery: Delivery::Manual,
            full_mirror: true,
            lab_app: false,
            net: NetConfig::reliable(),
            ..SimConfig::lab(n, true, 0)
        }
    }
}

/// A message in flight.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    /// Sender.
    pub from: NodeId,
    /// Recipient.
    pub to: NodeId,
    /// The message.
    pub msg: Message,
}

/// Why a message was not delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lost {
    /// Its recipient is down.
    Down,
    /// The link from its sender to its recipient is cut.
    LinkCut,
}

/// What the event queue holds.
#[derive(Debug)]
pub(crate) enum Event {
    Deliver(Envelope),
    Tick { node: usize, incarnation: u64 },
    Sync { node: usize, incarnation: u64 },
}

/// A simulated client: polled every [`CLIENT_POLL_MS`] of virtual time while
/// the cluster runs, so several clients act concurrently with the scenario.
/// A client must not call [`Cluster::run_for`] itself.
pub trait Client {
    /// Do whatever is due at the cluster's current time. Return true once
    /// finished; the client is then dropped.
    fn poll(&mut self, cluster: &mut Cluster) -> bool;
}

/// How often background clients are polled, in virtual milliseconds.
pub const CLIENT_POLL_MS: u64 = 10;

/// An action held by the gate, with what it vouches for.
#[derive(Debug)]
struct Held {
    action: Action,
    vouched: Vouched,
}

impl Gated for Held {
    fn is_persist(&self) -> bool {
        self.action.is_persist()
    }
    fn waits_for_persists(&self) -> bool {
        self.action.waits_for_persists()
    }
}

/// One simulated server: the live machine (if up), its disk, its app.
struct Slot {
    id: NodeId,
    raft: Option<Raft>,
    gate: PersistGate<Held>,
    /// The last batch written to the disk (synced or not).
    written_batch: u64,
    disk: SimDisk,
    app: LabApp,
    incarnation: u64,
    config: Config,
}

/// The simulated world.
pub struct Cluster {
    /// Virtual time in milliseconds.
    pub now_ms: u64,
    config: SimConfig,
    slots: Vec<Slot>,
    /// The network (links, faults, counters).
    pub net: Network,
    rng: SimRng,
    queue: EventQueue<Event>,
    /// The global invariant checker.
    pub checker: Checker,
    /// Check Raft's safety properties (scenario tests that forge messages
    /// turn them off: a forged leader is not a real one). While off, the
    /// checker learns nothing either: a forged index can be anything.
    pub checks: bool,
    /// Check persist before send and each core's view of its own disk.
    pub durability_checks: bool,
    /// The lab's notion of a connected server.
    connected: Vec<bool>,
    trace: Trace,
    /// Read outcomes (ReadReady / ReadFailed) per node, for clients to collect.
    pub read_outcomes: Vec<(NodeId, Action)>,
    /// Per (node, read id): the highest commit index known anywhere when the
    /// read was issued; a linearizable read point is at least that.
    reads: BTreeMap<(NodeId, u64), LogIndex>,
    /// Every message released, in order (manual delivery only).
    pub sent: Vec<Envelope>,
    /// Per node, every action other than a send, in the order performed
    /// (manual delivery only).
    pub outputs: BTreeMap<NodeId, Vec<Action>>,
    /// Number of steps taken (all nodes).
    pub steps: u64,
    clients: Vec<Box<dyn Client>>,
}

impl Cluster {
    /// Build and start every node, fully connected.
    pub fn new(config: SimConfig) -> Cluster {
        let durable = vec![Durable::default(); config.nodes];
        Cluster::with_durable(config, durable)
    }

    /// Build nodes from the given durable states (one per node) and start
    /// them.
    pub fn with_durable(config: SimConfig, durable: Vec<Durable>) -> Cluster {
        let n = durable.len() as u64;
        let voters: Vec<NodeId> = (0..n).map(|i| NodeId(config.first_id + i)).collect();
        let nodes = durable
            .into_iter()
            .zip(&voters)
            .map(|(d, id)| {
                let mut c = config.raft.clone();
                c.id = *id;
                c.voters = voters.clone();
                (c, d)
            })
            .collect();
        Cluster::with_nodes(config, nodes)
    }

    /// Build nodes with their own configurations (ids and voters included)
    /// and durable states, and start them.
    pub fn with_nodes(config: SimConfig, nodes: Vec<(Config, Durable)>) -> Cluster {
        let n = nodes.len();
        let mut rng = SimRng::new(config.seed);
        let net_rng_seed = rng.next_u64();
        let voters: Vec<NodeId> = nodes.iter().map(|(c, _)| c.id).collect();
        let slots = nodes
            .into_iter()
            .map(|(c, d)| {
                let id = c.id;
                Slot {
                    id,
                    raft: None,
                    gate: PersistGate::new(),
                    written_batch: 0,
                    disk: SimDisk::new(d),
                    app: LabApp::default(),
                    incarnation: 0,
                    config: c,
                }
            })
            .collect();
        let mut cluster = Cluster {
            now_ms: 0,
            net: Network::new(n, config.net.clone()),
            rng: SimRng::new(net_rng_seed),
            queue: EventQueue::default(),
            checker: Checker::default(),
            checks: true,
            durability_checks: true,
            connected: vec![true; n],
            trace: Trace::new(config.trace),
            read_outcomes: Vec::new(),
            reads: BTreeMap::new(),
            sent: Vec::new(),
            outputs: voters.iter().map(|id| (*id, Vec::new())).collect(),
            steps: 0,
            clients: Vec::new(),
            slots,
            config,
        };
        for i in 0..n {
            cluster.start(i);
        }
        cluster
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// True for an empty cluster (never, in practice).
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The run's seed.
    pub fn seed(&self) -> u64 {
        self.config.seed
    }

    /// The simulation's own RNG, for scenario decisions that must replay.
    pub fn rng(&mut self) -> &mut SimRng {
        &mut self.rng
    }

    /// The id of node `i`.
    pub fn id(&self, i: usize) -> NodeId {
        self.slots[i].id
    }

    /// The index of node `id`.
    pub fn index(&self, id: NodeId) -> usize {
        self.slots
            .iter()
            .position(|s| s.id == id)
            .unwrap_or_else(|| panic!("no node {id} in this cluster"))
    }

    /// The index of node `id`, if it has a slot (a node replaced by
    /// [`Cluster::replace_node`] has none any more).
    pub fn find(&self, id: NodeId) -> Option<usize> {
        self.slots.iter().position(|s| s.id == id)
    }

    /// The live machine of node `i`, if it is up.
    pub fn raft(&self, i: usize) -> Option<&Raft> {
        self.slots[i].raft.as_ref()
    }

    /// The configuration node `i` runs (and restarts) with.
    pub fn node_config(&self, i: usize) -> &Config {
        &self.slots[i].config
    }

    /// Change the configuration node `i` restarts with.
    pub fn set_node_config(&mut self, i: usize, config: Config) {
        self.slots[i].config = config;
    }

    /// The application state of node `i`.
    pub fn app(&self, i: usize) -> &LabApp {
        &self.slots[i].app
    }

    /// What node `i` has written (synced or not): what it believes it holds.
    pub fn durable(&self, i: usize) -> &Durable {
        self.slots[i].disk.written()
    }

    /// What node `i`'s disk holds for certain.
    pub fn synced(&self, i: usize) -> &Durable {
        self.slots[i].disk.synced()
    }

    /// Whether node `i` is up.
    pub fn is_up(&self, i: usize) -> bool {
        self.slots[i].raft.is_some()
    }

    /// Whether node `i` is connected (the lab's notion).
    pub fn is_connected(&self, i: usize) -> bool {
        self.connected[i]
    }

    /// Size in bytes of node `i`'s persisted Raft state (hard state plus
    /// log, postcard-encoded): the lab's `RaftStateSize`.
    pub fn raft_state_size(&self, i: usize) -> usize {
        let d = self.durable(i);
        postcard::to_allocvec(&(&d.hard_state, &d.entries)).map_or(0, |b| b.len())
    }

    /// Size in bytes of node `i`'s stored snapshot.
    pub fn snapshot_size(&self, i: usize) -> usize {
        self.durable(i)
            .snapshot
            .as_ref()
            .map_or(0, |s| s.data.len())
    }

    /// A hash of everything that happened (messages sent, entries applied),
    /// for the determinism self-check.
    pub fn trace_hash(&self) -> u64 {
        self.trace.digest()
    }

    /// The tail of the readable trace (empty unless tracing).
    pub fn trace_tail(&self) -> impl Iterator<Item = &String> {
        self.trace.tail()
    }

    /// Start (or restart) node `i` from what its disk holds.
    pub fn start(&mut self, i: usize) {
        assert!(self.slots[i].raft.is_none(), "node {i} is already up");
        let mut config = self.slots[i].config.clone();
        if self.config.delivery == Delivery::Timed {
            config.rng_seed = self.rng.next_u64();
        }
        let id = self.slots[i].id;
        let durable = self.slots[i].disk.written().clone();
        let raft = Raft::restore(config, durable.clone())
            .unwrap_or_else(|e| self.fail(format!("{id} cannot restore its durable state: {e}")));
        let app = if self.config.lab_app {
            LabApp::restore(durable.snapshot.as_ref())
                .unwrap_or_else(|e| self.fail(format!("{id}: {e}")))
        } else {
            LabApp::default()
        };
        let applied = durable.snapshot.as_ref().map_or(LogIndex(0), |s| s.index);
        self.checker.on_start(id, applied);
        let slot = &mut self.slots[i];
        slot.incarnation += 1;
        slot.raft = Some(raft);
        slot.app = app;
        slot.gate = PersistGate::new();
        slot.written_batch = 0;
        let incarnation = slot.incarnation;
        if self.config.delivery == Delivery::Timed {
            let phase = 1 + self.rng.below(self.config.tick_ms);
            let node = i;
            self.queue
                .push(self.now_ms + phase, Event::Tick { node, incarnation });
        }
        self.trace.line(self.now_ms, || {
            format!("{id} starts (incarnation {incarnation})")
        });
    }

    /// Give slot `i` to a new node: the node there is stopped for good and
    /// its disk wiped, and a node with `config` (a new id, never used in
    /// this cluster) starts from nothing in its place, on its links. The
    /// swarms' operator brings a removed node's machine back this way, as
    /// a new member to add.
    pub fn replace_node(&mut self, i: usize, config: Config) {
        assert!(
            self.slots.iter().all(|s| s.id != config.id),
            "{} is in use",
            config.id
        );
        self.crash(i);
        let old = self.slots[i].id;
        let slot = &mut self.slots[i];
        slot.id = config.id;
        slot.disk = SimDisk::new(Durable::default());
        slot.config = config;
        let new = slot.id;
        self.trace.line(self.now_ms, || {
            format!("{old} is gone for good; {new} takes its place")
        });
        self.start(i);
    }

    /// Crash node `i`: its machine and application state are lost, and so
    /// is a random part of what it wrote but did not sync.
    pub fn crash(&mut self, i: usize) {
        if self.slots[i].raft.take().is_none() {
            return;
        }
        let slot = &mut self.slots[i];
        slot.incarnation += 1;
        let lost = slot.disk.unsynced();
        let kept = slot.disk.crash(&mut self.rng);
        let (id, hs) = (slot.id, slot.disk.synced().hard_state);
        self.trace.line(self.now_ms, || {
            format!("{id} crashes; {kept} of {lost} unsynced writes survive")
        });
        if self.checks {
            let r = self.checker.on_persist_hard_state(id, &hs);
            self.check(r);
        }
    }

    /// The lab's `ConnectOne`: mark `i` connected and link it with every
    /// connected server.
    pub fn connect(&mut self, i: usize) {
        self.connected[i] = true;
        for j in 0..self.len() {
            if self.connected[j] {
                self.net.set_link(i, j, true);
            }
        }
        self.trace.line(self.now_ms, || format!("n{i} connected"));
    }

    /// The lab's `DisconnectAll`: cut every link to and from `i`.
    pub fn disconnect(&mut self, i: usize) {
        self.connected[i] = false;
        for j in 0..self.len() {
            self.net.set_link(i, j, false);
        }
        self.trace
            .line(self.now_ms, || format!("n{i} disconnected"));
    }

    /// Connect every server.
    pub fn connect_all(&mut self) {
        for i in 0..self.len() {
            self.connect(i);
        }
    }

    /// Split the cluster in two sides that cannot talk to each other.
    pub fn partition(&mut self, side_a: &[usize], side_b: &[usize]) {
        self.net.partition(side_a, side_b);
        self.trace
            .line(self.now_ms, || format!("partition {side_a:?} | {side_b:?}"));
    }

    /// Change the probability (out of 1000, per step) of crashing a node
    /// between two of its actions.
    pub fn set_torn_crash_per_mille(&mut self, per_mille: u64) {
        self.config.torn_crash_per_mille = per_mille;
    }

    /// Change the network's fault settings.
    pub fn set_net(&mut self, net: NetConfig) {
        self.net.config = net;
    }

    /// Propose `cmd` at node `i` (the lab's `Start`). Returns the index and
    /// term if `i` is an up leader.
    pub fn propose(&mut self, i: usize, cmd: Vec<u8>) -> Option<(LogIndex, Term)> {
        self.slots[i].raft.as_ref()?;
        let actions = self.step(i, Input::Propose(cmd));
        actions.iter().find_map(|a| match a {
            Action::Proposed { index, term } => Some((*index, *term)),
            _ => None,
        })
    }

    /// Feed one input to node `i` (which must be up): its persists are
    /// written (and, with manual delivery, synced), the actions that need
    /// nothing more are carried out, the invariants are checked. Returns
    /// the core's actions as it produced them.
    pub fn step(&mut self, i: usize, input: Input) -> Vec<Action> {
        let id = self.slots[i].id;
        self.trace.line(self.now_ms, || format!("{id} <- {input}"));
        if let Input::ReadIndex { id: read } = input {
            let known = self.max_commit();
            self.reads.insert((id, read), known);
        }
        let vouched = vouched_by(&input);
        let raft = self.slots[i].raft.as_mut().expect("step on a crashed node");
        let actions = raft.step(input);
        self.steps += 1;
        let held = actions.iter().map(|a| Held {
            action: a.clone(),
            vouched: if matches!(a, Action::Send { .. }) {
                vouched.clone()
            } else {
                Vec::new()
            },
        });
        let admitted = self.slots[i].gate.admit(held.collect());
        let torn = self.config.torn_crash_per_mille > 0
            && self.rng.chance(self.config.torn_crash_per_mille, 1000);
        let keep = if torn {
            self.rng.below(admitted.ready.len() as u64 + 1) as usize
        } else {
            admitted.ready.len()
        };
        let mut snapshot_due = self.release(i, admitted.ready.into_iter().take(keep));
        if let Some((batch, writes)) = admitted.batch {
            self.write(i, batch, writes);
        }
        if torn {
            self.trace.line(self.now_ms, || {
                format!("{id} crashes after releasing {keep} actions of the step")
            });
            self.crash(i);
            return actions;
        }
        match self.config.delivery {
            Delivery::Manual => snapshot_due = snapshot_due.max(self.sync(i)),
            Delivery::Timed => {}
        }
        self.after_step(i);
        if let Some(index) = snapshot_due {
            if self.is_up(i) {
                let data = self.slots[i].app.snapshot_data(index);
                self.step(i, Input::Snapshot { index, data });
            }
        }
        actions
    }

    /// Write a batch of persists to node `i`'s disk; with timed delivery,
    /// its sync completes after a random delay.
    fn write(&mut self, i: usize, batch: u64, writes: Vec<Held>) {
        let id = self.slots[i].id;
        let actions: Vec<Action> = writes.into_iter().map(|h| h.action).collect();
        for a in &actions {
            self.trace.detail(|| a.to_string());
            if let Action::PersistEntries(entries) = a {
                let raft = self.slots[i].raft.as_ref().expect("up");
                if self.checks {
                    let r = self.checker.on_persist_entries(raft, entries);
                    self.check(r);
                }
            }
            if self.config.delivery == Delivery::Manual {
                self.outputs.entry(id).or_default().push(a.clone());
            }
        }
        let slot = &mut self.slots[i];
        slot.disk.write(&actions);
        slot.written_batch = batch;
        if self.config.delivery == Delivery::Timed {
            let delay = self.rng.below(self.config.sync_ms_max + 1);
            let incarnation = slot.incarnation;
            self.queue.push(
                self.now_ms + delay,
                Event::Sync {
                    node: i,
                    incarnation,
                },
            );
        }
    }

    /// Node `i`'s disk syncs: what waited for it is released. Returns the
    /// index at which the app wants a snapshot, if one fell due.
    fn sync(&mut self, i: usize) -> Option<LogIndex> {
        let slot = &mut self.slots[i];
        slot.disk.sync();
        let (id, hs) = (slot.id, slot.disk.synced().hard_state);
        let batch = slot.written_batch;
        let ready = slot.gate.persisted(batch);
        if self.checks {
            let r = self.checker.on_persist_hard_state(id, &hs);
            self.check(r);
        }
        self.release(i, ready.into_iter())
    }

    /// Carry out released actions in order, each checked against what the
    /// node's disk holds durably. Returns a snapshot the app asks for.
    fn release(&mut self, i: usize, actions: impl Iterator<Item = Held>) -> Option<LogIndex> {
        let id = self.slots[i].id;
        let mut snapshot_due = None;
        for Held { action, vouched } in actions {
            self.trace.detail(|| action.to_string());
            if self.durability_checks {
                let r = check_release(id, self.slots[i].disk.synced(), &action, &vouched);
                self.check_durability(r);
            }
            if let Some(due) = self.perform(i, action) {
                snapshot_due = Some(due);
            }
        }
        snapshot_due
    }

    /// One released action's effect on the world.
    fn perform(&mut self, i: usize, action: Action) -> Option<LogIndex> {
        let id = self.slots[i].id;
        let manual = self.config.delivery == Delivery::Manual;
        let mut snapshot_due = None;
        match &action {
            Action::Send { to, msg } => {
                self.send(id, *to, msg.clone());
                return None;
            }
            Action::Apply(entries) => {
                for e in entries {
                    self.trace.hash(&[e.index.0, e.term.0, i as u64]);
                }
                if self.checks {
                    let r = self.checker.on_apply(id, entries);
                    self.check(r);
                }
                if self.config.lab_app {
                    let interval = self.config.snapshot_interval;
                    match self.slots[i].app.apply(entries, interval) {
                        Ok(due) => snapshot_due = due,
                        Err(e) => self.fail(format!("{id}: {e}")),
                    }
                }
            }
            Action::ApplySnapshot(snapshot) => {
                if self.checks {
                    let r = self.checker.on_apply_snapshot(id, snapshot);
                    self.check(r);
                }
                if self.config.lab_app {
                    if let Err(e) = self.slots[i].app.install(snapshot) {
                        self.fail(format!("{id}: {e}"));
                    }
                }
            }
            Action::ReadReady { id: read, index } => {
                let known = self.reads.remove(&(id, *read)).unwrap_or_default();
                if self.checks && *index < known {
                    self.fail(format!(
                        "{id}: read {read} served at {index}, but {known} was committed before it was issued"
                    ));
                }
                self.read_outcomes.push((id, action.clone()));
            }
            Action::ReadFailed { .. } => self.read_outcomes.push((id, action.clone())),
            _ => {}
        }
        if manual {
            self.outputs.entry(id).or_default().push(action);
        }
        snapshot_due
    }

    /// Checks on node `i` after one of its steps.
    fn after_step(&mut self, i: usize) {
        let Some(raft) = self.slots[i].raft.as_ref() else {
            return;
        };
        if self.durability_checks {
            let full = self.config.full_mirror;
            let r = check_mirror(raft, self.slots[i].disk.written(), full);
            self.check_durability(r);
        }
        if self.checks {
            let r = self.checker.after_step(raft);
            self.check(r);
        }
    }

    /// A broken safety invariant fails the run (unless safety checks are off).
    fn check(&self, result: Result<(), Violation>) {
        if let Err(Violation(v)) = result {
            if self.checks {
                self.fail(v);
            }
        }
    }

    /// Persist before send and the mirror check: on unless a test turns
    /// them off.
    fn check_durability(&self, result: Result<(), Violation>) {
        if let Err(Violation(v)) = result {
            if self.durability_checks {
                self.fail(v);
            }
        }
    }

    fn send(&mut self, from: NodeId, to: NodeId, msg: Message) {
        let (Some(a), Some(b)) = (self.find(from), self.find(to)) else {
            // To a node that is gone for good (its slot went to a new one).
            return;
        };
        let encoded = postcard::to_allocvec(&msg).unwrap_or_default();
        self.trace.hash(&[from.0, to.0, self.now_ms]);
        self.trace.hash_bytes(&encoded);
        let envelope = Envelope { from, to, msg };
        match self.config.delivery {
            Delivery::Manual => {
                self.sent.push(envelope.clone());
                self.queue.push(self.now_ms, Event::Deliver(envelope));
            }
            Delivery::Timed => {
                let fate = self.net.route(&mut self.rng, a, b, &envelope.msg);
                for delay in fate {
                    self.queue
                        .push(self.now_ms + delay, Event::Deliver(envelope.clone()));
                }
            }
        }
    }

    /// The highest commit index known anywhere (live nodes, and what any
    /// node has applied).
    pub fn max_commit(&self) -> LogIndex {
        let live = self
            .slots
            .iter()
            .filter_map(|s| s.raft.as_ref())
            .map(|r| r.commit_index())
            .max()
            .unwrap_or_default();
        live.max(LogIndex(self.checker.committed_len()))
    }

    /// Add a background client.
    pub fn spawn(&mut self, client: Box<dyn Client>) {
        self.clients.push(client);
    }

    /// Number of background clients still running.
    pub fn clients_running(&self) -> usize {
        self.clients.len()
    }

    /// Advance virtual time by `ms`, processing every event due and polling
    /// background clients along the way.
    pub fn run_for(&mut self, ms: u64) {
        let until = self.now_ms + ms;
        while !self.clients.is_empty() && self.now_ms < until {
            let slice_end = until.min(self.now_ms + CLIENT_POLL_MS);
            self.run_events_until(slice_end);
            let mut clients = std::mem::take(&mut self.clients);
            clients.retain_mut(|c| !c.poll(self));
            clients.append(&mut self.clients);
            self.clients = clients;
        }
        self.run_events_until(until);
    }

    fn run_events_until(&mut self, until: u64) {
        while let Some((time, event)) = self.queue.pop_due(until) {
            self.now_ms = time;
            self.handle(event);
        }
        self.now_ms = until;
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Tick { node, incarnation } => {
                if self.slots[node].incarnation == incarnation && self.is_up(node) {
                    self.step(node, Input::Tick);
                    if self.slots[node].incarnation == incarnation {
                        let at = self.now_ms + self.config.tick_ms;
                        self.queue.push(at, Event::Tick { node, incarnation });
                    }
                }
            }
            Event::Sync { node, incarnation } => {
                if self.slots[node].incarnation == incarnation && self.is_up(node) {
                    if let Some(index) = self.sync(node) {
                        let data = self.slots[node].app.snapshot_data(index);
                        self.step(node, Input::Snapshot { index, data });
                    }
                }
            }
            Event::Deliver(envelope) => {
                let _ = self.deliver(envelope);
            }
        }
    }

    /// Deliver a message now: the recipient's actions, or why it was lost
    /// (its recipient is down, or the link is cut).
    pub fn deliver(&mut self, envelope: Envelope) -> Result<Vec<Action>, Lost> {
        let (Some(a), Some(b)) = (self.find(envelope.from), self.find(envelope.to)) else {
            // From or to a node gone for good while the message was in flight.
            return Err(Lost::Down);
        };
        if !self.is_up(b) {
            return Err(Lost::Down);
        }
        if !self.net.linked(a, b) {
            return Err(Lost::LinkCut);
        }
        if envelope.msg.is_request() {
            self.net.requests_delivered[b] += 1;
        }
        let input = Input::Receive {
            from: envelope.from,
            msg: envelope.msg,
        };
        Ok(self.step(b, input))
    }

    /// Messages waiting in the queue, oldest first (manual delivery).
    pub fn queued(&self) -> Vec<Envelope> {
        self.queue
            .iter()
            .filter_map(|e| match e {
                Event::Deliver(env) => Some(env.clone()),
                _ => None,
            })
            .collect()
    }

    /// Remove the queued messages matching `pred`, oldest first.
    pub fn take_queued(&mut self, pred: impl Fn(&Envelope) -> bool) -> Vec<Envelope> {
        self.queue
            .take_all(|e| matches!(e, Event::Deliver(env) if pred(env)))
            .into_iter()
            .filter_map(|e| match e {
                Event::Deliver(env) => Some(env),
                _ => None,
            })
            .collect()
    }

    /// Keep only the queued messages for which `keep` is true.
    pub fn retain_queued(&mut self, mut keep: impl FnMut(&Envelope) -> bool) {
        self.queue.retain(|e| match e {
            Event::Deliver(env) => keep(env),
            _ => true,
        });
    }

    /// Remove the `k`-th queued message (oldest is 0).
    pub fn remove_queued(&mut self, k: usize) -> Option<Envelope> {
        match self
            .queue
            .remove_nth(|e| matches!(e, Event::Deliver(_)), k)?
        {
            Event::Deliver(env) => Some(env),
            _ => unreachable!("matched a delivery"),
        }
    }

    /// Queue a message for delivery now (manual delivery: at the end).
    pub fn push_queued(&mut self, envelope: Envelope) {
        self.queue.push(self.now_ms, Event::Deliver(envelope));
    }

    /// Deliver the oldest queued message (dropped if its link is cut or its
    /// recipient is down). Returns it.
    pub fn deliver_one(&mut self) -> Option<Envelope> {
        let event = self.queue.take_first(|e| matches!(e, Event::Deliver(_)))?;
        let Event::Deliver(envelope) = event else {
            unreachable!("took a delivery")
        };
        let _ = self.deliver(envelope.clone());
        Some(envelope)
    }

    /// Stop the run with a violation report (caught by the seed runner,
    /// which prints the replay command).
    pub fn fail(&self, what: String) -> ! {
        panic!(
            "seed {}: at {} ms: {what}\n{}{}",
            self.config.seed,
            self.now_ms,
            self.describe_nodes(),
            self.trace.report()
        );
    }

    /// One line per node: up/down, connectivity, role, term, log and commit.
    pub fn describe_nodes(&self) -> String {
        let mut out = String::new();
        for (i, slot) in self.slots.iter().enumerate() {
            let id = slot.id;
            let line = match &slot.raft {
                None => format!("  {id}: down\n"),
                Some(r) => format!(
                    "  {id}: {:?} {} last={}/{} commit={} applied={} snap={} leader={:?} unsynced={} {} (at {}){}\n",
                    r.role(),
                    r.term(),
                    r.last_index(),
                    r.last_term(),
                    r.commit_index(),
                    r.applied_index(),
                    r.snapshot_index(),
                    r.leader_hint(),
                    slot.disk.unsynced(),
                    r.membership(),
                    r.membership_index(),
                    if self.connected[i] { "" } else { " (disconnected)" }
                ),
            };
            out.push_str(&line);
        }
        out
    }
}
