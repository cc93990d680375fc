//! MapReduce on tokio. Task execution, app loading, progress display and
//! options come from `driver_threads::mr` (they are runtime-neutral), so
//! both runtimes write identical files and speak identical frames.

pub mod bench;
pub mod coordinator;
pub mod framed;
pub mod worker;
