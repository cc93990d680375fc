//! Drivers built on tokio. [`mr`] runs the MapReduce coordinator and
//! workers as async TCP servers and clients; the `mr` command (this
//! crate's binary) runs either runtime.
#![warn(missing_docs)]

pub mod kv;
pub mod mr;
