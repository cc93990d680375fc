//! Swarm testing: each seed picks its own cluster size and fault mix
//! (membership changes and leadership transfers included: see
//! [`super::operator`]), runs a chaotic phase with every invariant checked
//! after every step, then heals everything and requires progress within a
//! bound (liveness).

use super::cluster::{Cluster, SimConfig};
use super::lab::cmd;
use super::network::NetConfig;
use super::operator::{Operator, ReconfigStats};
use super::rng::SimRng;
use super::trace::TraceMode;
use core_raft::{Config, Durable, NodeId};
use std::fmt;

/// The fault mix and settings one seed runs with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SwarmOptions {
    /// Cluster size: 3, 5 or 7.
    pub nodes: usize,
    /// Network faults during the chaotic phase.
    pub net: NetConfig,
    /// Out of 1000, per fault decision (every 100 ms): re-partition at random.
    pub partition_per_mille: u64,
    /// Out of 1000, per fault decision: crash a random node.
    pub crash_per_mille: u64,
    /// Out of 1000, per step: crash between two actions of the step.
    pub torn_crash_per_mille: u64,
    /// Out of 1000, per fault decision: restart a crashed node.
    pub restart_per_mille: u64,
    /// Longest virtual time one disk sync takes: sends and applies wait
    /// for it, and a crash loses part of what was not yet synced.
    pub sync_ms_max: u64,
    /// Snapshot interval of the applier (`None`: never snapshot).
    pub snapshot_interval: Option<u64>,
    /// Raft feature switches.
    pub pre_vote: bool,
    /// Raft check-quorum.
    pub check_quorum: bool,
    /// Leader appends a no-op on election.
    pub leader_noop: bool,
    /// Most entries per AppendEntries.
    pub max_entries_per_message: usize,
    /// Most in-flight appends per follower.
    pub max_inflight_messages: usize,
    /// Proposals per second offered to random nodes.
    pub proposals_per_second: u64,
    /// Spare nodes: they start knowing no membership (joiners) and are
    /// added, as learners then voters, by the operator.
    pub spare_nodes: usize,
    /// Out of 1000, per fault decision: the operator changes the
    /// membership or transfers leadership ([`super::operator`]).
    pub reconfig_per_mille: u64,
    /// Size of one InstallSnapshot chunk (small ones split every snapshot
    /// into many chunks, whose loss, duplication and reordering the
    /// transfer must survive).
    pub snapshot_chunk_bytes: usize,
}

impl SwarmOptions {
    /// Derive the options from a seed (swarm testing: each seed explores a
    /// different corner of the configuration space).
    pub fn from_seed(seed: u64) -> SwarmOptions {
        let mut rng = SimRng::new(seed ^ 0x5741_524D);
        let nodes = [3, 5, 7][rng.pick(3)];
        let delay_max = [1, 5, 27, 100][rng.pick(4)];
        SwarmOptions {
            nodes,
            net: NetConfig {
                drop_per_mille: [0, 10, 100, 300][rng.pick(4)],
                duplicate_per_mille: [0, 0, 50, 500][rng.pick(4)],
                delay_min_ms: 0,
                delay_max_ms: delay_max,
                long_reordering: rng.chance(1, 4),
            },
            partition_per_mille: [0, 50, 200][rng.pick(3)],
            crash_per_mille: [0, 50, 200][rng.pick(3)],
            torn_crash_per_mille: [0, 1, 5, 20][rng.pick(4)],
            restart_per_mille: [200, 500, 900][rng.pick(3)],
            sync_ms_max: [0, 1, 5, 20][rng.pick(4)],
            snapshot_interval: [None, Some(3), Some(10), Some(50)][rng.pick(4)],
            pre_vote: rng.chance(3, 4),
            check_quorum: rng.chance(3, 4),
            leader_noop: rng.chance(1, 2),
            max_entries_per_message: [1, 4, 64][rng.pick(3)],
            max_inflight_messages: [1, 2, 8][rng.pick(3)],
            proposals_per_second: [5, 50, 300][rng.pick(3)],
            // Drawn last, so that the options above stay what they were
            // for every seed.
            spare_nodes: [0, 2, 4][rng.pick(3)],
            reconfig_per_mille: [0, 100, 300, 600][rng.pick(4)],
            snapshot_chunk_bytes: [1 << 20, 64, 700][rng.pick(3)],
        }
    }
}

