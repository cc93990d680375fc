//! `mr bench`: wall time and peak memory of the sequential reference and of
//! 1, 2, 4 worker processes, on the 8 Gutenberg texts and on a generated
//! large input. Every configuration runs as real child processes of the
//! `mr` executable; each child appends its peak resident set (VmHWM) and
//! its CPU time to a file on exit. Distributed outputs are checked against the sequential one.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// What to measure.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    /// The `mr` executable to run as children.
    pub exe: PathBuf,
    /// Directory of the pg-*.txt texts (default: `../shared/data/gutenberg`
    /// from the current directory or from the workspace).
    pub gutenberg: Option<PathBuf>,
    /// Size of the generated input in MB; 0 skips the large run.
    pub size_mb: u64,
    /// Worker counts to measure.
    pub workers: Vec<usize>,
    /// Application name.
    pub app: String,
    /// Scratch directory.
    pub dir: Option<PathBuf>,
    /// Map-side sort buffer, MB.
    pub sort_buffer_mb: usize,
    /// `tokio` or `threads`.
    pub runtime: String,
}

/// Finds the Gutenberg texts.
pub fn find_gutenberg(explicit: Option<&Path>) -> io::Result<Vec<PathBuf>> {
    let candidates: Vec<PathBuf> = match explicit {
        Some(p) => vec![p.to_path_buf()],
        None => vec![
            PathBuf::from("../shared/data/gutenberg"),
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/gutenberg"),
        ],
    };
    for dir in &candidates {
        let Ok(entries) = fs::read_dir(dir) else {
            continue;
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                let name = p
                    .file_name()
                    .map(|n| n.to_string_lossy().to_string())
                    .unwrap_or_default();
                name.starts_with("pg-") && name.ends_with(".txt")
            })
            .collect();
        if !files.is_empty() {
            files.sort();
            return files.iter().map(|f| f.canonicalize()).collect();
        }
    }
    Err(io::Error::new(
        io::ErrorKind::NotFound,
        format!("no pg-*.txt files in {candidates:?}; pass --gutenberg DIR"),
    ))
}

/// Writes copies of the texts into `dir` (one file per copy of the whole
/// set) until `size_mb` is reached. Returns the files.
fn generate(texts: &[PathBuf], dir: &Path, size_mb: u64) -> io::Result<Vec<PathBuf>> {
    fs::create_dir_all(dir)?;
    let mut set = Vec::new();
    for t in texts {
        set.extend(fs::read(t)?);
    }
    let target = size_mb * 1024 * 1024;
    let mut written = 0u64;
    let mut files = Vec::new();
    let mut i = 0;
    while written < target {
        let p = dir.join(format!("big-{i:04}.txt"));
        if fs::metadata(&p).map(|m| m.len()).ok() != Some(set.len() as u64) {
            fs::write(&p, &set)?;
        }
        written += set.len() as u64;
        files.push(p);
        i += 1;
    }
    Ok(files)
}

struct Measure {
    label: String,
    wall: Duration,
    coordinator_kb: u64,
    worker_kb: u64,
    /// CPU time summed over every process of the run.
    cpu: Duration,
}

/// Per-role peak memory (kB) and total CPU time (ms) from the usage file.
fn usage(file: &Path) -> (u64, u64, u64) {
    let text = fs::read_to_string(file).unwrap_or_default();
    let (mut coord, mut work, mut cpu) = (0, 0, 0);
    for line in text.lines() {
        let parts: Vec<&str> = line.split_whitespace().collect();
        if let [role, _pid, kb, ms] = parts[..] {
            let kb: u64 = kb.parse().unwrap_or(0);
            cpu += ms.parse::<u64>().unwrap_or(0);
            if role == "coordinator" {
                coord = coord.max(kb);
            } else {
                work = work.max(kb);
            }
        }
    }
    (coord, work, cpu)
}

fn sorted_output(dir: &Path) -> io::Result<Vec<String>> {
    let mut lines = Vec::new();
    for e in fs::read_dir(dir)? {
        let p = e?.path();
        if p.file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("mr-out-"))
        {
            lines.extend(
                fs::read_to_string(&p)?
                    .lines()
                    .filter(|l| !l.is_empty())
                    .map(String::from),
            );
        }
    }
    lines.sort();
    Ok(lines)
}

fn wait_ok(mut c: Child, what: &str) -> io::Result<()> {
    let status = c.wait()?;
    if !status.success() {
        return Err(io::Error::other(format!("{what} exited with {status}")));
    }
    Ok(())
}

