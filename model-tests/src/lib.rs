//! Deterministic simulation for the pure cores: a seed-driven world with
//! fault injection and invariant checks ([`sim`]), and a linearizability
//! checker for client histories ([`linearizability`]).
//!
//! Both are public so that users can test their own state machines, and so
//! that drivers can check histories recorded against real clusters.

pub mod kvsim;
pub mod linearizability;
pub mod sim;
