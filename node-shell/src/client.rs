//! The client shell: a client of a replicated service as a pure machine.
//! It runs the sans-IO `core_kv::Clerk` (leader finding, retries, request
//! numbering for the replicas' session tables) and does everything else a
//! client driver would: encodes requests as frames, decodes each
//! connection's replies within the frame limit, drops answers that are not
//! for a waiting request, and says when a connection spoke garbage. A
//! driver only connects, writes, reads and ticks.
//!
//! The driver's duties:
//!
//! 1. Build the shell with a client id that never repeats with a restarted
//!    sequence (wall clock, process id and a counter, say).
//! 2. Feed [`ClientInput::Invoke`] with an operation; carry out the actions.
//! 3. [`ClientAction::Send`]: write the bytes to that replica, first opening
//!    a connection to [`ClientShell::address`] and writing
//!    [`ClientShell::hello`] on it if there is none. If that fails, feed
//!    [`ClientInput::Closed`].
//!
//! Replicas are numbered by the client, 1, 2, ... in the order it learns
//! their addresses: first the ones it was given, then any leader a replica
//! names by address in a refusal. So a client given one member's address
//! finds the leader, and keeps working as members come and go.
//! 4. Feed [`ClientInput::Received`] with bytes read from a replica
//!    (any chunking), [`ClientInput::Closed`] when its connection ends, and
//!    [`ClientInput::Tick`] every [`CLIENT_TICK_MS`].
//! 5. [`ClientAction::Close`]: drop that connection. [`ClientAction::Done`]:
//!    the operation finished with this answer.

use crate::frame::{Frame, CLIENT_NODE};
use core_kv::{
    Clerk, ClerkAction, ClerkConfig, ClerkInput, ClerkOp, ClientId, ClientReply, Response, Seq,
    SessionOutput, SessionRequest, StateMachine,
};
use core_raft::NodeId;
use std::collections::BTreeMap;
use wire::{encode_frame, Decoder, Hello};

/// Milliseconds per client tick.
pub const CLIENT_TICK_MS: u64 = 10;

/// Ticks of silence before the clerk tries another replica (200 ms).
const RETRY_TICKS: u64 = 20;

/// The command a client of `S` sends (the operation inside its request).
pub type Command<S> = <<S as StateMachine>::Op as SessionRequest>::Command;

/// The answer a client of `S` gets back.
pub type Answer<S> = <<S as StateMachine>::Output as SessionOutput>::Answer;

/// Everything that can happen to a client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientInput<C> {
    /// Run this operation (operations run one at a time, in order).
    Invoke(C),
    /// Bytes arrived from replica `server` (the client's own numbering).
    Received {
        /// The replica.
        server: u64,
        /// The bytes, in any chunking.
        bytes: Vec<u8>,
    },
    /// The connection to `server` ended, or could not be opened.
    Closed {
        /// The replica.
        server: u64,
    },
    /// One client tick.
    Tick,
}

/// What a client wants done.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientAction<A> {
    /// Write these bytes to replica `server` (opening a connection, hello
    /// first, if there is none).
    Send {
        /// The replica.
        server: u64,
        /// One request frame.
        bytes: Vec<u8>,
    },
    /// Drop the connection to `server`: it sent something that is not an
    /// answer.
    Close {
        /// The replica.
        server: u64,
    },
    /// The operation finished.
    Done(A),
}

/// A client of one cluster of replicas of `S`.
pub struct ClientShell<S>
where
    S: StateMachine,
    S::Op: SessionRequest,
    S::Output: SessionOutput,
{
    clerk: Clerk<Command<S>, Answer<S>>,
    /// Replica `i` listens at `addresses[i - 1]`.
    addresses: Vec<String>,
    hello: Vec<u8>,
    max_frame_bytes: u32,
    decoders: BTreeMap<u64, Decoder>,
    /// The replica the last request went to.
    target: Option<u64>,
}

