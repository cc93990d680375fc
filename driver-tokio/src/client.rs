//! An async client of a replicated service: the pure
//! `node_shell::ClientShell` (the clerk, framing, answers) over tokio TCP.
//! It finds the leader by itself and numbers its requests for the
//! replicas' session tables, so a retried mutation is applied once.
//!
//! `Client<S>` speaks to replicas of the state machine `S`, which must take
//! its operations under sessions (`core_kv::Sessioned<MyMachine>`, or the
//! key/value store: [`KvClient`]); `run` takes the machine's command and
//! returns its answer.

use core_kv::KV_PROTOCOL_VERSION;
use core_kv::{ClerkOp, ClientId, KvStore, SessionOutput, SessionRequest, StateMachine};
use node_shell::client::{Answer, ClientAction, ClientInput, ClientShell, Command, CLIENT_TICK_MS};
use node_shell::DEFAULT_MAX_FRAME_BYTES;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Most bytes taken from a connection in one read.
const READ_BYTES: usize = 16 * 1024;

/// Why an operation did not finish.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// No replica answered within the deadline.
    #[error("no answer from the cluster within {0:?} (is a majority of its replicas up and reachable? this client knows {1} of their addresses)")]
    Timeout(Duration, usize),
    /// The address list is empty.
    #[error("no replica addresses given")]
    NoServers,
}

/// An async client of one cluster of replicas (see the module doc).
pub struct Client<S>
where
    S: StateMachine,
    S::Op: SessionRequest,
    S::Output: SessionOutput,
{
    shell: ClientShell<S>,
    conns: BTreeMap<u64, TcpStream>,
    /// One read buffer for the client's life (a read is in flight on at
    /// most one connection at a time).
    buf: Vec<u8>,
}

/// A client of the key/value service.
pub type KvClient = Client<KvStore>;

impl KvClient {
    /// A key/value client for the replicas at `servers` (any members of the
    /// cluster; it learns the leader's address from them).
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
    /// A client for the replicas at `servers` (any members; it learns the
    /// leader's address from their refusals) of cluster `cluster`,
    /// speaking the service's `protocol` version.
    pub fn new(servers: Vec<SocketAddr>, cluster: u64, protocol: u32) -> Result<Self, ClientError> {
        if servers.is_empty() {
            return Err(ClientError::NoServers);
        }
        let addrs = servers.iter().map(SocketAddr::to_string).collect();
        let id = ClientId(fresh_client_id());
        let shell = ClientShell::new(id, addrs, cluster, protocol, DEFAULT_MAX_FRAME_BYTES);
        Ok(Client {
            shell,
            conns: BTreeMap::new(),
            buf: vec![0; READ_BYTES],
        })
    }

    /// The replica this client believes leads, if known, as the client
    /// numbers them (1, 2, ... in the order it learned their addresses).
    pub fn leader(&self) -> Option<u64> {
        self.shell.leader()
    }

    /// Run one operation to completion, or fail after `deadline`.
    pub async fn run(
        &mut self,
        op: Command<S>,
        deadline: Duration,
    ) -> Result<Answer<S>, ClientError> {
        let started = Instant::now();
        let mut actions = self.shell.step(ClientInput::Invoke(op));
        let mut tick = tokio::time::interval(Duration::from_millis(CLIENT_TICK_MS));
        loop {
            for action in std::mem::take(&mut actions) {
                match action {
                    ClientAction::Done(answer) => return Ok(answer),
                    ClientAction::Send { server, bytes } => {
                        if !self.send(server, &bytes).await {
                            actions.extend(self.shell.step(ClientInput::Closed { server }));
                        }
                    }
                    ClientAction::Close { server } => {
                        self.conns.remove(&server);
                    }
                }
            }
            if started.elapsed() > deadline {
                return Err(ClientError::Timeout(deadline, self.shell.known()));
            }
            let target = self.shell.target();
            tokio::select! {
                (server, bytes) = Self::read_from(&mut self.conns, &mut self.buf, target) => {
                    actions = match bytes {
                        Some(bytes) => self.shell.step(ClientInput::Received { server, bytes }),
                        None => {
                            self.conns.remove(&server);
                            self.shell.step(ClientInput::Closed { server })
                        }
                    };
                }
                _ = tick.tick() => actions = self.shell.step(ClientInput::Tick),
            }
        }
    }

    /// Bytes from the connection to `target` (pending forever if there is
    /// none); `None` when it ended.
    async fn read_from(
        conns: &mut BTreeMap<u64, TcpStream>,
        buf: &mut [u8],
        target: Option<u64>,
    ) -> (u64, Option<Vec<u8>>) {
        let Some((t, stream)) = target.and_then(|t| conns.get_mut(&t).map(|c| (t, c))) else {
            return std::future::pending().await;
        };
        match stream.read(buf).await {
            Ok(0) | Err(_) => (t, None),
            Ok(n) => (t, Some(buf[..n].to_vec())),
        }
    }

    /// Write `bytes` to replica `server`, connecting (hello first) if
    /// needed. False if the replica cannot be reached.
    async fn send(&mut self, server: u64, bytes: &[u8]) -> bool {
        if !self.conns.contains_key(&server) {
            let Some(stream) = self.connect(server).await else {
                return false;
            };
            self.conns.insert(server, stream);
        }
        let written = match self.conns.get_mut(&server) {
            Some(stream) => stream.write_all(bytes).await.is_ok(),
            None => false,
        };
        if !written {
            self.conns.remove(&server);
        }
        written
    }

    async fn connect(&self, server: u64) -> Option<TcpStream> {
        let addr = self.shell.address(server)?;
        let connect = TcpStream::connect(addr);
        let mut stream = tokio::time::timeout(Duration::from_millis(500), connect)
            .await
            .ok()?
            .ok()?;
        let _ = stream.set_nodelay(true);
        stream.write_all(self.shell.hello()).await.ok()?;
        Some(stream)
    }
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
