//! `kv chaos`: a nemesis for real clusters. It starts a local cluster of
//! `kv serve` processes with fault injection on, runs recording clients,
//! injects faults drawn from a seed (kill -9 and restart, SIGSTOP/SIGCONT
//! pauses, partitions and one-way drops through the nodes' fault-injection
//! control files, slow fsyncs, graceful restarts), then heals everything
//! and requires that the cluster makes progress, that every node catches
//! up, that the history is linearizable and that no acknowledged write is
//! lost.

mod nemesis;
mod report;

pub use nemesis::Fault;
pub use report::ChaosReport;

use super::local::LocalCluster;
use super::workload::{check_history_within, KeySpace, Workload};
use driver_threads::admin::AdminClient;
use nemesis::NemesisRun;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// A kind of fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum Nemesis {
    /// SIGKILL a node, leave it down for 0.5-3 s, start it again from its
    /// data directory.
    Kill,
    /// SIGSTOP a node for longer than the election timeout (1.2-3.5 s),
    /// then SIGCONT it.
    Pause,
    /// Cut Raft links for 1.5-4 s: isolate a minority, mute a node (its
    /// frames are lost), deafen it (frames to it are lost), or drop one
    /// direction between two nodes.
    Partition,
    /// SIGTERM a node (a clean stop, which must exit 0 within 10 s) and
    /// start it again at once.
    Restart,
    /// Delay each of a node's fsyncs by 20-1500 ms for 1.5-4 s.
    Disk,
}

impl Nemesis {
    /// Every kind, in the summary's order.
    pub const ALL: [Nemesis; 5] = [
        Nemesis::Kill,
        Nemesis::Pause,
        Nemesis::Partition,
        Nemesis::Restart,
        Nemesis::Disk,
    ];

    /// The name the command line uses.
    pub fn name(self) -> &'static str {
        match self {
            Nemesis::Kill => "kill",
            Nemesis::Pause => "pause",
            Nemesis::Partition => "partition",
            Nemesis::Restart => "restart",
            Nemesis::Disk => "disk",
        }
    }
}

/// Which driver the nodes run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ChaosRuntime {
    /// Every node on tokio.
    Tokio,
    /// Every node on the threads (mio) driver.
    Threads,
    /// Odd-numbered nodes on tokio, even-numbered ones on threads.
    Mixed,
}

impl ChaosRuntime {
    /// The name the command line uses.
    pub fn name(self) -> &'static str {
        match self {
            ChaosRuntime::Tokio => "tokio",
            ChaosRuntime::Threads => "threads",
            ChaosRuntime::Mixed => "mixed",
        }
    }

    /// Node `id`'s `kv serve --runtime`.
    pub fn of_node(self, id: usize) -> &'static str {
        match self {
            ChaosRuntime::Tokio => "tokio",
            ChaosRuntime::Threads => "threads",
            ChaosRuntime::Mixed if id % 2 == 1 => "tokio",
            ChaosRuntime::Mixed => "threads",
        }
    }
}

/// How to run `kv chaos`.
#[derive(Clone, Debug)]
pub struct ChaosOptions {
    /// Where the nodes keep their data and logs (one subdirectory each).
    pub data_dir: PathBuf,
    /// The `kv` executable to start nodes with.
    pub exe: PathBuf,
    /// Nodes in the cluster (3 or more).
    pub nodes: usize,
    /// Recording clients.
    pub clients: usize,
    /// Keys the clients read and write at any one time.
    pub keys: usize,
    /// How often the clients move on to fresh keys.
    pub key_epoch: Duration,
    /// How long faults are injected.
    pub duration: Duration,
    /// The kinds of fault to inject.
    pub nemeses: Vec<Nemesis>,
    /// The seed every random choice of the nemesis is drawn from.
    pub seed: u64,
    /// The nodes' runtimes.
    pub runtime: ChaosRuntime,
    /// After healing: how long the cluster may take to acknowledge a new
    /// write and to bring every node up to date.
    pub progress_timeout: Duration,
    /// The nodes' `--max-raft-state`.
    pub max_raft_state: usize,
}

