//! A classic shard group's state machine (lab 5B of 2024 and the 2021
//! lab 4B): per-shard data and sessions, the group's current and previous
//! configuration, and a state per shard.
//!
//! Configurations enter the log one at a time and in order, and only when
//! every shard has settled from the one before. Applying configuration `n`:
//!
//! * a shard the group keeps stays [`ShardState::Serving`];
//! * a shard it gains is [`ShardState::Pulling`] until the old owner's data
//!   arrives ([`GroupOp::Insert`]); a shard gained from nobody (the first
//!   configuration) is served at once, empty;
//! * a shard it loses is [`ShardState::Frozen`]: never served again, kept
//!   until the new owner has it, then deleted ([`GroupOp::Delete`]).
//!
//! An inserted shard is served at once ([`ShardState::Received`]) while the
//! group's [`super::Agent`] asks the old owner to delete its copy; when the
//! old owner confirms, [`GroupOp::Confirm`] makes it plain `Serving`. Every
//! migration step carries the configuration number and is ignored unless
//! it matches, so duplicated, delayed or replayed steps change nothing.

use crate::config::ShardConfig;
use crate::reply::{GroupReply, MigrationStep, Refusal, ShardData};
use crate::sharding::Sharding;
use crate::types::{ConfigNum, GroupId, ShardId};
use core_kv::{ClientRequest, LogIndex, StateMachine};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What a shard is doing in this group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ShardState {
    /// Owned and served.
    Serving,
    /// Owned in the current configuration; waiting for the previous owner's
    /// data. Not served.
    Pulling,
    /// Served (its data arrived); the previous owner has not yet confirmed
    /// that it deleted its copy.
    Received,
    /// Owned in the previous configuration only: kept, never served, until
    /// the new owner has it and asks for it to be deleted.
    Frozen,
}

impl ShardState {
    /// True if client operations on the shard are served.
    pub fn serves(self) -> bool {
        matches!(self, ShardState::Serving | ShardState::Received)
    }
}

/// An operation in a classic group's log (or, for the read-only ones, a
/// query answered through ReadIndex).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum GroupOp {
    /// A client's Get, Put, Set or Append, exactly once per client.
    Client(ClientRequest),
    /// Move to the next configuration (from this group's agent).
    Reconfigure(ShardConfig),
    /// Read-only: the new owner of `shard` in configuration `num` asks for
    /// its data.
    Pull {
        /// The configuration the shard moves in.
        num: ConfigNum,
        /// Which shard.
        shard: ShardId,
    },
    /// The data of a shard this group is pulling (from its own agent).
    Insert {
        /// The configuration the shard moves in.
        num: ConfigNum,
        /// Which shard.
        shard: ShardId,
        /// Keys and sessions.
        data: ShardData,
    },
    /// The new owner has the shard: delete the frozen copy.
    Delete {
        /// The configuration the shard moved in.
        num: ConfigNum,
        /// Which shard.
        shard: ShardId,
    },
    /// The old owner deleted its copy of a received shard (from this
    /// group's agent).
    Confirm {
        /// The configuration the shard moved in.
        num: ConfigNum,
        /// Which shard.
        shard: ShardId,
    },
}

/// Migration work a group's agent must do for the current configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Work {
    /// Fetch `shard` from `from`.
    Pull {
        /// Which shard.
        shard: ShardId,
        /// The configuration it moves in.
        num: ConfigNum,
        /// Its previous owner.
        from: GroupId,
    },
    /// Ask `from` to delete its copy of `shard`.
    Delete {
        /// Which shard.
        shard: ShardId,
        /// The configuration it moved in.
        num: ConfigNum,
        /// Its previous owner.
        from: GroupId,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Slot {
    state: ShardState,
    data: ShardData,
}

/// A classic shard group replica's state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    gid: GroupId,
    sharding: Sharding,
    config: ShardConfig,
    prev: ShardConfig,
    slots: BTreeMap<ShardId, Slot>,
}

impl Group {
    /// Group `gid` before any configuration: it serves nothing.
    pub fn new(gid: GroupId, sharding: Sharding) -> Group {
        Group {
            gid,
            sharding,
            config: ShardConfig::initial(sharding.shards),
            prev: ShardConfig::initial(sharding.shards),
            slots: BTreeMap::new(),
        }
    }

