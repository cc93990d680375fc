//! Word count on the tokio driver: a coordinator task and two workers on
//! the runtime's blocking pool (the worker is `mr-exec`'s blocking client,
//! the same on every runtime), talking over loopback TCP. Prints the job summary;
//! the `mr-out-*` files are left in a temporary directory.
//!
//! Run from the workspace root with
//! `cargo run -p driver-tokio --release --example tokio_wc`.

use core_mr::apps::builtin;
use mr_exec::options::{CoordinatorOptions, WorkerOptions};
use mr_exec::task::TaskOptions;
use std::sync::Arc;
use std::time::Duration;

#[tokio::main]
async fn main() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/gutenberg");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{} unreadable: {e}", dir.display()))
        .filter_map(Result::ok)
        .map(|e| e.path().to_string_lossy().into_owned())
        .filter(|p| p.ends_with(".txt"))
        .collect();
    files.sort();
    let out = std::env::temp_dir().join(format!("mr-tokio-wc-{}", std::process::id()));
    std::fs::create_dir_all(&out).expect("create output directory");
    let addr_file = out.join("coordinator.addr");
    let coord = CoordinatorOptions {
        listen: "127.0.0.1:0".into(),
        addr_file: Some(addr_file.clone()),
        grace: Duration::from_millis(200),
        ..CoordinatorOptions::new(files)
    };
    let coordinator =
        tokio::spawn(async move { driver_tokio::mr::coordinator::run_coordinator(&coord).await });
    let addr = loop {
        if let Ok(a) = std::fs::read_to_string(&addr_file) {
            break a.trim().to_string();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let app: Arc<dyn core_mr::App> = Arc::from(builtin("wc").expect("wc is built in"));
    let workers: Vec<_> = (0..2)
        .map(|_| {
            let app = Arc::clone(&app);
            let opts = WorkerOptions {
                coordinator: addr.clone(),
                task: TaskOptions {
                    work_dir: out.clone(),
                    ..TaskOptions::default()
                },
                ..WorkerOptions::default()
            };
            tokio::task::spawn_blocking(move || mr_exec::worker::run_worker(app.as_ref(), &opts))
        })
        .collect();
    let summary = coordinator
        .await
        .expect("coordinator task")
        .expect("job failed");
    for w in workers {
        let s = w.await.expect("worker task").expect("worker failed");
        println!("worker finished {} task(s)", s.tasks_done);
    }
    println!(
        "job done in {:.2} s; outputs in {}",
        summary.elapsed.as_secs_f64(),
        out.display()
    );
}
