//! Swarm runs of the replicated key/value service: each seed picks its own
//! cluster, clients, workload and fault mix (membership changes and
//! leadership transfers included, by the Raft swarm's operator:
//! [`crate::sim::operator`]); exactly-once is checked on every replica
//! after every step, linearizability of the whole history at the end, and
//! the healed service must let every client finish.

use super::clients::{check_appends, Appender, ClerkClient, History, OnePut, PutCounts, Stop};
use super::lab::{
    assert_classic_linearizable, assert_versioned_linearizable, kv_exactly_once, run_ops,
    RETRY_TICKS,
};
use super::world::{World, WorldConfig};
use crate::sim::network::NetConfig;
use crate::sim::operator::{Operator, ReconfigStats};
use crate::sim::rng::SimRng;
use core_kv::{KvStore, Op, Outcome, SnapshotRule};
use std::cell::RefCell;
use std::fmt;
use std::rc::Rc;

/// The settings one seed runs with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KvSwarmOptions {
    /// Servers: 3, 5 or 7.
    pub servers: usize,
    /// Clients racing versioned Puts on shared keys.
    pub put_clients: usize,
    /// Shared keys for the versioned clients.
    pub keys: usize,
    /// Clients appending to their own keys (classic).
    pub append_clients: usize,
    /// Network faults while the chaos lasts.
    pub net: NetConfig,
    /// Out of 1000 per 100 ms: re-partition the servers.
    pub partition_per_mille: u64,
    /// Out of 1000 per 100 ms: crash a server.
    pub crash_per_mille: u64,
    /// Out of 1000 per 100 ms: restart a crashed server.
    pub restart_per_mille: u64,
    /// Snapshot threshold in bytes (`None`: never).
    pub max_raft_state: Option<usize>,
    /// Reads through ReadIndex (else through the log).
    pub read_index: bool,
    /// Spare servers: they start knowing no membership and are added by
    /// the operator. Clients know every server, spares included.
    pub spare_servers: usize,
    /// Out of 1000 per 100 ms: the operator changes the membership or
    /// transfers leadership.
    pub reconfig_per_mille: u64,
    /// How the snapshot threshold scales with the state.
    pub snapshot_rule: SnapshotRule,
    /// Size of one InstallSnapshot chunk.
    pub snapshot_chunk_bytes: usize,
    /// Snapshot captures come back later, as the drivers encode them off
    /// their event loop.
    pub capture_off_loop: bool,
}

impl KvSwarmOptions {
    /// Derive the options from a seed.
    pub fn from_seed(seed: u64) -> Self {
        let mut r = SimRng::new(seed ^ 0x4B56_5357);
        KvSwarmOptions {
            servers: [3, 5, 7][r.pick(3)],
            put_clients: [1, 3, 8, 15][r.pick(4)],
            keys: [1, 3, 20][r.pick(3)],
            append_clients: [0, 2, 5][r.pick(3)],
            net: NetConfig {
                drop_per_mille: [0, 50, 100, 200][r.pick(4)],
                duplicate_per_mille: [0, 0, 50, 300][r.pick(4)],
                delay_min_ms: 0,
                delay_max_ms: [1, 10, 27, 60][r.pick(4)],
                long_reordering: r.chance(1, 5),
            },
            partition_per_mille: [0, 100, 300][r.pick(3)],
            crash_per_mille: [0, 50, 150][r.pick(3)],
            restart_per_mille: [300, 700][r.pick(2)],
            max_raft_state: [None, Some(300), Some(1000), Some(20_000)][r.pick(4)],
            read_index: r.chance(2, 3),
            // Drawn last, so that the options above stay what they were
            // for every seed.
            spare_servers: [0, 2, 3][r.pick(3)],
            reconfig_per_mille: [0, 100, 300, 600][r.pick(4)],
            snapshot_rule: [SnapshotRule::Fixed, SnapshotRule::ScaleWithState][r.pick(2)],
            snapshot_chunk_bytes: [1 << 20, 64, 700][r.pick(3)],
            capture_off_loop: r.chance(1, 2),
        }
    }
}

