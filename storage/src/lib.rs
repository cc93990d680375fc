//! Raft's durable state on disk, for the drivers.
//!
//! [`DiskStorage`] keeps what [`core_raft::Durable`] keeps in memory, in a
//! directory:
//!
//! * `log-<seq>.seg`: an append-only log in segments that roll at
//!   [`StorageOptions::segment_bytes`]. Each record is one persist action
//!   (hard state, entries with truncate-then-append semantics, or a marker
//!   naming a snapshot), framed as length + CRC32 + postcard payload
//!   ([`record`]). Every segment opens with a checkpoint of the state at
//!   that point, so segments a snapshot covers can be deleted.
//! * `snapshot-<index>.snap`: the latest snapshot, with its own length and
//!   CRC32, written by temporary file + fsync + rename + directory fsync.
//!
//! Replaying the records in order through [`core_raft::Durable::persist`]
//! reproduces the state, so the disk and the in-memory storage share one
//! definition of every action.
//!
//! The caller's duties, in order:
//!
//! 1. [`DiskStorage::open`] the data directory. It returns the recovered
//!    [`core_raft::Durable`] (already checked with
//!    [`core_raft::Durable::validate`]) for [`core_raft::Raft::restore`],
//!    and a [`RecoveryReport`] worth logging. An error means the directory
//!    is damaged beyond a torn final write, or is in use by another store
//!    ([`StorageError::InUse`]: it stays locked while the store lives): do
//!    not start the node.
//! 2. For each list of actions the machine returns, hand every run of
//!    consecutive `Persist*` actions to [`DiskStorage::persist_batch`] (one
//!    fsync for the run) before performing the action that follows the run;
//!    [`DiskStorage::execute`] does exactly that.
//!    A driver with a disk thread may instead [`DiskStorage::append`] several
//!    runs as they arrive and [`DiskStorage::sync`] once (group commit),
//!    holding back the dependent sends and replies until the sync returns.
//! 3. Treat any write error as fatal for the node: what reached the disk is
//!    unknown, and the next [`DiskStorage::open`] will sort it out. The store
//!    enforces it: after a failed write or fsync, every later one fails too,
//!    since a retried fsync can succeed without writing anything.
//!
//! Drivers can be written against the [`Storage`] trait, which
//! [`MemStorage`] also implements for tests that want no disk, and can
//! leave the writing to a [`DiskWriter`] thread (group commit off the event
//! loop).
//!
//! Every file operation goes through the [`fs::Fs`] trait: the real
//! filesystem by default, or [`simfs::SimFs`], which loses unsynced writes
//! and directory entries at a simulated power cut and fails chosen
//! operations, for tests ([`DiskStorage::open_in`]).
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod delayed;
mod dir_lock;
mod disk;
mod error;
pub mod fs;
pub mod identity;
mod mem;
pub mod record;
mod recovery;
mod segment;
pub mod simfs;
pub mod snapshot_file;
mod writer;

pub use delayed::DelayedSync;
pub use dir_lock::{check_not_in_use, LOCK_FILE};
pub use disk::DiskStorage;
pub use error::StorageError;
pub use identity::{NodeIdentity, DATA_FORMAT};
pub use mem::{is_persist, MemStorage, Storage};
pub use writer::{Batch, DiskWriter};

use std::fmt;
use std::path::PathBuf;

/// Default size at which the log rolls to a new segment: 64 MiB.
pub const DEFAULT_SEGMENT_BYTES: u64 = 64 << 20;

/// Tuning for [`DiskStorage::open_with`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StorageOptions {
    /// Start a new segment once the active one holds at least this many
    /// bytes. Smaller segments free disk sooner after a snapshot; larger ones
    /// mean fewer files.
    pub segment_bytes: u64,
}

impl Default for StorageOptions {
    fn default() -> Self {
        StorageOptions {
            segment_bytes: DEFAULT_SEGMENT_BYTES,
        }
    }
}

/// What [`DiskStorage::open`] found and repaired.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// A torn final record that was cut off, if there was one.
    pub torn_tail: Option<TornTail>,
    /// Files removed as leftovers of an interrupted operation: unrenamed
    /// snapshot temporaries, snapshots the log never recorded or has
    /// superseded, segments of an interrupted log truncation, and an
    /// empty newest segment.
    pub removed: Vec<PathBuf>,
    /// Log segments in use after recovery.
    pub segments: usize,
    /// Records replayed.
    pub records: u64,
}

/// A final record that a crash left incomplete; it and everything after it
/// were discarded. Its persist was never acknowledged as durable, so nothing
/// promised is lost.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TornTail {
    /// The segment that was truncated.
    pub path: PathBuf,
    /// Byte offset the segment was truncated at (start of the torn record).
    pub offset: u64,
    /// How many bytes were discarded.
    pub discarded_bytes: u64,
    /// Why the record was judged torn.
    pub reason: String,
}

impl fmt::Display for TornTail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "torn final record in {} at byte {} ({}); discarded {} bytes",
            self.path.display(),
            self.offset,
            self.reason,
            self.discarded_bytes
        )
    }
}
