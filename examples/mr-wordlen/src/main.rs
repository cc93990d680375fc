//! Runs the word-length job with the application linked in: a coordinator
//! and worker threads in this process, over loopback TCP.
//!
//! ```text
//! cargo run -p mr-wordlen --release -- [--workers N] [--out DIR] FILES...
//! ```
//!
//! Writes `mr-out-*` into DIR (default: the current directory) and prints
//! the histogram.

use driver_threads::mr::local::run_local;
use mr_exec::options::{CoordinatorOptions, WorkerOptions};
use mr_exec::task::TaskOptions;
use mr_wordlen::WordLengths;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let mut workers = 3;
    let mut out = PathBuf::from(".");
    let mut files = Vec::new();
    while let Some(a) = args.next() {
        match a.as_str() {
            "--workers" => match args.next().and_then(|n| n.parse().ok()) {
                Some(n) => workers = n,
                None => return usage("--workers needs a number"),
            },
            "--out" => match args.next() {
                Some(d) => out = PathBuf::from(d),
                None => return usage("--out needs a directory"),
            },
            "-h" | "--help" => return usage(""),
            _ => files.push(a),
        }
    }
    if files.is_empty() {
        return usage("no input files");
    }
    let coord = CoordinatorOptions {
        listen: "127.0.0.1:0".into(),
        quiet: true,
        grace: std::time::Duration::from_millis(100),
        ..CoordinatorOptions::new(files)
    };
    let worker = WorkerOptions {
        task: TaskOptions {
            work_dir: out.clone(),
            ..TaskOptions::default()
        },
        ..WorkerOptions::default()
    };
    match run_local(Arc::new(WordLengths), coord, worker, workers) {
        Ok(summary) => {
            let mut lines: Vec<String> = std::fs::read_dir(&out)
                .into_iter()
                .flatten()
                .filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().starts_with("mr-out-"))
                .filter_map(|e| std::fs::read_to_string(e.path()).ok())
                .flat_map(|s| s.lines().map(String::from).collect::<Vec<_>>())
                .collect();
            lines.sort();
            for l in lines {
                println!("{l}");
            }
            eprintln!("done in {:.2} s", summary.elapsed.as_secs_f64());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("mr-wordlen: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn usage(err: &str) -> ExitCode {
    if !err.is_empty() {
        eprintln!("mr-wordlen: {err}");
    }
    eprintln!("usage: mr-wordlen [--workers N] [--out DIR] FILES...");
    if err.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
