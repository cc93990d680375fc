//! Addresses and the address file, shared by both coordinators.

use crate::error::CoordinatorError;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::Path;

/// Resolves a listen address such as `127.0.0.1:0` or `localhost:5840`.
pub fn resolve(addr: &str) -> Result<SocketAddr, CoordinatorError> {
    addr.to_socket_addrs()
        .map_err(|source| CoordinatorError::Bind {
            addr: addr.to_string(),
            source,
        })?
        .next()
        .ok_or_else(|| CoordinatorError::Bind {
            addr: addr.to_string(),
            source: io::Error::new(io::ErrorKind::NotFound, "address resolves to nothing"),
        })
}

/// Writes the bound address to `path` atomically (temp file + rename), so a
/// reader polling for the file never sees half an address.
pub fn write_addr_file(path: &Path, addr: SocketAddr) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, format!("{addr}\n"))?;
    std::fs::rename(&tmp, path)
}