impl<S> ClientShell<S>
where
    S: StateMachine,
    S::Op: SessionRequest,
    S::Output: SessionOutput,
    Command<S>: ClerkOp<Answer<S>>,
{
    /// A client `client` of the replicas at `addresses` (at least one; any
    /// members of the cluster) of cluster `cluster`, speaking `protocol`.
    pub fn new(
        client: ClientId,
        addresses: Vec<String>,
        cluster: u64,
        protocol: u32,
        max_frame_bytes: u32,
    ) -> Self {
        assert!(!addresses.is_empty(), "a client needs at least one replica");
        let hello = Hello::new(protocol, cluster, CLIENT_NODE);
        ClientShell {
            clerk: Clerk::new(ClerkConfig {
                client,
                servers: (1..=addresses.len() as u64).map(NodeId).collect(),
                retry_ticks: RETRY_TICKS,
                seed: client.0,
            }),
            addresses,
            hello: encode_frame(&hello, max_frame_bytes).expect("a hello fits in any frame"),
            max_frame_bytes,
            decoders: BTreeMap::new(),
            target: None,
        }
    }

    /// The frame to write first on every new connection.
    pub fn hello(&self) -> &[u8] {
        &self.hello
    }

    /// The replica the last request went to: where its answer will come
    /// from.
    pub fn target(&self) -> Option<u64> {
        self.target
    }

    /// Where replica `server` listens.
    pub fn address(&self, server: u64) -> Option<&str> {
        let i = usize::try_from(server.checked_sub(1)?).ok()?;
        self.addresses.get(i).map(String::as_str)
    }

    /// How many replicas the client knows the address of.
    pub fn known(&self) -> usize {
        self.addresses.len()
    }

    /// The client's number for the replica at `addr`, learning it if new.
    fn number(&mut self, addr: String) -> NodeId {
        if let Some(i) = self.addresses.iter().position(|a| *a == addr) {
            return NodeId(i as u64 + 1);
        }
        self.addresses.push(addr);
        let id = NodeId(self.addresses.len() as u64);
        self.clerk.add_server(id);
        id
    }

    /// The replica this client believes leads, if known.
    pub fn leader(&self) -> Option<u64> {
        self.clerk.leader().map(|n| n.0)
    }

    /// Feed one input; returns the actions to carry out, in order.
    pub fn step(&mut self, input: ClientInput<Command<S>>) -> Vec<ClientAction<Answer<S>>> {
        let mut out = Vec::new();
        match input {
            ClientInput::Invoke(op) => {
                let actions = self.clerk.step(ClerkInput::Invoke(op));
                self.carry_out(actions, &mut out);
            }
            ClientInput::Tick => {
                let actions = self.clerk.step(ClerkInput::Tick);
                self.carry_out(actions, &mut out);
            }
            ClientInput::Closed { server } => {
                self.decoders.remove(&server);
            }
            ClientInput::Received { server, bytes } => self.received(server, &bytes, &mut out),
        }
        out
    }

    /// Decode answers from `server`; hand each to the clerk.
    fn received(&mut self, server: u64, bytes: &[u8], out: &mut Vec<ClientAction<Answer<S>>>) {
        let max = self.max_frame_bytes;
        let decoder = self
            .decoders
            .entry(server)
            .or_insert_with(|| Decoder::new(max));
        decoder.push(bytes);
        loop {
            let Some(decoder) = self.decoders.get_mut(&server) else {
                return;
            };
            let (id, result, leader_addr) = match decoder.next_message::<Frame<S::Op, S::Output>>()
            {
                Ok(None) => return,
                Ok(Some(Frame::Reply {
                    id,
                    result,
                    leader_addr,
                })) => (id, result, leader_addr),
                Ok(Some(Frame::Busy { id })) => {
                    let reply = ClientReply {
                        client: self.clerk.client(),
                        seq: Seq(id),
                        response: Response::Busy,
                    };
                    let from = NodeId(server);
                    let actions = self.clerk.step(ClerkInput::Reply { from, reply });
                    self.carry_out(actions, out);
                    continue;
                }
                Ok(Some(_)) | Err(_) => {
                    self.decoders.remove(&server);
                    out.push(ClientAction::Close { server });
                    return;
                }
            };
            // An output that is not an answer (a stale duplicate's) has no
            // one waiting for it.
            let result = match result {
                Ok(output) => match output.into_answer() {
                    Some(answer) => Ok(answer),
                    None => continue,
                },
                // The replica's ids mean nothing to this client; the
                // leader's address does.
                Err(_) => Err(core_kv::NotLeader {
                    leader_hint: leader_addr.map(|a| self.number(a)),
                }),
            };
            let reply = ClientReply::new(self.clerk.client(), Seq(id), result);
            let from = NodeId(server);
            let actions = self.clerk.step(ClerkInput::Reply { from, reply });
            self.carry_out(actions, out);
        }
    }

    fn carry_out(
        &mut self,
        actions: Vec<ClerkAction<Command<S>, Answer<S>>>,
        out: &mut Vec<ClientAction<Answer<S>>>,
    ) {
        for action in actions {
            match action {
                ClerkAction::Done { outcome, .. } => out.push(ClientAction::Done(outcome)),
                ClerkAction::Send { to, request } => {
                    let id = request.seq.0;
                    let op = S::Op::from_request(request);
                    let frame: Frame<S::Op, S::Output> = Frame::Request { id, op };
                    match encode_frame(&frame, self.max_frame_bytes) {
                        Ok(bytes) => {
                            self.target = Some(to.0);
                            out.push(ClientAction::Send {
                                server: to.0,
                                bytes,
                            });
                        }
                        // The clerk's retry timer will give up on it in
                        // time; the operation cannot be sent at all.
                        Err(e) => tracing::warn!("request not sent: {e}"),
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core_kv::{KvStore, NotLeader, Op, Outcome};

    fn shell() -> ClientShell<KvStore> {
        let addrs = ["a:1", "a:2", "a:3"].map(String::from).to_vec();
        ClientShell::new(ClientId(7), addrs, 1, 2, 1 << 20)
    }

    fn reply(id: u64, result: Result<Outcome, NotLeader>) -> Vec<u8> {
        reply_at(id, result, None)
    }

    fn reply_at(id: u64, result: Result<Outcome, NotLeader>, leader: Option<&str>) -> Vec<u8> {
        let frame: Frame<core_kv::ClientRequest, Outcome> = Frame::Reply {
            id,
            result,
            leader_addr: leader.map(String::from),
        };
        encode_frame(&frame, 1 << 20).unwrap()
    }

    #[test]
    fn a_refusal_moves_on_and_an_answer_in_any_chunking_finishes() {
        let mut c = shell();
        let get = Op::Get { key: "k".into() };
        let first = c.step(ClientInput::Invoke(get));
        let [ClientAction::Send { server: s1, .. }] = first.as_slice() else {
            panic!("{first:?}")
        };
        // The replica's id for the leader (9) is not the client's number
        // for it: the address is what counts.
        let refused = reply_at(
            1,
            Err(NotLeader {
                leader_hint: Some(NodeId(9)),
            }),
            Some("a:3"),
        );
        let next = c.step(ClientInput::Received {
            server: *s1,
            bytes: refused,
        });
        assert!(
            next.iter()
                .any(|a| matches!(a, ClientAction::Send { server: 3, .. })),
            "follows the hint: {next:?}"
        );
        let ok = reply(1, Ok(Outcome::ErrNoKey));
        let (a, b) = ok.split_at(3);
        assert!(c
            .step(ClientInput::Received {
                server: 3,
                bytes: a.to_vec()
            })
            .is_empty());
        let done = c.step(ClientInput::Received {
            server: 3,
            bytes: b.to_vec(),
        });
        assert_eq!(done, vec![ClientAction::Done(Outcome::ErrNoKey)]);
        assert_eq!(c.leader(), Some(3));
    }

    #[test]
    fn a_leader_named_at_a_new_address_is_learned_and_followed() {
        let mut c = shell();
        let first = c.step(ClientInput::Invoke(Op::Get { key: "k".into() }));
        let [ClientAction::Send { server, .. }] = first.as_slice() else {
            panic!("{first:?}")
        };
        let refused = reply_at(
            1,
            Err(NotLeader {
                leader_hint: Some(NodeId(4)),
            }),
            Some("b:4"),
        );
        let next = c.step(ClientInput::Received {
            server: *server,
            bytes: refused,
        });
        assert!(
            next.iter()
                .any(|a| matches!(a, ClientAction::Send { server: 4, .. })),
            "follows the hint to the new member: {next:?}"
        );
        assert_eq!(c.address(4), Some("b:4"));
        assert_eq!(c.known(), 4);
    }

    #[test]
    fn garbage_closes_only_that_connection() {
        let mut c = shell();
        c.step(ClientInput::Invoke(Op::Get { key: "k".into() }));
        let out = c.step(ClientInput::Received {
            server: 2,
            bytes: vec![0, 0, 0, 1, 0xff],
        });
        assert_eq!(out, vec![ClientAction::Close { server: 2 }]);
    }
}
