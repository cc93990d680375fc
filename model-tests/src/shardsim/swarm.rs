//! Swarm runs of the sharded service (`sim shard`): each seed picks its own
//! version of the service (classic or 2025), groups, clients and fault mix,
//! and keeps reconfiguring while clients run: classic `Join`/`Leave`/`Move`
//! from concurrent controller clerks, or several 2025 controllers racing,
//! some of them cut off mid-change and brought back. Throughout, no shard
//! may be served by two groups (checked every virtual millisecond, with all
//! of each group's own Raft and durability checks); at the end, after the
//! faults stop, every client must finish, every appender's elements must be
//! in its key exactly once and in order (exactly-once across moves), and
//! both histories must be linearizable.

use super::churn::Churner;
use super::endpoints::{CtrlScript, ShardClient};
use super::flavor::{Classic, Driven, Flavor};
use super::lab::{driven_setup, history, join};
use super::world::{ShardSimConfig, ShardWorld};
use crate::kvsim::clients::{check_appends, Appender, History, OnePut, PutCounts, Stop};
use crate::kvsim::lab::{assert_classic_linearizable, assert_versioned_linearizable};
use crate::sim::network::NetConfig;
use crate::sim::rng::SimRng;
use core_kv::{Op, Outcome};
use core_shard::classic::CtrlOp;
use core_shard::{GroupId, ShardId};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;
use std::rc::Rc;

/// The settings one seed runs with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardSwarmOptions {
    /// The 2025 service (else the classic one).
    pub driven: bool,
    /// Groups that come and go (besides one that stays).
    pub groups: usize,
    /// Clients racing versioned Puts on shared keys.
    pub put_clients: usize,
    /// Shared keys of the put clients.
    pub keys: usize,
    /// Clients appending to keys of their own.
    pub append_clients: usize,
    /// Network faults while the chaos lasts.
    pub net: NetConfig,
    /// Out of 1000 per 100 ms: re-partition one group's servers.
    pub partition_per_mille: u64,
    /// Out of 1000 per 100 ms: crash a group server.
    pub crash_per_mille: u64,
    /// Out of 1000 per 100 ms: start a reconfiguration.
    pub reconfigure_per_mille: u64,
    /// Snapshot threshold of the groups (`None`: never).
    pub max_raft_state: Option<usize>,
}

impl ShardSwarmOptions {
    /// Derive the options from a seed.
    pub fn from_seed(seed: u64) -> Self {
        let mut r = SimRng::new(seed ^ 0x5348_4152);
        ShardSwarmOptions {
            driven: r.chance(1, 2),
            groups: 1 + r.pick(3),
            put_clients: [1, 3, 6][r.pick(3)],
            keys: [1, 5, 30][r.pick(3)],
            append_clients: [0, 2, 4][r.pick(3)],
            net: NetConfig {
                drop_per_mille: [0, 50, 100][r.pick(3)],
                duplicate_per_mille: [0, 0, 100][r.pick(3)],
                delay_min_ms: 0,
                delay_max_ms: [1, 10, 27][r.pick(3)],
                long_reordering: false,
            },
            partition_per_mille: [0, 50, 150][r.pick(3)],
            crash_per_mille: [0, 30, 100][r.pick(3)],
            reconfigure_per_mille: [100, 300][r.pick(2)],
            max_raft_state: [None, Some(2000), Some(20_000)][r.pick(3)],
        }
    }
}

impl fmt::Display for ShardSwarmOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}, 1+{} groups, {} put clients on {} keys, {} appenders, drop {}‰, dup {}‰, delay ≤{} ms, partition {}‰, crash {}‰, reconfigure {}‰, snapshot {:?}",
            if self.driven { "2025" } else { "classic" },
            self.groups,
            self.put_clients,
            self.keys,
            self.append_clients,
            self.net.drop_per_mille,
            self.net.duplicate_per_mille,
            self.net.delay_max_ms,
            self.partition_per_mille,
            self.crash_per_mille,
            self.reconfigure_per_mille,
            self.max_raft_state
        )
    }
}

/// What one run did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardSwarmReport {
    /// Client operations completed.
    pub ops: usize,
    /// The configuration number reached.
    pub configs: u64,
    /// Shards that ended on a group other than the one they started on.
    pub shards_moved: usize,
    /// Virtual time simulated.
    pub virtual_ms: u64,
    /// Virtual milliseconds on which the one-group-per-shard invariant was
    /// checked.
    pub checks: u64,
}

/// The clients of one run.
struct Clients {
    versioned: History,
    classic: History,
    stop: Stop,
    appenders: Vec<(u64, usize)>,
}

/// Run one seed with `chaos_ms` of faults and reconfiguration. Panics,
/// naming the seed, on any violation.
pub fn run_shard_swarm(seed: u64, chaos_ms: u64) -> ShardSwarmReport {
    let o = ShardSwarmOptions::from_seed(seed);
    if o.driven {
        run::<Driven>(seed, &o, chaos_ms)
    } else {
        run::<Classic>(seed, &o, chaos_ms)
    }
}

