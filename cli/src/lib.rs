//! What the `kv` and `mr` commands share: the runtime choice, logging
//! set-up and signal handling ([`common`]), and the parts of each command
//! that are more than argument parsing ([`kv`]: local clusters, the demo and
//! the load generator; [`mr`]: the benchmark).
#![warn(missing_docs)]

pub mod common;
pub mod kv;
pub mod mr;
