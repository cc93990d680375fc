//! A simulated Raft cluster: the cores themselves, in-memory durable storage,
//! the lab applier, a seeded network and a virtual clock, driven by one
//! event queue ordered by (virtual time, sequence number).

use super::app::LabApp;
use super::invariants::{Checker, Violation};
use super::network::{NetConfig, Network};
use super::rng::SimRng;
use core_raft::{Action, Config, Durable, Input, LogIndex, Message, NodeId, Raft, Term};
use std::collections::BTreeMap;

/// How to build a simulated cluster.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Number of Raft nodes (ids 0..nodes).
    pub nodes: usize,
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
    /// Out of 1000: after a step, crash the node having carried out only a
    /// random prefix of its actions (a crash between two actions).
    pub torn_crash_per_mille: u64,
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
            seed,
            net: if reliable {
                NetConfig::reliable()
            } else {
                NetConfig::unreliable()
            },
            snapshot_interval: None,
            raft,
            tick_ms: core_raft::DEFAULT_TICK_MS,
            torn_crash_per_mille: 0,
            trace: TraceMode::from_env(),
        }
    }
}

/// What to do with the readable trace of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TraceMode {
    /// No trace (fastest).
    Off,
    /// Keep the last lines, printed with a failure report.
    Tail,
    /// Print every line to standard output as it happens.
    Print,
}

impl TraceMode {
    /// `Tail` if `SIM_TRACE` is set, else `Off`.
    pub fn from_env() -> TraceMode {
        if std::env::var_os("SIM_TRACE").is_some() {
            TraceMode::Tail
        } else {
            TraceMode::Off
        }
    }
}

/// Lines of trace kept in `Tail` mode.
const TRACE_TAIL_LINES: usize = 60;

