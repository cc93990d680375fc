//! The std-threads + mio driver, as a library to embed: [`kv`] runs a
//! replica of the key/value service on a mio event loop with a disk thread,
//! [`mr`] runs the MapReduce coordinator on a mio event loop (and a whole
//! job in one process). Task execution and the MapReduce worker come from
//! `mr-exec`; the `kv` and `mr` commands live in crate `cli`.
#![warn(missing_docs)]

pub mod kv;
pub mod mr;
pub mod net;
