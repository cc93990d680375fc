//! The worker: ask for a task, run it, report, repeat; exit when the job is
//! over or the coordinator is gone. Running the task (files, user code) is
//! the driver's job; this machine only sequences the conversation.

use crate::message::{MapTask, ReduceTask, Reply, Report, Request};
use crate::types::TaskRef;

/// Everything that can happen to a worker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// The driver is connected; begin asking for work.
    Start,
    /// The coordinator answered the pending request.
    Reply(Reply),
    /// The task the driver was running finished and its outputs are in place.
    TaskDone(TaskRef),
    /// The task could not be completed.
    TaskFailed {
        /// The task.
        task: TaskRef,
        /// Why, for the coordinator's log.
        error: String,
    },
    /// The connection to the coordinator closed or could not be made.
    CoordinatorGone,
}

/// Why a worker stops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitReason {
    /// The coordinator said the job is over.
    JobOver,
    /// The coordinator can no longer be reached (as in the lab, this is how a
    /// worker that missed the final reply learns the job is over).
    CoordinatorGone,
}

/// Every effect the worker asks its driver to carry out, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Send this request to the coordinator.
    Send(Request),
    /// Run this map task, then feed back [`Input::TaskDone`] or
    /// [`Input::TaskFailed`].
    RunMap(MapTask),
    /// Run this reduce task, then feed back its outcome.
    RunReduce(ReduceTask),
    /// Stop. No further input is accepted.
    Exit(ExitReason),
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum State {
    NotStarted,
    AwaitingReply,
    Running(TaskRef),
    Exited,
}

/// The worker state machine.
#[derive(Clone, Debug)]
pub struct Worker {
    state: State,
    tasks_done: u64,
}

impl Default for Worker {
    fn default() -> Self {
        Self::new()
    }
}

impl Worker {
    /// A worker that has not started yet.
    pub fn new() -> Self {
        Worker {
            state: State::NotStarted,
            tasks_done: 0,
        }
    }

    /// Tasks this worker completed successfully.
    pub fn tasks_done(&self) -> u64 {
        self.tasks_done
    }

    /// Whether the worker has exited.
    pub fn has_exited(&self) -> bool {
        self.state == State::Exited
    }

    /// The single entry point: apply one input, return the effects.
    pub fn step(&mut self, input: Input) -> Vec<Action> {
        match (&self.state, input) {
            (State::Exited, _) => vec![],
            (_, Input::CoordinatorGone) => self.exit(ExitReason::CoordinatorGone),
            (State::NotStarted, Input::Start) => self.ask(None),
            (State::AwaitingReply, Input::Reply(reply)) => match reply {
                Reply::Map(task) => {
                    self.state = State::Running(TaskRef::Map(task.id));
                    vec![Action::RunMap(task)]
                }
                Reply::Reduce(task) => {
                    self.state = State::Running(TaskRef::Reduce(task.id));
                    vec![Action::RunReduce(task)]
                }
                Reply::Exit => self.exit(ExitReason::JobOver),
            },
            (State::Running(running), Input::TaskDone(task)) if *running == task => {
                self.tasks_done += 1;
                self.ask(Some(Report::Done(task)))
            }
            (State::Running(running), Input::TaskFailed { task, error }) if *running == task => {
                self.ask(Some(Report::Failed { task, error }))
            }
            (state, input) => {
                tracing::warn!(
                    ?state,
                    ?input,
                    "input does not fit the worker's state; dropped"
                );
                vec![]
            }
        }
    }

    fn ask(&mut self, report: Option<Report>) -> Vec<Action> {
        self.state = State::AwaitingReply;
        vec![Action::Send(Request { report })]
    }

    fn exit(&mut self, reason: ExitReason) -> Vec<Action> {
        self.state = State::Exited;
        vec![Action::Exit(reason)]
    }
}
