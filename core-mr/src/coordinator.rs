//! The coordinator: hands out map tasks, then reduce tasks, re-issues the
//! tasks of workers that went silent or disconnected, and declares the job
//! finished only once every output file has been reported final.

use crate::message::{MapTask, ReduceTask, Reply, Report, Request};
use crate::types::{MapTaskId, ReduceTaskId, TaskRef, WorkerId};
use std::collections::{BTreeMap, VecDeque};
use thiserror::Error;

/// Static parameters of one job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CoordinatorConfig {
    /// Number of reduce tasks (the lab uses 10).
    pub n_reduce: u32,
    /// Ticks a task may stay in progress before the coordinator assumes its
    /// worker is dead and hands the task to another worker. The lab's rule
    /// is ten seconds; a driver ticking every 100 ms passes 100.
    pub task_timeout_ticks: u64,
    /// How many failed attempts (reported failures, not timeouts) one task
    /// may have before the whole job is declared failed.
    pub max_task_failures: u32,
}

impl Default for CoordinatorConfig {
    fn default() -> Self {
        CoordinatorConfig {
            n_reduce: 10,
            task_timeout_ticks: 100,
            max_task_failures: 3,
        }
    }
}

/// Why a job cannot be started.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ConfigError {
    /// `n_reduce` was zero.
    #[error("the number of reduce tasks must be at least 1")]
    NoReduceTasks,
    /// No input files were given.
    #[error("a job needs at least one input file")]
    NoInputFiles,
    /// More input files than map task ids.
    #[error("too many input files ({0}); at most {max} are supported", max = u32::MAX)]
    TooManyFiles(usize),
    /// A zero task timeout would re-issue every task at the first tick.
    #[error("the task timeout must be at least one tick")]
    ZeroTimeout,
}

/// Everything that can happen to a coordinator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// One unit of time passed.
    Tick,
    /// A worker sent a request.
    Request {
        /// Who sent it (the driver's connection id).
        worker: WorkerId,
        /// What it said.
        request: Request,
    },
    /// A worker's connection closed: its tasks can be re-issued at once.
    Disconnected {
        /// The worker that went away.
        worker: WorkerId,
    },
}

/// Why a task went back to the idle pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReassignReason {
    /// The worker held the task longer than the task timeout.
    TimedOut,
    /// The worker's connection closed.
    Disconnected,
    /// The worker asked for a new task without reporting the old one.
    Abandoned,
    /// The worker reported that the task failed.
    Failed,
}

/// How a job ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobOutcome {
    /// Every `mr-out-Y` is final.
    Succeeded,
    /// A task failed too often; the message names it and its last error.
    Failed {
        /// The task that kept failing.
        task: TaskRef,
        /// Its last reported error.
        error: String,
    },
}

/// Every effect the coordinator asks its driver to carry out, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Send this reply to this worker (the answer to its pending request).
    Reply {
        /// The recipient.
        worker: WorkerId,
        /// The reply.
        reply: Reply,
    },
    /// A task was taken from a worker and will be handed out again. For logs
    /// and progress display only.
    Reassigned {
        /// The task.
        task: TaskRef,
        /// The worker that held it.
        from: WorkerId,
        /// Why.
        reason: ReassignReason,
    },
    /// The job ended. Emitted exactly once. The driver should keep answering
    /// requests (every later request gets [`Reply::Exit`]) for a short grace
    /// period so that workers learn the job is over, then stop.
    Finished(JobOutcome),
}

/// The phase the job is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Some map task is not yet done.
    Map,
    /// Every map task is done; some reduce task is not.
    Reduce,
    /// The job ended (see [`JobOutcome`]).
    Finished,
}

/// Task counts of one phase.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PhaseCounts {
    /// Waiting to be handed out.
    pub idle: usize,
    /// Handed out, not yet reported.
    pub in_progress: usize,
    /// Reported done.
    pub done: usize,
    /// Times a task of this phase was taken back from a worker.
    pub reassigned: u64,
}

/// A snapshot for progress displays.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    /// Current phase.
    pub phase: Phase,
    /// Map task counts.
    pub map: PhaseCounts,
    /// Reduce task counts.
    pub reduce: PhaseCounts,
    /// Workers currently waiting for a task.
    pub waiting_workers: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TaskState {
    Idle,
    InProgress { worker: WorkerId, since_tick: u64 },
    Done,
}

#[derive(Clone, Debug)]
struct Slot {
    state: TaskState,
    failures: u32,
}

impl Slot {
    fn new() -> Self {
        Slot {
            state: TaskState::Idle,
            failures: 0,
        }
    }
}

