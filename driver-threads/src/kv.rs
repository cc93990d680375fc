//! One key/value server on a mio event loop: the same `KvReplica`, wire
//! format and storage as the tokio node, so nodes of both drivers can form
//! one cluster.
//!
//! Connections: one listener for peers and clerks (told apart by the
//! handshake's node id; `CLIENT_NODE` is a clerk), plus one outbound
//! connection per peer that carries this node's Raft messages, reconnected
//! with backoff. Persists go to a disk thread, which writes every batch
//! that queued while it was syncing with one fsync (group commit); the loop
//! keeps serving the network meanwhile and sends each step's messages and
//! replies only once every batch handed over before them is durable.

use crate::net::{accept_all, flush};
use core_kv::{
    reply_to, ClientRequest, KvFrame, KvReplica, KvStore, RsmAction, RsmConfig, RsmInput,
    CLIENT_NODE, KV_PROTOCOL_VERSION,
};
use core_raft::{Action, Config, NodeId};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use std::collections::BTreeMap;
use std::io::{self, Read};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use storage::DiskStorage;
use wire::{encode_frame, Decoder, Hello};

/// Largest frame accepted on any connection.
pub const MAX_FRAME_BYTES: u32 = 64 << 20;

/// Most bytes queued for one connection before messages to it are dropped
/// (Raft retransmits; a clerk retries).
const MAX_QUEUED_BYTES: usize = 32 << 20;

const LISTENER: Token = Token(0);
/// Outbound peer connections use `Token(peer id)`; accepted ones start here.
const FIRST_ACCEPTED: usize = 1 << 20;
/// The disk thread wakes the loop with this token when a batch is durable.
const DISK_DONE: Token = Token(FIRST_ACCEPTED - 1);

/// How to run one server (shared by both drivers).
#[derive(Clone, Debug)]
pub struct NodeOptions {
    /// This server's id, 1-based: its address is `servers[id - 1]`.
    pub id: u64,
    /// Every server's address, in id order.
    pub servers: Vec<SocketAddr>,
    /// Where the Raft log and snapshots live.
    pub data_dir: PathBuf,
    /// Cluster id checked in every handshake.
    pub cluster: u64,
    /// Milliseconds per Raft tick.
    pub tick_ms: u64,
    /// Snapshot once the log exceeds this many bytes.
    pub max_raft_state: Option<usize>,
}

