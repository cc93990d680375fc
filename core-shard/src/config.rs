//! Numbered shard configurations and the rebalancing rule.
//!
//! Rebalancing is deterministic (ordered maps only, ties broken by group
//! id), moves the fewest shards that any balanced assignment needs, and
//! leaves at most one shard of difference between the most and the least
//! loaded group. Every replica of a controller computes the same
//! configuration from the same operations.

use crate::types::{ConfigNum, GroupId, ShardId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use thiserror::Error;

/// Which group serves each shard, and which servers make up each group.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ShardConfig {
    /// This configuration's number.
    pub num: ConfigNum,
    /// The owner of shard `i` is `shards[i]` ([`GroupId::NONE`]: nobody).
    pub shards: Vec<GroupId>,
    /// Each member group's servers, in the order they were given.
    pub groups: BTreeMap<GroupId, Vec<String>>,
}

/// A configuration text that does not decode.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("not a shard configuration: {0}")]
pub struct ConfigTextError(pub String);

impl ShardConfig {
    /// Configuration 0: `shards` shards, no groups, every shard on
    /// [`GroupId::NONE`].
    pub fn initial(shards: u32) -> ShardConfig {
        ShardConfig {
            num: ConfigNum(0),
            shards: vec![GroupId::NONE; shards as usize],
            groups: BTreeMap::new(),
        }
    }

    /// The group serving `shard` ([`GroupId::NONE`] if none, or if the
    /// shard is out of range).
    pub fn owner(&self, shard: ShardId) -> GroupId {
        self.shards
            .get(shard.0 as usize)
            .copied()
            .unwrap_or(GroupId::NONE)
    }

    /// The shards `gid` serves, in order.
    pub fn shards_of(&self, gid: GroupId) -> Vec<ShardId> {
        (0..self.shards.len() as u32)
            .map(ShardId)
            .filter(|s| self.owner(*s) == gid)
            .collect()
    }

    /// The servers of group `gid`, if it is a member.
    pub fn servers(&self, gid: GroupId) -> Option<&[String]> {
        self.groups.get(&gid).map(Vec::as_slice)
    }

    /// The next configuration with `groups` added (a group already present
    /// gets the new server list), rebalanced.
    pub fn join(&self, groups: &BTreeMap<GroupId, Vec<String>>) -> ShardConfig {
        let mut next = self.successor();
        for (gid, servers) in groups {
            next.groups.insert(*gid, servers.clone());
        }
        next.rebalance();
        next
    }

    /// The next configuration without `gids` (absent ones are ignored),
    /// rebalanced.
    pub fn leave(&self, gids: &[GroupId]) -> ShardConfig {
        let mut next = self.successor();
        for gid in gids {
            next.groups.remove(gid);
        }
        next.rebalance();
        next
    }

    /// The next configuration with `shard` given to `gid`, literally (no
    /// rebalancing; a later join or leave may undo it).
    pub fn moved(&self, shard: ShardId, gid: GroupId) -> ShardConfig {
        let mut next = self.successor();
        if let Some(owner) = next.shards.get_mut(shard.0 as usize) {
            *owner = gid;
        }
        next
    }

    fn successor(&self) -> ShardConfig {
        ShardConfig {
            num: self.num.next(),
            ..self.clone()
        }
    }

    /// Reassign shards so that every shard is on a member group, loads
    /// differ by at most one, and as few shards as possible change owner.
    /// With no groups every shard goes to [`GroupId::NONE`].
    pub fn rebalance(&mut self) {
        if self.groups.is_empty() {
            self.shards.iter_mut().for_each(|g| *g = GroupId::NONE);
            return;
        }
        let mut held: BTreeMap<GroupId, Vec<ShardId>> =
            self.groups.keys().map(|g| (*g, Vec::new())).collect();
        let mut free: Vec<ShardId> = Vec::new();
        for (i, owner) in self.shards.iter().enumerate() {
            match held.get_mut(owner) {
                Some(list) => list.push(ShardId(i as u32)),
                None => free.push(ShardId(i as u32)),
            }
        }
        // The groups that already hold the most keep the larger quotas:
        // that is what makes the number of moves minimal.
        let mut order: Vec<GroupId> = held.keys().copied().collect();
        order.sort_by_key(|g| (std::cmp::Reverse(held[g].len()), *g));
        let n = self.shards.len();
        let (base, extra) = (n / order.len(), n % order.len());
        let quota = |rank: usize| if rank < extra { base + 1 } else { base };
        for (rank, g) in order.iter().enumerate() {
            let list = held.get_mut(g).expect("every member has a list");
            while list.len() > quota(rank) {
                free.push(list.pop().expect("longer than its quota"));
            }
        }
        free.sort_unstable();
        free.reverse(); // pop() hands out the lowest shard first
        for (rank, g) in order.iter().enumerate() {
            let list = held.get_mut(g).expect("every member has a list");
            while list.len() < quota(rank) {
                let s = free.pop().expect("quotas add up to the shard count");
                list.push(s);
                self.shards[s.0 as usize] = *g;
            }
        }
        debug_assert!(free.is_empty());
    }

