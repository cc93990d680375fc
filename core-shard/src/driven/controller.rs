//! The 2025 shard controller: a client library, sans-IO, that keeps the
//! configuration in a key/value service with versioned Puts and moves
//! shards between groups itself.
//!
//! Two keys hold its state: [`CONFIG_KEY`], the configuration in force, and
//! [`NEXT_KEY`], the configuration being moved to. A change writes the next
//! configuration first (a versioned Put, so of several controllers racing
//! for the same number exactly one wins), then moves every shard whose owner
//! changes (freeze at the old owner, install at the new one, delete the old
//! copy), and only then writes it as the
//! configuration in force. A controller that dies half-way leaves `next`
//! ahead of `config`; the next controller to start
//! ([`Call::InitController`]) finishes the same change, since both keys say
//! exactly what it was. A superseded controller that comes back can undo
//! nothing: its final Put carries a version that no longer matches, and the
//! groups refuse its migration steps, which carry an older configuration
//! number than the shards' latest.

use super::group::{GroupOp, FIRST_CONFIG, FIRST_GROUP};
use crate::config::ShardConfig;
use crate::reply::{GroupReply, MigrationStep, Refusal, ShardData};
use crate::types::{GroupId, ShardId};
use core_kv::{
    Clerk, ClerkAction, ClerkConfig, ClerkInput, ClientReply, ClientRequest, Op, Outcome, Version,
};
use core_raft::NodeId;
use std::collections::BTreeMap;

/// The key holding the configuration in force.
pub const CONFIG_KEY: &str = "shardctrler/config";
/// The key holding the configuration being moved to.
pub const NEXT_KEY: &str = "shardctrler/next";

/// What a caller asks the controller to do. One call runs at a time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Call {
    /// Store the first configuration (the tester's `InitConfig`). Does
    /// nothing if one is stored already.
    InitConfig(ShardConfig),
    /// Finish a change a previous controller left half done (the tester's
    /// `InitController`).
    InitController,
    /// Move to `new`, which must be the configuration in force with its
    /// number plus one (the tester's `ChangeConfigTo`).
    ChangeConfigTo(ShardConfig),
    /// Read the configuration in force.
    Query,
}

/// How a call ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallResult {
    /// Done: the configuration in force is the one asked for (or, for
    /// `InitController`, any half-done change is finished).
    Done,
    /// The configuration in force.
    Config(ShardConfig),
    /// Another controller changed the configuration first; nothing of this
    /// call took effect. Query and try again if the change is still wanted.
    Superseded,
    /// The call cannot be carried out (a malformed configuration, or the
    /// store holds no configuration yet). Nothing changed.
    Invalid(String),
}

/// Settings of one controller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CtrlConfig {
    /// The clerk for the key/value service holding the configuration (its
    /// client id must be unique among all clients of that service).
    pub kv: ClerkConfig,
    /// Ticks between resends of an unanswered migration step.
    pub retry_ticks: u64,
}

/// Everything that can happen to a controller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CtrlInput {
    /// Start a call (the previous one must have finished).
    Invoke(Call),
    /// The key/value service answered.
    Kv {
        /// The server.
        from: NodeId,
        /// Its answer.
        reply: ClientReply,
    },
    /// A shard group answered a migration step (answers saying "not the
    /// leader" need not be passed on).
    Group(GroupReply),
    /// A clock tick.
    Tick,
}

/// What a controller wants done.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CtrlAction {
    /// Send a request to the key/value service.
    Kv {
        /// The server.
        to: NodeId,
        /// The request.
        request: ClientRequest,
    },
    /// Send a migration step to the leader of group `gid` (to any or all of
    /// its servers: steps are safe to deliver twice).
    Group {
        /// The group.
        gid: GroupId,
        /// Its servers.
        servers: Vec<String>,
        /// The step.
        op: GroupOp,
    },
    /// The call finished.
    Done(CallResult),
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Step {
    Freeze,
    Install(ShardData),
    Delete,
}