/// Why a node stopped.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The options are inconsistent.
    #[error("invalid options: {0}")]
    Options(String),
    /// Storage could not be opened or written.
    #[error(transparent)]
    Storage(#[from] storage::StorageError),
    /// The stored state does not restore.
    #[error(transparent)]
    Restore(#[from] core_kv::RsmError),
    /// A socket operation failed.
    #[error("network: {0}")]
    Io(#[from] io::Error),
    /// The replica stopped serving (see the message).
    #[error("replica failed: {0}")]
    Replica(String),
}

/// Open storage and restore the replica for `opts` (both drivers do this).
pub fn open_replica(opts: &NodeOptions) -> Result<(DiskStorage, KvReplica), NodeError> {
    let n = opts.servers.len() as u64;
    if opts.id == 0 || opts.id > n {
        return Err(NodeError::Options(format!(
            "--id {} is not in 1..={n}",
            opts.id
        )));
    }
    let (disk, durable, report) = DiskStorage::open(&opts.data_dir)?;
    if let Some(torn) = &report.torn_tail {
        tracing::warn!("recovered after a crash: {torn}");
    }
    let mut raft = Config::new(NodeId(opts.id), (1..=n).map(NodeId).collect());
    raft.rng_seed = opts.id ^ u64::from(std::process::id());
    let config = RsmConfig {
        max_raft_state: opts.max_raft_state,
        ..RsmConfig::new(raft)
    };
    Ok((
        disk,
        KvReplica::restore(config, durable, KvStore::default())?,
    ))
}

/// Carry out the actions of one or more steps: every persist first, in
/// order, made durable with one fsync (group commit); then the rest in
/// order, handed to `deliver`. Performing persists earlier than their place
/// keeps the core's rule (durable before any later action).
pub fn group_commit(
    disk: &mut DiskStorage,
    actions: &mut Vec<RsmAction<core_kv::Outcome>>,
    mut deliver: impl FnMut(RsmAction<core_kv::Outcome>),
) -> Result<(), NodeError> {
    let persists: Vec<Action> = actions
        .iter()
        .filter_map(|a| match a {
            RsmAction::Raft(a) if storage::is_persist(a) => Some(a.clone()),
            _ => None,
        })
        .collect();
    if !persists.is_empty() {
        disk.persist_batch(&persists)?;
    }
    for action in actions.drain(..) {
        match action {
            RsmAction::Raft(a) if storage::is_persist(&a) => {}
            other => deliver(other),
        }
    }
    Ok(())
}

enum Role {
    Unknown,
    Peer(u64),
    Client,
}

struct Conn {
    stream: TcpStream,
    addr: SocketAddr,
    decoder: Decoder,
    out: Vec<u8>,
    role: Role,
}

struct Outbound {
    addr: SocketAddr,
    stream: Option<TcpStream>,
    out: Vec<u8>,
    retry_at: Instant,
    backoff: Duration,
}

/// Run a server until `stop` is set (checked at least every tick).
pub fn run_node(opts: NodeOptions, stop: &AtomicBool) -> Result<(), NodeError> {
    let (disk, mut replica) = open_replica(&opts)?;
    let n = opts.servers.len() as u64;
    let me = opts.servers[(opts.id - 1) as usize];
    let mut poll = Poll::new()?;
    let waker = std::sync::Arc::new(mio::Waker::new(poll.registry(), DISK_DONE)?);
    let mut disk = DiskThread::start(disk, waker);
    let mut listener = TcpListener::bind(me)?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    tracing::info!(id = opts.id, %me, "serving (threads runtime)");
    let hello = encode_frame(
        &Hello::new(KV_PROTOCOL_VERSION, opts.cluster, opts.id),
        MAX_FRAME_BYTES,
    )
    .map_err(|e| NodeError::Options(e.to_string()))?;
    let mut outbound: BTreeMap<u64, Outbound> = BTreeMap::new();
    for (i, addr) in opts.servers.iter().enumerate() {
        let peer = i as u64 + 1;
        if peer != opts.id {
            outbound.insert(
                peer,
                Outbound {
                    addr: *addr,
                    stream: None,
                    out: Vec::new(),
                    retry_at: Instant::now(),
                    backoff: Duration::from_millis(20),
                },
            );
        }
    }
    let mut conns: BTreeMap<usize, Conn> = BTreeMap::new();
    let mut next_token = FIRST_ACCEPTED;
    let mut pending: BTreeMap<u64, (usize, ClientRequest)> = BTreeMap::new();
    let mut next_submission = 0u64;
    let tick = Duration::from_millis(opts.tick_ms);
    let mut next_tick = Instant::now() + tick;
    let mut events = Events::with_capacity(1024);
    let mut actions: Vec<RsmAction<core_kv::Outcome>> = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        // (Re)connect peers whose backoff expired.
        let now = Instant::now();
        for (peer, ob) in outbound.iter_mut() {
            if ob.stream.is_none() && now >= ob.retry_at {
                if let Ok(mut s) = TcpStream::connect(ob.addr) {
                    if poll
                        .registry()
                        .register(
                            &mut s,
                            Token(*peer as usize),
                            Interest::READABLE | Interest::WRITABLE,
                        )
                        .is_ok()
                    {
                        let _ = s.set_nodelay(true);
                        ob.out = hello.clone();
                        ob.stream = Some(s);
                    }
                }
                if ob.stream.is_none() {
                    ob.retry_at = now + ob.backoff;
                    ob.backoff = (ob.backoff * 2).min(Duration::from_secs(1));
                }
            }
        }
        let timeout = next_tick.saturating_duration_since(Instant::now());
        if let Err(e) = poll.poll(&mut events, Some(timeout)) {
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e.into());
            }
        }
        let mut inputs: Vec<RsmInput<ClientRequest>> = Vec::new();
        for event in events.iter() {
            match event.token() {
                LISTENER => {
                    accept_all(&listener, &poll, &mut next_token, |token, stream, addr| {
                        conns.insert(
                            token.0,
                            Conn {
                                stream,
                                addr,
                                decoder: Decoder::new(MAX_FRAME_BYTES),
                                out: Vec::new(),
                                role: Role::Unknown,
                            },
                        );
                    })?
                }
                DISK_DONE => {}
                Token(t) if t < FIRST_ACCEPTED => {
                    if let Some(ob) = outbound.get_mut(&(t as u64)) {
                        let broken = event.is_error()
                            || event.is_read_closed()
                            || event.is_write_closed()
                            || ob
                                .stream
                                .as_mut()
                                .is_some_and(|s| flush(s, &mut ob.out).is_err());
                        if broken {
                            drop_outbound(&poll, ob);
                        }
                    }
                }
                Token(t) => {
                    let Some(conn) = conns.get_mut(&t) else {
                        continue;
                    };
                    let keep = read_conn(
                        conn,
                        t,
                        opts.cluster,
                        n,
                        &mut inputs,
                        &mut pending,
                        &mut next_submission,
                    ) && flush(&mut conn.stream, &mut conn.out).is_ok();
                    if !keep {
                        if let Some(mut c) = conns.remove(&t) {
                            let _ = poll.registry().deregister(&mut c.stream);
                        }
                    }
                }
            }
        }
        if Instant::now() >= next_tick {
            inputs.push(RsmInput::Tick);
            next_tick += tick;
            if next_tick < Instant::now() {
                next_tick = Instant::now() + tick;
            }
        }
        for input in inputs {
            actions.extend(replica.step(input));
        }
        // Persists go to the disk thread; everything else waits until every
        // batch handed over before it is durable.
        disk.submit(&mut actions);
        for action in disk.released()? {
            match action {
                RsmAction::Raft(Action::Send { to, msg }) => {
                    if let Some(ob) = outbound.get_mut(&to.0) {
                        if ob.stream.is_some() && ob.out.len() < MAX_QUEUED_BYTES {
                            if let Ok(bytes) = encode_frame(&KvFrame::Raft(msg), MAX_FRAME_BYTES) {
                                ob.out.extend_from_slice(&bytes);
                            }
                        }
                    }
                }
                RsmAction::Reply { id, result } => {
                    if let Some((token, request)) = pending.remove(&id) {
                        if let Some(conn) = conns.get_mut(&token) {
                            if conn.out.len() < MAX_QUEUED_BYTES {
                                if let Ok(bytes) = encode_frame(
                                    &KvFrame::Reply(reply_to(&request, result)),
                                    MAX_FRAME_BYTES,
                                ) {
                                    conn.out.extend_from_slice(&bytes);
                                }
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        for ob in outbound.values_mut() {
            if let Some(s) = ob.stream.as_mut() {
                if flush(s, &mut ob.out).is_err() {
                    drop_outbound(&poll, ob);
                }
            }
        }
        for conn in conns.values_mut() {
            let _ = flush(&mut conn.stream, &mut conn.out);
        }
        if let Some(why) = replica.failure() {
            return Err(NodeError::Replica(why.to_string()));
        }
    }
    tracing::info!(id = opts.id, "shutting down");
    // Finish the fsync in flight (and any batch queued behind it).
    disk.finish()
}

/// The disk thread and the actions waiting for it.
///
/// Persist actions are handed over in batches; while the thread syncs one
/// batch, later batches queue, and it writes them all with the next single
/// fsync (group commit: one fsync covers every persist that arrived while
/// the previous one ran). Non-persist actions are held, in order, until
/// every batch handed over before them is durable: the core's rule that a
/// persist is durable before any later action, across steps.
struct DiskThread {
    batches: Option<std::sync::mpsc::Sender<(u64, Vec<Action>)>>,
    done: std::sync::mpsc::Receiver<Result<u64, storage::StorageError>>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// Id of the last batch handed over, and of the last one durable.
    submitted: u64,
    durable: u64,
    held: std::collections::VecDeque<(u64, RsmAction<core_kv::Outcome>)>,
}

impl DiskThread {
    fn start(mut disk: DiskStorage, waker: std::sync::Arc<mio::Waker>) -> DiskThread {
        let (batches, inbox) = std::sync::mpsc::channel::<(u64, Vec<Action>)>();
        let (done_tx, done) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            while let Ok((mut last, mut batch)) = inbox.recv() {
                while let Ok((id, more)) = inbox.try_recv() {
                    batch.extend(more);
                    last = id;
                }
                let result = disk.persist_batch(&batch).map(|()| last);
                let failed = result.is_err();
                let _ = done_tx.send(result);
                let _ = waker.wake();
                if failed {
                    return;
                }
            }
        });
        DiskThread {
            batches: Some(batches),
            done,
            thread: Some(thread),
            submitted: 0,
            durable: 0,
            held: std::collections::VecDeque::new(),
        }
    }

    /// Hand this round's persists to the disk thread and hold the rest.
    fn submit(&mut self, actions: &mut Vec<RsmAction<core_kv::Outcome>>) {
        let persists: Vec<Action> = actions
            .iter()
            .filter_map(|a| match a {
                RsmAction::Raft(a) if storage::is_persist(a) => Some(a.clone()),
                _ => None,
            })
            .collect();
        if !persists.is_empty() {
            self.submitted += 1;
            if let Some(tx) = &self.batches {
                let _ = tx.send((self.submitted, persists));
            }
        }
        for action in actions.drain(..) {
            if !matches!(&action, RsmAction::Raft(a) if storage::is_persist(a)) {
                self.held.push_back((self.submitted, action));
            }
        }
    }

    /// The held actions whose batches are all durable, in order.
    fn released(&mut self) -> Result<Vec<RsmAction<core_kv::Outcome>>, NodeError> {
        while let Ok(result) = self.done.try_recv() {
            self.durable = result?;
        }
        let mut out = Vec::new();
        while self
            .held
            .front()
            .is_some_and(|(batch, _)| *batch <= self.durable)
        {
            out.push(self.held.pop_front().expect("checked").1);
        }
        Ok(out)
    }

    /// Wait for every batch handed over to be durable; stop the thread.
    fn finish(&mut self) -> Result<(), NodeError> {
        self.batches = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        while let Ok(result) = self.done.try_recv() {
            self.durable = result?;
        }
        Ok(())
    }
}

fn drop_outbound(poll: &Poll, ob: &mut Outbound) {
    if let Some(mut s) = ob.stream.take() {
        let _ = poll.registry().deregister(&mut s);
    }
    ob.out.clear();
    ob.retry_at = Instant::now() + ob.backoff;
    ob.backoff = (ob.backoff * 2).min(Duration::from_secs(1));
}

/// Read what is available and turn complete frames into inputs. Returns
/// false if the connection must be closed (with a log line saying why).
fn read_conn(
    conn: &mut Conn,
    token: usize,
    cluster: u64,
    servers: u64,
    inputs: &mut Vec<RsmInput<ClientRequest>>,
    pending: &mut BTreeMap<u64, (usize, ClientRequest)>,
    next_submission: &mut u64,
) -> bool {
    let mut buf = [0u8; 16 * 1024];
    let mut open = true;
    loop {
        match conn.stream.read(&mut buf) {
            Ok(0) => {
                open = false;
                break;
            }
            Ok(k) => conn.decoder.push(&buf[..k]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => {
                open = false;
                break;
            }
        }
    }
    loop {
        if let Role::Unknown = conn.role {
            match conn.decoder.next_message::<Hello>() {
                Ok(None) => return open,
                Ok(Some(hello)) => {
                    let ours = Hello::new(KV_PROTOCOL_VERSION, cluster, 0);
                    if let Err(e) = ours.check(&hello, |node| node <= servers) {
                        tracing::warn!(addr = %conn.addr, "closing connection: refused: {e}");
                        return false;
                    }
                    conn.role = if hello.node == CLIENT_NODE {
                        Role::Client
                    } else {
                        Role::Peer(hello.node)
                    };
                }
                Err(e) => {
                    tracing::warn!(addr = %conn.addr, "closing connection: bad handshake frame: {e}");
                    return false;
                }
            }
            continue;
        }
        match conn.decoder.next_message::<KvFrame>() {
            Ok(None) => return open,
            Ok(Some(frame)) => match (&conn.role, frame) {
                (Role::Peer(from), KvFrame::Raft(msg)) => inputs.push(RsmInput::Receive {
                    from: NodeId(*from),
                    msg,
                }),
                (Role::Client, KvFrame::Request(request)) => {
                    *next_submission += 1;
                    pending.insert(*next_submission, (token, request.clone()));
                    inputs.push(RsmInput::Submit {
                        id: *next_submission,
                        op: request,
                    });
                }
                (_, other) => {
                    tracing::warn!(addr = %conn.addr, "closing connection: unexpected frame {other:?}");
                    return false;
                }
            },
            Err(e) => {
                tracing::warn!(addr = %conn.addr, "closing connection: undecodable frame: {e}");
                return false;
            }
        }
    }
}
