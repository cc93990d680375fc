//! Service-level simulation: replicated state machines and key/value
//! services with clients, on the same seeded network and invariant checks
//! as the Raft simulator.

pub mod clients;
pub mod counter;
pub mod lab;
pub mod swarm;
pub mod world;

pub use world::{Answer, Outbox, ServiceCheck, SimClient, World, WorldConfig};
