//! The sharded clerk, sans-IO: key -> shard -> group through the newest
//! configuration it was given, a leader guess per group, retries with
//! timeouts counted in ticks, and one request number sequence across all
//! groups, so that a request retried at a shard's new owner is recognised
//! by the session table that moved with the shard.
//!
//! The clerk does not fetch configurations itself: it asks
//! ([`ShardClerkAction::NeedConfig`]) and its host answers with
//! [`ShardClerkInput::Config`], from whichever controller the service has
//! (the classic replicated one, or the 2025 configuration in a key/value
//! service).

use crate::config::ShardConfig;
use crate::reply::GroupReply;
use crate::sharding::Sharding;
use crate::types::GroupId;
use core_kv::{ClerkOp, ClientId, ClientRequest, NotLeader, Op, Outcome, Seq};
use core_raft::rng::SplitMix64;
use std::collections::{BTreeMap, VecDeque};

/// How a sharded clerk behaves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardClerkConfig {
    /// This client's id; unique among all clients of the service.
    pub client: ClientId,
    /// The service's shards and key hash.
    pub sharding: Sharding,
    /// Ticks to wait for an answer before trying the next server.
    pub retry_ticks: u64,
    /// Seed for the first server tried in each group.
    pub seed: u64,
}

/// Everything that can happen to a sharded clerk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ShardClerkInput {
    /// Perform an operation. Operations run one at a time, in order.
    Invoke(Op),
    /// A configuration (the answer to [`ShardClerkAction::NeedConfig`]; an
    /// older one than the clerk has is ignored).
    Config(ShardConfig),
    /// A group's server answered.
    Reply {
        /// The group.
        gid: GroupId,
        /// The server's name, as the configuration lists it.
        server: String,
        /// The request number answered.
        seq: Seq,
        /// The answer, or "not the leader".
        result: Result<GroupReply, NotLeader>,
    },
    /// A clock tick.
    Tick,
}

/// What a sharded clerk wants done.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ShardClerkAction {
    /// Send `request` to server `server` of group `gid`.
    Send {
        /// The group.
        gid: GroupId,
        /// The server's name, as the configuration lists it.
        server: String,
        /// The request.
        request: ClientRequest,
    },
    /// Fetch the newest configuration and hand it back as
    /// [`ShardClerkInput::Config`].
    NeedConfig,
    /// An invoked operation finished.
    Done {
        /// The operation.
        op: Op,
        /// Its outcome.
        outcome: Outcome,
    },
}

#[derive(Clone, Debug)]
struct Pending {
    op: Op,
    seq: Seq,
    /// Requests sent beyond the first.
    resends: u32,
    /// The group and server index the last request went to.
    gid: GroupId,
    target: usize,
    ticks_left: u64,
    /// Waiting for a configuration before sending again.
    waiting_config: bool,
    /// Servers tried in this group since the last configuration.
    tried: usize,
}

/// A sharded clerk.
#[derive(Clone, Debug)]
pub struct ShardClerk {
    config: ShardClerkConfig,
    rng: SplitMix64,
    seq: Seq,
    shards: Option<ShardConfig>,
    leaders: BTreeMap<GroupId, usize>,
    pending: Option<Pending>,
    queue: VecDeque<Op>,
    out: Vec<ShardClerkAction>,
}

impl ShardClerk {
    /// A clerk with nothing in flight and no configuration yet.
    pub fn new(config: ShardClerkConfig) -> ShardClerk {
        ShardClerk {
            rng: SplitMix64::new(config.seed),
            seq: Seq(0),
            shards: None,
            leaders: BTreeMap::new(),
            pending: None,
            queue: VecDeque::new(),
            out: Vec::new(),
            config,
        }
    }

    /// This clerk's id.
    pub fn client(&self) -> ClientId {
        self.config.client
    }

    /// True if an operation is in flight or queued.
    pub fn busy(&self) -> bool {
        self.pending.is_some() || !self.queue.is_empty()
    }

    /// The newest configuration the clerk has.
    pub fn shard_config(&self) -> Option<&ShardConfig> {
        self.shards.as_ref()
    }

    /// Feed one input; returns the actions to perform.
    pub fn step(&mut self, input: ShardClerkInput) -> Vec<ShardClerkAction> {
        match input {
            ShardClerkInput::Invoke(op) => {
                self.queue.push_back(op);
                if self.pending.is_none() {
                    self.start_next();
                }
            }
            ShardClerkInput::Config(cfg) => self.on_config(cfg),
            ShardClerkInput::Reply {
                gid,
                server,
                seq,
                result,
            } => self.on_reply(gid, &server, seq, result),
            ShardClerkInput::Tick => self.tick(),
        }
        std::mem::take(&mut self.out)
    }

    fn start_next(&mut self) {
        let Some(op) = self.queue.pop_front() else {
            return;
        };
        self.seq.0 += 1;
        self.pending = Some(Pending {
            op,
            seq: self.seq,
            resends: 0,
            gid: GroupId::NONE,
            target: 0,
            ticks_left: 0,
            waiting_config: false,
            tried: 0,
        });
        self.route();
    }

