//! The 6.5840 service testers' building blocks on the simulated world:
//! scripted clerks, `GenericTest` (clients, partitioner, crashes, checks) and
//! the linearizability check of recorded histories.

use super::clients::{ClerkClient, History, OnePut, PutCounts, Stop, Workload};
use super::world::{World, WorldConfig};
use crate::sim::rng::SimRng;
use core_kv::{KvStore, Op, Outcome};
use linearizability::kv::{classic_history, versioned_history};
use linearizability::models::{ClassicKvModel, VersionedKvModel};
use linearizability::{check, CheckOptions, Model, Operation, Verdict};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::Duration;

/// Clerk retry interval: 10 ticks (100 ms), the lab clerks' usual wait.
pub const RETRY_TICKS: u64 = 10;

/// A workload that runs a fixed list of operations and keeps their outcomes.
pub struct Script {
    ops: VecDeque<Op>,
    /// Outcomes, in order.
    pub outcomes: Rc<RefCell<Vec<Outcome>>>,
}

impl Script {
    /// A script of `ops`.
    pub fn new(ops: Vec<Op>) -> (Script, Rc<RefCell<Vec<Outcome>>>) {
        let outcomes = Rc::new(RefCell::new(Vec::new()));
        (
            Script {
                ops: ops.into(),
                outcomes: outcomes.clone(),
            },
            outcomes,
        )
    }
}

impl Workload for Script {
    fn next_op(&mut self, _now: u64, _rng: &mut SimRng) -> Option<Op> {
        self.ops.pop_front()
    }

    fn on_done(&mut self, _now: u64, _op: &Op, outcome: &Outcome) -> Result<(), String> {
        self.outcomes.borrow_mut().push(outcome.clone());
        Ok(())
    }

    fn finished(&self) -> bool {
        self.ops.is_empty()
    }
}

/// Client ids handed out by [`run_ops`] and friends start here so they never
/// collide with workload clients (numbered from 1).
const SCRIPT_CLIENT_BASE: u64 = 1 << 40;

/// Run `ops` in order through a fresh clerk that can reach `reach` (all
/// servers if `None`); fail after `limit_ms`. Returns the outcomes.
pub fn run_ops(
    world: &mut World<KvStore>,
    ops: Vec<Op>,
    reach: Option<&[usize]>,
    history: &History,
    limit_ms: u64,
) -> Vec<Outcome> {
    let id = SCRIPT_CLIENT_BASE + world.rng().below(1 << 30);
    let seed = world.rng().next_u64();
    let (script, outcomes) = Script::new(ops);
    let client = ClerkClient::new(
        id,
        world.servers(),
        RETRY_TICKS,
        seed,
        script,
        history.clone(),
    );
    let c = world.add_client(Box::new(client), reach);
    let deadline = world.now_ms + limit_ms;
    while !world.clients_finished_one(c) {
        if world.now_ms >= deadline {
            world.fail(format!(
                "scripted clerk did not finish within {limit_ms} ms"
            ));
        }
        world.run_for(10);
    }
    world.remove_client(c);
    let v = outcomes.borrow().clone();
    v
}

/// Fail unless `history` is linearizable under `model`; `Unknown` fails too
/// (the lab passes it silently after 1 s; we give the checker 60 s and treat
/// an undecided history as a defect to look at).
pub fn assert_linearizable<M: Model>(
    model: &M,
    history: &[Operation<M::Input, M::Output>],
    seed: u64,
) {
    let outcome = check(
        model,
        history,
        &CheckOptions::with_budget(Duration::from_secs(60)),
    );
    match outcome.verdict {
        Verdict::Ok => {}
        Verdict::Illegal => {
            // A picture of the failing key's history, porcupine-style.
            let page = std::env::temp_dir().join(format!("linearizability-seed-{seed}.html"));
            let written = match outcome.failure.as_ref().map(|f| f.write_html(&page)) {
                Some(Ok(())) => format!("timeline written to {}", page.display()),
                Some(Err(e)) => format!("could not write {}: {e}", page.display()),
                None => String::new(),
            };
            panic!("seed {seed}: history is not linearizable ({written}):\n{outcome}")
        }
        Verdict::Unknown => panic!("seed {seed}: {outcome}"),
    }
}

/// Check a recorded history of versioned operations.
pub fn assert_versioned_linearizable(history: &History, seed: u64) {
    assert_linearizable(
        &VersionedKvModel,
        &versioned_history(&history.borrow()),
        seed,
    );
}

