//! A replica node of any [`StateMachine`] on tokio: sockets, files and
//! timers around the pure `node_shell::ReplicaNode`, which decides
//! everything else (handshakes, framing, routing answers, which sends wait
//! for which persists).
//!
//! * One task per accepted connection reads bytes and forwards them to the
//!   node's loop; one task per connection writes what the loop queues.
//!   The readers hand bytes over through a bounded channel, so a loop that
//!   falls behind slows them down (and TCP slows the clients); a reader
//!   whose connection has more than `pause_reading_above` bytes of answers
//!   waiting reads nothing more until they drain; at most
//!   `max_connections` are open (see `node_shell::limits`).
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
    ClientLimits, ConnId, FaultFile, NodeAction, NodeInput, NodeOptions, OptionsError, ReplicaNode,
    FAULTS_POLL_MS,
};
use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use storage::fs::{Fs, RealFs};
use storage::{DelayedSync, DiskStorage, DiskWriter, StorageError, StorageOptions};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Notify, Semaphore};
use tokio::task::JoinHandle;

/// Frames queued for one peer before more are dropped (Raft retransmits).
const QUEUED_FRAMES: usize = 4096;

/// Bytes queued for one accepted connection before more are dropped (a
/// client retries). Reading pauses long before, at `pause_reading_above`;
/// only answers to requests already taken can pile up beyond that.
const MAX_QUEUED_BYTES: usize = 32 << 20;

/// Reads handed from the connection tasks to the loop and not yet taken:
/// with 64 KiB reads, at most 16 MiB in flight.
const QUEUED_READS: usize = 256;

/// Largest single read from a socket.
const READ_BYTES: usize = 64 << 10;

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
        writer: Writer,
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
    writer: Writer,
    reader: JoinHandle<()>,
}

/// The loop's end of an accepted connection's writer task.
struct Writer {
    queue: mpsc::UnboundedSender<Vec<u8>>,
    backlog: Arc<Backlog>,
}

impl Writer {
    /// Queue `bytes`, unless the connection already holds too many.
    fn write(&self, bytes: Vec<u8>) {
        let len = bytes.len();
        if self.backlog.queued.load(Ordering::Relaxed) + len > MAX_QUEUED_BYTES {
            return;
        }
        self.backlog.queued.fetch_add(len, Ordering::Relaxed);
        if self.queue.send(bytes).is_err() {
            self.backlog.written(len);
        }
    }
}

/// Answer bytes queued for one connection and not yet written, shared by
/// the loop (which adds), the writer (which takes away) and the reader
/// (which waits while there are too many).
struct Backlog {
    queued: AtomicUsize,
    /// The shell holds the connection (as many of its requests in flight
    /// as it may have): read nothing until it lets go.
    held: AtomicBool,
    drained: Notify,
    pause_above: usize,
}

impl Backlog {
    fn written(&self, len: usize) {
        let before = self.queued.fetch_sub(len, Ordering::Relaxed);
        if before > self.pause_above && before - len <= self.pause_above {
            self.drained.notify_one();
        }
    }

    fn hold(&self, held: bool) {
        self.held.store(held, Ordering::Relaxed);
        if !held {
            self.drained.notify_one();
        }
    }

