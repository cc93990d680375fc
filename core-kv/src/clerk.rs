//! The clerk: a sans-IO client that finds the leader, retries with timeouts
//! counted in ticks, and numbers its requests for the servers' session
//! tables. It is generic over the service's operations and outputs; for the
//! key/value service (the defaults) it also turns an ambiguous retried Put
//! into `ErrMaybe` ([`ClerkOp`]).

use crate::op::{ClientReply, Op, Outcome, Response};
use crate::session::ClientRequest;
use crate::types::{ClientId, Seq};
use core_raft::rng::SplitMix64;
use core_raft::NodeId;
use std::collections::VecDeque;

/// How a clerk behaves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClerkConfig {
    /// This client's id; unique among all clients of a service.
    pub client: ClientId,
    /// The servers to try (one for the single-server service).
    pub servers: Vec<NodeId>,
    /// Ticks to wait for an answer before trying the next server.
    pub retry_ticks: u64,
    /// Seed for the first server to try.
    pub seed: u64,
}

/// An operation a clerk can run: how its answer reads after the clerk had
/// to resend it. Most operations keep their answer (implement the trait
/// with no body); the key/value store's versioned Put follows lab 2's rule.
pub trait ClerkOp<Out>: Clone {
    /// The outcome to report for this operation, which was sent more than
    /// once before `outcome` arrived.
    fn after_resend(&self, outcome: Out) -> Out {
        outcome
    }
}

impl ClerkOp<Outcome> for Op {
    /// A resent versioned Put that finds the version moved on may have moved
    /// it itself (lab 2's `ErrMaybe` rule).
    fn after_resend(&self, outcome: Outcome) -> Outcome {
        match (self, outcome) {
            (Op::Put { .. }, Outcome::ErrVersion) => Outcome::ErrMaybe,
            (_, o) => o,
        }
    }
}

/// Everything that can happen to a clerk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClerkInput<O = Op, Out = Outcome> {
    /// Perform an operation. Operations run one at a time, in order.
    Invoke(O),
    /// A server answered.
    Reply {
        /// The server.
        from: NodeId,
        /// Its answer.
        reply: ClientReply<Out>,
    },
    /// A clock tick.
    Tick,
}

/// What a clerk wants done.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClerkAction<O = Op, Out = Outcome> {
    /// Send a request to a server.
    Send {
        /// The server.
        to: NodeId,
        /// The request.
        request: ClientRequest<O>,
    },
    /// An invoked operation finished.
    Done {
        /// The operation.
        op: O,
        /// Its outcome.
        outcome: Out,
    },
}

#[derive(Clone, Debug)]
struct Pending<O> {
    op: O,
    seq: Seq,
    /// Requests sent for this operation beyond the first.
    resends: u32,
    /// Index into `servers` of the current target.
    target: usize,
    ticks_left: u64,
    /// The next send waits for `ticks_left` to run out (backing off).
    delayed: bool,
    /// Servers that refused this operation since the last back-off. A
    /// refusal's hint never leads back to one of them, so two stale
    /// servers that name each other (or one with no idea and one naming
    /// it) cannot hold the clerk between them: each round visits every
    /// server.
    refused: std::collections::BTreeSet<usize>,
}

/// A clerk. With the defaults it speaks the key/value service; any service
/// whose state machine sits under sessions can use it with its own
/// operation and output types.
#[derive(Clone, Debug)]
pub struct Clerk<O = Op, Out = Outcome> {
    config: ClerkConfig,
    rng: SplitMix64,
    seq: Seq,
    leader: Option<usize>,
    pending: Option<Pending<O>>,
    queue: VecDeque<O>,
    out: Vec<ClerkAction<O, Out>>,
}

impl<O: ClerkOp<Out>, Out> Clerk<O, Out> {
    /// A clerk with nothing in flight. `config.servers` must not be empty.
    pub fn new(config: ClerkConfig) -> Self {
        assert!(
            !config.servers.is_empty(),
            "a clerk needs at least one server"
        );
        Clerk {
            rng: SplitMix64::new(config.seed),
            seq: Seq(0),
            leader: None,
            pending: None,
            queue: VecDeque::new(),
            out: Vec::new(),
            config,
        }
    }

    /// This clerk's id.
    pub fn client(&self) -> ClientId {
        self.config.client
    }

    /// True if an operation is in flight or queued.
    pub fn busy(&self) -> bool {
        self.pending.is_some() || !self.queue.is_empty()
    }

    /// The server believed to lead, if known.
    pub fn leader(&self) -> Option<NodeId> {
        self.leader.map(|i| self.config.servers[i])
    }

    /// Also try `server` from now on (a client that learned a new member's
    /// address). Known servers are not added twice.
    pub fn add_server(&mut self, server: NodeId) {
        if !self.config.servers.contains(&server) {
            self.config.servers.push(server);
        }
    }

