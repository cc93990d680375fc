//! A tiny deterministic harness for scenario tests: a few [`Raft`] cores, a
//! message queue delivered by hand, one in-memory [`Durable`] per node kept
//! with [`Durable::persist`], crashes as drop-and-[`Raft::restore`], and
//! partitions as dropped links.
//!
//! Every `step` goes through [`Cluster::step`], which also checks, action by
//! action, that nothing leaves the node before the state it depends on was
//! persisted earlier in the list, and after every step that the cluster obeys
//! Raft's safety properties (one leader per term, state-machine safety,
//! leader completeness, the core mirroring its durable state).
#![allow(dead_code)]

use core_raft::{
    Action, AppendEntries, AppendEntriesResponse, Config, Durable, Entry, Input,
    InstallSnapshotResponse, LogIndex, Message, NodeId, Payload, Raft, RequestVote,
    RequestVoteResponse, Role, Term,
};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// A message in flight.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    pub from: NodeId,
    pub to: NodeId,
    pub msg: Message,
}

/// A test configuration: elections after 10..=20 ticks, heartbeats every 3.
pub fn test_config(id: NodeId, voters: &[NodeId]) -> Config {
    let mut c = Config::new(id, voters.to_vec());
    c.election_ticks_min = 10;
    c.election_ticks_max = 20;
    c.heartbeat_ticks = 3;
    c
}

pub fn ids(n: u64) -> Vec<NodeId> {
    (1..=n).map(NodeId).collect()
}

pub fn n(id: u64) -> NodeId {
    NodeId(id)
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
        hard_state: core_raft::HardState {
            term: Term(term),
            vote: vote.map(NodeId),
            commit: LogIndex(commit),
        },
        snapshot: None,
        entries,
    }
}

pub struct Cluster {
    pub ids: Vec<NodeId>,
    pub configs: BTreeMap<NodeId, Config>,
    /// `None` while a node is crashed.
    pub nodes: BTreeMap<NodeId, Option<Raft>>,
    pub durable: BTreeMap<NodeId, Durable>,
    pub queue: VecDeque<Envelope>,
    /// Directed links that drop everything.
    pub cut: BTreeSet<(NodeId, NodeId)>,
    /// Every message ever sent, in order.
    pub sent: Vec<Envelope>,
    /// Every non-`Send` action each node produced (persists included), in order.
    pub outputs: BTreeMap<NodeId, Vec<Action>>,
    /// Per node: the index the application has applied through.
    pub applied: BTreeMap<NodeId, LogIndex>,
    /// The first entry any node applied at each index, and the highest term
    /// the applying node knew of at the time.
    pub committed: BTreeMap<LogIndex, (Entry, Term)>,
    /// The leader of each term, as observed after every step.
    pub leaders: BTreeMap<Term, NodeId>,
    /// Check persistence order and the core mirroring its storage.
    pub check: bool,
    /// Check Raft's safety properties (off when tests forge messages).
    pub check_safety: bool,
    /// Per (node, read id): the highest commit index any node knew when the
    /// read was issued. A linearizable read point is at least that.
    pub reads: BTreeMap<(NodeId, u64), LogIndex>,
}

impl Cluster {
    /// `size` fresh nodes with [`test_config`], tweaked by `tweak`.
    pub fn new(size: u64, tweak: impl Fn(&mut Config)) -> Cluster {
        let voters = ids(size);
        let states = voters.iter().map(|_| Durable::default()).collect();
        Cluster::with_durable(states, tweak)
    }

    /// One node per durable state (ids 1, 2, ...), restored from it.
    pub fn with_durable(states: Vec<Durable>, tweak: impl Fn(&mut Config)) -> Cluster {
        let voters = ids(states.len() as u64);
        let mut c = Cluster {
            ids: voters.clone(),
            configs: BTreeMap::new(),
            nodes: BTreeMap::new(),
            durable: BTreeMap::new(),
            queue: VecDeque::new(),
            cut: BTreeSet::new(),
            sent: Vec::new(),
            outputs: BTreeMap::new(),
            applied: BTreeMap::new(),
            committed: BTreeMap::new(),
            leaders: BTreeMap::new(),
            check: true,
            check_safety: true,
            reads: BTreeMap::new(),
        };
        for (id, d) in voters.iter().zip(states) {
            let mut cfg = test_config(*id, &voters);
            tweak(&mut cfg);
            c.configs.insert(*id, cfg);
            c.durable.insert(*id, d);
            c.nodes.insert(*id, None);
            c.outputs.insert(*id, Vec::new());
            c.restart(*id);
        }
        c
    }

