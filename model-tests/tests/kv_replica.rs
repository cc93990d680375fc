//! End-to-end tests of the replicated key/value service ([`KvReplica`] =
//! `Rsm<KvStore>`) with sans-IO [`Clerk`]s, on a hand-driven 3-replica
//! cluster whose Raft and client messages are lost, duplicated and
//! reordered, with partitions and crashes (seeded; every assertion names
//! its seed). The checks are lab 4's classic ones (spec `lab-tests.md` §5.3,
//! `checkClntAppends`): every append appears exactly once and in each
//! client's order, and versioned Puts move the version exactly once (§5.2).

use core_kv::{
    Clerk, ClerkAction, ClerkConfig, ClerkInput, ClientId, ClientReply, ClientRequest, KvStore, Op,
    Outcome, Version,
};
use core_raft::rng::SplitMix64;
use core_raft::NodeId;
use model_tests::kvsim::scenario::{n, RsmScenario};
use std::collections::{BTreeMap, VecDeque};

type C = RsmScenario<KvStore>;

/// The faults a run injects, in percent per event.
#[derive(Clone, Copy)]
struct Faults {
    drop: u64,
    dup: u64,
    partitions: bool,
    crashes: bool,
}

/// A KV cluster plus clerks and the client network between them.
struct World {
    c: C,
    rng: SplitMix64,
    faults: Faults,
    clerks: Vec<Clerk>,
    /// Per clerk: operations still to invoke, and outcomes so far.
    todo: Vec<VecDeque<Op>>,
    done: Vec<Vec<(Op, Outcome)>>,
    to_server: Vec<(NodeId, ClientRequest)>,
    to_clerk: Vec<(NodeId, ClientReply)>,
    /// Submission id -> the request it carries.
    subs: BTreeMap<u64, ClientRequest>,
    replies_seen: usize,
}

impl World {
    fn new(
        seed: u64,
        clerks: usize,
        faults: Faults,
        read_index: bool,
        max: Option<usize>,
    ) -> World {
        let c = RsmScenario::new(3, seed, |cfg| {
            cfg.read_index = read_index;
            cfg.max_raft_state = max;
        });
        let servers = c.ids();
        World {
            c,
            rng: SplitMix64::new(seed ^ 0x5eed),
            faults,
            clerks: (0..clerks)
                .map(|i| {
                    Clerk::new(ClerkConfig {
                        client: ClientId(i as u64 + 1),
                        servers: servers.clone(),
                        retry_ticks: 40,
                        seed: seed * 100 + i as u64,
                    })
                })
                .collect(),
            todo: vec![VecDeque::new(); clerks],
            done: vec![Vec::new(); clerks],
            to_server: Vec::new(),
            to_clerk: Vec::new(),
            subs: BTreeMap::new(),
            replies_seen: 0,
        }
    }

    fn roll(&mut self, percent: u64) -> bool {
        self.rng.next_u64() % 100 < percent
    }

    fn pick<T>(&mut self, v: &mut Vec<T>) -> Option<T> {
        if v.is_empty() {
            return None;
        }
        let i = (self.rng.next_u64() % v.len() as u64) as usize;
        Some(v.swap_remove(i))
    }

    /// Carry out a clerk's actions; start its next operation when idle.
    fn clerk_actions(&mut self, i: usize, actions: Vec<ClerkAction>) {
        for a in actions {
            match a {
                ClerkAction::Send { to, request } => {
                    if !self.roll(self.faults.drop) {
                        self.to_server.push((to, request.clone()));
                    }
                    if self.roll(self.faults.dup) {
                        self.to_server.push((to, request));
                    }
                }
                ClerkAction::Done { op, outcome } => self.done[i].push((op, outcome)),
            }
        }
        if !self.clerks[i].busy() {
            if let Some(op) = self.todo[i].pop_front() {
                let a = self.clerks[i].step(ClerkInput::Invoke(op));
                self.clerk_actions(i, a);
            }
        }
    }

    /// Route replicas' new answers to the clerks' network.
    fn collect_replies(&mut self) {
        while self.replies_seen < self.c.reply_order().len() {
            let id = self.c.reply_order()[self.replies_seen];
            self.replies_seen += 1;
            let (server, result) = self.c.replies()[&id].clone();
            let request = &self.subs[&id];
            let reply = ClientReply::new(request.client, request.seq, result);
            if !self.roll(self.faults.drop) {
                self.to_clerk.push((server, reply.clone()));
            }
            if self.roll(self.faults.dup) {
                self.to_clerk.push((server, reply));
            }
        }
    }