/// The flavour-specific parts of a run.
trait SwarmFlavor: Flavor {
    /// Bring up the service with its first group (which never leaves).
    fn setup(w: &mut ShardWorld<Self>);
    /// Start one reconfiguration (left running; it finishes on its own).
    fn reconfigure(w: &mut ShardWorld<Self>, o: &ShardSwarmOptions, stop: &Stop);
    /// Whether the controller service may crash (the 2025 key/value server
    /// keeps its state in memory, as the lab's does).
    const CTRL_CRASHES: bool;
    /// The configuration number reached.
    fn config_num(w: &mut ShardWorld<Self>) -> u64;
    /// Who owns `shard` now.
    fn owner(w: &mut ShardWorld<Self>, shard: ShardId) -> GroupId;
}

/// Groups that come and go are numbered from here; the one that stays is
/// the first group of each version (1, or 100).
const FIRST_CHURN_GID: u64 = 200;

impl SwarmFlavor for Classic {
    fn setup(w: &mut ShardWorld<Self>) {
        join(w, &[100]);
    }

    fn reconfigure(w: &mut ShardWorld<Self>, o: &ShardSwarmOptions, _stop: &Stop) {
        let g = GroupId(FIRST_CHURN_GID + w.rng().below(o.groups as u64));
        let op = match w.rng().below(3) {
            0 => {
                w.start_group(g);
                CtrlOp::Join(BTreeMap::from([(g, w.group_servers(g))]))
            }
            1 => CtrlOp::Leave(vec![g]),
            _ => {
                let shard = ShardId(w.rng().below(Self::SHARDING.shards as u64) as u32);
                let to = if w.rng().chance(1, 2) {
                    GroupId(100)
                } else {
                    g
                };
                // A move to a group that is not a member is refused as
                // invalid, which is fine here.
                CtrlOp::Move { shard, gid: to }
            }
        };
        let id = (1 << 44) + w.rng().below(1 << 30);
        let seed = w.rng().next_u64();
        let (script, _) = CtrlScript::<Classic>::new(id, seed, vec![op]);
        w.add_endpoint(Box::new(script));
    }

    const CTRL_CRASHES: bool = true;

    fn config_num(w: &mut ShardWorld<Self>) -> u64 {
        super::lab::query(w, None).num.0
    }

    fn owner(w: &mut ShardWorld<Self>, shard: ShardId) -> GroupId {
        super::lab::query(w, None).owner(shard)
    }
}

impl SwarmFlavor for Driven {
    fn setup(w: &mut ShardWorld<Self>) {
        driven_setup(w);
    }

    fn reconfigure(w: &mut ShardWorld<Self>, o: &ShardSwarmOptions, stop: &Stop) {
        // A controller that joins and leaves one group until the chaos
        // ends; several race. Sometimes one is cut off for a while.
        let g = GroupId(FIRST_CHURN_GID + w.rng().below(o.groups as u64));
        w.start_group(g);
        let client = (1 << 44) + w.rng().below(1 << 30);
        let seed = w.rng().next_u64();
        let fresh = w.rng().chance(1, 2);
        let (churner, _) = Churner::new(g, w.group_servers(g), client, seed, fresh, stop.clone());
        let e = w.add_endpoint(Box::new(churner));
        if w.rng().chance(1, 4) {
            w.set_endpoint_connected(e, false);
            let later = w.rng().below(2000);
            w.run_for(later);
            w.set_endpoint_connected(e, true);
        }
    }

    const CTRL_CRASHES: bool = false;

    fn config_num(w: &mut ShardWorld<Self>) -> u64 {
        super::lab::driven_query(w).num.0
    }

    fn owner(w: &mut ShardWorld<Self>, shard: ShardId) -> GroupId {
        super::lab::driven_query(w).owner(shard)
    }
}

