//! The coordinator as a tokio server: a task per connection reads bytes and
//! forwards them, a writer task per connection sends what it is given, and
//! one loop owns the pure shell (`node_shell::mr`, hosted by
//! [`CoordinatorHost`]) and fires ticks. What the bytes mean is the shell's
//! business.

use mr_exec::addr::resolve;
use mr_exec::error::CoordinatorError;
use mr_exec::host::{CoordinatorHost, JobSummary, SocketAction};
use mr_exec::options::CoordinatorOptions;
use node_shell::mr::{ConnId, Input, MAX_CONNECTIONS, MAX_QUEUED_BYTES};
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

/// Bytes read from a socket per `Received` input.
const READ_CHUNK_BYTES: usize = 16 * 1024;

/// Reader-to-loop events waiting at most; a full queue makes the readers
/// wait, so a flooding peer cannot grow the coordinator's memory.
const EVENT_QUEUE: usize = 256;

/// What a connection's reader task reports to the loop.
enum Event {
    Received(ConnId, Vec<u8>),
    Closed(ConnId),
}

/// The loop's handle on one connection.
struct Link {
    /// Bytes for the writer task; dropping it lets the writer send what is
    /// queued and then shut the socket down.
    outgoing: mpsc::UnboundedSender<Vec<u8>>,
    /// Bytes queued for the writer and not yet written.
    queued: Arc<AtomicUsize>,
    reader: JoinHandle<()>,
}

/// The state the loop owns.
struct Server {
    host: CoordinatorHost,
    links: HashMap<ConnId, Link>,
    events: mpsc::Sender<Event>,
    next_conn: u64,
}

/// Runs a coordinator until the job ends plus the grace period.
pub async fn run_coordinator(opts: &CoordinatorOptions) -> Result<JobSummary, CoordinatorError> {
    let mut host = CoordinatorHost::new(opts)?;
    let listener = bind(&opts.listen).await?;
    host.listening(listener.local_addr()?, "tokio")?;
    let (events, mut inbox) = mpsc::channel(EVENT_QUEUE);
    let mut server = Server {
        host,
        links: HashMap::new(),
        events,
        next_conn: 1,
    };
    let mut ticker = tokio::time::interval_at(Instant::now() + opts.tick, opts.tick);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut stop_at: Option<Instant> = None;
    loop {
        tokio::select! {
            accepted = listener.accept() => server.accept(accepted),
            Some(event) = inbox.recv() => server.on_event(event),
            _ = ticker.tick() => server.step(Input::Tick),
            _ = tokio::time::sleep_until(stop_at.unwrap_or_else(Instant::now)), if stop_at.is_some() => break,
        }
        if stop_at.is_none() {
            stop_at = server
                .host
                .finished_at()
                .map(|t| Instant::from_std(t) + opts.grace);
        }
    }
    for link in server.links.values() {
        link.reader.abort();
    }
    server.host.into_result()
}

async fn bind(listen: &str) -> Result<TcpListener, CoordinatorError> {
    let addr = resolve(listen)?;
    TcpListener::bind(addr)
        .await
        .map_err(|source| CoordinatorError::Bind {
            addr: listen.to_string(),
            source,
        })
}

impl Server {
    /// Starts a connection's reader and writer and lets the shell greet it.
    fn accept(&mut self, accepted: io::Result<(TcpStream, SocketAddr)>) {
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => return tracing::warn!("accept failed: {e}"),
        };
        if self.links.len() >= MAX_CONNECTIONS {
            return tracing::warn!(
                %peer,
                "closed a new connection at once: {MAX_CONNECTIONS} are open, the limit"
            );
        }
        let conn = ConnId(self.next_conn);
        self.next_conn += 1;
        tracing::debug!(%conn, %peer, "accepted");
        let _ = stream.set_nodelay(true);
        let (rd, wr) = stream.into_split();
        let (outgoing, queue) = mpsc::unbounded_channel();
        let queued = Arc::new(AtomicUsize::new(0));
        tokio::spawn(write_bytes(wr, queue, Arc::clone(&queued)));
        let reader = tokio::spawn(read_bytes(conn, rd, self.events.clone()));
        self.links.insert(
            conn,
            Link {
                outgoing,
                queued,
                reader,
            },
        );
        self.step(Input::Accepted { conn });
    }

    fn on_event(&mut self, event: Event) {
        match event {
            Event::Received(conn, bytes) => self.step(Input::Received { conn, bytes }),
            Event::Closed(conn) => {
                self.links.remove(&conn);
                self.step(Input::Closed { conn });
            }
        }
    }

    /// Feeds the shell and carries out its socket work.
    fn step(&mut self, input: Input) {
        for action in self.host.step(input) {
            match action {
                SocketAction::Write { conn, bytes } => {
                    let Some(link) = self.links.get(&conn) else {
                        continue;
                    };
                    let len = bytes.len();
                    if link.queued.fetch_add(len, Ordering::Relaxed) + len > MAX_QUEUED_BYTES {
                        // A worker reads each answer before asking again.
                        tracing::debug!(%conn, "closing: it does not read its answers");
                        if let Some(link) = self.links.remove(&conn) {
                            link.reader.abort();
                        }
                        self.step(Input::Closed { conn });
                        continue;
                    }
                    let _ = link.outgoing.send(bytes);
                }
                SocketAction::Close { conn, reason } => {
                    if let Some(link) = self.links.remove(&conn) {
                        tracing::debug!(%conn, reason, "closing");
                        link.reader.abort();
                    }
                }
            }
        }
    }
}

/// Forwards whatever arrives, then the end of the stream (or its failure).
async fn read_bytes(conn: ConnId, mut rd: OwnedReadHalf, events: mpsc::Sender<Event>) {
    let mut buf = vec![0u8; READ_CHUNK_BYTES];
    loop {
        let n = match rd.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let bytes = buf[..n].to_vec();
        if events.send(Event::Received(conn, bytes)).await.is_err() {
            return; // The loop has stopped.
        }
    }
    let _ = events.send(Event::Closed(conn)).await;
}

/// Sends what the loop queues until it drops the queue, then shuts down.
async fn write_bytes(
    mut wr: OwnedWriteHalf,
    mut queue: mpsc::UnboundedReceiver<Vec<u8>>,
    queued: Arc<AtomicUsize>,
) {
    while let Some(bytes) = queue.recv().await {
        if wr.write_all(&bytes).await.is_err() {
            return;
        }
        queued.fetch_sub(bytes.len(), Ordering::Relaxed);
    }
    let _ = wr.shutdown().await;
}
