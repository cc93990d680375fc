//! Hand-driven Raft scenarios: a [`Cluster`] with [`Delivery::Manual`],
//! addressed by node id, for tests that tell a story step by step (tick this
//! node, deliver that message, drop the rest, crash, restart) and assert on
//! what each step produced. The same cluster, disks and checks as the swarm:
//! every released action is checked against the node's synced disk, every
//! core against what it asked to persist, the Raft invariants after every
//! step.

use super::cluster::{Cluster, Delivery, Envelope, Lost, SimConfig};
use core_raft::{
    Action, Config, Durable, Entry, HardState, Input, LogIndex, NodeId, Payload, Raft, Role, Term,
};

/// Node ids 1..=n.
pub fn ids(n: u64) -> Vec<NodeId> {
    (1..=n).map(NodeId).collect()
}

/// Node `id`.
pub fn n(id: u64) -> NodeId {
    NodeId(id)
}

/// A scenario configuration: elections after 10..=20 ticks, heartbeats
/// every 3, jitter seeded by the node's id.
pub fn test_config(id: NodeId, voters: &[NodeId]) -> Config {
    let mut c = Config::new(id, voters.to_vec());
    c.election_ticks_min = 10;
    c.election_ticks_max = 20;
    c.heartbeat_ticks = 3;
    c
}

/// A command entry.
pub fn cmd(index: u64, term: u64, data: &[u8]) -> Entry {
    Entry {
        index: LogIndex(index),
        term: Term(term),
        payload: Payload::Command(data.to_vec()),
    }
}

/// A log whose entry `i + 1` has term `terms[i]`, payload its index.
pub fn log_with_terms(terms: &[u64]) -> Vec<Entry> {
    terms
        .iter()
        .enumerate()
        .map(|(i, t)| cmd(i as u64 + 1, *t, &(i as u64 + 1).to_le_bytes()))
        .collect()
}

/// Durable state with the given term, vote, commit and log.
pub fn durable(term: u64, vote: Option<u64>, commit: u64, entries: Vec<Entry>) -> Durable {
    Durable {
        hard_state: HardState {
            term: Term(term),
            vote: vote.map(NodeId),
            commit: LogIndex(commit),
        },
        snapshot: None,
        entries,
    }
}

/// A hand-driven cluster of nodes 1..=n.
pub struct Scenario {
    c: Cluster,
}

impl Scenario {
    /// `size` fresh nodes with [`test_config`], tweaked by `tweak`.
    pub fn new(size: u64, tweak: impl Fn(&mut Config)) -> Scenario {
        let states = (0..size).map(|_| Durable::default()).collect();
        Scenario::with_durable(states, tweak)
    }

    /// One node per durable state (ids 1, 2, ...), restored from it.
    pub fn with_durable(states: Vec<Durable>, tweak: impl Fn(&mut Config)) -> Scenario {
        let voters = ids(states.len() as u64);
        let nodes = voters
            .iter()
            .zip(states)
            .map(|(id, d)| {
                let mut cfg = test_config(*id, &voters);
                tweak(&mut cfg);
                (cfg, d)
            })
            .collect();
        let config = SimConfig::scenario(voters.len());
        debug_assert_eq!(config.delivery, Delivery::Manual);
        Scenario {
            c: Cluster::with_nodes(config, nodes),
        }
    }

    /// `voters` bootstrapped nodes (ids 1..=voters) plus `joiners` fresh
    /// nodes that know no membership yet (they join when a leader adds
    /// them as learners).
    pub fn with_joiners(voters: u64, joiners: u64, tweak: impl Fn(&mut Config)) -> Scenario {
        let members = ids(voters);
        let nodes = ids(voters + joiners)
            .into_iter()
            .map(|id| {
                let boot = if id.0 <= voters {
                    members.clone()
                } else {
                    Vec::new()
                };
                let mut cfg = test_config(id, &boot);
                tweak(&mut cfg);
                (cfg, Durable::default())
            })
            .collect();
        let config = SimConfig::scenario((voters + joiners) as usize);
        Scenario {
            c: Cluster::with_nodes(config, nodes),
        }
    }

