//! MapReduce on std threads and mio: the coordinator on a single-threaded
//! mio event loop ([`coordinator::run_coordinator`]) and a whole job inside
//! one process ([`local::run_local`]). Task execution and the worker come
//! from `mr-exec`, which both runtimes share.

pub mod coordinator;
pub mod local;
