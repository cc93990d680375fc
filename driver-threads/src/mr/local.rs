//! A complete job inside one process: a coordinator thread and worker
//! threads talking over loopback TCP, exactly as separate processes would.
//! This is how a program links the library and runs its own application.

use super::coordinator::run_coordinator;
use core_mr::App;
use mr_exec::error::CoordinatorError;
use mr_exec::host::JobSummary;
use mr_exec::options::{CoordinatorOptions, WorkerOptions};
use mr_exec::worker::run_worker;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Runs `app` over `files` with `n_workers` worker threads. Outputs
/// (`mr-out-*`) and intermediate files go to `opts.task.work_dir`.
/// `coord.listen` should be `127.0.0.1:0`; the chosen port is passed to the
/// workers through `coord.addr_file` (a temporary file is used if unset).
pub fn run_local(
    app: Arc<dyn App>,
    mut coord: CoordinatorOptions,
    worker: WorkerOptions,
    n_workers: usize,
) -> Result<JobSummary, CoordinatorError> {
    let addr_file = coord.addr_file.clone().unwrap_or_else(|| {
        worker
            .task
            .work_dir
            .join(format!(".mr-coordinator-{}.addr", std::process::id()))
    });
    let _ = std::fs::remove_file(&addr_file);
    coord.addr_file = Some(addr_file.clone());
    let coordinator = std::thread::spawn(move || run_coordinator(&coord));
    // Wait for the address (or for the coordinator to fail early).
    let deadline = Instant::now() + Duration::from_secs(10);
    let addr = loop {
        if let Ok(s) = std::fs::read_to_string(&addr_file) {
            break s.trim().to_string();
        }
        if coordinator.is_finished() || Instant::now() > deadline {
            return coordinator.join().expect("coordinator thread panicked");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let workers: Vec<_> = (0..n_workers)
        .map(|_| {
            let app = Arc::clone(&app);
            let opts = WorkerOptions {
                coordinator: addr.clone(),
                ..worker.clone()
            };
            std::thread::spawn(move || run_worker(app.as_ref(), &opts))
        })
        .collect();
    let result = coordinator.join().expect("coordinator thread panicked");
    for w in workers {
        if let Ok(Err(e)) = w.join() {
            tracing::warn!("worker stopped with an error: {e}");
        }
    }
    let _ = std::fs::remove_file(&addr_file);
    result
}
