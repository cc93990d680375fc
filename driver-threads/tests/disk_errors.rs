//! A disk that fails under a running node (EIO on the log's fsync, through
//! the simulated filesystem): the node stops by itself, returns the error
//! naming the operation and the file (what `kv serve` prints before exiting
//! non-zero), and never acknowledges the write whose fsync failed.

use core_kv::{KvStore, Op, Outcome, KV_PROTOCOL_VERSION};
use driver_threads::node::run_node_on;
use driver_threads::{KvClient, NodeOptions, DEFAULT_CLUSTER};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};
use storage::simfs::{Fault, SimFs, SimOp, EIO};

fn set(key: &str) -> Op {
    Op::Set {
        key: key.into(),
        value: "v".into(),
    }
}

#[test]
fn a_failed_fsync_stops_the_node_naming_the_file_and_the_write_is_never_acknowledged() {
    let addr = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let dir = PathBuf::from("/sim/kv-1");
    let opts = NodeOptions::new(1, vec![addr], dir, KV_PROTOCOL_VERSION);
    let sim = SimFs::new(1);
    let node = {
        let sim = sim.clone();
        std::thread::spawn(move || {
            run_node_on(sim, opts, KvStore::default(), &AtomicBool::new(false))
        })
    };
    let mut client = KvClient::for_cluster(vec![addr], DEFAULT_CLUSTER).unwrap();
    let answer = client.run(set("before"), Duration::from_secs(20));
    assert_eq!(answer.unwrap(), Outcome::Ok, "the node serves");

    // Every write from now on fails its fsync: none may be acknowledged,
    // and the first one that reaches the node stops it.
    sim.inject(Fault::new(SimOp::Sync, ".seg", EIO).sticky());
    let deadline = Instant::now() + Duration::from_secs(10);
    while !node.is_finished() {
        assert!(
            Instant::now() < deadline,
            "the node kept running on a failed disk"
        );
        let answer = client.run(set("after"), Duration::from_secs(1));
        assert!(
            answer.is_err(),
            "acknowledged a write whose fsync failed: {answer:?}"
        );
    }
    let err = node
        .join()
        .expect("the node returns the error, it does not panic")
        .expect_err("the node stopped on its own, so with an error")
        .to_string();
    // The disk's own error, not the disk thread's echo of it.
    assert!(
        err.starts_with("cannot fsync segment /sim/kv-1/log-"),
        "{err}"
    );
    assert!(err.contains("Input/output error"), "{err}");
    assert!(sim.injected() >= 1);
}