    fn idle(&self) -> bool {
        self.clerks.iter().all(|c| !c.busy()) && self.todo.iter().all(|t| t.is_empty())
    }

    /// One random event.
    fn event(&mut self, allow_faults: bool) {
        let f = self.faults;
        match self.rng.next_u64() % 100 {
            0..=29 => {
                // A Raft message: lost, duplicated or delivered.
                let Some(env) = self.c.pop_queued() else {
                    return;
                };
                if allow_faults && self.roll(f.drop) {
                    return;
                }
                if allow_faults && self.roll(f.dup) {
                    self.c.push_queued(env.clone());
                }
                // Reorder: sometimes deliver a later message first.
                if allow_faults && self.roll(10) {
                    self.c.push_queued(env);
                    return;
                }
                self.c.deliver(env);
            }
            30..=44 => {
                let mut q = std::mem::take(&mut self.to_server);
                let next = self.pick(&mut q);
                self.to_server = q;
                if let Some((to, request)) = next {
                    if self.c.is_up(to) {
                        let id = self.c.submit(to, request.clone());
                        self.subs.insert(id, request);
                    }
                }
            }
            45..=59 => {
                let mut q = std::mem::take(&mut self.to_clerk);
                let next = self.pick(&mut q);
                self.to_clerk = q;
                if let Some((from, reply)) = next {
                    let i = (reply.client.0 - 1) as usize;
                    let a = self.clerks[i].step(ClerkInput::Reply { from, reply });
                    self.clerk_actions(i, a);
                }
            }
            60..=89 => {
                self.c.tick_all();
                for i in 0..self.clerks.len() {
                    let a = self.clerks[i].step(ClerkInput::Tick);
                    self.clerk_actions(i, a);
                }
            }
            90..=93 if allow_faults && f.partitions => {
                let who = n(1 + self.rng.next_u64() % 3);
                self.c.isolate(who);
            }
            94..=96 => self.c.heal(),
            97 if allow_faults && f.crashes => {
                let who = n(1 + self.rng.next_u64() % 3);
                if self.c.ids().iter().all(|i| self.c.is_up(*i)) {
                    self.c.crash(who);
                }
            }
            98 | 99 => {
                for id in self.c.ids() {
                    if !self.c.is_up(id) {
                        self.c.restart(id);
                    }
                }
            }
            _ => {}
        }
        self.collect_replies();
    }

    /// Run faulty events for `steps`, then heal and run fault-free until
    /// every clerk is done (bounded).
    fn run(&mut self, seed: u64, steps: u64) {
        for i in 0..self.clerks.len() {
            self.clerk_actions(i, Vec::new());
        }
        for _ in 0..steps {
            self.event(true);
        }
        self.c.heal();
        for id in self.c.ids() {
            if !self.c.is_up(id) {
                self.c.restart(id);
            }
        }
        for _ in 0..400_000 {
            if self.idle() {
                break;
            }
            self.event(false);
        }
        assert!(self.idle(), "seed {seed}: clerks never finished");
        self.c.run(20);
    }
}

fn append(key: &str, value: &str) -> Op {
    Op::Append {
        key: key.into(),
        value: value.into(),
    }
}

fn value_of(store: &KvStore, key: &str) -> String {
    match store.read(&Op::Get { key: key.into() }) {
        Outcome::Value { value, .. } => value,
        Outcome::ErrNoKey => String::new(),
        other => panic!("{other:?}"),
    }
}

/// `checkClntAppends`: every element `x <c> <j> y` for j in 0..count
/// appears exactly once in `value`, in increasing j.
fn check_appends(seed: u64, value: &str, clerk: usize, count: usize) {
    let mut last = None;
    for j in 0..count {
        let elem = format!("x {clerk} {j} y");
        let found: Vec<_> = value.match_indices(&elem).collect();
        assert_eq!(
            found.len(),
            1,
            "seed {seed}: {elem:?} appears {} times in {value:?}",
            found.len()
        );
        let at = found[0].0;
        if let Some(prev) = last {
            assert!(at > prev, "seed {seed}: {elem:?} out of order in {value:?}");
        }
        last = Some(at);
    }
}