    pub fn node(&self, id: NodeId) -> &Raft {
        self.nodes[&id].as_ref().expect("node is up")
    }

    pub fn is_up(&self, id: NodeId) -> bool {
        self.nodes[&id].is_some()
    }

    /// Feed one input to one node and carry out its actions.
    pub fn step(&mut self, id: NodeId, input: Input) -> Vec<Action> {
        if let Input::ReadIndex { id: read } = input {
            let known = self.max_commit();
            self.reads.insert((id, read), known);
        }
        let raft = self
            .nodes
            .get_mut(&id)
            .unwrap()
            .as_mut()
            .expect("node is up");
        let actions = raft.step(input.clone());
        self.execute(id, &input, &actions);
        if self.check {
            self.check_mirror(id);
        }
        if self.check_safety {
            self.check_safety();
        }
        actions
    }

    /// Execute `actions` in order: persist, queue sends, record applies,
    /// checking that every effect only depends on what was persisted before it.
    fn execute(&mut self, id: NodeId, input: &Input, actions: &[Action]) {
        let mut d = self.durable.remove(&id).unwrap();
        for a in actions {
            if d.persist(a) {
                self.outputs.get_mut(&id).unwrap().push(a.clone());
                continue;
            }
            if self.check {
                check_after_persist(id, &d, input, a);
            }
            match a {
                Action::Send { to, msg } => {
                    let env = Envelope {
                        from: id,
                        to: *to,
                        msg: msg.clone(),
                    };
                    self.sent.push(env.clone());
                    self.queue.push_back(env);
                }
                Action::Apply(entries) => {
                    let applied = self.applied.get_mut(&id).unwrap();
                    let term = self.nodes[&id].as_ref().unwrap().term();
                    for e in entries {
                        assert_eq!(e.index, applied.next(), "{id} applied out of order");
                        *applied = e.index;
                        match self.committed.get(&e.index) {
                            _ if !self.check_safety => {}
                            Some((first, _)) => assert_eq!(
                                first, e,
                                "state-machine safety: {id} applied a different entry at {}",
                                e.index
                            ),
                            None => {
                                self.committed.insert(e.index, (e.clone(), term));
                            }
                        }
                    }
                    self.outputs.get_mut(&id).unwrap().push(a.clone());
                }
                Action::ApplySnapshot(s) => {
                    let applied = self.applied.get_mut(&id).unwrap();
                    assert!(s.index > *applied, "{id} applied an old snapshot");
                    *applied = s.index;
                    self.outputs.get_mut(&id).unwrap().push(a.clone());
                }
                Action::ReadReady { id: read, index } => {
                    if self.check_safety {
                        let known = self.reads.get(&(id, *read)).copied().unwrap_or_default();
                        assert!(
                            *index >= known,
                            "{id}: read {read} served at {index}, but {known} was committed before it was issued"
                        );
                    }
                    self.outputs.get_mut(&id).unwrap().push(a.clone());
                }
                other => self.outputs.get_mut(&id).unwrap().push(other.clone()),
            }
        }
        self.durable.insert(id, d);
    }

    /// The node's in-memory durable state equals what its persists produced.
    fn check_mirror(&self, id: NodeId) {
        let r = self.node(id);
        let d = &self.durable[&id];
        assert_eq!(d.hard_state.term, r.term(), "{id}: term not persisted");
        assert_eq!(d.hard_state.vote, r.vote(), "{id}: vote not persisted");
        let snap = d.snapshot.as_ref().map_or(LogIndex(0), |s| s.index);
        assert_eq!(snap, r.snapshot_index(), "{id}: snapshot not persisted");
        assert_eq!(d.last_index(), r.last_index(), "{id}: log not persisted");
        assert_eq!(
            d.entries,
            r.entries(snap.next(), r.last_index()),
            "{id}: log differs from its durable copy"
        );
        d.validate().expect("durable state stays valid");
        let bytes: usize = d.entries.iter().map(Entry::size_bytes).sum();
        assert_eq!(r.log_bytes(), bytes, "{id}: log_bytes out of date");
    }

