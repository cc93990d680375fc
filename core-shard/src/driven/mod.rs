//! The 2025 sharded service (lab 5 of 2025, `shardkv1`): the
//! [`Controller`] is a client library that keeps the configuration in a
//! key/value service and moves shards itself; each [`Group`] only answers
//! clients and the controller's freeze, install and delete steps.

mod controller;
mod group;

pub use controller::{
    Call, CallResult, Controller, CtrlAction, CtrlConfig, CtrlInput, CONFIG_KEY, NEXT_KEY,
};
pub use group::{Group, GroupOp, FIRST_CONFIG, FIRST_GROUP};
