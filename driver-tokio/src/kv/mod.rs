//! The replicated key/value service on tokio: [`run_kv_node`] runs one
//! replica of `core_kv::KvStore` (the generic [`crate::node`] with the
//! key/value state machine), and [`KvClient`] talks to a cluster of them.

pub use crate::client::KvClient;
use crate::node::{run_node, NodeError};
use core_kv::KvStore;
use node_shell::NodeOptions;
use std::future::Future;

/// Run one key/value replica until `shutdown` resolves. `opts.protocol`
/// should be `core_kv::KV_PROTOCOL_VERSION`.
pub async fn run_kv_node(
    opts: NodeOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<(), NodeError> {
    run_node(opts, KvStore::default(), shutdown)
        .await
        .map(|_| ())
}
