//! The sharded key/value service of the 6.5840 labs (shard controller, live
//! shard migration, garbage collection) as pure state machines.
//!
//! **Not implemented yet.** This crate holds no code so far; it exists so
//! the workspace has its final shape. Nothing here should be used.
#![forbid(unsafe_code)]
