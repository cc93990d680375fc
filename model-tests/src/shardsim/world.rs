//! The simulated sharded service: one [`World`] for the controller service
//! and one per shard group, run in lockstep on one virtual clock, plus
//! endpoints outside them (clerks, classic agents, 2025 controllers) that
//! talk to them through [`Port`]s.
//!
//! Each world keeps all of its own checks (Raft's invariants, persist
//! before send, lossy disks, the node shell on every server). On top, after
//! every virtual millisecond, the service-level invariant: **at most one
//! group serves a shard at any instant**, judged on each group's most
//! advanced replica (a replica that has applied less than its group
//! already has speaks for an older instant, so it is not asked).

use super::flavor::Flavor;
use super::port::{port, Port, PortClient};
use crate::kvsim::{Answer, World, WorldConfig};
use crate::sim::network::NetConfig;
use crate::sim::rng::SimRng;
use core_kv::{Rsm, StateMachine};
use core_raft::LogIndex;
use core_shard::{GroupId, ShardId};
use std::collections::BTreeMap;

/// How to build a simulated sharded service.
#[derive(Clone, Debug)]
pub struct ShardSimConfig {
    /// The run's seed.
    pub seed: u64,
    /// Reliable network (else the labs' unreliable one), everywhere.
    pub reliable: bool,
    /// Servers per group.
    pub group_size: usize,
    /// Groups snapshot above this many bytes of Raft state (`None`: never).
    pub max_raft_state: Option<usize>,
    /// Virtual milliseconds per tick.
    pub tick_ms: u64,
    /// Groups answer Gets through ReadIndex (else through the log, as the
    /// lab's groups do).
    pub read_index: bool,
}

impl ShardSimConfig {
    /// The labs' setting: groups of 3, no snapshots.
    pub fn new(seed: u64, reliable: bool) -> Self {
        ShardSimConfig {
            seed,
            reliable,
            group_size: 3,
            max_raft_state: None,
            tick_ms: core_raft::DEFAULT_TICK_MS,
            read_index: true,
        }
    }
}

/// The name of server `i` of group `gid`, as configurations list it.
pub fn server_name(gid: GroupId, i: usize) -> String {
    format!("g{}-{}", gid.0, i)
}

/// The group and index a [`server_name`] stands for.
pub fn parse_server_name(name: &str) -> Option<(GroupId, usize)> {
    let (g, i) = name.strip_prefix('g')?.split_once('-')?;
    Some((GroupId(g.parse().ok()?), i.parse().ok()?))
}

/// An endpoint's connections: one port into the controller service and
/// one into each group.
pub struct Ports<F: Flavor> {
    ctrl: (Port<F::Ctrl>, usize),
    groups: BTreeMap<GroupId, (Port<F::Group>, usize)>,
}

/// What an endpoint sees and can do during its step.
pub struct EndpointIo<'a, F: Flavor> {
    ports: &'a Ports<F>,
    groups: &'a BTreeMap<GroupId, GroupSlot<F>>,
}

