//! The single-server key/value service of lab 2: one machine, no
//! replication, exactly-once through the store's session table.

use crate::op::{ClientReply, Response};
use crate::session::ClientRequest;
use crate::store::KvStore;

/// Everything that can happen to the server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServerInput {
    /// A request arrived on connection `from` (a driver-chosen handle).
    Request {
        /// Where to send the reply.
        from: u64,
        /// The request.
        request: ClientRequest,
    },
}

/// What the server wants done.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServerAction {
    /// Send `reply` on connection `to`.
    Reply {
        /// The connection handle from the request.
        to: u64,
        /// The answer.
        reply: ClientReply,
    },
}

/// The lab-2 server.
#[derive(Clone, Debug, Default)]
pub struct KvServer {
    store: KvStore,
}

impl KvServer {
    /// An empty server.
    pub fn new() -> Self {
        Self::default()
    }

    /// The store (read-only).
    pub fn store(&self) -> &KvStore {
        &self.store
    }

    /// Handle one input.
    pub fn step(&mut self, input: ServerInput) -> Vec<ServerAction> {
        match input {
            ServerInput::Request { from, request } => {
                let outcome = self.store.apply(&request);
                vec![ServerAction::Reply {
                    to: from,
                    reply: ClientReply {
                        client: request.client,
                        seq: request.seq,
                        response: Response::Done(outcome),
                    },
                }]
            }
        }
    }
}
