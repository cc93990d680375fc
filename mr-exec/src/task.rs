//! Running one map or reduce task against the file system. Runtime-neutral
//! and blocking: the threads driver calls it on the worker thread, the
//! tokio driver inside `spawn_blocking`.

use crate::merge::Merger;
use crate::sorter::{write_atomically, Sorter, DEFAULT_SORT_BUFFER_BYTES};
use core_mr::hash::partition;
use core_mr::types::{intermediate_name, output_name};
use core_mr::{App, MapTask, MapTaskId, ReduceTask, ReduceTaskId};
use std::io::{self, Write};
use std::path::PathBuf;
use thiserror::Error;

/// Where and how tasks run.
#[derive(Clone, Debug)]
pub struct TaskOptions {
    /// Directory of intermediate and output files. Input file names are
    /// used as given (relative to the process's working directory), as in
    /// the lab.
    pub work_dir: PathBuf,
    /// In-memory budget of a map task before it spills sorted runs.
    pub sort_buffer_bytes: usize,
}

impl Default for TaskOptions {
    fn default() -> Self {
        TaskOptions {
            work_dir: PathBuf::from("."),
            sort_buffer_bytes: DEFAULT_SORT_BUFFER_BYTES,
        }
    }
}

/// Why a task failed. Reported to the coordinator, which retries the task
/// elsewhere a few times before failing the job with this message.
#[derive(Debug, Error)]
pub enum TaskError {
    /// The input file could not be read.
    #[error("cannot read input file {path}: {source}")]
    Input {
        /// The file.
        path: String,
        /// The cause.
        source: io::Error,
    },
    /// Intermediate or output files could not be read or written.
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// Reads the input, runs the app's map, and writes `mr-X-Y` for every `Y`.
pub fn run_map(app: &dyn App, task: &MapTask, opts: &TaskOptions) -> Result<(), TaskError> {
    let bytes = std::fs::read(&task.file).map_err(|source| TaskError::Input {
        path: task.file.clone(),
        source,
    })?;
    // The lab's inputs are ASCII; other bytes are replaced, not rejected.
    let contents = String::from_utf8_lossy(&bytes);
    let mut sorter = Sorter::new(
        app,
        &opts.work_dir,
        task.n_reduce as usize,
        opts.sort_buffer_bytes,
    );
    let mut err = None;
    app.map(&task.file, &contents, &mut |k, v| {
        if err.is_none() {
            if let Err(e) = sorter.add(partition(k, task.n_reduce) as usize, k, v) {
                err = Some(e);
            }
        }
    });
    if let Some(e) = err {
        return Err(e.into());
    }
    let id = task.id;
    sorter.finish(|y| intermediate_name(id, ReduceTaskId(y as u32)))?;
    Ok(())
}

/// Merges `mr-X-Y` for every `X`, runs the app's reduce once per key, and
/// writes `mr-out-Y`.
pub fn run_reduce(app: &dyn App, task: &ReduceTask, opts: &TaskOptions) -> Result<(), TaskError> {
    let inputs: Vec<PathBuf> = (0..task.n_map)
        .map(|x| opts.work_dir.join(intermediate_name(MapTaskId(x), task.id)))
        .collect();
    let merger = Merger::open(&inputs)?;
    write_atomically(&opts.work_dir, &output_name(task.id), |w| {
        reduce_stream(app, merger, w)
    })?;
    Ok(())
}

/// Groups a merged stream by key and writes one `key value` line per key.
pub fn reduce_stream<W: Write>(app: &dyn App, merger: Merger, w: &mut W) -> io::Result<()> {
    merger.for_each_group(|key, values| {
        let out = app.reduce(key, values);
        w.write_all(key.as_bytes())?;
        w.write_all(b" ")?;
        w.write_all(out.as_bytes())?;
        w.write_all(b"\n")
    })
}

/// Runs the lab's `mrsequential`: every input through map, then one reduce
/// into `work_dir/mr-out-0`. Memory stays within the sort budget.
pub fn run_sequential(
    app: &dyn App,
    files: &[String],
    opts: &TaskOptions,
) -> Result<(), TaskError> {
    let mut sorter = Sorter::new(app, &opts.work_dir, 1, opts.sort_buffer_bytes);
    for file in files {
        let bytes = std::fs::read(file).map_err(|source| TaskError::Input {
            path: file.clone(),
            source,
        })?;
        let contents = String::from_utf8_lossy(&bytes);
        let mut err = None;
        app.map(file, &contents, &mut |k, v| {
            if err.is_none() {
                if let Err(e) = sorter.add(0, k, v) {
                    err = Some(e);
                }
            }
        });
        if let Some(e) = err {
            return Err(e.into());
        }
    }
    let (merger, runs) = sorter.into_merger()?;
    let result = write_atomically(&opts.work_dir, &output_name(ReduceTaskId(0)), |w| {
        reduce_stream(app, merger, w)
    });
    for r in runs {
        let _ = std::fs::remove_file(r);
    }
    result?;
    Ok(())
}

/// Runs the task a worker core asked for and returns the input to feed
/// back to it. `action` must be `RunMap` or `RunReduce`.
pub fn execute(
    app: &dyn App,
    action: &core_mr::worker::Action,
    opts: &TaskOptions,
) -> core_mr::worker::Input {
    use core_mr::worker::{Action, Input};
    use core_mr::TaskRef;
    let (task, result) = match action {
        Action::RunMap(t) => (TaskRef::Map(t.id), run_map(app, t, opts)),
        Action::RunReduce(t) => (TaskRef::Reduce(t.id), run_reduce(app, t, opts)),
        other => panic!("execute called with {other:?}, which is not a task"),
    };
    match result {
        Ok(()) => Input::TaskDone(task),
        Err(e) => Input::TaskFailed {
            task,
            error: e.to_string(),
        },
    }
}
