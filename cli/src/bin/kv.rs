//! `kv`: run a replica of the fault-tolerant key/value service, or talk to a
//! running cluster.

use clap::{Parser, Subcommand};
use cli::common::{init_logging, stop_flag, stopped, tokio_runtime, Backend, Runtime};
use core_kv::{Op, Outcome, Version};
use driver_tokio::kv::KvClient;
use node_shell::NodeOptions;
use std::collections::BTreeMap;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The replicated key/value service (MIT 6.5840 lab 4) over TCP, with Raft
/// state on disk (CRC-checked, fsynced log and snapshots).
///
/// Start a 3-node cluster on one machine:
///   P=1=127.0.0.1:7001,2=127.0.0.1:7002,3=127.0.0.1:7003
///   kv serve --id 1 --peers $P --data-dir /tmp/kv1 &
///   kv serve --id 2 --peers $P --data-dir /tmp/kv2 &
///   kv serve --id 3 --peers $P --data-dir /tmp/kv3 &
/// then:
///   kv put greeting hello --cluster 127.0.0.1:7001
///   kv get greeting --cluster 127.0.0.1:7001
///   kv member list --cluster 127.0.0.1:7001
/// Grow it with a fourth node:
///   kv serve --id 4 --listen 127.0.0.1:7004 --join 127.0.0.1:7001 --data-dir /tmp/kv4 &
#[derive(Parser)]
#[command(name = "kv", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one replica until SIGINT or SIGTERM.
    ///
    /// A new cluster is bootstrapped once, from --peers: the peer with the
    /// lowest id founds it as its only voter once every other peer has
    /// started and said it belongs to no cluster; it then adds each other
    /// peer as a learner and promotes it once it has caught up. From then
    /// on the cluster's membership lives in the Raft log (and snapshots),
    /// and the log wins over the command line: add and remove nodes with
    /// `kv member` or `kv serve --join`, not by editing --peers.
    ///
    /// Each data directory has an identity file holding a random
    /// incarnation. A node whose directory was wiped gets a new one, and
    /// the cluster refuses it under its old id (it forgot its votes, and
    /// could elect a second leader): remove the old member and add it back
    /// with --join.
    Serve {
        /// This replica's id (1 or more); it names the node in the cluster's
        /// membership.
        #[arg(long)]
        id: u64,
        /// The bootstrap peers, comma-separated: `ID=ADDR` each (for example
        /// 1=127.0.0.1:7001,2=127.0.0.1:7002), or plain addresses, which
        /// are numbered 1, 2, ... in order. This node's own entry is its
        /// listening address.
        #[arg(long, value_delimiter = ',', value_parser = parse_peer, conflicts_with = "join", required_unless_present_any = ["join", "listen"])]
        peers: Vec<PeerArg>,
        /// Join an existing cluster through any of its members
        /// (comma-separated addresses): the node adds itself as a learner,
        /// waits until it has caught up, and promotes itself to voter.
        /// Needs --listen.
        #[arg(long, value_delimiter = ',', requires = "listen")]
        join: Vec<String>,
        /// The address to listen on (and give the cluster); with --peers it
        /// defaults to this node's entry there. Given alone (no --peers, no
        /// --join), the node waits until an operator adds it with
        /// `kv member add`.
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// With --join: stay a learner (do not promote).
        #[arg(long, requires = "join")]
        learner: bool,
        /// Directory for the Raft log and snapshots (created if missing).
        #[arg(long)]
        data_dir: PathBuf,
        /// Cluster id; every connection's handshake must carry the same one.
        #[arg(long, default_value_t = 6824)]
        cluster_id: u64,
        /// Milliseconds per Raft tick (heartbeats every 10 ticks, elections after 50-100).
        #[arg(long, default_value_t = 10)]
        tick_ms: u64,
        /// Snapshot once the Raft log exceeds this many bytes, or half the
        /// size of the latest snapshot if that is more (so snapshots of a
        /// large state stay rare).
        #[arg(long, default_value_t = 1 << 20)]
        max_raft_state: usize,
        /// Largest frame, in bytes, this node sends or accepts on any
        /// connection (peers and clients). Snapshots travel to lagging
        /// followers in chunks of at most half a frame (and at most 1 MiB),
        /// so a state of any size fits through it.
        #[arg(long, default_value_t = node_shell::DEFAULT_MAX_FRAME_BYTES, value_parser = clap::value_parser!(u32).range(4096..))]
        max_frame_bytes: u32,
        /// Connections (clients and peers) open at once; new ones beyond it
        /// are closed at once. Bounds the node's memory under a flood of
        /// clients, with the limits below (see ARCHITECTURE.md, "Bounded
        /// memory").
        #[arg(long, default_value_t = node_shell::ClientLimits::default().max_connections, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
        max_connections: usize,
        /// Client requests taken and not yet answered, across all
        /// connections; one more is answered "busy" without being taken,
        /// and the client retries after a short back-off.
        #[arg(long, default_value_t = node_shell::ClientLimits::default().max_pending_requests, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
        max_pending_requests: usize,
        /// Largest request, in bytes, a client may send (at most
        /// --max-frame-bytes); a connection that sends a larger one is
        /// closed.
        #[arg(long, default_value_t = node_shell::ClientLimits::default().max_request_bytes, value_parser = clap::value_parser!(u32).range(64..))]
        max_request_bytes: u32,
        /// I/O runtime: tokio, or a mio event loop on a std thread. Both speak
        /// the same wire format, so one cluster can mix them.
        #[arg(long, value_enum, default_value_t = Runtime::Tokio)]
        runtime: Runtime,
        /// Where the key/value state lives: disk (DATA_DIR/state.redb; a
        /// restart reads no state, and the log is compacted without copying
        /// it) or memory (rebuilt from the latest snapshot and the log at
        /// each start). Both send and install the same snapshots, so one
        /// cluster can mix them. A memory node may be restarted on disk;
        /// not the other way once its log was compacted (refused with a
        /// message).
        #[arg(long, value_enum, default_value_t = Backend::Disk)]
        backend: Backend,
        /// For tests only (`kv chaos` sets it): obey the fault-injection
        /// control file DATA_DIR/faults, read every 50 ms. Its lines:
        /// `drop-to ID..` (this node's Raft frames to those peers are
        /// lost), `drop-from ID..` (their Raft frames to this node are
        /// lost), `disk-delay-ms MS` (each fsync waits that long first);
        /// an empty or missing file means no faults. Off by default; when
        /// on, the node says so in a warning at start and logs every
        /// change. Only a local file controls it: nothing on the network
        /// can.
        #[arg(long)]
        fault_injection: bool,
    },
    /// Test a local cluster under faults and check what its clients saw.
    ///
    /// Starts a cluster of `kv serve` processes (with --fault-injection)
    /// under DATA_DIR, runs recording clients (versioned Puts and Gets on
    /// three keys), and for --duration injects faults one at a time: each
    /// round every requested kind once, in a random order, each aimed at
    /// the leader half of the time. Then it heals everything (clears the
    /// faults, resumes paused nodes, starts dead ones) and requires that a
    /// new write is acknowledged and every node catches up within
    /// --progress-timeout, that the history is linearizable, and that
    /// every acknowledged write is still there when each key is read back.
    /// Prints a summary (seed, faults by kind, operations ok / failed /
    /// unknown, failover times from a leader fault to the next
    /// acknowledged write, verdict) and exits non-zero on FAIL; a
    /// non-linearizable history is drawn in DATA_DIR/linearizability.html.
    ///
    /// Every random choice comes from --seed (printed at the start and in
    /// the summary): the same seed repeats the same schedule of faults,
    /// though not the cluster's own timing.
    ///
    ///   kv chaos --duration 60s --nemesis kill,pause,partition,restart,disk --runtime mixed
    Chaos {
        /// How long to inject faults: a number and a unit (500ms, 60s, 10m,
        /// 1h; a plain number is seconds).
        #[arg(long, default_value = "60s", value_parser = cli::kv::chaos::parse_duration)]
        duration: Duration,
        /// Kinds of fault to inject, comma-separated (one at a time, each
        /// undone before the next).
        #[arg(
            long,
            value_enum,
            value_delimiter = ',',
            default_value = "kill,pause,partition,restart,disk"
        )]
        nemesis: Vec<cli::kv::chaos::Nemesis>,
        /// Seed of every random choice (default: from the clock; printed
        /// either way).
        #[arg(long)]
        seed: Option<u64>,
        /// The nodes' I/O runtime; mixed puts odd-numbered nodes on tokio
        /// and even-numbered ones on threads.
        #[arg(long, value_enum, default_value_t = cli::kv::chaos::ChaosRuntime::Tokio)]
        runtime: cli::kv::chaos::ChaosRuntime,
        /// Nodes in the cluster (3 to 9).
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(3..=9))]
        nodes: u64,
        /// Recording clients (1 to 64), each with one operation in flight.
        #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=64))]
        clients: u64,
        /// Keys the clients use at any one time (1 to 1000): few, so that
        /// they race on each.
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=1000))]
        keys: u64,
        /// Move the clients to fresh keys this often (every key of every
        /// epoch is read back at the end). The checker's memory grows with
        /// the square of the operations on one key: without epochs a
        /// 10-minute run on 3 keys needed up to 17 GB.
        #[arg(long, default_value = "20s", value_parser = cli::kv::chaos::parse_duration)]
        key_epoch: Duration,
        /// Data directory for the nodes (default: a fresh one under the
        /// system's temporary directory); must be empty or new.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// After healing: how long the cluster may take to acknowledge a
        /// new write, and again to bring every node up to date.
        #[arg(long, default_value = "20s", value_parser = cli::kv::chaos::parse_duration)]
        progress_timeout: Duration,
        /// The nodes' --max-raft-state (bytes of log before a snapshot).
        /// A small one (say 4096) makes a node that was down or cut off
        /// catch up through a chunked snapshot instead of the log.
        #[arg(long, default_value_t = 1 << 20)]
        max_raft_state: usize,
    },
    /// Start a local 3-node cluster, run a mixed workload, kill the leader,
    /// time the failover, restart it, and check the recorded history for
    /// linearizability.
    Demo {
        /// Data directory for the nodes (default: a fresh one under the
        /// system's temporary directory).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Concurrent clients.
        #[arg(long, default_value_t = 4)]
        clients: usize,
        /// Seconds of each phase: before the kill, after it, after the restart.
        #[arg(long, default_value_t = 2.0)]
        phase_secs: f64,
        /// The nodes' I/O runtime.
        #[arg(long, value_enum, default_value_t = Runtime::Tokio)]
        runtime: Runtime,
    },
    /// Start a local cluster of `--nodes` replicas as child processes on
    /// loopback, print its address list, and stop it on Ctrl-C.
    Cluster {
        /// Number of replicas.
        #[arg(long, default_value_t = 3)]
        nodes: usize,
        /// Data directory (default: a fresh one under the system's temporary directory).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// The nodes' I/O runtime.
        #[arg(long, value_enum, default_value_t = Runtime::Tokio)]
        runtime: Runtime,
    },
    /// Generate load against a running cluster and report throughput and
    /// latency percentiles.
    Bench {
        /// Concurrent clients (each runs one operation at a time).
        #[arg(long, default_value_t = 16)]
        clients: usize,
        /// Seconds to run.
        #[arg(long, default_value_t = 10.0)]
        duration: f64,
        /// Bytes per written value.
        #[arg(long, default_value_t = 256)]
        value_size: usize,
        /// Fraction of reads, 0.0 to 1.0 (writes are unconditional Puts).
        #[arg(long, default_value_t = 0.0)]
        read_ratio: f64,
        /// Distinct keys.
        #[arg(long, default_value_t = 1000)]
        keys: u64,
        #[command(flatten)]
        target: Target,
    },
    /// Overload a running cluster on purpose and report what came back.
    ///
    /// Opens many raw client connections, spread over the given nodes:
    /// pipelining ones (each keeps --in-flight unconditional writes
    /// outstanding), --silent ones (send reads of a large value and never
    /// read an answer) and --half-frames ones (send half of a large request
    /// and stop).
    /// Prints the connections opened and closed by the nodes and the
    /// requests answered, answered "busy" and refused. A node should stay
    /// up and within its memory bounds (see `kv serve --max-connections`,
    /// `--max-pending-requests`); watch it with `kv status` or `ps`.
    Flood {
        /// Pipelining connections.
        #[arg(long, default_value_t = 1000)]
        connections: usize,
        /// Writes each pipelining connection keeps outstanding.
        #[arg(long, default_value_t = 8)]
        in_flight: usize,
        /// Connections that send reads of a large value and never read the
        /// answers.
        #[arg(long, default_value_t = 0)]
        silent: usize,
        /// Bytes of the value the --silent connections read.
        #[arg(long, default_value_t = 64 << 10)]
        big_value_bytes: usize,
        /// Connections that send half a request and stop.
        #[arg(long, default_value_t = 0)]
        half_frames: usize,
        /// Bytes each half-frame connection sends (announcing twice as many).
        #[arg(long, default_value_t = 1 << 20)]
        half_frame_bytes: usize,
        /// Bytes per written value.
        #[arg(long, default_value_t = 256)]
        value_size: usize,
        /// Seconds to keep it up.
        #[arg(long, default_value_t = 10.0)]
        duration: f64,
        #[command(flatten)]
        target: Target,
    },
    /// Show and change the cluster's membership.
    Member {
        #[command(subcommand)]
        action: MemberAction,
    },
    /// Hand leadership to another voter (thesis §3.10): the leader brings
    /// it up to date and lets it campaign at once. Use it before restarting
    /// or removing the leader.
    TransferLeader {
        /// The new leader (default: the most up-to-date other voter).
        #[arg(long)]
        to: Option<u64>,
        #[command(flatten)]
        target: AdminTarget,
    },
    /// Print each node's status: role, term, log indexes, and the
    /// membership as it sees it.
    Status {
        #[command(flatten)]
        target: AdminTarget,
    },
    /// Read a key: prints `value` and its version, or reports a missing key.
    Get {
        /// The key.
        key: String,
        #[command(flatten)]
        target: Target,
    },
    /// Write a key at an expected version (0 creates it).
    Put {
        /// The key.
        key: String,
        /// The value.
        value: String,
        /// The version the key must be at for the write to apply.
        #[arg(long, default_value_t = 0)]
        version: u64,
        #[command(flatten)]
        target: Target,
    },
    /// Append to a key's value (a missing key counts as empty).
    Append {
        /// The key.
        key: String,
        /// What to append.
        value: String,
        #[command(flatten)]
        target: Target,
    },
}

