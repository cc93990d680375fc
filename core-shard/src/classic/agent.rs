//! The part of a classic shard group that acts instead of answering: on the
//! leader, it polls the controller for the next configuration, pulls gained
//! shards from their previous owners, and asks them to delete their copies.
//!
//! The agent keeps no state that matters: everything it does follows from
//! the group's applied state (see [`super::Group::work`]) and from the
//! answers it is handed, and every step it submits is checked against the
//! group's configuration when applied. So a host may run it on every
//! replica (it stays quiet where the replica does not lead), restart it at
//! will, and deliver its answers late, twice or never.

use super::group::{Group, GroupOp, Work};
use crate::config::ShardConfig;
use crate::reply::{GroupReply, MigrationStep};
use crate::types::{ConfigNum, GroupId};

/// How often the agent acts, in ticks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AgentConfig {
    /// Ticks between rounds (a poll of the controller, or a resend of every
    /// outstanding pull and delete). The labs poll every 100 ms.
    pub round_ticks: u64,
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig { round_ticks: 10 }
    }
}

/// Everything that can happen to an agent.
#[derive(Debug)]
pub enum AgentInput<'a> {
    /// A tick, with the local replica's role and applied state.
    Tick {
        /// Whether the local replica leads its group now.
        leader: bool,
        /// The local replica's applied state.
        group: &'a Group,
    },
    /// The controller's answer to [`AgentAction::AskController`].
    Controller(ShardConfig),
    /// A group's answer to an [`AgentAction::Send`] (answers saying "not
    /// the leader" need not be passed on). Answers from the agent's own
    /// group (to its submissions) are ignored: an insert's acknowledgement
    /// must never pass for the old owner's acknowledgement of a delete.
    Reply {
        /// The group that answered.
        from: GroupId,
        /// Its answer.
        reply: GroupReply,
    },
}

/// What an agent wants done.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AgentAction {
    /// Ask the controller for configuration `num` (the classic `Query(num)`),
    /// and hand the answer back as [`AgentInput::Controller`].
    AskController {
        /// The configuration wanted.
        num: ConfigNum,
    },
    /// Send `op` to the leader of group `gid` (try its servers in turn, or
    /// all of them: every step is safe to deliver twice).
    Send {
        /// The group.
        gid: GroupId,
        /// Its servers, from the configuration that names it.
        servers: Vec<String>,
        /// The request.
        op: GroupOp,
    },
    /// Submit `op` to the local replica (its answer is not needed: the
    /// effect shows in the group's state).
    Submit(GroupOp),
}

/// A classic group's agent.
#[derive(Clone, Debug)]
pub struct Agent {
    gid: GroupId,
    config: AgentConfig,
    ticks: u64,
    leader: bool,
    /// The local replica's configuration number at the last tick.
    num: ConfigNum,
    out: Vec<AgentAction>,
}

impl Agent {
    /// The agent of a replica of group `gid`, not having acted yet.
    pub fn new(gid: GroupId, config: AgentConfig) -> Agent {
        Agent {
            gid,
            config,
            ticks: 0,
            leader: false,
            num: ConfigNum(0),
            out: Vec::new(),
        }
    }

    /// Feed one input; returns the actions to carry out.
    pub fn step(&mut self, input: AgentInput<'_>) -> Vec<AgentAction> {
        match input {
            AgentInput::Tick { leader, group } => self.tick(leader, group),
            AgentInput::Controller(config) => {
                // Only the very next configuration may enter the log; the
                // group checks again when it applies it.
                if self.leader && config.num == self.num.next() {
                    self.out
                        .push(AgentAction::Submit(GroupOp::Reconfigure(config)));
                }
            }
            AgentInput::Reply { from, reply } if from != self.gid => self.on_reply(reply),
            AgentInput::Reply { .. } => {}
        }
        std::mem::take(&mut self.out)
    }

    fn tick(&mut self, leader: bool, group: &Group) {
        self.num = group.config().num;
        if leader && !self.leader {
            self.ticks = 0; // act at once on becoming leader
        }
        self.leader = leader;
        if !leader {
            return;
        }
        if self.ticks > 0 {
            self.ticks -= 1;
            return;
        }
        self.ticks = self.config.round_ticks.max(1) - 1;
        if group.settled() {
            self.out.push(AgentAction::AskController {
                num: group.config().num.next(),
            });
            return;
        }
        for work in group.work() {
            let (from, op) = match work {
                Work::Pull { shard, num, from } => (from, GroupOp::Pull { num, shard }),
                Work::Delete { shard, num, from } => (from, GroupOp::Delete { num, shard }),
            };
            let servers = group.prev().servers(from).unwrap_or_default().to_vec();
            self.out.push(AgentAction::Send {
                gid: from,
                servers,
                op,
            });
        }
    }

    fn on_reply(&mut self, reply: GroupReply) {
        if !self.leader {
            return;
        }
        match reply {
            GroupReply::Shard { shard, num, data } if num == self.num => {
                self.out
                    .push(AgentAction::Submit(GroupOp::Insert { num, shard, data }));
            }
            GroupReply::Ack {
                shard,
                num,
                step: MigrationStep::Delete,
            } if num == self.num => {
                self.out
                    .push(AgentAction::Submit(GroupOp::Confirm { num, shard }));
            }
            _ => {}
        }
    }
}
