//! A replica node of any [`StateMachine`] on tokio: sockets, files and
//! timers around the pure `node_shell::ReplicaNode`, which decides
//! everything else (handshakes, framing, routing answers, which sends wait
//! for which persists).
//!
//! * One task per accepted connection reads bytes and forwards them to the
//!   node's loop; one task per connection writes what the loop queues.
//! * One task per peer keeps an outbound connection (reconnecting with
//!   backoff up to 1 s) and writes this node's Raft messages to it.
//! * Persists go to a `storage::DiskWriter` thread, so the loop keeps
//!   serving while an fsync runs; every batch that queued meanwhile shares
//!   the next fsync.
//! * One loop owns the shell and fires ticks.

use core_kv::StateMachine;
use core_raft::NodeId;
use node_shell::{ConnId, NodeAction, NodeInput, NodeOptions, OptionsError, ReplicaNode};
use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;
use storage::{DiskStorage, DiskWriter, StorageError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Frames queued for one connection before more are dropped (Raft
/// retransmits; a client retries).
const QUEUED_FRAMES: usize = 4096;

/// Why a node stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// The options are inconsistent.
    #[error("invalid options: {0}")]
    Options(#[from] OptionsError),
    /// Storage could not be opened or written.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The stored state does not restore.
    #[error(transparent)]
    Restore(#[from] core_kv::RsmError),
    /// The listening socket could not be opened.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// The replica stopped serving (see the message); restarting from
    /// storage is safe.
    #[error("replica failed: {0}")]
    Replica(String),
}

/// What the connection tasks and the disk thread tell the loop.
enum Event {
    Accepted {
        conn: ConnId,
        writer: mpsc::Sender<Vec<u8>>,
        reader: JoinHandle<()>,
    },
    Received {
        conn: ConnId,
        bytes: Vec<u8>,
    },
    Closed {
        conn: ConnId,
    },
    Durable(Result<u64, StorageError>),
}

/// An accepted connection as the loop sees it.
struct Conn {
    writer: mpsc::Sender<Vec<u8>>,
    reader: JoinHandle<()>,
}

/// Run replica `opts.id` of `sm` until `shutdown` resolves (finishing the
/// persists in flight, so no fsync is cut short) or an error stops it.
/// Returns the state machine as it was when the node stopped.
pub async fn run_node<S>(
    opts: NodeOptions,
    sm: S,
    shutdown: impl Future<Output = ()>,
) -> Result<S, NodeError>
where
    S: StateMachine + Send + 'static,
{
    opts.validate()?;
    let (disk, durable, report) = DiskStorage::open(&opts.data_dir)?;
    if let Some(torn) = &report.torn_tail {
        tracing::warn!("recovered after a crash: {torn}");
    }
    let seed = opts.id ^ u64::from(std::process::id()) ^ clock_nanos();
    let mut node = ReplicaNode::restore(opts.node_config(), opts.rsm_config(seed), durable, sm)?;
    let listener = TcpListener::bind(opts.address())
        .await
        .map_err(|source| NodeError::Listen {
            addr: opts.address(),
            source,
        })?;
    tracing::info!(id = opts.id, addr = %opts.address(), "serving (tokio runtime)");
    let (events_tx, mut events) = mpsc::unbounded_channel::<Event>();
    let durable_tx = events_tx.clone();
    let mut disk = DiskWriter::start(disk, move |r| {
        let _ = durable_tx.send(Event::Durable(r));
    });
    tokio::spawn(accept_loop(listener, events_tx));
    let peers = start_peer_writers(&opts, node.hello());
    let mut conns: BTreeMap<ConnId, Conn> = BTreeMap::new();
    let mut tick = tokio::time::interval(Duration::from_millis(opts.tick_ms));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    let stopped = loop {
        let input = tokio::select! {
            _ = &mut shutdown => break Ok(()),
            _ = tick.tick() => NodeInput::Tick,
            Some(event) = events.recv() => match event_input(event, &mut conns) {
                Ok(Some(input)) => input,
                Ok(None) => continue,
                Err(e) => break Err(NodeError::Storage(e)),
            },
        };
        if let Err(e) = carry_out(node.step(input), &mut disk, &peers, &mut conns) {
            break Err(e);
        }
        // Step whatever else is already waiting before handing the turn's
        // persist batches to the disk thread together: they share an fsync.
        if let Err(e) = drain_queued(&mut node, &mut events, &mut disk, &peers, &mut conns) {
            break Err(e);
        }
        disk.flush();
    };
    tracing::info!(id = opts.id, "shutting down");
    disk.finish()?;
    stopped.map(|()| node.into_state())
}

/// Turn a task's event into the shell's input (keeping the loop's own
/// bookkeeping of connections).
fn event_input(
    event: Event,
    conns: &mut BTreeMap<ConnId, Conn>,
) -> Result<Option<NodeInput>, StorageError> {
    Ok(Some(match event {
        Event::Accepted {
            conn,
            writer,
            reader,
        } => {
            conns.insert(conn, Conn { writer, reader });
            NodeInput::Accepted { conn }
        }
        Event::Received { conn, bytes } => NodeInput::Received { conn, bytes },
        Event::Closed { conn } => {
            if conns.remove(&conn).is_none() {
                return Ok(None); // The loop closed it already.
            }
            NodeInput::Closed { conn }
        }
        Event::Durable(Ok(batch)) => NodeInput::Persisted { batch },
        Event::Durable(Err(e)) => return Err(e),
    }))
}

/// Most queued events stepped in one turn.
const EVENTS_PER_TURN: usize = 1024;

/// Step the events already queued (up to [`EVENTS_PER_TURN`]).
fn drain_queued<S: StateMachine>(
    node: &mut ReplicaNode<S>,
    events: &mut mpsc::UnboundedReceiver<Event>,
    disk: &mut DiskWriter,
    peers: &BTreeMap<NodeId, mpsc::Sender<Vec<u8>>>,
    conns: &mut BTreeMap<ConnId, Conn>,
) -> Result<(), NodeError> {
    for _ in 0..EVENTS_PER_TURN {
        let Ok(event) = events.try_recv() else {
            return Ok(());
        };
        if let Some(input) = event_input(event, conns)? {
            carry_out(node.step(input), disk, peers, conns)?;
        }
    }
    Ok(())
}

/// Carry out the shell's actions in order.
fn carry_out(
    actions: Vec<NodeAction>,
    disk: &mut DiskWriter,
    peers: &BTreeMap<NodeId, mpsc::Sender<Vec<u8>>>,
    conns: &mut BTreeMap<ConnId, Conn>,
) -> Result<(), NodeError> {
    for action in actions {
        match action {
            NodeAction::Persist { batch, actions } => disk.queue(batch, actions),
            NodeAction::Send { to, bytes } => {
                if let Some(tx) = peers.get(&to) {
                    // A full queue means the peer is slow or gone; Raft retries.
                    let _ = tx.try_send(bytes);
                }
            }
            NodeAction::Write { conn, bytes } => {
                if let Some(c) = conns.get(&conn) {
                    let _ = c.writer.try_send(bytes);
                }
            }
            NodeAction::Close { conn, reason } => {
                tracing::warn!(%conn, "closing connection: {reason}");
                if let Some(c) = conns.remove(&conn) {
                    c.reader.abort();
                }
            }
            NodeAction::Stop { reason } => return Err(NodeError::Replica(reason)),
            NodeAction::Observed(_) => {} // Only with observe_applies, which drivers leave off.
        }
    }
    Ok(())
}

/// Accept connections and start a reader and a writer task for each.
async fn accept_loop(listener: TcpListener, events: mpsc::UnboundedSender<Event>) {
    let mut next = 0u64;
    loop {
        let (stream, addr) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        next += 1;
        let conn = ConnId(next);
        tracing::debug!(%conn, %addr, "accepted");
        let _ = stream.set_nodelay(true);
        let (mut read, mut write) = stream.into_split();
        let (writer, mut queue) = mpsc::channel::<Vec<u8>>(QUEUED_FRAMES);
        tokio::spawn(async move {
            while let Some(bytes) = queue.recv().await {
                if write.write_all(&bytes).await.is_err() {
                    break;
                }
            }
        });
        let tx = events.clone();
        let reader = tokio::spawn(async move {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match read.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let bytes = buf[..n].to_vec();
                        if tx.send(Event::Received { conn, bytes }).is_err() {
                            return;
                        }
                    }
                }
            }
            let _ = tx.send(Event::Closed { conn });
        });
        let accepted = Event::Accepted {
            conn,
            writer,
            reader,
        };
        if events.send(accepted).is_err() {
            return; // The node stopped.
        }
    }
}