/// Check a recorded history of classic operations.
pub fn assert_classic_linearizable(history: &History, seed: u64) {
    assert_linearizable(&ClassicKvModel, &classic_history(&history.borrow()), seed);
}

/// The parameters of the lab's `GenericTest` (kvraft1 `MakeTest`).
#[derive(Clone, Debug)]
pub struct Generic {
    /// Concurrent clients.
    pub clients: usize,
    /// Servers.
    pub servers: usize,
    /// Reliable network.
    pub reliable: bool,
    /// Crash and restart every server after each iteration.
    pub crash: bool,
    /// Run the partitioner while clients run.
    pub partitions: bool,
    /// Snapshot threshold (`None`: the lab's -1).
    pub max_raft_state: Option<usize>,
    /// 100 keys instead of one.
    pub random_keys: bool,
}

/// How long clients run in each iteration (the lab's 1 s).
pub const CLIENT_MS: u64 = 1000;

/// When the partitioner first acts. The lab's catalogue starts it after
/// 1 s, when its clients may already be done; we start it halfway through
/// so partitions always overlap client traffic.
pub const FIRST_PARTITION_MS: u64 = 500;

/// The lab's `GenericTest`: 3 iterations of clients doing `OneClientPut`,
/// with partitions and crashes as configured, checking the put count,
/// linearizability and the persisted sizes after each.
pub fn generic_test(g: &Generic, seed: u64) -> World<KvStore> {
    let mut config = WorldConfig::replicated(g.servers, g.reliable, seed);
    config.max_raft_state = g.max_raft_state;
    let mut world: World<KvStore> = World::new(config);
    world.set_service_check(kv_exactly_once);
    let keys: Vec<String> = if g.random_keys {
        (0..100).map(|i| format!("k{i}")).collect()
    } else {
        vec!["k".to_string()]
    };
    let history: History = Rc::new(RefCell::new(Vec::new()));
    // Put counts of every client of every iteration: the key's version
    // accumulates across iterations.
    let mut counts = Vec::new();
    for iteration in 0..3u64 {
        let stop: Stop = Rc::new(RefCell::new(false));
        let mut ids = Vec::new();
        for c in 0..g.clients {
            let n = Rc::new(RefCell::new(PutCounts::default()));
            counts.push(n.clone());
            // Client ids must never repeat: a clerk that reused an id would
            // start at seq 1 and every request would look like a stale
            // duplicate to the servers' session tables.
            let me = 1 + c as u64 + 1000 * iteration;
            let work = OnePut::new(me, keys.clone(), g.random_keys, stop.clone(), n);
            let seed = world.rng().next_u64();
            let client = ClerkClient::new(me, g.servers, RETRY_TICKS, seed, work, history.clone());
            ids.push(world.add_client(Box::new(client), None));
        }
        let mut elapsed = 0;
        let mut next_partition = FIRST_PARTITION_MS;
        while elapsed < CLIENT_MS {
            world.run_for(10);
            elapsed += 10;
            if g.partitions && elapsed >= next_partition {
                random_bipartition(&mut world);
                next_partition = elapsed + 1000 + world.rng().below(200);
            }
        }
        *stop.borrow_mut() = true;
        if g.partitions {
            world.heal();
        }
        world.run_until_clients_finish(30_000);
        for id in ids {
            world.remove_client(id);
        }
        if !g.random_keys {
            let ok: u64 = counts.iter().map(|c| c.borrow().ok).sum();
            let maybe: u64 = counts.iter().map(|c| c.borrow().maybe).sum();
            let version = match run_ops(
                &mut world,
                vec![Op::Get { key: "k".into() }],
                None,
                &history,
                30_000,
            )[0]
            {
                Outcome::Value { version, .. } => version.0,
                Outcome::ErrNoKey => 0,
                ref other => world.fail(format!("Get(k) returned {other:?}")),
            };
            if g.reliable && !g.crash && !g.partitions {
                if version != ok {
                    world.fail(format!("version {version} != number of OK Puts {ok}"));
                }
            } else if version > ok + maybe {
                world.fail(format!(
                    "version {version} > OK + Maybe Puts {}",
                    ok + maybe
                ));
            }
        }
        if g.partitions {
            world.heal();
            world.run_for(1000);
        }
        if g.crash {
            for i in 0..g.servers {
                world.shutdown(i);
            }
            world.run_for(1000);
            for i in 0..g.servers {
                world.start(i);
            }
            world.heal();
        }
        match g.max_raft_state {
            Some(max) => {
                let size = world.max_raft_state_size();
                if size > 8 * max {
                    world.fail(format!("logs were not trimmed: {size} > 8 * {max}"));
                }
            }
            None => {
                let size = world.max_snapshot_size();
                if size != 0 {
                    world.fail(format!("snapshot of {size} bytes without max_raft_state"));
                }
            }
        }
    }
    // The lab checks the growing history after every iteration; checking
    // the whole history once covers the same operations at half the cost.
    assert_versioned_linearizable(&history, seed);
    world
}

