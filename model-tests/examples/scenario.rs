//! Write a fault scenario against a simulated Raft cluster, the way the lab
//! ports do: partition the leader away, check that the majority elects a
//! new one and commits, heal, and check that everyone converges. Every
//! invariant is checked after every step while this runs.
//!
//! Run with `cargo run --release -p model-tests --example scenario [seed]`.

use model_tests::sim::lab::cmd;
use model_tests::sim::{Cluster, SimConfig};

fn main() {
    let seed = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let mut c = Cluster::new(SimConfig::lab(5, false, seed));
    let old = c.check_one_leader();
    println!("[{:>6} ms] leader is n{old}", c.now_ms);

    // `disconnect` also marks the server disconnected for the lab helpers,
    // so `check_one_leader` looks only at the majority.
    c.disconnect(old);
    let new = c.check_one_leader();
    println!(
        "[{:>6} ms] leader cut off; n{new} leads the majority",
        c.now_ms
    );
    let index = c.one(cmd(42), 4, true);
    println!("[{:>6} ms] the majority committed 42 at {index}", c.now_ms);

    c.connect_all();
    let index = c.one(cmd(43), 5, true);
    println!(
        "[{:>6} ms] healed; all five committed 43 at {index}",
        c.now_ms
    );
    println!("{}", c.describe_nodes());
    println!(
        "{} steps, {} messages, {} bytes on the wire",
        c.steps, c.net.messages_sent, c.net.bytes_sent
    );
}
