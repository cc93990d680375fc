//! A replicated name registry on plain threads (a mio event loop, no async
//! runtime): the whole program needed to run your own state machine
//! (`registry::Registry`) as a cluster over TCP, with its Raft log and
//! snapshots on disk. `--help` lists the commands.

use clap::{Args, Parser, Subcommand};
use core_kv::Sessioned;
use driver_threads::{run_node, Client, NodeOptions, DEFAULT_CLUSTER};
use registry::{Op, Registry, PROTOCOL};
use std::{error::Error, io::stderr, net::SocketAddr, path::PathBuf, process::ExitCode};
use std::{sync::atomic::AtomicBool, sync::Arc, time::Duration};

/// A replicated name registry (threads runtime): run one node, or ask the cluster.
#[derive(Parser)]
#[command(after_help = "Example: P=127.0.0.1:7101,127.0.0.1:7102,127.0.0.1:7103
  for i in 1 2 3; do registry-threads serve --id $i --peers $P --data-dir /tmp/reg$i & done
  registry-threads register db 10.0.0.5:5432 --peers $P; registry-threads list --peers $P")]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Every node's address in id order, comma-separated (required).
    #[arg(long, global = true, value_delimiter = ',')]
    peers: Vec<SocketAddr>,
}

#[derive(Subcommand)]
enum Command {
    /// Run node ID (the ID-th address of --peers) until SIGINT/SIGTERM, then print its state.
    Serve(Node),
    // The client commands are the registry's operations themselves.
    #[command(flatten)]
    Ask(Op),
}

#[derive(Args)]
struct Node {
    #[arg(long)]
    id: u64,
    /// Where this node keeps its Raft log and snapshots.
    #[arg(long)]
    data_dir: PathBuf,
    /// Snapshot once the log holds this many bytes [default: 1 MiB].
    #[arg(long)]
    snapshot_bytes: Option<usize>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The library reports through `tracing`: refused connections and why, crash recovery.
    tracing_subscriber::fmt().with_writer(stderr).init();
    let result = match cli.command {
        Command::Serve(node) => serve(node, cli.peers),
        Command::Ask(op) => ask(cli.peers, op),
    };
    if let Err(e) = result {
        eprintln!("registry-threads: {e}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// Run one node on this thread until a signal, then print its state (to compare replicas).
fn serve(node: Node, peers: Vec<SocketAddr>) -> Result<(), Box<dyn Error>> {
    let mut opts = NodeOptions::new(node.id, peers, node.data_dir, PROTOCOL);
    opts.max_raft_state = node.snapshot_bytes.or(opts.max_raft_state);
    // A signal only sets the flag; the event loop checks it every tick, after the fsync in flight.
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop))?;
    }
    // Sessioned makes operations exactly-once: a client's retry is answered, not re-applied.
    let replica = run_node(opts, Sessioned::new(Registry::default()), &stop)?;
    println!("state: {}", replica.inner());
    Ok(())
}

/// Run one operation; the client finds the leader and retries by itself.
fn ask(peers: Vec<SocketAddr>, op: Op) -> Result<(), Box<dyn Error>> {
    // A client of the exactly-once registry: `run` takes an `Op`, returns its `Answer`.
    let mut client = Client::<Sessioned<Registry>>::new(peers, DEFAULT_CLUSTER, PROTOCOL)?;
    println!("{}", client.run(op, Duration::from_secs(10))?);
    Ok(())
}
