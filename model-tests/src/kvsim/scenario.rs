//! Hand-driven replicated-state-machine scenarios: the service [`World`]
//! with manual delivery, addressed by node id, for tests that step replicas
//! one input at a time and look at what each step did. Submissions go
//! through the node shell on a client connection, exactly as on a real
//! node; the world's disks sync at the end of every step, and all of its
//! checks run (Raft's invariants, persist before send, each submission
//! answered at most once).

use super::world::{server_id, Answer, World, WorldConfig};
use crate::sim::cluster::{Delivery, Envelope};
use crate::sim::network::NetConfig;
use crate::sim::trace::TraceMode;
use core_kv::{Rsm, RsmConfig, RsmInput, StateMachine};
use core_raft::{Config, Durable, Entry, LogIndex, NodeId, Role};
use node_shell::{NodeAction, NodeInput};
use std::collections::BTreeMap;

/// Node `id`.
pub fn n(id: u64) -> NodeId {
    NodeId(id)
}

/// The client slot every scenario submission comes from.
const CLIENT: usize = 0;

/// A hand-driven cluster of replicas 1..=n of `S`.
pub struct RsmScenario<S: StateMachine + Default> {
    w: World<S>,
    next_id: u64,
    seen_answers: usize,
    /// Submission id -> the replica it was submitted to.
    submitted: BTreeMap<u64, NodeId>,
    submitted_at: BTreeMap<u64, u64>,
    replies: BTreeMap<u64, (NodeId, Answer<S>)>,
    reply_order: Vec<u64>,
    replied_at: BTreeMap<u64, u64>,
    /// Every action of every step, as text (for determinism checks).
    log: Vec<(NodeId, String)>,
}

