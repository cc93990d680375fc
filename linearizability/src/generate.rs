//! Random histories that are linearizable by construction, for testing and
//! benchmarking checkers (this one, or yours).
//!
//! A history is produced from a sequential execution of the versioned KV
//! model: each operation gets a linearization point, strictly increasing, and
//! its interval is then widened at random around that point without crossing
//! the previous operation of the same client. Since every operation takes
//! effect inside its own interval, the result is linearizable.

use super::model::Operation;
use super::models::{KvErr, KvInput, KvOutput, KvState};

/// Parameters of a random versioned-KV history. Same parameters, same history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RandomKvHistory {
    /// Seeds every choice.
    pub seed: u64,
    /// Number of operations to generate (fewer if every client has stopped
    /// after an operation without a reply).
    pub ops: usize,
    /// Number of keys, named `k0`, `k1`, ...
    pub keys: usize,
    /// Number of clients; each has at most one operation outstanding.
    pub clients: usize,
    /// How far (in time units) an interval may stretch on each side of its
    /// linearization point. Larger means more overlap and a harder search.
    pub max_widening: u64,
    /// Percentage of `Put`s reported as `ErrMaybe`.
    pub maybe_percent: u64,
    /// Percentage of operations that never get a reply (their client stops).
    pub no_reply_percent: u64,
}

impl Default for RandomKvHistory {
    /// 1000 operations, 10 keys, 15 clients, moderate overlap.
    fn default() -> Self {
        RandomKvHistory {
            seed: 0,
            ops: 1000,
            keys: 10,
            clients: 15,
            max_widening: 40,
            maybe_percent: 5,
            no_reply_percent: 0,
        }
    }
}

impl RandomKvHistory {
    /// Generates the history, in order of linearization points.
    pub fn generate(&self) -> Vec<Operation<KvInput, KvOutput>> {
        let mut rng = Rng(self.seed);
        let mut keys = vec![KvState::default(); self.keys.max(1)];
        let mut free_at = vec![0u64; self.clients.max(1)];
        let mut alive: Vec<usize> = (0..free_at.len()).collect();
        let mut history = Vec::with_capacity(self.ops);
        let mut point = 0u64;
        for i in 0..self.ops {
            if alive.is_empty() {
                break;
            }
            let slot = rng.below(alive.len() as u64) as usize;
            let client = alive[slot];
            point = (point + 1 + rng.below(3)).max(free_at[client]);
            let call = point
                .saturating_sub(rng.below(self.max_widening + 1))
                .max(free_at[client]);
            let ret = point + rng.below(self.max_widening + 1);
            let k = rng.below(keys.len() as u64) as usize;
            let key = format!("k{k}");
            let state = &mut keys[k];
            let no_reply = rng.below(100) < self.no_reply_percent;
            let (input, output) = if rng.below(2) == 0 {
                let err = if state.version == 0 {
                    KvErr::ErrNoKey
                } else {
                    KvErr::Ok
                };
                let output = KvOutput::Get {
                    value: state.value.clone(),
                    version: state.version,
                    err,
                };
                (KvInput::Get { key }, output)
            } else {
                let version = match rng.below(10) {
                    0..=5 => state.version,
                    6..=8 => state.version.saturating_sub(1 + rng.below(2)),
                    _ => state.version + 1,
                };
                let value = format!("c{client}-{i}");
                let matches = version == state.version;
                // A reply-less Put may or may not have reached the store.
                let applied = matches && (!no_reply || rng.below(2) == 0);
                if applied {
                    *state = KvState {
                        value: value.clone(),
                        version: state.version + 1,
                    };
                }
                let err = if rng.below(100) < self.maybe_percent {
                    KvErr::ErrMaybe
                } else if matches {
                    KvErr::Ok
                } else {
                    KvErr::ErrVersion
                };
                let input = KvInput::Put {
                    key,
                    value,
                    version,
                };
                (input, KvOutput::Put { err })
            };
            let client_id = client as u64;
            if no_reply {
                history.push(Operation::pending(client_id, input, call));
                alive.swap_remove(slot);
            } else {
                history.push(Operation::completed(client_id, input, call, ret, output));
                free_at[client] = ret + 1;
            }
        }
        history
    }
}

/// Replaces the value returned by one completed `Get` (picked with `seed`) by
/// a value that was never written, which makes any history illegal. Returns
/// the index of the changed operation, or `None` if there is no completed
/// `Get`.
pub fn corrupt_one_read(history: &mut [Operation<KvInput, KvOutput>], seed: u64) -> Option<usize> {
    let reads: Vec<usize> = history
        .iter()
        .enumerate()
        .filter(|(_, op)| matches!(op.output(), Some(KvOutput::Get { .. })))
        .map(|(i, _)| i)
        .collect();
    if reads.is_empty() {
        return None;
    }
    let index = reads[Rng(seed).below(reads.len() as u64) as usize];
    if let Some(reply) = history[index].reply.as_mut() {
        if let KvOutput::Get { value, .. } = &mut reply.output {
            *value = format!("corrupted-{index}");
        }
    }
    Some(index)
}

/// SplitMix64, kept private so generated histories never change under us.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A value in `0..n` (`n` > 0).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}
