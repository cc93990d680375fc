//! What can go wrong opening or writing the store, with enough detail (file,
//! byte offset, what was expected) for an operator to act on.

use core_raft::{LogIndex, RestoreError};
use std::io;
use std::path::PathBuf;
use thiserror::Error;

/// An error from [`crate::DiskStorage`].
///
/// Every variant that concerns data on disk names the file and, where it
/// applies, the byte offset. Corruption is never repaired silently: apart
/// from a torn final record (see [`crate::RecoveryReport`]), damaged data
/// stops the node so that it never serves bytes that failed their checksum.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StorageError {
    /// An operating-system call failed.
    #[error("cannot {op} {path}: {source}")]
    Io {
        /// What the store was doing ("open", "fsync", "rename", ...).
        op: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Another store (in this process or another) has the data directory
    /// open.
    #[error(
        "data directory {dir} is in use by another process{}: a directory belongs to one \
         running node; stop that node first, or give this one another --data-dir",
        holder.map(|pid| format!(" (pid {pid})")).unwrap_or_default()
    )]
    InUse {
        /// The data directory.
        dir: PathBuf,
        /// The process id the holder recorded, if it could be read.
        holder: Option<u32>,
    },
    /// A write or fsync failed earlier, so what reached the disk is unknown:
    /// retrying an fsync that failed can report success for data the
    /// kernel already dropped, so the store refuses all further writes.
    #[error(
        "storage stopped after an earlier error ({0}); nothing written since the last \
         successful sync is acknowledged. Restart the node: recovery reads back what the \
         disk holds"
    )]
    Failed(String),
    /// The data directory's identity file is missing where it must exist,
    /// damaged, or names another node, cluster or data format.
    #[error("data directory identity {path}: {what}")]
    Identity {
        /// The identity file.
        path: PathBuf,
        /// What is wrong and what to do.
        what: String,
    },
    /// A log record before the end of the log failed its check. Only the
    /// final record of the final segment may be torn by a crash; damage
    /// anywhere else means the disk or someone else changed the file.
    #[error(
        "corrupt log record in {path} at byte {offset}: {what}; refusing to start rather than \
         serve unchecked data (restore this node's data directory from a healthy replica)"
    )]
    CorruptRecord {
        /// The segment file.
        path: PathBuf,
        /// Byte offset of the record's header in that file.
        offset: u64,
        /// What was expected and what was found.
        what: String,
    },
    /// A snapshot file is damaged or does not match the log that names it.
    #[error(
        "corrupt snapshot file {path} at byte {offset}: {what}; refusing to start \
         (restore this node's data directory from a healthy replica)"
    )]
    CorruptSnapshot {
        /// The snapshot file.
        path: PathBuf,
        /// Byte offset of the first bad byte (0 for the header).
        offset: u64,
        /// What was expected and what was found.
        what: String,
    },
    /// The log refers to a snapshot whose file is gone.
    #[error(
        "the log records a snapshot through index {index} but {path} does not exist; \
         the data directory is incomplete (restore it from a healthy replica)"
    )]
    MissingSnapshot {
        /// The expected snapshot file.
        path: PathBuf,
        /// The snapshot's last included index.
        index: LogIndex,
    },
    /// Log segments the remaining files depend on are gone.
    #[error(
        "log segments are missing in {dir}: {what}; the data directory is incomplete \
         (restore it from a healthy replica)"
    )]
    MissingSegments {
        /// The data directory.
        dir: PathBuf,
        /// What is missing, and how that was noticed.
        what: String,
    },
    /// The recovered state is not one a correct node could have written.
    #[error("the state recovered from {dir} is inconsistent: {source}")]
    Inconsistent {
        /// The data directory.
        dir: PathBuf,
        /// What [`core_raft::Durable::validate`] found.
        #[source]
        source: RestoreError,
    },
    /// A single persist action encodes to more than a record can hold.
    #[error("a record of {bytes} bytes exceeds the maximum of {max} bytes per record")]
    RecordTooLarge {
        /// The encoded size.
        bytes: usize,
        /// The limit ([`crate::record::MAX_RECORD_BYTES`]).
        max: usize,
    },
    /// The disk thread ([`crate::DiskWriter`]) stopped on an earlier error,
    /// already reported through its callback.
    #[error("the disk thread stopped after an earlier error: {0}")]
    WriterStopped(String),
    /// The disk thread panicked.
    #[error("the disk thread panicked")]
    WriterPanicked,
    /// Encoding a record or snapshot failed (should not happen for Raft data).
    #[error("cannot encode {what}: {source}")]
    Encode {
        /// What was being encoded.
        what: &'static str,
        /// The serializer's error.
        #[source]
        source: postcard::Error,
    },
}

impl StorageError {
    /// Wrap an I/O error with the operation and path it concerns.
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Self {
        let path = path.into();
        move |source| StorageError::Io { op, path, source }
    }
}
