//! Helpers for state machines whose snapshot is their postcard encoding.
//!
//! [`StateMachine::snapshot`](crate::StateMachine::snapshot) returns a
//! reader and [`StateMachine::restore`](crate::StateMachine::restore) takes
//! one, so that a large state can be produced and installed in chunks (off
//! the event loop, once the drivers do that); a small state is simply
//! encoded whole into a `Cursor<Vec<u8>>` and decoded from the bytes read.

use serde::de::DeserializeOwned;
use serde::Serialize;
use std::io::Read;

/// Encode `state` (for `snapshot`).
pub fn encode<T: Serialize>(state: &T) -> Vec<u8> {
    postcard::to_allocvec(state).expect("encoding to a Vec cannot fail")
}

/// Decode a whole state from `snapshot` (for `restore`). Bytes left over
/// after the state mean it is not such an encoding: rejected too.
pub fn decode<T: DeserializeOwned>(snapshot: &mut dyn Read) -> Result<T, String> {
    let bytes = read_all(snapshot)?;
    decode_bytes(&bytes)
}

/// Decode a whole state from bytes, rejecting trailing bytes.
pub fn decode_bytes<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    match postcard::take_from_bytes(bytes) {
        Ok((state, [])) => Ok(state),
        Ok((_, rest)) => Err(format!("{} bytes after the end of the state", rest.len())),
        Err(e) => Err(e.to_string()),
    }
}

/// A snapshot reader that encodes `state` on its first read, so that the
/// encoding happens wherever the reader is drained (off the event loop,
/// with [`crate::RsmConfig::capture_off_loop`]) rather than where the
/// capture was taken. Cheap to make when `state` is a copy-on-write clone.
pub struct EncodeOnRead<T> {
    state: Option<T>,
    bytes: std::io::Cursor<Vec<u8>>,
}

impl<T: Serialize> EncodeOnRead<T> {
    /// A reader of `state`'s encoding.
    pub fn new(state: T) -> Self {
        EncodeOnRead {
            state: Some(state),
            bytes: std::io::Cursor::new(Vec::new()),
        }
    }
}

impl<T: Serialize> Read for EncodeOnRead<T> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if let Some(state) = self.state.take() {
            self.bytes = std::io::Cursor::new(encode(&state));
        }
        self.bytes.read(buf)
    }
}

/// Read a snapshot to its end.
pub fn read_all(snapshot: &mut dyn Read) -> Result<Vec<u8>, String> {
    let mut bytes = Vec::new();
    snapshot
        .read_to_end(&mut bytes)
        .map_err(|e| format!("reading the snapshot: {e}"))?;
    Ok(bytes)
}
