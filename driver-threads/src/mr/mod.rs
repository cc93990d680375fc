//! MapReduce on std threads and mio, plus the runtime-neutral pieces both
//! drivers share.
//!
//! * [`coordinator::run_coordinator`]: the coordinator process (mio loop).
//! * [`worker::run_worker`]: a worker (blocking client).
//! * [`task`]: map, reduce and sequential execution over files, with
//!   bounded memory ([`sorter`], [`merge`], [`records`]).
//! * [`apps`]: resolving `--app NAME` / `--lib PATH`; [`testapps`] holds
//!   the lab's test applications, [`plugin`] loads shared libraries.
//! * [`shell`], [`options`], [`progress`], [`error`]: glue shared with
//!   driver-tokio.
//! * [`local::run_local`]: a whole job inside one process, for embedding.

pub mod apps;
pub mod coordinator;
pub mod error;
pub mod local;
pub mod merge;
pub mod options;
pub mod plugin;
pub mod progress;
pub mod records;
pub mod shell;
pub mod sorter;
pub mod task;
pub mod testapps;
pub mod worker;
