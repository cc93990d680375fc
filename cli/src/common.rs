//! Set-up shared by both commands.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Which driver runs a node or a coordinator. Both speak one wire format,
/// so processes of either kind can work together.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Runtime {
    /// Async I/O on a tokio runtime (`driver-tokio`).
    Tokio,
    /// A mio event loop on std threads (`driver-threads`); starts no async runtime.
    Threads,
}

impl Runtime {
    /// The name the command line uses.
    pub fn name(self) -> &'static str {
        match self {
            Runtime::Tokio => "tokio",
            Runtime::Threads => "threads",
        }
    }
}

/// Where a key/value node keeps its state machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    /// In a redb database, DATA_DIR/state.redb (`kv-disk`): a restart
    /// replays at most the applies since the last durable commit, and the
    /// state may be larger than memory.
    Disk,
    /// In memory (`core_kv::KvStore`), rebuilt at start from the latest
    /// snapshot and the log.
    Memory,
}

/// The file a disk-backed node keeps its state in, inside its data
/// directory.
pub const STATE_FILE: &str = "state.redb";

/// Log to stderr; `RUST_LOG` overrides `default_filter` (e.g. `info`).
pub fn init_logging(default_filter: &str) {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter)),
        )
        .init();
}

/// A flag that SIGINT or SIGTERM sets. Nodes check it between iterations,
/// so the fsync in flight and its batch finish before they stop.
pub fn stop_flag() -> std::io::Result<Arc<AtomicBool>> {
    let flag = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&flag))?;
    }
    Ok(flag)
}

/// Resolves once `flag` is set (polled every 20 ms: signals are rare, and
/// this keeps the threads runtime free of async signal handling).
pub async fn stopped(flag: Arc<AtomicBool>) {
    while !flag.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A multi-threaded tokio runtime for the commands that need one.
pub fn tokio_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
}