/// The lab's `Partitioner` step: each server to one of two halves at random.
pub fn random_bipartition(world: &mut World<KvStore>) {
    let n = world.servers();
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for i in 0..n {
        if world.rng().chance(1, 2) {
            a.push(i);
        } else {
            b.push(i);
        }
    }
    world.partition(&a, &b);
}

/// Exactly-once, checked on a replica after every step that applied
/// entries: no Append's element may occur twice in its key's value.
/// (Elements are unique per client and request in every workload here.)
pub fn kv_exactly_once(store: &KvStore, applied: &[core_raft::Entry]) -> Result<(), String> {
    for e in applied {
        let core_raft::Payload::Command(data) = &e.payload else {
            continue;
        };
        let Ok(req) = postcard::from_bytes::<core_kv::ClientRequest>(data) else {
            return Err(format!("entry {} does not decode as a request", e.index));
        };
        if let Op::Append { key, value } = &req.op {
            if let Outcome::Value { value: current, .. } = store.read(&Op::Get { key: key.clone() })
            {
                let count = current.matches(value.as_str()).count();
                if count > 1 {
                    return Err(format!(
                        "exactly-once: {value:?} from {} seq {} occurs {count} times in {key:?}",
                        req.client, req.seq.0
                    ));
                }
            }
        }
    }
    Ok(())
}

/// The classic labs' `GenericTest` (S24 kvraft, §5.3): each client appends
/// to its own key (50 % Append, otherwise a Get that must read exactly the
/// appends so far) for 3 iterations; after each, `checkClntAppends`; the
/// whole history is checked against the classic model at the end.
pub fn generic_classic_test(g: &Generic, seed: u64) -> World<KvStore> {
    use super::clients::{check_appends, Appender};
    let mut config = WorldConfig::replicated(g.servers, g.reliable, seed);
    config.max_raft_state = g.max_raft_state;
    let mut world: World<KvStore> = World::new(config);
    world.set_service_check(kv_exactly_once);
    let history: History = Rc::new(RefCell::new(Vec::new()));
    for iteration in 0..3u64 {
        let stop: Stop = Rc::new(RefCell::new(false));
        let mut ids = Vec::new();
        for c in 0..g.clients as u64 {
            let me = 1 + c + 1000 * iteration;
            let key = format!("{}", c + 1);
            let work = Appender::new(me, key.clone(), false, None, stop.clone());
            let seed = world.rng().next_u64();
            let client = ClerkClient::new(me, g.servers, RETRY_TICKS, seed, work, history.clone());
            ids.push((world.add_client(Box::new(client), None), me, key));
        }
        let mut elapsed = 0;
        let mut next_partition = FIRST_PARTITION_MS;
        while elapsed < CLIENT_MS {
            world.run_for(10);
            elapsed += 10;
            if g.partitions && elapsed >= next_partition {
                random_bipartition(&mut world);
                next_partition = elapsed + 1000 + world.rng().below(200);
            }
        }
        *stop.borrow_mut() = true;
        world.heal();
        world.run_until_clients_finish(30_000);
        for (id, me, key) in ids {
            world.remove_client(id);
            let count = history
                .borrow()
                .iter()
                .filter(|r| {
                    r.client == me
                        && matches!(r.op, Op::Append { .. })
                        && r.outcome == Some(Outcome::Ok)
                })
                .count() as u64;
            let value = match run_ops(&mut world, vec![Op::Get { key }], None, &history, 30_000)[0]
            {
                Outcome::Value { ref value, .. } => value.clone(),
                _ => String::new(),
            };
            if let Err(e) = check_appends(&value, me, count) {
                world.fail(format!("client {me}: {e}"));
            }
        }
        if g.crash {
            for i in 0..g.servers {
                world.shutdown(i);
            }
            world.run_for(1000);
            for i in 0..g.servers {
                world.start(i);
            }
            world.heal();
        }
        if let Some(max) = g.max_raft_state {
            let size = world.max_raft_state_size();
            if size > 8 * max {
                world.fail(format!("logs were not trimmed: {size} > 8 * {max}"));
            }
        }
    }
    assert_classic_linearizable(&history, seed);
    world
}
