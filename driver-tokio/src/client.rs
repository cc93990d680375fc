//! A client of a replicated service: the sans-IO `core_kv::Clerk` driven
//! over TCP. It finds the leader by itself (hints, rotation, timeouts in
//! ticks) and numbers its requests for the replicas' session tables, so a
//! retried mutation is applied once.
//!
//! `Client<S>` speaks to replicas of the state machine `S`, which must take
//! its operations under sessions (`core_kv::Sessioned<MyMachine>`, or the
//! key/value store: [`KvClient`]); `run` takes the machine's command and
//! returns its answer.

use crate::framed::read_message;
use core_kv::{
    Clerk, ClerkAction, ClerkConfig, ClerkInput, ClerkOp, ClientId, ClientReply, KvStore,
    SessionOutput, SessionRequest, StateMachine, KV_PROTOCOL_VERSION,
};
use core_raft::NodeId;
use node_shell::{Frame, CLIENT_NODE, DEFAULT_MAX_FRAME_BYTES};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use wire::{encode_frame, Decoder, Hello};

/// Milliseconds per clerk tick.
const TICK_MS: u64 = 10;

/// Ticks of silence before the clerk tries another replica.
const RETRY_TICKS: u64 = 20;

/// Why an operation did not finish.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// No replica answered within the deadline.
    #[error("no answer from the cluster within {0:?} (is a majority of the {1} replicas up and reachable?)")]
    Timeout(Duration, usize),
    /// The address list is empty.
    #[error("no replica addresses given")]
    NoServers,
}

struct Conn {
    stream: TcpStream,
    decoder: Decoder,
}

/// A client of one cluster of replicas (see the module doc).
pub struct Client<S>
where
    S: StateMachine,
    S::Op: SessionRequest,
    S::Output: SessionOutput,
{
    servers: Vec<SocketAddr>,
    cluster: u64,
    protocol: u32,
    clerk: Clerk<Command<S>, Answer<S>>,
    conns: BTreeMap<u64, Conn>,
}

/// The command a client of `S` sends (the operation inside its request).
pub type Command<S> = <<S as StateMachine>::Op as SessionRequest>::Command;

/// The answer a client of `S` gets back.
pub type Answer<S> = <<S as StateMachine>::Output as SessionOutput>::Answer;

/// A client of the key/value service.
pub type KvClient = Client<KvStore>;

impl KvClient {
    /// A key/value client for the replicas at `servers` (ids 1..=n in order).
    pub fn for_cluster(servers: Vec<SocketAddr>, cluster: u64) -> Result<KvClient, ClientError> {
        Client::new(servers, cluster, KV_PROTOCOL_VERSION)
    }
}