impl fmt::Display for KvSwarmOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} servers + {} spare, {} put clients on {} keys, {} appenders, drop {}‰, dup {}‰, delay ≤{} ms{}, partition {}‰, crash {}‰, snapshot {:?} {:?}, read-index {}, reconfig {}‰, snapshot chunks of {} bytes{}",
            self.servers,
            self.spare_servers,
            self.put_clients,
            self.keys,
            self.append_clients,
            self.net.drop_per_mille,
            self.net.duplicate_per_mille,
            self.net.delay_max_ms,
            if self.net.long_reordering { " +reorder" } else { "" },
            self.partition_per_mille,
            self.crash_per_mille,
            self.max_raft_state,
            self.snapshot_rule,
            self.read_index,
            self.reconfig_per_mille,
            self.snapshot_chunk_bytes,
            if self.capture_off_loop {
                ", captures off the loop"
            } else {
                ""
            }
        )
    }
}

/// What one run did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KvSwarmReport {
    /// Operations completed by clients.
    pub ops: usize,
    /// Successful versioned Puts.
    pub puts_ok: u64,
    /// Retried mutations answered from a session table (double applications avoided).
    pub duplicates_avoided: u64,
    /// Virtual time simulated.
    pub virtual_ms: u64,
    /// Server steps.
    pub steps: u64,
    /// Membership entries known committed (applied somewhere).
    pub memberships_committed: u64,
    /// What the operator did.
    pub reconfig: ReconfigStats,
}

/// The clients of one run and what they record.
struct Workload {
    /// Versioned Puts and Gets on shared keys.
    versioned: History,
    /// Classic Appends, each client to its own key.
    classic: History,
    /// Tells open-ended clients to finish their current operation and stop.
    stop: Stop,
    /// The put clients' counts.
    counts: Vec<Rc<RefCell<PutCounts>>>,
    /// The appenders' client ids.
    appenders: Vec<u64>,
}

/// Run one seed with `chaos_ms` of faults. Panics, naming the seed, on any
/// violation, on a non-linearizable or undecided history, or if the healed
/// service does not let every client finish.
pub fn run_kv_swarm(seed: u64, chaos_ms: u64) -> KvSwarmReport {
    let o = KvSwarmOptions::from_seed(seed);
    let mut config = WorldConfig::replicated(o.servers + o.spare_servers, true, seed);
    config.joiners = o.spare_servers;
    config.net = o.net.clone();
    config.max_raft_state = o.max_raft_state;
    config.snapshot_rule = o.snapshot_rule;
    config.raft.snapshot_chunk_bytes = o.snapshot_chunk_bytes;
    config.capture_off_loop = o.capture_off_loop;
    config.read_index = o.read_index;
    let mut w: World<KvStore> = World::new(config);
    w.set_service_check(kv_exactly_once);
    let work = add_clients(&mut w, &o);
    let mut operator = Operator::new(o.reconfig_per_mille);
    chaos(&mut w, &o, chaos_ms, &mut operator);
    heal_and_finish(&mut w, &o, &work.stop);
    check_appenders(&mut w, &work);
    assert_versioned_linearizable(&work.versioned, seed);
    assert_classic_linearizable(&work.classic, seed);
    report(&w, &work, operator.stats)
}

