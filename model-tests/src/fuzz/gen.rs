//! The input generator: seeded, mixing pure random bytes with mutations of
//! valid encodings, so that inputs get past the first length or tag check
//! and deep into the decoders.

use core_raft::rng::SplitMix64;

/// Lengths and counts a hostile peer likes to claim: the edges of the
/// integer types and of the frame limits.
const INTERESTING: [u64; 12] = [
    0,
    1,
    0x7f,
    0x80,
    0xff,
    0xffff,
    1 << 20,
    (1 << 26) + 1,
    0x7fff_ffff,
    0xffff_ffff,
    1 << 40,
    u64::MAX,
];

/// The state of one input's generation: a PRNG seeded from the run's seed,
/// the target and the input's index, so that any input can be rebuilt on
/// its own (`--replay INDEX`) without generating the ones before it.
pub struct Gen {
    rng: SplitMix64,
}

impl Gen {
    /// The generator of input `index` of target number `target` in a run
    /// seeded with `seed`.
    pub fn new(seed: u64, target: usize, index: u64) -> Gen {
        // Each component goes through a SplitMix64 step of its own, so
        // nearby seeds and indices give unrelated streams.
        let mut mix = SplitMix64::new(seed ^ (target as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let a = mix.next_u64();
        Gen {
            rng: SplitMix64::new(a ^ SplitMix64::new(index).next_u64()),
        }
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.rng.next_u64() % n as u64) as usize
        }
    }

    fn byte(&mut self) -> u8 {
        self.rng.next_u64() as u8
    }

    fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }

    /// One input: pure random bytes one time in eight, otherwise a corpus
    /// entry with one to eight mutations (and a second entry to splice
    /// from). `fixup`, if any, repairs a checksum or length header half of
    /// the time, so that mutated payloads reach the decoder behind it.
    pub fn input(&mut self, corpus: &[Vec<u8>], fixup: Option<fn(&mut [u8])>) -> Vec<u8> {
        if corpus.is_empty() || self.chance(8) {
            let len = match self.below(4) {
                0 => self.below(16),
                1 => self.below(64),
                2 => self.below(512),
                _ => self.below(4096),
            };
            return (0..len).map(|_| self.byte()).collect();
        }
        let mut data = corpus[self.below(corpus.len())].clone();
        let mutations = 1 + self.below(8).min(self.below(8));
        for _ in 0..mutations {
            let other = &corpus[self.below(corpus.len())];
            self.mutate(&mut data, other);
        }
        if let Some(fix) = fixup {
            if self.chance(2) {
                fix(&mut data);
            }
        }
        data
    }

    fn mutate(&mut self, data: &mut Vec<u8>, other: &[u8]) {
        let len = data.len();
        match self.below(10) {
            // Flip one bit.
            0 if len > 0 => {
                let at = self.below(len);
                data[at] ^= 1 << self.below(8);
            }
            // Overwrite a byte with a random or an edge value.
            1 if len > 0 => {
                let at = self.below(len);
                data[at] = match self.below(4) {
                    0 => 0,
                    1 => 0xff,
                    2 => 0x80,
                    _ => self.byte(),
                };
            }
            // Insert random bytes.
            2 => {
                let at = self.below(len + 1);
                let n = 1 + self.below(16);
                let bytes: Vec<u8> = (0..n).map(|_| self.byte()).collect();
                data.splice(at..at, bytes);
            }
            // Delete a run.
            3 if len > 0 => {
                let at = self.below(len);
                let n = 1 + self.below((len - at).min(32));
                data.drain(at..at + n);
            }
            // Truncate.
            4 => data.truncate(self.below(len + 1)),
            // Splice: our head, another encoding's tail.
            5 => {
                let cut = self.below(len + 1);
                let from = self.below(other.len() + 1);
                data.truncate(cut);
                data.extend_from_slice(&other[from..]);
            }
            // Duplicate a run in place (repeated elements of a sequence).
            6 if len > 0 => {
                let at = self.below(len);
                let n = 1 + self.below((len - at).min(64));
                let run = data[at..at + n].to_vec();
                data.splice(at..at, run);
            }
            // A length or count claim: an edge value as a varint (postcard
            // lengths), replacing one or a few bytes.
            7 if len > 0 => {
                let at = self.below(len);
                let n = (1 + self.below(3)).min(len - at);
                let value = self.interesting(len);
                data.splice(at..at + n, varint(value));
            }
            // A fixed-width length: 4 bytes big-endian (frame prefix) or
            // little-endian (storage headers), or 8 bytes little-endian.
            8 if len > 0 => {
                let value = self.interesting(len);
                let bytes: Vec<u8> = match self.below(3) {
                    0 => (value as u32).to_be_bytes().to_vec(),
                    1 => (value as u32).to_le_bytes().to_vec(),
                    _ => value.to_le_bytes().to_vec(),
                };
                // Most length fields sit at the start of a header.
                let at = if self.chance(2) { 0 } else { self.below(len) };
                let end = (at + bytes.len()).min(len);
                data.splice(at..end, bytes);
            }
            // Append random bytes (trailing garbage, a second frame).
            _ => {
                let n = 1 + self.below(16);
                for _ in 0..n {
                    let b = self.byte();
                    data.push(b);
                }
            }
        }
    }

    /// An edge value, or one near the input's own length (off-by-one claims).
    fn interesting(&mut self, len: usize) -> u64 {
        if self.chance(4) {
            (len as u64)
                .wrapping_add(self.below(5) as u64)
                .wrapping_sub(2)
        } else {
            INTERESTING[self.below(INTERESTING.len())]
        }
    }

    /// A number in `1..=n` for chunking a stream.
    pub fn chunk(&mut self, n: usize) -> usize {
        1 + self.below(n.max(1))
    }
}

/// `value` as postcard writes a length: LEB128, least significant first.
pub fn varint(mut value: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(10);
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_input_is_a_function_of_seed_target_and_index() {
        let corpus = vec![vec![1, 2, 3, 4, 5, 6, 7, 8], vec![9; 20]];
        let a = Gen::new(7, 2, 1000).input(&corpus, None);
        let b = Gen::new(7, 2, 1000).input(&corpus, None);
        assert_eq!(a, b);
        let others: Vec<Vec<u8>> = (0..50)
            .map(|i| Gen::new(7, 2, i).input(&corpus, None))
            .collect();
        assert!(others.iter().filter(|o| **o != a).count() > 40);
    }

    #[test]
    fn varints_match_postcard() {
        for v in [0u64, 1, 127, 128, 300, u32::MAX.into(), u64::MAX] {
            assert_eq!(varint(v), postcard::to_allocvec(&v).unwrap());
        }
    }
}
