//! Runtime-neutral glue around the coordinator core: handshake checks,
//! framing of replies, progress display, and the job's result. Each
//! runtime's event loop only moves bytes and fires ticks.

use crate::error::{check_inputs, CoordinatorError};
use crate::options::{CoordinatorOptions, MAX_FRAME_BYTES};
use crate::progress::ProgressReporter;
use core_mr::coordinator::{Action, Input, JobOutcome, Progress, ReassignReason};
use core_mr::{Coordinator, WorkerId, PROTOCOL_VERSION};
use std::time::{Duration, Instant};
use wire::{encode_frame, HandshakeError, Hello};

/// Node id the coordinator uses in its handshake.
pub const COORDINATOR_NODE: u64 = 0;

/// What a finished job reports.
#[derive(Clone, Debug)]
pub struct JobSummary {
    /// Final task counts.
    pub progress: Progress,
    /// Wall time from start to the last output.
    pub elapsed: Duration,
}

/// The coordinator core plus everything around it that does not depend on
/// the runtime.
pub struct CoordinatorShell {
    core: Coordinator,
    reporter: ProgressReporter,
    hello: Hello,
    started: Instant,
    finished_after: Option<Duration>,
}

impl CoordinatorShell {
    /// Validates the job (inputs readable, parameters sane) and builds the core.
    pub fn new(opts: &CoordinatorOptions) -> Result<Self, CoordinatorError> {
        check_inputs(&opts.files)?;
        let core = Coordinator::new(opts.core_config(), opts.files.clone())?;
        Ok(CoordinatorShell {
            core,
            reporter: ProgressReporter::new(opts.quiet),
            hello: Hello::new(PROTOCOL_VERSION, opts.cluster, COORDINATOR_NODE),
            started: Instant::now(),
            finished_after: None,
        })
    }

    /// The coordinator's handshake frame, sent first on every connection.
    pub fn hello_frame(&self) -> Vec<u8> {
        encode_frame(&self.hello, MAX_FRAME_BYTES).expect("a hello fits in a frame")
    }

    /// Checks a worker's handshake; any worker node id may join a job.
    pub fn check_hello(&self, peer: &Hello) -> Result<(), HandshakeError> {
        self.hello.check(peer, |_| true)
    }

    /// Prints an event line.
    pub fn note(&mut self, msg: &str) {
        self.reporter.note(msg);
    }

    /// Feeds one input to the core and returns the frames to send, in order.
    pub fn step(&mut self, input: Input) -> Vec<(WorkerId, Vec<u8>)> {
        let mut frames = Vec::new();
        for action in self.core.step(input) {
            match action {
                Action::Reply { worker, reply } => match encode_frame(&reply, MAX_FRAME_BYTES) {
                    Ok(f) => frames.push((worker, f)),
                    Err(e) => self
                        .reporter
                        .note(&format!("cannot encode reply to {worker}: {e}")),
                },
                Action::Reassigned { task, from, reason } => {
                    let why = match reason {
                        ReassignReason::TimedOut => "timed out",
                        ReassignReason::Disconnected => "worker disconnected",
                        ReassignReason::Abandoned => "abandoned by its worker",
                        ReassignReason::Failed => "failed",
                    };
                    self.reporter.note(&format!(
                        "{task} taken back from {from} ({why}); will be re-issued"
                    ));
                }
                Action::Finished(outcome) => {
                    self.finished_after = Some(self.started.elapsed());
                    let msg = match &outcome {
                        JobOutcome::Succeeded => format!(
                            "job done in {:.2} s; every mr-out-* file is final",
                            self.started.elapsed().as_secs_f64()
                        ),
                        JobOutcome::Failed { task, error } => {
                            format!("job FAILED: {task} failed repeatedly: {error}")
                        }
                    };
                    let p = self.core.progress();
                    self.reporter.update(&p);
                    self.reporter.note(&msg);
                }
            }
        }
        let p = self.core.progress();
        self.reporter.update(&p);
        frames
    }

    /// Whether the job has ended (successfully or not).
    pub fn finished(&self) -> bool {
        self.core.outcome().is_some()
    }

    /// The job's result, once the event loop stops.
    pub fn result(mut self) -> Result<JobSummary, CoordinatorError> {
        self.reporter.finish();
        match self.core.outcome() {
            Some(JobOutcome::Succeeded) => Ok(JobSummary {
                progress: self.core.progress(),
                elapsed: self
                    .finished_after
                    .unwrap_or_else(|| self.started.elapsed()),
            }),
            Some(JobOutcome::Failed { task, error }) => Err(CoordinatorError::JobFailed {
                task: *task,
                error: error.clone(),
            }),
            None => unreachable!("the event loops stop only after the job ends"),
        }
    }
}
