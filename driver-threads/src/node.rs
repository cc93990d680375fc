//! A replica node of any [`StateMachine`] on a mio event loop: sockets,
//! files and timers around the pure `node_shell::ReplicaNode`, which
//! decides everything else (handshakes, framing, routing answers, which
//! sends wait for which persists). Same shell, storage and wire format as
//! the tokio driver, so nodes of both can form one cluster.
//!
//! One thread runs the loop: a listener for peers and clients, one
//! outbound connection per peer (reconnected with backoff), ticks from the
//! poll timeout. Persists go to a `storage::DiskWriter` thread, which wakes
//! the loop when a batch is durable; the loop keeps serving meanwhile.
//! Snapshot captures are encoded on a thread of their own, which wakes the
//! loop the same way when done.

use crate::net::{accept_all, flush};
use core_kv::StateMachine;
use core_raft::NodeId;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};
use node_shell::{
    ClientLimits, ConnId, FaultFile, NodeAction, NodeInput, NodeOptions, OptionsError, ReplicaNode,
    FAULTS_POLL_MS,
};
use std::collections::BTreeMap;
use std::io::{self, Read};
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};
use storage::fs::{Fs, RealFs};
use storage::{DelayedSync, DiskStorage, DiskWriter, StorageError, StorageOptions};

/// Most bytes queued for one connection before frames to it are dropped
/// (Raft retransmits; a client retries).
const MAX_QUEUED_BYTES: usize = 32 << 20;

const LISTENER: Token = Token(0);
/// Outbound peer connections get tokens below this one (a fresh token per
/// peer address); accepted ones start here.
const FIRST_ACCEPTED: usize = 1 << 20;
/// The disk thread wakes the loop with this token when a batch is durable,
/// and a capture thread when a snapshot is encoded (mio allows one waker
/// per poll).
const DISK_DONE: Token = Token(FIRST_ACCEPTED - 1);

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
    /// A socket operation of the event loop failed.
    #[error("network: {0}")]
    Io(#[from] io::Error),
    /// The replica stopped serving (see the message); restarting from
    /// storage is safe.
    #[error("replica failed: {0}")]
    Replica(String),
}

/// An accepted connection.
struct Conn {
    stream: TcpStream,
    addr: SocketAddr,
    out: Vec<u8>,
    /// Not read while more than `pause_reading_above` bytes of answers
    /// wait for it (the client must take them first), or while the shell
    /// holds it (`held`: as many of its requests in flight as it may
    /// have). Back-pressure either way: TCP makes the client wait.
    paused: bool,
    held: bool,
}

/// The outbound connection to one peer.
struct Outbound {
    addr: String,
    token: Token,
    stream: Option<TcpStream>,
    out: Vec<u8>,
    retry_at: Instant,
    backoff: Duration,
}

/// Everything the loop owns besides the shell.
struct Io {
    poll: Poll,
    listener: TcpListener,
    disk: DiskWriter,
    durable: mpsc::Receiver<Result<u64, StorageError>>,
    waker: Arc<Waker>,
    /// Snapshot captures encoded by their threads: (index, result).
    captured_tx: mpsc::Sender<NodeInput>,
    captured: mpsc::Receiver<NodeInput>,
    outbound: BTreeMap<NodeId, Outbound>,
    /// Which peer each outbound token belongs to.
    outbound_tokens: BTreeMap<Token, NodeId>,
    next_outbound_token: usize,
    conns: BTreeMap<Token, Conn>,
    next_token: usize,
    /// With fault injection on: the control file, and when to read it next.
    faults: Option<(FaultFile, Instant)>,
    limits: ClientLimits,
    /// Accepting stopped on an error (no file descriptors left, say):
    /// when to try again.
    accept_again_at: Option<Instant>,
    /// Connections refused at the limit since the last log line, and when
    /// that was (one line a second at most).
    refused: (usize, Instant),
}

