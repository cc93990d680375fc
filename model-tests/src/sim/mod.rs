//! The one deterministic simulation harness: a seed drives a virtual clock,
//! one event queue, a network with the lab's faults, disks that keep
//! written and synced state apart, crashes and restarts, and invariant
//! checks after every step.
//!
//! * Shared by every world: [`queue`], [`rng`], [`network`], [`disk`],
//!   [`invariants`] (Raft's safety properties), [`durability`] (persist
//!   before send, action by action), [`trace`], [`seeds`].
//! * [`cluster`]: Raft cores with the lab's applier, in virtual time (lab
//!   ports, swarms) or by hand ([`scenario`]: the scenario tests, addressed
//!   by node id).
//! * The service worlds (replicated state machines behind the node shells
//!   the drivers run, and their clients) live in `crate::kvsim` on the same
//!   pieces.

pub mod app;
pub mod cluster;
pub mod disk;
pub mod durability;
pub mod invariants;
pub mod lab;
pub mod network;
pub mod operator;
pub mod queue;
pub mod rng;
pub mod scenario;
pub mod seeds;
pub mod swarm;
pub mod trace;

pub use cluster::{Cluster, Delivery, Envelope, Lost, SimConfig};
pub use network::NetConfig;
pub use rng::SimRng;
pub use trace::TraceMode;
