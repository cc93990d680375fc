//! placeholder
pub mod linearizability;
