//! Key/value services with exactly-once semantics, as pure state machines.
//!
//! * [`KvStore`]: keys with values and versions (the 2025 labs' versioned
//!   `Get`/`Put`, and the classic `Set`/`Append`), plus a session table that
//!   makes every mutation apply exactly once however often it is retried.
//! * [`Sessions`] and [`Sessioned`]: that session table as a layer any
//!   state machine can sit under.
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
pub mod lock;
pub mod op;
pub mod rsm;
pub mod server;
pub mod session;
pub mod snapshot;
pub mod store;
pub mod types;

pub use clerk::{Clerk, ClerkAction, ClerkConfig, ClerkInput, ClerkOp};
/// Log positions, as [`StateMachine::apply`] is told them.
pub use core_raft::LogIndex;
pub use lock::{Lock, LockStep};
pub use op::{ClientReply, Op, Outcome, Response};
pub use rsm::{
    ChangeOutcome, ClusterChange, NotLeader, Rsm, RsmAction, RsmConfig, RsmError, RsmInput,
    SnapshotJob, SnapshotRule, StateMachine,
};
pub use server::{KvServer, ServerAction, ServerInput};
pub use session::{
    Admission, ClientRequest, Session, SessionOutput, SessionRequest, Sessioned, Sessions, Stale,
};
pub use store::{mutation_rule, read_rule, KvStore, SnapshotError};
pub use types::{ClientId, Seq, Version};

/// The replicated key/value service: a [`KvStore`] on Raft.
pub type KvReplica = Rsm<KvStore>;

/// Version of the key/value service's protocol, carried in the connection
/// handshake. 2: frames of the generic replica node (`node-shell`), with
/// request ids instead of whole requests echoed in replies. 3: Raft
/// snapshots carry the membership and log entries may hold one. 4: node
/// identities (incarnations) and operator requests. 5: snapshots travel in
/// chunks. 6: a replica may answer
/// a request `Busy` (at its limit of requests in flight). A node or client of another version is refused with a message
/// naming both.
pub const KV_PROTOCOL_VERSION: u32 = 6;
