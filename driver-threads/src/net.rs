//! Non-blocking socket chores shared by the mio event loops (the MapReduce
//! coordinator and the key/value node).

use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Poll, Token};
use std::io::{self, Write};
use std::net::SocketAddr;

/// Accept every pending connection: each gets the next token from
/// `next_token`, no Nagle delay, and registration for reading and writing,
/// then is handed to `keep`. A connection that died before it was accepted
/// is logged and skipped.
pub fn accept_all(
    listener: &TcpListener,
    poll: &Poll,
    next_token: &mut usize,
    mut keep: impl FnMut(Token, TcpStream, SocketAddr),
) -> io::Result<()> {
    loop {
        match listener.accept() {
            Ok((mut stream, addr)) => {
                let token = Token(*next_token);
                *next_token += 1;
                let _ = stream.set_nodelay(true);
                poll.registry().register(
                    &mut stream,
                    token,
                    Interest::READABLE | Interest::WRITABLE,
                )?;
                keep(token, stream, addr);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                tracing::warn!("accept failed: {e}");
                return Ok(());
            }
        }
    }
}

/// Write queued bytes until done or the socket would block. A connect still
/// in progress reports "not connected": that, too, means "later".
pub fn flush(stream: &mut TcpStream, out: &mut Vec<u8>) -> io::Result<()> {
    while !out.is_empty() {
        match stream.write(out) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                out.drain(..n);
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::NotConnected
                ) =>
            {
                return Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
