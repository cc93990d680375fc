//! How to run one replica node: the settings both drivers take, and the
//! shell and replica configurations derived from them.

use crate::frame::DEFAULT_MAX_FRAME_BYTES;
use crate::replica::NodeConfig;
use core_kv::RsmConfig;
use core_raft::{Config, NodeId};
use std::net::SocketAddr;
use std::path::PathBuf;
use thiserror::Error;

/// Cluster id used when none is given (the course's number).
pub const DEFAULT_CLUSTER: u64 = 6824;

/// Settings of one replica node, the same for both drivers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeOptions {
    /// This replica's id, 1-based: its address is `servers[id - 1]`.
    pub id: u64,
    /// Every replica's address, in id order.
    pub servers: Vec<SocketAddr>,
    /// Where the Raft log and snapshots live.
    pub data_dir: PathBuf,
    /// Cluster id checked in every handshake.
    pub cluster: u64,
    /// The service's protocol version, checked in every handshake, so that
    /// a node or client of another service or release is refused by name
    /// rather than misreading frames. The library's own services use
    /// numbers below 100 (MapReduce 1, the key/value service
    /// `core_kv::KV_PROTOCOL_VERSION`); an embedded state machine picks its
    /// own from 100 up and bumps it when its operations change shape.
    pub protocol: u32,
    /// Milliseconds per Raft tick.
    pub tick_ms: u64,
    /// Snapshot once the Raft log exceeds this many bytes (`None`: never).
    pub max_raft_state: Option<usize>,
    /// Largest frame accepted or sent on any connection.
    pub max_frame_bytes: u32,
}

/// Options that cannot run.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum OptionsError {
    /// No addresses were given.
    #[error("no replica addresses given")]
    NoServers,
    /// The id is not a position in the address list.
    #[error("replica id {id} is not in 1..={n} (the position of this node's address in the list)")]
    BadId {
        /// The id given.
        id: u64,
        /// How many addresses were given.
        n: usize,
    },
    /// An address appears twice.
    #[error("address {0} is listed twice")]
    DuplicateAddress(SocketAddr),
    /// A zero tick interval.
    #[error("the tick interval must be at least 1 ms")]
    ZeroTick,
}

impl NodeOptions {
    /// Replica `id` of the cluster at `servers`, storing its state in
    /// `data_dir`, speaking `protocol`; default cluster id, 10 ms ticks, a
    /// snapshot per MiB of log.
    pub fn new(id: u64, servers: Vec<SocketAddr>, data_dir: PathBuf, protocol: u32) -> Self {
        NodeOptions {
            id,
            servers,
            data_dir,
            cluster: DEFAULT_CLUSTER,
            protocol,
            tick_ms: core_raft::DEFAULT_TICK_MS,
            max_raft_state: Some(1 << 20),
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
        }
    }

    /// Check for mistakes a user can fix.
    pub fn validate(&self) -> Result<(), OptionsError> {
        if self.servers.is_empty() {
            return Err(OptionsError::NoServers);
        }
        if self.id == 0 || self.id > self.servers.len() as u64 {
            return Err(OptionsError::BadId {
                id: self.id,
                n: self.servers.len(),
            });
        }
        for (i, a) in self.servers.iter().enumerate() {
            if self.servers[..i].contains(a) {
                return Err(OptionsError::DuplicateAddress(*a));
            }
        }
        if self.tick_ms == 0 {
            return Err(OptionsError::ZeroTick);
        }
        Ok(())
    }

    /// This node's listening address. Call after [`NodeOptions::validate`].
    pub fn address(&self) -> SocketAddr {
        self.servers[(self.id - 1) as usize]
    }

    /// Every other replica with its address.
    pub fn peers(&self) -> Vec<(NodeId, SocketAddr)> {
        self.members()
            .into_iter()
            .zip(self.servers.iter().copied())
            .filter(|(id, _)| id.0 != self.id)
            .collect()
    }

    /// Every replica's id, in order.
    pub fn members(&self) -> Vec<NodeId> {
        (1..=self.servers.len() as u64).map(NodeId).collect()
    }

    /// The shell's configuration.
    pub fn node_config(&self) -> NodeConfig {
        NodeConfig {
            id: NodeId(self.id),
            members: self.members(),
            cluster: self.cluster,
            protocol: self.protocol,
            max_frame_bytes: self.max_frame_bytes,
        }
    }

    /// The replica's configuration with Raft's defaults. `rng_seed` feeds
    /// election jitter; drivers pass something that differs between runs.
    pub fn rsm_config(&self, rng_seed: u64) -> RsmConfig {
        let mut raft = Config::new(NodeId(self.id), self.members());
        raft.rng_seed = rng_seed;
        RsmConfig {
            max_raft_state: self.max_raft_state,
            ..RsmConfig::new(raft)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs(n: u16) -> Vec<SocketAddr> {
        (0..n)
            .map(|i| SocketAddr::from(([127, 0, 0, 1], 7000 + i)))
            .collect()
    }

    #[test]
    fn ids_are_positions_in_the_address_list() {
        let o = NodeOptions::new(2, addrs(3), PathBuf::from("d"), 1);
        o.validate().unwrap();
        assert_eq!(o.address(), addrs(3)[1]);
        let peers: Vec<u64> = o.peers().iter().map(|(id, _)| id.0).collect();
        assert_eq!(peers, vec![1, 3]);
        assert_eq!(o.node_config().members.len(), 3);
        assert_eq!(o.rsm_config(7).raft.id, NodeId(2));
    }

    #[test]
    fn mistakes_are_named() {
        let bad = NodeOptions::new(4, addrs(3), PathBuf::from("d"), 1);
        assert_eq!(bad.validate(), Err(OptionsError::BadId { id: 4, n: 3 }));
        let mut dup = NodeOptions::new(1, addrs(2), PathBuf::from("d"), 1);
        dup.servers[1] = dup.servers[0];
        assert!(matches!(
            dup.validate(),
            Err(OptionsError::DuplicateAddress(_))
        ));
        let none = NodeOptions::new(1, vec![], PathBuf::from("d"), 1);
        assert_eq!(none.validate(), Err(OptionsError::NoServers));
    }
}