/// Run replica `opts.id` of `sm` until `stop` is set (checked at least every
/// tick), finishing the persists in flight. Returns the state machine as it
/// was when the node stopped.
pub fn run_node<S: StateMachine>(
    opts: NodeOptions,
    sm: S,
    stop: &AtomicBool,
) -> Result<S, NodeError> {
    run_node_on(RealFs, opts, sm, stop)
}

/// [`run_node`] with the data directory on the filesystem `fs`: tests pass a
/// `storage::simfs::SimFs` to fail the disk under a running node.
pub fn run_node_on<S: StateMachine, F: Fs>(
    fs: F,
    opts: NodeOptions,
    sm: S,
    stop: &AtomicBool,
) -> Result<S, NodeError> {
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
    let mut io = Io::open(&opts, disk)?;
    tracing::info!(id = opts.id, addr = %opts.address(), "serving (threads runtime)");
    let mut clock = Clock::new(Duration::from_millis(opts.tick_ms));
    let mut events = Events::with_capacity(1024);
    let result = loop {
        if stop.load(Ordering::Relaxed) {
            break Ok(());
        }
        if let Err(e) = io.turn(&mut node, &mut events, &mut clock) {
            break Err(e);
        }
    };
    tracing::info!(id = opts.id, "shutting down");
    let finished = io.disk.finish();
    // The error that stopped the loop first: a disk error names its file
    // there, and `finish` only repeats it as "the disk thread stopped".
    result?;
    finished?;
    Ok(node.into_state())
}

/// When the next tick is due.
struct Clock {
    tick: Duration,
    next: Instant,
}

impl Clock {
    fn new(tick: Duration) -> Clock {
        Clock {
            tick,
            next: Instant::now() + tick,
        }
    }

    /// True (once) when a tick is due; skips ticks missed while busy.
    fn due(&mut self) -> bool {
        let now = Instant::now();
        if now < self.next {
            return false;
        }
        self.next = (self.next + self.tick).max(now);
        true
    }
}

