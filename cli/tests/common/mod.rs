//! Harness for the MapReduce integration tests: each test gets its own
//! directory laid out like the lab's (`T/pg-*.txt` and the working
//! directory `T/mr-tmp`, so inputs are named `../pg-*.txt` as in
//! test-mr.sh), real `mr` processes, and a guard that kills leftovers.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The `mr` binary under test.
pub fn mr_exe() -> &'static str {
    env!("CARGO_BIN_EXE_mr")
}

/// The Gutenberg texts, resolved from the workspace root.
pub fn gutenberg_dir() -> PathBuf {
    let d = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/gutenberg");
    assert!(
        d.is_dir(),
        "test data missing: {} (expected the shared Gutenberg texts beside the workspace)",
        d.display()
    );
    d
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// One test's directory tree and processes.
pub struct Lab {
    pub root: PathBuf,
    /// The processes' working directory (the lab's `mr-tmp`).
    pub work: PathBuf,
    /// Input names as passed on the command line (`../pg-*.txt`).
    pub inputs: Vec<String>,
    children: Vec<Child>,
    log_seq: u64,
}

impl Lab {
    pub fn new(name: &str) -> Lab {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let root = std::env::temp_dir().join(format!(
            "mr-test-{name}-{}-{nanos}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let work = root.join("mr-tmp");
        fs::create_dir_all(&work).unwrap();
        let mut inputs = Vec::new();
        let mut texts: Vec<PathBuf> = fs::read_dir(gutenberg_dir())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                let n = p.file_name().unwrap().to_string_lossy().to_string();
                n.starts_with("pg-") && n.ends_with(".txt")
            })
            .collect();
        texts.sort();
        assert_eq!(texts.len(), 8, "expected the 8 Gutenberg texts");
        for t in texts {
            let name = t.file_name().unwrap().to_string_lossy().to_string();
            std::os::unix::fs::symlink(t.canonicalize().unwrap(), root.join(&name)).unwrap();
            inputs.push(format!("../{name}"));
        }
        Lab {
            root,
            work,
            inputs,
            children: Vec::new(),
            log_seq: 0,
        }
    }

    fn log_file(&mut self, what: &str) -> fs::File {
        self.log_seq += 1;
        fs::File::create(self.root.join(format!("{}-{what}.log", self.log_seq))).unwrap()
    }

    /// Runs `mr sequential` in a sibling directory with the same relative
    /// input names; returns its sorted, non-empty output lines.
    pub fn sequential(&mut self, app: &str) -> Vec<String> {
        let dir = self.root.join("seq");
        fs::create_dir_all(&dir).unwrap();
        let status = Command::new(mr_exe())
            .current_dir(&dir)
            .args(["sequential", "--app", app])
            .args(&self.inputs)
            .status()
            .unwrap();
        assert!(status.success(), "mr sequential failed: {status}");
        let out = sorted_lines(&dir);
        fs::remove_dir_all(&dir).unwrap();
        assert!(!out.is_empty(), "sequential output is empty");
        out
    }

    /// Starts a coordinator on a free loopback port; returns its address.
    pub fn start_coordinator(&mut self, runtime: &str, extra: &[&str]) -> (usize, String) {
        let addr_file = self.root.join(format!("coord-{}.addr", self.log_seq));
        let log = self.log_file("coordinator");
        let child = Command::new(mr_exe())
            .current_dir(&self.work)
            .args([
                "coordinator",
                "--listen",
                "127.0.0.1:0",
                "--runtime",
                runtime,
            ])
            .arg("--addr-file")
            .arg(&addr_file)
            .args(extra)
            .args(&self.inputs)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.children.push(child);
        let idx = self.children.len() - 1;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(s) = fs::read_to_string(&addr_file) {
                if s.ends_with('\n') {
                    return (idx, s.trim().to_string());
                }
            }
            if let Ok(Some(st)) = self.children[idx].try_wait() {
                panic!(
                    "coordinator exited early with {st}; see {}",
                    self.root.display()
                );
            }
            assert!(Instant::now() < deadline, "coordinator did not start");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// A worker command (not yet started).
    pub fn worker_cmd(&self, app: &str, addr: &str) -> Command {
        let mut c = Command::new(mr_exe());
        c.current_dir(&self.work)
            .args(["worker", "--app", app, "--coordinator", addr])
            .args(["--connect-timeout-ms", "1000"])
            .stdout(Stdio::null());
        c
    }

    /// Starts a worker in the background; returns its index.
    pub fn start_worker(&mut self, app: &str, addr: &str) -> usize {
        let log = self.log_file("worker");
        let child = self.worker_cmd(app, addr).stderr(log).spawn().unwrap();
        self.children.push(child);
        self.children.len() - 1
    }

    /// Waits for process `idx` (at most `limit`, like the lab's `timeout`).
    pub fn wait(&mut self, idx: usize, limit: Duration) -> ExitStatus {
        wait_deadline(&mut self.children[idx], limit).unwrap_or_else(|| {
            panic!(
                "process {idx} still running after {limit:?}; logs in {}",
                self.root.display()
            )
        })
    }

    /// Polls until any of `idxs` exits; returns which.
    pub fn wait_any(&mut self, idxs: &[usize], limit: Duration) -> usize {
        let deadline = Instant::now() + limit;
        loop {
            for &i in idxs {
                if self.children[i].try_wait().unwrap().is_some() {
                    return i;
                }
            }
            assert!(
                Instant::now() < deadline,
                "no process exited within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Sorted, non-empty lines of every `mr-out-*` in the working directory.
    pub fn outputs(&self) -> Vec<String> {
        sorted_lines(&self.work)
    }

    /// Prints the logs (for failure diagnosis).
    pub fn dump_logs(&self) {
        let mut logs: Vec<PathBuf> = fs::read_dir(&self.root)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "log"))
            .collect();
        logs.sort();
        for l in logs {
            eprintln!("==== {}", l.display());
            eprintln!("{}", fs::read_to_string(&l).unwrap_or_default());
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for c in &mut self.children {
            if c.try_wait().ok().flatten().is_none() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        if std::thread::panicking() {
            self.dump_logs();
            eprintln!("test directory kept: {}", self.root.display());
        } else {
            let _ = fs::remove_dir_all(&self.root);
        }
    }
}

/// Waits up to `limit` for a child; `None` (after killing it) on timeout.
pub fn wait_deadline(c: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(st) = c.try_wait().unwrap() {
            return Some(st);
        }
        if Instant::now() >= deadline {
            let _ = c.kill();
            let _ = c.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Sorted, non-empty lines of every `mr-out-*` file in `dir` (the lab's
/// `sort mr-out* | grep .`, in byte order).
pub fn sorted_lines(dir: &Path) -> Vec<String> {
    let mut lines = Vec::new();
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("mr-out")
        {
            lines.extend(
                fs::read_to_string(&p)
                    .unwrap()
                    .lines()
                    .filter(|l| !l.is_empty())
                    .map(String::from),
            );
        }
    }
    lines.sort();
    lines
}

/// Asserts two sorted outputs are equal, showing the first difference.
pub fn assert_same_output(got: &[String], want: &[String], what: &str) {
    if got != want {
        let first = got.iter().zip(want).position(|(a, b)| a != b);
        panic!(
            "{what}: output differs from mr sequential ({} vs {} lines); first difference at {:?}: got {:?}, want {:?}",
            got.len(),
            want.len(),
            first,
            first.map(|i| &got[i]),
            first.map(|i| &want[i]),
        );
    }
}