fn run_config(
    opts: &BenchOptions,
    files: &[PathBuf],
    dir: &Path,
    workers: usize,
) -> io::Result<Measure> {
    let _ = fs::remove_dir_all(dir);
    fs::create_dir_all(dir)?;
    let mem = dir.join("peak-mem.txt");
    let sort_mb = opts.sort_buffer_mb.to_string();
    let start = Instant::now();
    if workers == 0 {
        let c = Command::new(&opts.exe)
            .current_dir(dir)
            .env("MR_PEAK_MEM_FILE", &mem)
            .args([
                "sequential",
                "--app",
                &opts.app,
                "--sort-buffer-mb",
                &sort_mb,
            ])
            .args(files)
            .spawn()?;
        wait_ok(c, "mr sequential")?;
    } else {
        let addr_file = dir.join("coordinator.addr");
        let coord = Command::new(&opts.exe)
            .current_dir(dir)
            .env("MR_PEAK_MEM_FILE", &mem)
            .args([
                "coordinator",
                "--quiet",
                "--listen",
                "127.0.0.1:0",
                "--grace-ms",
                "100",
            ])
            .args(["--runtime", &opts.runtime, "--addr-file"])
            .arg(&addr_file)
            .args(files)
            .stderr(Stdio::null())
            .spawn()?;
        let addr = loop {
            if let Ok(s) = fs::read_to_string(&addr_file) {
                break s.trim().to_string();
            }
            if start.elapsed() > Duration::from_secs(30) {
                return Err(io::Error::other("coordinator did not start"));
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let ws: Vec<Child> = (0..workers)
            .map(|_| {
                Command::new(&opts.exe)
                    .current_dir(dir)
                    .env("MR_PEAK_MEM_FILE", &mem)
                    .args(["worker", "--app", &opts.app, "--coordinator", &addr])
                    .args(["--runtime", &opts.runtime, "--sort-buffer-mb", &sort_mb])
                    .stderr(Stdio::null())
                    .spawn()
            })
            .collect::<io::Result<_>>()?;
        for w in ws {
            wait_ok(w, "mr worker")?;
        }
        wait_ok(coord, "mr coordinator")?;
    }
    let wall = start.elapsed();
    let (coordinator_kb, worker_kb, cpu_ms) = usage(&mem);
    Ok(Measure {
        label: if workers == 0 {
            "sequential".into()
        } else {
            format!("{workers} worker(s)")
        },
        wall,
        coordinator_kb,
        worker_kb,
        cpu: Duration::from_millis(cpu_ms),
    })
}

fn suite(opts: &BenchOptions, name: &str, files: &[PathBuf], scratch: &Path) -> io::Result<()> {
    let bytes: u64 = files
        .iter()
        .map(|f| fs::metadata(f).map(|m| m.len()).unwrap_or(0))
        .sum();
    println!(
        "\n{name}: {} file(s), {:.1} MB, app {}, runtime {}",
        files.len(),
        bytes as f64 / 1e6,
        opts.app,
        opts.runtime
    );
    println!(
        "{:<14} {:>8} {:>8} {:>8} {:>16} {:>14}",
        "config", "wall s", "cpu s", "MB/s", "peak worker MB", "peak coord MB"
    );
    let mut reference: Option<Vec<String>> = None;
    for &w in std::iter::once(&0).chain(opts.workers.iter()) {
        let dir = scratch.join(format!("{name}-{w}"));
        let m = run_config(opts, files, &dir, w)?;
        let out = sorted_output(&dir)?;
        match &reference {
            None => reference = Some(out),
            Some(r) if *r != out => {
                return Err(io::Error::other(format!(
                    "{}: output differs from the sequential output",
                    m.label
                )))
            }
            Some(_) => {}
        }
        let coord = if w == 0 {
            "-".to_string()
        } else {
            format!("{:.1}", m.coordinator_kb as f64 / 1024.0)
        };
        println!(
            "{:<14} {:>8.2} {:>8.2} {:>8.1} {:>16.1} {:>14}",
            m.label,
            m.wall.as_secs_f64(),
            m.cpu.as_secs_f64(),
            bytes as f64 / 1e6 / m.wall.as_secs_f64(),
            m.worker_kb as f64 / 1024.0,
            coord
        );
        io::stdout().flush()?;
        let _ = fs::remove_dir_all(&dir);
    }
    println!("(outputs of every configuration equal the sequential output after sorting)");
    Ok(())
}

/// Runs the benchmark and prints a table per input set.
pub fn run(opts: &BenchOptions) -> io::Result<()> {
    let texts = find_gutenberg(opts.gutenberg.as_deref())?;
    let scratch = opts
        .dir
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join(format!("mr-bench-{}", std::process::id())));
    fs::create_dir_all(&scratch)?;
    let scratch = scratch.canonicalize()?;
    println!("scratch directory: {}", scratch.display());
    suite(opts, "gutenberg", &texts, &scratch)?;
    if opts.size_mb > 0 {
        let big = generate(&texts, &scratch.join("input"), opts.size_mb)?;
        suite(opts, "large", &big, &scratch)?;
    }
    if opts.dir.is_none() {
        let _ = fs::remove_dir_all(&scratch);
    }
    Ok(())
}
