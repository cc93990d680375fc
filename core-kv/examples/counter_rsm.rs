//! Three in-memory replicas of a counter, replicated with [`Rsm`] on Raft.
//!
//! ```text
//! cargo run -p core-kv --example counter_rsm
//! ```
//!
//! The example plays driver: it owns the "network" (a queue of messages),
//! the "disks" (one [`Durable`] per replica, updated with
//! [`Durable::persist`]) and the clock (it feeds `Tick`s). It elects a
//! leader, increments the counter through it, crashes the leader, lets the
//! other two elect a new one and carry on, then restarts the old leader
//! from its storage and watches it catch up.

use core_kv::{NotLeader, Rsm, RsmAction, RsmConfig, RsmInput, StateMachine};
use core_raft::{Action, Config, Durable, Message, NodeId};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};

/// The replicated state machine: a counter.
#[derive(Default)]
struct Counter {
    n: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
enum CounterOp {
    Inc,
    Get,
}

impl StateMachine for Counter {
    type Op = CounterOp;
    type Output = u64;
    type Snapshot = std::io::Cursor<Vec<u8>>;

    fn apply(&mut self, _index: core_raft::LogIndex, op: &CounterOp) -> u64 {
        if let CounterOp::Inc = op {
            self.n += 1;
        }
        self.n
    }

    fn is_read_only(&self, op: &CounterOp) -> bool {
        matches!(op, CounterOp::Get)
    }

    fn query(&self, _op: &CounterOp) -> u64 {
        self.n
    }

    fn snapshot(&self) -> Self::Snapshot {
        std::io::Cursor::new(core_kv::snapshot::encode(&self.n))
    }

    fn restore(&mut self, snapshot: &mut dyn std::io::Read) -> Result<(), String> {
        self.n = core_kv::snapshot::decode(snapshot)?;
        Ok(())
    }
}

/// The driver: replicas (None while crashed), their storage, the network.
struct World {
    ids: Vec<NodeId>,
    replicas: BTreeMap<NodeId, Option<Rsm<Counter>>>,
    disks: BTreeMap<NodeId, Durable>,
    network: VecDeque<(NodeId, NodeId, Message)>,
    answers: BTreeMap<u64, Result<u64, NotLeader>>,
}

impl World {
    fn config(&self, id: NodeId) -> RsmConfig {
        let mut raft = Config::new(id, self.ids.clone());
        // Short timeouts keep the output small: elections after 10-20 ticks.
        raft.election_ticks_min = 10;
        raft.election_ticks_max = 20;
        raft.heartbeat_ticks = 3;
        let mut config = RsmConfig::new(raft);
        config.max_raft_state = Some(2000);
        config
    }

    /// Start (or restart) a replica from what its disk holds.
    fn start(&mut self, id: NodeId) {
        let durable = self.disks[&id].clone();
        let rsm =
            Rsm::restore(self.config(id), durable, Counter::default()).expect("storage is valid");
        self.replicas.insert(id, Some(rsm));
    }

    /// Feed one input and carry out the actions, in order: persist first,
    /// then send, then answer.
    fn step(&mut self, id: NodeId, input: RsmInput<CounterOp>) {
        let Some(rsm) = self.replicas.get_mut(&id).unwrap() else {
            return; // crashed: the input is lost
        };
        for action in rsm.step(input) {
            match action {
                RsmAction::Raft(Action::Send { to, msg }) => self.network.push_back((id, to, msg)),
                RsmAction::Raft(persist) => {
                    self.disks.get_mut(&id).unwrap().persist(&persist);
                }
                RsmAction::Reply { id: handle, result } => {
                    self.answers.insert(handle, result);
                }
                // This example submits no cluster changes; observations are
                // off, and so are off-loop captures (it snapshots inline).
                RsmAction::Changed { .. } | RsmAction::Observed(_) | RsmAction::Capture(_) => {}
            }
        }
    }

    /// One tick for every live replica, then deliver every message.
    fn tick(&mut self) {
        for id in self.ids.clone() {
            self.step(id, RsmInput::Tick);
        }
        while let Some((from, to, msg)) = self.network.pop_front() {
            self.step(to, RsmInput::Receive { from, msg });
        }
    }

    fn leader(&self) -> Option<NodeId> {
        self.replicas
            .iter()
            .filter_map(|(id, r)| r.as_ref().filter(|r| r.raft().is_leader()).map(|_| *id))
            .next()
    }

    fn wait_for_leader(&mut self) -> NodeId {
        for _ in 0..1000 {
            self.tick();
            if let Some(l) = self.leader() {
                return l;
            }
        }
        panic!("no leader");
    }

    /// Submit at `at` and run until answered.
    fn submit(&mut self, handle: u64, at: NodeId, op: CounterOp) -> Result<u64, NotLeader> {
        self.step(at, RsmInput::Submit { id: handle, op });
        for _ in 0..1000 {
            if let Some(answer) = self.answers.remove(&handle) {
                return answer;
            }
            self.tick();
        }
        panic!("submission {handle} never answered");
    }

    fn counters(&self) -> String {
        self.replicas
            .iter()
            .map(|(id, r)| match r {
                Some(r) => format!("{id}={}", r.state().n),
                None => format!("{id}=down"),
            })
            .collect::<Vec<_>>()
            .join(" ")
    }
}

fn main() {
    let ids: Vec<NodeId> = (1..=3).map(NodeId).collect();
    let mut w = World {
        ids: ids.clone(),
        replicas: BTreeMap::new(),
        disks: ids.iter().map(|id| (*id, Durable::default())).collect(),
        network: VecDeque::new(),
        answers: BTreeMap::new(),
    };
    for id in &ids {
        w.start(*id);
    }

    let leader = w.wait_for_leader();
    println!(
        "{leader} leads term {}",
        w.replicas[&leader].as_ref().unwrap().raft().term()
    );

    let follower = *ids.iter().find(|id| **id != leader).unwrap();
    let refused = w.submit(1, follower, CounterOp::Inc);
    println!("Inc at follower {follower}: {refused:?}");

    for handle in 2..=4 {
        let n = w
            .submit(handle, leader, CounterOp::Inc)
            .expect("leader accepts");
        println!("Inc at {leader} -> {n}");
    }
    for _ in 0..5 {
        w.tick();
    }
    println!("counters: {}", w.counters());

    println!("crash {leader}");
    w.replicas.insert(leader, None);
    let new_leader = w.wait_for_leader();
    println!(
        "{new_leader} leads term {}",
        w.replicas[&new_leader].as_ref().unwrap().raft().term()
    );
    let n = w
        .submit(5, new_leader, CounterOp::Inc)
        .expect("new leader accepts");
    println!("Inc at {new_leader} -> {n}");
    let read = w
        .submit(6, new_leader, CounterOp::Get)
        .expect("leader reads");
    println!("Get at {new_leader} (ReadIndex, no log entry) -> {read}");
    println!("counters: {}", w.counters());

    println!("restart {leader} from its storage");
    w.start(leader);
    for _ in 0..30 {
        w.tick();
    }
    println!("counters: {}", w.counters());
    let all_four = w
        .replicas
        .values()
        .all(|r| r.as_ref().unwrap().state().n == 4);
    assert!(all_four, "every replica reaches 4");
    println!("every replica agrees: the counter is 4");
}
