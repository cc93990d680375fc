//! `kv flood`: an overload generator, to see what a node does when more
//! clients arrive than it can serve (issue 12, bounded memory). Unlike
//! `kv bench`, whose clients behave (one request at a time, answers read),
//! a flood opens many raw connections spread over the given nodes, and
//! each is one of three kinds:
//!
//! * **pipelining**: keeps `in_flight` unconditional writes outstanding,
//!   sending another for every answer;
//! * **silent**: sends reads of one key holding `big_value_bytes` as fast
//!   as the socket takes them and never reads an answer: every small
//!   request asks for a large answer, and the node must stop reading the
//!   connection rather than queue its answers without end;
//! * **half-frame**: announces a request of `half_frame_bytes` × 2 bytes,
//!   sends half of it and waits (the node must bound what it buffers for
//!   such connections).
//!
//! It counts what came back (answers, "busy", refusals naming another
//! leader, connections the node closed) and prints one summary.

use core_kv::{ClientId, ClientRequest, Op, Outcome, Seq};
use node_shell::{Frame, CLIENT_NODE};
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use wire::{encode_frame, Decoder, Hello};

/// What to send.
#[derive(Clone, Debug)]
pub struct FloodOptions {
    /// The nodes; connection `i` goes to `servers[i % len]`.
    pub servers: Vec<SocketAddr>,
    /// Cluster id for the handshakes.
    pub cluster_id: u64,
    /// Pipelining connections.
    pub connections: usize,
    /// Writes each pipelining connection keeps outstanding.
    pub in_flight: usize,
    /// Connections that send and never read.
    pub silent: usize,
    /// Connections that send half a frame and stop.
    pub half_frames: usize,
    /// Bytes of the half frame each of those sends (it announces twice as many).
    pub half_frame_bytes: usize,
    /// Bytes per written value.
    pub value_size: usize,
    /// Bytes of the value the silent connections read.
    pub big_value_bytes: usize,
    /// How long to keep it up.
    pub duration: Duration,
    /// First client id (each connection is its own client).
    pub first_client: u64,
}

/// What came back.
#[derive(Debug, Default)]
pub struct FloodReport {
    /// Connections opened.
    pub opened: AtomicU64,
    /// Connections that could not be opened.
    pub connect_failed: AtomicU64,
    /// Connections the node closed (refused at the limit, or for what they
    /// sent) before the flood ended.
    pub closed_by_node: AtomicU64,
    /// Requests written.
    pub sent: AtomicU64,
    /// Answers with an outcome.
    pub answered: AtomicU64,
    /// "Busy" answers (the node was at its limit of requests in flight).
    pub busy: AtomicU64,
    /// Refusals from nodes that do not lead.
    pub not_leader: AtomicU64,
}

impl fmt::Display for FloodReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = |a: &AtomicU64| a.load(Ordering::Relaxed);
        write!(
            f,
            "connections: {} opened, {} could not connect, {} closed by the node\n\
             requests: {} sent, {} answered, {} busy, {} not leader",
            n(&self.opened),
            n(&self.connect_failed),
            n(&self.closed_by_node),
            n(&self.sent),
            n(&self.answered),
            n(&self.busy),
            n(&self.not_leader),
        )
    }
}

type KvFrame = Frame<ClientRequest, Outcome>;

/// The key the silent connections read.
const BIG_KEY: &str = "flood-big";

/// The frame limit the flood's own decoder accepts.
const MAX_FRAME: u32 = node_shell::DEFAULT_MAX_FRAME_BYTES;

