//! A 2025 shard group's state machine (lab 5 of 2025, `shardgrp`): the
//! group keeps no configuration of its own. The controller moves a shard
//! by freezing it at the old owner, installing it at the new one and
//! deleting the old copy, each step carrying the number of the
//! configuration it belongs to.
//!
//! The group remembers, per shard, the highest configuration number of a
//! step it accepted (also after deleting the shard), and refuses steps with
//! a lower one. That is what makes a superseded controller harmless: every
//! step it may still send belongs to an older configuration than the
//! shard's latest.

use crate::reply::{GroupReply, MigrationStep, Refusal, ShardData};
use crate::sharding::Sharding;
use crate::types::{ConfigNum, GroupId, ShardId};
use core_kv::{ClientRequest, LogIndex, StateMachine};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The configuration number of the first configuration (`shardcfg.NumFirst`).
pub const FIRST_CONFIG: ConfigNum = ConfigNum(1);

/// The group that owns every shard in the first configuration
/// (`shardcfg.Gid1`).
pub const FIRST_GROUP: GroupId = GroupId(1);

/// An operation in a 2025 group's log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum GroupOp {
    /// A client's Get or Put, exactly once per client.
    Client(ClientRequest),
    /// Stop serving `shard` and answer with its data (the old owner's side
    /// of a move to configuration `num`).
    Freeze {
        /// Which shard.
        shard: ShardId,
        /// The configuration it moves in.
        num: ConfigNum,
    },
    /// Start serving `shard` with `data` (the new owner's side).
    Install {
        /// Which shard.
        shard: ShardId,
        /// The configuration it moves in.
        num: ConfigNum,
        /// Keys and sessions, from the freeze.
        data: ShardData,
    },
    /// Drop the frozen copy of `shard` (the old owner's last step).
    Delete {
        /// Which shard.
        shard: ShardId,
        /// The configuration it moved in.
        num: ConfigNum,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Slot {
    frozen: bool,
    data: ShardData,
}

/// A 2025 shard group replica's state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    gid: GroupId,
    sharding: Sharding,
    slots: BTreeMap<ShardId, Slot>,
    /// Per shard, the configuration of the latest step accepted.
    nums: BTreeMap<ShardId, ConfigNum>,
}

impl Group {
    /// Group `gid`. [`FIRST_GROUP`] starts owning every shard, empty, as of
    /// [`FIRST_CONFIG`]; any other group starts with none.
    pub fn new(gid: GroupId, sharding: Sharding) -> Group {
        let mut g = Group {
            gid,
            sharding,
            slots: BTreeMap::new(),
            nums: BTreeMap::new(),
        };
        if gid == FIRST_GROUP {
            for s in sharding.all() {
                g.slots.insert(
                    s,
                    Slot {
                        frozen: false,
                        data: ShardData::default(),
                    },
                );
                g.nums.insert(s, FIRST_CONFIG);
            }
        }
        g
    }

    /// This group's id.
    pub fn gid(&self) -> GroupId {
        self.gid
    }

    /// The shards this group serves now.
    pub fn serving(&self) -> Vec<ShardId> {
        self.slots
            .iter()
            .filter(|(_, s)| !s.frozen)
            .map(|(id, _)| *id)
            .collect()
    }

    /// The shards this group holds, frozen or not.
    pub fn held(&self) -> Vec<ShardId> {
        self.slots.keys().copied().collect()
    }

    /// The data of `shard`, if held.
    pub fn shard_data(&self, shard: ShardId) -> Option<&ShardData> {
        self.slots.get(&shard).map(|s| &s.data)
    }

    /// The configuration of the latest step accepted for `shard`.
    pub fn shard_num(&self, shard: ShardId) -> ConfigNum {
        self.nums.get(&shard).copied().unwrap_or_default()
    }

    fn client(&mut self, req: &ClientRequest) -> GroupReply {
        let shard = self.sharding.shard_of(req.op.key());
        match self.slots.get_mut(&shard) {
            Some(slot) if !slot.frozen => GroupReply::Kv(slot.data.apply(req)),
            _ => GroupReply::WrongGroup,
        }
    }

