//! What a shard group answers, in both protocols: the outcome of a client's
//! operation, a refusal because the group does not serve the key now, or the
//! answer to a migration step. Migration answers echo the shard and the
//! configuration number they are about, so that whoever asked needs no
//! memory of its own requests to act on them.

use crate::types::{ConfigNum, ShardId};
use core_kv::{KvStore, Outcome};
use serde::{Deserialize, Serialize};

/// A shard's contents as they move between groups: its keys (with values
/// and versions) together with its client sessions, so that a request
/// applied before the move is recognised as a duplicate after it.
pub type ShardData = KvStore;

/// A shard group's answer to one operation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum GroupReply {
    /// A client operation's outcome.
    Kv(Outcome),
    /// This group does not serve the key's shard at this point of its log:
    /// the client should fetch a newer configuration and retry there.
    WrongGroup,
    /// A shard's contents (the answer to a pull or a freeze), as of `num`.
    Shard {
        /// Which shard.
        shard: ShardId,
        /// The configuration the shard is handed over in.
        num: ConfigNum,
        /// Keys and sessions.
        data: ShardData,
    },
    /// A migration step took effect, or had already. It names the step, so
    /// that a late or duplicated acknowledgement of one step (an install)
    /// can never pass for another's (a delete).
    Ack {
        /// Which shard.
        shard: ShardId,
        /// The configuration of the step.
        num: ConfigNum,
        /// Which step.
        step: MigrationStep,
    },
    /// The classic group has applied configuration `num` (now or before).
    Configured {
        /// The group's configuration number after the step.
        num: ConfigNum,
    },
    /// A migration step the group will not carry out.
    Refused {
        /// Which shard.
        shard: ShardId,
        /// The configuration of the step.
        num: ConfigNum,
        /// Why.
        why: Refusal,
    },
}

/// The migration steps a group acknowledges.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MigrationStep {
    /// The new owner installed the shard's data (classic `Insert`, 2025
    /// `InstallShard`).
    Install,
    /// The old owner deleted its frozen copy.
    Delete,
    /// Classic only: the new owner recorded that the old copy is gone.
    Confirm,
}

/// Why a group refuses a migration step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Refusal {
    /// The group has not reached that configuration yet: ask again later.
    NotYet {
        /// The group's configuration (classic) or the shard's number (2025).
        current: ConfigNum,
    },
    /// The step belongs to a configuration the group has moved past: it was
    /// done already, or it was superseded. Never retry it.
    Stale {
        /// The group's configuration (classic) or the shard's number (2025).
        current: ConfigNum,
    },
    /// The group does not hold the shard (it was handed on and deleted).
    NotHeld,
}
