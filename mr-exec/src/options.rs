//! Settings of a coordinator or worker process, shared by both runtimes.

use crate::task::TaskOptions;
use core_mr::CoordinatorConfig;
use std::path::PathBuf;
use std::time::Duration;

/// Default cluster id: workers and coordinators of one job must agree.
pub const DEFAULT_CLUSTER: u64 = 0x006d_726a_6f62; // "mrjob"

/// Default address: both ends on this machine, no flags needed.
pub const DEFAULT_ADDR: &str = "127.0.0.1:5840";

/// Largest frame either side accepts; defined with the protocol's shell.
pub use node_shell::mr::MAX_FRAME_BYTES;

/// How to run a coordinator.
#[derive(Clone, Debug)]
pub struct CoordinatorOptions {
    /// Address to listen on (`127.0.0.1:0` picks a free port).
    pub listen: String,
    /// Input files, one map task each.
    pub files: Vec<String>,
    /// Number of reduce tasks.
    pub n_reduce: u32,
    /// A task held longer than this is handed to another worker.
    pub task_timeout: Duration,
    /// The core's clock resolution.
    pub tick: Duration,
    /// How long to keep telling workers "exit" after the job ends.
    pub grace: Duration,
    /// Failed attempts of one task before the job fails.
    pub max_task_failures: u32,
    /// Cluster id expected in workers' handshakes.
    pub cluster: u64,
    /// If set, the bound address is written here once listening (how
    /// tests and scripts find a port chosen with `:0`).
    pub addr_file: Option<PathBuf>,
    /// Suppress progress lines.
    pub quiet: bool,
}

impl CoordinatorOptions {
    /// Options with the lab's defaults for these files.
    pub fn new(files: Vec<String>) -> Self {
        CoordinatorOptions {
            listen: DEFAULT_ADDR.to_string(),
            files,
            n_reduce: 10,
            task_timeout: Duration::from_secs(10),
            tick: Duration::from_millis(100),
            grace: Duration::from_secs(1),
            max_task_failures: 3,
            cluster: DEFAULT_CLUSTER,
            addr_file: None,
            quiet: false,
        }
    }

    /// The core's configuration: the timeout converted to ticks (rounded up).
    pub fn core_config(&self) -> CoordinatorConfig {
        let tick = self.tick.as_micros().max(1);
        let ticks = self.task_timeout.as_micros().div_ceil(tick).max(1);
        CoordinatorConfig {
            n_reduce: self.n_reduce,
            task_timeout_ticks: u64::try_from(ticks).unwrap_or(u64::MAX),
            max_task_failures: self.max_task_failures,
        }
    }
}

/// How to run a worker.
#[derive(Clone, Debug)]
pub struct WorkerOptions {
    /// The coordinator's address.
    pub coordinator: String,
    /// Cluster id sent in the handshake.
    pub cluster: u64,
    /// How long to keep retrying the first connection.
    pub connect_timeout: Duration,
    /// Where and how tasks run.
    pub task: TaskOptions,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        WorkerOptions {
            coordinator: DEFAULT_ADDR.to_string(),
            cluster: DEFAULT_CLUSTER,
            connect_timeout: Duration::from_secs(5),
            task: TaskOptions::default(),
        }
    }
}