/// The coordinator state machine. Feed it [`Input`]s through
/// [`Coordinator::step`] and carry out the returned [`Action`]s in order.
#[derive(Clone, Debug)]
pub struct Coordinator {
    config: CoordinatorConfig,
    files: Vec<String>,
    maps: Vec<Slot>,
    reduces: Vec<Slot>,
    now_tick: u64,
    /// Workers whose request is unanswered, oldest first.
    waiting: VecDeque<WorkerId>,
    /// The task each busy worker holds.
    busy: BTreeMap<WorkerId, TaskRef>,
    map_reassigned: u64,
    reduce_reassigned: u64,
    outcome: Option<JobOutcome>,
    /// Whether [`Action::Finished`] has been emitted.
    announced: bool,
}

impl Coordinator {
    /// A coordinator for a job over `files` (one map task per file).
    pub fn new(config: CoordinatorConfig, files: Vec<String>) -> Result<Self, ConfigError> {
        if config.n_reduce == 0 {
            return Err(ConfigError::NoReduceTasks);
        }
        if files.is_empty() {
            return Err(ConfigError::NoInputFiles);
        }
        if u32::try_from(files.len()).is_err() {
            return Err(ConfigError::TooManyFiles(files.len()));
        }
        if config.task_timeout_ticks == 0 {
            return Err(ConfigError::ZeroTimeout);
        }
        Ok(Coordinator {
            maps: (0..files.len()).map(|_| Slot::new()).collect(),
            reduces: (0..config.n_reduce).map(|_| Slot::new()).collect(),
            config,
            files,
            now_tick: 0,
            waiting: VecDeque::new(),
            busy: BTreeMap::new(),
            map_reassigned: 0,
            reduce_reassigned: 0,
            outcome: None,
            announced: false,
        })
    }

    /// The single entry point: apply one input, return the effects.
    pub fn step(&mut self, input: Input) -> Vec<Action> {
        let mut out = Vec::new();
        match input {
            Input::Tick => self.on_tick(&mut out),
            Input::Request { worker, request } => self.on_request(worker, request, &mut out),
            Input::Disconnected { worker } => {
                self.waiting.retain(|w| *w != worker);
                self.release(worker, ReassignReason::Disconnected, &mut out);
            }
        }
        self.dispatch(&mut out);
        out
    }

    /// Current phase.
    pub fn phase(&self) -> Phase {
        if self.outcome.is_some() {
            Phase::Finished
        } else if self.maps.iter().all(|s| s.state == TaskState::Done) {
            Phase::Reduce
        } else {
            Phase::Map
        }
    }

    /// How the job ended, once it has.
    pub fn outcome(&self) -> Option<&JobOutcome> {
        self.outcome.as_ref()
    }

    /// Task counts for progress displays.
    pub fn progress(&self) -> Progress {
        fn counts(slots: &[Slot], reassigned: u64) -> PhaseCounts {
            let mut c = PhaseCounts {
                reassigned,
                ..PhaseCounts::default()
            };
            for s in slots {
                match s.state {
                    TaskState::Idle => c.idle += 1,
                    TaskState::InProgress { .. } => c.in_progress += 1,
                    TaskState::Done => c.done += 1,
                }
            }
            c
        }
        Progress {
            phase: self.phase(),
            map: counts(&self.maps, self.map_reassigned),
            reduce: counts(&self.reduces, self.reduce_reassigned),
            waiting_workers: self.waiting.len(),
        }
    }

    fn on_tick(&mut self, out: &mut Vec<Action>) {
        self.now_tick += 1;
        let expired: Vec<WorkerId> = self
            .busy
            .iter()
            .filter(|(_, task)| match self.slot(**task).map(|s| s.state) {
                Some(TaskState::InProgress { since_tick, .. }) => {
                    self.now_tick - since_tick >= self.config.task_timeout_ticks
                }
                _ => false,
            })
            .map(|(w, _)| *w)
            .collect();
        for worker in expired {
            self.release(worker, ReassignReason::TimedOut, out);
        }
    }

    fn on_request(&mut self, worker: WorkerId, request: Request, out: &mut Vec<Action>) {
        match request.report {
            Some(Report::Done(task)) => self.on_done(worker, task),
            Some(Report::Failed { task, error }) => self.on_failed(worker, task, error, out),
            None => {}
        }
        // Whatever the worker still holds, it is not working on it any more.
        self.release(worker, ReassignReason::Abandoned, out);
        if !self.waiting.contains(&worker) {
            self.waiting.push_back(worker);
        }
    }

