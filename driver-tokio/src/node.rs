//! A replica node of any [`StateMachine`] on tokio: sockets, files and
//! timers around the pure `node_shell::ReplicaNode`, which decides
//! everything else (handshakes, framing, routing answers, which sends wait
//! for which persists).
//!
//! * One task per accepted connection reads bytes and forwards them to the
//!   node's loop; one task per connection writes what the loop queues.
//! * One task per peer the shell dials keeps an outbound connection
//!   (reconnecting with backoff up to 1 s, starting each with the shell's
//!   hello as of the last tick) and writes this node's Raft messages to it.
//! * Persists go to a `storage::DiskWriter` thread, so the loop keeps
//!   serving while an fsync runs; every batch that queued meanwhile shares
//!   the next fsync.
//! * One loop owns the shell and fires ticks.

use core_kv::StateMachine;
use core_raft::NodeId;
use node_shell::{
    ConnId, FaultFile, NodeAction, NodeInput, NodeOptions, OptionsError, ReplicaNode,
    FAULTS_POLL_MS,
};
use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use storage::fs::{Fs, RealFs};
use storage::{DelayedSync, DiskStorage, DiskWriter, StorageError, StorageOptions};
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
    /// A snapshot capture was encoded on a blocking thread.
    Captured(NodeInput),
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
    run_node_on(RealFs, opts, sm, shutdown).await
}

/// [`run_node`] with the data directory on the filesystem `fs`: tests pass a
/// `storage::simfs::SimFs` to fail the disk under a running node.
pub async fn run_node_on<S, F>(
    fs: F,
    opts: NodeOptions,
    sm: S,
    shutdown: impl Future<Output = ()>,
) -> Result<S, NodeError>
where
    S: StateMachine + Send + 'static,
    F: Fs,
{
    opts.validate()?;
    let (identity, _) =
        storage::identity::load_or_create_in(&fs, &opts.data_dir, opts.cluster, opts.id)?;
    let (disk, durable, report) =
        DiskStorage::open_in(fs, &opts.data_dir, StorageOptions::default())?;
    if let Some(torn) = &report.torn_tail {
        tracing::warn!("recovered after a crash: {torn}");
    }
    let seed = opts.id ^ u64::from(std::process::id()) ^ clock_nanos();
    let config = opts.node_config(identity.incarnation);
    let mut node = ReplicaNode::restore(config, opts.rsm_config(seed), durable, sm)?;
    let listener = TcpListener::bind(opts.address())
        .await
        .map_err(|source| NodeError::Listen {
            addr: opts.address(),
            source,
        })?;
    tracing::info!(id = opts.id, addr = %opts.address(), "serving (tokio runtime)");
    let (events_tx, mut events) = mpsc::unbounded_channel::<Event>();
    let durable_tx = events_tx.clone();
    let on_durable = move |r: Result<u64, StorageError>| {
        let _ = durable_tx.send(Event::Durable(r));
    };
    let mut faults = opts
        .fault_injection
        .then(|| FaultFile::enable(opts.id, &opts.data_dir));
    let mut disk = match &faults {
        Some(f) => DiskWriter::start(DelayedSync::new(disk, f.disk_delay()), on_durable),
        None => DiskWriter::start(disk, on_durable),
    };
    let mut fault_poll = tokio::time::interval(Duration::from_millis(FAULTS_POLL_MS));
    fault_poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let captures = events_tx.clone();
    tokio::spawn(accept_loop(listener, events_tx));
    let mut peers = Peers {
        links: BTreeMap::new(),
    };
    let mut conns: BTreeMap<ConnId, Conn> = BTreeMap::new();
    let mut tick = tokio::time::interval(Duration::from_millis(opts.tick_ms));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    let stopped = loop {
        let input = tokio::select! {
            _ = &mut shutdown => break Ok(()),
            _ = tick.tick() => {
                // The hellos say whether the node belongs to a cluster yet.
                peers.refresh_hellos(&node);
                NodeInput::Tick
            }
            _ = fault_poll.tick(), if faults.is_some() => {
                match faults.as_mut().and_then(|f| f.poll_with(|p| std::fs::read_to_string(p))) {
                    Some(input) => input,
                    None => continue,
                }
            }
            Some(event) = events.recv() => match event_input(event, &mut conns) {
                Ok(Some(input)) => input,
                Ok(None) => continue,
                Err(e) => break Err(NodeError::Storage(e)),
            },
        };
        let actions = node.step(input);
        let mut io = LoopIo {
            disk: &mut disk,
            peers: &mut peers,
            conns: &mut conns,
            captures: &captures,
        };
        if let Err(e) = carry_out(&node, actions, &mut io) {
            break Err(e);
        }
        // Step whatever else is already waiting before handing the turn's
        // persist batches to the disk thread together: they share an fsync.
        if let Err(e) = drain_queued(&mut node, &mut events, &mut io) {
            break Err(e);
        }
        disk.flush();
    };
    tracing::info!(id = opts.id, "shutting down");
    let finished = disk.finish();
    // The error that stopped the loop first: a disk error names its file
    // there, and `finish` only repeats it as "the disk thread stopped".
    stopped?;
    finished?;
    Ok(node.into_state())
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
        Event::Captured(input) => input,
    }))
}