impl fmt::Display for SwarmOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} nodes + {} spare, drop {}‰, dup {}‰, delay ≤{} ms{}, partition {}‰, crash {}‰, torn {}‰, sync ≤{} ms, snapshot {:?}, pre-vote {}, check-quorum {}, noop {}, batch {}, inflight {}, {} proposals/s, reconfig {}‰, snapshot chunks of {} bytes",
            self.nodes,
            self.spare_nodes,
            self.net.drop_per_mille,
            self.net.duplicate_per_mille,
            self.net.delay_max_ms,
            if self.net.long_reordering { " +reorder" } else { "" },
            self.partition_per_mille,
            self.crash_per_mille,
            self.torn_crash_per_mille,
            self.sync_ms_max,
            self.snapshot_interval,
            self.pre_vote,
            self.check_quorum,
            self.leader_noop,
            self.max_entries_per_message,
            self.max_inflight_messages,
            self.proposals_per_second,
            self.reconfig_per_mille,
            self.snapshot_chunk_bytes
        )
    }
}

/// What one swarm run did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SwarmReport {
    /// The seed.
    pub seed: u64,
    /// Entries known committed at the end.
    pub committed: u64,
    /// Terms that had a leader.
    pub leader_terms: usize,
    /// Steps taken by all nodes.
    pub steps: u64,
    /// Virtual time simulated, in milliseconds.
    pub virtual_ms: u64,
    /// Virtual time from healing to the first agreement on every node.
    pub recovery_ms: u64,
    /// Hash of the run's trace (determinism self-check).
    pub trace_hash: u64,
    /// Membership entries known committed (applied somewhere).
    pub memberships_committed: u64,
    /// What the operator did.
    pub reconfig: ReconfigStats,
}

/// Build the cluster a swarm seed runs on: `nodes` bootstrapped voters
/// (ids 0..nodes) and `spare_nodes` joiners after them.
pub fn swarm_cluster(seed: u64, o: &SwarmOptions, trace: TraceMode) -> Cluster {
    let mut raft = Config::new(NodeId(0), vec![NodeId(0)]);
    raft.pre_vote = o.pre_vote;
    raft.check_quorum = o.check_quorum;
    raft.leader_noop = o.leader_noop;
    raft.max_entries_per_message = o.max_entries_per_message;
    raft.max_inflight_messages = o.max_inflight_messages;
    raft.snapshot_chunk_bytes = o.snapshot_chunk_bytes;
    let slots = o.nodes + o.spare_nodes;
    let voters: Vec<NodeId> = (0..o.nodes as u64).map(NodeId).collect();
    let nodes = (0..slots as u64)
        .map(|i| {
            let mut c = raft.clone();
            c.id = NodeId(i);
            c.voters = if (i as usize) < o.nodes {
                voters.clone()
            } else {
                Vec::new()
            };
            (c, Durable::default())
        })
        .collect();
    Cluster::with_nodes(
        SimConfig {
            net: o.net.clone(),
            snapshot_interval: o.snapshot_interval,
            raft,
            sync_ms_max: o.sync_ms_max,
            torn_crash_per_mille: o.torn_crash_per_mille,
            trace,
            ..SimConfig::lab(slots, true, seed)
        },
        nodes,
    )
}

/// Run one swarm seed: `chaos_ms` of faults, then heal and require that a
/// new command commits on every node within the lab's 10 s. Panics (with
/// the seed) on any invariant violation or liveness failure.
pub fn run_swarm(seed: u64, chaos_ms: u64, trace: TraceMode) -> SwarmReport {
    let o = SwarmOptions::from_seed(seed);
    let mut c = swarm_cluster(seed, &o, trace);
    let n = c.len();
    let mut operator = Operator::new(o.reconfig_per_mille);
    let mut next_cmd = 1u64 << 32;
    let mut elapsed = 0;
    while elapsed < chaos_ms {
        // Offer proposals to random live nodes for the next 100 ms.
        for _ in 0..10 {
            let proposals = o.proposals_per_second / 100
                + u64::from(c.rng().below(100) < o.proposals_per_second % 100);
            for _ in 0..proposals {
                let i = c.rng().pick(n);
                if c.is_up(i) {
                    next_cmd += 1;
                    c.propose(i, cmd(next_cmd));
                }
            }
            c.run_for(10);
        }
        elapsed += 100;
        inject_faults(&mut c, &o);
        operator.decide(&mut c);
    }
    // Liveness: heal everything and demand progress.
    c.set_torn_crash_per_mille(0);
    c.set_net(NetConfig {
        drop_per_mille: 0,
        duplicate_per_mille: 0,
        long_reordering: false,
        ..o.net.clone()
    });
    for i in 0..n {
        if !c.is_up(i) {
            c.start(i);
        }
    }
    c.connect_all();
    let healed_at = c.now_ms;
    let voters = drain_backlog(&mut c, &o);
    next_cmd += 1;
    c.one(cmd(next_cmd), voters, true);
    let recovery_ms = c.now_ms - healed_at;
    SwarmReport {
        seed,
        committed: c.checker.committed_len(),
        leader_terms: c.checker.leaders().len(),
        steps: c.steps,
        virtual_ms: c.now_ms,
        recovery_ms,
        trace_hash: c.trace_hash(),
        memberships_committed: c.checker.memberships_committed(),
        reconfig: operator.stats,
    }
}