    /// `Ok` if every shard is on a member group (or all on
    /// [`GroupId::NONE`] when there are none) and the most loaded group has
    /// at most one shard more than the least loaded.
    pub fn check_balanced(&self) -> Result<(), String> {
        if self.groups.is_empty() {
            return match self.shards.iter().find(|g| **g != GroupId::NONE) {
                Some(g) => Err(format!("no groups, yet a shard is on {g}")),
                None => Ok(()),
            };
        }
        let mut load: BTreeMap<GroupId, usize> = self.groups.keys().map(|g| (*g, 0)).collect();
        for (i, g) in self.shards.iter().enumerate() {
            match load.get_mut(g) {
                Some(n) => *n += 1,
                None => return Err(format!("shard {i} is on {g}, which is not a member")),
            }
        }
        let max = load.values().max().copied().unwrap_or(0);
        let min = load.values().min().copied().unwrap_or(0);
        if max > min + 1 {
            return Err(format!("unbalanced: loads {load:?}"));
        }
        Ok(())
    }

    /// A printable, lossless text form, for storing a configuration as a
    /// value in a key/value store (the 2025 controller does).
    pub fn to_text(&self) -> String {
        let bytes = postcard::to_allocvec(self).expect("encoding to a Vec cannot fail");
        let mut text = String::with_capacity(bytes.len() * 2);
        for b in bytes {
            text.push_str(&format!("{b:02x}"));
        }
        text
    }

    /// Decode [`ShardConfig::to_text`]'s output.
    pub fn from_text(text: &str) -> Result<ShardConfig, ConfigTextError> {
        if !text.len().is_multiple_of(2) || !text.is_ascii() {
            return Err(ConfigTextError("odd length or not ASCII".into()));
        }
        let bytes = (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16))
            .collect::<Result<Vec<u8>, _>>()
            .map_err(|e| ConfigTextError(e.to_string()))?;
        core_kv::snapshot::decode_bytes(&bytes).map_err(ConfigTextError)
    }
}

impl fmt::Display for ShardConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} [", self.num)?;
        for (i, g) in self.shards.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{}", g.0)?;
        }
        f.write_str("] groups")?;
        for (g, servers) in &self.groups {
            write!(f, " {g}={}", servers.join(","))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn groups(gids: &[u64]) -> BTreeMap<GroupId, Vec<String>> {
        gids.iter()
            .map(|g| (GroupId(*g), vec![format!("s{g}a"), format!("s{g}b")]))
            .collect()
    }

    #[test]
    fn join_spreads_shards_and_keeps_server_lists() {
        let c0 = ShardConfig::initial(10);
        let c1 = c0.join(&groups(&[1]));
        assert_eq!(c1.num, ConfigNum(1));
        assert!(c1.shards.iter().all(|g| *g == GroupId(1)));
        let c2 = c1.join(&groups(&[2]));
        c2.check_balanced().unwrap();
        assert_eq!(c2.shards_of(GroupId(2)).len(), 5);
        assert_eq!(c2.servers(GroupId(2)).unwrap(), ["s2a", "s2b"]);
        let c3 = c2.leave(&[GroupId(1)]);
        assert!(c3.shards.iter().all(|g| *g == GroupId(2)));
        let c4 = c3.leave(&[GroupId(2)]);
        assert!(c4.shards.iter().all(|g| *g == GroupId::NONE));
        c4.check_balanced().unwrap();
    }

    #[test]
    fn a_third_group_takes_only_its_share() {
        let c = ShardConfig::initial(10)
            .join(&groups(&[1]))
            .join(&groups(&[2]));
        let d = c.join(&groups(&[3]));
        let changed = (0..10).filter(|i| c.shards[*i] != d.shards[*i]).count();
        assert_eq!(changed, 3, "10 shards over 3 groups: 4/3/3, so 3 move");
        for i in 0..10 {
            assert!(c.shards[i] == d.shards[i] || d.shards[i] == GroupId(3));
        }
    }

    #[test]
    fn move_is_literal_and_text_round_trips() {
        let c = ShardConfig::initial(10).join(&groups(&[1, 2]));
        let m = c
            .moved(ShardId(3), GroupId(2))
            .moved(ShardId(4), GroupId(2));
        assert_eq!(m.owner(ShardId(3)), GroupId(2));
        assert_eq!(m.num, ConfigNum(3));
        assert_eq!(ShardConfig::from_text(&m.to_text()).unwrap(), m);
        assert!(ShardConfig::from_text("zz").is_err());
        assert!(ShardConfig::from_text("abc").is_err());
        assert!(ShardConfig::from_text("").is_err());
    }

    #[test]
    fn more_groups_than_shards_leaves_some_idle() {
        let c = ShardConfig::initial(3).join(&groups(&[1, 2, 3, 4, 5]));
        c.check_balanced().unwrap();
        assert_eq!(c.shards, vec![GroupId(1), GroupId(2), GroupId(3)]);
    }
}