/// Run the flood for `opts.duration`; connections still open then are
/// dropped.
pub async fn run_flood(opts: &FloodOptions) -> Arc<FloodReport> {
    assert!(!opts.servers.is_empty(), "a flood needs a node to flood");
    let report = Arc::new(FloodReport::default());
    if opts.silent > 0 {
        let set = Op::Set {
            key: BIG_KEY.into(),
            value: "b".repeat(opts.big_value_bytes),
        };
        let written =
            driver_tokio::kv::KvClient::for_cluster(opts.servers.clone(), opts.cluster_id)
                .map(|mut c| async move { c.run(set, Duration::from_secs(30)).await });
        match written {
            Ok(run) => {
                if let Err(e) = run.await {
                    eprintln!("kv flood: could not write the value silent connections read: {e}");
                }
            }
            Err(e) => eprintln!("kv flood: {e}"),
        }
    }
    let deadline = Instant::now() + opts.duration;
    let mut tasks = Vec::new();
    for (i, kind) in interleaved(opts).into_iter().enumerate() {
        let addr = opts.servers[i % opts.servers.len()];
        let client = ClientId(opts.first_client + i as u64);
        let report = Arc::clone(&report);
        let opts = opts.clone();
        tasks.push(tokio::spawn(async move {
            let run = connection(kind, addr, client, &opts, &report);
            // Past the deadline the connection is simply dropped.
            if let Ok(Ended::ByNode) = tokio::time::timeout_at(deadline, run).await {
                report.closed_by_node.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    report
}

/// The connections' kinds, mixed evenly (not all of one kind first), so
/// that each kind meets the nodes' limits in proportion.
fn interleaved(opts: &FloodOptions) -> Vec<Kind> {
    let counts = [
        (Kind::Pipelining, opts.connections),
        (Kind::Silent, opts.silent),
        (Kind::HalfFrame, opts.half_frames),
    ];
    let mut placed: Vec<(f64, Kind)> = counts
        .iter()
        .flat_map(|&(kind, n)| (0..n).map(move |j| ((j as f64 + 0.5) / n as f64, kind)))
        .collect();
    placed.sort_by(|a, b| a.0.total_cmp(&b.0));
    placed.into_iter().map(|(_, kind)| kind).collect()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Pipelining,
    Silent,
    HalfFrame,
}

/// How a connection ended before the deadline.
enum Ended {
    /// It could not be opened.
    NotOpened,
    /// The node closed it (or reset it).
    ByNode,
}

async fn connection(
    kind: Kind,
    addr: SocketAddr,
    client: ClientId,
    opts: &FloodOptions,
    report: &FloodReport,
) -> Ended {
    let Ok(mut stream) = TcpStream::connect(addr).await else {
        report.connect_failed.fetch_add(1, Ordering::Relaxed);
        return Ended::NotOpened;
    };
    report.opened.fetch_add(1, Ordering::Relaxed);
    let _ = stream.set_nodelay(true);
    let hello = Hello::new(core_kv::KV_PROTOCOL_VERSION, opts.cluster_id, CLIENT_NODE);
    let hello = encode_frame(&hello, MAX_FRAME).expect("a hello fits");
    if stream.write_all(&hello).await.is_err() {
        return Ended::ByNode;
    }
    let value = "v".repeat(opts.value_size);
    let mut seq = 0u64;
    let mut next_request = || {
        seq += 1;
        let op = match kind {
            Kind::Silent => Op::Get {
                key: BIG_KEY.into(),
            },
            _ => Op::Set {
                key: format!("flood-{}", client.0 % 1000),
                value: value.clone(),
            },
        };
        let op = ClientRequest {
            client,
            seq: Seq(seq),
            op,
        };
        let frame: KvFrame = Frame::Request { id: seq, op };
        encode_frame(&frame, MAX_FRAME).expect("a request fits")
    };
    match kind {
        Kind::Silent => loop {
            // Writes block once the node stops reading: TCP pushes back.
            if stream.write_all(&next_request()).await.is_err() {
                return Ended::ByNode;
            }
            report.sent.fetch_add(1, Ordering::Relaxed);
        },
        Kind::HalfFrame => {
            let half = opts.half_frame_bytes;
            let mut bytes = u32::try_from(2 * half)
                .unwrap_or(u32::MAX)
                .to_be_bytes()
                .to_vec();
            bytes.resize(4 + half, 0);
            if stream.write_all(&bytes).await.is_err() {
                return Ended::ByNode;
            }
            let mut buf = [0u8; 1024];
            loop {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => return Ended::ByNode,
                    Ok(_) => {}
                }
            }
        }
        Kind::Pipelining => {
            let mut decoder = Decoder::new(MAX_FRAME);
            let mut outstanding = 0usize;
            let mut buf = vec![0u8; 64 << 10];
            loop {
                while outstanding < opts.in_flight {
                    if stream.write_all(&next_request()).await.is_err() {
                        return Ended::ByNode;
                    }
                    report.sent.fetch_add(1, Ordering::Relaxed);
                    outstanding += 1;
                }
                let n = match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => return Ended::ByNode,
                    Ok(n) => n,
                };
                decoder.push(&buf[..n]);
                while let Ok(Some(frame)) = decoder.next_message::<KvFrame>() {
                    let counter = match frame {
                        Frame::Reply { result: Ok(_), .. } => &report.answered,
                        Frame::Reply { result: Err(_), .. } => &report.not_leader,
                        Frame::Busy { .. } => &report.busy,
                        _ => continue,
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                    outstanding = outstanding.saturating_sub(1);
                }
            }
        }
    }
}