    /// This group's id.
    pub fn gid(&self) -> GroupId {
        self.gid
    }

    /// The configuration the group is in.
    pub fn config(&self) -> &ShardConfig {
        &self.config
    }

    /// The configuration before it (where gained shards come from).
    pub fn prev(&self) -> &ShardConfig {
        &self.prev
    }

    /// The state of every shard the group holds.
    pub fn shard_states(&self) -> BTreeMap<ShardId, ShardState> {
        self.slots
            .iter()
            .map(|(s, slot)| (*s, slot.state))
            .collect()
    }

    /// The data of `shard`, if held.
    pub fn shard_data(&self, shard: ShardId) -> Option<&ShardData> {
        self.slots.get(&shard).map(|s| &s.data)
    }

    /// True when every shard has settled, so the next configuration may
    /// enter the log.
    pub fn settled(&self) -> bool {
        self.slots.values().all(|s| s.state == ShardState::Serving)
    }

    /// What the agent must do for the current configuration.
    pub fn work(&self) -> Vec<Work> {
        let num = self.config.num;
        self.slots
            .iter()
            .filter_map(|(shard, slot)| {
                let from = self.prev.owner(*shard);
                match slot.state {
                    ShardState::Pulling => Some(Work::Pull {
                        shard: *shard,
                        num,
                        from,
                    }),
                    ShardState::Received => Some(Work::Delete {
                        shard: *shard,
                        num,
                        from,
                    }),
                    _ => None,
                }
            })
            .collect()
    }

    fn client(&mut self, req: &ClientRequest) -> GroupReply {
        let shard = self.sharding.shard_of(req.op.key());
        match self.slots.get_mut(&shard) {
            Some(slot) if slot.state.serves() => GroupReply::Kv(slot.data.apply(req)),
            _ => GroupReply::WrongGroup,
        }
    }

    fn reconfigure(&mut self, next: &ShardConfig) -> GroupReply {
        if next.num != self.config.num.next()
            || !self.settled()
            || next.shards.len() != self.config.shards.len()
        {
            return GroupReply::Configured {
                num: self.config.num,
            };
        }
        for shard in self.sharding.all() {
            let before = self.config.owner(shard) == self.gid;
            let after = next.owner(shard) == self.gid;
            match (before, after) {
                (false, true) if self.config.owner(shard) == GroupId::NONE => {
                    // Nobody held it: it starts empty.
                    self.slots.insert(
                        shard,
                        Slot {
                            state: ShardState::Serving,
                            data: ShardData::default(),
                        },
                    );
                }
                (false, true) => {
                    self.slots.insert(
                        shard,
                        Slot {
                            state: ShardState::Pulling,
                            data: ShardData::default(),
                        },
                    );
                }
                (true, false) if next.owner(shard) == GroupId::NONE => {
                    // A configuration without groups: nobody will pull the
                    // shard, and waiting for that would stop this group from
                    // ever following another configuration. Its data is
                    // dropped (the labs' controller allows this; a service
                    // that must keep data never leaves every group).
                    self.slots.remove(&shard);
                }
                (true, false) => {
                    if let Some(slot) = self.slots.get_mut(&shard) {
                        slot.state = ShardState::Frozen;
                    }
                }
                _ => {}
            }
        }
        self.prev = std::mem::replace(&mut self.config, next.clone());
        GroupReply::Configured {
            num: self.config.num,
        }
    }

    /// Compare a step's configuration with the group's: `None` if it is the
    /// current one, else the refusal to give.
    fn refusal(&self, num: ConfigNum) -> Option<Refusal> {
        let current = self.config.num;
        match num.cmp(&current) {
            std::cmp::Ordering::Equal => None,
            std::cmp::Ordering::Less => Some(Refusal::Stale { current }),
            std::cmp::Ordering::Greater => Some(Refusal::NotYet { current }),
        }
    }

