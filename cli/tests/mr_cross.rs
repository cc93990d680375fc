//! The one worker serves a coordinator of either runtime (same wire
//! format), and a coordinator survives hostile connections.

mod common;

use common::{assert_same_output, Lab};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(45);

fn job(name: &str, app: &str, coord_rt: &str, workers: usize) {
    let mut lab = Lab::new(name);
    let want = lab.sequential(app);
    let (coord, addr) = lab.start_coordinator(coord_rt, &[]);
    let ws: Vec<usize> = (0..workers).map(|_| lab.start_worker(app, &addr)).collect();
    assert!(lab.wait(coord, LIMIT).success());
    assert_same_output(&lab.outputs(), &want, name);
    for w in ws {
        assert!(lab.wait(w, LIMIT).success());
    }
}

#[test]
fn threads_coordinator() {
    job("x-threads", "wc", "threads", 3);
}

#[test]
fn tokio_coordinator() {
    job("x-tokio", "indexer", "tokio", 2);
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
        .worker_cmd("wc", &addr)
        .args(["--cluster", "12345"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cluster id mismatch"), "{err}");
    let w = lab.start_worker("wc", &addr);
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