/// The put clients and the appenders the options ask for. Separate
/// histories: the versioned and the classic model each see only their own
/// workload's keys.
fn add_clients(w: &mut World<KvStore>, o: &KvSwarmOptions) -> Workload {
    let mut work = Workload {
        versioned: Rc::new(RefCell::new(Vec::new())),
        classic: Rc::new(RefCell::new(Vec::new())),
        stop: Rc::new(RefCell::new(false)),
        counts: Vec::new(),
        appenders: Vec::new(),
    };
    let keys: Vec<String> = (0..o.keys).map(|k| format!("k{k}")).collect();
    for c in 0..o.put_clients as u64 {
        let n = Rc::new(RefCell::new(PutCounts::default()));
        work.counts.push(n.clone());
        let put = OnePut::new(c + 1, keys.clone(), true, work.stop.clone(), n);
        let s = w.rng().next_u64();
        let history = work.versioned.clone();
        let client = ClerkClient::new(c + 1, w.servers(), RETRY_TICKS, s, put, history);
        w.add_client(Box::new(client), None);
    }
    for a in 0..o.append_clients as u64 {
        let me = 10_000 + a;
        let append = Appender::new(me, format!("a{me}"), false, None, work.stop.clone());
        let s = w.rng().next_u64();
        let history = work.classic.clone();
        let client = ClerkClient::new(me, w.servers(), RETRY_TICKS, s, append, history);
        w.add_client(Box::new(client), None);
        work.appenders.push(me);
    }
    work
}

/// `chaos_ms` of faults: every 100 ms maybe re-partition, crash a server,
/// restart one, or change the membership.
fn chaos(w: &mut World<KvStore>, o: &KvSwarmOptions, chaos_ms: u64, operator: &mut Operator) {
    let n = w.servers();
    let mut elapsed = 0;
    while elapsed < chaos_ms {
        w.run_for(100);
        elapsed += 100;
        if w.rng().chance(o.partition_per_mille, 1000) {
            if w.rng().chance(1, 3) {
                w.heal();
            } else {
                super::lab::random_bipartition(w);
            }
        }
        if w.rng().chance(o.crash_per_mille, 1000) {
            let i = w.rng().pick(n);
            w.crash(i);
        }
        if w.rng().chance(o.restart_per_mille, 1000) {
            let down: Vec<usize> = (0..n).filter(|i| !w.is_up(*i)).collect();
            if !down.is_empty() {
                let i = down[w.rng().pick(down.len())];
                w.start(i);
            }
        }
        operator.decide(w);
    }
}

/// Stop the faults, restart every server, heal the network, and require
/// every client to finish.
fn heal_and_finish(w: &mut World<KvStore>, o: &KvSwarmOptions, stop: &Stop) {
    *stop.borrow_mut() = true;
    w.set_net(NetConfig {
        drop_per_mille: 0,
        duplicate_per_mille: 0,
        long_reordering: false,
        ..o.net.clone()
    });
    for i in 0..w.servers() {
        if !w.is_up(i) {
            w.start(i);
        }
    }
    w.heal();
    w.run_until_clients_finish(60_000);
}

/// Every appender's elements exactly once and in order.
fn check_appenders(w: &mut World<KvStore>, work: &Workload) {
    for &me in &work.appenders {
        let done = work
            .classic
            .borrow()
            .iter()
            .filter(|r| {
                r.client == me
                    && matches!(r.op, Op::Append { .. })
                    && r.outcome == Some(Outcome::Ok)
            })
            .count() as u64;
        let get = vec![Op::Get {
            key: format!("a{me}"),
        }];
        let value = match &run_ops(w, get, None, &work.classic, 60_000)[0] {
            Outcome::Value { value, .. } => value.clone(),
            _ => String::new(),
        };
        if let Err(e) = check_appends(&value, me, done) {
            w.fail(format!("appender {me}: {e}"));
        }
    }
}

fn report(w: &World<KvStore>, work: &Workload, reconfig: ReconfigStats) -> KvSwarmReport {
    let ops = work
        .versioned
        .borrow()
        .iter()
        .chain(work.classic.borrow().iter())
        .filter(|r| r.ret.is_some())
        .count();
    let duplicates_avoided = (0..w.servers())
        .filter_map(|i| w.state(i))
        .map(|s| s.duplicates())
        .max()
        .unwrap_or(0);
    KvSwarmReport {
        ops,
        puts_ok: work.counts.iter().map(|c| c.borrow().ok).sum(),
        duplicates_avoided,
        virtual_ms: w.now_ms,
        steps: w.steps,
        memberships_committed: w.checker.memberships_committed(),
        reconfig,
    }
}
