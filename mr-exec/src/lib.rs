//! MapReduce execution that does not depend on an I/O runtime: what a
//! worker does with a task, and everything around the coordinator core that
//! both runtimes share.
//!
//! * [`task`]: map, reduce and sequential execution over files, with
//!   bounded memory ([`sorter`], [`merge`], [`records`]).
//! * [`worker::run_worker`]: the worker, a blocking client with one request
//!   in flight. Async buys nothing there, so both runtimes run this one.
//! * [`apps`]: resolving `--app NAME` / `--lib PATH`; [`testapps`] holds
//!   the lab's test applications, [`plugin`] loads shared libraries.
//! * [`host`]: what running a coordinator needs besides sockets — the
//!   pure shell (`node_shell::mr`, which decides handshakes and frames),
//!   its event and progress lines, the job's wall time and result — so each
//!   driver's event loop only moves bytes and fires ticks.
//! * [`options`], [`progress`], [`error`], [`addr`]: settings, the progress
//!   display, errors and address helpers of both runtimes.
#![warn(missing_docs)]

pub mod addr;
pub mod apps;
pub mod error;
pub mod host;
pub mod merge;
pub mod options;
pub mod plugin;
pub mod progress;
pub mod records;
pub mod sorter;
pub mod task;
pub mod testapps;
pub mod worker;