impl<S> RsmScenario<S>
where
    S: StateMachine + Default + 'static,
    S::Output: PartialEq + std::fmt::Debug,
{
    /// `size` replicas with elections after 10..=20 ticks and heartbeats
    /// every 3, reads through the log (unless `tweak` turns ReadIndex on),
    /// no snapshots (unless `tweak` sets a threshold).
    pub fn new(size: u64, seed: u64, tweak: impl Fn(&mut RsmConfig)) -> Self {
        let mut raft = Config::new(NodeId(1), vec![NodeId(1)]);
        raft.election_ticks_min = 10;
        raft.election_ticks_max = 20;
        raft.heartbeat_ticks = 3;
        let mut rsm = RsmConfig::new(raft);
        rsm.read_index = false;
        tweak(&mut rsm);
        let config = WorldConfig {
            raft: rsm.raft,
            max_raft_state: rsm.max_raft_state,
            read_index: rsm.read_index,
            delivery: Delivery::Manual,
            net: NetConfig::reliable(),
            trace: TraceMode::from_env(),
            ..WorldConfig::replicated(size as usize, true, seed)
        };
        let mut w = World::new(config);
        let client = w.add_client(Box::new(NoClient), None);
        debug_assert_eq!(client, CLIENT);
        RsmScenario {
            w,
            next_id: 0,
            seen_answers: 0,
            submitted: BTreeMap::new(),
            submitted_at: BTreeMap::new(),
            replies: BTreeMap::new(),
            reply_order: Vec::new(),
            replied_at: BTreeMap::new(),
            log: Vec::new(),
        }
    }

    /// The world underneath.
    pub fn world(&mut self) -> &mut World<S> {
        &mut self.w
    }

    /// Every replica's id.
    pub fn ids(&self) -> Vec<NodeId> {
        (0..self.w.servers()).map(server_id).collect()
    }

    fn index(id: NodeId) -> usize {
        (id.0 - 1) as usize
    }

    /// The replica `id` (which must be up).
    pub fn node(&self, id: NodeId) -> &Rsm<S> {
        self.w
            .replica(Self::index(id))
            .unwrap_or_else(|| panic!("{id} is down"))
    }

    /// Whether replica `id` is up.
    pub fn is_up(&self, id: NodeId) -> bool {
        self.w.is_up(Self::index(id))
    }

    /// Replica `id`'s state machine.
    pub fn state(&self, id: NodeId) -> &S {
        self.node(id).state()
    }

    /// What replica `id` wrote to its disk.
    pub fn durable(&self, id: NodeId) -> &Durable {
        self.w.durable(Self::index(id))
    }

    /// The configuration replica `id` restarts with.
    pub fn config(&self, id: NodeId) -> RsmConfig {
        self.w.rsm_config(Self::index(id))
    }

    /// Feed one input to replica `id` and return its shell's actions (and
    /// those its disk's sync released).
    pub fn step(&mut self, id: NodeId, input: RsmInput<S::Op>) -> Vec<NodeAction> {
        let actions = match input {
            RsmInput::Tick => self.w.tick(Self::index(id)),
            RsmInput::Receive { from, msg } => self.w.deliver(Envelope { from, to: id, msg }),
            RsmInput::Submit { op, .. } => {
                self.submit(id, op);
                return Vec::new();
            }
            RsmInput::Change { change, .. } => self
                .w
                .step_server(Self::index(id), NodeInput::Change(change)),
            RsmInput::Captured { index, data } => self
                .w
                .step_server(Self::index(id), NodeInput::Captured { index, data }),
        };
        self.after(id, &actions);
        actions
    }

    /// Submit `op` at replica `to` (on the scenario's client connection);
    /// returns the submission's id.
    pub fn submit(&mut self, to: NodeId, op: S::Op) -> u64 {
        self.next_id += 1;
        let id = self.next_id;
        self.submitted.insert(id, to);
        self.submitted_at.insert(id, self.w.steps + 1);
        self.w.submit_from(CLIENT, Self::index(to), id, op);
        self.after(to, &[]);
        id
    }

    /// Record the step's actions and collect the answers it produced,
    /// checking each submission is answered at most once.
    fn after(&mut self, id: NodeId, actions: &[NodeAction]) {
        for a in actions {
            self.log.push((id, format!("{a:?}")));
        }
        while self.seen_answers < self.w.answers.len() {
            let a = &self.w.answers[self.seen_answers];
            self.seen_answers += 1;
            let server = server_id(a.server);
            assert!(
                self.submitted.contains_key(&a.id),
                "{server}: answer to unknown submission {}",
                a.id
            );
            let prev = self.replies.insert(a.id, (server, a.answer.clone()));
            assert!(
                prev.is_none(),
                "{server}: submission {} answered twice: {prev:?} then {:?}",
                a.id,
                a.answer
            );
            self.reply_order.push(a.id);
            self.replied_at.insert(a.id, a.step);
        }
    }

    /// The answer to submission `id`, if any.
    pub fn reply(&self, id: u64) -> Option<&Answer<S>> {
        self.replies.get(&id).map(|(_, r)| r)
    }

    /// Every answer so far: submission id -> (replica, answer).
    pub fn replies(&self) -> &BTreeMap<u64, (NodeId, Answer<S>)> {
        &self.replies
    }

    /// Submission ids in the order they were answered.
    pub fn reply_order(&self) -> &[u64] {
        &self.reply_order
    }

    /// The world step at which submission `id` was made.
    pub fn submitted_at(&self, id: u64) -> u64 {
        self.submitted_at[&id]
    }

    /// The world step at which submission `id` was answered.
    pub fn replied_at(&self, id: u64) -> u64 {
        self.replied_at[&id]
    }

    /// Every action of every step so far, as text.
    pub fn log(&self) -> &[(NodeId, String)] {
        &self.log
    }

    /// The first entry any replica applied at each index.
    pub fn applied(&self) -> &BTreeMap<LogIndex, Entry> {
        &self.w.applied
    }

    /// Raft messages released so far matching `pred`.
    pub fn count_sent(&self, pred: impl Fn(&Envelope) -> bool) -> usize {
        self.w.sent.iter().filter(|e| pred(e)).count()
    }

    /// One tick of replica `id`.
    pub fn tick(&mut self, id: NodeId) {
        self.step(id, RsmInput::Tick);
    }

    /// One tick of every live replica.
    pub fn tick_all(&mut self) {
        for id in self.ids() {
            if self.is_up(id) {
                self.tick(id);
            }
        }
    }

    /// Messages waiting between replicas, oldest first.
    pub fn queue(&self) -> Vec<Envelope> {
        self.w.queued()
    }

    /// Remove the oldest waiting message.
    pub fn pop_queued(&mut self) -> Option<Envelope> {
        self.w.pop_queued()
    }

    /// Queue a message at the end (a duplicate, a reordering, a forgery).
    pub fn push_queued(&mut self, env: Envelope) {
        self.w.push_queued(env);
    }

    /// Drop every waiting message.
    pub fn clear_queue(&mut self) {
        self.w.clear_queued();
    }

    /// Deliver a message now (dropped if its link is cut or its recipient is
    /// down).
    pub fn deliver(&mut self, env: Envelope) {
        let to = env.to;
        let actions = self.w.deliver(env);
        self.after(to, &actions);
    }

    /// Deliver the oldest waiting message; returns it.
    pub fn deliver_one(&mut self) -> Option<Envelope> {
        let env = self.pop_queued()?;
        self.deliver(env.clone());
        Some(env)
    }

    /// Deliver until nothing is waiting.
    pub fn deliver_all(&mut self) {
        for _ in 0..1_000_000 {
            if self.deliver_one().is_none() {
                return;
            }
        }
        panic!("messages never stop flowing");
    }

    /// Tick everyone `ticks` times, delivering everything after each tick.
    pub fn run(&mut self, ticks: u64) {
        for _ in 0..ticks {
            self.tick_all();
            self.deliver_all();
        }
    }

    /// Tick `id` alone until it campaigns, then deliver everything; it must win.
    pub fn elect(&mut self, id: NodeId) {
        let max = self.config(id).raft.election_ticks_max;
        for _ in 0..=2 * max {
            self.tick(id);
            if self.node(id).raft().role() != Role::Follower {
                break;
            }
        }
        self.deliver_all();
        assert!(self.node(id).raft().is_leader(), "{id} did not win");
        self.deliver_all();
    }

    /// The leader of the highest term among live replicas.
    pub fn leader(&self) -> Option<NodeId> {
        self.ids()
            .into_iter()
            .filter(|id| self.is_up(*id) && self.node(*id).raft().is_leader())
            .max_by_key(|id| self.node(*id).raft().term())
    }

    /// Run until one of `among` leads.
    pub fn wait_leader(&mut self, among: &[NodeId]) -> NodeId {
        for _ in 0..500 {
            self.run(1);
            let leaders: Vec<NodeId> = among
                .iter()
                .copied()
                .filter(|i| self.is_up(*i) && self.node(*i).raft().is_leader())
                .collect();
            if let Some(l) = leaders.last() {
                return *l;
            }
        }
        panic!("no leader among {among:?}");
    }

    /// Crash replica `id` (its disk is synced after every step, so only its
    /// memory is lost, and the answers it owed).
    pub fn crash(&mut self, id: NodeId) {
        self.w.crash(Self::index(id));
    }

    /// Restart replica `id` from its disk with a fresh state machine.
    pub fn restart(&mut self, id: NodeId) {
        let i = Self::index(id);
        if self.w.is_up(i) {
            self.w.crash(i);
        }
        self.w.start(i);
    }

    /// Cut the link from `a` to `b` (one way).
    pub fn cut(&mut self, a: NodeId, b: NodeId) {
        self.w
            .net
            .set_one_way(Self::index(a), Self::index(b), false);
    }

    /// Restore the link from `a` to `b` (one way).
    pub fn uncut(&mut self, a: NodeId, b: NodeId) {
        self.w.net.set_one_way(Self::index(a), Self::index(b), true);
    }

    /// Cut every link to and from `a`.
    pub fn isolate(&mut self, a: NodeId) {
        for b in self.ids() {
            if a != b {
                self.cut(a, b);
                self.cut(b, a);
            }
        }
    }

    /// Bring every link up.
    pub fn heal(&mut self) {
        self.w.heal();
    }
}

/// The scenario's client slot: answers are recorded by the world itself.
struct NoClient;

impl<S: StateMachine> super::world::SimClient<S> for NoClient {
    fn on_tick(&mut self, _: u64, _: &mut super::world::Outbox<S::Op>) {}
    fn on_answer(
        &mut self,
        _: u64,
        _: usize,
        _: u64,
        _: Answer<S>,
        _: &mut super::world::Outbox<S::Op>,
    ) {
    }
    fn finished(&self) -> bool {
        true
    }
}
