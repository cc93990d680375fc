//! Segment files: the log is a sequence of append-only files
//! `log-<sequence number>.seg`, numbered from 1 without gaps. Only the last
//! one (the active segment) is ever written; a segment is fsynced before its
//! successor is created, so only the last one can end in a torn record.

use crate::error::StorageError;
use crate::fs::{Fs, FsFile};
use core_raft::LogIndex;
use std::path::{Path, PathBuf};

/// File name of the segment with sequence number `seq`.
pub(crate) fn segment_name(seq: u64) -> String {
    format!("log-{seq:020}.seg")
}

/// The sequence number of a segment file name, if it is one.
pub(crate) fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("log-")?.strip_suffix(".seg")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// What the store remembers about each segment it holds.
#[derive(Clone, Debug)]
pub(crate) struct SegmentInfo {
    /// Sequence number (position in the log).
    pub seq: u64,
    /// Where it is.
    pub path: PathBuf,
    /// The last index held when the segment was opened (from its
    /// checkpoint). All earlier segments may go once a durable snapshot
    /// reaches this index.
    pub start_last_index: LogIndex,
}

/// The segment being appended to.
#[derive(Debug)]
pub(crate) struct ActiveSegment<F: Fs> {
    pub path: PathBuf,
    file: F::File,
    /// Bytes in the file (written, not necessarily synced).
    pub len: u64,
}

impl<F: Fs> ActiveSegment<F> {
    /// Create a new, empty segment file and make its name durable: records
    /// fsynced into a file whose directory entry was lost are lost too.
    pub fn create(fs: &F, dir: &Path, seq: u64) -> Result<ActiveSegment<F>, StorageError> {
        let path = dir.join(segment_name(seq));
        let file = fs
            .create_new(&path)
            .map_err(StorageError::io("create segment", &path))?;
        sync_dir(fs, dir)?;
        Ok(ActiveSegment { path, file, len: 0 })
    }

    /// Reopen an existing segment of `len` valid bytes for appending.
    pub fn reopen(fs: &F, path: PathBuf, len: u64) -> Result<ActiveSegment<F>, StorageError> {
        let file = fs
            .open_append(&path)
            .map_err(StorageError::io("open segment", &path))?;
        Ok(ActiveSegment { path, file, len })
    }

    /// Hand `bytes` to the operating system (not yet durable).
    pub fn write(&mut self, bytes: &[u8]) -> Result<(), StorageError> {
        self.file
            .write_all(bytes)
            .map_err(StorageError::io("write segment", &self.path))?;
        self.len += bytes.len() as u64;
        Ok(())
    }

    /// Make everything written so far durable.
    pub fn sync(&mut self) -> Result<(), StorageError> {
        self.file
            .sync_data()
            .map_err(StorageError::io("fsync segment", &self.path))
    }
}

/// Make the directory's entries (created, renamed, removed files) durable.
pub(crate) fn sync_dir(fs: &impl Fs, dir: &Path) -> Result<(), StorageError> {
    fs.sync_dir(dir)
        .map_err(StorageError::io("fsync directory", dir))
}

/// Cut a segment back to `len` bytes, durably (recovery of a torn tail).
pub(crate) fn truncate(fs: &impl Fs, path: &Path, len: u64) -> Result<(), StorageError> {
    let mut file = fs
        .open_write(path)
        .map_err(StorageError::io("open segment for truncation", path))?;
    file.set_len(len)
        .map_err(StorageError::io("truncate segment", path))?;
    file.sync_all()
        .map_err(StorageError::io("fsync truncated segment", path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_sort_by_sequence() {
        assert_eq!(parse_segment_name(&segment_name(42)), Some(42));
        assert!(segment_name(9) < segment_name(10));
        assert_eq!(parse_segment_name("log-.seg"), None);
        assert_eq!(parse_segment_name("log-1x.seg"), None);
        assert_eq!(parse_segment_name("snapshot-1.snap"), None);
    }
}
