//! The replicated key/value state machine kept in an embedded database
//! ([redb]): [`DiskKv`] is [`core_kv::KvStore`] on disk, with exactly its
//! semantics and its snapshot bytes, for states larger than memory or too
//! large to rebuild from a snapshot at every restart.
//!
//! What a caller (the node's driver) does:
//!
//! 1. [`DiskKv::open`] the database file, and hand the store to the replica
//!    (`core_kv::Rsm::restore`). The replica asks
//!    [`StateMachine::applied_index`](core_kv::StateMachine::applied_index):
//!    the index of the last *durable* apply, through which the store holds
//!    every entry's effects. The Raft log must keep every entry after it
//!    (Raft's own snapshots cover the ones it compacts: a store behind the
//!    stored snapshot is restored from it).
//! 2. The replica applies entries. Each apply is one database transaction
//!    holding the entry's effects and its index, committed without fsync;
//!    every [`Options::durable_every`]-th apply is committed durably, which
//!    makes it and all the earlier ones durable. A crash loses a suffix of
//!    applies, never part of one.
//! 3. Call [`DiskKv::sync`] on a timer (for example every 100 ms of ticks),
//!    so that a quiet node's applies become durable too and a restart
//!    replays little. Dropping the store syncs it.
//! 4. Snapshots ([`StateMachine::snapshot`](core_kv::StateMachine::snapshot))
//!    stream from one read transaction while applies go on, in the same
//!    bytes as `KvStore`'s, so nodes of either kind exchange snapshots.
//!
//! An I/O error inside `apply` or `query` panics: a replica cannot skip an
//! entry or answer without its state, and a restart resumes from the last
//! durable commit.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod error;
mod snapshot;
mod store;

pub use error::Error;
pub use snapshot::SnapshotReader;
pub use store::{DiskKv, Options, FORMAT};
