//! Drivers built on std threads and a mio event loop.
//!
//! [`mr`] runs the MapReduce coordinator (one mio event loop thread) and
//! workers (a blocking TCP client per worker). It also holds the parts of a
//! MapReduce driver that do not depend on the runtime — running map and
//! reduce tasks against files, external sorting, the lab's test
//! applications, loading applications from shared libraries — which
//! `driver-tokio` reuses.
#![warn(missing_docs)]

pub mod kv;
pub mod mr;
pub mod net;
