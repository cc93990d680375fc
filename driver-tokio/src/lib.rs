//! The tokio driver, as a library to embed: it runs the pure cores over
//! real TCP, files and timers on a tokio runtime.
//!
//! * [`node::run_node`]: a replica of *any* `core_kv::StateMachine`, with
//!   its Raft state on disk (a user's own machine, or the key/value store:
//!   [`kv::run_kv_node`]).
//! * [`client::Client`]: a client of such a cluster ([`kv::KvClient`] for
//!   the key/value service).
//! * [`mr`]: the MapReduce coordinator as an async TCP server.
//!
//! The `kv` and `mr` commands (crate `cli`) pick this driver or
//! `driver-threads` at run time; both speak one wire format.
#![warn(missing_docs)]

pub mod client;
pub mod kv;
pub mod mr;
pub mod node;

pub use client::{Client, ClientError, KvClient};
pub use node::{run_node, until_set, NodeError};
/// How to run a node (shared with `driver-threads`).
pub use node_shell::{NodeOptions, DEFAULT_CLUSTER};
