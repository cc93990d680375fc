//! The std-threads + mio driver, as a library to embed: it runs the pure
//! cores over real TCP, files and timers on a mio event loop, with no async
//! runtime.
//!
//! * [`node::run_node`]: a replica of *any* `core_kv::StateMachine` on a
//!   mio loop with a disk thread (a user's own machine, or the key/value
//!   store: [`kv::run_kv_node`]).
//! * [`client::Client`]: a blocking client of such a cluster, and
//!   [`admin::AdminClient`] for its operators (status, membership,
//!   leadership transfer).
//! * [`mr`]: the MapReduce coordinator on a mio loop, and a whole job in
//!   one process. Task execution and the worker come from `mr-exec`.
//!
//! The `kv` and `mr` commands (crate `cli`) pick this driver or
//! `driver-tokio` at run time; both speak one wire format.
#![warn(missing_docs)]

pub mod admin;
pub mod client;
pub mod kv;
pub mod mr;
pub mod net;
pub mod node;

pub use admin::{AdminClient, AdminError};
pub use client::{Client, ClientError, KvClient};
pub use node::{run_node, NodeError};
/// How to run a node (shared with `driver-tokio`).
pub use node_shell::{NodeOptions, DEFAULT_CLUSTER};
