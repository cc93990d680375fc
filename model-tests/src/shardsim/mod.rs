//! Simulation of the sharded key/value service (`core-shard`): the
//! controller service and every shard group each run in a service
//! [`World`](crate::kvsim::World) (with all of its faults and checks), in
//! lockstep on one clock, and the clerks, agents and controller libraries
//! that connect them run outside, through ports. After every virtual
//! millisecond the simulator checks that no shard is served by two groups.

pub mod churn;
pub mod endpoints;
pub mod flavor;
pub mod lab;
pub mod port;
pub mod swarm;
pub mod world;

pub use flavor::{Classic, Driven, Flavor};
pub use world::{Endpoint, EndpointIo, ShardSimConfig, ShardWorld};