/// Lab 4 classic (§5.3 TestUnreliable / TestPersistPartitionUnreliable):
/// three clerks each append 15 elements to their own key through a cluster
/// with lost, duplicated and reordered messages, partitions, crashes and
/// snapshots; every append appears exactly once and in order on every
/// replica, every Append answers Ok, and the final Get through the service
/// sees the full value.
#[test]
fn appends_through_a_faulty_cluster_appear_exactly_once_in_order() {
    let (mut snapshots_sent, mut max_term) = (0, 0);
    for seed in 0..12u64 {
        let faults = Faults {
            drop: 10,
            dup: 5,
            partitions: true,
            crashes: true,
        };
        let max = if seed % 2 == 0 { Some(400) } else { None };
        let mut w = World::new(seed, 3, faults, seed % 3 == 0, max);
        let per = 15;
        for c in 0..3 {
            for j in 0..per {
                w.todo[c].push_back(append(&format!("k{c}"), &format!("x {c} {j} y")));
            }
            w.todo[c].push_back(Op::Get {
                key: format!("k{c}"),
            });
        }
        w.run(seed, 6000);
        for c in 0..3 {
            let done = &w.done[c];
            assert_eq!(done.len(), per + 1, "seed {seed}");
            for (op, outcome) in &done[..per] {
                assert_eq!(*outcome, Outcome::Ok, "seed {seed}: {op:?}");
            }
            let Outcome::Value { value, .. } = &done[per].1 else {
                panic!("seed {seed}: final Get: {:?}", done[per].1)
            };
            check_appends(seed, value, c, per);
            for id in w.c.ids() {
                let v = value_of(w.c.state(id), &format!("k{c}"));
                assert_eq!(&v, value, "seed {seed}: replica {id} differs");
            }
        }
        snapshots_sent +=
            w.c.count_sent(|e| matches!(e.msg, core_raft::Message::InstallSnapshot { .. }));
        max_term = max_term.max(w.c.node(w.c.ids()[0]).raft().term().0);
    }
    // The faults did bite: leaders changed and snapshots were shipped.
    assert!(snapshots_sent > 0, "no InstallSnapshot in any run");
    assert!(
        max_term >= 3,
        "leadership never changed (max term {max_term})"
    );
}

/// §5.3 TestUnreliableOneKey: five clerks, ten appends each, all to one
/// key, over an unreliable network: the final value holds all 50
/// elements, each exactly once and in each clerk's order.
#[test]
fn unreliable_one_key() {
    for seed in 0..8u64 {
        let faults = Faults {
            drop: 10,
            dup: 10,
            partitions: false,
            crashes: false,
        };
        let mut w = World::new(seed, 5, faults, true, Some(600));
        for c in 0..5 {
            for j in 0..10 {
                w.todo[c].push_back(append("k", &format!("x {c} {j} y")));
            }
        }
        w.run(seed, 4000);
        let l = w.c.ids()[0];
        let value = value_of(w.c.state(l), "k");
        for c in 0..5 {
            check_appends(seed, &value, c, 10);
        }
        assert_eq!(value.matches('x').count(), 50, "seed {seed}: {value}");
    }
}

/// §5.2 with §3.1's rules (TestUnreliableNet through Raft): one clerk does
/// `Put("k", i, version = i)` for i in 0..30 across leader changes, lost
/// and duplicated messages and crashes. Each Put answers Ok (the session
/// table answers a resend of an applied Put with its original Ok), or
/// ErrMaybe; either way it was applied exactly once: the version ends at 30
/// and the value is the last one.
#[test]
fn versioned_puts_through_a_faulty_cluster_apply_exactly_once() {
    for seed in 0..12u64 {
        let faults = Faults {
            drop: 15,
            dup: 10,
            partitions: true,
            crashes: true,
        };
        let mut w = World::new(seed, 1, faults, seed % 2 == 0, Some(300));
        for i in 0..30u64 {
            w.todo[0].push_back(Op::Put {
                key: "k".into(),
                value: i.to_string(),
                version: Version(i),
            });
        }
        w.run(seed, 5000);
        for (op, outcome) in &w.done[0] {
            assert!(
                matches!(outcome, Outcome::Ok | Outcome::ErrMaybe),
                "seed {seed}: {op:?} -> {outcome:?}"
            );
        }
        for id in w.c.ids() {
            assert_eq!(
                w.c.state(id).read(&Op::Get { key: "k".into() }),
                Outcome::Value {
                    value: "29".into(),
                    version: Version(30)
                },
                "seed {seed}: replica {id}"
            );
        }
    }
}
