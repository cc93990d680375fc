//! Snapshot files: `snapshot-<index>.snap`, written atomically.
//!
//! ```text
//! +----------------+-------------------+------------------+------------------------+
//! | magic: 8 bytes | length: u64 (LE)  | crc32: u32 (LE)  | payload: postcard(Snapshot) |
//! +----------------+-------------------+------------------+------------------------+
//! ```
//!
//! A snapshot is written to `snapshot-<index>.snap.tmp`, fsynced, renamed
//! into place and the directory fsynced; only then does the log record that
//! refers to it get written. A `.tmp` file found on start is the remains of
//! a crash before the rename and is removed.

use crate::error::StorageError;
use crate::fs::{Fs, FsFile};
use crate::segment::sync_dir;
use core_raft::{LogIndex, Snapshot};
use std::path::{Path, PathBuf};

/// Format 4: a snapshot may be external (the application keeps the state;
/// the file holds no copy of it).
const MAGIC: &[u8; 8] = b"RAFTSNP4";
/// Format 1 (before membership): refused with a message saying so.
const MAGIC_V1: &[u8; 8] = b"RAFTSNP1";
/// Format 2: memberships without addresses and incarnations.
const MAGIC_V2: &[u8; 8] = b"RAFTSNP2";
/// Format 3: no external snapshots.
const MAGIC_V3: &[u8; 8] = b"RAFTSNP3";
const HEADER_BYTES: usize = 8 + 8 + 4;
/// Suffix of a snapshot file still being written.
pub(crate) const TEMP_SUFFIX: &str = ".tmp";

/// File name of the snapshot covering the log through `index`.
pub(crate) fn snapshot_name(index: LogIndex) -> String {
    format!("snapshot-{:020}.snap", index.0)
}

/// The index of a snapshot file name, if it is one.
pub(crate) fn parse_snapshot_name(name: &str) -> Option<LogIndex> {
    let digits = name.strip_prefix("snapshot-")?.strip_suffix(".snap")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().map(LogIndex)
}

/// True for the name of a snapshot that was never renamed into place.
pub(crate) fn is_temp_name(name: &str) -> bool {
    name.starts_with("snapshot-") && name.ends_with(TEMP_SUFFIX)
}

/// Write `snapshot` durably into `dir`; returns its path.
pub(crate) fn write<F: Fs>(
    fs: &F,
    dir: &Path,
    snapshot: &Snapshot,
) -> Result<PathBuf, StorageError> {
    let payload = postcard::to_allocvec(snapshot).map_err(|source| StorageError::Encode {
        what: "a snapshot",
        source,
    })?;
    let mut bytes = Vec::with_capacity(HEADER_BYTES + payload.len());
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    bytes.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    bytes.extend_from_slice(&payload);

    let path = dir.join(snapshot_name(snapshot.index));
    let tmp = dir.join(format!("{}{TEMP_SUFFIX}", snapshot_name(snapshot.index)));
    let mut file = fs
        .create(&tmp)
        .map_err(StorageError::io("create snapshot", &tmp))?;
    file.write_all(&bytes)
        .map_err(StorageError::io("write snapshot", &tmp))?;
    // Before the rename: a crash after it must find the whole file.
    file.sync_all()
        .map_err(StorageError::io("fsync snapshot", &tmp))?;
    drop(file);
    fs.rename(&tmp, &path)
        .map_err(StorageError::io("rename snapshot into place", &tmp))?;
    // Before the log record naming it is written: that record may become
    // durable with the next sync, and must never name a file a crash lost.
    sync_dir(fs, dir)?;
    Ok(path)
}

/// Read and check the snapshot file at `path`.
pub(crate) fn read(fs: &impl Fs, path: &Path) -> Result<Snapshot, StorageError> {
    let bytes = fs
        .read(path)
        .map_err(StorageError::io("read snapshot", path))?;
    decode(path, &bytes)
}

/// Check and decode the bytes of a snapshot file; `path` only names the
/// file in errors. Public so that the decoder can be fuzzed on buffers in
/// memory (`sim fuzz`); recovery reads files through [`crate::DiskStorage`].
pub fn decode(path: &Path, bytes: &[u8]) -> Result<Snapshot, StorageError> {
    let corrupt = |offset: usize, what: String| StorageError::CorruptSnapshot {
        path: path.to_path_buf(),
        offset: offset as u64,
        what,
    };
    if bytes.len() < HEADER_BYTES {
        return Err(corrupt(
            0,
            format!(
                "file has {} bytes, shorter than the {HEADER_BYTES}-byte header",
                bytes.len()
            ),
        ));
    }
    for (old, what) in [
        (
            MAGIC_V1,
            "format 1, written by a version without cluster membership",
        ),
        (
            MAGIC_V2,
            "format 2, written by a version without node identities",
        ),
        (
            MAGIC_V3,
            "format 3, written by a version without external snapshots",
        ),
    ] {
        if &bytes[..8] == old {
            return Err(corrupt(
                0,
                format!(
                    "snapshot {what}: this version reads format 4 only. Restore the node \
                     from a peer: move this data directory away and add the node back as \
                     a new member"
                ),
            ));
        }
    }
    if &bytes[..8] != MAGIC {
        return Err(corrupt(0, format!("expected magic {MAGIC:?}")));
    }
    let len = u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes"));
    let crc = u32::from_le_bytes(bytes[16..20].try_into().expect("4 bytes"));
    let payload = &bytes[HEADER_BYTES..];
    if payload.len() as u64 != len {
        return Err(corrupt(
            8,
            format!(
                "header says {len} payload bytes, file holds {}",
                payload.len()
            ),
        ));
    }
    let actual = crc32fast::hash(payload);
    if actual != crc {
        return Err(corrupt(
            HEADER_BYTES,
            format!("checksum mismatch: header says {crc:#010x}, payload hashes to {actual:#010x}"),
        ));
    }
    match postcard::take_from_bytes::<Snapshot>(payload) {
        Ok((snapshot, [])) => Ok(snapshot),
        Ok((_, extra)) => Err(corrupt(
            bytes.len() - extra.len(),
            format!("{} undecoded trailing bytes", extra.len()),
        )),
        Err(e) => Err(corrupt(
            HEADER_BYTES,
            format!("payload passed its checksum but does not decode: {e}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        let name = snapshot_name(LogIndex(7));
        assert_eq!(parse_snapshot_name(&name), Some(LogIndex(7)));
        assert!(is_temp_name(&format!("{name}{TEMP_SUFFIX}")));
        assert_eq!(parse_snapshot_name(&format!("{name}{TEMP_SUFFIX}")), None);
    }
}
