//! Newtypes for the identifiers the coordinator and workers exchange, so a
//! map task number can never be passed where a reduce task number belongs.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A worker as the coordinator knows it. The driver allocates one per
/// connection; the core never invents them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct WorkerId(pub u64);

/// Index of a map task: the position of its input file in the job's file list.
/// It is the `X` of the intermediate file `mr-X-Y`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct MapTaskId(pub u32);

/// Index of a reduce task, in `0..n_reduce`. It is the `Y` of `mr-X-Y` and of
/// the output file `mr-out-Y`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ReduceTaskId(pub u32);

/// Either kind of task, as named in reports and in the coordinator's actions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum TaskRef {
    /// A map task.
    Map(MapTaskId),
    /// A reduce task.
    Reduce(ReduceTaskId),
}

impl fmt::Display for WorkerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "worker-{}", self.0)
    }
}

impl fmt::Display for TaskRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TaskRef::Map(m) => write!(f, "map {}", m.0),
            TaskRef::Reduce(r) => write!(f, "reduce {}", r.0),
        }
    }
}

/// Intermediate file name `mr-X-Y` written by map task `X` for reduce task `Y`.
pub fn intermediate_name(map: MapTaskId, reduce: ReduceTaskId) -> String {
    format!("mr-{}-{}", map.0, reduce.0)
}

/// Output file name `mr-out-Y` written by reduce task `Y`.
pub fn output_name(reduce: ReduceTaskId) -> String {
    format!("mr-out-{}", reduce.0)
}