    fn pull(&self, num: ConfigNum, shard: ShardId) -> GroupReply {
        if let Some(why) = self.refusal(num) {
            return GroupReply::Refused { shard, num, why };
        }
        match self.slots.get(&shard) {
            Some(slot) if slot.state == ShardState::Frozen => GroupReply::Shard {
                shard,
                num,
                data: slot.data.clone(),
            },
            _ => GroupReply::Refused {
                shard,
                num,
                why: Refusal::NotHeld,
            },
        }
    }

    fn insert(&mut self, num: ConfigNum, shard: ShardId, data: &ShardData) -> GroupReply {
        if let Some(why) = self.refusal(num) {
            return GroupReply::Refused { shard, num, why };
        }
        if let Some(slot) = self.slots.get_mut(&shard) {
            if slot.state == ShardState::Pulling {
                slot.data = data.clone();
                slot.state = ShardState::Received;
            }
        }
        GroupReply::Ack {
            shard,
            num,
            step: MigrationStep::Install,
        }
    }

    fn delete(&mut self, num: ConfigNum, shard: ShardId) -> GroupReply {
        match self.refusal(num) {
            // The group moves on only after every frozen shard was deleted,
            // so an older configuration's shard is gone already.
            Some(Refusal::Stale { .. }) => {
                return GroupReply::Ack {
                    shard,
                    num,
                    step: MigrationStep::Delete,
                }
            }
            Some(why) => return GroupReply::Refused { shard, num, why },
            None => {}
        }
        if self
            .slots
            .get(&shard)
            .is_some_and(|s| s.state == ShardState::Frozen)
        {
            self.slots.remove(&shard);
        }
        GroupReply::Ack {
            shard,
            num,
            step: MigrationStep::Delete,
        }
    }

    fn confirm(&mut self, num: ConfigNum, shard: ShardId) -> GroupReply {
        if let Some(why) = self.refusal(num) {
            return GroupReply::Refused { shard, num, why };
        }
        if let Some(slot) = self.slots.get_mut(&shard) {
            if slot.state == ShardState::Received {
                slot.state = ShardState::Serving;
            }
        }
        GroupReply::Ack {
            shard,
            num,
            step: MigrationStep::Confirm,
        }
    }

    fn read(&self, op: &GroupOp) -> GroupReply {
        match op {
            GroupOp::Client(req) => {
                let shard = self.sharding.shard_of(req.op.key());
                match self.slots.get(&shard) {
                    Some(slot) if slot.state.serves() => GroupReply::Kv(slot.data.read(&req.op)),
                    _ => GroupReply::WrongGroup,
                }
            }
            GroupOp::Pull { num, shard } => self.pull(*num, *shard),
            _ => GroupReply::Configured {
                num: self.config.num,
            },
        }
    }
}

impl StateMachine for Group {
    type Op = GroupOp;
    type Output = GroupReply;
    type Snapshot = std::io::Cursor<Vec<u8>>;

    fn apply(&mut self, _index: LogIndex, op: &GroupOp) -> GroupReply {
        match op {
            GroupOp::Client(req) => self.client(req),
            GroupOp::Reconfigure(next) => self.reconfigure(next),
            GroupOp::Pull { num, shard } => self.pull(*num, *shard),
            GroupOp::Insert { num, shard, data } => self.insert(*num, *shard, data),
            GroupOp::Delete { num, shard } => self.delete(*num, *shard),
            GroupOp::Confirm { num, shard } => self.confirm(*num, *shard),
        }
    }

    fn is_read_only(&self, op: &GroupOp) -> bool {
        match op {
            GroupOp::Client(req) => req.op.is_read_only(),
            GroupOp::Pull { .. } => true,
            _ => false,
        }
    }

    fn query(&self, op: &GroupOp) -> GroupReply {
        self.read(op)
    }

    fn snapshot(&self) -> Self::Snapshot {
        std::io::Cursor::new(core_kv::snapshot::encode(self))
    }

    fn restore(&mut self, snapshot: &mut dyn std::io::Read) -> Result<(), String> {
        let restored: Group = core_kv::snapshot::decode(snapshot)?;
        if restored.gid != self.gid || restored.sharding != self.sharding {
            return Err(format!(
                "snapshot of {} ({} shards) given to {} ({} shards)",
                restored.gid, restored.sharding.shards, self.gid, self.sharding.shards
            ));
        }
        *self = restored;
        Ok(())
    }
}