    /// Send the pending operation to the owner of its key's shard, or ask
    /// for a configuration if there is no owner to send to.
    fn route(&mut self) {
        let retry = self.config.retry_ticks.max(1);
        let Some(p) = self.pending.as_mut() else {
            return;
        };
        let shard = self.config.sharding.shard_of(p.op.key());
        let owner = self.shards.as_ref().map(|c| c.owner(shard));
        let servers = owner.and_then(|g| self.shards.as_ref()?.servers(g));
        match (owner, servers) {
            (Some(gid), Some(servers)) if gid != GroupId::NONE && !servers.is_empty() => {
                let n = servers.len();
                p.gid = gid;
                p.target = match self.leaders.get(&gid) {
                    Some(i) if *i < n => *i,
                    _ => self.rng.next_u64() as usize % n,
                };
                p.tried = 0;
                p.waiting_config = false;
                self.send();
            }
            _ => {
                p.waiting_config = true;
                p.ticks_left = retry;
                self.out.push(ShardClerkAction::NeedConfig);
            }
        }
    }

    fn send(&mut self) {
        let retry = self.config.retry_ticks.max(1);
        let client = self.config.client;
        let Some(p) = self.pending.as_mut() else {
            return;
        };
        let Some(server) = self
            .shards
            .as_ref()
            .and_then(|c| c.servers(p.gid))
            .and_then(|s| s.get(p.target))
        else {
            return;
        };
        p.ticks_left = retry;
        self.out.push(ShardClerkAction::Send {
            gid: p.gid,
            server: server.clone(),
            request: ClientRequest {
                client,
                seq: p.seq,
                op: p.op.clone(),
            },
        });
    }

    /// Try the group's next server; after a whole round without an answer,
    /// ask for a newer configuration as well (the group may be gone).
    fn next_server(&mut self) {
        let retry = self.config.retry_ticks.max(1);
        let n = self
            .pending
            .as_ref()
            .and_then(|p| self.shards.as_ref()?.servers(p.gid))
            .map_or(0, |s| s.len());
        let Some(p) = self.pending.as_mut() else {
            return;
        };
        p.resends += 1;
        if n == 0 {
            p.waiting_config = true;
            p.ticks_left = retry;
            self.out.push(ShardClerkAction::NeedConfig);
            return;
        }
        self.leaders.remove(&p.gid);
        p.target = (p.target + 1) % n;
        p.tried += 1;
        if p.tried >= n {
            p.tried = 0;
            self.out.push(ShardClerkAction::NeedConfig);
        }
        self.send();
    }

    fn tick(&mut self) {
        let Some(p) = self.pending.as_mut() else {
            return;
        };
        p.ticks_left = p.ticks_left.saturating_sub(1);
        if p.ticks_left > 0 {
            return;
        }
        if p.waiting_config {
            // The configuration asked for has not come (or changed
            // nothing): ask again, and meanwhile try where it points.
            self.out.push(ShardClerkAction::NeedConfig);
            self.route_or_wait();
        } else {
            self.next_server();
        }
    }

    /// Route if the configuration has an owner for the key, else keep
    /// waiting for one.
    fn route_or_wait(&mut self) {
        let retry = self.config.retry_ticks.max(1);
        let has_owner = match (&self.pending, &self.shards) {
            (Some(p), Some(c)) => {
                c.owner(self.config.sharding.shard_of(p.op.key())) != GroupId::NONE
            }
            _ => false,
        };
        if has_owner {
            if let Some(p) = self.pending.as_mut() {
                p.resends += 1;
            }
            self.route();
        } else if let Some(p) = self.pending.as_mut() {
            p.ticks_left = retry;
        }
    }

    fn on_config(&mut self, cfg: ShardConfig) {
        if cfg.shards.len() != self.config.sharding.shards as usize {
            return; // Not this service's configuration.
        }
        if self.shards.as_ref().is_some_and(|c| c.num > cfg.num) {
            return;
        }
        self.shards = Some(cfg);
        if self.pending.as_ref().is_some_and(|p| p.waiting_config) {
            if let Some(p) = self.pending.as_mut() {
                if p.gid != GroupId::NONE {
                    p.resends += 1;
                }
            }
            self.route();
        }
    }

    fn on_reply(
        &mut self,
        gid: GroupId,
        server: &str,
        seq: Seq,
        result: Result<GroupReply, NotLeader>,
    ) {
        let retry = self.config.retry_ticks.max(1);
        let Some(p) = self.pending.as_mut() else {
            return;
        };
        if seq != p.seq {
            return; // An answer to an earlier operation.
        }
        let index = self
            .shards
            .as_ref()
            .and_then(|c| c.servers(gid))
            .and_then(|s| s.iter().position(|n| n == server));
        let from_target = gid == p.gid && index == Some(p.target) && !p.waiting_config;
        match result {
            Ok(GroupReply::Kv(outcome)) => {
                // An answer from any group counts: the operation was applied
                // (once) where that group's log put it.
                if let Some(i) = index {
                    self.leaders.insert(gid, i);
                }
                let p = self.pending.take().expect("checked above");
                let outcome = if p.resends > 0 {
                    p.op.after_resend(outcome)
                } else {
                    outcome
                };
                self.out.push(ShardClerkAction::Done { op: p.op, outcome });
                self.start_next();
            }
            Ok(GroupReply::WrongGroup) if from_target => {
                if let Some(i) = index {
                    self.leaders.insert(gid, i);
                }
                p.resends += 1;
                p.waiting_config = true;
                p.ticks_left = retry;
                self.out.push(ShardClerkAction::NeedConfig);
            }
            Err(_) if from_target => self.next_server(),
            // Late refusals from servers the clerk has left, and answers
            // that are not for clients.
            _ => {}
        }
    }
}
