//! The `mr` command: run a MapReduce coordinator, a worker, the sequential
//! reference, or the benchmark. See `mr --help` and `mr <command> --help`.

use clap::{Args, Parser, Subcommand};
use cli::common::{init_logging, tokio_runtime, Runtime};
use cli::mr::bench::{self, BenchOptions};
use core_mr::App;
use mr_exec::apps;
use mr_exec::options::{CoordinatorOptions, WorkerOptions, DEFAULT_ADDR, DEFAULT_CLUSTER};
use mr_exec::task::{run_sequential, TaskOptions};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "mr",
    version,
    about = "MapReduce (the MIT 6.5840 lab) over TCP: a coordinator hands out map and reduce tasks to workers",
    long_about = "MapReduce (the MIT 6.5840 lab) over TCP.\n\n\
A coordinator hands map tasks (one per input file) and then reduce tasks to workers; \
workers write intermediate files mr-X-Y and outputs mr-out-Y (`key value` lines) in their \
working directory, which all processes must share. A task whose worker disconnects is \
re-issued at once; one whose worker stays silent longer than the task timeout (10 s) is \
re-issued to another worker.\n\n\
Typical use, all on one machine with no flags:\n  \
mr coordinator pg-*.txt &\n  mr worker --app wc & mr worker --app wc & mr worker --app wc\n  \
sort mr-out-* | grep .\n\n\
Built-in applications: wc, indexer, and the lab's test apps mtiming, rtiming, jobcount, \
early_exit, crash, nocrash. Your own application can be loaded from a shared library with \
--lib (see the mr-wordlen example crate)."
)]
struct Cli {
    /// Append this process's peak resident memory (VmHWM, from
    /// /proc/self/status) to FILE when it exits; used by `mr bench`.
    #[arg(
        long,
        global = true,
        value_name = "FILE",
        hide = true,
        env = "MR_PEAK_MEM_FILE"
    )]
    peak_mem_file: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the coordinator for one job over FILES; exits when every output is final.
    Coordinator(CoordinatorArgs),
    /// Run a worker: ask the coordinator for tasks until the job is over.
    Worker(WorkerArgs),
    /// Run the job in this process without a coordinator and write mr-out-0 (the reference output).
    Sequential(SequentialArgs),
    /// Benchmark sequential vs 1, 2, 4 workers on the Gutenberg texts and on a generated large input.
    Bench(BenchArgs),
}

#[derive(Args)]
struct CoordinatorArgs {
    /// Number of reduce tasks (output files mr-out-0 .. mr-out-(N-1)).
    #[arg(long, short = 'r', default_value_t = 10, value_name = "N")]
    reduces: u32,
    /// Address to listen on. Use 0.0.0.0:PORT to accept workers from other
    /// machines, or 127.0.0.1:0 for any free port (see --addr-file).
    #[arg(long, default_value = DEFAULT_ADDR, value_name = "ADDR")]
    listen: String,
    /// Which I/O runtime runs the coordinator; any worker can join either.
    #[arg(long, value_enum, default_value_t = Runtime::Tokio)]
    runtime: Runtime,
    /// Re-issue a task whose worker has been silent this long (the lab's 10 s).
    #[arg(long, default_value_t = 10_000, value_name = "MS")]
    task_timeout_ms: u64,
    /// After the job ends, keep answering workers "exit" for this long, then stop.
    #[arg(long, default_value_t = 1_000, value_name = "MS")]
    grace_ms: u64,
    /// A task that fails this many times (e.g. unreadable input) fails the job.
    #[arg(long, default_value_t = 3, value_name = "N")]
    max_task_failures: u32,
    /// Write the bound address to FILE once listening (for --listen with port 0).
    #[arg(long, value_name = "FILE")]
    addr_file: Option<PathBuf>,
    /// Job id that workers must present; keeps workers of another job out.
    #[arg(long, default_value_t = DEFAULT_CLUSTER, value_name = "ID")]
    cluster: u64,
    /// Do not print progress lines (events and errors are still printed).
    #[arg(long, short)]
    quiet: bool,
    /// Input files, one map task each; names are passed to map as given.
    #[arg(required = true, value_name = "FILES")]
    files: Vec<String>,
}

