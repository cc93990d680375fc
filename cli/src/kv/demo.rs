//! `kv demo`: a 3-node cluster of real processes on loopback, a mixed
//! workload from several clients, the leader killed with SIGKILL mid-run,
//! the failover timed, the node restarted, and the recorded history checked
//! for linearizability.

use super::local::LocalCluster;
use super::workload::{check_history as check_recorded, Workload};
use core_kv::Op;
use driver_tokio::kv::KvClient;
use linearizability::kv::Recorded;
use linearizability::Verdict;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How to run the demo.
#[derive(Clone, Debug)]
pub struct DemoOptions {
    /// Where the nodes keep their data (one subdirectory each).
    pub data_dir: PathBuf,
    /// Concurrent clients.
    pub clients: usize,
    /// Seconds of workload before and after the leader is killed.
    pub phase_secs: f64,
    /// The `kv` executable to start nodes with.
    pub exe: PathBuf,
    /// The nodes' `--runtime`: `tokio` or `threads`.
    pub runtime: String,
}

/// What the demo measured.
#[derive(Clone, Debug)]
pub struct DemoReport {
    /// Operations that completed.
    pub ops: usize,
    /// From the leader's kill to the next acknowledged write.
    pub failover: Option<Duration>,
    /// The linearizability verdict.
    pub verdict: Verdict,
    /// The checker's summary line.
    pub summary: String,
}

/// Run the demo, printing progress; returns what it measured.
pub async fn run_demo(opts: &DemoOptions) -> std::io::Result<DemoReport> {
    let (mut nodes, addrs) = start_cluster(opts)?;
    let workload = Workload::start(opts.clients, &addrs);
    let phase = Duration::from_secs_f64(opts.phase_secs);
    tokio::time::sleep(phase).await;
    let leader = find_leader(&addrs).await?;
    let killed_at = workload.now();
    nodes.kill(leader);
    println!("killed the leader, node {leader}, with SIGKILL");
    let failover = measure_failover(&workload, killed_at, phase).await;
    nodes.start(leader)?;
    println!("restarted node {leader} from its data directory");
    tokio::time::sleep(phase).await;
    let recorded = workload.stop().await;
    Ok(check_history(opts, &recorded, failover))
}

/// Three `kv serve` children on free loopback ports.
fn start_cluster(opts: &DemoOptions) -> std::io::Result<(LocalCluster, Vec<SocketAddr>)> {
    std::fs::create_dir_all(&opts.data_dir)?;
    let addrs: Vec<SocketAddr> = (0..3)
        .map(|_| TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()))
        .collect::<Result<_, _>>()?;
    let mut nodes = LocalCluster::new(
        opts.exe.clone(),
        opts.data_dir.clone(),
        addrs.clone(),
        &opts.runtime,
    );
    for id in 1..=3 {
        nodes.start(id)?;
    }
    println!(
        "started 3 nodes ({} runtime) on {addrs:?}; data and logs in {}",
        opts.runtime,
        opts.data_dir.display()
    );
    Ok((nodes, addrs))
}

/// Ask the cluster who leads (a read goes to the leader).
async fn find_leader(addrs: &[SocketAddr]) -> std::io::Result<usize> {
    let mut probe = KvClient::for_cluster(addrs.to_vec(), 6824).map_err(std::io::Error::other)?;
    probe
        .run(Op::Get { key: "k0".into() }, Duration::from_secs(30))
        .await
        .map_err(std::io::Error::other)?;
    Ok(probe.leader().unwrap_or(1) as usize)
}

/// Keep the workload running for the phase, and in any case until a write
/// issued after the kill is acknowledged (or 10 s pass): the failover time
/// is measured, not cut off by the phase length.
async fn measure_failover(
    workload: &Workload,
    killed_at: u64,
    phase: Duration,
) -> Option<Duration> {
    let waited = Instant::now();
    tokio::time::sleep(phase).await;
    while workload.first_write_acked_after(killed_at).is_none()
        && waited.elapsed() < Duration::from_secs(10)
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let failover = workload
        .first_write_acked_after(killed_at)
        .map(|ret| Duration::from_micros(ret - killed_at));
    match failover {
        Some(d) => println!(
            "first write acknowledged {:.0} ms after the kill",
            d.as_secs_f64() * 1000.0
        ),
        None => println!("no write was acknowledged after the kill"),
    }
    failover
}

/// Check the history for linearizability; a failing one writes its
/// timeline page next to the data.
fn check_history(
    opts: &DemoOptions,
    recorded: &[Recorded],
    failover: Option<Duration>,
) -> DemoReport {
    let ops = recorded.iter().filter(|r| r.ret.is_some()).count();
    let (verdict, summary) = check_recorded(recorded, &opts.data_dir);
    DemoReport {
        ops,
        failover,
        verdict,
        summary,
    }
}

/// The default data directory of `kv demo`: a fresh one under the system's
/// temporary directory.
pub fn default_data_dir() -> PathBuf {
    std::env::temp_dir().join(format!("kv-demo-{}", std::process::id()))
}

/// Whether `dir` looks safe to reuse.
pub fn is_empty_or_missing(dir: &Path) -> bool {
    std::fs::read_dir(dir).map_or(true, |mut d| d.next().is_none())
}
