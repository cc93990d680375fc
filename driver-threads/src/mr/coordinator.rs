//! The coordinator on a mio event loop: one thread, non-blocking sockets,
//! ticks from the poll timeout.

use core_mr::coordinator::Input;
use core_mr::{Request, WorkerId};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use mr_exec::addr::{resolve, write_addr_file};
use mr_exec::error::CoordinatorError;
use mr_exec::options::{CoordinatorOptions, MAX_FRAME_BYTES};
use mr_exec::shell::{CoordinatorShell, JobSummary};
use std::collections::HashMap;
use std::io::{self, Read};
use std::net::SocketAddr;
use std::time::Instant;
use wire::{Decoder, Hello};

const LISTENER: Token = Token(0);

struct Conn {
    stream: TcpStream,
    peer: SocketAddr,
    decoder: Decoder,
    out: Vec<u8>,
    greeted: bool,
}

/// Runs a coordinator until the job ends plus the grace period.
pub fn run_coordinator(opts: &CoordinatorOptions) -> Result<JobSummary, CoordinatorError> {
    let mut shell = CoordinatorShell::new(opts)?;
    let addr = resolve(&opts.listen)?;
    let mut listener = TcpListener::bind(addr).map_err(|source| CoordinatorError::Bind {
        addr: opts.listen.clone(),
        source,
    })?;
    let local = listener.local_addr()?;
    shell.note(&format!(
        "listening on {local} (threads runtime); {} map task(s), {} reduce task(s)",
        opts.files.len(),
        opts.n_reduce
    ));
    if let Some(p) = &opts.addr_file {
        write_addr_file(p, local)?;
    }
    let mut poll = Poll::new()?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    let mut events = Events::with_capacity(256);
    let mut conns: HashMap<Token, Conn> = HashMap::new();
    let mut next_token = 1usize;
    let mut next_tick = Instant::now() + opts.tick;
    let mut stop_at: Option<Instant> = None;
    loop {
        let now = Instant::now();
        if stop_at.is_some_and(|t| now >= t) {
            break;
        }
        let mut wake = next_tick;
        if let Some(t) = stop_at {
            wake = wake.min(t);
        }
        match poll.poll(&mut events, Some(wake.saturating_duration_since(now))) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        }
        let mut outgoing = Vec::new();
        let mut closed = Vec::new();
        for event in events.iter() {
            if event.token() == LISTENER {
                crate::net::accept_all(
                    &listener,
                    &poll,
                    &mut next_token,
                    |token, stream, peer| {
                        conns.insert(
                            token,
                            Conn {
                                stream,
                                peer,
                                decoder: Decoder::new(MAX_FRAME_BYTES),
                                out: shell.hello_frame(),
                                greeted: false,
                            },
                        );
                    },
                )?;
                continue;
            }
            let token = event.token();
            let Some(conn) = conns.get_mut(&token) else {
                continue;
            };
            if event.is_readable() && !read_conn(conn, token, &mut shell, &mut outgoing) {
                closed.push(token);
            }
        }
        if Instant::now() >= next_tick {
            outgoing.extend(shell.step(Input::Tick));
            next_tick += opts.tick;
            if next_tick < Instant::now() {
                next_tick = Instant::now() + opts.tick;
            }
        }
        for token in closed {
            if let Some(mut conn) = conns.remove(&token) {
                let _ = poll.registry().deregister(&mut conn.stream);
                if conn.greeted {
                    outgoing.extend(shell.step(Input::Disconnected {
                        worker: WorkerId(token.0 as u64),
                    }));
                }
            }
        }
        for (worker, frame) in outgoing {
            if let Some(conn) = conns.get_mut(&Token(worker.0 as usize)) {
                conn.out.extend_from_slice(&frame);
            }
        }
        // Flush every connection with pending bytes; keep writable interest
        // (edge-triggered) so a blocked write resumes.
        let mut broken = Vec::new();
        for (token, conn) in conns.iter_mut() {
            if !conn.out.is_empty() && flush(conn).is_err() {
                broken.push(*token);
            }
        }
        for token in broken {
            if let Some(mut conn) = conns.remove(&token) {
                let _ = poll.registry().deregister(&mut conn.stream);
                if conn.greeted {
                    for (w, f) in shell.step(Input::Disconnected {
                        worker: WorkerId(token.0 as u64),
                    }) {
                        if let Some(c) = conns.get_mut(&Token(w.0 as usize)) {
                            c.out.extend_from_slice(&f);
                        }
                    }
                }
            }
        }
        if shell.finished() && stop_at.is_none() {
            stop_at = Some(Instant::now() + opts.grace);
        }
    }
    shell.result()
}

/// Reads what is available and feeds complete messages to the core.
/// Returns false when the connection should be closed.
fn read_conn(
    conn: &mut Conn,
    token: Token,
    shell: &mut CoordinatorShell,
    outgoing: &mut Vec<(core_mr::WorkerId, Vec<u8>)>,
) -> bool {
    let mut buf = [0u8; 16 * 1024];
    let mut open = true;
    loop {
        match conn.stream.read(&mut buf) {
            Ok(0) => {
                open = false;
                break;
            }
            Ok(n) => conn.decoder.push(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => {
                open = false;
                break;
            }
        }
    }
    let worker = WorkerId(token.0 as u64);
    loop {
        if !conn.greeted {
            match conn.decoder.next_message::<Hello>() {
                Ok(None) => break,
                Ok(Some(hello)) => {
                    if let Err(e) = shell.check_hello(&hello) {
                        shell.note(&format!("refused connection from {}: {e}", conn.peer));
                        let _ = flush(conn);
                        return false;
                    }
                    conn.greeted = true;
                    tracing::debug!(%worker, node = hello.node, peer = %conn.peer, "worker connected");
                }
                Err(e) => {
                    shell.note(&format!(
                        "dropping connection from {}: bad handshake: {e}",
                        conn.peer
                    ));
                    return false;
                }
            }
        } else {
            match conn.decoder.next_message::<Request>() {
                Ok(None) => break,
                Ok(Some(request)) => {
                    outgoing.extend(shell.step(Input::Request { worker, request }))
                }
                Err(e) => {
                    shell.note(&format!("dropping {worker} ({}): {e}", conn.peer));
                    return false;
                }
            }
        }
    }
    open
}

/// Writes pending bytes until done or the socket would block.
fn flush(conn: &mut Conn) -> io::Result<()> {
    crate::net::flush(&mut conn.stream, &mut conn.out)
}
