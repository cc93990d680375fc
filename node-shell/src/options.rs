//! How to run one replica node: the settings both drivers take, and the
//! shell and replica configurations derived from them.

use crate::frame::DEFAULT_MAX_FRAME_BYTES;
use crate::limits::ClientLimits;
use crate::peers::Bootstrap;
use crate::replica::NodeConfig;
use core_kv::RsmConfig;
use core_raft::{Config, Member, NodeId};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use thiserror::Error;

/// Cluster id used when none is given (the course's number).
pub const DEFAULT_CLUSTER: u64 = 6824;

/// Settings of one replica node, the same for both drivers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeOptions {
    /// This replica's id (not 0). It names the node in the cluster's
    /// membership for as long as the node is a member.
    pub id: u64,
    /// The address it listens on (and gives peers and clients).
    pub listen: SocketAddr,
    /// The bootstrap peers, id → address, this node included: the first
    /// start of these nodes forms a cluster (see [`Bootstrap::Peers`]).
    /// Empty for a node started to join an existing cluster, which waits
    /// until an operator adds it. Once the log holds a membership, the log
    /// wins over this list.
    pub peers: BTreeMap<u64, SocketAddr>,
    /// Where the Raft log and snapshots live.
    pub data_dir: PathBuf,
    /// Cluster id checked in every handshake.
    pub cluster: u64,
    /// The service's protocol version, checked in every handshake, so that
    /// a node or client of another service or release is refused by name
    /// rather than misreading frames. The library's own services use
    /// numbers below 100 (MapReduce 1, the key/value service
    /// `core_kv::KV_PROTOCOL_VERSION`); an embedded state machine picks its
    /// own from 100 up and bumps it when its operations change shape, or
    /// when it upgrades to a release of this library whose frames changed.
    pub protocol: u32,
    /// Milliseconds per Raft tick.
    pub tick_ms: u64,
    /// Snapshot once the Raft log exceeds this many bytes, or half the
    /// latest snapshot's size if that is more (`None`: never; see
    /// `core_kv::SnapshotRule::ScaleWithState`).
    pub max_raft_state: Option<usize>,
    /// Largest frame accepted or sent on any connection.
    pub max_frame_bytes: u32,
    /// What the node holds for its clients at most (requests in flight,
    /// unfinished frames, queued answers, connections).
    pub limits: ClientLimits,
    /// Obey the fault-injection control file in the data directory
    /// ([`crate::faults`]): for tests of real clusters only, off by default.
    pub fault_injection: bool,
}

/// Options that cannot run.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum OptionsError {
    /// Node id 0 marks clients.
    #[error("node id 0 is reserved for clients; ids start at 1")]
    ZeroId,
    /// The id is not among the peers.
    #[error("node id {id} is not among the peers given ({ids})")]
    BadId {
        /// The id given.
        id: u64,
        /// The peers' ids.
        ids: String,
    },
    /// The listening address differs from the one the peers list gives.
    #[error("node {id} listens on {listen} but the peers list gives it {listed}")]
    AddressMismatch {
        /// The id.
        id: u64,
        /// Its listening address.
        listen: SocketAddr,
        /// The address in the peers list.
        listed: SocketAddr,
    },
    /// An address appears twice.
    #[error("address {0} is listed twice")]
    DuplicateAddress(SocketAddr),
    /// A zero tick interval.
    #[error("the tick interval must be at least 1 ms")]
    ZeroTick,
}

impl NodeOptions {
    /// Replica `id` of a cluster whose bootstrap peers are `servers`,
    /// numbered 1, 2, ... in list order (a shorthand for
    /// [`NodeOptions::with_peers`]), storing its state in `data_dir`,
    /// speaking `protocol`; default cluster id, 10 ms ticks, a snapshot
    /// per MiB of log.
    pub fn new(id: u64, servers: Vec<SocketAddr>, data_dir: PathBuf, protocol: u32) -> Self {
        let peers = (1..).zip(servers).collect();
        Self::with_peers(id, peers, data_dir, protocol)
    }

    /// Replica `id` among the bootstrap peers `peers` (id → address).
    pub fn with_peers(
        id: u64,
        peers: BTreeMap<u64, SocketAddr>,
        data_dir: PathBuf,
        protocol: u32,
    ) -> Self {
        let listen = peers
            .get(&id)
            .copied()
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
        NodeOptions {
            peers,
            ..Self::joining(id, listen, data_dir, protocol)
        }
    }

    /// Replica `id` listening on `listen`, started to join an existing
    /// cluster: it waits until an operator adds it.
    pub fn joining(id: u64, listen: SocketAddr, data_dir: PathBuf, protocol: u32) -> Self {
        NodeOptions {
            id,
            listen,
            peers: BTreeMap::new(),
            data_dir,
            cluster: DEFAULT_CLUSTER,
            protocol,
            tick_ms: core_raft::DEFAULT_TICK_MS,
            max_raft_state: Some(1 << 20),
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
            limits: ClientLimits::default(),
            fault_injection: false,
        }
    }

