//! Deterministic simulation for the pure cores: a seed-driven world with
//! fault injection and invariant checks ([`sim`], [`kvsim`]). Client
//! histories are checked with the `linearizability` crate.
//!
//! It is public so that users can test their own state machines.

pub mod kvsim;
pub mod sim;
