//! Real processes under a client flood (issue 12, bounded memory): a
//! 3-node cluster with small limits (600 connections, 500 requests in
//! flight) is flooded for a few seconds with more connections than it
//! takes, each pipelining 8 writes, plus connections that ask for a 64 KiB
//! value over and over and never read the answers, and connections that
//! send half of a 4 MiB request and stop. Every node must stay up with its
//! peak RSS under a generous bound (a leak check, not a measurement),
//! refuse what is beyond its limits (connections closed, requests
//! answered busy) while still answering others, and serve a well-behaved
//! client once the flood is over.

use cli::kv::flood::{run_flood, FloodOptions};
use cli::kv::local::LocalCluster;
use core_kv::{Op, Outcome};
use driver_threads::KvClient;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Peak resident memory any node may reach: a leak check, not a
/// measurement. Under this flood the leader peaks at 110-140 MiB (500
/// reads of a 64 KiB value answered at once, plus the queues of the
/// connections that do not read), followers at 40-50 MiB. A node that keeps
/// reading connections whose answers pile up (no back-pressure) peaks at
/// 320-450 MiB and fails.
const MAX_PEAK_RSS_BYTES: u64 = 256 << 20;

fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// Peak resident set size of process `pid` (VmHWM), in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .expect("VmHWM in /proc/PID/status");
    let kb: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .expect("VmHWM in kB");
    kb * 1024
}

fn flood_a_cluster(runtime: &str) {
    let root: PathBuf =
        std::env::temp_dir().join(format!("kv-flood-{runtime}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    let addrs: Vec<SocketAddr> = (0..3).map(|_| free_addr()).collect();
    let mut nodes = LocalCluster::new(
        PathBuf::from(env!("CARGO_BIN_EXE_kv")),
        root.clone(),
        addrs.clone(),
        runtime,
    )
    .with_serve_args(&["--max-connections", "600", "--max-pending-requests", "500"]);
    for id in 1..=3 {
        nodes.start(id).unwrap();
    }
    let mut client = KvClient::for_cluster(addrs.clone(), 6824).unwrap();
    let set = |value: &str| Op::Set {
        key: "before".into(),
        value: value.into(),
    };
    assert_eq!(
        client.run(set("1"), Duration::from_secs(30)).unwrap(),
        Outcome::Ok
    );

    let opts = FloodOptions {
        servers: addrs.clone(),
        cluster_id: 6824,
        connections: 2100,
        in_flight: 8,
        silent: 30,
        half_frames: 60,
        half_frame_bytes: 2 << 20,
        value_size: 256,
        big_value_bytes: 64 << 10,
        duration: Duration::from_secs(6),
        first_client: 1 << 40,
    };
    let runtime_handle = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let report = runtime_handle.block_on(run_flood(&opts));
    drop(runtime_handle); // Closes every flood connection.
    eprintln!("{runtime}: {report}");

    for id in 1..=3 {
        let pid = nodes.pid(id).expect("started");
        assert!(
            nodes.exited().is_none(),
            "{runtime}: a node exited under the flood (see {})",
            nodes.log_path(id).display()
        );
        let peak = peak_rss(pid);
        eprintln!("{runtime}: node {id} peak RSS {} MiB", peak >> 20);
        assert!(
            peak < MAX_PEAK_RSS_BYTES,
            "{runtime}: node {id} peaked at {} MiB of RSS under the flood, over the bound \
             of {} MiB",
            peak >> 20,
            MAX_PEAK_RSS_BYTES >> 20
        );
    }
    let n = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    assert!(
        n(&report.answered) > 0,
        "{runtime}: nothing answered: {report}"
    );
    assert!(
        n(&report.busy) > 0,
        "{runtime}: no request answered busy: {report}"
    );
    assert!(
        n(&report.closed_by_node) > 0,
        "{runtime}: no connection refused beyond the limit: {report}"
    );

    // The flood is over: a well-behaved client is served.
    let mut client = KvClient::for_cluster(addrs.clone(), 6824).unwrap();
    assert_eq!(
        client.run(set("2"), Duration::from_secs(30)).unwrap(),
        Outcome::Ok
    );
    let read = client
        .run(
            Op::Get {
                key: "before".into(),
            },
            Duration::from_secs(30),
        )
        .unwrap();
    assert!(
        matches!(&read, Outcome::Value { value, .. } if value == "2"),
        "{runtime}: {read:?}"
    );
    drop(nodes);
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn a_tokio_cluster_stays_within_its_bounds_under_a_client_flood() {
    flood_a_cluster("tokio");
}

#[test]
fn a_threads_cluster_stays_within_its_bounds_under_a_client_flood() {
    flood_a_cluster("threads");
}