impl<F: Flavor> EndpointIo<'_, F> {
    /// Send `op` to controller server `server`, tagged `id`.
    pub fn send_ctrl(&self, server: usize, id: u64, op: <F::Ctrl as StateMachine>::Op) {
        self.ports.ctrl.0.borrow_mut().send(server, id, op);
    }

    /// Send `op` to server `server` of group `gid`, tagged `id` (dropped if
    /// the group does not exist).
    pub fn send_group(
        &self,
        gid: GroupId,
        server: usize,
        id: u64,
        op: <F::Group as StateMachine>::Op,
    ) {
        if let Some((p, _)) = self.ports.groups.get(&gid) {
            p.borrow_mut().send(server, id, op);
        }
    }

    /// Send `op` to every server of group `gid` named in `servers` (names
    /// of other groups are skipped); only the leader will answer it. For
    /// migration steps and agent requests, which are safe to deliver twice.
    pub fn broadcast_group(
        &self,
        gid: GroupId,
        servers: &[String],
        op: &<F::Group as StateMachine>::Op,
    ) where
        <F::Group as StateMachine>::Op: Clone,
    {
        for name in servers {
            if let Some((g, i)) = parse_server_name(name) {
                if g == gid {
                    self.send_group(g, i, 0, op.clone());
                }
            }
        }
    }

    /// Answers from the controller service: (server, id, answer).
    pub fn ctrl_answers(&self) -> Vec<(usize, u64, Answer<F::Ctrl>)> {
        self.ports.ctrl.0.borrow_mut().take_answers()
    }

    /// Answers from the groups: (group, server, id, answer).
    pub fn group_answers(&self) -> Vec<(GroupId, usize, u64, Answer<F::Group>)> {
        let mut all = Vec::new();
        for (gid, (p, _)) in &self.ports.groups {
            for (server, id, answer) in p.borrow_mut().take_answers() {
                all.push((*gid, server, id, answer));
            }
        }
        all
    }

    /// Server `i` of group `gid`, if up.
    pub fn replica(&self, gid: GroupId, i: usize) -> Option<&Rsm<F::Group>> {
        self.groups.get(&gid)?.world.replica(i)
    }

    /// Number of controller servers.
    pub fn ctrl_servers(&self) -> usize {
        F::CTRL_SERVERS
    }
}

/// Something outside the worlds: a clerk, an agent, a controller library.
pub trait Endpoint<F: Flavor> {
    /// One virtual millisecond passed; `tick` is true on the endpoints'
    /// clock ticks.
    fn step(&mut self, now_ms: u64, tick: bool, io: &EndpointIo<'_, F>);
    /// True once the endpoint has nothing more to do.
    fn finished(&self) -> bool;
}

struct EndpointSlot<F: Flavor> {
    endpoint: Box<dyn Endpoint<F>>,
    ports: Ports<F>,
    connected: bool,
    /// The group whose agent this is (removed with the group).
    agent_of: Option<GroupId>,
}

/// One shard group: its world, and the highest log index any of its
/// replicas has applied.
pub struct GroupSlot<F: Flavor> {
    /// The group's servers.
    pub world: World<F::Group>,
    max_applied: LogIndex,
}

/// The simulated sharded service.
pub struct ShardWorld<F: Flavor> {
    /// Virtual time in milliseconds.
    pub now_ms: u64,
    config: ShardSimConfig,
    rng: SimRng,
    /// The controller service.
    pub ctrl: World<F::Ctrl>,
    groups: BTreeMap<GroupId, GroupSlot<F>>,
    endpoints: Vec<Option<EndpointSlot<F>>>,
    /// Service-level checks run so far (virtual milliseconds checked).
    pub checks: u64,
}

impl<F: Flavor> ShardWorld<F> {
    /// A service with its controller and no groups.
    pub fn new(config: ShardSimConfig) -> Self {
        let mut rng = SimRng::new(config.seed);
        let ctrl_config = WorldConfig {
            tick_ms: config.tick_ms,
            net: net(config.reliable),
            ..if F::CTRL_SERVERS == 1 {
                WorldConfig::single(config.reliable, rng.next_u64())
            } else {
                WorldConfig::replicated(F::CTRL_SERVERS, config.reliable, rng.next_u64())
            }
        };
        ShardWorld {
            now_ms: 0,
            ctrl: World::with_state(ctrl_config, F::new_ctrl),
            groups: BTreeMap::new(),
            endpoints: Vec::new(),
            rng,
            config,
            checks: 0,
        }
    }

    /// The run's seed.
    pub fn seed(&self) -> u64 {
        self.config.seed
    }

    /// The world's RNG (scenario choices that must replay).
    pub fn rng(&mut self) -> &mut SimRng {
        &mut self.rng
    }

