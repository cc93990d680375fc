//! A deterministic, seed-driven simulator for the Raft core: virtual time,
//! one event queue, a network with the lab's faults, crash and restart from
//! durable state, and invariant checks after every step.

pub mod app;
pub mod cluster;
pub mod invariants;
pub mod lab;
pub mod network;
pub mod rng;
pub mod seeds;
pub mod swarm;

pub use cluster::{Cluster, SimConfig, TraceMode};
pub use network::NetConfig;
pub use rng::SimRng;