/// One writer task per peer; returns the queues the loop feeds them with.
fn start_peer_writers(
    opts: &NodeOptions,
    hello: Vec<u8>,
) -> BTreeMap<NodeId, mpsc::Sender<Vec<u8>>> {
    opts.peers()
        .into_iter()
        .map(|(peer, addr)| {
            let (tx, rx) = mpsc::channel(QUEUED_FRAMES);
            tokio::spawn(peer_writer(addr, hello.clone(), rx));
            (peer, tx)
        })
        .collect()
}

/// Keep a connection to one peer, reconnecting with backoff, and write the
/// frames queued for it. Frames that cannot be written are dropped: Raft
/// retransmits.
async fn peer_writer(addr: SocketAddr, hello: Vec<u8>, mut queue: mpsc::Receiver<Vec<u8>>) {
    let mut backoff = Duration::from_millis(20);
    loop {
        let mut stream = match TcpStream::connect(addr).await {
            Ok(s) => s,
            Err(_) => {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                // Drop what queued up meanwhile: it is stale by now.
                while queue.try_recv().is_ok() {}
                if queue.is_closed() {
                    return;
                }
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        backoff = Duration::from_millis(20);
        if stream.write_all(&hello).await.is_err() {
            continue;
        }
        while let Some(bytes) = queue.recv().await {
            if stream.write_all(&bytes).await.is_err() {
                break;
            }
        }
        if queue.is_closed() {
            return;
        }
    }
}

/// Resolves once `flag` is set: lets a tokio node stop on the same flag a
/// threads node takes (for example one `signal_hook::flag::register` sets).
/// Polled every 20 ms; stopping is rare.
pub async fn until_set(flag: std::sync::Arc<std::sync::atomic::AtomicBool>) {
    while !flag.load(std::sync::atomic::Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Nanoseconds of the wall clock: only to vary election jitter between runs.
fn clock_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}
