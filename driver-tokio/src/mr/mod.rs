//! MapReduce on tokio: the coordinator as an async TCP server. Task
//! execution, the worker (one blocking client, which async would not make
//! faster), options and progress come from `mr-exec`, so both runtimes
//! write identical files and speak identical frames.

pub mod coordinator;
