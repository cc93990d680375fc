//! The two versions of the sharded service, as the simulator sees them:
//! which state machines the controller and the groups run, how a client's
//! request enters a group, and how a configuration is read back.

use core_kv::{ClerkOp, ClientRequest, KvStore, Op, Outcome, Sessioned, Stale, StateMachine};
use core_shard::classic::{self, CtrlOp, CtrlReply};
use core_shard::driven::{self, CONFIG_KEY};
use core_shard::{GroupId, GroupReply, ShardConfig, ShardData, ShardId, Sharding};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fmt::Debug;

use super::endpoints::AgentHost;
use super::world::Endpoint;

/// One version of the sharded service.
pub trait Flavor: Sized + 'static {
    /// The groups' state machine.
    type Group: StateMachine<Output = GroupReply> + 'static;
    /// The controller service's operations (inside client requests).
    type CtrlOp: ClerkOp<Self::CtrlOut> + Serialize + DeserializeOwned + Clone + Debug + 'static;
    /// The controller service's outputs.
    type CtrlOut: Serialize + DeserializeOwned + Clone + Debug + 'static;
    /// The controller service's state machine.
    type Ctrl: StateMachine<Op = ClientRequest<Self::CtrlOp>, Output = Self::CtrlOut> + 'static;
    /// Shards and key hash.
    const SHARDING: Sharding;
    /// Servers of the controller service (1: one unreplicated server).
    const CTRL_SERVERS: usize;
    /// A fresh controller state machine.
    fn new_ctrl() -> Self::Ctrl;
    /// A fresh state machine of group `gid`.
    fn new_group(gid: GroupId) -> Self::Group;
    /// A client's request as a group operation.
    fn client_op(req: ClientRequest) -> <Self::Group as StateMachine>::Op;
    /// The shards a group's state serves.
    fn serving(group: &Self::Group) -> Vec<ShardId>;
    /// A shard's data in a group's state.
    fn shard_data(group: &Self::Group, shard: ShardId) -> Option<&ShardData>;
    /// The client request inside a group operation, if it is one.
    fn client_request(op: &<Self::Group as StateMachine>::Op) -> Option<&ClientRequest>;
    /// The controller operation that reads the newest configuration.
    fn latest_query() -> Self::CtrlOp;
    /// The configuration in a controller answer, if it holds one.
    fn config_from(out: &Self::CtrlOut) -> Option<ShardConfig>;
    /// What runs beside server `server` of group `gid` (the classic
    /// agent), if anything.
    fn group_agent(_gid: GroupId, _server: usize, _seed: u64) -> Option<Box<dyn Endpoint<Self>>> {
        None
    }
}

/// The classic service: a replicated controller, self-migrating groups.
pub struct Classic;

impl Flavor for Classic {
    type Group = classic::Group;
    type CtrlOp = CtrlOp;
    type CtrlOut = Result<CtrlReply, Stale>;
    type Ctrl = Sessioned<classic::Controller>;
    const SHARDING: Sharding = Sharding::CLASSIC;
    const CTRL_SERVERS: usize = 3;

    fn new_ctrl() -> Self::Ctrl {
        Sessioned::new(classic::Controller::new(Self::SHARDING.shards))
    }

    fn new_group(gid: GroupId) -> Self::Group {
        classic::Group::new(gid, Self::SHARDING)
    }

    fn client_op(req: ClientRequest) -> classic::GroupOp {
        classic::GroupOp::Client(req)
    }

    fn serving(group: &Self::Group) -> Vec<ShardId> {
        group
            .shard_states()
            .into_iter()
            .filter(|(_, st)| st.serves())
            .map(|(s, _)| s)
            .collect()
    }

    fn shard_data(group: &Self::Group, shard: ShardId) -> Option<&ShardData> {
        group.shard_data(shard)
    }

    fn client_request(op: &classic::GroupOp) -> Option<&ClientRequest> {
        match op {
            classic::GroupOp::Client(req) => Some(req),
            _ => None,
        }
    }

    fn latest_query() -> CtrlOp {
        CtrlOp::Query(None)
    }

    fn config_from(out: &Self::CtrlOut) -> Option<ShardConfig> {
        match out {
            Ok(CtrlReply::Config(c)) => Some(c.clone()),
            _ => None,
        }
    }

    fn group_agent(gid: GroupId, server: usize, seed: u64) -> Option<Box<dyn Endpoint<Self>>> {
        Some(Box::new(AgentHost::new(gid, server, seed)))
    }
}

/// The 2025 service: the configuration in one key/value server, groups
/// moved by controller libraries.
pub struct Driven;

impl Flavor for Driven {
    type Group = driven::Group;
    type CtrlOp = Op;
    type CtrlOut = Outcome;
    type Ctrl = KvStore;
    const SHARDING: Sharding = Sharding::LAB_2025;
    const CTRL_SERVERS: usize = 1;

    fn new_ctrl() -> KvStore {
        KvStore::new()
    }

    fn new_group(gid: GroupId) -> Self::Group {
        driven::Group::new(gid, Self::SHARDING)
    }

    fn client_op(req: ClientRequest) -> driven::GroupOp {
        driven::GroupOp::Client(req)
    }

    fn serving(group: &Self::Group) -> Vec<ShardId> {
        group.serving()
    }

    fn shard_data(group: &Self::Group, shard: ShardId) -> Option<&ShardData> {
        group.shard_data(shard)
    }

    fn client_request(op: &driven::GroupOp) -> Option<&ClientRequest> {
        match op {
            driven::GroupOp::Client(req) => Some(req),
            _ => None,
        }
    }

    fn latest_query() -> Op {
        Op::Get {
            key: CONFIG_KEY.into(),
        }
    }

    fn config_from(out: &Outcome) -> Option<ShardConfig> {
        match out {
            Outcome::Value { value, .. } => ShardConfig::from_text(value).ok(),
            _ => None,
        }
    }
}
