//! The sharded key/value service of the 6.5840 labs as pure state machines:
//! keys are divided among shards, shards among replica groups, and a
//! controller moves shards between groups as groups join and leave, while
//! every client operation still applies exactly once and every answer is
//! linearizable.
//!
//! Both versions of the lab are here, sharing the configuration, the
//! per-shard data with its client sessions, the groups' answers and the
//! clerk:
//!
//! * [`classic`] (2021 and 2024): a replicated [`classic::Controller`]
//!   keeps the numbered configurations; a [`classic::Group`] takes them
//!   into its log one at a time, and its [`classic::Agent`] pulls gained
//!   shards and has the old owners garbage-collect them.
//! * [`driven`] (2025): the [`driven::Controller`] is a client library that
//!   keeps the configuration in a key/value service and moves each shard
//!   itself (freeze, install, delete); a [`driven::Group`] keeps a
//!   configuration number per shard instead of a configuration.
//!
//! Nothing here performs I/O, reads a clock or draws global randomness. A
//! host (a driver, or the simulator in `model-tests`) does the rest. Its
//! duties, in order:
//!
//! 1. Pick one [`Sharding`] for the service and give the same to every
//!    controller, group and clerk.
//! 2. Run each group replica as `core_kv::Rsm<G>` (with `G` a
//!    [`classic::Group`] or a [`driven::Group`], built with its group id),
//!    exactly as a key/value replica is run: feed it ticks, peer messages
//!    and submissions, carry out its actions in order. The classic
//!    controller runs the same way as
//!    `Rsm<Sessioned<classic::Controller>>`; the 2025 one needs only a
//!    key/value service (`core_kv::KvServer` or a `KvReplica`).
//! 3. Classic only: run a [`classic::Agent`] beside every group replica.
//!    Tick it with the replica's role and applied state; carry its actions
//!    out (ask the controller, send to another group's servers, submit to
//!    the local replica) and hand it the answers.
//! 4. 2025 only: drive a [`driven::Controller`] for each administrative
//!    call, routing its actions to the key/value service and the groups
//!    and feeding back their answers and ticks until it reports `Done`.
//! 5. Give each client a [`ShardClerk`]: carry out its sends, answer its
//!    `NeedConfig` with the newest configuration from the controller, feed
//!    it replies and ticks.
//!
//! The same inputs in the same order give the same actions: every map that
//! reaches an output is ordered, and the clerk's only randomness is its
//! seed.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod classic;
mod clerk;
mod config;
pub mod driven;
mod reply;
mod sharding;
mod types;

pub use clerk::{ShardClerk, ShardClerkAction, ShardClerkConfig, ShardClerkInput};
pub use config::{ConfigTextError, ShardConfig};
pub use reply::{GroupReply, MigrationStep, Refusal, ShardData};
pub use sharding::{KeyHash, Sharding};
pub use types::{ConfigNum, GroupId, ShardId};
