//! The classic sharded service (2021 labs 4A/4B, 2024 labs 5A/5B): a
//! replicated [`Controller`] keeps the numbered configurations; each
//! [`Group`] applies them one at a time through its own log, and its
//! [`Agent`] pulls the shards it gains and has the old owner delete them.

mod agent;
mod controller;
mod group;

pub use agent::{Agent, AgentAction, AgentConfig, AgentInput};
pub use controller::{Controller, CtrlOp, CtrlReply};
pub use group::{Group, GroupOp, ShardState, Work};
