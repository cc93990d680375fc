//! Deterministic simulation for the pure cores: a seed-driven world with
//! fault injection and invariant checks ([`sim`], [`kvsim`]). Client
//! histories are checked with the `linearizability` crate. [`golden`] runs
//! golden-file scenario stories (etcd's `testdata/*.txt` style) over the
//! hand-driven cluster.
//!
//! It is public so that users can test their own state machines.

pub mod fuzz;
pub mod golden;
pub mod kvsim;
pub mod shardsim;
pub mod sim;