enum Event {
    Deliver {
        from: NodeId,
        to: NodeId,
        msg: Message,
    },
    Tick {
        node: usize,
        incarnation: u64,
    },
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

/// One simulated server: the live machine (if up), its storage and its app.
struct Slot {
    raft: Option<Raft>,
    durable: Durable,
    app: LabApp,
    incarnation: u64,
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
    queue: BTreeMap<(u64, u64), Event>,
    seq: u64,
    /// The global invariant checker.
    pub checker: Checker,
    /// The lab's notion of a connected server.
    connected: Vec<bool>,
    trace: std::collections::VecDeque<String>,
    trace_hash: u64,
    /// Read outcomes (ReadReady / ReadFailed) per node, for clients to collect.
    pub read_outcomes: Vec<(NodeId, Action)>,
    /// Number of steps taken (all nodes).
    pub steps: u64,
    clients: Vec<Box<dyn Client>>,
}

impl Cluster {
    /// Build and start every node, fully connected.
    pub fn new(config: SimConfig) -> Cluster {
        let n = config.nodes;
        let mut rng = SimRng::new(config.seed);
        let net_rng_seed = rng.next_u64();
        let mut cluster = Cluster {
            now_ms: 0,
            net: Network::new(n, config.net.clone()),
            rng: SimRng::new(net_rng_seed),
            queue: BTreeMap::new(),
            seq: 0,
            checker: Checker::default(),
            connected: vec![true; n],
            trace: std::collections::VecDeque::new(),
            trace_hash: 0xcbf2_9ce4_8422_2325,
            read_outcomes: Vec::new(),
            steps: 0,
            clients: Vec::new(),
            slots: (0..n)
                .map(|_| Slot {
                    raft: None,
                    durable: Durable::default(),
                    app: LabApp::default(),
                    incarnation: 0,
                })
                .collect(),
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

    /// The live machine of node `i`, if it is up.
    pub fn raft(&self, i: usize) -> Option<&Raft> {
        self.slots[i].raft.as_ref()
    }

    /// The application state of node `i`.
    pub fn app(&self, i: usize) -> &LabApp {
        &self.slots[i].app
    }

    /// What node `i` has made durable.
    pub fn durable(&self, i: usize) -> &Durable {
        &self.slots[i].durable
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
        let d = &self.slots[i].durable;
        postcard::to_allocvec(&(&d.hard_state, &d.entries)).map_or(0, |b| b.len())
    }

    /// Size in bytes of node `i`'s stored snapshot.
    pub fn snapshot_size(&self, i: usize) -> usize {
        self.slots[i]
            .durable
            .snapshot
            .as_ref()
            .map_or(0, |s| s.data.len())
    }

    /// A hash of everything that happened (messages sent, entries applied),
    /// for the determinism self-check.
    pub fn trace_hash(&self) -> u64 {
        self.trace_hash
    }

    /// The tail of the readable trace (empty unless tracing).
    pub fn trace_tail(&self) -> impl Iterator<Item = &String> {
        self.trace.iter()
    }

    /// Start (or restart) node `i` from its durable state.
    pub fn start(&mut self, i: usize) {
        assert!(self.slots[i].raft.is_none(), "node {i} is already up");
        let id = NodeId(i as u64);
        let mut config = self.config.raft.clone();
        config.id = id;
        config.voters = (0..self.slots.len() as u64).map(NodeId).collect();
        config.rng_seed = self.rng.next_u64();
        let durable = self.slots[i].durable.clone();
        let raft = Raft::restore(config, durable.clone()).unwrap_or_else(|e| {
            self.fail(format!("node {i} cannot restore its durable state: {e}"))
        });
        let app = LabApp::restore(durable.snapshot.as_ref())
            .unwrap_or_else(|e| self.fail(format!("node {i}: {e}")));
        self.checker.on_start(id, app.applied_index());
        let slot = &mut self.slots[i];
        slot.incarnation += 1;
        slot.raft = Some(raft);
        slot.app = app;
        let incarnation = slot.incarnation;
        let phase = 1 + self.rng.below(self.config.tick_ms);
        self.schedule(
            phase,
            Event::Tick {
                node: i,
                incarnation,
            },
        );
        self.log_trace(|| format!("{id} starts (incarnation {incarnation})"));
    }

    /// Crash node `i`: its machine and application state are lost; only what
    /// it persisted survives.
    pub fn crash(&mut self, i: usize) {
        if self.slots[i].raft.take().is_some() {
            self.slots[i].incarnation += 1;
            self.log_trace(|| format!("n{i} crashes"));
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
        self.log_trace(|| format!("n{i} connected"));
    }

    /// The lab's `DisconnectAll`: cut every link to and from `i`.
    pub fn disconnect(&mut self, i: usize) {
        self.connected[i] = false;
        for j in 0..self.len() {
            self.net.set_link(i, j, false);
        }
        self.log_trace(|| format!("n{i} disconnected"));
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
        self.log_trace(|| format!("partition {side_a:?} | {side_b:?}"));
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

    /// Feed one input to node `i` (which must be up), carry out its actions,
    /// check the invariants, and return the actions.
    pub fn step(&mut self, i: usize, input: Input) -> Vec<Action> {
        let id = NodeId(i as u64);
        if self.config.trace != TraceMode::Off {
            let line = format!("{:>8}ms {id} <- {input}", self.now_ms);
            self.push_trace(line);
        }
        let raft = self.slots[i].raft.as_mut().expect("step on a crashed node");
        let actions = raft.step(input);
        self.steps += 1;
        let torn = self.config.torn_crash_per_mille > 0
            && self.rng.chance(self.config.torn_crash_per_mille, 1000);
        let keep = if torn {
            self.rng.below(actions.len() as u64 + 1) as usize
        } else {
            actions.len()
        };
        let snapshot_due = self.execute(i, &actions[..keep]);
        if torn {
            self.log_trace(|| format!("n{i} crashes after {keep} of {} actions", actions.len()));
            self.crash(i);
            return actions;
        }
        if let Some(index) = snapshot_due {
            let data = self.slots[i].app.snapshot_data(index);
            self.step(i, Input::Snapshot { index, data });
        }
        actions
    }

    /// Carry out actions in order; returns the index at which the app wants
    /// a snapshot, if one fell due.
    fn execute(&mut self, i: usize, actions: &[Action]) -> Option<LogIndex> {
        let id = NodeId(i as u64);
        let mut snapshot_due = None;
        for action in actions {
            if self.config.trace != TraceMode::Off {
                let line = format!("            -> {action}");
                self.push_trace(line);
            }
            let result = match action {
                Action::PersistHardState(hs) => {
                    self.slots[i].durable.persist(action);
                    self.checker.on_persist_hard_state(id, hs)
                }
                Action::PersistSnapshot { .. } => {
                    self.slots[i].durable.persist(action);
                    Ok(())
                }
                Action::PersistEntries(entries) => {
                    self.slots[i].durable.persist(action);
                    let raft = self.slots[i].raft.as_ref().expect("up");
                    self.checker.on_persist_entries(raft, entries)
                }
                Action::Send { to, msg } => {
                    self.send(id, *to, msg.clone());
                    Ok(())
                }
                Action::Apply(entries) => {
                    for e in entries {
                        self.hash(&[e.index.0, e.term.0, i as u64]);
                    }
                    let r = self.checker.on_apply(id, entries);
                    match self.slots[i]
                        .app
                        .apply(entries, self.config.snapshot_interval)
                    {
                        Ok(Some(due)) => snapshot_due = Some(due),
                        Ok(None) => {}
                        Err(e) => self.fail(format!("{id}: {e}")),
                    }
                    r
                }
                Action::ApplySnapshot(snapshot) => {
                    let r = self.checker.on_apply_snapshot(id, snapshot);
                    if let Err(e) = self.slots[i].app.install(snapshot) {
                        self.fail(format!("{id}: {e}"));
                    }
                    r
                }
                Action::ReadReady { .. } | Action::ReadFailed { .. } => {
                    self.read_outcomes.push((id, action.clone()));
                    Ok(())
                }
                Action::Proposed { .. } | Action::NotLeader { .. } => Ok(()),
            };
            if let Err(Violation(v)) = result {
                self.fail(v);
            }
        }
        if let Some(raft) = self.slots[i].raft.as_ref() {
            if let Err(Violation(v)) = self.checker.after_step(raft) {
                self.fail(v);
            }
        }
        snapshot_due
    }

    fn send(&mut self, from: NodeId, to: NodeId, msg: Message) {
        if to.0 as usize >= self.slots.len() {
            self.fail(format!("{from} sent to unknown node {to}"));
        }
        let encoded = postcard::to_allocvec(&msg).unwrap_or_default();
        self.hash(&[from.0, to.0, self.now_ms]);
        self.hash_bytes(&encoded);
        let fate = self.net.route(&mut self.rng, from, to, &msg);
        for delay in fate {
            self.schedule(
                delay,
                Event::Deliver {
                    from,
                    to,
                    msg: msg.clone(),
                },
            );
        }
    }

    fn schedule(&mut self, delay_ms: u64, event: Event) {
        self.seq += 1;
        self.queue.insert((self.now_ms + delay_ms, self.seq), event);
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
        while let Some(entry) = self.queue.first_entry() {
            if entry.key().0 > until {
                break;
            }
            let ((time, _), event) = entry.remove_entry();
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
                        self.schedule(self.config.tick_ms, Event::Tick { node, incarnation });
                    }
                }
            }
            Event::Deliver { from, to, msg } => {
                let t = to.0 as usize;
                if !self.is_up(t) || !self.net.linked(from, to) {
                    return;
                }
                if msg.is_request() {
                    self.net.requests_delivered[t] += 1;
                }
                self.step(t, Input::Receive { from, msg });
            }
        }
    }

    /// Stop the run with a violation report (caught by the seed runner,
    /// which prints the replay command).
    pub fn fail(&self, what: String) -> ! {
        let mut trace = String::new();
        for line in &self.trace {
            trace.push_str(line);
            trace.push('\n');
        }
        panic!(
            "seed {}: at {} ms: {what}\n{}{}",
            self.config.seed,
            self.now_ms,
            self.describe_nodes(),
            if trace.is_empty() {
                "(set SIM_TRACE=1 for a trace of the run)".to_string()
            } else {
                format!("last trace lines:\n{trace}")
            }
        );
    }

    /// One line per node: up/down, connectivity, role, term, log and commit.
    pub fn describe_nodes(&self) -> String {
        let mut out = String::new();
        for i in 0..self.len() {
            let line =
                match self.raft(i) {
                    None => format!("  n{i}: down\n"),
                    Some(r) => {
                        format!(
                    "  n{i}: {:?} {} last={}/{} commit={} applied={} snap={} leader={:?}{}\n",
                    r.role(),
                    r.term(),
                    r.last_index(),
                    r.last_term(),
                    r.commit_index(),
                    r.applied_index(),
                    r.snapshot_index(),
                    r.leader_hint(),
                    if self.connected[i] { "" } else { " (disconnected)" }
                )
                    }
                };
            out.push_str(&line);
        }
        out
    }

    fn log_trace(&mut self, line: impl FnOnce() -> String) {
        if self.config.trace != TraceMode::Off {
            let l = format!("{:>8}ms {}", self.now_ms, line());
            self.push_trace(l);
        }
    }

    fn push_trace(&mut self, line: String) {
        match self.config.trace {
            TraceMode::Off => {}
            TraceMode::Print => println!("{line}"),
            TraceMode::Tail => {
                if self.trace.len() == TRACE_TAIL_LINES {
                    self.trace.pop_front();
                }
                self.trace.push_back(line);
            }
        }
    }

    fn hash(&mut self, words: &[u64]) {
        for w in words {
            self.hash_bytes(&w.to_le_bytes());
        }
    }

    fn hash_bytes(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.trace_hash ^= u64::from(*b);
            self.trace_hash = self.trace_hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}
