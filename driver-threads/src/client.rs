//! A blocking client of a replicated service: the pure
//! `node_shell::ClientShell` (the clerk, framing, answers) over std TCP
//! sockets on the calling thread, with no async runtime. It finds the
//! leader by itself and numbers its requests for the replicas' session
//! tables, so a retried mutation is applied once.
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
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

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

/// A blocking client of one cluster of replicas (see the module doc).
pub struct Client<S>
where
    S: StateMachine,
    S::Op: SessionRequest,
    S::Output: SessionOutput,
{
    shell: ClientShell<S>,
    conns: BTreeMap<u64, TcpStream>,
    /// One read buffer for the client's life.
    buf: Vec<u8>,
}

/// A blocking client of the key/value service.
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
            buf: vec![0; 16 * 1024],
        })
    }

    /// The replica this client believes leads, if known, as the client
    /// numbers them (1, 2, ... in the order it learned their addresses).
    pub fn leader(&self) -> Option<u64> {
        self.shell.leader()
    }

    /// Run one operation to completion, or fail after `deadline`.
    pub fn run(&mut self, op: Command<S>, deadline: Duration) -> Result<Answer<S>, ClientError> {
        let started = Instant::now();
        let mut actions = self.shell.step(ClientInput::Invoke(op));
        loop {
            for action in std::mem::take(&mut actions) {
                match action {
                    ClientAction::Done(answer) => return Ok(answer),
                    ClientAction::Send { server, bytes } => {
                        if !self.send(server, &bytes) {
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
            let tick_ends = Instant::now() + Duration::from_millis(CLIENT_TICK_MS);
            actions = match self.shell.target().map(|t| (t, self.read(t, tick_ends))) {
                Some((server, Got::Bytes(bytes))) => {
                    self.shell.step(ClientInput::Received { server, bytes })
                }
                Some((server, Got::Closed)) => {
                    self.conns.remove(&server);
                    self.shell.step(ClientInput::Closed { server })
                }
                Some((_, Got::Nothing)) | None => {
                    std::thread::sleep(tick_ends.saturating_duration_since(Instant::now()));
                    self.shell.step(ClientInput::Tick)
                }
            };
        }
    }

    /// Wait until `until` for bytes from replica `server`.
    fn read(&mut self, server: u64, until: Instant) -> Got {
        let Some(stream) = self.conns.get_mut(&server) else {
            return Got::Nothing;
        };
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            return Got::Nothing;
        }
        loop {
            return match stream.read(&mut self.buf) {
                Ok(0) => Got::Closed,
                Ok(n) => Got::Bytes(self.buf[..n].to_vec()),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    Got::Nothing
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => Got::Closed,
            };
        }
    }

    /// Write `bytes` to replica `server`, connecting (hello first) if
    /// needed. False if the replica cannot be reached.
    fn send(&mut self, server: u64, bytes: &[u8]) -> bool {
        if !self.conns.contains_key(&server) {
            let Some(stream) = self.connect(server) else {
                return false;
            };
            self.conns.insert(server, stream);
        }
        let written = self
            .conns
            .get_mut(&server)
            .is_some_and(|s| s.write_all(bytes).is_ok());
        if !written {
            self.conns.remove(&server);
        }
        written
    }

    fn connect(&self, server: u64) -> Option<TcpStream> {
        let addr = self.shell.address(server)?.to_socket_addrs().ok()?.next()?;
        let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
        let _ = stream.set_nodelay(true);
        stream.write_all(self.shell.hello()).ok()?;
        Some(stream)
    }
}

/// What one read of a connection gave.
enum Got {
    Bytes(Vec<u8>),
    Closed,
    Nothing,
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