#[derive(Clone, Debug)]
enum Phase {
    Idle,
    InitPutConfig(ShardConfig),
    InitPutNext,
    Query,
    /// Reading `next`; `goal` is `None` for `InitController`.
    ReadNext {
        goal: Option<ShardConfig>,
    },
    ReadConfig {
        goal: Option<ShardConfig>,
        /// `None` if `next` was never stored (an `InitConfig` that stopped
        /// after storing the configuration): no change is under way, and
        /// the first change creates it (a Put at version 0).
        next: Option<ShardConfig>,
        next_version: Version,
    },
    PutNext {
        goal: ShardConfig,
        from: ShardConfig,
        config_version: Version,
    },
    /// The Put of `next` came back `ErrMaybe`: read it to see whose it is.
    ConfirmNext {
        goal: ShardConfig,
        from: ShardConfig,
        config_version: Version,
    },
    Moving {
        /// What the call returns once the change is stored: `Done` for
        /// its own change or `InitController`, `Superseded` for a
        /// `ChangeConfigTo` that had to finish someone else's first.
        result: CallResult,
        from: ShardConfig,
        to: ShardConfig,
        config_version: Version,
        steps: BTreeMap<ShardId, Step>,
        ticks_left: u64,
    },
    PutConfig {
        result: CallResult,
    },
}

/// A 2025 shard controller.
pub struct Controller {
    config: CtrlConfig,
    clerk: Clerk,
    phase: Phase,
    out: Vec<CtrlAction>,
}

impl Controller {
    /// A controller with no call in progress.
    pub fn new(config: CtrlConfig) -> Controller {
        Controller {
            clerk: Clerk::new(config.kv.clone()),
            config,
            phase: Phase::Idle,
            out: Vec::new(),
        }
    }

    /// True while a call is in progress.
    pub fn busy(&self) -> bool {
        !matches!(self.phase, Phase::Idle)
    }

    /// Feed one input; returns the actions to carry out, in order.
    pub fn step(&mut self, input: CtrlInput) -> Vec<CtrlAction> {
        match input {
            CtrlInput::Invoke(call) => self.invoke(call),
            CtrlInput::Kv { from, reply } => {
                let actions = self.clerk.step(ClerkInput::Reply { from, reply });
                self.on_clerk(actions);
            }
            CtrlInput::Group(reply) => self.on_group(reply),
            CtrlInput::Tick => {
                let actions = self.clerk.step(ClerkInput::Tick);
                self.on_clerk(actions);
                self.tick();
            }
        }
        std::mem::take(&mut self.out)
    }

    fn invoke(&mut self, call: Call) {
        assert!(!self.busy(), "a controller runs one call at a time");
        match call {
            Call::InitConfig(cfg) => {
                if let Err(e) = check_first(&cfg) {
                    return self.finish(CallResult::Invalid(e));
                }
                self.kv(put(CONFIG_KEY, &cfg, Version(0)));
                self.phase = Phase::InitPutConfig(cfg);
            }
            Call::Query => {
                self.kv(get(CONFIG_KEY));
                self.phase = Phase::Query;
            }
            Call::InitController => {
                self.kv(get(NEXT_KEY));
                self.phase = Phase::ReadNext { goal: None };
            }
            Call::ChangeConfigTo(goal) => {
                self.kv(get(NEXT_KEY));
                self.phase = Phase::ReadNext { goal: Some(goal) };
            }
        }
    }

    fn kv(&mut self, op: Op) {
        let actions = self.clerk.step(ClerkInput::Invoke(op));
        self.on_clerk(actions);
    }

    fn finish(&mut self, result: CallResult) {
        self.phase = Phase::Idle;
        self.out.push(CtrlAction::Done(result));
    }

    fn on_clerk(&mut self, actions: Vec<ClerkAction>) {
        for a in actions {
            match a {
                ClerkAction::Send { to, request } => self.out.push(CtrlAction::Kv { to, request }),
                ClerkAction::Done { outcome, .. } => self.on_kv(outcome),
            }
        }
    }