impl ChaosOptions {
    /// The command that repeats this run's schedule.
    pub fn replay_command(&self) -> String {
        let kinds: Vec<&str> = self.nemeses.iter().map(|n| n.name()).collect();
        format!(
            "kv chaos --seed {} --duration {}s --nemesis {} --runtime {} --nodes {} --clients {} --keys {} --key-epoch {}s --max-raft-state {}",
            self.seed,
            self.duration.as_secs_f64(),
            kinds.join(","),
            self.runtime.name(),
            self.nodes,
            self.clients,
            self.keys,
            self.key_epoch.as_secs_f64(),
            self.max_raft_state
        )
    }
}

/// Run the whole thing, printing each fault as it happens; returns what
/// was found. Errors are failures to run at all (ports, files, processes).
pub async fn run_chaos(opts: &ChaosOptions) -> std::io::Result<ChaosReport> {
    std::fs::create_dir_all(&opts.data_dir)?;
    let addrs: Vec<SocketAddr> = (0..opts.nodes)
        .map(|_| TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()))
        .collect::<Result<_, _>>()?;
    let mut cluster = LocalCluster::new(
        opts.exe.clone(),
        opts.data_dir.clone(),
        addrs.clone(),
        opts.runtime.of_node(1),
    )
    .with_serve_args(&[
        "--fault-injection",
        "--max-raft-state",
        &opts.max_raft_state.to_string(),
    ]);
    for id in 1..=opts.nodes {
        cluster.set_runtime(id, opts.runtime.of_node(id));
        cluster.start(id)?;
    }
    let runtimes: Vec<String> = (1..=opts.nodes)
        .map(|id| format!("node {id} {}", opts.runtime.of_node(id)))
        .collect();
    println!(
        "kv chaos: seed {} ({}); {} nodes ({}) on {}; data and logs in {}",
        opts.seed,
        opts.replay_command(),
        opts.nodes,
        runtimes.join(", "),
        list(&addrs),
        opts.data_dir.display()
    );

    let space = KeySpace {
        keys: opts.keys,
        epoch: Some(opts.key_epoch),
    };
    let workload = Workload::start_in(opts.clients, &addrs, space);
    wait_until_serving(&workload, &mut cluster).await?;
    println!(
        "cluster serving after {:.1} s; injecting faults for {:.0} s",
        workload.now() as f64 / 1e6,
        opts.duration.as_secs_f64()
    );

    let mut nemesis = NemesisRun::new(
        cluster,
        opts.nemeses.clone(),
        opts.seed,
        workload.origin(),
        true,
    );
    let until = Instant::now() + opts.duration;
    let mut nemesis = tokio::task::spawn_blocking(move || {
        nemesis.run(until);
        nemesis
    })
    .await
    .map_err(std::io::Error::other)?;

    let healed_at = workload.now();
    let mut nemesis = tokio::task::spawn_blocking(move || {
        nemesis.heal()?;
        Ok::<_, std::io::Error>(nemesis)
    })
    .await
    .map_err(std::io::Error::other)??;
    println!(
        "{:>7.1} s  healed: faults cleared, every node running",
        healed_at as f64 / 1e6
    );

    let progress = await_progress(&workload, healed_at, opts.progress_timeout).await;
    let caught_up = match progress {
        Ok(_) => {
            let deadline = Instant::now() + opts.progress_timeout;
            let addrs = addrs.clone();
            tokio::task::spawn_blocking(move || await_caught_up(&addrs, deadline))
                .await
                .map_err(std::io::Error::other)?
        }
        Err(_) => Err("not checked: no progress".to_string()),
    };
    // Late exits (a node dying after the heal) fail the run too.
    nemesis.note_exits();

    let history = workload.stop_and_read_back(&addrs).await;
    // A long history needs longer to check; a failing one is found fast.
    let budget = Duration::from_secs(30).max(opts.duration / 2);
    let (verdict, summary) = check_history_within(&history, &opts.data_dir, budget);
    let applied_changes = report::control_changes_in_logs(&opts.data_dir, opts.nodes);
    let mut report = ChaosReport::new(
        opts,
        &history,
        nemesis.faults,
        nemesis.problems,
        applied_changes,
    );
    report.progress = progress;
    report.caught_up = caught_up;
    report.verdict = verdict;
    report.linearizability = summary;
    // Kept beside the node logs, to look faults up by time afterwards.
    std::fs::write(opts.data_dir.join("faults.txt"), report.fault_log())?;
    let page = opts.data_dir.join("linearizability.html");
    report.timeline =
        (verdict == linearizability::Verdict::Illegal && page.exists()).then_some(page);
    Ok(report)
}

