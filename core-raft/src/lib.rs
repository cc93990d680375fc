//! placeholder; filled in the next commit
#![forbid(unsafe_code)]
pub mod config;
pub mod durable;
pub mod io;
pub mod message;
pub mod rng;
pub mod types;