    /// The answer to the key/value operation the current phase issued.
    fn on_kv(&mut self, outcome: Outcome) {
        match std::mem::replace(&mut self.phase, Phase::Idle) {
            Phase::Idle => {}
            Phase::InitPutConfig(cfg) => {
                self.kv(put(NEXT_KEY, &cfg, Version(0)));
                self.phase = Phase::InitPutNext;
            }
            Phase::InitPutNext => self.finish(CallResult::Done),
            Phase::Query => match decode(outcome) {
                Ok((cfg, _)) => self.finish(CallResult::Config(cfg)),
                Err(e) => self.finish(CallResult::Invalid(e)),
            },
            Phase::ReadNext { goal } => {
                let (next, next_version) = match outcome {
                    Outcome::ErrNoKey => (None, Version(0)),
                    other => match decode(other) {
                        Ok((next, version)) => (Some(next), version),
                        Err(e) => return self.finish(CallResult::Invalid(e)),
                    },
                };
                self.kv(get(CONFIG_KEY));
                self.phase = Phase::ReadConfig {
                    goal,
                    next,
                    next_version,
                };
            }
            Phase::ReadConfig {
                goal,
                next,
                next_version,
            } => {
                let (current, config_version) = match decode(outcome) {
                    Ok(c) => c,
                    Err(e) => return self.finish(CallResult::Invalid(e)),
                };
                let next = next.unwrap_or_else(|| current.clone());
                if next.num > current.num {
                    // A change was left half done (or is under way
                    // elsewhere): finish it; the steps are idempotent.
                    let result = match goal {
                        Some(_) => CallResult::Superseded,
                        None => CallResult::Done,
                    };
                    self.start_moving(result, current, next, config_version);
                } else if next.num < current.num {
                    // Both keys moved between the two reads.
                    match goal {
                        None => {
                            self.kv(get(NEXT_KEY));
                            self.phase = Phase::ReadNext { goal: None };
                        }
                        Some(_) => self.finish(CallResult::Superseded),
                    }
                } else {
                    match goal {
                        None => self.finish(CallResult::Done),
                        Some(goal) if goal.num != current.num.next() => {
                            self.finish(CallResult::Superseded)
                        }
                        Some(goal) => {
                            if let Err(e) = check_change(&current, &goal) {
                                return self.finish(CallResult::Invalid(e));
                            }
                            self.kv(put(NEXT_KEY, &goal, next_version));
                            self.phase = Phase::PutNext {
                                goal,
                                from: current,
                                config_version,
                            };
                        }
                    }
                }
            }
            Phase::PutNext {
                goal,
                from,
                config_version,
            } => match outcome {
                Outcome::Ok => self.start_moving(CallResult::Done, from, goal, config_version),
                Outcome::ErrMaybe => {
                    self.kv(get(NEXT_KEY));
                    self.phase = Phase::ConfirmNext {
                        goal,
                        from,
                        config_version,
                    };
                }
                _ => self.finish(CallResult::Superseded),
            },
            Phase::ConfirmNext {
                goal,
                from,
                config_version,
            } => match decode(outcome) {
                Ok((next, _)) if next == goal => {
                    self.start_moving(CallResult::Done, from, goal, config_version)
                }
                _ => self.finish(CallResult::Superseded),
            },
            Phase::PutConfig { result } => {
                // Ok: done. ErrVersion / ErrMaybe: someone else stored this
                // configuration (or a newer one) first; either way the
                // change is complete and nothing is undone.
                self.finish(result);
            }
            moving @ Phase::Moving { .. } => self.phase = moving,
        }
    }

    fn start_moving(
        &mut self,
        result: CallResult,
        from: ShardConfig,
        to: ShardConfig,
        config_version: Version,
    ) {
        let steps: BTreeMap<ShardId, Step> = (0..to.shards.len() as u32)
            .map(ShardId)
            .filter(|s| from.owner(*s) != to.owner(*s))
            .filter(|s| from.owner(*s) != GroupId::NONE && to.owner(*s) != GroupId::NONE)
            .map(|s| (s, Step::Freeze))
            .collect();
        self.phase = Phase::Moving {
            result,
            from,
            to,
            config_version,
            steps,
            ticks_left: 0,
        };
        self.send_steps(None);
        self.maybe_done_moving();
    }

    fn tick(&mut self) {
        if let Phase::Moving { ticks_left, .. } = &mut self.phase {
            *ticks_left = ticks_left.saturating_sub(1);
            if *ticks_left == 0 {
                self.send_steps(None);
            }
        }
    }

    /// (Re)send the unfinished step of `only`, or of every shard.
    fn send_steps(&mut self, only: Option<ShardId>) {
        let Phase::Moving {
            from,
            to,
            steps,
            ticks_left,
            ..
        } = &mut self.phase
        else {
            return;
        };
        if only.is_none() {
            *ticks_left = self.config.retry_ticks.max(1);
        }
        let num = to.num;
        for (shard, step) in steps.iter().filter(|(s, _)| only.is_none_or(|o| o == **s)) {
            let (old, new) = (from.owner(*shard), to.owner(*shard));
            let (gid, servers, op) = match step {
                Step::Freeze => (
                    old,
                    from.servers(old),
                    GroupOp::Freeze { shard: *shard, num },
                ),
                Step::Install(data) => (
                    new,
                    to.servers(new),
                    GroupOp::Install {
                        shard: *shard,
                        num,
                        data: data.clone(),
                    },
                ),
                Step::Delete => (
                    old,
                    from.servers(old),
                    GroupOp::Delete { shard: *shard, num },
                ),
            };
            self.out.push(CtrlAction::Group {
                gid,
                servers: servers.unwrap_or_default().to_vec(),
                op,
            });
        }
    }

