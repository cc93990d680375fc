//! The messages a worker and the coordinator exchange. They are plain serde
//! types; the drivers frame them with the `wire` crate (postcard).
//!
//! The protocol is a long poll: a worker sends one [`Request`] (which also
//! reports the outcome of its previous task) and the coordinator answers with
//! exactly one [`Reply`] as soon as it has something to say. A worker that
//! arrives while every task is handed out simply waits for its reply.

use crate::types::{MapTaskId, ReduceTaskId, TaskRef};
use serde::{Deserialize, Serialize};

/// Version of this message set, carried in the connection handshake so that
/// a worker and a coordinator of different releases refuse each other
/// instead of misreading frames.
pub const PROTOCOL_VERSION: u32 = 1;

/// Worker to coordinator: "here is how my last task went; give me another".
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// Outcome of the task the worker ran since its previous request, if any.
    pub report: Option<Report>,
}

/// The outcome of one task attempt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Report {
    /// The task's output files are complete and renamed into place.
    Done(TaskRef),
    /// The task could not run (for example its input file is unreadable).
    /// The coordinator retries it elsewhere, up to a limit.
    Failed {
        /// The task that failed.
        task: TaskRef,
        /// A human-readable reason, shown in the coordinator's log.
        error: String,
    },
}

/// A map task: read one input file and split the map output into
/// `n_reduce` intermediate files `mr-X-0 .. mr-X-(n_reduce-1)`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MapTask {
    /// Which map task this is (the `X` of `mr-X-Y`).
    pub id: MapTaskId,
    /// The input file, exactly as given to the coordinator; it is also the
    /// `filename` argument of the application's map function.
    pub file: String,
    /// How many reduce partitions to write.
    pub n_reduce: u32,
}

/// A reduce task: merge `mr-0-Y .. mr-(n_map-1)-Y` and write `mr-out-Y`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReduceTask {
    /// Which reduce task this is (the `Y`).
    pub id: ReduceTaskId,
    /// How many map tasks produced intermediate files.
    pub n_map: u32,
}

/// Coordinator to worker: the answer to one [`Request`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reply {
    /// Run this map task.
    Map(MapTask),
    /// Run this reduce task.
    Reduce(ReduceTask),
    /// The job is over (finished or failed); the worker should exit.
    Exit,
}