fn run<F: SwarmFlavor>(seed: u64, o: &ShardSwarmOptions, chaos_ms: u64) -> ShardSwarmReport {
    let mut config = ShardSimConfig::new(seed, true);
    config.max_raft_state = o.max_raft_state;
    let mut w: ShardWorld<F> = ShardWorld::new(config);
    F::setup(&mut w);
    let before: Vec<GroupId> = F::SHARDING.all().map(|s| F::owner(&mut w, s)).collect();
    let clients = add_clients(&mut w, o);
    let churn_stop: Stop = Rc::new(RefCell::new(false));
    set_faults(&mut w, o.net.clone());
    let mut elapsed = 0;
    while elapsed < chaos_ms {
        w.run_for(100);
        elapsed += 100;
        if w.rng().chance(o.reconfigure_per_mille, 1000) {
            F::reconfigure(&mut w, o, &churn_stop);
        }
        let gids = w.group_ids();
        if w.rng().chance(o.partition_per_mille, 1000) {
            let g = gids[w.rng().pick(gids.len())];
            let group = w.group_mut(g).expect("a listed group");
            let (mut a, mut b) = (Vec::new(), Vec::new());
            for i in 0..group.servers() {
                if group.rng().chance(1, 2) {
                    a.push(i)
                } else {
                    b.push(i)
                }
            }
            if group.rng().chance(1, 3) {
                group.heal();
            } else {
                group.partition(&a, &b);
            }
        }
        if w.rng().chance(o.crash_per_mille, 1000) {
            let g = gids[w.rng().pick(gids.len())];
            let i = w.rng().pick(3);
            if let Some(group) = w.group_mut(g) {
                group.crash(i);
            }
        }
        if F::CTRL_CRASHES && w.rng().chance(o.crash_per_mille, 2000) {
            let i = w.rng().pick(F::CTRL_SERVERS);
            w.ctrl.crash(i);
        }
        // Crashed servers come back after a while.
        if w.rng().chance(1, 3) {
            for g in w.group_ids() {
                let group = w.group_mut(g).expect("a listed group");
                for i in 0..group.servers() {
                    if !group.is_up(i) {
                        group.start(i);
                    }
                }
            }
            for i in 0..F::CTRL_SERVERS {
                if !w.ctrl.is_up(i) {
                    w.ctrl.start(i);
                }
            }
        }
    }
    // Heal: no more faults, every server up, controllers wind down.
    *churn_stop.borrow_mut() = true;
    set_faults(&mut w, NetConfig::reliable());
    for g in w.group_ids() {
        let group = w.group_mut(g).expect("a listed group");
        group.heal();
        for i in 0..group.servers() {
            if !group.is_up(i) {
                group.start(i);
            }
        }
    }
    w.ctrl.heal();
    for i in 0..F::CTRL_SERVERS {
        if !w.ctrl.is_up(i) {
            w.ctrl.start(i);
        }
    }
    *clients.stop.borrow_mut() = true;
    w.run_until(120_000, "every endpoint finishes after healing", |w| {
        w.all_endpoints_finished()
    });
    check_appenders(&mut w, &clients);
    assert_versioned_linearizable(&clients.versioned, seed);
    assert_classic_linearizable(&clients.classic, seed);
    let configs = F::config_num(&mut w);
    let shards_moved = F::SHARDING
        .all()
        .filter(|s| F::owner(&mut w, *s) != before[s.0 as usize])
        .count();
    let ops = clients
        .versioned
        .borrow()
        .iter()
        .chain(clients.classic.borrow().iter())
        .filter(|r| r.ret.is_some())
        .count();
    ShardSwarmReport {
        ops,
        configs,
        shards_moved,
        virtual_ms: w.now_ms,
        checks: w.checks,
    }
}

fn set_faults<F: Flavor>(w: &mut ShardWorld<F>, net: NetConfig) {
    w.ctrl.set_net(net.clone());
    for g in w.group_ids() {
        if let Some(group) = w.group_mut(g) {
            group.set_net(net.clone());
        }
    }
}

fn add_clients<F: Flavor>(w: &mut ShardWorld<F>, o: &ShardSwarmOptions) -> Clients {
    let mut c = Clients {
        versioned: history(),
        classic: history(),
        stop: Rc::new(RefCell::new(false)),
        appenders: Vec::new(),
    };
    let keys: Vec<String> = (0..o.keys).map(|k| format!("k{k}")).collect();
    for i in 0..o.put_clients as u64 {
        let counts = Rc::new(RefCell::new(PutCounts::default()));
        let put = OnePut::new(i + 1, keys.clone(), true, c.stop.clone(), counts);
        let seed = w.rng().next_u64();
        let client = ShardClient::<F, _>::new(i + 1, seed, put, c.versioned.clone());
        w.add_endpoint(Box::new(client));
    }
    for a in 0..o.append_clients as u64 {
        let me = 10_000 + a;
        let append = Appender::new(me, format!("a{me}"), false, None, c.stop.clone());
        let seed = w.rng().next_u64();
        let client = ShardClient::<F, _>::new(me, seed, append, c.classic.clone());
        let e = w.add_endpoint(Box::new(client));
        c.appenders.push((me, e));
    }
    c
}

/// Every appender's acknowledged elements in its key exactly once, in
/// order.
fn check_appenders<F: Flavor>(w: &mut ShardWorld<F>, c: &Clients) {
    for &(me, _) in &c.appenders {
        let done = c
            .classic
            .borrow()
            .iter()
            .filter(|r| {
                r.client == me
                    && matches!(r.op, Op::Append { .. })
                    && r.outcome == Some(Outcome::Ok)
            })
            .count() as u64;
        let key = format!("a{me}");
        let value = match &w.run_ops(vec![Op::Get { key }], &c.classic, 60_000)[0] {
            Outcome::Value { value, .. } => value.clone(),
            _ => String::new(),
        };
        if let Err(e) = check_appends(&value, me, done) {
            w.fail(format!("appender {me}: {e}"));
        }
    }
}