    /// The service's settings.
    pub fn config(&self) -> &ShardSimConfig {
        &self.config
    }

    /// Stop the run with a report naming the seed.
    pub fn fail(&self, what: String) -> ! {
        panic!(
            "shard sim seed {}: at {} ms: {what}",
            self.config.seed, self.now_ms
        )
    }

    /// The servers of group `gid`, as configurations name them.
    pub fn group_servers(&self, gid: GroupId) -> Vec<String> {
        (0..self.config.group_size)
            .map(|i| server_name(gid, i))
            .collect()
    }

    /// Group ids that have a world (running or shut down).
    pub fn group_ids(&self) -> Vec<GroupId> {
        self.groups.keys().copied().collect()
    }

    /// Group `gid`'s servers.
    pub fn group(&self, gid: GroupId) -> Option<&World<F::Group>> {
        self.groups.get(&gid).map(|g| &g.world)
    }

    /// Group `gid`'s servers, to inject faults.
    pub fn group_mut(&mut self, gid: GroupId) -> Option<&mut World<F::Group>> {
        self.groups.get_mut(&gid).map(|g| &mut g.world)
    }

    /// Start group `gid`: a new one from scratch, or, if it exists, every
    /// server of it that is down, from its disk.
    pub fn start_group(&mut self, gid: GroupId) {
        if let Some(slot) = self.groups.get_mut(&gid) {
            for i in 0..slot.world.servers() {
                if !slot.world.is_up(i) {
                    slot.world.start(i);
                }
            }
            return;
        }
        let wc = WorldConfig {
            tick_ms: self.config.tick_ms,
            max_raft_state: self.config.max_raft_state,
            read_index: self.config.read_index,
            start_ms: self.now_ms,
            ..WorldConfig::replicated(
                self.config.group_size,
                self.config.reliable,
                self.rng.next_u64(),
            )
        };
        let mut world = World::with_state(wc, move || F::new_group(gid));
        world.set_service_check(exactly_once::<F>);
        // Every endpoint gets a port into the new group.
        for slot in self.endpoints.iter_mut().flatten() {
            let p = port::<F::Group>();
            let reach: Option<&[usize]> = if slot.connected { None } else { Some(&[]) };
            let c = world.add_client(Box::new(PortClient(p.clone())), reach);
            slot.ports.groups.insert(gid, (p, c));
        }
        self.groups.insert(
            gid,
            GroupSlot {
                world,
                max_applied: LogIndex(0),
            },
        );
        for i in 0..self.config.group_size {
            let seed = self.rng.next_u64();
            if let Some(agent) = F::group_agent(gid, i, seed) {
                let e = self.add_endpoint(agent);
                if let Some(slot) = self.endpoints[e].as_mut() {
                    slot.agent_of = Some(gid);
                }
            }
        }
    }

    /// Crash every server of group `gid` (the lab's `ShutdownGroup`); its
    /// disks are kept for [`ShardWorld::start_group`].
    pub fn shutdown_group(&mut self, gid: GroupId) {
        if let Some(slot) = self.groups.get_mut(&gid) {
            for i in 0..slot.world.servers() {
                slot.world.shutdown(i);
            }
        }
    }

    /// Shut group `gid` down and forget it, disks included (the 2025
    /// tester's `ExitGroup`).
    pub fn exit_group(&mut self, gid: GroupId) {
        self.shutdown_group(gid);
        self.groups.remove(&gid);
        for e in 0..self.endpoints.len() {
            let agent = self.endpoints[e]
                .as_ref()
                .is_some_and(|s| s.agent_of == Some(gid));
            if agent {
                self.endpoints[e] = None;
            } else if let Some(slot) = self.endpoints[e].as_mut() {
                slot.ports.groups.remove(&gid);
            }
        }
    }

