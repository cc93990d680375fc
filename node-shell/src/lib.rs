//! Node shells: everything a node does that does not depend on how bytes,
//! files and time reach it. A shell is a pure state machine in the style of
//! the cores (`step(Input) -> Vec<Action>`, no I/O, no clock): the driver
//! feeds it bytes that arrived on connections, ticks and completed disk
//! writes, and carries out what it returns (write these bytes, persist this
//! batch, close that connection). Both drivers and the simulator run the
//! same shells, so the logic in here is exercised under simulated faults.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod mr;
