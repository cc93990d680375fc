//! A whole MapReduce job on the threads driver (a coordinator thread and
//! worker threads over loopback TCP) must equal the sequential reference.

use core_mr::apps::builtin;
use core_mr::App;
use driver_threads::mr::local::run_local;
use mr_exec::options::{CoordinatorOptions, WorkerOptions};
use mr_exec::task::{run_sequential, TaskOptions};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("mr-threads-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(&d).unwrap();
    d
}

fn texts() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/gutenberg");
    let mut v: Vec<String> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("test data missing at {}: {e}", dir.display()))
        .map(|e| e.unwrap().path().to_string_lossy().into_owned())
        .filter(|p| p.ends_with(".txt"))
        .collect();
    v.sort();
    assert_eq!(v.len(), 8);
    v
}

fn sorted_out(dir: &Path) -> Vec<String> {
    let mut lines: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("mr-out-")
        })
        .flat_map(|p| {
            fs::read_to_string(p)
                .unwrap()
                .lines()
                .map(String::from)
                .collect::<Vec<_>>()
        })
        .collect();
    lines.sort();
    lines
}

fn opts(dir: &Path, budget: usize) -> TaskOptions {
    TaskOptions {
        work_dir: dir.to_path_buf(),
        sort_buffer_bytes: budget,
    }
}

#[test]
fn threads_driver_job_equals_sequential() {
    let app: Arc<dyn App> = Arc::from(builtin("indexer").unwrap());
    let seq = scratch("local-seq");
    run_sequential(app.as_ref(), &texts(), &opts(&seq, 1 << 30)).unwrap();
    let dir = scratch("local-job");
    let coord = CoordinatorOptions {
        listen: "127.0.0.1:0".into(),
        quiet: true,
        grace: Duration::from_millis(100),
        n_reduce: 3,
        ..CoordinatorOptions::new(texts())
    };
    let worker = WorkerOptions {
        task: opts(&dir, 1 << 20),
        ..WorkerOptions::default()
    };
    let summary = run_local(app, coord, worker, 3).unwrap();
    assert_eq!(summary.progress.reduce.done, 3);
    assert_eq!(sorted_out(&dir), sorted_out(&seq));
    fs::remove_dir_all(seq).unwrap();
    fs::remove_dir_all(dir).unwrap();
}
