//! The `kv` command's larger pieces.

pub mod bench;
pub mod chaos;
pub mod demo;
pub mod flood;
pub mod local;
pub mod member;
pub mod workload;
