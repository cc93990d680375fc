//! The wire format both drivers share: length-prefixed postcard frames and
//! a connection handshake.
//!
//! * A frame is a 4-byte big-endian payload length followed by a postcard
//!   payload. A length above the configured maximum is rejected as soon as
//!   its 4 bytes arrive, before any buffer is sized for it. Each protocol
//!   sets its own maximum where it is defined (`node_shell`'s replica and
//!   MapReduce shells); this crate has no default.
//! * [`Decoder`] is incremental: push bytes as they arrive from a socket in
//!   any chunking and pull whole messages out.
//! * [`read_frame`] / [`write_frame`] do the same over blocking
//!   `std::io::Read` / `Write` streams.
//! * Every connection starts with each side sending a [`Hello`] (protocol
//!   version, cluster id, node id); [`Hello::check`] says whether the peer
//!   is acceptable, with an error a user can act on.
//!
//! The crate is generic over the message type so that every service
//! (MapReduce, KV, Raft) reuses it with its own messages.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod frame;
mod handshake;

pub use frame::{encode_frame, read_frame, write_frame, Decoder, FrameError, LEN_PREFIX_BYTES};
pub use handshake::{HandshakeError, Hello, HELLO_MAGIC};