    /// Feed one input; returns the actions to perform.
    pub fn step(&mut self, input: ClerkInput<O, Out>) -> Vec<ClerkAction<O, Out>> {
        match input {
            ClerkInput::Invoke(op) => {
                self.queue.push_back(op);
                if self.pending.is_none() {
                    self.start_next();
                }
            }
            ClerkInput::Tick => self.tick(),
            ClerkInput::Reply { from, reply } => self.on_reply(from, reply),
        }
        std::mem::take(&mut self.out)
    }

    fn start_next(&mut self) {
        let Some(op) = self.queue.pop_front() else {
            return;
        };
        self.seq.0 += 1;
        let target = self
            .leader
            .unwrap_or_else(|| self.rng.next_u64() as usize % self.config.servers.len());
        self.pending = Some(Pending {
            op,
            seq: self.seq,
            resends: 0,
            target,
            ticks_left: 0,
            delayed: false,
            refused: std::collections::BTreeSet::new(),
        });
        self.send();
    }

    fn send(&mut self) {
        let client = self.config.client;
        let retry = self.config.retry_ticks;
        let p = self
            .pending
            .as_mut()
            .expect("send with an operation in flight");
        p.ticks_left = retry;
        let request = ClientRequest {
            client,
            seq: p.seq,
            op: p.op.clone(),
        };
        let to = self.config.servers[p.target];
        self.out.push(ClerkAction::Send { to, request });
    }

    /// Move to another server and send again: the hinted one, else the
    /// next in order. After a refusal, the next server is one that has not
    /// refused since the last pause, and it is tried at once; once every
    /// server has refused, the clerk pauses half the retry interval before
    /// the next round. Without the pause, servers that each name another
    /// as leader (stale hints during a partition, or from removed members)
    /// would bounce the clerk between them at network speed.
    fn resend(&mut self, next: Option<usize>, refused: bool) {
        let n = self.config.servers.len();
        let p = self
            .pending
            .as_mut()
            .expect("resend with an operation in flight");
        p.resends += 1;
        if !refused {
            // A timeout already waited a whole retry interval.
            p.refused.clear();
            p.target = match next {
                Some(i) if i != p.target => i,
                _ => (p.target + 1) % n,
            };
            self.send();
            return;
        }
        p.refused.insert(p.target);
        let untried = |i: &usize| !p.refused.contains(i);
        let after_target = (1..n).map(|k| (p.target + k) % n).find(untried);
        match next.filter(untried).or(after_target) {
            Some(i) => {
                p.target = i;
                self.send();
            }
            None => {
                // A whole round of refusals: no leader right now. Pause,
                // then start the next round with the next server.
                p.refused.clear();
                p.target = (p.target + 1) % n;
                p.delayed = true;
                p.ticks_left = (self.config.retry_ticks / 2).max(1);
            }
        }
    }

    fn tick(&mut self) {
        let Some(p) = self.pending.as_mut() else {
            return;
        };
        p.ticks_left = p.ticks_left.saturating_sub(1);
        if p.ticks_left > 0 {
            return;
        }
        if p.delayed {
            p.delayed = false;
            self.send();
        } else {
            // Silence: the request or its answer was lost, or the server is
            // gone. Forget the leader guess and try the next server.
            self.leader = None;
            self.resend(None, false);
        }
    }

    fn on_reply(&mut self, from: NodeId, reply: ClientReply<Out>) {
        let Some(p) = &self.pending else {
            return;
        };
        if reply.client != self.config.client || reply.seq != p.seq {
            return; // An answer to an earlier attempt or another clerk.
        }
        let Some(from_index) = self.config.servers.iter().position(|s| *s == from) else {
            return;
        };
        match reply.response {
            Response::WrongLeader { .. } if from_index != p.target => {
                // A late refusal from a server this clerk already left: the
                // current attempt is still in flight. Acting on it would
                // start another attempt for every stale refusal (a storm
                // under message duplication).
            }
            Response::WrongLeader { leader_hint } => {
                self.leader = None;
                let hint =
                    leader_hint.and_then(|h| self.config.servers.iter().position(|s| *s == h));
                let hint = hint.filter(|h| *h != from_index);
                self.resend(hint, true);
            }
            Response::Busy if from_index != p.target => {} // Late, as above.
            Response::Busy => {
                // The request was refused unseen, so the next send is not a
                // resend (a Put keeps its exact answer). Back off a random
                // part of half the retry interval, so that the clients a
                // loaded server turned away do not all return at once.
                self.leader = Some(from_index);
                let spread = (self.config.retry_ticks / 2).max(1);
                let ticks = 1 + self.rng.next_u64() % spread;
                let p = self.pending.as_mut().expect("checked above");
                p.delayed = true;
                p.ticks_left = ticks;
            }
            Response::Done(outcome) => {
                self.leader = Some(from_index);
                let p = self.pending.take().expect("checked above");
                let outcome = if p.resends > 0 {
                    p.op.after_resend(outcome)
                } else {
                    outcome
                };
                self.out.push(ClerkAction::Done { op: p.op, outcome });
                self.start_next();
            }
        }
    }
}