    fn on_group(&mut self, reply: GroupReply) {
        let Phase::Moving { to, steps, .. } = &mut self.phase else {
            return;
        };
        let num = to.num;
        let (shard, advance) = match reply {
            GroupReply::Shard {
                shard,
                num: n,
                data,
            } if n == num && steps.get(&shard) == Some(&Step::Freeze) => {
                (shard, Some(Step::Install(data)))
            }
            GroupReply::Ack {
                shard,
                num: n,
                step,
            } if n == num => match (steps.get(&shard), step) {
                (Some(Step::Install(_)), MigrationStep::Install) => (shard, Some(Step::Delete)),
                (Some(Step::Delete), MigrationStep::Delete) => (shard, None),
                _ => return,
            },
            GroupReply::Refused {
                shard,
                num: n,
                why: Refusal::Stale { .. } | Refusal::NotHeld,
            } if n == num && steps.contains_key(&shard) => {
                // Someone else (a controller finishing the same change)
                // got further with this shard: its move is done.
                (shard, None)
            }
            _ => return,
        };
        match advance {
            Some(next) => {
                steps.insert(shard, next);
                // Send the next step at once rather than a round later.
                self.send_steps(Some(shard));
            }
            None => {
                steps.remove(&shard);
                self.maybe_done_moving();
            }
        }
    }

    fn maybe_done_moving(&mut self) {
        let Phase::Moving {
            result,
            to,
            config_version,
            steps,
            ..
        } = &self.phase
        else {
            return;
        };
        if !steps.is_empty() {
            return;
        }
        let (result, to, version) = (result.clone(), to.clone(), *config_version);
        self.phase = Phase::PutConfig { result };
        self.kv(put(CONFIG_KEY, &to, version));
    }
}

/// Refuse a first configuration the groups cannot agree with: a 2025 group
/// starts owning shards only if it is [`FIRST_GROUP`], as of
/// [`FIRST_CONFIG`].
fn check_first(cfg: &ShardConfig) -> Result<(), String> {
    if cfg.num != FIRST_CONFIG {
        return Err(format!(
            "the first configuration must be number {}, not {}",
            FIRST_CONFIG.0, cfg.num.0
        ));
    }
    if !cfg.groups.contains_key(&FIRST_GROUP) || cfg.shards.iter().any(|g| *g != FIRST_GROUP) {
        return Err(format!(
            "the first configuration must give every shard to {FIRST_GROUP}, which starts owning them all"
        ));
    }
    Ok(())
}

/// Refuse a change the controller cannot carry out without losing data.
fn check_change(from: &ShardConfig, to: &ShardConfig) -> Result<(), String> {
    if to.shards.len() != from.shards.len() {
        return Err(format!(
            "the new configuration has {} shards, the current one {}",
            to.shards.len(),
            from.shards.len()
        ));
    }
    for (i, g) in to.shards.iter().enumerate() {
        if *g == GroupId::NONE && from.shards[i] != GroupId::NONE {
            return Err(format!(
                "shard {i} would have no owner: its data would be lost"
            ));
        }
        if *g != GroupId::NONE && !to.groups.contains_key(g) {
            return Err(format!("shard {i} is given to {g}, which has no servers"));
        }
    }
    Ok(())
}

fn get(key: &str) -> Op {
    Op::Get { key: key.into() }
}

fn put(key: &str, cfg: &ShardConfig, version: Version) -> Op {
    Op::Put {
        key: key.into(),
        value: cfg.to_text(),
        version,
    }
}

fn decode(outcome: Outcome) -> Result<(ShardConfig, Version), String> {
    match outcome {
        Outcome::Value { value, version } => ShardConfig::from_text(&value)
            .map(|c| (c, version))
            .map_err(|e| e.to_string()),
        Outcome::ErrNoKey => Err("no configuration stored yet: call InitConfig first".into()),
        other => Err(format!(
            "unexpected answer from the configuration store: {other:?}"
        )),
    }
}