impl Io {
    /// One turn of the loop: wait for readiness (at most until the next
    /// tick), turn everything that happened into the shell's inputs, step
    /// the shell with each, and write what it queued.
    fn turn<S: StateMachine>(
        &mut self,
        node: &mut ReplicaNode<S>,
        events: &mut Events,
        clock: &mut Clock,
    ) -> Result<(), NodeError> {
        self.reconnect_peers(node);
        let mut timeout = clock.next.saturating_duration_since(Instant::now());
        if let Some(at) = self.accept_again_at {
            timeout = timeout.min(at.saturating_duration_since(Instant::now()));
        }
        if let Err(e) = self.poll.poll(events, Some(timeout)) {
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e.into());
            }
        }
        let mut inputs = Vec::new();
        if self.accept_again_at.is_some_and(|at| Instant::now() >= at) {
            self.accept(&mut inputs)?;
        }
        for event in events.iter() {
            self.handle_event(event, &mut inputs)?;
        }
        self.drain_durable(&mut inputs)?;
        inputs.extend(self.captured.try_iter());
        if clock.due() {
            inputs.push(NodeInput::Tick);
        }
        if let Some((file, next)) = &mut self.faults {
            if Instant::now() >= *next {
                *next = Instant::now() + Duration::from_millis(FAULTS_POLL_MS);
                inputs.extend(file.poll_with(|p| std::fs::read_to_string(p)));
            }
        }
        for input in inputs {
            self.carry_out(node.step(input))?;
        }
        // One hand-over per turn: the batches of every step share an fsync.
        self.disk.flush();
        self.flush_all();
        self.resume_paused(node)
    }

    /// Read the paused connections whose answers have drained, and step
    /// what they sent.
    fn resume_paused<S: StateMachine>(
        &mut self,
        node: &mut ReplicaNode<S>,
    ) -> Result<(), NodeError> {
        let pause_above = self.limits.pause_reading_above;
        let drained: Vec<Token> = self
            .conns
            .iter()
            .filter(|(_, c)| c.paused && !c.held && c.out.len() <= pause_above)
            .map(|(t, _)| *t)
            .collect();
        if drained.is_empty() {
            return Ok(());
        }
        let mut inputs = Vec::new();
        for token in drained {
            self.read_conn(token, &mut inputs);
        }
        for input in inputs {
            self.carry_out(node.step(input))?;
        }
        self.disk.flush();
        self.flush_all();
        Ok(())
    }

    /// Accept what waits on the listener, up to the connection limit.
    fn accept(&mut self, inputs: &mut Vec<NodeInput>) -> Result<(), NodeError> {
        let conns = &mut self.conns;
        let room = self.limits.max_connections.saturating_sub(conns.len());
        let ended = accept_all(
            &self.listener,
            &self.poll,
            &mut self.next_token,
            room,
            |token, stream, addr| {
                let out = Vec::new();
                let (paused, held) = (false, false);
                conns.insert(
                    token,
                    Conn {
                        stream,
                        addr,
                        out,
                        paused,
                        held,
                    },
                );
                inputs.push(NodeInput::Accepted {
                    conn: conn_id(token),
                });
            },
        )?;
        self.accept_again_at = ended
            .retry
            .then(|| Instant::now() + Duration::from_millis(50));
        self.refused.0 += ended.refused;
        if self.refused.0 > 0 && self.refused.1.elapsed() >= Duration::from_secs(1) {
            tracing::warn!(
                "closed {} new connections at once: {} are open, the limit",
                self.refused.0,
                self.limits.max_connections
            );
            self.refused = (0, Instant::now());
        }
        Ok(())
    }

    /// Bind the listener and start the disk thread. Peers are dialed as the
    /// shell names them.
    fn open<F: Fs>(opts: &NodeOptions, disk: DiskStorage<F>) -> Result<Io, NodeError> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), DISK_DONE)?);
        let (tx, durable) = mpsc::channel();
        let disk_waker = Arc::clone(&waker);
        let on_durable = move |r: Result<u64, StorageError>| {
            let _ = tx.send(r);
            let _ = disk_waker.wake();
        };
        let faults = opts
            .fault_injection
            .then(|| FaultFile::enable(opts.id, &opts.data_dir));
        let disk = match &faults {
            Some(f) => DiskWriter::start(DelayedSync::new(disk, f.disk_delay()), on_durable),
            None => DiskWriter::start(disk, on_durable),
        };
        let (captured_tx, captured) = mpsc::channel();
        let mut listener = TcpListener::bind(opts.address())?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        Ok(Io {
            poll,
            listener,
            disk,
            durable,
            waker,
            captured_tx,
            captured,
            outbound: BTreeMap::new(),
            outbound_tokens: BTreeMap::new(),
            next_outbound_token: 1,
            conns: BTreeMap::new(),
            next_token: FIRST_ACCEPTED,
            faults: faults.map(|f| (f, Instant::now())),
            limits: opts.limits,
            accept_again_at: None,
            refused: (0, Instant::now()),
        })
    }

    /// Keep a connection to `peer` at `addr` from now on, replacing one to
    /// another address.
    fn dial(&mut self, peer: NodeId, addr: String) {
        if self.outbound.get(&peer).is_some_and(|ob| ob.addr == addr) {
            return;
        }
        if let Some(mut old) = self.outbound.remove(&peer) {
            drop_outbound(&self.poll, &mut old);
            self.outbound_tokens.remove(&old.token);
        }
        let token = Token(self.next_outbound_token);
        // Tokens of dropped slots are not reused: peers change rarely.
        self.next_outbound_token = (self.next_outbound_token + 1).min(FIRST_ACCEPTED - 2);
        self.outbound_tokens.insert(token, peer);
        tracing::debug!(%peer, %addr, "dialing");
        self.outbound.insert(
            peer,
            Outbound {
                addr,
                token,
                stream: None,
                out: Vec::new(),
                retry_at: Instant::now(),
                backoff: Duration::from_millis(20),
            },
        );
    }

    /// (Re)connect peers whose backoff expired; a new connection starts
    /// with the shell's hello as of now.
    fn reconnect_peers<S: StateMachine>(&mut self, node: &ReplicaNode<S>) {
        let now = Instant::now();
        for (peer, ob) in self.outbound.iter_mut() {
            if ob.stream.is_some() || now < ob.retry_at {
                continue;
            }
            let addr = ob.addr.to_socket_addrs().ok().and_then(|mut a| a.next());
            if let Some(Ok(mut s)) = addr.map(TcpStream::connect) {
                let interest = Interest::READABLE | Interest::WRITABLE;
                if self
                    .poll
                    .registry()
                    .register(&mut s, ob.token, interest)
                    .is_ok()
                {
                    let _ = s.set_nodelay(true);
                    ob.out = node.hello(*peer);
                    ob.stream = Some(s);
                    continue;
                }
            }
            ob.retry_at = now + ob.backoff;
            ob.backoff = (ob.backoff * 2).min(Duration::from_secs(1));
        }
    }

    /// One readiness event: new connections, bytes, or a broken peer link.
    fn handle_event(
        &mut self,
        event: &mio::event::Event,
        inputs: &mut Vec<NodeInput>,
    ) -> Result<(), NodeError> {
        match event.token() {
            LISTENER => self.accept(inputs)?,
            DISK_DONE => {}
            Token(t) if t < FIRST_ACCEPTED => {
                if let Some(peer) = self.outbound_tokens.get(&Token(t)).copied() {
                    self.peer_event(peer, event);
                }
            }
            token => self.read_conn(token, inputs),
        }
        Ok(())
    }

    /// Outbound links carry only our messages: readiness means "write
    /// more", or that the link broke.
    fn peer_event(&mut self, peer: NodeId, event: &mio::event::Event) {
        let Some(ob) = self.outbound.get_mut(&peer) else {
            return;
        };
        let broken = event.is_error()
            || event.is_read_closed()
            || event.is_write_closed()
            || ob
                .stream
                .as_mut()
                .is_some_and(|s| flush(s, &mut ob.out).is_err());
        if broken {
            drop_outbound(&self.poll, ob);
        }
    }

    /// Write what is queued on an accepted connection, then read what is
    /// available, unless too many answers still wait for it.
    fn read_conn(&mut self, token: Token, inputs: &mut Vec<NodeInput>) {
        let Some(conn) = self.conns.get_mut(&token) else {
            return;
        };
        if flush(&mut conn.stream, &mut conn.out).is_err() {
            self.remove_conn(token);
            inputs.push(NodeInput::Closed {
                conn: conn_id(token),
            });
            return;
        }
        conn.paused = conn.held || conn.out.len() > self.limits.pause_reading_above;
        if conn.paused {
            return;
        }
        let mut buf = [0u8; 64 * 1024];
        let open = loop {
            match conn.stream.read(&mut buf) {
                Ok(0) => break false,
                Ok(n) => inputs.push(NodeInput::Received {
                    conn: conn_id(token),
                    bytes: buf[..n].to_vec(),
                }),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break false,
            }
        };
        if !open {
            self.remove_conn(token);
            inputs.push(NodeInput::Closed {
                conn: conn_id(token),
            });
        }
    }

    /// Batches the disk thread made durable since the last look.
    fn drain_durable(&mut self, inputs: &mut Vec<NodeInput>) -> Result<(), NodeError> {
        while let Ok(result) = self.durable.try_recv() {
            inputs.push(NodeInput::Persisted { batch: result? });
        }
        Ok(())
    }

    /// Carry out the shell's actions in order.
    fn carry_out(&mut self, actions: Vec<NodeAction>) -> Result<(), NodeError> {
        for action in actions {
            match action {
                NodeAction::Persist { batch, actions } => self.disk.queue(batch, actions),
                NodeAction::Send { to, bytes } => {
                    if let Some(ob) = self.outbound.get_mut(&to) {
                        if ob.stream.is_some() && ob.out.len() < MAX_QUEUED_BYTES {
                            ob.out.extend_from_slice(&bytes);
                        }
                    }
                }
                NodeAction::Write { conn, bytes } => {
                    if let Some(c) = self.conns.get_mut(&Token(conn.0 as usize)) {
                        if c.out.len() < MAX_QUEUED_BYTES {
                            c.out.extend_from_slice(&bytes);
                        }
                    }
                }
                NodeAction::Close {
                    conn,
                    reason,
                    overload,
                } => {
                    let token = Token(conn.0 as usize);
                    match self.conns.get(&token) {
                        Some(c) if overload => {
                            tracing::debug!(addr = %c.addr, "closing connection: {reason}");
                        }
                        Some(c) => tracing::warn!(addr = %c.addr, "closing connection: {reason}"),
                        None => {}
                    }
                    self.remove_conn(token);
                }
                NodeAction::PauseReading { conn } => {
                    if let Some(c) = self.conns.get_mut(&Token(conn.0 as usize)) {
                        c.held = true;
                    }
                }
                NodeAction::ResumeReading { conn } => {
                    if let Some(c) = self.conns.get_mut(&Token(conn.0 as usize)) {
                        // Read it at the end of the turn: bytes may have
                        // arrived (edge-triggered: no event again) meanwhile.
                        c.held = false;
                        c.paused = true;
                    }
                }
                NodeAction::Dial { to, addr } => self.dial(to, addr),
                NodeAction::Stop { reason } => return Err(NodeError::Replica(reason)),
                NodeAction::Capture(job) => self.capture(job),
                NodeAction::Observed(_) => {} // Only with observe_applies (left off here).
            }
        }
        Ok(())
    }

    /// Encode a snapshot capture on a thread of its own (snapshots are rare,
    /// and one at a time), and wake the loop with the result.
    fn capture(&self, job: core_kv::SnapshotJob) {
        let tx = self.captured_tx.clone();
        let waker = Arc::clone(&self.waker);
        let index = job.index();
        let spawned = std::thread::Builder::new()
            .name("snapshot".into())
            .spawn(move || {
                let data = job.run();
                let _ = tx.send(NodeInput::Captured { index, data });
                let _ = waker.wake();
            });
        if let Err(e) = spawned {
            // The replica takes no other snapshot until this one returns.
            let _ = self.captured_tx.send(NodeInput::Captured {
                index,
                data: Err(format!("cannot start the snapshot thread: {e}")),
            });
        }
    }

    /// Write what is queued on every connection, as far as the sockets take it.
    fn flush_all(&mut self) {
        for ob in self.outbound.values_mut() {
            if let Some(s) = ob.stream.as_mut() {
                if flush(s, &mut ob.out).is_err() {
                    drop_outbound(&self.poll, ob);
                }
            }
        }
        for conn in self.conns.values_mut() {
            let _ = flush(&mut conn.stream, &mut conn.out);
        }
    }

    fn remove_conn(&mut self, token: Token) {
        if let Some(mut c) = self.conns.remove(&token) {
            let _ = self.poll.registry().deregister(&mut c.stream);
        }
    }
}

fn conn_id(token: Token) -> ConnId {
    ConnId(token.0 as u64)
}

fn drop_outbound(poll: &Poll, ob: &mut Outbound) {
    if let Some(mut s) = ob.stream.take() {
        let _ = poll.registry().deregister(&mut s);
    }
    ob.out.clear();
    ob.retry_at = Instant::now() + ob.backoff;
    ob.backoff = (ob.backoff * 2).min(Duration::from_secs(1));
}

/// Nanoseconds of the wall clock: only to vary election jitter between runs.
fn clock_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}
