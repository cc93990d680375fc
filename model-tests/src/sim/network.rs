//! The simulated network: who can reach whom, and what happens to a message
//! on the way (delay, loss, duplication, long reordering), with the knobs of
//! the 6.5840 `labrpc` network (§1.1 of the lab catalogue).

use super::rng::SimRng;
use core_raft::Message;

/// Fault settings of the network. Times are virtual milliseconds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetConfig {
    /// Loss, out of 1000, applied to every message.
    pub drop_per_mille: u64,
    /// Duplication, out of 1000: the message is delivered twice.
    pub duplicate_per_mille: u64,
    /// Minimum one-way delay.
    pub delay_min_ms: u64,
    /// Maximum one-way delay (inclusive).
    pub delay_max_ms: u64,
    /// labrpc's long reordering: 600 in 900 responses are held back
    /// 200 + rand(0..rand(0..2000)) ms.
    pub long_reordering: bool,
}

impl NetConfig {
    /// labrpc with `reliable = true`: no loss, no artificial delay (we use a
    /// 1 ms hop so that delivery is never instantaneous).
    pub fn reliable() -> Self {
        NetConfig {
            drop_per_mille: 0,
            duplicate_per_mille: 0,
            delay_min_ms: 1,
            delay_max_ms: 1,
            long_reordering: false,
        }
    }

    /// labrpc with `reliable = false`: 10% of requests and 10% of replies are
    /// lost, each delayed 0–26 ms (`rand % 27`).
    pub fn unreliable() -> Self {
        NetConfig {
            drop_per_mille: 100,
            duplicate_per_mille: 0,
            delay_min_ms: 0,
            delay_max_ms: 26,
            long_reordering: false,
        }
    }
}

/// What the network decided for one message: deliver after these delays
/// (one entry per copy; empty if lost).
pub type Fate = Vec<u64>;

/// Connectivity plus fault decisions and traffic counters.
#[derive(Clone, Debug)]
pub struct Network {
    /// Current fault settings.
    pub config: NetConfig,
    /// `links[a][b]`: messages from a to b get through.
    links: Vec<Vec<bool>>,
    /// Requests delivered to each node (the lab's `GetCount`).
    pub requests_delivered: Vec<u64>,
    /// Encoded bytes of every message sent (the lab's `GetTotalBytes`).
    pub bytes_sent: u64,
    /// Messages sent, delivered or not.
    pub messages_sent: u64,
    /// InstallSnapshot messages sent, delivered or not.
    pub snapshots_sent: u64,
}

impl Network {
    /// A fully connected network of `n` nodes.
    pub fn new(n: usize, config: NetConfig) -> Self {
        Network {
            config,
            links: vec![vec![true; n]; n],
            requests_delivered: vec![0; n],
            bytes_sent: 0,
            messages_sent: 0,
            snapshots_sent: 0,
        }
    }

    /// Whether a message from node `a` to node `b` (positions, not ids)
    /// would get through now.
    pub fn linked(&self, a: usize, b: usize) -> bool {
        self.links[a][b]
    }

    /// Enable or disable both directions between `a` and `b`.
    pub fn set_link(&mut self, a: usize, b: usize, up: bool) {
        self.links[a][b] = up;
        self.links[b][a] = up;
    }

    /// Split nodes in two sides: links inside each side up, across down.
    pub fn partition(&mut self, side_a: &[usize], side_b: &[usize]) {
        for (side, other) in [(side_a, side_b), (side_b, side_a)] {
            for &x in side {
                for &y in side {
                    self.set_link(x, y, true);
                }
                for &y in other {
                    self.set_link(x, y, false);
                }
            }
        }
    }

    /// Bring every link up.
    pub fn heal(&mut self) {
        for row in &mut self.links {
            row.iter_mut().for_each(|l| *l = true);
        }
    }

    /// Enable or disable the one direction from `a` to `b`.
    pub fn set_one_way(&mut self, a: usize, b: usize, up: bool) {
        self.links[a][b] = up;
    }

    /// Decide what happens to a Raft message from node `from` to node `to`
    /// (positions, not ids).
    pub fn route(&mut self, rng: &mut SimRng, from: usize, to: usize, msg: &Message) -> Fate {
        if matches!(msg, Message::InstallSnapshot { .. }) {
            self.snapshots_sent += 1;
        }
        let bytes = postcard::to_allocvec(msg).map_or(0, |b| b.len());
        let linked = self.linked(from, to);
        self.fate(rng, linked, bytes, !msg.is_request())
    }

    /// Decide what happens to any message: lost if `linked` is false or by
    /// the configured loss, else delivered once or twice after delays.
    /// `is_reply` makes it subject to long reordering.
    pub fn fate(&mut self, rng: &mut SimRng, linked: bool, bytes: usize, is_reply: bool) -> Fate {
        self.messages_sent += 1;
        self.bytes_sent += bytes as u64;
        if !linked {
            return Vec::new();
        }
        let c = &self.config;
        if rng.chance(c.drop_per_mille, 1000) {
            return Vec::new();
        }
        let copies = if rng.chance(c.duplicate_per_mille, 1000) {
            2
        } else {
            1
        };
        (0..copies)
            .map(|_| {
                let mut delay = rng.between(c.delay_min_ms, c.delay_max_ms);
                if c.long_reordering && is_reply && rng.chance(600, 900) {
                    let spread = rng.below(2000);
                    delay += 200 + rng.below(spread + 1);
                }
                delay
            })
            .collect()
    }
}