    fn freeze(&mut self, shard: ShardId, num: ConfigNum) -> GroupReply {
        let current = self.shard_num(shard);
        let Some(slot) = self.slots.get_mut(&shard) else {
            // Handed on and deleted already (at `current`), or never held.
            return GroupReply::Refused {
                shard,
                num,
                why: if num < current {
                    Refusal::Stale { current }
                } else {
                    Refusal::NotHeld
                },
            };
        };
        // A retried freeze of the same move, or a later move of a shard
        // frozen under an older one, answers with the frozen data.
        if num > current || (num == current && slot.frozen) {
            slot.frozen = true;
            self.nums.insert(shard, num);
            return GroupReply::Shard {
                shard,
                num,
                data: slot.data.clone(),
            };
        }
        // `num == current` on a served shard: this group received the shard
        // in that configuration, so a freeze for it is someone's confusion.
        GroupReply::Refused {
            shard,
            num,
            why: Refusal::Stale { current },
        }
    }

    fn install(&mut self, shard: ShardId, num: ConfigNum, data: &ShardData) -> GroupReply {
        let current = self.shard_num(shard);
        if num > current {
            self.slots.insert(
                shard,
                Slot {
                    frozen: false,
                    data: data.clone(),
                },
            );
            self.nums.insert(shard, num);
            return installed(shard, num);
        }
        if num == current && self.slots.get(&shard).is_some_and(|s| !s.frozen) {
            // Installed already; it may have changed since, so the retry
            // must not overwrite it.
            return installed(shard, num);
        }
        GroupReply::Refused {
            shard,
            num,
            why: Refusal::Stale { current },
        }
    }

    fn delete(&mut self, shard: ShardId, num: ConfigNum) -> GroupReply {
        let current = self.shard_num(shard);
        match self.slots.get(&shard) {
            Some(slot) if slot.frozen && num == current => {
                self.slots.remove(&shard);
                deleted(shard, num)
            }
            // Gone already, by this step or a later one.
            None if num <= current => deleted(shard, num),
            _ if num < current => GroupReply::Refused {
                shard,
                num,
                why: Refusal::Stale { current },
            },
            // Not frozen under `num`: deleting would lose served data.
            _ => GroupReply::Refused {
                shard,
                num,
                why: Refusal::NotYet { current },
            },
        }
    }
}

fn installed(shard: ShardId, num: ConfigNum) -> GroupReply {
    GroupReply::Ack {
        shard,
        num,
        step: MigrationStep::Install,
    }
}

fn deleted(shard: ShardId, num: ConfigNum) -> GroupReply {
    GroupReply::Ack {
        shard,
        num,
        step: MigrationStep::Delete,
    }
}

impl StateMachine for Group {
    type Op = GroupOp;
    type Output = GroupReply;
    type Snapshot = std::io::Cursor<Vec<u8>>;

    fn apply(&mut self, _index: LogIndex, op: &GroupOp) -> GroupReply {
        match op {
            GroupOp::Client(req) => self.client(req),
            GroupOp::Freeze { shard, num } => self.freeze(*shard, *num),
            GroupOp::Install { shard, num, data } => self.install(*shard, *num, data),
            GroupOp::Delete { shard, num } => self.delete(*shard, *num),
        }
    }

    fn is_read_only(&self, op: &GroupOp) -> bool {
        matches!(op, GroupOp::Client(req) if req.op.is_read_only())
    }

    fn query(&self, op: &GroupOp) -> GroupReply {
        match op {
            GroupOp::Client(req) => {
                let shard = self.sharding.shard_of(req.op.key());
                match self.slots.get(&shard) {
                    Some(slot) if !slot.frozen => GroupReply::Kv(slot.data.read(&req.op)),
                    _ => GroupReply::WrongGroup,
                }
            }
            _ => GroupReply::WrongGroup,
        }
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
