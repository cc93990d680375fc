//! The classic shard controller (lab 4A of 2021, 5A of 2024): the history
//! of configurations as a replicated state machine. Replicate it with
//! `core_kv::Rsm<Sessioned<Controller>>` so that every `Join`, `Leave` and
//! `Move` applies exactly once however often a clerk retries it.

use crate::config::ShardConfig;
use crate::types::{ConfigNum, GroupId, ShardId};
use core_kv::{ClerkOp, LogIndex, StateMachine};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A controller operation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CtrlOp {
    /// Add groups (gid -> servers), and rebalance.
    Join(BTreeMap<GroupId, Vec<String>>),
    /// Remove groups, and rebalance.
    Leave(Vec<GroupId>),
    /// Give one shard to one group, without rebalancing.
    Move {
        /// The shard.
        shard: ShardId,
        /// Its new owner.
        gid: GroupId,
    },
    /// Configuration `num`, or the latest if `None` or beyond the latest.
    Query(Option<ConfigNum>),
}

/// Every controller operation keeps its answer when resent.
impl ClerkOp<Result<CtrlReply, core_kv::Stale>> for CtrlOp {}

/// A controller's answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CtrlReply {
    /// The operation made configuration `num` (a no-op change still makes
    /// one, as the labs do).
    Changed {
        /// The new configuration's number.
        num: ConfigNum,
    },
    /// The configuration asked for.
    Config(ShardConfig),
    /// The operation is malformed and changed nothing.
    Invalid(String),
}

/// The controller's state: every configuration since number 0.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Controller {
    configs: Vec<ShardConfig>,
}

impl Controller {
    /// A controller for `shards` shards, holding only configuration 0.
    pub fn new(shards: u32) -> Controller {
        Controller {
            configs: vec![ShardConfig::initial(shards)],
        }
    }

    /// The latest configuration.
    pub fn latest(&self) -> &ShardConfig {
        self.configs.last().expect("configuration 0 always exists")
    }

    /// Configuration `num`, or the latest if `None` or beyond the latest.
    pub fn query(&self, num: Option<ConfigNum>) -> &ShardConfig {
        match num {
            Some(n) if (n.0 as usize) < self.configs.len() => &self.configs[n.0 as usize],
            _ => self.latest(),
        }
    }

    fn validate(&self, op: &CtrlOp) -> Result<(), String> {
        let shards = self.latest().shards.len();
        match op {
            CtrlOp::Join(groups) => {
                if groups.contains_key(&GroupId::NONE) {
                    return Err("group id 0 is reserved for unassigned shards".into());
                }
                if let Some((g, _)) = groups.iter().find(|(_, s)| s.is_empty()) {
                    return Err(format!("{g} is joined with no servers"));
                }
                Ok(())
            }
            CtrlOp::Move { shard, gid } => {
                if shard.0 as usize >= shards {
                    return Err(format!("{shard} does not exist (there are {shards})"));
                }
                if !self.latest().groups.contains_key(gid) {
                    return Err(format!("{gid} is not a member"));
                }
                Ok(())
            }
            CtrlOp::Leave(_) | CtrlOp::Query(_) => Ok(()),
        }
    }
}

impl Default for Controller {
    /// The classic labs' controller: 10 shards.
    fn default() -> Self {
        Controller::new(crate::Sharding::CLASSIC.shards)
    }
}

impl StateMachine for Controller {
    type Op = CtrlOp;
    type Output = CtrlReply;
    type Snapshot = std::io::Cursor<Vec<u8>>;

    fn apply(&mut self, _index: LogIndex, op: &CtrlOp) -> CtrlReply {
        if let Err(e) = self.validate(op) {
            return CtrlReply::Invalid(e);
        }
        let next = match op {
            CtrlOp::Join(groups) => self.latest().join(groups),
            CtrlOp::Leave(gids) => self.latest().leave(gids),
            CtrlOp::Move { shard, gid } => self.latest().moved(*shard, *gid),
            CtrlOp::Query(num) => return CtrlReply::Config(self.query(*num).clone()),
        };
        let num = next.num;
        self.configs.push(next);
        CtrlReply::Changed { num }
    }

    fn is_read_only(&self, op: &CtrlOp) -> bool {
        matches!(op, CtrlOp::Query(_))
    }

    fn query(&self, op: &CtrlOp) -> CtrlReply {
        match op {
            CtrlOp::Query(num) => CtrlReply::Config(self.query(*num).clone()),
            _ => CtrlReply::Invalid("only Query is read-only".into()),
        }
    }

    fn snapshot(&self) -> Self::Snapshot {
        std::io::Cursor::new(core_kv::snapshot::encode(self))
    }

    fn restore(&mut self, snapshot: &mut dyn std::io::Read) -> Result<(), String> {
        let restored: Controller = core_kv::snapshot::decode(snapshot)?;
        if restored.configs.is_empty() {
            return Err("a controller snapshot without configuration 0".into());
        }
        *self = restored;
        Ok(())
    }
}