    /// Add an endpoint, connected to everything; returns its index.
    pub fn add_endpoint(&mut self, endpoint: Box<dyn Endpoint<F>>) -> usize {
        let p = port::<F::Ctrl>();
        let c = self.ctrl.add_client(Box::new(PortClient(p.clone())), None);
        let mut groups = BTreeMap::new();
        for (gid, slot) in self.groups.iter_mut() {
            let gp = port::<F::Group>();
            let gc = slot
                .world
                .add_client(Box::new(PortClient(gp.clone())), None);
            groups.insert(*gid, (gp, gc));
        }
        self.endpoints.push(Some(EndpointSlot {
            endpoint,
            ports: Ports {
                ctrl: (p, c),
                groups,
            },
            connected: true,
            agent_of: None,
        }));
        self.endpoints.len() - 1
    }

    /// Remove endpoint `e` (its ports stay silent).
    pub fn remove_endpoint(&mut self, e: usize) {
        if let Some(slot) = self.endpoints[e].take() {
            self.ctrl.remove_client(slot.ports.ctrl.1);
            for (gid, (_, c)) in slot.ports.groups {
                if let Some(g) = self.groups.get_mut(&gid) {
                    g.world.remove_client(c);
                }
            }
        }
    }

    /// Cut endpoint `e` off from every server, or reconnect it (the
    /// tester's `DisconnectAll` / `ConnectAll` on a clerk's `Clnt`).
    pub fn set_endpoint_connected(&mut self, e: usize, connected: bool) {
        let Some(slot) = self.endpoints[e].as_mut() else {
            return;
        };
        slot.connected = connected;
        let all: Vec<usize> = (0..F::CTRL_SERVERS).collect();
        self.ctrl
            .set_reach(slot.ports.ctrl.1, if connected { &all } else { &[] });
        for (gid, (_, c)) in &slot.ports.groups {
            if let Some(g) = self.groups.get_mut(gid) {
                let all: Vec<usize> = (0..g.world.servers()).collect();
                g.world.set_reach(*c, if connected { &all } else { &[] });
            }
        }
    }

    /// True once endpoint `e` is finished (or gone).
    pub fn endpoint_finished(&self, e: usize) -> bool {
        self.endpoints[e]
            .as_ref()
            .is_none_or(|s| s.endpoint.finished())
    }

    /// True once every endpoint is finished.
    pub fn all_endpoints_finished(&self) -> bool {
        (0..self.endpoints.len()).all(|e| self.endpoint_finished(e))
    }

    /// Change every world's network faults.
    pub fn set_reliable(&mut self, reliable: bool) {
        self.config.reliable = reliable;
        self.ctrl.set_net(net(reliable));
        for g in self.groups.values_mut() {
            g.world.set_net(net(reliable));
        }
    }

    /// Advance virtual time by `ms`, checking the service's invariant after
    /// every millisecond.
    pub fn run_for(&mut self, ms: u64) {
        for _ in 0..ms {
            self.now_ms += 1;
            let now = self.now_ms;
            self.ctrl.run_for(now - self.ctrl.now_ms);
            for g in self.groups.values_mut() {
                g.world.run_for(now - g.world.now_ms);
            }
            let tick = now.is_multiple_of(self.config.tick_ms);
            for e in 0..self.endpoints.len() {
                if let Some(mut slot) = self.endpoints[e].take() {
                    let io = EndpointIo {
                        ports: &slot.ports,
                        groups: &self.groups,
                    };
                    slot.endpoint.step(now, tick, &io);
                    self.endpoints[e] = Some(slot);
                }
            }
            self.check_one_server_per_shard();
        }
    }

    /// Run until `done` holds, failing after `limit_ms`.
    pub fn run_until(&mut self, limit_ms: u64, what: &str, done: impl Fn(&Self) -> bool) {
        let deadline = self.now_ms + limit_ms;
        while !done(self) {
            if self.now_ms >= deadline {
                self.fail(format!("{what}: not done within {limit_ms} ms"));
            }
            self.run_for(10);
        }
    }

