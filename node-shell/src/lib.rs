//! Node shells: everything a node does that does not depend on how bytes,
//! files and time reach it. A shell is a pure state machine in the style of
//! the cores (`step(Input) -> Vec<Action>`, no I/O, no clock): the driver
//! feeds it bytes that arrived on connections, ticks and completed disk
//! writes, and carries out what it returns (write these bytes, persist this
//! batch, close that connection). Both drivers and the simulator run the
//! same shells, so the logic in here is exercised under simulated faults.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod admin;
pub mod client;
pub mod faults;
pub mod frame;
pub mod gate;
pub mod limits;
pub mod mr;
pub mod options;
pub mod peers;
pub mod replica;

pub use admin::{AdminReply, AdminRequest, NodeStatus};
pub use faults::{
    FaultControl, FaultFile, FaultPlan, LinkFaults, FAULTS_APPLIED_LOG, FAULTS_FILE, FAULTS_POLL_MS,
};
pub use frame::{Frame, PeerIdentity, CLIENT_NODE, DEFAULT_MAX_FRAME_BYTES};
pub use gate::{BatchId, Gated, PersistGate};
pub use limits::{ClientLimits, HANDSHAKE_TICKS, MAX_HELLO_BYTES, PEER_RESERVE};
pub use options::{NodeOptions, OptionsError, DEFAULT_CLUSTER};
pub use peers::Bootstrap;
pub use replica::{NodeAction, NodeConfig, NodeInput, ReplicaNode};

use serde::{Deserialize, Serialize};
use std::fmt;

/// A driver's handle for one connection, chosen by the driver; it must not
/// reuse one while the shell may still know it. The MapReduce shell names
/// the worker behind a connection `WorkerId(conn.0)`, so log lines about a
/// connection and about its worker carry the same number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ConnId(pub u64);

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "connection {}", self.0)
    }
}
