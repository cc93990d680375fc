//! One key/value server: a `KvReplica` fed by a tick timer, peer
//! connections and clerk connections, persisting through `DiskStorage`.
//!
//! Every connection starts with a `wire::Hello`; node ids 1..=n are the
//! servers, `CLIENT_NODE` (0) marks a clerk. A frame that fails to decode,
//! an unknown node, a wrong cluster id or an oversized frame closes that
//! connection with a log line; the node keeps serving everyone else.
//! Every event already queued is stepped before one group commit: all the
//! steps' persists are written and fsynced once, then their sends and
//! replies go out (the core's ordering rule, with one fsync per batch).

use crate::framed::read_message;
use core_kv::{
    reply_to, ClientRequest, KvFrame, RsmAction, RsmInput, CLIENT_NODE, KV_PROTOCOL_VERSION,
};
use core_raft::{Action, NodeId};
use driver_threads::kv::{group_commit, open_replica};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;
use storage::DiskStorage;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use wire::{encode_frame, Decoder, Hello};

/// Largest frame accepted on any connection.
pub const MAX_FRAME_BYTES: u32 = 64 << 20;

pub use driver_threads::kv::{NodeError, NodeOptions};

enum Event {
    Raft {
        from: u64,
        msg: core_raft::Message,
    },
    Request {
        conn: u64,
        request: ClientRequest,
    },
    Client {
        conn: u64,
        tx: mpsc::Sender<KvFrame>,
    },
    ClientGone {
        conn: u64,
    },
}

/// Run a server until `shutdown` resolves (finishing the step in progress,
/// so no fsync is cut short) or an error stops it.
pub async fn run_node(
    opts: NodeOptions,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), NodeError> {
    let n = opts.servers.len() as u64;
    let (mut disk, mut replica) = open_replica(&opts)?;
    let me = opts.servers[(opts.id - 1) as usize];
    let listener = TcpListener::bind(me).await?;
    tracing::info!(id = opts.id, %me, "serving");

    let (events, mut inbox) = mpsc::channel::<Event>(8192);
    tokio::spawn(accept_loop(listener, opts.cluster, n, events.clone()));
    let mut peers: BTreeMap<u64, mpsc::Sender<KvFrame>> = BTreeMap::new();
    for (i, addr) in opts.servers.iter().enumerate() {
        let peer = i as u64 + 1;
        if peer != opts.id {
            let (tx, rx) = mpsc::channel(4096);
            tokio::spawn(peer_writer(
                *addr,
                Hello::new(KV_PROTOCOL_VERSION, opts.cluster, opts.id),
                rx,
            ));
            peers.insert(peer, tx);
        }
    }

    let mut clients: BTreeMap<u64, mpsc::Sender<KvFrame>> = BTreeMap::new();
    let mut pending: BTreeMap<u64, (u64, ClientRequest)> = BTreeMap::new();
    let mut next_submission = 0u64;
    let mut tick = tokio::time::interval(Duration::from_millis(opts.tick_ms));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    // Actions of the steps awaiting the next group commit.
    let mut actions: Vec<RsmAction<core_kv::Outcome>> = Vec::new();
    loop {
        let first = tokio::select! {
            _ = &mut shutdown => {
                tracing::info!(id = opts.id, "shutting down");
                return Ok(());
            }
            _ = tick.tick() => Some(RsmInput::Tick),
            Some(event) = inbox.recv() => input_for(event, &mut clients, &mut pending, &mut next_submission),
        };
        if let Some(input) = first {
            actions.extend(replica.step(input));
        }
        // Group commit: step every event already queued, then make all their
        // persists durable with one fsync before any other action.
        for _ in 0..GROUP_COMMIT_MAX_EVENTS {
            let Ok(event) = inbox.try_recv() else { break };
            if let Some(input) = input_for(event, &mut clients, &mut pending, &mut next_submission)
            {
                actions.extend(replica.step(input));
            }
        }
        execute(&mut disk, &mut actions, &peers, &clients, &mut pending)?;
        if let Some(why) = replica.failure() {
            return Err(NodeError::Replica(why.to_string()));
        }
    }
}

/// Most events stepped before one group commit.
const GROUP_COMMIT_MAX_EVENTS: usize = 1024;

/// Turn a connection event into a replica input (bookkeeping for clients).
fn input_for(
    event: Event,
    clients: &mut BTreeMap<u64, mpsc::Sender<KvFrame>>,
    pending: &mut BTreeMap<u64, (u64, ClientRequest)>,
    next_submission: &mut u64,
) -> Option<RsmInput<ClientRequest>> {
    match event {
        Event::Raft { from, msg } => Some(RsmInput::Receive {
            from: NodeId(from),
            msg,
        }),
        Event::Request { conn, request } => {
            *next_submission += 1;
            pending.insert(*next_submission, (conn, request.clone()));
            Some(RsmInput::Submit {
                id: *next_submission,
                op: request,
            })
        }
        Event::Client { conn, tx } => {
            clients.insert(conn, tx);
            None
        }
        Event::ClientGone { conn } => {
            clients.remove(&conn);
            None
        }
    }
}

