//! A simulated service: servers running a replicated state machine on Raft
//! (or one unreplicated server, lab 2), clients that talk to them over the
//! simulated network, one event queue and one seed. Raft's invariants are
//! checked after every server step, plus an optional service-level check.

use crate::sim::invariants::{Checker, Violation};
use crate::sim::network::{NetConfig, Network};
use crate::sim::rng::SimRng;
use core_kv::{NotLeader, Rsm, RsmAction, RsmConfig, RsmInput, StateMachine};
use core_raft::{Action, Config, Durable, Entry, Message, NodeId};
use std::collections::BTreeMap;

/// The answer a server gives a client's submission.
pub type Answer<S> = Result<<S as StateMachine>::Output, NotLeader>;

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
    /// Serve read-only operations with ReadIndex.
    pub read_index: bool,
    /// Virtual milliseconds per tick (servers and clients).
    pub tick_ms: u64,
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
            raft: Config::new(NodeId(0), vec![NodeId(0)]),
            max_raft_state: None,
            read_index: true,
            tick_ms: core_raft::DEFAULT_TICK_MS,
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

enum Event<Op, Out> {
    Raft {
        from: usize,
        to: usize,
        msg: Message,
    },
    Request {
        client: usize,
        to: usize,
        id: u64,
        op: Op,
    },
    Answer {
        client: usize,
        from: usize,
        id: u64,
        answer: Result<Out, NotLeader>,
    },
    ServerTick {
        node: usize,
        incarnation: u64,
    },
    ClientTick,
}

enum Server<S: StateMachine> {
    Replica(Box<Rsm<S>>),
    Single(S),
}

struct Slot<S: StateMachine> {
    server: Option<Server<S>>,
    durable: Durable,
    incarnation: u64,
    /// Submissions in flight at this server: submission id -> (client, request id).
    pending: BTreeMap<u64, (usize, u64)>,
}

struct ClientSlot<S: StateMachine> {
    client: Box<dyn SimClient<S>>,
    /// Servers this client can reach (the lab's `MakeClientTo`).
    reach: Vec<bool>,
}

/// The simulated service.
pub struct World<S: StateMachine + Default> {
    /// Virtual time in milliseconds.
    pub now_ms: u64,
    config: WorldConfig,
    slots: Vec<Slot<S>>,
    clients: Vec<Option<ClientSlot<S>>>,
    /// The network.
    pub net: Network,
    rng: SimRng,
    queue: BTreeMap<(u64, u64), Event<S::Op, S::Output>>,
    seq: u64,
    next_submission: u64,
    /// Raft invariants.
    pub checker: Checker,
    service_check: Option<ServiceCheck<S>>,
    /// Steps taken by all servers.
    pub steps: u64,
}