/// Wait until the new cluster has acknowledged an operation (it forms
/// first: the founder adds and promotes the other peers), so that faults
/// start on a cluster that serves.
async fn wait_until_serving(
    workload: &Workload,
    cluster: &mut LocalCluster,
) -> std::io::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while workload.acknowledged() == 0 {
        if let Some((id, status)) = cluster.exited() {
            return Err(std::io::Error::other(format!(
                "node {id} exited ({status}) while the cluster formed; see {}",
                cluster.log_path(id).display()
            )));
        }
        if Instant::now() > deadline {
            return Err(std::io::Error::other(
                "the cluster acknowledged nothing within 30 s of starting",
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// How long after the heal a write invoked after it was acknowledged.
async fn await_progress(
    workload: &Workload,
    healed_at: u64,
    timeout: Duration,
) -> Result<Duration, String> {
    let started = Instant::now();
    loop {
        if let Some(ret) = workload.first_write_acked_after(healed_at) {
            return Ok(Duration::from_micros(ret.saturating_sub(healed_at)));
        }
        if started.elapsed() > timeout {
            return Err(format!(
                "no write was acknowledged within {:.0} s of healing",
                timeout.as_secs_f64()
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Wait until every node has applied what the leader had committed when
/// first asked; returns that commit index.
fn await_caught_up(addrs: &[SocketAddr], deadline: Instant) -> Result<u64, String> {
    let addrs: Vec<String> = addrs.iter().map(SocketAddr::to_string).collect();
    let mut admin = AdminClient::new(addrs.clone(), 6824, core_kv::KV_PROTOCOL_VERSION);
    let wait = deadline.saturating_duration_since(Instant::now());
    let target = admin
        .leader_status(wait)
        .map_err(|e| format!("no leader to compare with: {e}"))?
        .commit
        .0;
    let mut behind: Vec<String>;
    loop {
        behind = Vec::new();
        for (i, addr) in addrs.iter().enumerate() {
            match admin.status(addr) {
                Ok(s) if s.applied.0 >= target => {}
                Ok(s) => behind.push(format!("node {} applied {}", i + 1, s.applied.0)),
                Err(e) => behind.push(format!("node {}: {e}", i + 1)),
            }
        }
        if behind.is_empty() {
            return Ok(target);
        }
        if Instant::now() > deadline {
            return Err(format!(
                "not every node reached the leader's commit index {target}: {}",
                behind.join("; ")
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn list(addrs: &[SocketAddr]) -> String {
    let v: Vec<String> = addrs.iter().map(SocketAddr::to_string).collect();
    v.join(",")
}

/// Parse a duration: a number with an optional unit (`ms`, `s`, `m`, `h`;
/// seconds without one), e.g. `60s`, `10m`, `1.5s`, `90`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration (expected e.g. 60s, 10m, 500ms)"))?;
    let scale = match unit.trim() {
        "" | "s" => 1.0,
        "ms" => 0.001,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        other => {
            return Err(format!(
                "unknown unit {other:?} in {text:?} (use ms, s, m or h)"
            ))
        }
    };
    let secs = value * scale;
    if !secs.is_finite() || secs <= 0.0 || secs > 7.0 * 24.0 * 3600.0 {
        return Err(format!(
            "{text:?}: a duration must be positive and at most a week"
        ));
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("60s"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert!(parse_duration("5 parsecs")
            .unwrap_err()
            .contains("unknown unit"));
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("-3s").is_err());
    }

    #[test]
    fn mixed_clusters_alternate_runtimes() {
        let r = ChaosRuntime::Mixed;
        assert_eq!(
            (1..=4).map(|id| r.of_node(id)).collect::<Vec<_>>(),
            ["tokio", "threads", "tokio", "threads"]
        );
        assert_eq!(ChaosRuntime::Threads.of_node(1), "threads");
    }
}