    fn on_done(&mut self, worker: WorkerId, task: TaskRef) {
        if matches!(task, TaskRef::Reduce(_)) && self.phase() == Phase::Map {
            tracing::warn!(%worker, %task, "reduce report during the map phase; dropped");
            return;
        }
        let Some(slot) = self.slot_mut(task) else {
            tracing::warn!(%worker, %task, "report for a task that does not exist; dropped");
            return;
        };
        // A late report from a worker we gave up on still counts: its output
        // was renamed into place whole, and every attempt writes the same data.
        if slot.state != TaskState::Done {
            slot.state = TaskState::Done;
        }
        if self.busy.get(&worker) == Some(&task) {
            self.busy.remove(&worker);
        }
        // Other holders of the task keep running; their reports are ignored.
        let holders: Vec<WorkerId> = self
            .busy
            .iter()
            .filter(|(_, t)| **t == task)
            .map(|(w, _)| *w)
            .collect();
        for w in holders {
            self.busy.remove(&w);
        }
        if self.outcome.is_none() && self.reduces.iter().all(|s| s.state == TaskState::Done) {
            self.outcome = Some(JobOutcome::Succeeded);
        }
    }

    fn on_failed(&mut self, worker: WorkerId, task: TaskRef, error: String, out: &mut Vec<Action>) {
        if self.busy.get(&worker) != Some(&task) {
            tracing::warn!(%worker, %task, "failure report for a task the worker does not hold; dropped");
            return;
        }
        self.busy.remove(&worker);
        let max = self.config.max_task_failures;
        let Some(slot) = self.slot_mut(task) else {
            return;
        };
        if slot.state == TaskState::Done {
            return;
        }
        slot.failures += 1;
        slot.state = TaskState::Idle;
        let failures = slot.failures;
        self.count_reassign(task);
        out.push(Action::Reassigned {
            task,
            from: worker,
            reason: ReassignReason::Failed,
        });
        if failures >= max && self.outcome.is_none() {
            self.outcome = Some(JobOutcome::Failed { task, error });
        }
    }

    /// Takes back whatever task `worker` holds.
    fn release(&mut self, worker: WorkerId, reason: ReassignReason, out: &mut Vec<Action>) {
        let Some(task) = self.busy.remove(&worker) else {
            return;
        };
        if let Some(slot) = self.slot_mut(task) {
            if matches!(slot.state, TaskState::InProgress { worker: w, .. } if w == worker) {
                slot.state = TaskState::Idle;
                self.count_reassign(task);
                out.push(Action::Reassigned {
                    task,
                    from: worker,
                    reason,
                });
            }
        }
    }

    fn count_reassign(&mut self, task: TaskRef) {
        match task {
            TaskRef::Map(_) => self.map_reassigned += 1,
            TaskRef::Reduce(_) => self.reduce_reassigned += 1,
        }
    }

    /// Answers waiting workers while there is something to give them.
    fn dispatch(&mut self, out: &mut Vec<Action>) {
        if let Some(outcome) = &self.outcome {
            if !self.announced {
                self.announced = true;
                out.push(Action::Finished(outcome.clone()));
                self.busy.clear();
            }
            for worker in self.waiting.drain(..) {
                out.push(Action::Reply {
                    worker,
                    reply: Reply::Exit,
                });
            }
            return;
        }
        while let Some(&worker) = self.waiting.front() {
            let Some(task) = self.next_idle() else {
                break;
            };
            self.waiting.pop_front();
            let now_tick = self.now_tick;
            let slot = self
                .slot_mut(task)
                .expect("next_idle returns existing tasks");
            slot.state = TaskState::InProgress {
                worker,
                since_tick: now_tick,
            };
            self.busy.insert(worker, task);
            let reply = match task {
                TaskRef::Map(id) => Reply::Map(MapTask {
                    id,
                    file: self.files[id.0 as usize].clone(),
                    n_reduce: self.config.n_reduce,
                }),
                TaskRef::Reduce(id) => Reply::Reduce(ReduceTask {
                    id,
                    n_map: self.maps.len() as u32,
                }),
            };
            out.push(Action::Reply { worker, reply });
        }
    }

    fn next_idle(&self) -> Option<TaskRef> {
        match self.phase() {
            Phase::Map => self
                .maps
                .iter()
                .position(|s| s.state == TaskState::Idle)
                .map(|i| TaskRef::Map(MapTaskId(i as u32))),
            Phase::Reduce => self
                .reduces
                .iter()
                .position(|s| s.state == TaskState::Idle)
                .map(|i| TaskRef::Reduce(ReduceTaskId(i as u32))),
            Phase::Finished => None,
        }
    }

    fn slot(&self, task: TaskRef) -> Option<&Slot> {
        match task {
            TaskRef::Map(id) => self.maps.get(id.0 as usize),
            TaskRef::Reduce(id) => self.reduces.get(id.0 as usize),
        }
    }

    fn slot_mut(&mut self, task: TaskRef) -> Option<&mut Slot> {
        match task {
            TaskRef::Map(id) => self.maps.get_mut(id.0 as usize),
            TaskRef::Reduce(id) => self.reduces.get_mut(id.0 as usize),
        }
    }
}
