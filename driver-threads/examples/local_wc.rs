//! Word count over the Gutenberg texts with a coordinator thread and three
//! worker threads (mio event loop + blocking clients over loopback TCP),
//! outputs in a temporary directory; prints the ten most frequent words.
//!
//! Run from the workspace root with
//! `cargo run -p driver-threads --release --example local_wc [FILES...]`
//! (default: `../shared/data/gutenberg/pg-*.txt`).

use core_mr::apps::builtin;
use driver_threads::mr::local::run_local;
use mr_exec::options::{CoordinatorOptions, WorkerOptions};
use mr_exec::task::TaskOptions;
use std::sync::Arc;

fn main() {
    let mut files: Vec<String> = std::env::args().skip(1).collect();
    if files.is_empty() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/gutenberg");
        files = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| {
                panic!("no input files given and {} unreadable: {e}", dir.display())
            })
            .filter_map(Result::ok)
            .map(|e| e.path().to_string_lossy().into_owned())
            .filter(|p| p.ends_with(".txt"))
            .collect();
        files.sort();
    }
    let out = std::env::temp_dir().join(format!("mr-local-wc-{}", std::process::id()));
    std::fs::create_dir_all(&out).expect("create output directory");
    let coord = CoordinatorOptions {
        listen: "127.0.0.1:0".into(),
        ..CoordinatorOptions::new(files)
    };
    let worker = WorkerOptions {
        task: TaskOptions {
            work_dir: out.clone(),
            ..TaskOptions::default()
        },
        ..WorkerOptions::default()
    };
    let app = Arc::from(builtin("wc").expect("wc is built in"));
    let summary = run_local(app, coord, worker, 3).expect("job failed");
    let mut counts: Vec<(u64, String)> = std::fs::read_dir(&out)
        .expect("output directory")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("mr-out-"))
        .flat_map(|e| {
            std::fs::read_to_string(e.path())
                .unwrap_or_default()
                .lines()
                .filter_map(|l| {
                    let (w, n) = l.split_once(' ')?;
                    Some((n.parse().ok()?, w.to_string()))
                })
                .collect::<Vec<_>>()
        })
        .collect();
    counts.sort_by(|a, b| b.cmp(a));
    for (n, w) in counts.iter().take(10) {
        println!("{n:>8} {w}");
    }
    println!(
        "{} distinct words in {:.2} s",
        counts.len(),
        summary.elapsed.as_secs_f64()
    );
    let _ = std::fs::remove_dir_all(&out);
}