impl<S> World<S>
where
    S: StateMachine + Default,
    S::Op: Clone,
    S::Output: Clone,
{
    /// Build the service and start every server.
    pub fn new(config: WorldConfig) -> World<S> {
        let n = config.servers;
        let mut world = World {
            now_ms: 0,
            net: Network::new(n, config.net.clone()),
            rng: SimRng::new(config.seed),
            queue: BTreeMap::new(),
            seq: 0,
            next_submission: 0,
            checker: Checker::default(),
            service_check: None,
            steps: 0,
            clients: Vec::new(),
            slots: (0..n)
                .map(|_| Slot {
                    server: None,
                    durable: Durable::default(),
                    incarnation: 0,
                    pending: BTreeMap::new(),
                })
                .collect(),
            config,
        };
        for i in 0..n {
            world.start(i);
        }
        let tick = world.config.tick_ms;
        world.schedule(tick, Event::ClientTick);
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
            Some(Server::Replica(r)) => Some(r),
            _ => None,
        }
    }

    /// The state machine at server `i`, if up.
    pub fn state(&self, i: usize) -> Option<&S> {
        match &self.slots[i].server {
            Some(Server::Replica(r)) => Some(r.state()),
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
                postcard::to_allocvec(&(&s.durable.hard_state, &s.durable.entries))
                    .map_or(0, |b| b.len())
            })
            .max()
            .unwrap_or(0)
    }

    /// The lab's `SnapshotSize`: the largest stored snapshot.
    pub fn max_snapshot_size(&self) -> usize {
        self.slots
            .iter()
            .map(|s| s.durable.snapshot.as_ref().map_or(0, |s| s.data.len()))
            .max()
            .unwrap_or(0)
    }

    /// Start (or restart) server `i` from its durable state.
    pub fn start(&mut self, i: usize) {
        assert!(self.slots[i].server.is_none(), "server {i} is already up");
        let server = if self.config.single {
            Server::Single(S::default())
        } else {
            let mut raft = self.config.raft.clone();
            raft.id = NodeId(i as u64);
            raft.voters = (0..self.slots.len() as u64).map(NodeId).collect();
            raft.rng_seed = self.rng.next_u64();
            let config = RsmConfig {
                raft,
                max_raft_state: self.config.max_raft_state,
                read_index: self.config.read_index,
                observe_applies: true,
            };
            let durable = self.slots[i].durable.clone();
            let applied = durable
                .snapshot
                .as_ref()
                .map(|s| s.index)
                .unwrap_or_default();
            let rsm = Rsm::restore(config, durable, S::default())
                .unwrap_or_else(|e| self.fail(format!("server {i} cannot restart: {e}")));
            self.checker.on_start(NodeId(i as u64), applied);
            Server::Replica(Box::new(rsm))
        };
        let slot = &mut self.slots[i];
        slot.server = Some(server);
        slot.incarnation += 1;
        let incarnation = slot.incarnation;
        if !self.config.single {
            let phase = 1 + self.rng.below(self.config.tick_ms);
            self.schedule(
                phase,
                Event::ServerTick {
                    node: i,
                    incarnation,
                },
            );
        }
    }

    /// Crash server `i`: everything not persisted is lost, and so are the
    /// answers it owed. A single (lab 2) server loses its whole state.
    pub fn crash(&mut self, i: usize) {
        let slot = &mut self.slots[i];
        if slot.server.take().is_some() {
            slot.incarnation += 1;
            slot.pending.clear();
        }
    }

    /// The lab's `ShutdownServer` for services: the server's in-process
    /// callers are released (pending submissions answered "not leader", as
    /// Kill unblocking `Submit`), then it crashes.
    pub fn shutdown(&mut self, i: usize) {
        let pending = std::mem::take(&mut self.slots[i].pending);
        for (_, (client, id)) in pending {
            self.answer(client, i, id, Err(NotLeader { leader_hint: None }));
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
        self.handle_request(client, server, id, op);
    }

    /// Advance virtual time by `ms`.
    pub fn run_for(&mut self, ms: u64) {
        let until = self.now_ms + ms;
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

    fn schedule(&mut self, delay_ms: u64, event: Event<S::Op, S::Output>) {
        self.seq += 1;
        self.queue.insert((self.now_ms + delay_ms, self.seq), event);
    }

    fn handle(&mut self, event: Event<S::Op, S::Output>) {
        match event {
            Event::ServerTick { node, incarnation } => {
                if self.slots[node].incarnation == incarnation && self.is_up(node) {
                    self.step(node, RsmInput::Tick);
                    if self.slots[node].incarnation == incarnation {
                        self.schedule(self.config.tick_ms, Event::ServerTick { node, incarnation });
                    }
                }
            }
            Event::Raft { from, to, msg } => {
                if self.is_up(to) && self.net.linked(from, to) {
                    if msg.is_request() {
                        self.net.requests_delivered[to] += 1;
                    }
                    self.step(
                        to,
                        RsmInput::Receive {
                            from: NodeId(from as u64),
                            msg,
                        },
                    );
                }
            }
            Event::Request { client, to, id, op } => {
                if self.is_up(to) && self.reaches(client, to) {
                    self.handle_request(client, to, id, op);
                }
            }
            Event::Answer {
                client,
                from,
                id,
                answer,
            } => {
                if !self.reaches(client, from) {
                    return;
                }
                if let Some(mut slot) = self.clients[client].take() {
                    let mut out = Outbox { sends: Vec::new() };
                    slot.client
                        .on_answer(self.now_ms, from, id, answer, &mut out);
                    self.clients[client] = Some(slot);
                    self.dispatch(client, out);
                }
            }
            Event::ClientTick => {
                for c in 0..self.clients.len() {
                    if let Some(mut slot) = self.clients[c].take() {
                        let mut out = Outbox { sends: Vec::new() };
                        slot.client.on_tick(self.now_ms, &mut out);
                        self.clients[c] = Some(slot);
                        self.dispatch(c, out);
                    }
                }
                self.schedule(self.config.tick_ms, Event::ClientTick);
            }
        }
    }

    fn reaches(&self, client: usize, server: usize) -> bool {
        self.clients
            .get(client)
            .and_then(|c| c.as_ref())
            .is_some_and(|c| c.reach[server])
    }

    fn dispatch(&mut self, client: usize, out: Outbox<S::Op>) {
        for (to, id, op) in out.sends {
            let linked = to < self.servers() && self.reaches(client, to);
            for delay in self.net.fate(&mut self.rng, linked, 0, false) {
                self.schedule(
                    delay,
                    Event::Request {
                        client,
                        to,
                        id,
                        op: op.clone(),
                    },
                );
            }
        }
    }

    fn handle_request(&mut self, client: usize, server: usize, id: u64, op: S::Op) {
        match self.slots[server].server.as_mut() {
            None => {}
            Some(Server::Single(sm)) => {
                // No log: the single server numbers what it applies itself.
                self.next_submission += 1;
                let output = sm.apply(core_raft::LogIndex(self.next_submission), &op);
                self.answer(client, server, id, Ok(output));
            }
            Some(Server::Replica(_)) => {
                self.next_submission += 1;
                let sub = self.next_submission;
                self.slots[server].pending.insert(sub, (client, id));
                self.step(server, RsmInput::Submit { id: sub, op });
            }
        }
    }

    fn answer(&mut self, client: usize, server: usize, id: u64, answer: Answer<S>) {
        let linked = self.reaches(client, server);
        for delay in self.net.fate(&mut self.rng, linked, 0, true) {
            self.schedule(
                delay,
                Event::Answer {
                    client,
                    from: server,
                    id,
                    answer: answer.clone(),
                },
            );
        }
    }

    /// Feed one input to replica `i` and carry out its actions, checking
    /// Raft's invariants and the service check.
    fn step(&mut self, i: usize, input: RsmInput<S::Op>) {
        let id = NodeId(i as u64);
        let Some(Server::Replica(rsm)) = self.slots[i].server.as_mut() else {
            return;
        };
        let actions = rsm.step(input);
        self.steps += 1;
        let mut applied: Vec<Entry> = Vec::new();
        for action in actions {
            let result = match action {
                RsmAction::Raft(a) => self.raft_action(i, a),
                RsmAction::Observed(Action::Apply(entries)) => {
                    let r = self.checker.on_apply(id, &entries);
                    applied.extend(entries);
                    r
                }
                RsmAction::Observed(Action::ApplySnapshot(s)) => {
                    self.checker.on_apply_snapshot(id, &s)
                }
                RsmAction::Observed(_) => Ok(()),
                RsmAction::Reply { id: sub, result } => {
                    if let Some((client, rid)) = self.slots[i].pending.remove(&sub) {
                        self.answer(client, i, rid, result);
                    }
                    Ok(())
                }
            };
            if let Err(Violation(v)) = result {
                self.fail(v);
            }
        }
        let Some(Server::Replica(rsm)) = self.slots[i].server.as_ref() else {
            return;
        };
        if let Err(Violation(v)) = self.checker.after_step(rsm.raft()) {
            self.fail(v);
        }
        if let Some(failure) = rsm.failure() {
            self.fail(format!("server {i} failed: {failure}"));
        }
        if let (Some(check), false) = (self.service_check, applied.is_empty()) {
            if let Err(v) = check(rsm.state(), &applied) {
                self.fail(format!("server {i}: {v}"));
            }
        }
    }

    fn raft_action(&mut self, i: usize, action: Action) -> Result<(), Violation> {
        let id = NodeId(i as u64);
        match &action {
            Action::Send { to, msg } => {
                let t = to.0 as usize;
                let fate = self.net.route(&mut self.rng, i, t, msg);
                for delay in fate {
                    self.schedule(
                        delay,
                        Event::Raft {
                            from: i,
                            to: t,
                            msg: msg.clone(),
                        },
                    );
                }
                Ok(())
            }
            Action::PersistHardState(hs) => {
                self.slots[i].durable.persist(&action);
                self.checker.on_persist_hard_state(id, hs)
            }
            Action::PersistEntries(entries) => {
                self.slots[i].durable.persist(&action);
                let Some(Server::Replica(rsm)) = self.slots[i].server.as_ref() else {
                    return Ok(());
                };
                self.checker.on_persist_entries(rsm.raft(), entries)
            }
            _ => {
                self.slots[i].durable.persist(&action);
                Ok(())
            }
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
                        "  s{i}: {:?} {} last={} commit={} applied={} snap={} pending={}\n",
                        raft.role(),
                        raft.term(),
                        raft.last_index(),
                        raft.commit_index(),
                        raft.applied_index(),
                        raft.snapshot_index(),
                        r.pending()
                    )
                }
            };
            nodes.push_str(&line);
        }
        panic!(
            "seed {}: at {} ms: {what}\n{nodes}",
            self.config.seed, self.now_ms
        );
    }
}