    /// Check for mistakes a user can fix.
    pub fn validate(&self) -> Result<(), OptionsError> {
        if self.id == 0 {
            return Err(OptionsError::ZeroId);
        }
        if !self.peers.is_empty() {
            let Some(listed) = self.peers.get(&self.id) else {
                let ids: Vec<String> = self.peers.keys().map(u64::to_string).collect();
                return Err(OptionsError::BadId {
                    id: self.id,
                    ids: ids.join(", "),
                });
            };
            if *listed != self.listen {
                return Err(OptionsError::AddressMismatch {
                    id: self.id,
                    listen: self.listen,
                    listed: *listed,
                });
            }
            let addrs: Vec<&SocketAddr> = self.peers.values().collect();
            for (i, a) in addrs.iter().enumerate() {
                if addrs[..i].contains(a) {
                    return Err(OptionsError::DuplicateAddress(**a));
                }
            }
        }
        if self.tick_ms == 0 {
            return Err(OptionsError::ZeroTick);
        }
        Ok(())
    }

    /// This node's listening address.
    pub fn address(&self) -> SocketAddr {
        self.listen
    }

    /// The shell's configuration, for the data directory's `incarnation`.
    pub fn node_config(&self, incarnation: u64) -> NodeConfig {
        let bootstrap = if self.peers.is_empty() {
            Bootstrap::Join
        } else {
            Bootstrap::Peers(
                self.peers
                    .iter()
                    .map(|(id, a)| (NodeId(*id), a.to_string()))
                    .collect(),
            )
        };
        NodeConfig {
            id: NodeId(self.id),
            identity: Member {
                addr: self.listen.to_string(),
                incarnation,
            },
            bootstrap,
            cluster: self.cluster,
            protocol: self.protocol,
            max_frame_bytes: self.max_frame_bytes,
            limits: self.limits.within_frame(self.max_frame_bytes),
        }
    }

    /// The replica's configuration with Raft's defaults. `rng_seed` feeds
    /// election jitter; drivers pass something that differs between runs.
    /// Its voters are left empty: the shell decides them (see
    /// [`Bootstrap`]).
    pub fn rsm_config(&self, rng_seed: u64) -> RsmConfig {
        let mut raft = Config::new(NodeId(self.id), Vec::new());
        raft.rng_seed = rng_seed;
        // An AppendEntries' entries and a snapshot chunk travel in one
        // frame beside the message's other fields (a membership at most a
        // few kB): half a frame leaves room.
        let half_frame = (self.max_frame_bytes as usize / 2).max(1);
        raft.snapshot_chunk_bytes = raft.snapshot_chunk_bytes.min(half_frame);
        raft.max_bytes_per_message = raft.max_bytes_per_message.min(half_frame);
        RsmConfig {
            max_raft_state: self.max_raft_state,
            // Bounded write amplification whatever the state's size; the
            // lab's fixed rule is for the simulated lab ports.
            snapshot_rule: core_kv::SnapshotRule::ScaleWithState,
            // A large state is encoded on a worker thread, not between
            // heartbeats and client replies.
            capture_off_loop: true,
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
    fn a_plain_list_numbers_the_peers_in_order() {
        let o = NodeOptions::new(2, addrs(3), PathBuf::from("d"), 1);
        o.validate().unwrap();
        assert_eq!(o.address(), addrs(3)[1]);
        let c = o.node_config(77);
        assert_eq!(c.identity.incarnation, 77);
        assert_eq!(c.identity.addr, addrs(3)[1].to_string());
        let Bootstrap::Peers(peers) = c.bootstrap else {
            panic!("{:?}", c.bootstrap)
        };
        assert_eq!(peers.keys().map(|p| p.0).collect::<Vec<_>>(), vec![1, 2, 3]);
        assert_eq!(o.rsm_config(7).raft.id, NodeId(2));
        let j = NodeOptions::joining(9, addrs(1)[0], PathBuf::from("d"), 1);
        j.validate().unwrap();
        assert_eq!(j.node_config(1).bootstrap, Bootstrap::Join);
    }

    #[test]
    fn mistakes_are_named() {
        let bad = NodeOptions::new(4, addrs(3), PathBuf::from("d"), 1);
        assert_eq!(
            bad.validate(),
            Err(OptionsError::BadId {
                id: 4,
                ids: "1, 2, 3".into()
            })
        );
        let mut dup = NodeOptions::new(1, addrs(2), PathBuf::from("d"), 1);
        dup.peers.insert(2, addrs(1)[0]);
        assert!(matches!(
            dup.validate(),
            Err(OptionsError::DuplicateAddress(_))
        ));
        let zero = NodeOptions::joining(0, addrs(1)[0], PathBuf::from("d"), 1);
        assert_eq!(zero.validate(), Err(OptionsError::ZeroId));
        let mut moved = NodeOptions::new(1, addrs(2), PathBuf::from("d"), 1);
        moved.listen = addrs(3)[2];
        assert!(matches!(
            moved.validate(),
            Err(OptionsError::AddressMismatch { .. })
        ));
    }
}
