//! Errors of coordinator and worker processes.

use core_mr::coordinator::ConfigError;
use core_mr::TaskRef;
use std::io;
use thiserror::Error;

/// Why a coordinator stopped without a successful job.
#[derive(Debug, Error)]
pub enum CoordinatorError {
    /// The job's parameters are invalid.
    #[error("invalid job: {0}")]
    Config(#[from] ConfigError),
    /// An input file is missing or unreadable.
    #[error("input file {path} is not readable: {source}")]
    Input {
        /// The file.
        path: String,
        /// The cause.
        source: io::Error,
    },
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// The cause.
        source: io::Error,
    },
    /// Some other I/O failure of the event loop.
    #[error("coordinator i/o error: {0}")]
    Io(#[from] io::Error),
    /// A task kept failing.
    #[error("job failed: {task} failed repeatedly; last error: {error}")]
    JobFailed {
        /// The task.
        task: TaskRef,
        /// Its last error.
        error: String,
    },
    /// The event loop stopped before the job ended (a driver bug: loops
    /// stop only after the grace period that follows the outcome).
    #[error("the coordinator stopped before the job ended")]
    Unfinished,
}

/// Why a worker stopped abnormally.
#[derive(Debug, Error)]
pub enum WorkerError {
    /// No coordinator answered within the connect timeout.
    #[error("cannot reach the coordinator at {addr}: {source}")]
    Connect {
        /// The address.
        addr: String,
        /// The last connection error.
        source: io::Error,
    },
    /// The coordinator refused or failed the handshake.
    #[error("handshake with the coordinator failed: {0}")]
    Handshake(String),
}

/// Checks that every input file can be opened, for an early clear error.
pub fn check_inputs(files: &[String]) -> Result<(), CoordinatorError> {
    for f in files {
        if let Err(source) = std::fs::File::open(f) {
            return Err(CoordinatorError::Input {
                path: f.clone(),
                source,
            });
        }
    }
    Ok(())
}
