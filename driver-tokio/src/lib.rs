//! Drivers built on tokio, as libraries to embed: [`kv`] runs a replica of
//! the key/value service over TCP with its Raft state on disk, and the
//! client that talks to one; [`mr`] runs the MapReduce coordinator as an
//! async TCP server. The `kv` and `mr` commands (crate `cli`) pick this
//! driver or `driver-threads` at run time.
#![warn(missing_docs)]

pub mod framed;
pub mod kv;
pub mod mr;
