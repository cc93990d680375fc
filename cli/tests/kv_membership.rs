//! Real processes: replacing nodes of a running 3-node `kv` cluster under
//! client load, on each runtime. A follower is killed with SIGKILL and its
//! data directory deleted; the wiped node, restarted under its old id, is
//! refused and stops; a fresh node joins as a learner, catches up, is
//! promoted, and the dead one is removed. Then the leader is replaced the
//! same way, handing over leadership first. The recorded history must be
//! linearizable, and a final read of every key is part of it, so a lost
//! acknowledged write fails the check.

use cli::kv::local::LocalCluster;
use cli::kv::workload::{check_history, Workload};
use linearizability::Verdict;
use node_shell::NodeStatus;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// Run `kv <args>` to completion; panics with its output if it fails.
async fn kv(args: Vec<String>) -> String {
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_kv"))
            .args(&args)
            .output()
            .expect("run kv")
    })
    .await
    .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "kv failed: {text}");
    text
}

fn cluster_arg(addrs: &[SocketAddr]) -> String {
    let list: Vec<String> = addrs.iter().map(SocketAddr::to_string).collect();
    format!("--cluster={}", list.join(","))
}

/// The leader's status, asked through the operator's client.
async fn leader(addrs: &[SocketAddr]) -> NodeStatus {
    let seeds = addrs.iter().map(SocketAddr::to_string).collect();
    tokio::task::spawn_blocking(move || {
        let mut c = driver_threads::AdminClient::new(seeds, 6824, core_kv::KV_PROTOCOL_VERSION);
        c.leader_status(Duration::from_secs(30)).expect("a leader")
    })
    .await
    .unwrap()
}

fn voters(s: &NodeStatus) -> Vec<u64> {
    s.membership.voters.iter().map(|v| v.0).collect()
}

/// Wait until `pred` holds of the leader's status.
async fn await_leader(addrs: &[SocketAddr], what: &str, pred: impl Fn(&NodeStatus) -> bool) {
    let started = Instant::now();
    loop {
        let s = leader(addrs).await;
        if pred(&s) && s.membership_committed() {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{what}: leader status {s}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn replace_nodes(runtime: &str) {
    let root: PathBuf =
        std::env::temp_dir().join(format!("kv-membership-{runtime}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    let addrs: Vec<SocketAddr> = (0..3).map(|_| free_addr()).collect();
    let mut nodes = LocalCluster::new(
        PathBuf::from(env!("CARGO_BIN_EXE_kv")),
        root.clone(),
        addrs.clone(),
        runtime,
    );
    for id in 1..=3 {
        nodes.start(id).unwrap();
    }
    await_leader(&addrs, "the cluster forms", |s| voters(s) == [1, 2, 3]).await;
    let workload = Workload::start(3, &addrs);
    tokio::time::sleep(Duration::from_millis(800)).await;

    // 1. A follower dies with its disk.
    let first = leader(&addrs).await;
    let dead = (1..=3u64).find(|id| *id != first.id.0).unwrap();
    nodes.kill(dead as usize);
    std::fs::remove_dir_all(nodes.node_dir(dead as usize)).unwrap();

    // The unsafe shortcut: the wiped node back under its old id. The
    // others refuse it (it has a new incarnation), and it stops itself
    // once it sees the membership list it under its old one.
    nodes.start(dead as usize).unwrap();
    let started = Instant::now();
    let exited = loop {
        if let Some((id, status)) = nodes.exited() {
            break Some((id, status));
        }
        if started.elapsed() > Duration::from_secs(20) {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let log = std::fs::read_to_string(nodes.log_path(dead as usize)).unwrap();
    let (id, status) = exited.unwrap_or_else(|| panic!("the wiped node kept running: {log}"));
    assert_eq!(id, dead as usize);
    assert!(!status.success());
    assert!(
        log.contains("incarnation") || log.contains("already belongs to a cluster"),
        "the wiped node says why it stopped: {log}"
    );
    assert!(
        voters(&leader(&addrs).await).contains(&dead),
        "the dead node is still a member until removed"
    );

    // A fresh node joins, catches up as a learner, and is promoted; then
    // the dead one is removed.
    let four = free_addr();
    nodes.start_joining(4, four, &addrs).unwrap();
    await_leader(&addrs, "node 4 joins as a voter", |s| {
        voters(s).contains(&4)
    })
    .await;
    kv(vec![
        "member".into(),
        "remove".into(),
        dead.to_string(),
        cluster_arg(&addrs),
    ])
    .await;
    let mut live: Vec<SocketAddr> = (1..=3u64)
        .filter(|id| *id != dead)
        .map(|id| addrs[id as usize - 1])
        .collect();
    live.push(four);
    await_leader(&live, "the dead node is removed", |s| {
        !voters(s).contains(&dead)
    })
    .await;

    // 2. Replace the leader: a new node joins, leadership moves away, the
    // old leader is removed and its machine is gone.
    let old = leader(&live).await.id.0;
    let five = free_addr();
    nodes.start_joining(5, five, &live).unwrap();
    await_leader(&live, "node 5 joins as a voter", |s| voters(s).contains(&5)).await;
    let moved = kv(vec![
        "transfer-leader".into(),
        "--to".into(),
        "5".into(),
        cluster_arg(&live),
    ])
    .await;
    assert!(moved.contains("node 5 leads"), "{moved}");
    live.push(five);
    kv(vec![
        "member".into(),
        "remove".into(),
        old.to_string(),
        cluster_arg(&live),
    ])
    .await;
    nodes.kill(old as usize);
    let old_addr = match old {
        4 => four,
        id => addrs[id as usize - 1],
    };
    live.retain(|a| *a != old_addr);
    await_leader(&live, "the old leader is removed", |s| {
        !voters(s).contains(&old) && voters(s).len() == 3
    })
    .await;
    let table = kv(vec!["member".into(), "list".into(), cluster_arg(&live)]).await;
    assert!(table.contains("voter"), "{table}");
    assert!(!table.contains(&format!("\n{old:<4} ")), "{table}");

    // Keep the load on the final cluster for a moment, then check.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let acknowledged = workload.acknowledged();
    let recorded = workload.stop_and_read_back(&live).await;
    assert!(
        acknowledged > 50,
        "the clients made progress: {acknowledged}"
    );
    let (verdict, summary) = check_history(&recorded, &root);
    assert_eq!(verdict, Verdict::Ok, "{summary}");
    let final_reads = recorded.iter().filter(|r| r.client == 0 && r.ret.is_some());
    assert_eq!(final_reads.count(), cli::kv::workload::KEYS);
    drop(nodes);
    let _ = std::fs::remove_dir_all(&root);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replace_a_follower_and_the_leader_tokio() {
    replace_nodes("tokio").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replace_a_follower_and_the_leader_threads() {
    replace_nodes("threads").await;
}
