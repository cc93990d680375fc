//! Non-blocking socket chores shared by the mio event loops (the MapReduce
//! coordinator and the key/value node).

use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Poll, Token};
use std::io::{self, Write};
use std::net::SocketAddr;

/// How an [`accept_all`] ended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Accepted {
    /// Connections closed at once because `room` ran out.
    pub refused: usize,
    /// It stopped on an error (out of file descriptors, say) with
    /// connections perhaps still waiting: call again a little later, since
    /// an edge-triggered listener reports no new readiness for them.
    pub retry: bool,
}

/// Accept every pending connection: each gets the next token from
/// `next_token`, no Nagle delay, and registration for reading and writing,
/// then is handed to `keep`, up to `room` of them; the ones beyond are
/// closed at once (counted in [`Accepted::refused`]), so a flood of
/// connections costs no more than `room` of them. A connection that died
/// before it was accepted is skipped.
pub fn accept_all(
    listener: &TcpListener,
    poll: &Poll,
    next_token: &mut usize,
    mut room: usize,
    mut keep: impl FnMut(Token, TcpStream, SocketAddr),
) -> io::Result<Accepted> {
    let mut ended = Accepted::default();
    loop {
        match listener.accept() {
            Ok(_) if room == 0 => ended.refused += 1,
            Ok((mut stream, addr)) => {
                room -= 1;
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
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(ended),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => {}
            Err(e) => {
                tracing::warn!("accept failed: {e}");
                ended.retry = true;
                return Ok(ended);
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
