//! Reading from async streams for drivers whose shells decode frames
//! themselves: the driver moves bytes, the shell makes sense of them.

use tokio::io::{AsyncRead, AsyncReadExt};

/// Read whatever bytes are available next (at most 64 KiB); `None` at the
/// end of the stream or on an error.
pub async fn read_bytes<R: AsyncRead + Unpin>(r: &mut R) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 64 * 1024];
    match r.read(&mut buf).await {
        Ok(0) | Err(_) => None,
        Ok(n) => {
            buf.truncate(n);
            Some(buf)
        }
    }
}
