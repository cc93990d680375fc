//! A small deterministic harness for [`Rsm`] scenario tests, after
//! core-raft's `tests/common`: a few replicas, a message queue delivered by
//! hand, one in-memory [`Durable`] per replica kept with
//! [`Durable::persist`] for every persist action, crashes as
//! drop-and-[`Rsm::restore`] with a fresh state machine, and partitions as
//! cut links.
//!
//! After every step it checks that each submission is answered at most once,
//! that a live replica's Raft state mirrors its storage, and that no two
//! replicas applied different entries at one index.
#![allow(dead_code)]

use core_kv::{NotLeader, Rsm, RsmAction, RsmConfig, RsmInput, StateMachine};
use core_raft::{Action, Config, Durable, Entry, LogIndex, Message, NodeId, Role};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Debug;

/// The lab's 4A test state machine (`kvraft1/rsm/test.go`): a counter.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counter {
    pub n: u64,
}

/// Its operations. `Get` is read-only (served by ReadIndex when enabled).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CounterOp {
    Inc,
    /// Must never be applied: the lab calls `log.Fatal`.
    Dec,
    Null,
    Get,
}

/// Its outputs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CounterOut {
    /// `IncRep{N}`: the counter after the increment.
    Inc(u64),
    Null,
    Value(u64),
}

impl StateMachine for Counter {
    type Op = CounterOp;
    type Output = CounterOut;
    type Snapshot = std::io::Cursor<Vec<u8>>;

    fn apply(&mut self, _index: LogIndex, op: &CounterOp) -> CounterOut {
        match op {
            CounterOp::Inc => {
                self.n += 1;
                CounterOut::Inc(self.n)
            }
            CounterOp::Dec => panic!("a Dec was applied (the lab's log.Fatal)"),
            CounterOp::Null => CounterOut::Null,
            CounterOp::Get => CounterOut::Value(self.n),
        }
    }

    fn is_read_only(&self, op: &CounterOp) -> bool {
        *op == CounterOp::Get
    }

    fn query(&self, _op: &CounterOp) -> CounterOut {
        CounterOut::Value(self.n)
    }

    fn snapshot(&self) -> Self::Snapshot {
        std::io::Cursor::new(core_kv::snapshot::encode(&self.n))
    }

    fn restore(&mut self, snapshot: &mut dyn std::io::Read) -> Result<(), String> {
        self.n = core_kv::snapshot::decode(snapshot)?;
        Ok(())
    }
}

/// A Raft configuration for tests: elections after 10..=20 ticks,
/// heartbeats every 3 (as core-raft's tests).
pub fn raft_config(id: NodeId, voters: &[NodeId], seed: u64) -> Config {
    let mut c = Config::new(id, voters.to_vec());
    c.election_ticks_min = 10;
    c.election_ticks_max = 20;
    c.heartbeat_ticks = 3;
    c.rng_seed = seed.wrapping_mul(1000).wrapping_add(id.0);
    c
}

pub fn n(id: u64) -> NodeId {
    NodeId(id)
}

/// A message in flight.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    pub from: NodeId,
    pub to: NodeId,
    pub msg: Message,
}

pub type Reply<S> = Result<<S as StateMachine>::Output, NotLeader>;

pub struct Cluster<S: StateMachine> {
    pub ids: Vec<NodeId>,
    pub configs: BTreeMap<NodeId, RsmConfig>,
    /// `None` while crashed.
    pub nodes: BTreeMap<NodeId, Option<Rsm<S>>>,
    pub durable: BTreeMap<NodeId, Durable>,
    pub queue: VecDeque<Envelope>,
    pub cut: BTreeSet<(NodeId, NodeId)>,
    /// Every message ever sent.
    pub sent: Vec<Envelope>,
    /// Answered submissions: id -> (replica, answer), in answer order.
    pub replies: BTreeMap<u64, (NodeId, Reply<S>)>,
    pub reply_order: Vec<u64>,
    /// Submission id -> replica it was submitted to.
    pub submitted: BTreeMap<u64, NodeId>,
    /// Steps taken so far (a logical clock for ordering submissions and replies).
    pub steps: u64,
    /// Submission id -> step at which it was submitted / answered.
    pub submitted_at: BTreeMap<u64, u64>,
    pub replied_at: BTreeMap<u64, u64>,
    /// Every action every replica produced, in order (for determinism).
    pub log: Vec<(NodeId, String)>,
    /// First entry applied at each index by any replica.
    pub applied: BTreeMap<LogIndex, Entry>,
    pub make: fn() -> S,
    pub next_id: u64,
    /// Check each live replica's Raft state against its storage.
    pub check_mirror: bool,
}

