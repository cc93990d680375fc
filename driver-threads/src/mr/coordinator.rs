//! The coordinator on a mio event loop: one thread, non-blocking sockets,
//! ticks from the poll timeout. Everything a connection's bytes mean is
//! decided by the pure shell (`node_shell::mr`, hosted by
//! [`CoordinatorHost`]); this loop accepts, reads, writes, closes and ticks.

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use mr_exec::addr::resolve;
use mr_exec::error::CoordinatorError;
use mr_exec::host::{CoordinatorHost, JobSummary, SocketAction};
use mr_exec::options::CoordinatorOptions;
use node_shell::mr::{ConnId, Input, MAX_CONNECTIONS, MAX_QUEUED_BYTES};
use std::collections::HashMap;
use std::io::{self, Read};
use std::time::{Duration, Instant};

const LISTENER: Token = Token(0);

/// Bytes read from a socket per `Received` input.
const READ_CHUNK_BYTES: usize = 16 * 1024;

/// One accepted connection: its socket and what waits to be written.
struct Conn {
    stream: TcpStream,
    out: Vec<u8>,
}

/// The event loop's state: the listener, the connections, the clock.
struct EventLoop<'a> {
    opts: &'a CoordinatorOptions,
    host: CoordinatorHost,
    poll: Poll,
    listener: TcpListener,
    conns: HashMap<Token, Conn>,
    next_token: usize,
    next_tick: Instant,
    stop_at: Option<Instant>,
    /// Accepting stopped on an error: try again at the next tick.
    accept_again: bool,
}

/// Runs a coordinator until the job ends plus the grace period.
pub fn run_coordinator(opts: &CoordinatorOptions) -> Result<JobSummary, CoordinatorError> {
    let host = CoordinatorHost::new(opts)?;
    let mut event_loop = EventLoop::bind(opts, host)?;
    event_loop.run()?;
    event_loop.host.into_result()
}

/// The shell's name for the connection behind a mio token (the same number).
fn conn_id(token: Token) -> ConnId {
    ConnId(token.0 as u64)
}

fn token(conn: ConnId) -> Token {
    Token(conn.0 as usize)
}

impl<'a> EventLoop<'a> {
    /// Binds the listener, announces it and registers it for accepting.
    fn bind(
        opts: &'a CoordinatorOptions,
        mut host: CoordinatorHost,
    ) -> Result<Self, CoordinatorError> {
        let addr = resolve(&opts.listen)?;
        let mut listener = TcpListener::bind(addr).map_err(|source| CoordinatorError::Bind {
            addr: opts.listen.clone(),
            source,
        })?;
        host.listening(listener.local_addr()?, "threads")?;
        let poll = Poll::new()?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        Ok(EventLoop {
            opts,
            host,
            poll,
            listener,
            conns: HashMap::new(),
            next_token: 1,
            next_tick: Instant::now() + opts.tick,
            stop_at: None,
            accept_again: false,
        })
    }