/// Most queued events stepped in one turn.
const EVENTS_PER_TURN: usize = 1024;

/// What carrying out the shell's actions touches.
struct LoopIo<'a> {
    disk: &'a mut DiskWriter,
    peers: &'a mut Peers,
    conns: &'a mut BTreeMap<ConnId, Conn>,
    /// Where an encoded snapshot capture is reported.
    captures: &'a mpsc::UnboundedSender<Event>,
}

/// Step the events already queued (up to [`EVENTS_PER_TURN`]).
fn drain_queued<S: StateMachine>(
    node: &mut ReplicaNode<S>,
    events: &mut mpsc::UnboundedReceiver<Event>,
    io: &mut LoopIo<'_>,
) -> Result<(), NodeError> {
    for _ in 0..EVENTS_PER_TURN {
        let Ok(event) = events.try_recv() else {
            return Ok(());
        };
        if let Some(input) = event_input(event, io.conns)? {
            let actions = node.step(input);
            carry_out(node, actions, io)?;
        }
    }
    Ok(())
}

/// Carry out the shell's actions in order.
fn carry_out<S: StateMachine>(
    node: &ReplicaNode<S>,
    actions: Vec<NodeAction>,
    io: &mut LoopIo<'_>,
) -> Result<(), NodeError> {
    let LoopIo {
        disk,
        peers,
        conns,
        captures,
    } = io;
    for action in actions {
        match action {
            NodeAction::Persist { batch, actions } => disk.queue(batch, actions),
            NodeAction::Send { to, bytes } => {
                if let Some(link) = peers.links.get(&to) {
                    // A full queue means the peer is slow or gone; Raft retries.
                    let _ = link.queue.try_send(bytes);
                }
            }
            NodeAction::Dial { to, addr } => peers.dial(node, to, addr),
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
            NodeAction::Capture(job) => {
                // Encoding a large state takes a while: off the loop, on
                // tokio's blocking pool.
                let captures = (*captures).clone();
                tokio::task::spawn_blocking(move || {
                    let index = job.index();
                    let data = job.run();
                    let _ = captures.send(Event::Captured(NodeInput::Captured { index, data }));
                });
            }
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

/// The outbound links: one writer task per dialed peer.
struct Peers {
    /// Each peer's address, the queue its writer takes frames from, and
    /// the hello each new connection to it starts with (refreshed every
    /// tick).
    links: BTreeMap<NodeId, Link>,
}

/// One peer's outbound link.
struct Link {
    addr: String,
    queue: mpsc::Sender<Vec<u8>>,
    hello: Arc<Mutex<Vec<u8>>>,
}

impl Peers {
    /// Keep a connection to `peer` at `addr`, replacing one to another
    /// address (dropping the old queue ends the old writer).
    fn dial<S: StateMachine>(&mut self, node: &ReplicaNode<S>, peer: NodeId, addr: String) {
        if self.links.get(&peer).is_some_and(|l| l.addr == addr) {
            return;
        }
        tracing::debug!(%peer, %addr, "dialing");
        let (queue, rx) = mpsc::channel(QUEUED_FRAMES);
        let hello = Arc::new(Mutex::new(node.hello(peer)));
        tokio::spawn(peer_writer(addr.clone(), hello.clone(), rx));
        self.links.insert(peer, Link { addr, queue, hello });
    }

    fn refresh_hellos<S: StateMachine>(&self, node: &ReplicaNode<S>) {
        for (peer, link) in &self.links {
            *link.hello.lock().expect("no writer panics holding it") = node.hello(*peer);
        }
    }
}

/// Keep a connection to one peer, reconnecting with backoff, and write the
/// frames queued for it. Frames that cannot be written are dropped: Raft
/// retransmits.
async fn peer_writer(addr: String, hello: Arc<Mutex<Vec<u8>>>, mut queue: mpsc::Receiver<Vec<u8>>) {
    let mut backoff = Duration::from_millis(20);
    loop {
        let mut stream = match TcpStream::connect(addr.as_str()).await {
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
        let hello = hello.lock().expect("no writer panics holding it").clone();
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