/// After healing: wait until some leader's whole log is replicated on every
/// member of its membership, allowing 10 s plus time proportional to the
/// backlog; fail otherwise. (Replicated, not applied: without the leader
/// no-op, entries of earlier terms commit only once the next command
/// arrives, Figure 8.) Returns the number of voters of that leader's
/// membership.
fn drain_backlog(c: &mut Cluster, o: &SwarmOptions) -> usize {
    let n = c.len();
    // A pipeline moves `entries × inflight` entries per round trip; allow
    // twice the worst round trip per such window.
    let window = (o.max_entries_per_message * o.max_inflight_messages) as u64;
    let round_trip_ms = 2 * o.net.delay_max_ms + core_raft::DEFAULT_TICK_MS;
    let ms_per_entry = (2 * round_trip_ms).div_ceil(window);
    // The backlog: from the least applied node that some node counts a
    // member (a joiner just added included, a node removed for good not)
    // to the longest log anywhere (a removed leader's included).
    let members: std::collections::BTreeSet<NodeId> = (0..n)
        .filter_map(|i| c.raft(i))
        .flat_map(|r| {
            let m = r.membership();
            m.voters
                .iter()
                .chain(m.learners.iter())
                .copied()
                .collect::<Vec<_>>()
        })
        .collect();
    let last = (0..n)
        .filter_map(|i| c.raft(i).map(|r| r.last_index().0))
        .max()
        .unwrap_or(0);
    let applied = members
        .iter()
        .filter_map(|id| c.find(*id).and_then(|i| c.raft(i)))
        .map(|r| r.applied_index().0)
        .min()
        .unwrap_or(0);
    let deadline = c.now_ms + 10_000 + last.saturating_sub(applied) * ms_per_entry;
    loop {
        // The leader of the highest term (a removed leader may still lead
        // an older one until it hears of the newer).
        let leader = (0..n)
            .filter_map(|i| c.raft(i))
            .filter(|r| r.is_leader())
            .max_by_key(|r| r.term());
        if let Some(leader) = leader {
            let target = leader.last_index();
            let term = leader.last_term();
            let m = leader.membership();
            let everywhere = m.voters.iter().chain(m.learners.iter()).all(|id| {
                c.find(*id)
                    .and_then(|i| c.raft(i))
                    .is_some_and(|r| r.term_at(target) == Some(term))
            });
            if everywhere {
                return m.voters.len();
            }
        }
        if c.now_ms >= deadline {
            c.fail(format!(
                "liveness: the healed cluster did not catch up on a backlog of {} entries in time",
                last - applied
            ));
        }
        c.run_for(100);
    }
}

/// One fault decision: maybe re-partition, crash or restart (any node slot,
/// member or not).
fn inject_faults(c: &mut Cluster, o: &SwarmOptions) {
    let n = c.len();
    if c.rng().chance(o.partition_per_mille, 1000) {
        if c.rng().chance(1, 3) {
            c.connect_all();
        } else {
            let mut a = Vec::new();
            let mut b = Vec::new();
            for i in 0..n {
                if c.rng().chance(1, 2) {
                    a.push(i);
                } else {
                    b.push(i);
                }
            }
            c.partition(&a, &b);
        }
    }
    if c.rng().chance(o.crash_per_mille, 1000) {
        let i = c.rng().pick(n);
        c.crash(i);
    }
    if c.rng().chance(o.restart_per_mille, 1000) {
        let down: Vec<usize> = (0..n).filter(|i| !c.is_up(*i)).collect();
        if !down.is_empty() {
            let i = down[c.rng().pick(down.len())];
            c.start(i);
        }
    }
}