impl<S> Client<S>
where
    S: StateMachine,
    S::Op: SessionRequest,
    S::Output: SessionOutput,
    Command<S>: ClerkOp<Answer<S>>,
{
    /// A client for the replicas at `servers` (ids 1..=n in order) of
    /// cluster `cluster`, speaking the service's `protocol` version.
    pub fn new(servers: Vec<SocketAddr>, cluster: u64, protocol: u32) -> Result<Self, ClientError> {
        if servers.is_empty() {
            return Err(ClientError::NoServers);
        }
        let id = fresh_client_id();
        let clerk = Clerk::new(ClerkConfig {
            client: ClientId(id),
            servers: (1..=servers.len() as u64).map(NodeId).collect(),
            retry_ticks: RETRY_TICKS,
            seed: id,
        });
        Ok(Client {
            servers,
            cluster,
            protocol,
            clerk,
            conns: BTreeMap::new(),
        })
    }

    /// The replica (1-based id) this client believes leads, if known.
    pub fn leader(&self) -> Option<u64> {
        self.clerk.leader().map(|n| n.0)
    }

    /// Run one operation to completion, or fail after `deadline`.
    pub async fn run(
        &mut self,
        op: Command<S>,
        deadline: Duration,
    ) -> Result<Answer<S>, ClientError> {
        let started = Instant::now();
        let mut actions = self.clerk.step(ClerkInput::Invoke(op));
        let mut target: Option<u64> = None;
        let mut tick = tokio::time::interval(Duration::from_millis(TICK_MS));
        loop {
            for action in std::mem::take(&mut actions) {
                match action {
                    ClerkAction::Done { outcome, .. } => return Ok(outcome),
                    ClerkAction::Send { to, request } => {
                        target = Some(to.0);
                        self.send(to.0, request).await;
                    }
                }
            }
            if started.elapsed() > deadline {
                return Err(ClientError::Timeout(deadline, self.servers.len()));
            }
            tokio::select! {
                (from, reply) = Self::next_reply(&mut self.conns, target, self.clerk.client()) => match reply {
                    Some(reply) => {
                        actions = self.clerk.step(ClerkInput::Reply { from: NodeId(from), reply });
                    }
                    None => {
                        // The connection broke or spoke nonsense: forget it;
                        // the clerk's timeout moves on to another replica.
                        self.conns.remove(&from);
                    }
                },
                _ = tick.tick() => actions = self.clerk.step(ClerkInput::Tick),
            }
        }
    }

    /// The next answer on the connection to `target` (pending forever if
    /// there is none): `None` if the connection broke or sent garbage. An
    /// output that is not for a waiting client is skipped.
    async fn next_reply(
        conns: &mut BTreeMap<u64, Conn>,
        target: Option<u64>,
        me: ClientId,
    ) -> (u64, Option<ClientReply<Answer<S>>>) {
        let Some((t, c)) = target.and_then(|t| conns.get_mut(&t).map(|c| (t, c))) else {
            return std::future::pending().await;
        };
        loop {
            let frame = read_message::<_, Frame<S::Op, S::Output>>(&mut c.stream, &mut c.decoder);
            match frame.await {
                Ok(Some(Frame::Reply { id, result })) => {
                    let result = match result {
                        Ok(out) => match out.into_answer() {
                            Some(answer) => Ok(answer),
                            None => continue,
                        },
                        Err(not_leader) => Err(not_leader),
                    };
                    return (t, Some(reply_for(me, id, result)));
                }
                _ => return (t, None),
            }
        }
    }

    async fn send(&mut self, server: u64, request: core_kv::ClientRequest<Command<S>>) {
        if !self.conns.contains_key(&server) {
            let Some(conn) = self.connect(server).await else {
                return;
            };
            self.conns.insert(server, conn);
        }
        let id = request.seq.0;
        let op = S::Op::from_request(request);
        let frame: Frame<S::Op, S::Output> = Frame::Request { id, op };
        let Ok(bytes) = encode_frame(&frame, DEFAULT_MAX_FRAME_BYTES) else {
            tracing::warn!("request too large to send");
            return;
        };
        let broken = match self.conns.get_mut(&server) {
            Some(c) => c.stream.write_all(&bytes).await.is_err(),
            None => false,
        };
        if broken {
            self.conns.remove(&server);
        }
    }

    async fn connect(&self, server: u64) -> Option<Conn> {
        let addr = self.servers[(server - 1) as usize];
        let connect = TcpStream::connect(addr);
        let mut stream = tokio::time::timeout(Duration::from_millis(500), connect)
            .await
            .ok()?
            .ok()?;
        let _ = stream.set_nodelay(true);
        let hello = Hello::new(self.protocol, self.cluster, CLIENT_NODE);
        let bytes = encode_frame(&hello, DEFAULT_MAX_FRAME_BYTES).ok()?;
        stream.write_all(&bytes).await.ok()?;
        Some(Conn {
            stream,
            decoder: Decoder::new(DEFAULT_MAX_FRAME_BYTES),
        })
    }
}

/// The clerk's view of a replica's answer to its request number `seq`.
fn reply_for<A>(
    client: ClientId,
    seq: u64,
    result: Result<A, core_kv::NotLeader>,
) -> ClientReply<A> {
    ClientReply::new(client, core_kv::Seq(seq), result)
}

/// A fresh client id: ids must never repeat with a restarted sequence (the
/// replicas would take every request for a stale duplicate). The wall
/// clock and process id separate runs and processes; the counter separates
/// clients created at the same instant in this process.
fn fresh_client_id() -> u64 {
    static CREATED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = CREATED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos ^ (u64::from(std::process::id()) << 40) ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15)
}
