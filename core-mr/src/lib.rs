//! MapReduce (Dean & Ghemawat, 2004; MIT 6.5840 lab 1) as two pure,
//! deterministic state machines: a [`Coordinator`] that schedules map and
//! reduce tasks and re-issues the tasks of dead or silent workers, and a
//! [`Worker`] that sequences one worker's conversation with it.
//!
//! Neither machine touches a socket, a file, a clock or a thread. A driver
//! (one of the workspace's `driver-*` crates) owns all of those and, for each
//! machine:
//!
//! 1. builds it ([`Coordinator::new`] with a [`CoordinatorConfig`] whose
//!    timeout is counted in ticks, or [`Worker::new`]);
//! 2. feeds it every event as an `Input` through `step`: a request or a
//!    disconnect from a worker, a reply from the coordinator, the outcome of
//!    a task, and `Tick` at a fixed interval (the coordinator's only clock);
//! 3. carries out the returned `Action`s in order: send a reply or request,
//!    run a map or reduce task with the user's [`App`], exit;
//! 4. frames every [`message`] with postcard (the `wire` crate), opening each
//!    connection with a handshake carrying [`PROTOCOL_VERSION`].
//!
//! Files follow the lab: map task `X` writes `mr-X-Y` for every reduce task
//! `Y`, keys partitioned by [`hash::partition`]; reduce task `Y` writes
//! `mr-out-Y` with one `key value` line per key. Drivers write every file to
//! a temporary name and rename it into place, so a crash never exposes a
//! partial file, and report a task done only after the rename.
//!
//! Applications implement [`App`]; [`apps`] holds the pure built-ins (`wc`,
//! `indexer`), and [`export_app!`] exports one from a shared library.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod app;
pub mod apps;
pub mod coordinator;
pub mod hash;
pub mod message;
pub mod types;
pub mod worker;

pub use app::{App, PLUGIN_ABI_SYMBOL, PLUGIN_ABI_VERSION, PLUGIN_CREATE_SYMBOL};
pub use coordinator::{Coordinator, CoordinatorConfig};
pub use message::{MapTask, ReduceTask, Reply, Report, Request, PROTOCOL_VERSION};
pub use types::{MapTaskId, ReduceTaskId, TaskRef, WorkerId};
pub use worker::Worker;