/// Group commit, then hand messages to peer writers and replies to clients.
fn execute(
    disk: &mut DiskStorage,
    actions: &mut Vec<RsmAction<core_kv::Outcome>>,
    peers: &BTreeMap<u64, mpsc::Sender<KvFrame>>,
    clients: &BTreeMap<u64, mpsc::Sender<KvFrame>>,
    pending: &mut BTreeMap<u64, (u64, ClientRequest)>,
) -> Result<(), NodeError> {
    group_commit(disk, actions, |action| match action {
        RsmAction::Raft(Action::Send { to, msg }) => {
            if let Some(tx) = peers.get(&to.0) {
                // A full queue means the peer is slow or gone; Raft retries.
                let _ = tx.try_send(KvFrame::Raft(msg));
            }
        }
        RsmAction::Reply { id, result } => {
            if let Some((conn, request)) = pending.remove(&id) {
                if let Some(tx) = clients.get(&conn) {
                    let _ = tx.try_send(KvFrame::Reply(reply_to(&request, result)));
                }
            }
        }
        _ => {}
    })
}

/// Accept connections, check the handshake, and start a reader per connection.
async fn accept_loop(
    listener: TcpListener,
    cluster: u64,
    servers: u64,
    events: mpsc::Sender<Event>,
) {
    let mut next_conn = 0u64;
    loop {
        let (stream, addr) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        next_conn += 1;
        let conn = next_conn;
        let events = events.clone();
        tokio::spawn(async move {
            if let Err(why) = serve_connection(stream, cluster, servers, conn, events).await {
                tracing::warn!(%addr, "closing connection: {why}");
            }
        });
    }
}

async fn serve_connection(
    stream: TcpStream,
    cluster: u64,
    servers: u64,
    conn: u64,
    events: mpsc::Sender<Event>,
) -> Result<(), String> {
    let _ = stream.set_nodelay(true);
    let (mut read, mut write) = stream.into_split();
    let mut decoder = Decoder::new(MAX_FRAME_BYTES);
    let hello: Hello = tokio::time::timeout(
        Duration::from_secs(5),
        read_message(&mut read, &mut decoder),
    )
    .await
    .map_err(|_| "no handshake within 5 s".to_string())?
    .map_err(|e| format!("bad handshake frame: {e}"))?
    .ok_or("closed before the handshake")?;
    let ours = Hello::new(KV_PROTOCOL_VERSION, cluster, 0);
    ours.check(&hello, |node| node <= servers)
        .map_err(|e| format!("refused: {e}"))?;
    if hello.node == CLIENT_NODE {
        let (tx, mut rx) = mpsc::channel::<KvFrame>(256);
        events
            .send(Event::Client { conn, tx })
            .await
            .map_err(|_| "node stopped")?;
        tokio::spawn(async move {
            while let Some(frame) = rx.recv().await {
                let Ok(bytes) = encode_frame(&frame, MAX_FRAME_BYTES) else {
                    continue;
                };
                if write.write_all(&bytes).await.is_err() {
                    break;
                }
            }
        });
        let result = loop {
            match read_message::<_, KvFrame>(&mut read, &mut decoder).await {
                Ok(Some(KvFrame::Request(request))) => {
                    if events.send(Event::Request { conn, request }).await.is_err() {
                        break Ok(());
                    }
                }
                Ok(Some(other)) => {
                    break Err(format!("client sent a non-request frame: {other:?}"))
                }
                Ok(None) => break Ok(()),
                Err(e) => break Err(format!("undecodable frame from a client: {e}")),
            }
        };
        let _ = events.send(Event::ClientGone { conn }).await;
        return result;
    }
    let from = hello.node;
    loop {
        match read_message::<_, KvFrame>(&mut read, &mut decoder).await {
            Ok(Some(KvFrame::Raft(msg))) => {
                if events.send(Event::Raft { from, msg }).await.is_err() {
                    return Ok(());
                }
            }
            Ok(Some(_)) => return Err(format!("server {from} sent a non-Raft frame")),
            Ok(None) => return Ok(()),
            Err(e) => return Err(format!("undecodable frame from server {from}: {e}")),
        }
    }
}

/// Keep a connection to one peer, reconnecting with backoff, and write the
/// messages queued for it. Messages that cannot be written are dropped:
/// Raft retransmits.
async fn peer_writer(addr: SocketAddr, hello: Hello, mut queue: mpsc::Receiver<KvFrame>) {
    let mut backoff = Duration::from_millis(20);
    loop {
        let mut stream = match TcpStream::connect(addr).await {
            Ok(s) => s,
            Err(_) => {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                // Drop what queued up meanwhile: it is stale by now.
                while queue.try_recv().is_ok() {}
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        backoff = Duration::from_millis(20);
        let Ok(bytes) = encode_frame(&hello, MAX_FRAME_BYTES) else {
            return;
        };
        if stream.write_all(&bytes).await.is_err() {
            continue;
        }
        while let Some(frame) = queue.recv().await {
            let Ok(bytes) = encode_frame(&frame, MAX_FRAME_BYTES) else {
                continue;
            };
            if stream.write_all(&bytes).await.is_err() {
                break;
            }
        }
        if queue.is_closed() {
            return;
        }
    }
}
