//! The lab's test applications (`src/mrapps/*.go`). They sleep, exit the
//! process, and create files in the working directory to observe
//! parallelism, so they live with the drivers, not in the pure core.

use core_mr::App;
use std::cell::Cell;
use std::fs;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::sleep;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Names of the test applications.
pub const TEST_APP_NAMES: &[&str] = &[
    "mtiming",
    "rtiming",
    "jobcount",
    "early_exit",
    "crash",
    "nocrash",
];

/// The test application called `name`, if there is one.
pub fn test_app(name: &str) -> Option<Box<dyn App>> {
    match name {
        "mtiming" => Some(Box::new(MTiming)),
        "rtiming" => Some(Box::new(RTiming)),
        "jobcount" => Some(Box::new(JobCount)),
        "early_exit" => Some(Box::new(EarlyExit)),
        "crash" => Some(Box::new(Crash { crash: true })),
        "nocrash" => Some(Box::new(Crash { crash: false })),
        _ => None,
    }
}

fn pid_alive(pid: u32) -> bool {
    // Same answer as the lab's kill(pid, 0) for our purposes (Linux).
    Path::new(&format!("/proc/{pid}")).exists()
}

/// The lab's `nparallel`: announce ourselves with a file, count the live
/// processes that announced the same phase, hold for a second, withdraw.
fn nparallel(phase: &str) -> usize {
    let pid = std::process::id();
    let mine = format!("mr-worker-{phase}-{pid}");
    let _ = fs::write(&mine, "x");
    let prefix = format!("mr-worker-{phase}-");
    let count = fs::read_dir(".")
        .map(|dir| {
            dir.filter_map(Result::ok)
                .filter_map(|e| {
                    let name = e.file_name().into_string().ok()?;
                    name.strip_prefix(&prefix)?.parse::<u32>().ok()
                })
                .filter(|p| pid_alive(*p))
                .count()
        })
        .unwrap_or(0);
    sleep(Duration::from_secs(1));
    let _ = fs::remove_file(&mine);
    count
}

fn sorted_joined(values: &mut dyn Iterator<Item = String>, sep: &str) -> String {
    let mut v: Vec<String> = values.collect();
    v.sort();
    v.join(sep)
}

/// `mtiming`: map-phase parallelism probe.
struct MTiming;
impl App for MTiming {
    fn map(&self, _f: &str, _c: &str, emit: &mut dyn FnMut(&str, &str)) {
        let t0 = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        let pid = std::process::id();
        let n = nparallel("map");
        emit(&format!("times-{pid}"), &format!("{t0:.1}"));
        emit(&format!("parallel-{pid}"), &n.to_string());
    }
    fn reduce(&self, _k: &str, values: &mut dyn Iterator<Item = String>) -> String {
        sorted_joined(values, " ")
    }
}

/// `rtiming`: reduce-phase parallelism probe.
struct RTiming;
impl App for RTiming {
    fn map(&self, _f: &str, _c: &str, emit: &mut dyn FnMut(&str, &str)) {
        for k in ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"] {
            emit(k, "1");
        }
    }
    fn reduce(&self, _k: &str, values: &mut dyn Iterator<Item = String>) -> String {
        values.for_each(drop);
        nparallel("reduce").to_string()
    }
}

/// `jobcount`: counts map invocations through marker files.
struct JobCount;
static JOBCOUNT_CALLS: AtomicU64 = AtomicU64::new(0);
impl App for JobCount {
    fn map(&self, _f: &str, _c: &str, emit: &mut dyn FnMut(&str, &str)) {
        let n = JOBCOUNT_CALLS.fetch_add(1, Ordering::SeqCst);
        let _ = fs::write(
            format!("mr-worker-jobcount-{}-{n}", std::process::id()),
            "x",
        );
        sleep(Duration::from_millis(2000 + random_below(3000)));
        emit("a", "x");
    }
    fn reduce(&self, _k: &str, values: &mut dyn Iterator<Item = String>) -> String {
        values.for_each(drop);
        let n = fs::read_dir(".")
            .map(|d| {
                d.filter_map(Result::ok)
                    .filter(|e| {
                        e.file_name()
                            .to_string_lossy()
                            .starts_with("mr-worker-jobcount")
                    })
                    .count()
            })
            .unwrap_or(0);
        n.to_string()
    }
}

/// `early_exit`: slow reduces for some keys, to catch processes that exit
/// before every output is final.
struct EarlyExit;
impl App for EarlyExit {
    fn map(&self, filename: &str, _c: &str, emit: &mut dyn FnMut(&str, &str)) {
        emit(filename, "1");
    }
    fn reduce(&self, key: &str, values: &mut dyn Iterator<Item = String>) -> String {
        if key.contains("sherlock") || key.contains("tom") {
            sleep(Duration::from_secs(3));
        }
        values.count().to_string()
    }
}

/// `crash` (and `nocrash` with `crash: false`): a third of the calls exit
/// the process, a third sleep up to 10 s.
struct Crash {
    crash: bool,
}
impl Crash {
    fn maybe_crash(&self) {
        if !self.crash {
            return;
        }
        let r = random_below(1000);
        if r < 330 {
            std::process::exit(1);
        } else if r < 660 {
            sleep(Duration::from_millis(random_below(10_000)));
        }
    }
}
impl App for Crash {
    fn map(&self, filename: &str, contents: &str, emit: &mut dyn FnMut(&str, &str)) {
        self.maybe_crash();
        emit("a", filename);
        emit("b", &filename.len().to_string());
        emit("c", &contents.len().to_string());
        emit("d", "xyzzy");
    }
    fn reduce(&self, _k: &str, values: &mut dyn Iterator<Item = String>) -> String {
        self.maybe_crash();
        sorted_joined(values, " ")
    }
}

thread_local! {
    static RNG: Cell<u64> = Cell::new({
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos() as u64;
        (nanos ^ (u64::from(std::process::id()) << 32)) | 1
    });
}

/// Unseeded randomness, like the lab's crypto/rand: these apps exist to be
/// unpredictable across processes.
fn random_below(n: u64) -> u64 {
    RNG.with(|c| {
        let mut x = c.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        c.set(x);
        // Mix before reducing so that nearby seeds diverge at once.
        let mut z = x.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        z ^= z >> 31;
        z % n
    })
}