#[derive(Args)]
#[group(id = "application", required = true, multiple = false)]
struct AppArgs {
    /// A built-in application: wc, indexer, mtiming, rtiming, jobcount, early_exit, crash, nocrash.
    #[arg(long, value_name = "NAME", group = "application")]
    app: Option<String>,
    /// A shared library (cdylib) exporting an application with
    /// core_mr::export_app!; it must be built by the same rustc and core-mr.
    #[arg(long, value_name = "PATH", group = "application")]
    lib: Option<PathBuf>,
}

impl AppArgs {
    fn load(&self) -> Result<Box<dyn App>, apps::AppError> {
        match (&self.app, &self.lib) {
            (Some(name), _) => apps::by_name(name),
            (None, Some(path)) => apps::from_library(path),
            (None, None) => unreachable!("clap requires one of --app and --lib"),
        }
    }
}

#[derive(Args)]
struct TaskArgs {
    /// Directory for intermediate and output files.
    #[arg(long, default_value = ".", value_name = "DIR")]
    work_dir: PathBuf,
    /// Memory budget of one map task's buffer; past it, sorted runs are spilled to disk.
    #[arg(long, default_value_t = 64, value_name = "MB")]
    sort_buffer_mb: usize,
}

impl TaskArgs {
    fn options(&self) -> TaskOptions {
        TaskOptions {
            work_dir: self.work_dir.clone(),
            sort_buffer_bytes: self.sort_buffer_mb.max(1) * 1024 * 1024,
        }
    }
}

#[derive(Args)]
struct WorkerArgs {
    #[command(flatten)]
    app: AppArgs,
    /// The coordinator's address.
    #[arg(long, default_value = DEFAULT_ADDR, value_name = "ADDR")]
    coordinator: String,
    /// Accepted for scripts written for earlier releases, and ignored: the
    /// worker is one blocking client (one request in flight, so async would
    /// not make it faster), the same on every runtime, and it works with a
    /// coordinator of either runtime.
    #[arg(long, value_enum, default_value_t = Runtime::Tokio)]
    runtime: Runtime,
    /// Job id to present to the coordinator.
    #[arg(long, default_value_t = DEFAULT_CLUSTER, value_name = "ID")]
    cluster: u64,
    /// Keep retrying the first connection this long (the coordinator may still be starting).
    #[arg(long, default_value_t = 5_000, value_name = "MS")]
    connect_timeout_ms: u64,
    #[command(flatten)]
    task: TaskArgs,
}

#[derive(Args)]
struct SequentialArgs {
    #[command(flatten)]
    app: AppArgs,
    #[command(flatten)]
    task: TaskArgs,
    /// Input files.
    #[arg(required = true, value_name = "FILES")]
    files: Vec<String>,
}

#[derive(Args)]
struct BenchArgs {
    /// Directory holding the pg-*.txt inputs.
    #[arg(long, value_name = "DIR")]
    gutenberg: Option<PathBuf>,
    /// Size of the generated large input, in MB (0 skips it).
    #[arg(long, default_value_t = 300, value_name = "MB")]
    size_mb: u64,
    /// Worker counts to measure.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "1,2,4",
        value_name = "N,.."
    )]
    workers: Vec<usize>,
    /// Application to run.
    #[arg(long, default_value = "wc", value_name = "NAME")]
    app: String,
    /// Scratch directory (default: a new directory under the system temp dir).
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Map-side sort buffer per task, in MB.
    #[arg(long, default_value_t = 64, value_name = "MB")]
    sort_buffer_mb: usize,
    /// Runtime of the coordinator and workers.
    #[arg(long, value_enum, default_value_t = Runtime::Tokio)]
    runtime: Runtime,
}

fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::Coordinator(a) => {
            let opts = CoordinatorOptions {
                listen: a.listen,
                n_reduce: a.reduces,
                task_timeout: Duration::from_millis(a.task_timeout_ms),
                grace: Duration::from_millis(a.grace_ms),
                max_task_failures: a.max_task_failures,
                cluster: a.cluster,
                addr_file: a.addr_file,
                quiet: a.quiet,
                ..CoordinatorOptions::new(a.files)
            };
            let result = match a.runtime {
                Runtime::Tokio => tokio_runtime()
                    .map_err(|e| format!("cannot start the tokio runtime: {e}"))?
                    .block_on(driver_tokio::mr::coordinator::run_coordinator(&opts)),
                Runtime::Threads => driver_threads::mr::coordinator::run_coordinator(&opts),
            };
            result.map(|_| ()).map_err(|e| e.to_string())
        }
        Command::Worker(a) => {
            let app: Box<dyn App> = a.app.load().map_err(|e| e.to_string())?;
            let opts = WorkerOptions {
                coordinator: a.coordinator,
                cluster: a.cluster,
                connect_timeout: Duration::from_millis(a.connect_timeout_ms),
                task: a.task.options(),
            };
            let summary =
                mr_exec::worker::run_worker(app.as_ref(), &opts).map_err(|e| e.to_string())?;
            eprintln!(
                "mr worker: exiting after {} task(s): {}",
                summary.tasks_done,
                match summary.reason {
                    core_mr::worker::ExitReason::JobOver => "the job is over",
                    core_mr::worker::ExitReason::CoordinatorGone =>
                        "the coordinator is gone (assuming the job is over)",
                }
            );
            Ok(())
        }
        Command::Sequential(a) => {
            let app = a.app.load().map_err(|e| e.to_string())?;
            run_sequential(app.as_ref(), &a.files, &a.task.options()).map_err(|e| e.to_string())
        }
        Command::Bench(a) => {
            let exe = std::env::current_exe().map_err(|e| e.to_string())?;
            let opts = BenchOptions {
                exe,
                gutenberg: a.gutenberg,
                size_mb: a.size_mb,
                workers: a.workers,
                app: a.app,
                dir: a.dir,
                sort_buffer_mb: a.sort_buffer_mb,
                runtime: a.runtime.name().to_string(),
            };
            bench::run(&opts).map_err(|e| e.to_string())
        }
    }
}

/// User plus system CPU time of this process so far, in milliseconds, from
/// /proc/self/stat (Linux's clock tick is 100 Hz).
fn cpu_millis() -> u64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0;
    };
    // Fields after the parenthesised command name start at field 3 (state);
    // utime and stime are fields 14 and 15.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    (ticks(11) + ticks(12)) * 10
}

/// Appends `label pid VmHWM-kB cpu-ms` to `path` (best effort).
fn record_usage(path: &PathBuf, label: &str) {
    use std::io::Write;
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return;
    };
    let Some(kb) = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
    else {
        return;
    };
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        // One write call per line, so concurrent appenders never interleave.
        let line = format!("{label} {} {kb} {}\n", std::process::id(), cpu_millis());
        let _ = f.write_all(line.as_bytes());
    }
}

fn main() -> ExitCode {
    init_logging("warn");
    let cli = Cli::parse();
    let label = match &cli.command {
        Command::Coordinator(_) => "coordinator",
        Command::Worker(_) => "worker",
        Command::Sequential(_) => "sequential",
        Command::Bench(_) => "bench",
    };
    let peak = cli.peak_mem_file.clone();
    let result = run(cli);
    if let Some(p) = peak {
        record_usage(&p, label);
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mr {label}: error: {e}");
            ExitCode::FAILURE
        }
    }
}
