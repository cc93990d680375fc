//! Which shard a key belongs to. The two lab versions divide keys
//! differently; a service picks one [`Sharding`] and every clerk, group and
//! controller of it must use the same.

use crate::types::ShardId;
use serde::{Deserialize, Serialize};

/// How a key is mapped to a number before taking it modulo the shard count.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum KeyHash {
    /// 32-bit FNV-1a of the key's bytes (the 2025 lab's `Key2Shard`).
    Fnv1a32,
    /// The key's first byte, 0 for the empty key (the classic labs'
    /// `key2shard`; keys "0".."9" land on ten different shards).
    FirstByte,
}

/// The number of shards and the key hash of a service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Sharding {
    /// How many shards there are (at least 1).
    pub shards: u32,
    /// How keys are hashed.
    pub hash: KeyHash,
}

impl Sharding {
    /// The 2025 lab: 12 shards, FNV-1a.
    pub const LAB_2025: Sharding = Sharding {
        shards: 12,
        hash: KeyHash::Fnv1a32,
    };

    /// The classic labs: 10 shards, first byte of the key.
    pub const CLASSIC: Sharding = Sharding {
        shards: 10,
        hash: KeyHash::FirstByte,
    };

    /// The shard `key` belongs to.
    pub fn shard_of(&self, key: &str) -> ShardId {
        let h = match self.hash {
            KeyHash::Fnv1a32 => fnv1a32(key.as_bytes()),
            KeyHash::FirstByte => key.as_bytes().first().copied().unwrap_or(0) as u32,
        };
        ShardId(h % self.shards.max(1))
    }

    /// Every shard, in order.
    pub fn all(&self) -> impl Iterator<Item = ShardId> {
        (0..self.shards).map(ShardId)
    }
}

/// 32-bit FNV-1a, as Go's `hash/fnv.New32a`.
fn fnv1a32(bytes: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in bytes {
        h ^= *b as u32;
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_matches_the_published_test_vectors() {
        // From the FNV reference test suite (Go's hash/fnv uses the same).
        assert_eq!(fnv1a32(b""), 0x811c_9dc5);
        assert_eq!(fnv1a32(b"a"), 0xe40c_292c);
        assert_eq!(fnv1a32(b"foobar"), 0xbf9c_f968);
    }

    #[test]
    fn classic_keys_zero_to_nine_hit_ten_shards() {
        let s = Sharding::CLASSIC;
        let mut seen: Vec<u32> = (0..10).map(|i| s.shard_of(&i.to_string()).0).collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), 10);
        assert_eq!(s.shard_of(""), ShardId(0));
    }

    #[test]
    fn lab_2025_spreads_the_test_keys_over_every_shard() {
        let s = Sharding::LAB_2025;
        let mut hit = [false; 12];
        for i in 0..60 {
            hit[s.shard_of(&format!("k{i}")).0 as usize] = true;
        }
        assert!(
            hit.iter().all(|h| *h),
            "60 keys k0..k59 cover all 12 shards"
        );
    }
}