    /// Wait until the shell lets go of the connection and the answers
    /// queued are few enough to read more requests.
    async fn room(&self) {
        while self.held.load(Ordering::Relaxed)
            || self.queued.load(Ordering::Relaxed) > self.pause_above
        {
            // A wake-up between the check and the wait is kept as a permit.
            self.drained.notified().await;
        }
    }
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
    // Two channels: connections' events through a bounded one (readers
    // wait when the loop falls behind; Accepted, Received and Closed of a
    // connection stay in order), the disk's and snapshot threads' through
    // an unbounded one (they cannot wait, and there are few).
    let (events_tx, mut events) = mpsc::unbounded_channel::<Event>();
    let (conn_events_tx, mut conn_events) = mpsc::channel::<Event>(QUEUED_READS);
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
    let captures = events_tx;
    tokio::spawn(accept_loop(listener, conn_events_tx, opts.limits));
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
            Some(event) = conn_events.recv() => match event_input(event, &mut conns) {
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
        if let Err(e) = drain_queued(&mut node, &mut conn_events, &mut io) {
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

/// Either kind of event channel, for [`drain_queued`].
trait EventQueue {
    fn try_take(&mut self) -> Option<Event>;
}

impl EventQueue for mpsc::UnboundedReceiver<Event> {
    fn try_take(&mut self) -> Option<Event> {
        self.try_recv().ok()
    }
}

impl EventQueue for mpsc::Receiver<Event> {
    fn try_take(&mut self) -> Option<Event> {
        self.try_recv().ok()
    }
}

/// Step the events already queued (up to [`EVENTS_PER_TURN`]).
fn drain_queued<S: StateMachine>(
    node: &mut ReplicaNode<S>,
    events: &mut impl EventQueue,
    io: &mut LoopIo<'_>,
) -> Result<(), NodeError> {
    for _ in 0..EVENTS_PER_TURN {
        let Some(event) = events.try_take() else {
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
                    c.writer.write(bytes);
                }
            }
            NodeAction::Close {
                conn,
                reason,
                overload,
            } => {
                if overload {
                    tracing::debug!(%conn, "closing connection: {reason}");
                } else {
                    tracing::warn!(%conn, "closing connection: {reason}");
                }
                if let Some(c) = conns.remove(&conn) {
                    c.reader.abort();
                }
            }
            NodeAction::PauseReading { conn } => {
                if let Some(c) = conns.get(&conn) {
                    c.writer.backlog.hold(true);
                }
            }
            NodeAction::ResumeReading { conn } => {
                if let Some(c) = conns.get(&conn) {
                    c.writer.backlog.hold(false);
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

/// Accept connections and start a reader and a writer task for each, up
/// to `limits.max_connections` open at once: the ones beyond are closed at
/// once (and counted in a log line a second at most).
async fn accept_loop(listener: TcpListener, events: mpsc::Sender<Event>, limits: ClientLimits) {
    let open = Arc::new(Semaphore::new(limits.max_connections));
    let mut refused = (0usize, tokio::time::Instant::now());
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
        let Ok(permit) = Arc::clone(&open).try_acquire_owned() else {
            drop(stream);
            refused.0 += 1;
            if refused.1.elapsed() >= Duration::from_secs(1) {
                tracing::warn!(
                    "closed {} new connections at once: {} are open, the limit",
                    refused.0,
                    limits.max_connections
                );
                refused = (0, tokio::time::Instant::now());
            }
            continue;
        };
        next += 1;
        let conn = ConnId(next);
        tracing::debug!(%conn, %addr, "accepted");
        let _ = stream.set_nodelay(true);
        let (read, mut write) = stream.into_split();
        let backlog = Arc::new(Backlog {
            queued: AtomicUsize::new(0),
            held: AtomicBool::new(false),
            drained: Notify::new(),
            pause_above: limits.pause_reading_above,
        });
        let (queue, mut queued) = mpsc::unbounded_channel::<Vec<u8>>();
        let written = Arc::clone(&backlog);
        tokio::spawn(async move {
            while let Some(bytes) = queued.recv().await {
                let len = bytes.len();
                let ok = write.write_all(&bytes).await.is_ok();
                written.written(len);
                if !ok {
                    break;
                }
            }
        });
        // The reader starts once the loop has the connection: its first
        // bytes must not overtake `Accepted` (the shell would drop them).
        let (start, started) = tokio::sync::oneshot::channel();
        let reader = tokio::spawn(read_conn(
            conn,
            read,
            Arc::clone(&backlog),
            events.clone(),
            (permit, started),
        ));
        let accepted = Event::Accepted {
            conn,
            writer: Writer { queue, backlog },
            reader,
        };
        if events.send(accepted).await.is_err() {
            return; // The node stopped.
        }
        let _ = start.send(());
    }
}

/// Forward what arrives on an accepted connection to the loop, then its
/// end. Holds no buffer while the connection is idle, and reads nothing
/// while too many answers wait for it. `open` is its place among the open
/// connections (given back when it ends) and the signal that the loop knows
/// the connection.
async fn read_conn(
    conn: ConnId,
    read: tokio::net::tcp::OwnedReadHalf,
    backlog: Arc<Backlog>,
    events: mpsc::Sender<Event>,
    open: (
        tokio::sync::OwnedSemaphorePermit,
        tokio::sync::oneshot::Receiver<()>,
    ),
) {
    let (_place, accepted) = open;
    if accepted.await.is_err() {
        return; // The node stopped.
    }
    loop {
        backlog.room().await;
        if read.readable().await.is_err() {
            break;
        }
        let mut buf = Vec::with_capacity(READ_BYTES);
        match read.try_read_buf(&mut buf) {
            Ok(0) => break,
            Ok(_) => {
                if buf.len() < READ_BYTES / 2 {
                    buf.shrink_to_fit();
                }
                if events
                    .send(Event::Received { conn, bytes: buf })
                    .await
                    .is_err()
                {
                    return;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => break,
        }
    }
    let _ = events.send(Event::Closed { conn }).await;
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
