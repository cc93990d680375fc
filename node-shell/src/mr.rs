//! The MapReduce coordinator's node shell: [`CoordinatorShell`] wraps the
//! pure [`core_mr::Coordinator`] with everything a coordinator does that is
//! the same on every runtime — the handshake decision, framing, frame size
//! checks, which connections count as workers, and the progress and event
//! lines — so that a driver is only sockets and timers.
//!
//! A driver's duties, in order:
//!
//! 1. choose a fresh [`ConnId`] for every accepted connection and feed
//!    [`Input::Accepted`]; feed every chunk of bytes read from it as
//!    [`Input::Received`] (any chunking), its end or failure as
//!    [`Input::Closed`], and [`Input::Tick`] at the interval the core's
//!    `task_timeout_ticks` was computed for;
//! 2. carry out the returned [`Action`]s in order: append `Write` bytes to
//!    the connection's send queue; on `Close`, send what is queued (best
//!    effort: a refused peer should still read our hello) and close it,
//!    without feeding `Closed` back; show `Note` and `Progress`;
//! 3. after [`Action::Finished`], keep going for a grace period so that
//!    waiting workers are told to exit, then stop.

use core_mr::coordinator::ReassignReason;
use core_mr::coordinator::{Action as CoreAction, Input as CoreInput, JobOutcome, Progress};
use core_mr::{Coordinator, Request, WorkerId, PROTOCOL_VERSION};
use serde::Serialize;
use std::collections::BTreeMap;
use wire::{encode_frame, Decoder, Hello};

/// Largest frame either side of a MapReduce connection accepts. Tasks carry
/// only file names, so a megabyte is generous, and it bounds what a hostile
/// peer can make the coordinator buffer.
pub const MAX_FRAME_BYTES: u32 = 1024 * 1024;

/// Connections a coordinator keeps open at once; drivers close the ones
/// they accept beyond it. With [`MAX_FRAME_BYTES`] per unfinished frame
/// and [`MAX_QUEUED_BYTES`] per connection, a flood of connections costs
/// the coordinator at most about 1 GiB, whatever they send.
pub const MAX_CONNECTIONS: usize = 512;

/// Answer bytes queued for one connection beyond which the coordinator
/// closes it: a worker reads each answer before it asks again, so a queue
/// this long means the other end does not read at all.
pub const MAX_QUEUED_BYTES: usize = MAX_FRAME_BYTES as usize;

/// Node id the coordinator presents in its handshake (workers ignore it).
pub const COORDINATOR_NODE: u64 = 0;

pub use crate::ConnId;

/// Everything that can happen to the coordinator's shell.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// One unit of time passed (the core's only clock).
    Tick,
    /// A new connection; the shell answers with its hello.
    Accepted {
        /// The driver's name for it.
        conn: ConnId,
    },
    /// Bytes arrived on a connection, in whatever chunking the socket gave.
    Received {
        /// Where they arrived.
        conn: ConnId,
        /// The bytes.
        bytes: Vec<u8>,
    },
    /// The connection ended (end of stream or an I/O error).
    Closed {
        /// Which one.
        conn: ConnId,
    },
}

/// Every effect the shell asks its driver to carry out, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Queue these bytes (whole frames) on the connection.
    Write {
        /// The recipient.
        conn: ConnId,
        /// Encoded frames.
        bytes: Vec<u8>,
    },
    /// Send what is queued on the connection, then close it. The shell has
    /// already forgotten it: later input about it is ignored.
    Close {
        /// Which one.
        conn: ConnId,
        /// Why, for the driver's own logs (the `Note` before it says it too).
        reason: String,
    },
    /// An event line for the operator: a refused or dropped connection, a
    /// task taken back from a worker, a failed job.
    Note(String),
    /// The task counts changed; emitted only on a change.
    Progress(Progress),
    /// The job ended; emitted once. Keep serving for a grace period (late
    /// requests are answered `Exit`), then stop.
    Finished(JobOutcome),
}

/// Where a connection stands in its conversation.
struct Conn {
    decoder: Decoder,
    /// Whether its hello was accepted: only then is it a worker the core
    /// knows, and only then does its end become `Disconnected`.
    joined: bool,
}

/// The coordinator core plus connection handling. Feed it [`Input`]s through
/// [`CoordinatorShell::step`]; carry out the [`Action`]s in order.
pub struct CoordinatorShell {
    core: Coordinator,
    hello: Hello,
    conns: BTreeMap<ConnId, Conn>,
    /// The progress last reported, so that only changes are.
    shown: Progress,
}

impl CoordinatorShell {
    /// A shell around `core` for the job `cluster`: workers must present
    /// this cluster id and [`PROTOCOL_VERSION`] in their hello.
    pub fn new(core: Coordinator, cluster: u64) -> Self {
        let shown = core.progress();
        CoordinatorShell {
            core,
            hello: Hello::new(PROTOCOL_VERSION, cluster, COORDINATOR_NODE),
            conns: BTreeMap::new(),
            shown,
        }
    }

