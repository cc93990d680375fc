//! The simulator's one source of randomness. Every choice in a simulated
//! world (delays, drops, crashes, workload) is drawn from a `SimRng` derived
//! from the run's seed, so a seed replays the run exactly.

use core_raft::rng::SplitMix64;

/// A seeded generator with the helpers fault injection needs. Probabilities
/// are integer ratios so no float rounding can differ across platforms.
#[derive(Clone, Debug)]
pub struct SimRng(SplitMix64);

impl SimRng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Self {
        SimRng(SplitMix64::new(seed))
    }

    /// An independent generator derived from this one (for sub-systems).
    pub fn fork(&mut self) -> SimRng {
        SimRng::new(self.0.next_u64())
    }

    /// 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// Uniform in `0..n` (0 if `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.0.next_u64() % n
        }
    }

    /// Uniform in `lo..=hi`.
    pub fn between(&mut self, lo: u64, hi: u64) -> u64 {
        self.0.range_inclusive(lo, hi)
    }

    /// True with probability `num / den`.
    pub fn chance(&mut self, num: u64, den: u64) -> bool {
        self.below(den) < num
    }

    /// A uniformly chosen element index of a slice of length `len` (> 0).
    pub fn pick(&mut self, len: usize) -> usize {
        self.below(len as u64) as usize
    }
}
