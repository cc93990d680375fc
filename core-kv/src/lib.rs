//! The key/value service of the 6.5840 labs as pure state machines: the
//! single-server service with exactly-once semantics and the linearizable
//! service replicated on `core-raft`.
//!
//! **Not implemented yet.** This crate holds no code so far; it exists so
//! the workspace has its final shape. Nothing here should be used.
#![forbid(unsafe_code)]
