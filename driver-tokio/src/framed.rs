//! Reading frames from an async stream with the shared incremental decoder.

use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, AsyncReadExt};
use wire::{Decoder, FrameError};

/// Reads the next message, `Ok(None)` on a clean end of stream between
/// frames. Oversized frames are refused before their payload is buffered.
pub async fn read_message<R, T>(r: &mut R, decoder: &mut Decoder) -> Result<Option<T>, FrameError>
where
    R: AsyncRead + Unpin,
    T: DeserializeOwned,
{
    let mut buf = [0u8; 16 * 1024];
    loop {
        if let Some(m) = decoder.next_message()? {
            return Ok(Some(m));
        }
        let n = r.read(&mut buf).await?;
        if n == 0 {
            decoder.finish()?;
            return Ok(None);
        }
        decoder.push(&buf[..n]);
    }
}
