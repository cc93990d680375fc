//! Key/value services with exactly-once semantics, as pure state machines.
//!
//! * [`KvStore`]: keys with values and versions (the 2025 labs' versioned
//!   `Get`/`Put`, and the classic `Set`/`Append`), plus a session table that
//!   makes every mutation apply exactly once however often it is retried.
//! * [`KvServer`]: the single-server service of lab 2.
//! * [`Clerk`]: the client, sans-IO: it retries on timeouts counted in
//!   ticks, remembers and follows the leader, and reports `ErrMaybe` when a
//!   retried versioned Put cannot tell whether it applied.
//! * [`Lock`]: a lock built only on versioned Get/Put.
//! * [`Rsm`]: any deterministic [`StateMachine`] replicated on `core-raft`
//!   (lab 4A); [`KvReplica`] is the replicated key/value service (lab 4B/4C),
//!   with linearizable reads through ReadIndex and snapshots at
//!   `max_raft_state` bytes.
//!
//! Like every core here, nothing in this crate performs I/O or reads a
//! clock: callers feed inputs (requests, replies, ticks) and carry out the
//! returned actions in order.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod clerk;
pub mod frame;
pub mod lock;
pub mod op;
pub mod rsm;
pub mod server;
pub mod store;
pub mod types;

pub use clerk::{Clerk, ClerkAction, ClerkConfig, ClerkInput};
pub use frame::{KvFrame, CLIENT_NODE, KV_PROTOCOL_VERSION};
pub use lock::{Lock, LockStep};
pub use op::{ClientReply, ClientRequest, Op, Outcome, Response};
pub use rsm::{NotLeader, Rsm, RsmAction, RsmConfig, RsmError, RsmInput, StateMachine};
pub use server::{KvServer, ServerAction, ServerInput};
pub use store::{KvStore, SnapshotError};
pub use types::{ClientId, Seq, Version};

/// The replicated key/value service: a [`KvStore`] on Raft.
pub type KvReplica = Rsm<KvStore>;

impl StateMachine for KvStore {
    type Op = ClientRequest;
    type Output = Outcome;

    fn apply(&mut self, op: &ClientRequest) -> Outcome {
        KvStore::apply(self, op)
    }

    fn is_read_only(&self, op: &ClientRequest) -> bool {
        op.op.is_read_only()
    }

    fn query(&self, op: &ClientRequest) -> Outcome {
        self.read(&op.op)
    }

    fn snapshot(&self) -> Vec<u8> {
        self.to_snapshot()
    }

    fn restore(&mut self, data: &[u8]) -> Result<(), String> {
        *self = KvStore::from_snapshot(data).map_err(|e| e.to_string())?;
        Ok(())
    }
}

/// The reply a replica sends a clerk for a finished submission.
pub fn reply_to(request: &ClientRequest, result: Result<Outcome, NotLeader>) -> ClientReply {
    ClientReply {
        client: request.client,
        seq: request.seq,
        response: match result {
            Ok(outcome) => Response::Done(outcome),
            Err(NotLeader { leader_hint }) => Response::WrongLeader { leader_hint },
        },
    }
}
