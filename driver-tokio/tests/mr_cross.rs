//! A worker of one runtime serves a coordinator of the other (same wire
//! format), and a coordinator survives hostile connections.

mod common;

use common::{assert_same_output, Lab};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(45);

fn job(name: &str, app: &str, coord_rt: &str, worker_rts: &[&str]) {
    let mut lab = Lab::new(name);
    let want = lab.sequential(app);
    let (coord, addr) = lab.start_coordinator(coord_rt, &[]);
    let ws: Vec<usize> = worker_rts
        .iter()
        .map(|rt| lab.start_worker(app, &addr, rt))
        .collect();
    assert!(lab.wait(coord, LIMIT).success());
    assert_same_output(&lab.outputs(), &want, name);
    for w in ws {
        assert!(lab.wait(w, LIMIT).success());
    }
}

#[test]
fn threads_coordinator_tokio_workers() {
    job(
        "x-threads-tokio",
        "wc",
        "threads",
        &["tokio", "tokio", "tokio"],
    );
}

#[test]
fn tokio_coordinator_threads_workers() {
    job(
        "x-tokio-threads",
        "indexer",
        "tokio",
        &["threads", "threads"],
    );
}

#[test]
fn threads_everywhere_mixed() {
    job("x-mixed", "wc", "threads", &["threads", "tokio", "threads"]);
}

/// Garbage, an oversized frame and a wrong cluster id are refused; the job
/// then completes normally.
fn hostile_then_job(runtime: &str) {
    let mut lab = Lab::new(&format!("hostile-{runtime}"));
    let want = lab.sequential("wc");
    let (coord, addr) = lab.start_coordinator(runtime, &[]);
    // Garbage instead of a handshake.
    let mut s = TcpStream::connect(&addr).unwrap();
    s.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    // A frame announcing 4 GiB.
    let mut big = TcpStream::connect(&addr).unwrap();
    big.write_all(&u32::MAX.to_be_bytes()).unwrap();
    // Both connections are closed by the coordinator.
    for mut c in [s, big] {
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut buf = Vec::new();
        let _ = c.read_to_end(&mut buf);
    }
    // A worker of another job is refused with a clear error.
    let out = lab
        .worker_cmd("wc", &addr, "threads")
        .args(["--cluster", "12345"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cluster id mismatch"), "{err}");
    let w = lab.start_worker("wc", &addr, "tokio");
    assert!(lab.wait(coord, LIMIT).success());
    assert!(lab.wait(w, LIMIT).success());
    assert_same_output(&lab.outputs(), &want, "after hostile connections");
}

#[test]
fn hostile_connections_tokio() {
    hostile_then_job("tokio");
}

#[test]
fn hostile_connections_threads() {
    hostile_then_job("threads");
}
