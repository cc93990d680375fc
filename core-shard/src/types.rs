//! Newtypes for shards, groups and configuration numbers, so that one can
//! never be passed where another is meant.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A shard: keys are divided among a fixed number of shards (see
/// [`crate::Sharding`]), numbered from 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ShardId(pub u32);

/// A replica group's id. [`GroupId::NONE`] (0) owns the shards of a
/// configuration without groups; no real group may use it.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct GroupId(pub u64);

impl GroupId {
    /// The owner of shards nobody serves.
    pub const NONE: GroupId = GroupId(0);
}

/// A configuration's number. Configurations are numbered 0 (classic: no
/// groups), 1, 2, ... and each one differs from the one before by one
/// `Join`, `Leave` or `Move`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct ConfigNum(pub u64);

impl ConfigNum {
    /// The number after this one.
    pub fn next(self) -> ConfigNum {
        ConfigNum(self.0 + 1)
    }
}

impl fmt::Display for ShardId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "shard {}", self.0)
    }
}

impl fmt::Display for GroupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "g{}", self.0)
    }
}

impl fmt::Display for ConfigNum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "config {}", self.0)
    }
}
