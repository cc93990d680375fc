//! The replicated key/value service on tokio: a server node (`node`) that
//! runs `core_kv::KvReplica` over real TCP and the on-disk `storage`, and a
//! client (`client`) that drives the sans-IO `core_kv::Clerk`.

pub mod client;
pub mod node;
