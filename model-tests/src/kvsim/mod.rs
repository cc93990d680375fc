//! Service-level simulation: replicated state machines behind the node
//! shell the drivers run, and key/value services with clients, on the same
//! event queue, seeded network, lossy disks and invariant checks as the
//! Raft simulator ([`crate::sim`]); by hand in [`scenario`].

pub mod clients;
pub mod counter;
pub mod lab;
pub mod scenario;
pub mod swarm;
pub mod world;

pub use world::{Answer, Outbox, ServiceCheck, SimClient, World, WorldConfig};