    /// The cluster underneath.
    pub fn cluster(&mut self) -> &mut Cluster {
        &mut self.c
    }

    /// Every node's id.
    pub fn ids(&self) -> Vec<NodeId> {
        (0..self.c.len()).map(|i| self.c.id(i)).collect()
    }

    /// The configuration node `id` runs (and restarts) with.
    pub fn config(&self, id: NodeId) -> &Config {
        self.c.node_config(self.c.index(id))
    }

    /// The live machine of node `id`.
    pub fn node(&self, id: NodeId) -> &Raft {
        self.c
            .raft(self.c.index(id))
            .unwrap_or_else(|| panic!("{id} is down"))
    }

    /// Whether node `id` is up.
    pub fn is_up(&self, id: NodeId) -> bool {
        self.c.is_up(self.c.index(id))
    }

    /// What node `id` has written (all of it synced: scenarios sync at the
    /// end of every step).
    pub fn durable(&self, id: NodeId) -> &Durable {
        self.c.durable(self.c.index(id))
    }

    /// Turn Raft's safety checks off (for tests that forge messages: a
    /// forged leader is not a real one). Persist-before-send stays on.
    pub fn set_safety_checks(&mut self, on: bool) {
        self.c.checks = on;
    }

    /// Feed one input to node `id`; returns the core's actions.
    pub fn step(&mut self, id: NodeId, input: Input) -> Vec<Action> {
        let i = self.c.index(id);
        self.c.step(i, input)
    }

    /// One tick of node `id`.
    pub fn tick(&mut self, id: NodeId) -> Vec<Action> {
        self.step(id, Input::Tick)
    }

    /// One tick for every live node.
    pub fn tick_all(&mut self) {
        for id in self.ids() {
            if self.is_up(id) {
                self.tick(id);
            }
        }
    }

    /// Propose `data` at node `id`.
    pub fn propose(&mut self, id: NodeId, data: &[u8]) -> Vec<Action> {
        self.step(id, Input::Propose(data.to_vec()))
    }

    /// Every message released so far, in order.
    pub fn sent(&self) -> &[Envelope] {
        &self.c.sent
    }

    /// Messages released so far matching `pred`.
    pub fn count_sent(&self, pred: impl Fn(&Envelope) -> bool) -> usize {
        self.c.sent.iter().filter(|e| pred(e)).count()
    }

    /// Every action other than a send that node `id` performed, in order
    /// (persists when written, the rest when released).
    pub fn outputs(&self, id: NodeId) -> &[Action] {
        self.c.outputs.get(&id).map_or(&[], |v| v.as_slice())
    }

    /// Every node's outputs (see [`Scenario::outputs`]).
    pub fn all_outputs(&self) -> &std::collections::BTreeMap<NodeId, Vec<Action>> {
        &self.c.outputs
    }

    /// Commands (not no-ops) `id` has applied, in order.
    pub fn applied_commands(&self, id: NodeId) -> Vec<Vec<u8>> {
        self.outputs(id)
            .iter()
            .filter_map(|a| match a {
                Action::Apply(es) => Some(es.clone()),
                _ => None,
            })
            .flatten()
            .filter_map(|e| match e.payload {
                Payload::Command(d) => Some(d),
                Payload::Noop | Payload::Membership(_) => None,
            })
            .collect()
    }

    /// The term of the entry known committed at `index` (applied by some
    /// node), if any.
    pub fn committed_term(&self, index: LogIndex) -> Option<Term> {
        self.c.checker.committed_term(index)
    }

    /// Number of terms in which a leader was seen.
    pub fn leader_terms(&self) -> usize {
        self.c.checker.leaders().len()
    }

    /// Messages waiting to be delivered, oldest first.
    pub fn queue(&self) -> Vec<Envelope> {
        self.c.queued()
    }

    /// Number of messages waiting.
    pub fn queue_len(&self) -> usize {
        self.c.queued().len()
    }

    /// Take every waiting message out (to deliver by hand, or drop).
    pub fn take_queue(&mut self) -> Vec<Envelope> {
        self.c.take_queued(|_| true)
    }