    /// Run until endpoint `e` is finished, failing after `limit_ms`.
    pub fn run_until_finished(&mut self, e: usize, limit_ms: u64) {
        self.run_until(limit_ms, &format!("endpoint {e}"), |w| {
            w.endpoint_finished(e)
        });
    }

    /// The state of group `gid` as of its most advanced up replica, if that
    /// replica has applied everything any replica of the group ever has.
    pub fn group_state(&self, gid: GroupId) -> Option<&F::Group> {
        let slot = self.groups.get(&gid)?;
        representative(slot).map(|r| r.state())
    }

    /// The invariant: no shard is served by two groups at once.
    fn check_one_server_per_shard(&mut self) {
        let mut servers: BTreeMap<ShardId, GroupId> = BTreeMap::new();
        for (gid, slot) in self.groups.iter_mut() {
            for i in 0..slot.world.servers() {
                if let Some(r) = slot.world.replica(i) {
                    slot.max_applied = slot.max_applied.max(r.raft().applied_index());
                }
            }
            let Some(r) = representative(slot) else {
                continue;
            };
            for shard in F::serving(r.state()) {
                if let Some(other) = servers.insert(shard, *gid) {
                    let (g, o) = (*gid, other);
                    self.fail(format!("{shard} is served by both {o} and {g}"));
                }
            }
        }
        self.checks += 1;
    }

    /// Per group server: persisted Raft state plus snapshot, in bytes,
    /// summed over every group (the challenge-1 bound).
    pub fn total_group_state_bytes(&self) -> usize {
        self.groups
            .values()
            .flat_map(|g| g.world.disk_sizes())
            .map(|(r, s)| r + s)
            .sum()
    }

    /// The largest snapshot of group `gid` (the lab's `SnapshotSize`).
    pub fn snapshot_size(&self, gid: GroupId) -> usize {
        self.groups
            .get(&gid)
            .map_or(0, |g| g.world.max_snapshot_size())
    }

    /// The largest persisted Raft state of group `gid` (the lab's `LogSize`).
    pub fn raft_state_size(&self, gid: GroupId) -> usize {
        self.groups
            .get(&gid)
            .map_or(0, |g| g.world.max_raft_state_size())
    }
}

/// Exactly-once, checked on a group replica after every step that applied
/// entries: an appended element (the `Appender` workload's `x <client>
/// <n> y`, unique per client and request) occurs at most once in its key,
/// whichever groups the shard has passed through.
fn exactly_once<F: Flavor>(group: &F::Group, applied: &[core_raft::Entry]) -> Result<(), String> {
    for e in applied {
        let core_raft::Payload::Command(data) = &e.payload else {
            continue;
        };
        let op: <F::Group as StateMachine>::Op = postcard::from_bytes(data)
            .map_err(|err| format!("entry {} does not decode: {err}", e.index))?;
        let Some(req) = F::client_request(&op) else {
            continue;
        };
        let core_kv::Op::Append { key, value } = &req.op else {
            continue;
        };
        if !(value.starts_with("x ") && value.ends_with(" y")) {
            continue;
        }
        let shard = F::SHARDING.shard_of(key);
        let Some(data) = F::shard_data(group, shard) else {
            continue;
        };
        if let core_kv::Outcome::Value { value: current, .. } =
            data.read(&core_kv::Op::Get { key: key.clone() })
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
    Ok(())
}

/// A group's most advanced up replica, if it has applied as far as the
/// group ever has.
fn representative<F: Flavor>(slot: &GroupSlot<F>) -> Option<&Rsm<F::Group>> {
    (0..slot.world.servers())
        .filter_map(|i| slot.world.replica(i))
        .filter(|r| r.raft().applied_index() >= slot.max_applied)
        .max_by_key(|r| r.raft().applied_index())
}

fn net(reliable: bool) -> NetConfig {
    if reliable {
        NetConfig::reliable()
    } else {
        NetConfig::unreliable()
    }
}
