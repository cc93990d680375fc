//! The memo cache of the search: the set of `(linearized operations, state)`
//! pairs already reached. Reaching a pair twice means the second path can add
//! nothing the first did not, so the search prunes it (Lowe's optimisation,
//! which turns Wing & Gong's factorial search into one bounded by the number of
//! distinct configurations).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};

/// A fixed set of operation ids `0..n`, with an incrementally maintained hash
/// so that keying the cache does not rehash every word on every step.
#[derive(Clone, Debug)]
pub(crate) struct Bitset {
    words: Vec<u64>,
    hash: u64,
}

impl Bitset {
    /// An empty set able to hold ids `0..n`.
    pub(crate) fn new(n: usize) -> Self {
        Bitset {
            words: vec![0; n.div_ceil(64)],
            hash: 0,
        }
    }

    /// Adds `id`, which must not be present.
    pub(crate) fn insert(&mut self, id: usize) {
        debug_assert!(!self.contains(id));
        self.words[id / 64] |= 1 << (id % 64);
        self.hash ^= zobrist(id);
    }

    /// Removes `id`, which must be present.
    pub(crate) fn remove(&mut self, id: usize) {
        debug_assert!(self.contains(id));
        self.words[id / 64] &= !(1 << (id % 64));
        self.hash ^= zobrist(id);
    }

    /// Whether `id` is in the set.
    pub(crate) fn contains(&self, id: usize) -> bool {
        self.words[id / 64] & (1 << (id % 64)) != 0
    }
}

/// A per-id random 64-bit key (SplitMix64 of the id); the xor of the keys of
/// the members is the set's hash.
fn zobrist(id: usize) -> u64 {
    let mut z = (id as u64)
        .wrapping_add(1)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A small, fixed (unseeded) hasher in the style of FxHash, so the search does
/// the same work on every run.
#[derive(Default)]
pub(crate) struct FxHasher {
    hash: u64,
}

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut buf = [0u8; 8];
            buf[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(buf));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.hash = (self.hash.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    fn write_u8(&mut self, n: u8) {
        self.write_u64(u64::from(n));
    }

    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }

    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }

    fn finish(&self) -> u64 {
        self.hash
    }
}

/// A hasher for keys that already are good hashes.
#[derive(Default)]
struct IdentityHasher(u64);

impl Hasher for IdentityHasher {
    fn write(&mut self, _bytes: &[u8]) {
        unreachable!("IdentityHasher only hashes u64 keys");
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// The configurations sharing one combined hash: linearized words and state.
type Bucket<S> = Vec<(Box<[u64]>, S)>;

/// The set of configurations already explored, bucketed by a combined hash of
/// the linearized set and the state; buckets are compared in full, so hash
/// collisions cost time, never correctness.
pub(crate) struct Memo<S> {
    buckets: HashMap<u64, Bucket<S>, BuildHasherDefault<IdentityHasher>>,
}

impl<S: Eq + Hash> Memo<S> {
    /// An empty cache.
    pub(crate) fn new() -> Self {
        Memo {
            buckets: HashMap::default(),
        }
    }

    /// Records `(linearized, state)`; returns `false` if it was already there.
    pub(crate) fn insert(&mut self, linearized: &Bitset, state: &S) -> bool
    where
        S: Clone,
    {
        let mut hasher = FxHasher::default();
        state.hash(&mut hasher);
        let key = linearized.hash ^ hasher.finish().rotate_left(17);
        let bucket = self.buckets.entry(key).or_default();
        let seen = bucket
            .iter()
            .any(|(words, s)| **words == *linearized.words && s == state);
        if seen {
            return false;
        }
        bucket.push((linearized.words.clone().into_boxed_slice(), state.clone()));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitset_hash_depends_only_on_members() {
        let mut a = Bitset::new(130);
        let mut b = Bitset::new(130);
        a.insert(3);
        a.insert(129);
        b.insert(129);
        b.insert(7);
        b.insert(3);
        b.remove(7);
        assert_eq!(a.hash, b.hash);
        assert_eq!(a.words, b.words);
        assert!(a.contains(129) && !a.contains(7));
    }

    #[test]
    fn memo_rejects_repeats_only() {
        let mut memo = Memo::new();
        let mut set = Bitset::new(10);
        assert!(memo.insert(&set, &1u32));
        assert!(!memo.insert(&set, &1u32));
        assert!(memo.insert(&set, &2u32));
        set.insert(4);
        assert!(memo.insert(&set, &1u32));
    }
}