    /// Drop waiting messages matching `pred`.
    pub fn drop_where(&mut self, pred: impl Fn(&Envelope) -> bool) {
        self.c.take_queued(pred);
    }

    /// Keep only the waiting messages for which `keep` is true (called once
    /// per message, oldest first).
    pub fn retain_queue(&mut self, keep: impl FnMut(&Envelope) -> bool) {
        self.c.retain_queued(keep);
    }

    /// Remove the `k`-th waiting message (oldest is 0).
    pub fn remove_queued(&mut self, k: usize) -> Option<Envelope> {
        self.c.remove_queued(k)
    }

    /// Add a message at the end of the queue (a duplicate, or a forgery).
    pub fn push_queued(&mut self, envelope: Envelope) {
        self.c.push_queued(envelope);
    }

    /// Deliver the oldest waiting message (dropped if its link is cut or
    /// its recipient is down). Returns it.
    pub fn deliver_one(&mut self) -> Option<Envelope> {
        self.c.deliver_one()
    }

    /// Deliver a message now (dropped if its link is cut or its recipient
    /// is down).
    pub fn deliver(&mut self, envelope: Envelope) {
        let _ = self.c.deliver(envelope);
    }

    /// Deliver a message now: the recipient's actions, or why it was lost
    /// (its recipient is down, or the link is cut).
    pub fn try_deliver(&mut self, envelope: Envelope) -> Result<Vec<Action>, Lost> {
        self.c.deliver(envelope)
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

    /// Tick `id` alone until it starts campaigning, then deliver everything.
    pub fn campaign(&mut self, id: NodeId) {
        let max = self.config(id).election_ticks_max;
        for _ in 0..=max {
            self.tick(id);
            if self.node(id).role() != Role::Follower {
                break;
            }
        }
        assert_ne!(
            self.node(id).role(),
            Role::Follower,
            "{id} never campaigned"
        );
        self.deliver_all();
    }

    /// Make `id` the leader (from a quiet cluster) and let it settle.
    pub fn elect(&mut self, id: NodeId) {
        self.campaign(id);
        assert!(self.node(id).is_leader(), "{id} did not win");
        self.deliver_all();
    }

    /// The leader of the highest term among live nodes, if any.
    pub fn leader(&self) -> Option<NodeId> {
        self.ids()
            .into_iter()
            .filter(|id| self.is_up(*id) && self.node(*id).is_leader())
            .max_by_key(|id| self.node(*id).term())
    }

    /// Heartbeat rounds: tick everyone `ticks` times, delivering after each.
    pub fn run(&mut self, ticks: u64) {
        for _ in 0..ticks {
            self.tick_all();
            self.deliver_all();
        }
    }

    /// Crash `id`: a scenario's disks are synced after every step, so only
    /// the machine's memory is lost.
    pub fn crash(&mut self, id: NodeId) {
        let i = self.c.index(id);
        self.c.crash(i);
    }

    /// Rebuild `id` from its disk.
    pub fn restart(&mut self, id: NodeId) {
        let i = self.c.index(id);
        if self.c.is_up(i) {
            self.c.crash(i);
        }
        self.c.start(i);
    }

    /// Cut every link between `a` and the other nodes, both ways.
    pub fn isolate(&mut self, a: NodeId) {
        let i = self.c.index(a);
        for j in 0..self.c.len() {
            if j != i {
                self.c.net.set_link(i, j, false);
            }
        }
    }

    /// Cut every link between the two groups.
    pub fn partition(&mut self, left: &[NodeId], right: &[NodeId]) {
        for a in left {
            for b in right {
                let (i, j) = (self.c.index(*a), self.c.index(*b));
                self.c.net.set_link(i, j, false);
            }
        }
    }

    /// Bring the link between `a` and `b` up, both ways.
    pub fn heal_between(&mut self, a: NodeId, b: NodeId) {
        let (i, j) = (self.c.index(a), self.c.index(b));
        self.c.net.set_link(i, j, true);
    }

    /// Bring every link up.
    pub fn heal(&mut self) {
        self.c.net.heal();
    }

    /// The highest commit index known anywhere.
    pub fn max_commit(&self) -> LogIndex {
        self.c.max_commit()
    }
}
