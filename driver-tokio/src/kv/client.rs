//! A key/value client: the sans-IO `core_kv::Clerk` driven over TCP. It
//! finds the leader by itself (hints, rotation, timeouts in ticks).

use super::node::MAX_FRAME_BYTES;
use crate::framed::read_message;
use core_kv::{
    Clerk, ClerkAction, ClerkConfig, ClerkInput, ClientId, KvFrame, Op, Outcome, CLIENT_NODE,
    KV_PROTOCOL_VERSION,
};
use core_raft::NodeId;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use wire::{encode_frame, Decoder, Hello};

/// Milliseconds per clerk tick.
const TICK_MS: u64 = 10;

/// Why an operation did not finish.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No server answered within the deadline.
    #[error("no answer from the cluster within {0:?} (is a majority of {1} servers up?)")]
    Timeout(Duration, usize),
    /// The cluster address list is empty.
    #[error("no servers given")]
    NoServers,
}

struct Conn {
    stream: TcpStream,
    decoder: Decoder,
}

/// A client of one cluster.
pub struct KvClient {
    servers: Vec<SocketAddr>,
    cluster: u64,
    clerk: Clerk,
    conns: BTreeMap<u64, Conn>,
}

impl KvClient {
    /// A client for the servers at `servers` (ids 1..=n in order).
    pub fn new(servers: Vec<SocketAddr>, cluster: u64) -> Result<KvClient, ClientError> {
        if servers.is_empty() {
            return Err(ClientError::NoServers);
        }
        // A fresh id per client: ids must never be reused with a restarted
        // sequence (the servers would take every request for a duplicate).
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let id = nanos ^ (u64::from(std::process::id()) << 40);
        let clerk = Clerk::new(ClerkConfig {
            client: ClientId(id),
            servers: (1..=servers.len() as u64).map(NodeId).collect(),
            retry_ticks: 20,
            seed: id,
        });
        Ok(KvClient {
            servers,
            cluster,
            clerk,
            conns: BTreeMap::new(),
        })
    }

    /// The server (1-based id) this client believes leads, if known.
    pub fn leader(&self) -> Option<u64> {
        self.clerk.leader().map(|n| n.0)
    }

    /// Run one operation to completion, or fail after `deadline`.
    pub async fn run(&mut self, op: Op, deadline: Duration) -> Result<Outcome, ClientError> {
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
                        self.send(to.0, KvFrame::Request(request)).await;
                    }
                }
            }
            if started.elapsed() > deadline {
                return Err(ClientError::Timeout(deadline, self.servers.len()));
            }
            let reply = async {
                match target.and_then(|t| self.conns.get_mut(&t).map(|c| (t, c))) {
                    Some((t, c)) => (
                        t,
                        read_message::<_, KvFrame>(&mut c.stream, &mut c.decoder).await,
                    ),
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                (from, result) = reply => match result {
                    Ok(Some(KvFrame::Reply(reply))) => {
                        actions = self.clerk.step(ClerkInput::Reply { from: NodeId(from), reply });
                    }
                    _ => {
                        // The connection broke or spoke nonsense: forget it;
                        // the clerk's timeout moves on to another server.
                        self.conns.remove(&from);
                    }
                },
                _ = tick.tick() => actions = self.clerk.step(ClerkInput::Tick),
            }
        }
    }

    async fn send(&mut self, server: u64, frame: KvFrame) {
        if !self.conns.contains_key(&server) {
            let addr = self.servers[(server - 1) as usize];
            let Ok(Ok(mut stream)) =
                tokio::time::timeout(Duration::from_millis(500), TcpStream::connect(addr)).await
            else {
                return;
            };
            let _ = stream.set_nodelay(true);
            let hello = Hello::new(KV_PROTOCOL_VERSION, self.cluster, CLIENT_NODE);
            let Ok(bytes) = encode_frame(&hello, MAX_FRAME_BYTES) else {
                return;
            };
            if stream.write_all(&bytes).await.is_err() {
                return;
            }
            self.conns.insert(
                server,
                Conn {
                    stream,
                    decoder: Decoder::new(MAX_FRAME_BYTES),
                },
            );
        }
        let Ok(bytes) = encode_frame(&frame, MAX_FRAME_BYTES) else {
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
}
