//! The `mr` command's help and its errors on bad input.

mod common;

use common::{mr_exe, Lab};
use std::process::Command;

fn run(lab: &Lab, args: &[&str]) -> (bool, String) {
    let out = Command::new(mr_exe())
        .current_dir(&lab.work)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn help_explains_every_flag() {
    let lab = Lab::new("help");
    let (ok, coord) = run(&lab, &["coordinator", "--help"]);
    assert!(ok);
    for flag in [
        "--reduces",
        "--listen",
        "--runtime",
        "--task-timeout-ms",
        "--addr-file",
        "--cluster",
        "--quiet",
    ] {
        assert!(
            coord.contains(flag),
            "coordinator help lacks {flag}:\n{coord}"
        );
    }
    let (ok, worker) = run(&lab, &["worker", "--help"]);
    assert!(ok);
    for flag in [
        "--app",
        "--lib",
        "--coordinator",
        "--runtime",
        "--sort-buffer-mb",
    ] {
        assert!(worker.contains(flag), "worker help lacks {flag}:\n{worker}");
    }
}

#[test]
fn bad_input_gives_clear_errors() {
    let lab = Lab::new("errors");
    let (ok, err) = run(&lab, &["sequential", "--app", "nosuch", "../pg-grimm.txt"]);
    assert!(!ok);
    assert!(
        err.contains("unknown application `nosuch`") && err.contains("wc, indexer"),
        "{err}"
    );

    let (ok, err) = run(
        &lab,
        &["coordinator", "--listen", "127.0.0.1:0", "missing.txt"],
    );
    assert!(!ok);
    assert!(
        err.contains("input file missing.txt is not readable"),
        "{err}"
    );

    let (ok, err) = run(
        &lab,
        &[
            "coordinator",
            "--reduces",
            "0",
            "--listen",
            "127.0.0.1:0",
            "../pg-grimm.txt",
        ],
    );
    assert!(!ok);
    assert!(err.contains("at least 1"), "{err}");

    let (ok, err) = run(&lab, &["sequential", "--app", "wc", "missing.txt"]);
    assert!(!ok);
    assert!(err.contains("cannot read input file missing.txt"), "{err}");

    // Nobody listens on a port we just released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let (ok, err) = run(
        &lab,
        &[
            "worker",
            "--app",
            "wc",
            "--coordinator",
            &port.to_string(),
            "--connect-timeout-ms",
            "200",
        ],
    );
    assert!(!ok);
    assert!(err.contains("cannot reach the coordinator"), "{err}");
}

/// A task that fails every time (its input vanished after the coordinator
/// checked it) fails the job with a message naming the task, and the
/// coordinator exits non-zero instead of retrying forever.
#[test]
fn repeatedly_failing_task_fails_the_job() {
    let mut lab = Lab::new("failing");
    std::fs::write(lab.work.join("doomed.txt"), "some words").unwrap();
    lab.inputs = vec!["doomed.txt".into()];
    let (coord, addr) = lab.start_coordinator("tokio", &[]);
    std::fs::remove_file(lab.work.join("doomed.txt")).unwrap();
    let w = lab.start_worker("wc", &addr);
    let st = lab.wait(coord, std::time::Duration::from_secs(45));
    assert!(!st.success());
    assert!(lab.wait(w, std::time::Duration::from_secs(45)).success());
    let log = std::fs::read_to_string(lab.root.join("1-coordinator.log")).unwrap();
    assert!(log.contains("job failed: map 0 failed repeatedly"), "{log}");
}
