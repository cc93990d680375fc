//! The `mr` command's larger pieces.

pub mod bench;