    /// Serves until the grace period after the job's end is over.
    fn run(&mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(256);
        while self.stop_at.is_none_or(|t| Instant::now() < t) {
            match self.poll.poll(&mut events, Some(self.timeout())) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept()?,
                    token if event.is_readable() => self.read(token),
                    // Writable: the flush below resumes a blocked write.
                    _ => {}
                }
            }
            if self.accept_again {
                self.accept()?;
            }
            self.tick_if_due();
            self.flush_all();
            if self.stop_at.is_none() {
                self.stop_at = self.host.finished_at().map(|t| t + self.opts.grace);
            }
        }
        Ok(())
    }

    /// How long the poll may sleep: until the next tick or the stop time.
    fn timeout(&self) -> Duration {
        let wake = match self.stop_at {
            Some(stop) => stop.min(self.next_tick),
            None => self.next_tick,
        };
        wake.saturating_duration_since(Instant::now())
    }

    /// Accepts every pending connection and lets the shell greet each.
    fn accept(&mut self) -> io::Result<()> {
        let mut accepted = Vec::new();
        let room = MAX_CONNECTIONS.saturating_sub(self.conns.len());
        let ended = crate::net::accept_all(
            &self.listener,
            &self.poll,
            &mut self.next_token,
            room,
            |token, stream, peer| {
                tracing::debug!(conn = token.0, %peer, "accepted");
                accepted.push((token, stream));
            },
        )?;
        self.accept_again = ended.retry;
        if ended.refused > 0 {
            tracing::warn!(
                "closed {} new connections at once: {MAX_CONNECTIONS} are open, the limit",
                ended.refused
            );
        }
        for (token, stream) in accepted {
            self.conns.insert(
                token,
                Conn {
                    stream,
                    out: Vec::new(),
                },
            );
            self.step(Input::Accepted {
                conn: conn_id(token),
            });
        }
        Ok(())
    }

    /// Hands what the socket has to the shell, chunk by chunk, until it
    /// would block, ends, or the shell closes it.
    fn read(&mut self, token: Token) {
        let mut buf = [0u8; READ_CHUNK_BYTES];
        while let Some(conn) = self.conns.get_mut(&token) {
            match conn.stream.read(&mut buf) {
                Ok(0) => return self.closed(token),
                Ok(n) => {
                    let bytes = buf[..n].to_vec();
                    self.step(Input::Received {
                        conn: conn_id(token),
                        bytes,
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return self.closed(token),
            }
        }
    }

    /// Fires the core's clock if a tick is due; a late loop skips missed ticks.
    fn tick_if_due(&mut self) {
        let now = Instant::now();
        if now < self.next_tick {
            return;
        }
        self.step(Input::Tick);
        self.next_tick += self.opts.tick;
        if self.next_tick < now {
            self.next_tick = now + self.opts.tick;
        }
    }

    /// Writes what the sockets take now (the rest waits for a writable
    /// event); a socket that fails is closed, which may queue more bytes
    /// for others (a re-issued task), so it repeats until none fails.
    fn flush_all(&mut self) {
        loop {
            let broken: Vec<Token> = self
                .conns
                .iter_mut()
                .filter_map(|(t, c)| {
                    let failed =
                        !c.out.is_empty() && crate::net::flush(&mut c.stream, &mut c.out).is_err();
                    failed.then_some(*t)
                })
                .collect();
            if broken.is_empty() {
                return;
            }
            for token in broken {
                self.closed(token);
            }
        }
    }

    /// The peer went away or its socket failed: drop it and tell the shell.
    fn closed(&mut self, token: Token) {
        if let Some(mut conn) = self.conns.remove(&token) {
            let _ = self.poll.registry().deregister(&mut conn.stream);
        }
        self.step(Input::Closed {
            conn: conn_id(token),
        });
    }

    /// Feeds the shell and carries out its socket work.
    fn step(&mut self, input: Input) {
        for action in self.host.step(input) {
            match action {
                SocketAction::Write { conn, bytes } => {
                    let Some(c) = self.conns.get_mut(&token(conn)) else {
                        continue;
                    };
                    c.out.extend_from_slice(&bytes);
                    if c.out.len() > MAX_QUEUED_BYTES {
                        let reason = "it does not read its answers";
                        self.close(token(conn), reason);
                        self.step(Input::Closed { conn });
                    }
                }
                SocketAction::Close { conn, reason } => self.close(token(conn), &reason),
            }
        }
    }

    /// Closes a connection the shell gave up on, after a last attempt to
    /// send what is queued (a refused peer should still read our hello).
    fn close(&mut self, token: Token, reason: &str) {
        if let Some(mut conn) = self.conns.remove(&token) {
            tracing::debug!(conn = token.0, reason, "closing");
            let _ = crate::net::flush(&mut conn.stream, &mut conn.out);
            let _ = self.poll.registry().deregister(&mut conn.stream);
        }
    }
}
