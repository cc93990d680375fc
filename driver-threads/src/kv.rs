//! The replicated key/value service on the threads driver: [`run_kv_node`]
//! runs one replica of `core_kv::KvStore` (the generic [`crate::node`] with
//! the key/value state machine), and [`KvClient`] talks to a cluster.

pub use crate::client::KvClient;
use crate::node::{run_node, NodeError};
use core_kv::KvStore;
use node_shell::NodeOptions;
use std::sync::atomic::AtomicBool;

/// Run one key/value replica until `stop` is set. `opts.protocol` should be
/// `core_kv::KV_PROTOCOL_VERSION`.
pub fn run_kv_node(opts: NodeOptions, stop: &AtomicBool) -> Result<(), NodeError> {
    run_node(opts, KvStore::default(), stop).map(|_| ())
}
