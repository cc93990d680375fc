//! Length-prefixed postcard frames.

use serde::de::DeserializeOwned;
use serde::Serialize;
use std::io::{self, Read, Write};
use thiserror::Error;

/// Bytes in the length prefix (a big-endian `u32`).
pub const LEN_PREFIX_BYTES: usize = 4;

/// What can go wrong reading or writing a frame.
#[derive(Debug, Error)]
pub enum FrameError {
    /// The peer announced a payload larger than we accept. The connection
    /// should be closed: the stream cannot be resynchronised.
    #[error("frame of {len} bytes exceeds the maximum of {max} bytes")]
    TooLarge {
        /// Announced payload length.
        len: u64,
        /// Configured maximum.
        max: u32,
    },
    /// The payload is not a valid postcard encoding of the expected type
    /// (garbage, a truncated payload, or a peer speaking another protocol).
    #[error("malformed frame payload: {0}")]
    Malformed(#[from] postcard::Error),
    /// The stream ended in the middle of a frame.
    #[error("connection closed in the middle of a frame ({got} of {want} bytes)")]
    Truncated {
        /// Bytes received.
        got: usize,
        /// Bytes needed.
        want: usize,
    },
    /// An I/O error from the underlying stream.
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
}

/// Encodes `msg` as one frame (prefix + payload), refusing payloads above
/// `max_frame_bytes` so that a sender never produces what its peer rejects.
pub fn encode_frame<T: Serialize>(msg: &T, max_frame_bytes: u32) -> Result<Vec<u8>, FrameError> {
    let mut buf = vec![0u8; LEN_PREFIX_BYTES];
    let mut buf = postcard::to_extend(msg, std::mem::take(&mut buf))?;
    let len = buf.len() - LEN_PREFIX_BYTES;
    if len as u64 > u64::from(max_frame_bytes) {
        return Err(FrameError::TooLarge {
            len: len as u64,
            max: max_frame_bytes,
        });
    }
    buf[..LEN_PREFIX_BYTES].copy_from_slice(&(len as u32).to_be_bytes());
    Ok(buf)
}

fn check_len(prefix: [u8; LEN_PREFIX_BYTES], max: u32) -> Result<usize, FrameError> {
    let len = u32::from_be_bytes(prefix);
    if len > max {
        return Err(FrameError::TooLarge {
            len: u64::from(len),
            max,
        });
    }
    Ok(len as usize)
}

/// Writes one frame to a blocking stream (the caller flushes).
pub fn write_frame<W: Write, T: Serialize>(
    w: &mut W,
    msg: &T,
    max_frame_bytes: u32,
) -> Result<(), FrameError> {
    w.write_all(&encode_frame(msg, max_frame_bytes)?)?;
    Ok(())
}

/// Reads one frame from a blocking stream. `Ok(None)` means the stream
/// ended cleanly between frames.
pub fn read_frame<R: Read, T: DeserializeOwned>(
    r: &mut R,
    max_frame_bytes: u32,
) -> Result<Option<T>, FrameError> {
    let mut prefix = [0u8; LEN_PREFIX_BYTES];
    let got = read_full(r, &mut prefix)?;
    if got == 0 {
        return Ok(None);
    }
    if got < LEN_PREFIX_BYTES {
        return Err(FrameError::Truncated {
            got,
            want: LEN_PREFIX_BYTES,
        });
    }
    let len = check_len(prefix, max_frame_bytes)?;
    // The buffer grows with the bytes that arrive, not with the length the
    // peer announced: a prefix claiming the maximum followed by silence or
    // a hang-up must not cost the maximum (`sim fuzz` found 64 MiB
    // allocated for a 29-byte input when it was sized up front).
    let mut payload = Vec::with_capacity(len.min(FIRST_READ_BYTES));
    let got = r.take(len as u64).read_to_end(&mut payload)?;
    if got < len {
        return Err(FrameError::Truncated { got, want: len });
    }
    Ok(Some(postcard::from_bytes(&payload)?))
}

/// What [`read_frame`] reserves before the payload arrives; larger payloads
/// grow the buffer as their bytes come in (at most doubling what arrived).
const FIRST_READ_BYTES: usize = 64 << 10;

/// Like `read_exact`, but reports how much arrived before end of stream.
fn read_full<R: Read>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// An incremental frame decoder for non-blocking sockets: push whatever
/// bytes arrived, then pull complete messages.
#[derive(Debug)]
pub struct Decoder {
    buf: Vec<u8>,
    max_frame_bytes: u32,
}

impl Decoder {
    /// A decoder accepting payloads of at most `max_frame_bytes`.
    pub fn new(max_frame_bytes: u32) -> Self {
        Decoder {
            buf: Vec::new(),
            max_frame_bytes,
        }
    }

    /// From now on accept payloads of at most `max_frame_bytes` (for
    /// example a small limit for a handshake, then the connection's own).
    pub fn set_max_frame_bytes(&mut self, max_frame_bytes: u32) {
        self.max_frame_bytes = max_frame_bytes;
    }

    /// Appends received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes buffered but not yet decoded.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The next complete message, `Ok(None)` if more bytes are needed. An
    /// oversized length prefix is an error as soon as its 4 bytes are in,
    /// so a hostile peer cannot make the decoder buffer a huge frame.
    /// After an error the connection should be dropped.
    pub fn next_message<T: DeserializeOwned>(&mut self) -> Result<Option<T>, FrameError> {
        if self.buf.len() < LEN_PREFIX_BYTES {
            return Ok(None);
        }
        let mut prefix = [0u8; LEN_PREFIX_BYTES];
        prefix.copy_from_slice(&self.buf[..LEN_PREFIX_BYTES]);
        let len = check_len(prefix, self.max_frame_bytes)?;
        let end = LEN_PREFIX_BYTES + len;
        if self.buf.len() < end {
            return Ok(None);
        }
        let msg = postcard::from_bytes(&self.buf[LEN_PREFIX_BYTES..end]);
        self.buf.drain(..end);
        Ok(Some(msg?))
    }

    /// Call at end of stream: an error if a partial frame is left over.
    pub fn finish(&self) -> Result<(), FrameError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let want = if self.buf.len() < LEN_PREFIX_BYTES {
            LEN_PREFIX_BYTES
        } else {
            let mut prefix = [0u8; LEN_PREFIX_BYTES];
            prefix.copy_from_slice(&self.buf[..LEN_PREFIX_BYTES]);
            LEN_PREFIX_BYTES + u32::from_be_bytes(prefix) as usize
        };
        Err(FrameError::Truncated {
            got: self.buf.len(),
            want,
        })
    }
}