    /// One leader per term; every committed entry is in every later leader's log.
    fn check_safety(&mut self) {
        for (id, slot) in &self.nodes {
            let Some(r) = slot else { continue };
            if !r.is_leader() {
                continue;
            }
            let prev = *self.leaders.entry(r.term()).or_insert(*id);
            assert_eq!(prev, *id, "two leaders in {}: {prev} and {id}", r.term());
            for (index, (e, seen_in)) in self.committed.range(r.snapshot_index().next()..) {
                if r.term() > *seen_in {
                    assert_eq!(
                        r.term_at(*index),
                        Some(e.term),
                        "leader completeness: {id} (leader of {}) lacks committed {index}",
                        r.term()
                    );
                }
            }
        }
    }

    /// The highest commit index known anywhere (live nodes, and what any
    /// node has applied).
    pub fn max_commit(&self) -> LogIndex {
        let live = self
            .nodes
            .values()
            .flatten()
            .map(|r| r.commit_index())
            .max();
        let applied = self.committed.keys().next_back().copied();
        live.max(applied).unwrap_or_default()
    }

    pub fn tick(&mut self, id: NodeId) -> Vec<Action> {
        self.step(id, Input::Tick)
    }

    /// One tick for every live node.
    pub fn tick_all(&mut self) {
        for id in self.ids.clone() {
            if self.is_up(id) {
                self.tick(id);
            }
        }
    }

    pub fn propose(&mut self, id: NodeId, data: &[u8]) -> Vec<Action> {
        self.step(id, Input::Propose(data.to_vec()))
    }

    /// Deliver the oldest queued message (dropping it if its link is cut or
    /// its target is down). Returns the delivered envelope.
    pub fn deliver_one(&mut self) -> Option<Envelope> {
        let env = self.queue.pop_front()?;
        self.deliver(env.clone());
        Some(env)
    }

    pub fn deliver(&mut self, env: Envelope) {
        if self.cut.contains(&(env.from, env.to)) || !self.is_up(env.to) {
            return;
        }
        self.step(
            env.to,
            Input::Receive {
                from: env.from,
                msg: env.msg,
            },
        );
    }

    /// Deliver until the queue is empty.
    pub fn deliver_all(&mut self) {
        for _ in 0..1_000_000 {
            if self.deliver_one().is_none() {
                return;
            }
        }
        panic!("messages never stop flowing");
    }

    /// Take the queued messages out (to deliver by hand or drop).
    pub fn take_queue(&mut self) -> Vec<Envelope> {
        self.queue.drain(..).collect()
    }

    /// Drop queued messages matching `pred`.
    pub fn drop_where(&mut self, pred: impl Fn(&Envelope) -> bool) {
        self.queue.retain(|e| !pred(e));
    }

