//! The lab's test-mr.sh, ported: every test starts a real coordinator and
//! real worker processes in its own directory and makes the script's
//! assertions. Process time limits are the script's (45 s, 120 s for crash).

mod common;

use common::{assert_same_output, Lab};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(45);
const CRASH_LIMIT: Duration = Duration::from_secs(120);

#[test]
fn wc() {
    let mut lab = Lab::new("wc");
    let want = lab.sequential("wc");
    let (coord, addr) = lab.start_coordinator("tokio", &[]);
    let workers: Vec<usize> = (0..3).map(|_| lab.start_worker("wc", &addr)).collect();
    assert!(lab.wait(coord, LIMIT).success(), "coordinator failed");
    assert_same_output(&lab.outputs(), &want, "wc");
    for w in workers {
        assert!(lab.wait(w, LIMIT).success(), "worker failed");
    }
}

#[test]
fn indexer() {
    let mut lab = Lab::new("indexer");
    let want = lab.sequential("indexer");
    let (coord, addr) = lab.start_coordinator("tokio", &[]);
    let bg = lab.start_worker("indexer", &addr);
    let fg = lab.start_worker("indexer", &addr);
    assert!(lab.wait(fg, LIMIT).success());
    assert_same_output(&lab.outputs(), &want, "indexer");
    assert!(lab.wait(bg, LIMIT).success());
    assert!(lab.wait(coord, LIMIT).success());
    // Inputs reach map exactly as named on the command line.
    assert!(want.iter().any(|l| l.contains("../pg-grimm.txt")));
}

#[test]
fn map_parallelism() {
    let mut lab = Lab::new("mtiming");
    let (coord, addr) = lab.start_coordinator("tokio", &[]);
    let a = lab.start_worker("mtiming", &addr);
    let b = lab.start_worker("mtiming", &addr);
    for i in [a, b, coord] {
        assert!(lab.wait(i, LIMIT).success());
    }
    let out = lab.outputs();
    let times = out.iter().filter(|l| l.starts_with("times-")).count();
    assert_eq!(times, 2, "both workers should have run maps: {out:?}");
    let overlapped = out
        .iter()
        .any(|l| l.starts_with("parallel") && l.split(' ').skip(1).any(|v| v == "2"));
    assert!(overlapped, "map workers did not run in parallel: {out:?}");
}

#[test]
fn reduce_parallelism() {
    let mut lab = Lab::new("rtiming");
    let (coord, addr) = lab.start_coordinator("tokio", &[]);
    let a = lab.start_worker("rtiming", &addr);
    let b = lab.start_worker("rtiming", &addr);
    for i in [a, b, coord] {
        assert!(lab.wait(i, LIMIT).success());
    }
    let out = lab.outputs();
    let parallel = out
        .iter()
        .filter(|l| {
            let b = l.as_bytes();
            b.len() == 3 && b[0].is_ascii_lowercase() && &b[1..] == b" 2"
        })
        .count();
    assert!(parallel >= 2, "too few parallel reduces: {out:?}");
}

/// Each map task must run exactly once: no re-issue without a crash, even
/// though maps take 2-5 s. Uses the lab's full 10 s reassignment timeout.
#[test]
fn job_count() {
    let mut lab = Lab::new("jobcount");
    let (coord, addr) = lab.start_coordinator("tokio", &[]);
    // The script's `w &; w; w &; w`.
    let w1 = lab.start_worker("jobcount", &addr);
    let w2 = lab.start_worker("jobcount", &addr);
    assert!(lab.wait(w2, LIMIT).success());
    let w3 = lab.start_worker("jobcount", &addr);
    let w4 = lab.start_worker("jobcount", &addr);
    assert!(lab.wait(w4, LIMIT).success());
    for i in [w1, w3, coord] {
        assert!(lab.wait(i, LIMIT).success());
    }
    let out = lab.outputs();
    assert_eq!(out, ["a 8"], "map tasks ran other than exactly once each");
}

/// No process may exit before every output is final.
#[test]
fn early_exit() {
    let mut lab = Lab::new("early_exit");
    let (coord, addr) = lab.start_coordinator("tokio", &[]);
    let mut all = vec![coord];
    for _ in 0..3 {
        all.push(lab.start_worker("early_exit", &addr));
    }
    lab.wait_any(&all, LIMIT);
    let first = lab.outputs();
    for i in all {
        assert!(lab.wait(i, LIMIT).success());
    }
    let last = lab.outputs();
    assert!(!last.is_empty());
    assert_eq!(first, last, "output changed after the first process exited");
    assert_eq!(last.len(), 8, "one line per input file: {last:?}");
}

/// Workers crash (a third of task calls exit the process) or stall; dead
/// workers are restarted as long as the coordinator runs, like the
/// script's loops. Restarts alternate between the two runtimes.
#[test]
fn crash() {
    let mut lab = Lab::new("crash");
    let want = lab.sequential("nocrash");
    let (coord, addr) = lab.start_coordinator("tokio", &["--task-timeout-ms", "3000"]);
    let first = lab.start_worker("crash", &addr);
    let done = Arc::new(AtomicBool::new(false));
    let crashes = Arc::new(Mutex::new(0u32));
    let loops: Vec<_> = (0..3)
        .map(|i| {
            let cmd_for = {
                let lab_work = lab.work.clone();
                let addr = addr.clone();
                move |n: u32| {
                    let runtime = ["tokio", "threads"][((i + n) % 2) as usize];
                    let mut c = std::process::Command::new(common::mr_exe());
                    c.current_dir(&lab_work)
                        .args(["worker", "--app", "crash", "--coordinator", &addr])
                        .args(["--runtime", runtime, "--connect-timeout-ms", "500"])
                        .stdout(std::process::Stdio::null())
                        .stderr(std::process::Stdio::null());
                    c
                }
            };
            let done = Arc::clone(&done);
            let crashes = Arc::clone(&crashes);
            std::thread::spawn(move || {
                let mut n = 0;
                while !done.load(Ordering::SeqCst) {
                    let mut child = cmd_for(n).spawn().unwrap();
                    let st = common::wait_deadline(&mut child, CRASH_LIMIT);
                    n += 1;
                    if st.is_some_and(|s| !s.success()) {
                        *crashes.lock().unwrap() += 1;
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
            })
        })
        .collect();
    let status = lab.wait(coord, CRASH_LIMIT);
    done.store(true, Ordering::SeqCst);
    for l in loops {
        l.join().unwrap();
    }
    lab.wait(first, CRASH_LIMIT);
    assert!(status.success(), "coordinator failed");
    assert_same_output(&lab.outputs(), &want, "crash");
    // The test only means something if workers actually died and came back.
    assert!(
        *crashes.lock().unwrap() > 0,
        "no restarted worker ever crashed"
    );
}
