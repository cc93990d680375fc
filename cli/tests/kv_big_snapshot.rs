//! Real processes: a state many frames large reaches a new member through
//! a chunked InstallSnapshot. A 3-node cluster runs with 64 KiB frames (so
//! snapshots travel in 32 KiB chunks) and a small snapshot threshold; a
//! follower dies with its disk while about 1 MiB of values is written, so
//! the leader's log is compacted past anything a new node could be sent
//! as entries. A fresh node joins, must be sent the snapshot (about 32
//! chunks, none of which a frame could hold whole), catches up and is
//! promoted; then one of the old nodes is killed, so the new node is part
//! of every quorum, and every key must read back.
//!
//! `scripts/big-snapshot.sh` runs the same path with hundreds of MB.

use cli::kv::local::LocalCluster;
use core_kv::{Op, Outcome};
use driver_threads::{AdminClient, KvClient};
use node_shell::NodeStatus;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

const FRAME: &str = "65536";
const KEYS: usize = 128;
const VALUE_BYTES: usize = 8 * 1024;

fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn admin(addrs: &[SocketAddr]) -> AdminClient {
    let seeds = addrs.iter().map(SocketAddr::to_string).collect();
    AdminClient::new(seeds, 6824, core_kv::KV_PROTOCOL_VERSION)
}

/// Wait until `pred` holds of the leader's status (read from `addrs`).
fn await_leader(
    addrs: &[SocketAddr],
    what: &str,
    pred: impl Fn(&NodeStatus) -> bool,
) -> NodeStatus {
    let started = Instant::now();
    loop {
        if let Ok(s) = admin(addrs).leader_status(Duration::from_secs(10)) {
            if pred(&s) && s.membership_committed() {
                return s;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "{what}: leader status {s}"
            );
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{what}: no leader"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn voters(s: &NodeStatus) -> Vec<u64> {
    s.membership.voters.iter().map(|v| v.0).collect()
}

/// The value written to key `k`: distinct per key, so a swapped or
/// misassembled chunk shows.
fn value(k: usize) -> String {
    let seed = format!("key {k} ");
    seed.chars().cycle().take(VALUE_BYTES).collect()
}

fn kv(args: &[String]) {
    let out = Command::new(env!("CARGO_BIN_EXE_kv"))
        .args(args)
        .output()
        .expect("run kv");
    assert!(
        out.status.success(),
        "kv {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn catch_up_through_a_chunked_snapshot(runtime: &str) {
    let root: PathBuf =
        std::env::temp_dir().join(format!("kv-big-snapshot-{runtime}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    let addrs: Vec<SocketAddr> = (0..3).map(|_| free_addr()).collect();
    let mut nodes = LocalCluster::new(
        PathBuf::from(env!("CARGO_BIN_EXE_kv")),
        root.clone(),
        addrs.clone(),
        runtime,
    )
    .with_serve_args(&["--max-frame-bytes", FRAME, "--max-raft-state", "65536"]);
    for id in 1..=3 {
        nodes.start(id).unwrap();
    }
    let first = await_leader(&addrs, "the cluster forms", |s| voters(s) == [1, 2, 3]);

    // A follower dies with its disk; its replacement will need everything.
    let dead = (1..=3u64).find(|id| *id != first.id.0).unwrap();
    nodes.kill(dead as usize);
    std::fs::remove_dir_all(nodes.node_dir(dead as usize)).unwrap();
    let mut client = KvClient::for_cluster(addrs.clone(), 6824).unwrap();
    for k in 0..KEYS {
        let op = Op::Set {
            key: format!("k{k}"),
            value: value(k),
        };
        let answer = client.run(op, Duration::from_secs(30)).unwrap();
        assert_eq!(answer, Outcome::Ok);
    }
    let cluster = format!(
        "--cluster={}",
        addrs
            .iter()
            .map(SocketAddr::to_string)
            .collect::<Vec<_>>()
            .join(",")
    );
    kv(&["member".into(), "remove".into(), cluster, dead.to_string()]);
    let before = await_leader(&addrs, "the dead node is removed", |s| {
        !voters(s).contains(&dead)
    });
    assert!(
        before.snapshot_index.0 > 1,
        "the leader compacted its log: {before}"
    );

    // A fresh node joins: the leader's log no longer starts at 1, so it
    // must be sent the snapshot, in chunks.
    let four = free_addr();
    nodes.start_joining(4, four, &addrs).unwrap();
    let live: Vec<SocketAddr> = addrs
        .iter()
        .enumerate()
        .filter(|(i, _)| *i as u64 + 1 != dead)
        .map(|(_, a)| *a)
        .chain([four])
        .collect();
    await_leader(&live, "node 4 catches up and is promoted", |s| {
        voters(s).contains(&4)
    });
    let status = admin(&live).status(&four.to_string()).unwrap();
    assert!(
        status.snapshot_index >= before.snapshot_index,
        "node 4 installed the leader's snapshot: {status}"
    );

    // Node 4 must now be part of every quorum: kill another original.
    let other = live
        .iter()
        .position(|a| *a != four)
        .map(|i| live[i])
        .unwrap();
    let other_id = addrs.iter().position(|a| *a == other).unwrap() + 1;
    nodes.kill(other_id);
    let rest: Vec<SocketAddr> = live.into_iter().filter(|a| *a != other).collect();
    let mut client = KvClient::for_cluster(rest, 6824).unwrap();
    for k in 0..KEYS {
        let op = Op::Get {
            key: format!("k{k}"),
        };
        match client.run(op, Duration::from_secs(30)).unwrap() {
            Outcome::Value { value: v, .. } => {
                assert!(
                    v == value(k),
                    "key k{k} reads back wrong after the transfer"
                )
            }
            other => panic!("key k{k}: {other:?}"),
        }
    }
    let log = std::fs::read_to_string(nodes.log_path(4)).unwrap_or_default();
    drop(nodes);
    assert!(!log.contains("panicked"), "node 4 log: {log}");
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn a_new_member_catches_up_through_a_chunked_snapshot_on_tokio() {
    catch_up_through_a_chunked_snapshot("tokio");
}

#[test]
fn a_new_member_catches_up_through_a_chunked_snapshot_on_threads() {
    catch_up_through_a_chunked_snapshot("threads");
}