    /// Tick `id` alone until it starts campaigning, then deliver everything.
    pub fn campaign(&mut self, id: NodeId) {
        let max = self.configs[&id].election_ticks_max;
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

    /// The unique leader of the highest term among live nodes, if any.
    pub fn leader(&self) -> Option<NodeId> {
        self.nodes
            .iter()
            .filter_map(|(id, r)| {
                r.as_ref()
                    .filter(|r| r.is_leader())
                    .map(|r| (r.term(), *id))
            })
            .max()
            .map(|(_, id)| id)
    }

    /// Heartbeat rounds: tick everyone `ticks` times, delivering after each.
    pub fn run(&mut self, ticks: u64) {
        for _ in 0..ticks {
            self.tick_all();
            self.deliver_all();
        }
    }

    pub fn crash(&mut self, id: NodeId) {
        *self.nodes.get_mut(&id).unwrap() = None;
    }

    /// Rebuild `id` from its durable state; the application reloads the
    /// snapshot, so it has applied through the snapshot's index.
    pub fn restart(&mut self, id: NodeId) {
        let d = self.durable[&id].clone();
        let snap = d.snapshot.as_ref().map_or(LogIndex(0), |s| s.index);
        let raft = Raft::restore(self.configs[&id].clone(), d).expect("valid durable state");
        *self.nodes.get_mut(&id).unwrap() = Some(raft);
        self.applied.insert(id, snap);
    }

    /// Cut every link between `a` and the other nodes, both ways.
    pub fn isolate(&mut self, a: NodeId) {
        for b in self.ids.clone() {
            if a != b {
                self.cut.insert((a, b));
                self.cut.insert((b, a));
            }
        }
    }

    /// Cut every link between the two groups.
    pub fn partition(&mut self, left: &[NodeId], right: &[NodeId]) {
        for a in left {
            for b in right {
                self.cut.insert((*a, *b));
                self.cut.insert((*b, *a));
            }
        }
    }

    pub fn heal(&mut self) {
        self.cut.clear();
    }

    /// Messages sent so far matching `pred`.
    pub fn count_sent(&self, pred: impl Fn(&Envelope) -> bool) -> usize {
        self.sent.iter().filter(|e| pred(e)).count()
    }

    /// Commands (not no-ops) `id` has applied, in order.
    pub fn applied_commands(&self, id: NodeId) -> Vec<Vec<u8>> {
        self.outputs[&id]
            .iter()
            .filter_map(|a| match a {
                Action::Apply(es) => Some(es.clone()),
                _ => None,
            })
            .flatten()
            .filter_map(|e| match e.payload {
                Payload::Command(d) => Some(d),
                Payload::Noop => None,
            })
            .collect()
    }
}

/// True if `d` holds an entry with this index and term (in the log, or
/// covered by its snapshot, which only ever holds committed entries).
fn durably_holds(d: &Durable, index: LogIndex, term: Term) -> bool {
    if let Some(s) = &d.snapshot {
        if index <= s.index {
            return true;
        }
    }
    d.entries.iter().any(|e| e.index == index && e.term == term)
}

/// Persist-before-send: `action` (not a persist) may only reveal state that
/// `d` (the node's storage after the persists before it) already holds.
fn check_after_persist(id: NodeId, d: &Durable, input: &Input, action: &Action) {
    let hs = d.hard_state;
    match action {
        Action::Send { to, msg } => {
            match msg {
                Message::RequestVote(RequestVote {
                    term,
                    pre_vote: false,
                    ..
                }) => {
                    assert_eq!(hs.term, *term, "{id}: campaign term not durable");
                    assert_eq!(hs.vote, Some(id), "{id}: self-vote not durable");
                }
                Message::RequestVoteResponse(RequestVoteResponse {
                    term,
                    granted: true,
                    pre_vote: false,
                }) => {
                    assert_eq!(hs.term, *term, "{id}: voted term not durable");
                    assert_eq!(hs.vote, Some(*to), "{id}: vote for {to} not durable");
                }
                Message::AppendEntries(AppendEntries { entries, .. }) => {
                    for e in entries {
                        assert!(
                            durably_holds(d, e.index, e.term),
                            "{id}: sent {} before persisting it",
                            e.index
                        );
                    }
                }
                Message::AppendEntriesResponse(AppendEntriesResponse {
                    match_index,
                    reject: None,
                    ..
                }) => {
                    assert!(
                        d.last_index() >= *match_index,
                        "{id}: acked unpersisted entries"
                    );
                    if let Input::Receive {
                        msg: Message::AppendEntries(AppendEntries { entries, .. }),
                        ..
                    } = input
                    {
                        for e in entries.iter().filter(|e| e.index <= *match_index) {
                            assert!(
                                durably_holds(d, e.index, e.term),
                                "{id}: acked {} before persisting it",
                                e.index
                            );
                        }
                    }
                }
                Message::InstallSnapshotResponse(InstallSnapshotResponse {
                    match_index, ..
                }) => {
                    assert!(
                        d.last_index() >= *match_index,
                        "{id}: acked an unpersisted snapshot"
                    );
                }
                _ => {}
            }
            let is_pre_vote = matches!(
                msg,
                Message::RequestVote(RequestVote { pre_vote: true, .. })
                    | Message::RequestVoteResponse(RequestVoteResponse { pre_vote: true, .. })
            );
            if !is_pre_vote {
                assert!(
                    hs.term >= msg.term(),
                    "{id}: sent a term it has not persisted"
                );
            }
        }
        Action::Apply(entries) => {
            for e in entries {
                assert!(
                    durably_holds(d, e.index, e.term),
                    "{id}: applied {} before persisting it",
                    e.index
                );
            }
        }
        Action::Proposed { index, term } => {
            assert!(
                durably_holds(d, *index, *term),
                "{id}: acknowledged a proposal before persisting it"
            );
        }
        Action::ApplySnapshot(s) => {
            assert_eq!(
                d.snapshot.as_ref(),
                Some(s),
                "{id}: applied a snapshot before persisting it"
            );
        }
        _ => {}
    }
}
