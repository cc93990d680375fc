//! The part of running a coordinator that is I/O but not sockets, shared by
//! both runtimes: [`CoordinatorHost`] owns the pure
//! [`node_shell::mr::CoordinatorShell`], prints its notes and progress,
//! notes the wall time the job took, and turns its outcome into the
//! process's result. A driver hands it every input and carries out the
//! [`SocketAction`]s it gets back; nothing else.

use crate::addr::write_addr_file;
use crate::error::{check_inputs, CoordinatorError};
use crate::options::CoordinatorOptions;
use crate::progress::ProgressReporter;
use core_mr::coordinator::{JobOutcome, Progress};
use core_mr::Coordinator;
use node_shell::mr::{Action, ConnId, CoordinatorShell, Input};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// What a finished job reports.
#[derive(Clone, Debug)]
pub struct JobSummary {
    /// Final task counts.
    pub progress: Progress,
    /// Wall time from start to the last output.
    pub elapsed: Duration,
}

/// The shell's actions that touch a socket: all a driver has to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SocketAction {
    /// Queue these bytes on the connection.
    Write {
        /// The recipient.
        conn: ConnId,
        /// Encoded frames.
        bytes: Vec<u8>,
    },
    /// Send what is queued, then close the connection; do not report its
    /// end back with `Input::Closed` (the shell has forgotten it already).
    Close {
        /// Which one.
        conn: ConnId,
        /// Why (already printed as an event line).
        reason: String,
    },
}

/// The coordinator shell plus its console and clock.
pub struct CoordinatorHost {
    shell: CoordinatorShell,
    reporter: ProgressReporter,
    addr_file: Option<PathBuf>,
    n_map: usize,
    n_reduce: u32,
    started: Instant,
    finished_at: Option<Instant>,
}

impl CoordinatorHost {
    /// Validates the job (inputs readable, parameters sane) and builds the
    /// core and its shell. The job's clock starts here.
    pub fn new(opts: &CoordinatorOptions) -> Result<Self, CoordinatorError> {
        check_inputs(&opts.files)?;
        let core = Coordinator::new(opts.core_config(), opts.files.clone())?;
        Ok(CoordinatorHost {
            shell: CoordinatorShell::new(core, opts.cluster),
            reporter: ProgressReporter::new(opts.quiet),
            addr_file: opts.addr_file.clone(),
            n_map: opts.files.len(),
            n_reduce: opts.n_reduce,
            started: Instant::now(),
            finished_at: None,
        })
    }

    /// Announces the bound address (and writes the address file, if one
    /// was asked for), then shows the initial progress.
    pub fn listening(&mut self, local: SocketAddr, runtime: &str) -> std::io::Result<()> {
        self.reporter.note(&format!(
            "listening on {local} ({runtime} runtime); {} map task(s), {} reduce task(s)",
            self.n_map, self.n_reduce
        ));
        if let Some(path) = &self.addr_file {
            write_addr_file(path, local)?;
        }
        self.reporter.update(&self.shell.progress());
        Ok(())
    }

    /// Feeds one input to the shell, carries out its notes, progress and
    /// outcome, and returns the socket work, in order.
    pub fn step(&mut self, input: Input) -> Vec<SocketAction> {
        let mut sockets = Vec::new();
        for action in self.shell.step(input) {
            match action {
                Action::Write { conn, bytes } => sockets.push(SocketAction::Write { conn, bytes }),
                Action::Close { conn, reason } => {
                    sockets.push(SocketAction::Close { conn, reason })
                }
                Action::Note(line) => self.reporter.note(&line),
                Action::Progress(p) => self.reporter.update(&p),
                Action::Finished(outcome) => self.finished(&outcome),
            }
        }
        sockets
    }

    /// When the job ended, once it has: the grace period counts from here.
    pub fn finished_at(&self) -> Option<Instant> {
        self.finished_at
    }

    /// The job's result, once the event loop stops.
    pub fn into_result(mut self) -> Result<JobSummary, CoordinatorError> {
        self.reporter.finish();
        match (self.shell.outcome(), self.finished_at) {
            (Some(JobOutcome::Succeeded), Some(at)) => Ok(JobSummary {
                progress: self.shell.progress(),
                elapsed: at.duration_since(self.started),
            }),
            (Some(JobOutcome::Failed { task, error }), _) => Err(CoordinatorError::JobFailed {
                task: *task,
                error: error.clone(),
            }),
            _ => Err(CoordinatorError::Unfinished),
        }
    }

    fn finished(&mut self, outcome: &JobOutcome) {
        let now = Instant::now();
        self.finished_at = Some(now);
        // A failure was announced by the shell; the timing is ours to add.
        if *outcome == JobOutcome::Succeeded {
            self.reporter.note(&format!(
                "job done in {:.2} s; every mr-out-* file is final",
                now.duration_since(self.started).as_secs_f64()
            ));
        }
    }
}