#[derive(Subcommand)]
enum MemberAction {
    /// The members, their addresses, roles and how far each has caught up.
    List {
        #[command(flatten)]
        target: AdminTarget,
    },
    /// Add the node listening at ADDR (started with `kv serve --id ID
    /// --listen ADDR`, waiting to be added) as a learner, wait until it has
    /// caught up, then promote it to voter. (`kv serve --join` does this
    /// by itself.)
    Add {
        /// Its id.
        id: u64,
        /// Its address.
        addr: String,
        /// Leave it a learner.
        #[arg(long)]
        learner: bool,
        #[command(flatten)]
        target: AdminTarget,
    },
    /// Make a learner a voter.
    Promote {
        /// Its id.
        id: u64,
        #[command(flatten)]
        target: AdminTarget,
    },
    /// Remove a node (a leader hands over leadership first).
    Remove {
        /// Its id.
        id: u64,
        #[command(flatten)]
        target: AdminTarget,
    },
}

impl MemberAction {
    fn target(&self) -> &AdminTarget {
        match self {
            MemberAction::List { target }
            | MemberAction::Add { target, .. }
            | MemberAction::Promote { target, .. }
            | MemberAction::Remove { target, .. } => target,
        }
    }
}

#[derive(clap::Args)]
struct AdminTarget {
    /// Addresses of any members, comma-separated.
    #[arg(long, value_delimiter = ',', required = true, env = "KV_CLUSTER")]
    cluster: Vec<String>,
    /// Cluster id (must match the servers').
    #[arg(long, default_value_t = 6824)]
    cluster_id: u64,
    /// Give up waiting after this many seconds.
    #[arg(long, default_value_t = 60)]
    timeout_s: u64,
}

