//! `kv demo`: a 3-node cluster of real processes on loopback, a mixed
//! workload from several clients, the leader killed with SIGKILL mid-run,
//! the failover timed, the node restarted, and the recorded history checked
//! for linearizability.

use super::local::LocalCluster;
use core_kv::{Op, Outcome, Version};
use driver_tokio::kv::KvClient;
use linearizability::kv::{versioned_history, Recorded};
use linearizability::models::VersionedKvModel;
use linearizability::{check, CheckOptions, Verdict};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
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

/// The recording clients, running until stopped.
struct Workload {
    t0: Instant,
    history: Arc<Mutex<Vec<Recorded>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Workload {
    fn start(clients: usize, addrs: &[SocketAddr]) -> Workload {
        let t0 = Instant::now();
        let micros = move || t0.elapsed().as_micros() as u64;
        let history: Arc<Mutex<Vec<Recorded>>> = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let tasks = (0..clients)
            .map(|c| {
                let (addrs, history, stop) = (addrs.to_vec(), history.clone(), stop.clone());
                tokio::spawn(client_loop(c as u64 + 1, addrs, history, stop, micros))
            })
            .collect();
        Workload {
            t0,
            history,
            stop,
            tasks,
        }
    }

    /// Microseconds since the workload started (the history's clock).
    fn now(&self) -> u64 {
        self.t0.elapsed().as_micros() as u64
    }

    /// When the first Put invoked at or after `since` was acknowledged.
    fn first_write_acked_after(&self, since: u64) -> Option<u64> {
        let history = self.history.lock().unwrap();
        history
            .iter()
            .filter(|r| {
                r.call >= since && r.outcome == Some(Outcome::Ok) && matches!(r.op, Op::Put { .. })
            })
            .filter_map(|r| r.ret)
            .min()
    }

    /// Stop every client (an operation in flight stays in the history
    /// without a return) and hand back the history.
    async fn stop(self) -> Vec<Recorded> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for t in self.tasks {
            let _ = t.await;
        }
        let history = self.history.lock().unwrap();
        history.clone()
    }
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
    let outcome = check(
        &VersionedKvModel,
        &versioned_history(recorded),
        &CheckOptions::with_budget(Duration::from_secs(30)),
    );
    let summary = outcome.to_string();
    if outcome.verdict == Verdict::Illegal {
        if let Some(f) = &outcome.failure {
            let page = opts.data_dir.join("linearizability.html");
            if f.write_html(&page).is_ok() {
                println!("timeline of the failing key: {}", page.display());
            }
        }
    }
    DemoReport {
        ops,
        failover,
        verdict: outcome.verdict,
        summary,
    }
}

/// One client: versioned Puts and Gets on a few keys until stopped,
/// recording call and return times for the checker.
async fn client_loop(
    me: u64,
    addrs: Vec<SocketAddr>,
    history: Arc<Mutex<Vec<Recorded>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    now: impl Fn() -> u64,
) {
    let Ok(mut client) = KvClient::for_cluster(addrs, 6824) else {
        return;
    };
    let mut versions = [0u64; 3];
    let mut n = 0u64;
    // After a refused Put, read that key to learn its version.
    let mut reread: Option<usize> = None;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        n += 1;
        let (k, op) = match reread.take() {
            Some(k) => (
                k,
                Op::Get {
                    key: format!("k{k}"),
                },
            ),
            None => {
                let k = ((me + n) % 3) as usize;
                let key = format!("k{k}");
                if n.is_multiple_of(2) {
                    (k, Op::Get { key })
                } else {
                    (
                        k,
                        Op::Put {
                            key,
                            value: format!("c{me}-{n}"),
                            version: Version(versions[k]),
                        },
                    )
                }
            }
        };
        let call = now();
        let index = {
            let mut h = history.lock().unwrap();
            h.push(Recorded {
                client: me,
                call,
                ret: None,
                op: op.clone(),
                outcome: None,
            });
            h.len() - 1
        };
        // No deadline of our own: an operation in flight when the demo
        // stops stays in the history without a return, as "maybe applied".
        let result = tokio::select! {
            r = client.run(op, Duration::from_secs(60)) => r.ok(),
            _ = wait_for(&stop) => None,
        };
        let Some(outcome) = result else { break };
        let ret = now();
        match &outcome {
            Outcome::Value { version, .. } => versions[k] = version.0,
            Outcome::Ok => versions[k] += 1,
            Outcome::ErrNoKey => versions[k] = 0,
            Outcome::ErrVersion | Outcome::ErrMaybe => reread = Some(k),
        }
        let mut h = history.lock().unwrap();
        h[index].ret = Some(ret);
        h[index].outcome = Some(outcome);
    }
}

async fn wait_for(stop: &std::sync::atomic::AtomicBool) {
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(20)).await;
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
