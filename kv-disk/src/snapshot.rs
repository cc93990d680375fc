//! Snapshots in `KvStore`'s bytes, streamed both ways.
//!
//! `KvStore`'s snapshot is postcard's encoding of the store: the data map
//! (its length as a varint, then each `key, (value, version)` in key
//! order), then the session table (its length, then each `client,
//! session` in client order), then the duplicates counter. The reader here
//! produces those bytes pair by pair from one read transaction; the
//! restore decodes the data pairs one by one into a write transaction.

use crate::store::{encode_entry, DATA, META, META_DUPLICATES, SESSIONS};
use core_kv::{Outcome, Sessions};
use redb::{
    Database, Range, ReadTransaction, ReadableDatabase as _, ReadableTableMetadata as _,
    WriteTransaction,
};
use std::io::{self, BufRead, BufReader, Read};

/// Refill the reader's buffer with pairs up to about this many bytes.
const CHUNK_BYTES: usize = 64 * 1024;

/// A snapshot of a [`crate::DiskKv`]: the bytes of `KvStore`'s snapshot
/// of the same state, produced as they are read, from one read transaction
/// (a consistent view: applies go on meanwhile). It holds one chunk of
/// pairs in memory at a time, and can be drained on any thread.
pub struct SnapshotReader {
    stream: Result<Stream, String>,
    buf: Vec<u8>,
    pos: usize,
}

struct Stream {
    data: Range<'static, &'static str, &'static [u8]>,
    sessions: Range<'static, u64, &'static [u8]>,
    sessions_len: u64,
    duplicates: u64,
    phase: Phase,
    _tx: ReadTransaction,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Data,
    Sessions,
    Done,
}

impl SnapshotReader {
    pub(crate) fn new(db: &Database) -> SnapshotReader {
        let mut buf = Vec::new();
        let stream = Stream::open(db, &mut buf).map_err(|e| e.to_string());
        SnapshotReader {
            stream,
            buf,
            pos: 0,
        }
    }
}

impl Stream {
    /// Open the view and write the data map's length into `buf`.
    fn open(db: &Database, buf: &mut Vec<u8>) -> Result<Stream, redb::Error> {
        let tx = db.begin_read()?;
        let data = tx.open_table(DATA)?;
        let sessions = tx.open_table(SESSIONS)?;
        let meta = tx.open_table(META)?;
        let duplicates = meta.get(META_DUPLICATES)?.map_or(0, |v| v.value());
        varint(buf, data.len()?);
        Ok(Stream {
            sessions_len: sessions.len()?,
            data: data.range::<&str>(..)?,
            sessions: sessions.range::<u64>(..)?,
            duplicates,
            phase: Phase::Data,
            _tx: tx,
        })
    }

    /// Append the next pairs to `buf`; nothing once done.
    fn fill(&mut self, buf: &mut Vec<u8>) -> Result<(), redb::Error> {
        while buf.len() < CHUNK_BYTES && self.phase != Phase::Done {
            match self.phase {
                Phase::Data => match self.data.next() {
                    Some(pair) => {
                        let (key, entry) = pair?;
                        let key = key.value();
                        varint(buf, key.len() as u64);
                        buf.extend_from_slice(key.as_bytes());
                        // Stored as postcard's `(value, version)` already.
                        buf.extend_from_slice(entry.value());
                    }
                    None => {
                        varint(buf, self.sessions_len);
                        self.phase = Phase::Sessions;
                    }
                },
                Phase::Sessions => match self.sessions.next() {
                    Some(pair) => {
                        let (client, session) = pair?;
                        varint(buf, client.value());
                        buf.extend_from_slice(session.value());
                    }
                    None => {
                        varint(buf, self.duplicates);
                        self.phase = Phase::Done;
                    }
                },
                Phase::Done => {}
            }
        }
        Ok(())
    }
}

impl Read for SnapshotReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
            let stream = self
                .stream
                .as_mut()
                .map_err(|e| io::Error::other(e.clone()))?;
            stream.fill(&mut self.buf).map_err(io::Error::other)?;
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// postcard's varint (LEB128) of `v`.
fn varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push(v as u8 | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

/// Replace the data and session tables in `tx` with a snapshot's, read
/// from `reader` pair by pair. On an error the caller drops `tx`
/// uncommitted, which leaves the previous state as it was.
pub(crate) fn restore_into(tx: &WriteTransaction, reader: &mut dyn Read) -> Result<(), String> {
    let db = |e: redb::Error| format!("database: {e}");
    tx.delete_table(DATA).map_err(|e| db(e.into()))?;
    tx.delete_table(SESSIONS).map_err(|e| db(e.into()))?;
    let mut r = BufReader::with_capacity(CHUNK_BYTES, reader);
    {
        let mut data = tx.open_table(DATA).map_err(|e| db(e.into()))?;
        // The count bounds the loop only; nothing is sized by it.
        let pairs = read_varint(&mut r).map_err(|e| format!("data length: {e}"))?;
        for i in 0..pairs {
            let pair = (|| -> io::Result<_> {
                let key = read_string(&mut r)?;
                let value = read_string(&mut r)?;
                let version = read_varint(&mut r)?;
                Ok((key, value, version))
            })();
            let (key, value, version) = pair.map_err(|e| format!("pair {i} of {pairs}: {e}"))?;
            let entry = encode_entry(&value, core_kv::Version(version));
            data.insert(key.as_str(), entry.as_slice())
                .map_err(|e| db(e.into()))?;
        }
    }
    // The session table (one entry per client) and the counter: small, and
    // decoded whole, rejecting trailing bytes.
    let mut rest = Vec::new();
    r.read_to_end(&mut rest)
        .map_err(|e| format!("session table: {e}"))?;
    let sessions: Sessions<Outcome> =
        core_kv::snapshot::decode_bytes(&rest).map_err(|e| format!("session table: {e}"))?;
    let mut table = tx.open_table(SESSIONS).map_err(|e| db(e.into()))?;
    for (client, session) in sessions.iter() {
        let bytes = postcard::to_allocvec(session).expect("encoding to a Vec cannot fail");
        table
            .insert(client.0, bytes.as_slice())
            .map_err(|e| db(e.into()))?;
    }
    let mut meta = tx.open_table(META).map_err(|e| db(e.into()))?;
    meta.insert(META_DUPLICATES, sessions.duplicates())
        .map_err(|e| db(e.into()))?;
    Ok(())
}

/// A postcard varint (at most ten bytes, and no bits past 64).
fn read_varint(r: &mut impl BufRead) -> io::Result<u64> {
    let mut v = 0u64;
    for i in 0..10 {
        let mut byte = [0u8];
        r.read_exact(&mut byte)?;
        let b = byte[0];
        if i == 9 && b > 1 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "varint overflows 64 bits",
            ));
        }
        v |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidData,
        "varint longer than ten bytes",
    ))
}

/// A postcard string: its length, then UTF-8. The buffer grows with the
/// bytes actually read, never to a length the input merely claims.
fn read_string(r: &mut impl BufRead) -> io::Result<String> {
    let len = read_varint(r)?;
    let mut bytes = Vec::new();
    let got = r.by_ref().take(len).read_to_end(&mut bytes)?;
    if got as u64 != len {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("string of {len} bytes cut at {got}"),
        ));
    }
    String::from_utf8(bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}