impl AdminTarget {
    fn operator(&self) -> cli::kv::member::Operator {
        let client = driver_threads::admin::AdminClient::new(
            self.cluster.clone(),
            self.cluster_id,
            core_kv::KV_PROTOCOL_VERSION,
        );
        cli::kv::member::Operator::new(client, Duration::from_secs(self.timeout_s))
    }
}

/// One `--peers` entry.
#[derive(Clone, Debug)]
struct PeerArg {
    id: Option<u64>,
    addr: SocketAddr,
}

fn parse_peer(s: &str) -> Result<PeerArg, String> {
    let (id, addr) = match s.split_once('=') {
        Some((id, addr)) => {
            let id = id
                .trim()
                .parse::<u64>()
                .map_err(|e| format!("bad id in {s:?}: {e}"))?;
            (Some(id), addr)
        }
        None => (None, s),
    };
    let addr = addr
        .trim()
        .parse()
        .map_err(|e| format!("bad address in {s:?}: {e} (expected ID=IP:PORT or IP:PORT)"))?;
    Ok(PeerArg { id, addr })
}

/// The peers as id → address; plain addresses are numbered in order.
fn peer_map(peers: &[PeerArg]) -> Result<BTreeMap<u64, SocketAddr>, String> {
    let explicit = peers.iter().filter(|p| p.id.is_some()).count();
    if explicit != 0 && explicit != peers.len() {
        return Err("--peers mixes ID=ADDR entries and plain addresses; use one form".into());
    }
    let mut map = BTreeMap::new();
    for (i, p) in peers.iter().enumerate() {
        let id = p.id.unwrap_or(i as u64 + 1);
        if map.insert(id, p.addr).is_some() {
            return Err(format!("--peers lists node {id} twice"));
        }
    }
    Ok(map)
}

