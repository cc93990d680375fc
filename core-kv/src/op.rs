//! Operations, their outcomes, and the client protocol messages.

use crate::rsm::NotLeader;
use crate::types::{ClientId, Seq, Version};
use core_raft::NodeId;
use serde::{Deserialize, Serialize};

/// A key/value operation. The versioned `Get`/`Put` are the 2025 labs';
/// `Set` and `Append` are the classic labs' unconditional Put and Append.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Op {
    /// Read a key: `Value { value, version }` or `ErrNoKey`.
    Get {
        /// The key.
        key: String,
    },
    /// Install `value` if the key is at `version` (0 creates it): `Ok`,
    /// `ErrVersion`, or `ErrNoKey` (absent key, version > 0).
    Put {
        /// The key.
        key: String,
        /// The new value.
        value: String,
        /// The version the caller believes the key has.
        version: Version,
    },
    /// Classic unconditional Put: `Ok`.
    Set {
        /// The key.
        key: String,
        /// The new value.
        value: String,
    },
    /// Classic Append to the key's value (an absent key counts as ""): `Ok`.
    Append {
        /// The key.
        key: String,
        /// What to append.
        value: String,
    },
}

impl Op {
    /// The key the operation touches.
    pub fn key(&self) -> &str {
        match self {
            Op::Get { key }
            | Op::Put { key, .. }
            | Op::Set { key, .. }
            | Op::Append { key, .. } => key,
        }
    }

    /// True for operations that never change state.
    pub fn is_read_only(&self) -> bool {
        matches!(self, Op::Get { .. })
    }
}

/// The result of an operation, as the 6.5840 labs define it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Outcome {
    /// A Get found the key.
    Value {
        /// Its value.
        value: String,
        /// Its version.
        version: Version,
    },
    /// A mutation was applied.
    Ok,
    /// The key does not exist (Get, or Put with version > 0).
    ErrNoKey,
    /// The key is at another version; nothing changed.
    ErrVersion,
    /// A retried versioned Put saw `ErrVersion`: the first attempt may or may
    /// not have been applied. Only the clerk produces it.
    ErrMaybe,
}

/// A server's answer to a [`crate::ClientRequest`], as a clerk sees it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ClientReply<Out = Outcome> {
    /// Echo of the request's client.
    pub client: ClientId,
    /// Echo of the request's number.
    pub seq: Seq,
    /// What happened.
    pub response: Response<Out>,
}

impl<Out> ClientReply<Out> {
    /// The reply to request `seq` of `client`, from a replica's answer.
    pub fn new(client: ClientId, seq: Seq, result: Result<Out, NotLeader>) -> Self {
        ClientReply {
            client,
            seq,
            response: match result {
                Ok(outcome) => Response::Done(outcome),
                Err(NotLeader { leader_hint }) => Response::WrongLeader { leader_hint },
            },
        }
    }
}

/// What a server says about a request.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Response<Out = Outcome> {
    /// The operation took effect (or was found already applied) with this outcome.
    Done(Out),
    /// This server is not the leader; try `leader_hint` if given. The request
    /// may or may not take effect later; retrying it is safe.
    WrongLeader {
        /// The server this one believes leads.
        leader_hint: Option<NodeId>,
    },
    /// This server holds as many requests as it may (its limit on requests
    /// in flight): the request was not taken and did not take effect. Retry
    /// the same server after a back-off.
    Busy,
}

/// The key/value store answers stale duplicates `ErrMaybe` itself (lab 2's
/// rule), so every outcome is an answer.
impl crate::session::SessionOutput for Outcome {
    type Answer = Outcome;

    fn into_answer(self) -> Option<Outcome> {
        Some(self)
    }
}