impl<S> Cluster<S>
where
    S: StateMachine,
    S::Op: Clone + Debug,
    S::Output: Clone + Debug + PartialEq,
{
    /// `size` fresh replicas (ids 1..=size), each with `make()` as state
    /// machine and `tweak` applied to its configuration.
    pub fn new(size: u64, seed: u64, make: fn() -> S, tweak: impl Fn(&mut RsmConfig)) -> Self {
        let ids: Vec<NodeId> = (1..=size).map(NodeId).collect();
        let mut c = Cluster {
            ids: ids.clone(),
            configs: BTreeMap::new(),
            nodes: BTreeMap::new(),
            durable: BTreeMap::new(),
            queue: VecDeque::new(),
            cut: BTreeSet::new(),
            sent: Vec::new(),
            replies: BTreeMap::new(),
            reply_order: Vec::new(),
            submitted: BTreeMap::new(),
            steps: 0,
            submitted_at: BTreeMap::new(),
            replied_at: BTreeMap::new(),
            log: Vec::new(),
            applied: BTreeMap::new(),
            make,
            next_id: 0,
            check_mirror: true,
        };
        for id in &ids {
            let mut cfg = RsmConfig::new(raft_config(*id, &ids, seed));
            cfg.read_index = false;
            cfg.observe_applies = true;
            tweak(&mut cfg);
            c.configs.insert(*id, cfg);
            c.durable.insert(*id, Durable::default());
            c.nodes.insert(*id, None);
            c.restart(*id);
        }
        c
    }

    pub fn node(&self, id: NodeId) -> &Rsm<S> {
        self.nodes[&id].as_ref().expect("replica is up")
    }

    pub fn is_up(&self, id: NodeId) -> bool {
        self.nodes[&id].is_some()
    }

    pub fn state(&self, id: NodeId) -> &S {
        self.node(id).state()
    }

    /// Feed one input to one replica and carry out its actions in order.
    pub fn step(&mut self, id: NodeId, input: RsmInput<S::Op>) -> Vec<RsmAction<S::Output>> {
        self.steps += 1;
        if let RsmInput::Submit { id: sub, .. } = &input {
            self.submitted_at.insert(*sub, self.steps);
        }
        let rsm = self.nodes.get_mut(&id).unwrap().as_mut().expect("up");
        let actions = rsm.step(input);
        let failed = rsm.failure().is_some();
        let mut d = self.durable.remove(&id).unwrap();
        for a in &actions {
            self.log.push((id, format!("{a:?}")));
            match a {
                RsmAction::Raft(action) => {
                    if d.persist(action) {
                        continue;
                    }
                    match action {
                        Action::Send { to, msg } => {
                            let env = Envelope {
                                from: id,
                                to: *to,
                                msg: msg.clone(),
                            };
                            self.sent.push(env.clone());
                            self.queue.push_back(env);
                        }
                        other => panic!("{id}: unexpected Raft action from the Rsm: {other:?}"),
                    }
                }
                RsmAction::Observed(Action::Apply(entries)) => {
                    for e in entries {
                        match self.applied.get(&e.index) {
                            Some(first) => assert_eq!(
                                first, e,
                                "state-machine safety: {id} applied a different entry at {}",
                                e.index
                            ),
                            None => {
                                self.applied.insert(e.index, e.clone());
                            }
                        }
                    }
                }
                RsmAction::Observed(_) => {}
                RsmAction::Reply { id: sub, result } => {
                    assert!(
                        self.submitted.contains_key(sub),
                        "{id}: answer to unknown submission {sub}"
                    );
                    let prev = self.replies.insert(*sub, (id, result.clone()));
                    assert!(
                        prev.is_none(),
                        "{id}: submission {sub} answered twice: {prev:?} then {result:?}"
                    );
                    self.reply_order.push(*sub);
                    self.replied_at.insert(*sub, self.steps);
                }
            }
        }
        self.durable.insert(id, d);
        if self.check_mirror && !failed {
            self.check_mirror(id);
        }
        actions
    }

    fn check_mirror(&self, id: NodeId) {
        let r = self.node(id).raft();
        let d = &self.durable[&id];
        assert_eq!(d.hard_state.term, r.term(), "{id}: term not persisted");
        assert_eq!(d.hard_state.vote, r.vote(), "{id}: vote not persisted");
        let snap = d.snapshot.as_ref().map_or(LogIndex(0), |s| s.index);
        assert_eq!(snap, r.snapshot_index(), "{id}: snapshot not persisted");
        assert_eq!(d.last_index(), r.last_index(), "{id}: log not persisted");
        d.validate().expect("durable state stays valid");
    }

    /// Submit `op` at replica `to`; returns the submission id.
    pub fn submit(&mut self, to: NodeId, op: S::Op) -> u64 {
        self.next_id += 1;
        let id = self.next_id;
        self.submitted.insert(id, to);
        self.step(to, RsmInput::Submit { id, op });
        id
    }

    pub fn reply(&self, id: u64) -> Option<&Reply<S>> {
        self.replies.get(&id).map(|(_, r)| r)
    }

    pub fn tick(&mut self, id: NodeId) {
        self.step(id, RsmInput::Tick);
    }

    pub fn tick_all(&mut self) {
        for id in self.ids.clone() {
            if self.is_up(id) {
                self.tick(id);
            }
        }
    }

    pub fn deliver(&mut self, env: Envelope) {
        if self.cut.contains(&(env.from, env.to)) || !self.is_up(env.to) {
            return;
        }
        self.step(
            env.to,
            RsmInput::Receive {
                from: env.from,
                msg: env.msg,
            },
        );
    }

    pub fn deliver_one(&mut self) -> Option<Envelope> {
        let env = self.queue.pop_front()?;
        self.deliver(env.clone());
        Some(env)
    }

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
        let max = self.configs[&id].raft.election_ticks_max;
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
        self.nodes
            .iter()
            .filter_map(|(id, r)| {
                r.as_ref()
                    .filter(|r| r.raft().is_leader())
                    .map(|r| (r.raft().term(), *id))
            })
            .max()
            .map(|(_, id)| id)
    }

    /// Run until some replica leads (and no cut link separates it from a
    /// majority is not checked: callers pick their partitions).
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

    pub fn crash(&mut self, id: NodeId) {
        *self.nodes.get_mut(&id).unwrap() = None;
    }

    /// Rebuild `id` from its storage with a fresh state machine.
    pub fn restart(&mut self, id: NodeId) {
        let rsm = Rsm::restore(
            self.configs[&id].clone(),
            self.durable[&id].clone(),
            (self.make)(),
        )
        .expect("replica restarts from its storage");
        *self.nodes.get_mut(&id).unwrap() = Some(rsm);
    }

    pub fn isolate(&mut self, a: NodeId) {
        for b in self.ids.clone() {
            if a != b {
                self.cut.insert((a, b));
                self.cut.insert((b, a));
            }
        }
    }

    pub fn heal(&mut self) {
        self.cut.clear();
    }

    pub fn count_sent(&self, pred: impl Fn(&Envelope) -> bool) -> usize {
        self.sent.iter().filter(|e| pred(e)).count()
    }
}