#[derive(clap::Args)]
struct Target {
    /// The cluster's replica addresses, comma-separated, in id order.
    #[arg(long, value_delimiter = ',', required = true, env = "KV_CLUSTER")]
    cluster: Vec<SocketAddr>,
    /// Cluster id (must match the servers').
    #[arg(long, default_value_t = 6824)]
    cluster_id: u64,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 30)]
    timeout_s: u64,
}

fn main() -> ExitCode {
    init_logging("info");
    let cli = Cli::parse();
    match cli.command {
        Command::Serve {
            id,
            peers,
            join,
            listen,
            learner,
            data_dir,
            cluster_id,
            tick_ms,
            max_raft_state,
            max_frame_bytes,
            max_connections,
            max_pending_requests,
            max_request_bytes,
            runtime,
            backend,
            fault_injection,
        } => {
            let protocol = core_kv::KV_PROTOCOL_VERSION;
            let base = if peers.is_empty() {
                let listen = listen.expect("clap requires --listen without --peers");
                NodeOptions::joining(id, listen, data_dir, protocol)
            } else {
                let peers = match peer_map(&peers) {
                    Ok(p) => p,
                    Err(e) => {
                        eprintln!("kv serve: {e}");
                        return ExitCode::FAILURE;
                    }
                };
                let mut o = NodeOptions::with_peers(id, peers, data_dir, protocol);
                if let Some(l) = listen {
                    o.listen = l;
                }
                o
            };
            let opts = NodeOptions {
                cluster: cluster_id,
                tick_ms,
                max_raft_state: Some(max_raft_state),
                fault_injection,
                max_frame_bytes,
                limits: node_shell::ClientLimits {
                    max_connections,
                    max_pending_requests,
                    max_request_bytes,
                    ..node_shell::ClientLimits::default()
                },
                ..base
            };
            if let Err(e) = opts.validate() {
                eprintln!("kv serve: {e}");
                return ExitCode::FAILURE;
            }
            let join = (!join.is_empty()).then_some(JoinPlan {
                seeds: join,
                learner,
            });
            serve(opts, runtime, backend, join)
        }
        Command::Member { action } => member(action),
        Command::TransferLeader { to, target } => {
            match target.operator().transfer(to.map(core_raft::NodeId)) {
                Ok(_) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("kv transfer-leader: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Status { target } => status(&target),
        command => match tokio_runtime() {
            Ok(rt) => rt.block_on(run_async(command)),
            Err(e) => {
                eprintln!("kv: cannot start the tokio runtime: {e}");
                ExitCode::FAILURE
            }
        },
    }
}

/// How a node started with --join adds itself.
struct JoinPlan {
    seeds: Vec<String>,
    learner: bool,
}

/// Run `kv member ...`.
fn member(action: MemberAction) -> ExitCode {
    use core_raft::NodeId;
    let mut op = action.target().operator();
    let result = match action {
        MemberAction::List { .. } => op.list().map(|table| println!("{table}")),
        MemberAction::Add {
            id, addr, learner, ..
        } => op.add_running(NodeId(id), &addr, learner),
        MemberAction::Promote { id, .. } => op.promote(NodeId(id)),
        MemberAction::Remove { id, .. } => op.remove(NodeId(id)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kv member: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Run `kv status`: every given node, then every member they name.
fn status(target: &AdminTarget) -> ExitCode {
    let mut op = target.operator();
    let mut addrs = target.cluster.clone();
    let mut shown = 0;
    let mut i = 0;
    while i < addrs.len() {
        let addr = addrs[i].clone();
        i += 1;
        match op.status_of(&addr) {
            Ok(s) => {
                for m in s.membership.members.values() {
                    if !m.addr.is_empty() && !addrs.contains(&m.addr) {
                        addrs.push(m.addr.clone());
                    }
                }
                // A closed pipe (`kv status | head`) ends the listing quietly.
                if writeln!(std::io::stdout(), "{s}").is_err() {
                    return ExitCode::SUCCESS;
                }
                shown += 1;
            }
            Err(e) => {
                if writeln!(std::io::stdout(), "{addr}: unreachable ({e})").is_err() {
                    return ExitCode::SUCCESS;
                }
            }
        }
    }
    if shown == 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Run one replica until SIGINT or SIGTERM. The threads runtime runs its
/// event loop on this thread and starts no tokio runtime. With a join
/// plan, a helper thread adds the node to the cluster once it runs; if
/// that fails for good, the node stops.
fn serve(
    opts: NodeOptions,
    runtime: Runtime,
    backend: Backend,
    join: Option<JoinPlan>,
) -> ExitCode {
    let stop = match stop_flag() {
        Ok(f) => f,
        Err(e) => {
            eprintln!("kv serve: cannot install signal handlers: {e}");
            return ExitCode::FAILURE;
        }
    };
    let join_failed = Arc::new(Mutex::new(None::<String>));
    if let Some(plan) = join {
        let identity =
            match storage::identity::load_or_create(&opts.data_dir, opts.cluster, opts.id) {
                Ok((identity, _)) => identity,
                Err(e) => {
                    eprintln!("kv serve: {e}");
                    return ExitCode::FAILURE;
                }
            };
        let (stop, failed) = (Arc::clone(&stop), Arc::clone(&join_failed));
        let (id, addr, cluster) = (opts.id, opts.listen.to_string(), opts.cluster);
        std::thread::spawn(move || {
            let client = driver_threads::admin::AdminClient::new(
                plan.seeds,
                cluster,
                core_kv::KV_PROTOCOL_VERSION,
            );
            let mut op = cli::kv::member::Operator::new(client, Duration::from_secs(600));
            let node = core_raft::NodeId(id);
            if let Err(e) = op.add(node, &addr, identity.incarnation, plan.learner) {
                *failed.lock().expect("not poisoned") = Some(format!("joining failed: {e}"));
                stop.store(true, std::sync::atomic::Ordering::Relaxed);
            }
        });
    }
    let result = match backend {
        Backend::Memory => run_replica(opts, runtime, stop, core_kv::KvStore::default()),
        Backend::Disk => {
            let path = opts.data_dir.join(cli::common::STATE_FILE);
            // The directory's owner first: a second node on it is refused
            // by name (with the owner's process id), not by the database.
            let opened = std::fs::create_dir_all(&opts.data_dir)
                .map_err(|e| format!("cannot create {}: {e}", opts.data_dir.display()))
                .and_then(|()| storage::check_not_in_use(&opts.data_dir).map_err(|e| e.to_string()))
                .and_then(|()| kv_disk::DiskKv::open(&path).map_err(|e| e.to_string()));
            match opened {
                Ok(sm) => {
                    tracing::info!(state = %path.display(), applied = ?sm.last_applied(), "key/value state on disk (redb)");
                    run_replica(opts, runtime, stop, sm)
                }
                Err(e) => Err(e),
            }
        }
    };
    if let Some(why) = join_failed.lock().expect("not poisoned").take() {
        eprintln!("kv serve: {why}");
        return ExitCode::FAILURE;
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kv serve: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Run one replica of `sm` on `runtime` until `stop` is set.
fn run_replica<S>(
    opts: NodeOptions,
    runtime: Runtime,
    stop: Arc<std::sync::atomic::AtomicBool>,
    sm: S,
) -> Result<(), String>
where
    S: core_kv::StateMachine + Send + 'static,
{
    match runtime {
        Runtime::Threads => driver_threads::run_node(opts, sm, &stop)
            .map(drop)
            .map_err(|e| e.to_string()),
        Runtime::Tokio => match tokio_runtime() {
            Ok(rt) => rt
                .block_on(driver_tokio::run_node(opts, sm, stopped(stop)))
                .map(drop)
                .map_err(|e| e.to_string()),
            Err(e) => Err(format!("cannot start the tokio runtime: {e}")),
        },
    }
}

/// The commands that run on a tokio runtime (clients, local clusters).
async fn run_async(command: Command) -> ExitCode {
    match command {
        Command::Serve { .. }
        | Command::Member { .. }
        | Command::TransferLeader { .. }
        | Command::Status { .. } => unreachable!("these run without tokio"),
        Command::Demo {
            data_dir,
            clients,
            phase_secs,
            runtime,
        } => demo(data_dir, clients, phase_secs, runtime).await,
        Command::Chaos {
            duration,
            nemesis,
            seed,
            runtime,
            nodes,
            clients,
            keys,
            key_epoch,
            data_dir,
            progress_timeout,
            max_raft_state,
        } => {
            let mut nemeses = nemesis;
            nemeses.sort();
            nemeses.dedup();
            let opts = cli::kv::chaos::ChaosOptions {
                data_dir: data_dir.unwrap_or_else(|| {
                    std::env::temp_dir().join(format!("kv-chaos-{}", std::process::id()))
                }),
                exe: PathBuf::new(),
                nodes: nodes as usize,
                clients: clients as usize,
                keys: keys as usize,
                key_epoch,
                duration,
                nemeses,
                seed: seed.unwrap_or_else(clock_seed),
                runtime,
                progress_timeout,
                max_raft_state,
            };
            chaos(opts).await
        }
        Command::Cluster {
            nodes,
            data_dir,
            runtime,
        } => cluster(nodes, data_dir, runtime).await,
        Command::Bench {
            clients,
            duration,
            value_size,
            read_ratio,
            keys,
            target,
        } => bench(clients, duration, value_size, read_ratio, keys, target).await,
        Command::Flood {
            connections,
            in_flight,
            silent,
            half_frames,
            half_frame_bytes,
            big_value_bytes,
            value_size,
            duration,
            target,
        } => {
            let opts = cli::kv::flood::FloodOptions {
                servers: target.cluster,
                cluster_id: target.cluster_id,
                connections,
                in_flight,
                silent,
                half_frames,
                half_frame_bytes,
                value_size,
                big_value_bytes,
                duration: Duration::from_secs_f64(duration.max(0.0)),
                first_client: client_id_base(),
            };
            eprintln!(
                "flooding {} node(s) for {duration} s: {connections} pipelining connections \
                 ({in_flight} writes in flight each), {silent} silent, {half_frames} half-frame",
                opts.servers.len()
            );
            let report = cli::kv::flood::run_flood(&opts).await;
            println!("{report}");
            ExitCode::SUCCESS
        }
        Command::Get { key, target } => client_op(target, Op::Get { key }).await,
        Command::Put {
            key,
            value,
            version,
            target,
        } => {
            let version = Version(version);
            client_op(
                target,
                Op::Put {
                    key,
                    value,
                    version,
                },
            )
            .await
        }
        Command::Append { key, value, target } => {
            client_op(target, Op::Append { key, value }).await
        }
    }
}

async fn client_op(target: Target, op: Op) -> ExitCode {
    let mut client = match KvClient::for_cluster(target.cluster, target.cluster_id) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("kv: {e}");
            return ExitCode::FAILURE;
        }
    };
    match client.run(op, Duration::from_secs(target.timeout_s)).await {
        Ok(Outcome::Value { value, version }) => {
            println!("{value}");
            eprintln!("(version {})", version.0);
            ExitCode::SUCCESS
        }
        Ok(Outcome::Ok) => {
            println!("ok");
            ExitCode::SUCCESS
        }
        Ok(other) => {
            // ErrNoKey, ErrVersion, ErrMaybe: the lab's answers, exit code 2.
            println!("{other:?}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("kv: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn demo(
    data_dir: Option<PathBuf>,
    clients: usize,
    phase_secs: f64,
    runtime: Runtime,
) -> ExitCode {
    use cli::kv::demo::{default_data_dir, is_empty_or_missing, run_demo, DemoOptions};
    let data_dir = data_dir.unwrap_or_else(default_data_dir);
    if !is_empty_or_missing(&data_dir) {
        eprintln!(
            "kv demo: {} is not empty; give an empty or new --data-dir",
            data_dir.display()
        );
        return ExitCode::FAILURE;
    }
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("kv demo: cannot find my own executable: {e}");
            return ExitCode::FAILURE;
        }
    };
    let opts = DemoOptions {
        data_dir,
        clients: clients.max(1),
        phase_secs,
        exe,
        runtime: runtime.name().to_string(),
    };
    match run_demo(&opts).await {
        Ok(report) => {
            println!("--- summary ---");
            println!("{} client operations completed", report.ops);
            match report.failover {
                Some(d) => println!(
                    "failover: the next write succeeded {:.0} ms after the leader was killed",
                    d.as_secs_f64() * 1000.0
                ),
                None => println!("failover: no write succeeded after the leader was killed"),
            }
            println!("linearizability: {}", report.summary);
            if report.verdict == linearizability::Verdict::Ok && report.failover.is_some() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("kv demo: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn chaos(mut opts: cli::kv::chaos::ChaosOptions) -> ExitCode {
    use cli::kv::demo::is_empty_or_missing;
    if !is_empty_or_missing(&opts.data_dir) {
        eprintln!(
            "kv chaos: {} is not empty; give an empty or new --data-dir",
            opts.data_dir.display()
        );
        return ExitCode::FAILURE;
    }
    opts.exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("kv chaos: cannot find my own executable: {e}");
            return ExitCode::FAILURE;
        }
    };
    match cli::kv::chaos::run_chaos(&opts).await {
        Ok(report) => {
            if report.verdict == linearizability::Verdict::Illegal {
                // The failure's end, where the operation that cannot be
                // linearized is (the summary shows its first line; the
                // prefix before it can run to thousands of lines, which
                // the timeline page shows).
                let lines: Vec<&str> = report.linearizability.lines().collect();
                let keep = 30.min(lines.len());
                if lines.len() > keep {
                    println!(
                        "{}\n  ... ({} lines of the linearizable prefix left out)",
                        lines[0],
                        lines.len() - keep
                    );
                }
                for l in &lines[lines.len() - keep..] {
                    println!("{l}");
                }
            }
            println!("{report}");
            if report.passed() {
                ExitCode::SUCCESS
            } else {
                println!(
                    "data, node logs and any timeline are in {}",
                    opts.data_dir.display()
                );
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!(
                "kv chaos: {e} (seed {}; data and logs in {})",
                opts.seed,
                opts.data_dir.display()
            );
            ExitCode::FAILURE
        }
    }
}

/// A seed that differs between runs: the clock's nanoseconds and the
/// process id.
fn clock_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos ^ (u64::from(std::process::id()) << 32)
}

async fn cluster(nodes: usize, data_dir: Option<PathBuf>, runtime: Runtime) -> ExitCode {
    use cli::kv::demo::{default_data_dir, is_empty_or_missing};
    use cli::kv::local::LocalCluster;
    let dir = data_dir.unwrap_or_else(default_data_dir);
    if nodes == 0 || !is_empty_or_missing(&dir) {
        eprintln!(
            "kv cluster: need --nodes >= 1 and an empty or new data directory ({})",
            dir.display()
        );
        return ExitCode::FAILURE;
    }
    let run = async {
        std::fs::create_dir_all(&dir)?;
        let addrs: Vec<SocketAddr> = (0..nodes)
            .map(|_| std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()))
            .collect::<Result<_, _>>()?;
        let mut local = LocalCluster::new(
            std::env::current_exe()?,
            dir.clone(),
            addrs.clone(),
            runtime.name(),
        );
        for id in 1..=nodes {
            local.start(id)?;
        }
        let list: Vec<String> = addrs.iter().map(|a| a.to_string()).collect();
        println!(
            "cluster of {nodes} running; data and logs in {}",
            dir.display()
        );
        println!("export KV_CLUSTER={}", list.join(","));
        println!("Ctrl-C stops it.");
        let stop = stopped(stop_flag()?);
        tokio::pin!(stop);
        loop {
            tokio::select! {
                _ = &mut stop => break,
                _ = tokio::time::sleep(Duration::from_millis(200)) => {
                    if let Some((id, status)) = local.exited() {
                        eprintln!("kv cluster: node {id} exited ({status}); see {}", dir.join(format!("node{id}.log")).display());
                    }
                }
            }
        }
        println!("stopping");
        Ok::<(), std::io::Error>(())
    };
    match run.await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kv cluster: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn bench(
    clients: usize,
    duration: f64,
    value_size: usize,
    read_ratio: f64,
    keys: u64,
    target: Target,
) -> ExitCode {
    use cli::kv::bench::{run_bench, BenchOptions};
    let opts = BenchOptions {
        cluster: target.cluster,
        cluster_id: target.cluster_id,
        clients: clients.max(1),
        duration: Duration::from_secs_f64(duration),
        value_size,
        read_ratio,
        keys,
        seed: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64),
    };
    let r = run_bench(&opts).await;
    let ms = |q: f64| r.latency_us.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "{} clients, {} B values, {:.0}% reads: {:.0} ops/s over {:.1} s ({} ops, {} errors); latency p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms",
        opts.clients,
        value_size,
        read_ratio * 100.0,
        r.ops_per_sec(),
        r.elapsed.as_secs_f64(),
        r.ops,
        r.errors,
        ms(0.5),
        ms(0.99),
        ms(0.999)
    );
    if r.ops == 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Client ids for a flood's connections start here: distinct from every
/// earlier run's (wall clock and process id), as exactly-once sessions need.
fn client_id_base() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    (nanos ^ (u64::from(std::process::id()) << 40)) & !0xFFFF_FFFF
}