    /// The single entry point: apply one input, return the effects.
    pub fn step(&mut self, input: Input) -> Vec<Action> {
        let mut out = Vec::new();
        match input {
            Input::Tick => self.core_step(CoreInput::Tick, &mut out),
            Input::Accepted { conn } => self.on_accepted(conn, &mut out),
            Input::Received { conn, bytes } => self.on_received(conn, &bytes, &mut out),
            Input::Closed { conn } => self.forget(conn, &mut out),
        }
        self.report_progress(&mut out);
        out
    }

    /// The current task counts (what the last `Progress` action said).
    pub fn progress(&self) -> Progress {
        self.core.progress()
    }

    /// How the job ended, once it has.
    pub fn outcome(&self) -> Option<&JobOutcome> {
        self.core.outcome()
    }

    /// Connections the shell knows (handshaking or joined).
    pub fn connections(&self) -> usize {
        self.conns.len()
    }

    fn on_accepted(&mut self, conn: ConnId, out: &mut Vec<Action>) {
        // A reused id means the driver lost track of the old connection;
        // end it as if it had closed, so its worker's task is not stranded.
        self.forget(conn, out);
        let fresh = Conn {
            decoder: Decoder::new(MAX_FRAME_BYTES),
            joined: false,
        };
        self.conns.insert(conn, fresh);
        let hello = self.hello.clone();
        self.write(conn, &hello, out);
    }

    fn on_received(&mut self, conn: ConnId, bytes: &[u8], out: &mut Vec<Action>) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return; // Bytes that were in flight when we closed it.
        };
        c.decoder.push(bytes);
        // One frame at a time: each may end the connection.
        while let Some(c) = self.conns.get_mut(&conn) {
            let joined = c.joined;
            let frame = if joined {
                c.decoder
                    .next_message::<Request>()
                    .map(|r| r.map(Frame::Request))
            } else {
                c.decoder
                    .next_message::<Hello>()
                    .map(|h| h.map(Frame::Hello))
            };
            match frame {
                Ok(None) => return,
                Ok(Some(Frame::Hello(peer))) => self.on_hello(conn, &peer, out),
                Ok(Some(Frame::Request(request))) => {
                    let worker = WorkerId(conn.0);
                    self.core_step(CoreInput::Request { worker, request }, out);
                }
                Err(e) if joined => self.close(conn, format!("{}: {e}", WorkerId(conn.0)), out),
                Err(e) => self.close(conn, format!("{conn}: bad handshake: {e}"), out),
            }
        }
    }

    fn on_hello(&mut self, conn: ConnId, peer: &Hello, out: &mut Vec<Action>) {
        match self.hello.check(peer, |_| true) {
            Ok(()) => {
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.joined = true;
                }
                tracing::debug!(%conn, node = peer.node, "worker joined");
            }
            Err(e) => {
                out.push(Action::Note(format!("refused {conn}: {e}")));
                self.conns.remove(&conn);
                out.push(Action::Close {
                    conn,
                    reason: e.to_string(),
                });
            }
        }
    }

    /// Drops a connection whose stream cannot be used any more.
    fn close(&mut self, conn: ConnId, what: String, out: &mut Vec<Action>) {
        out.push(Action::Note(format!("dropping {what}")));
        out.push(Action::Close { conn, reason: what });
        self.forget(conn, out);
    }

    /// Forgets a connection; a worker's end lets the core re-issue its task.
    fn forget(&mut self, conn: ConnId, out: &mut Vec<Action>) {
        if let Some(c) = self.conns.remove(&conn) {
            if c.joined {
                let worker = WorkerId(conn.0);
                self.core_step(CoreInput::Disconnected { worker }, out);
            }
        }
    }

    fn core_step(&mut self, input: CoreInput, out: &mut Vec<Action>) {
        for action in self.core.step(input) {
            match action {
                CoreAction::Reply { worker, reply } => self.write(ConnId(worker.0), &reply, out),
                CoreAction::Reassigned { task, from, reason } => {
                    let why = match reason {
                        ReassignReason::TimedOut => "timed out",
                        ReassignReason::Disconnected => "worker disconnected",
                        ReassignReason::Abandoned => "abandoned by its worker",
                        ReassignReason::Failed => "failed",
                    };
                    out.push(Action::Note(format!(
                        "{task} taken back from {from} ({why}); will be re-issued"
                    )));
                }
                CoreAction::Finished(outcome) => {
                    self.report_progress(out);
                    if let JobOutcome::Failed { task, error } = &outcome {
                        out.push(Action::Note(format!(
                            "job FAILED: {task} failed repeatedly: {error}"
                        )));
                    }
                    out.push(Action::Finished(outcome));
                }
            }
        }
    }

    fn write<T: Serialize>(&self, conn: ConnId, msg: &T, out: &mut Vec<Action>) {
        match encode_frame(msg, MAX_FRAME_BYTES) {
            Ok(bytes) => out.push(Action::Write { conn, bytes }),
            Err(e) => out.push(Action::Note(format!("cannot send to {conn}: {e}"))),
        }
    }

    fn report_progress(&mut self, out: &mut Vec<Action>) {
        let now = self.core.progress();
        if now != self.shown {
            self.shown = now;
            out.push(Action::Progress(now));
        }
    }
}

/// A decoded frame: the hello while handshaking, requests after.
enum Frame {
    Hello(Hello),
    Request(Request),
}
