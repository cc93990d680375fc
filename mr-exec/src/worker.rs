//! A worker as a blocking TCP client on the calling thread.

use crate::error::WorkerError;
use crate::options::{WorkerOptions, MAX_FRAME_BYTES};
use crate::task::execute;
use core_mr::worker::{Action, ExitReason, Input};
use core_mr::{App, Reply, Request, Worker, PROTOCOL_VERSION};
use std::collections::VecDeque;
use std::io::{self, BufReader, BufWriter, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};
use wire::{read_frame, write_frame, Hello};

/// How a worker's run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WorkerSummary {
    /// Why it stopped.
    pub reason: ExitReason,
    /// Tasks it completed.
    pub tasks_done: u64,
}

/// Connects, retrying until `timeout` (the coordinator may still be starting).
pub fn connect_with_retry(addr: &str, timeout: Duration) -> Result<TcpStream, WorkerError> {
    let deadline = Instant::now() + timeout;
    loop {
        let attempt = addr.to_socket_addrs().and_then(|mut addrs| {
            addrs
                .next()
                .ok_or_else(|| {
                    io::Error::new(io::ErrorKind::NotFound, "address resolves to nothing")
                })
                .and_then(|a| TcpStream::connect_timeout(&a, Duration::from_secs(2)))
        });
        match attempt {
            Ok(s) => return Ok(s),
            Err(source) if Instant::now() >= deadline => {
                return Err(WorkerError::Connect {
                    addr: addr.to_string(),
                    source,
                })
            }
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// Node id a worker sends in its handshake (informational: the coordinator
/// names workers by connection).
pub fn worker_node_id() -> u64 {
    u64::from(std::process::id())
}

/// Runs a worker until the job is over or the coordinator is gone.
pub fn run_worker(app: &dyn App, opts: &WorkerOptions) -> Result<WorkerSummary, WorkerError> {
    let stream = connect_with_retry(&opts.coordinator, opts.connect_timeout)?;
    let _ = stream.set_nodelay(true);
    let mut conn = Connection::handshake(stream, opts.cluster)?;
    let mut core = Worker::new();
    let mut inputs = VecDeque::from([Input::Start]);
    while let Some(input) = inputs.pop_front() {
        for action in core.step(input) {
            match action {
                Action::Send(request) => inputs.push_back(conn.ask(&request)),
                Action::RunMap(_) | Action::RunReduce(_) => {
                    inputs.push_back(execute(app, &action, &opts.task));
                }
                Action::Exit(reason) => {
                    return Ok(WorkerSummary {
                        reason,
                        tasks_done: core.tasks_done(),
                    })
                }
            }
        }
    }
    unreachable!("the worker core always ends with Exit")
}

/// The worker's side of its one connection: buffered halves of the socket.
struct Connection {
    reader: BufReader<TcpStream>,
    writer: BufWriter<TcpStream>,
}

impl Connection {
    /// Exchanges hellos; a coordinator of another job or release is refused
    /// with the mismatch named.
    fn handshake(stream: TcpStream, cluster: u64) -> Result<Self, WorkerError> {
        let failed = |e: &dyn std::fmt::Display| WorkerError::Handshake(e.to_string());
        let read_half = stream.try_clone().map_err(|e| failed(&e))?;
        let mut conn = Connection {
            reader: BufReader::new(read_half),
            writer: BufWriter::new(stream),
        };
        let hello = Hello::new(PROTOCOL_VERSION, cluster, worker_node_id());
        write_frame(&mut conn.writer, &hello, MAX_FRAME_BYTES)
            .and_then(|()| conn.writer.flush().map_err(Into::into))
            .map_err(|e| failed(&e))?;
        let peer: Hello = read_frame(&mut conn.reader, MAX_FRAME_BYTES)
            .map_err(|e| failed(&e))?
            .ok_or_else(|| failed(&"coordinator closed the connection"))?;
        hello.check(&peer, |_| true).map_err(|e| failed(&e))?;
        Ok(conn)
    }

    /// Sends a request and waits for its reply (the long poll); any failure
    /// means the coordinator is gone, which is how the lab's worker learns
    /// that a job it missed the end of is over.
    fn ask(&mut self, request: &Request) -> Input {
        let sent = write_frame(&mut self.writer, request, MAX_FRAME_BYTES)
            .and_then(|()| self.writer.flush().map_err(Into::into));
        match sent.and_then(|()| read_frame::<_, Reply>(&mut self.reader, MAX_FRAME_BYTES)) {
            Ok(Some(reply)) => Input::Reply(reply),
            Ok(None) | Err(_) => Input::CoordinatorGone,
        }
    }
}
