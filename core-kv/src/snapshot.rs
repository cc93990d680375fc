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

/// Read a snapshot to its end.
pub fn read_all(snapshot: &mut dyn Read) -> Result<Vec<u8>, String> {
    let mut bytes = Vec::new();
    snapshot
        .read_to_end(&mut bytes)
        .map_err(|e| format!("reading the snapshot: {e}"))?;
    Ok(bytes)
}
