//! [`DiskStorage`]: writing persist actions, group commit, segment rolling
//! and log truncation after a snapshot.

use crate::error::StorageError;
use crate::fs::{Fs, RealFs};
use crate::mem::Storage;
use crate::record::{self, Checkpoint, RecordRef, SnapshotMeta};
use crate::segment::{sync_dir, ActiveSegment, SegmentInfo};
use crate::snapshot_file;
use crate::{RecoveryReport, StorageOptions};
use core_raft::{Action, Durable, HardState, LogIndex};
use std::path::{Path, PathBuf};

/// Raft's durable state in a directory: a CRC-checked segmented log plus
/// snapshot files. See the crate documentation for the caller's duties.
///
/// `F` is the filesystem: the real one unless a test passes a
/// [`crate::simfs::SimFs`] to [`DiskStorage::open_in`].
#[derive(Debug)]
pub struct DiskStorage<F: Fs = RealFs> {
    pub(crate) fs: F,
    /// Held for the store's life: one owner per directory.
    pub(crate) _lock: F::Lock,
    pub(crate) dir: PathBuf,
    pub(crate) options: StorageOptions,
    pub(crate) active: ActiveSegment<F>,
    /// Every segment held, oldest first; the last one is `active`.
    pub(crate) segments: Vec<SegmentInfo>,
    // What the log records so far (the checkpoint of a new segment).
    pub(crate) hard_state: HardState,
    pub(crate) snapshot: Option<SnapshotMeta>,
    pub(crate) last_index: LogIndex,
    /// Bytes written since the last fsync.
    pub(crate) pending_bytes: u64,
    /// A snapshot was written: drop what it supersedes after the next sync.
    pub(crate) cleanup_due: bool,
    /// Scratch buffer for one `append` call.
    pub(crate) buf: Vec<u8>,
    /// The first write or fsync error, after which nothing more is written
    /// or synced (see [`StorageError::Failed`]).
    pub(crate) failed: Option<String>,
}

impl DiskStorage {
    /// Open (creating if needed) the store in `dir` with default options and
    /// recover its state. Pass the returned [`Durable`] to
    /// [`core_raft::Raft::restore`]; the report says what recovery repaired.
    ///
    /// The directory stays locked until the store is dropped: a second open
    /// of it, in this process or another, fails with
    /// [`StorageError::InUse`].
    pub fn open(
        dir: impl AsRef<Path>,
    ) -> Result<(DiskStorage, Durable, RecoveryReport), StorageError> {
        Self::open_with(dir, StorageOptions::default())
    }

    /// [`DiskStorage::open`] with explicit options.
    pub fn open_with(
        dir: impl AsRef<Path>,
        options: StorageOptions,
    ) -> Result<(DiskStorage, Durable, RecoveryReport), StorageError> {
        Self::open_in(RealFs, dir, options)
    }
}

impl<F: Fs> DiskStorage<F> {
    /// [`DiskStorage::open_with`] on the filesystem `fs`.
    pub fn open_in(
        fs: F,
        dir: impl AsRef<Path>,
        options: StorageOptions,
    ) -> Result<(DiskStorage<F>, Durable, RecoveryReport), StorageError> {
        crate::recovery::recover(fs, dir.as_ref(), options)
    }

    /// Write every `Persist*` action in `actions`, in order, ignoring the
    /// others. The writes reach the operating system but are not durable
    /// until [`DiskStorage::sync`]. A `PersistSnapshot` writes its snapshot
    /// file durably at once (temporary file, fsync, rename, directory fsync);
    /// the log record naming it becomes durable with the next sync.
    ///
    /// After an error, this and every later write or sync fails: what
    /// reached the disk is unknown until the next [`DiskStorage::open`].
    pub fn append(&mut self, actions: &[Action]) -> Result<(), StorageError> {
        self.check_failed()?;
        self.buf.clear();
        let result = self.append_inner(actions);
        let flushed = self.flush_buf();
        self.note_failure(result.and(flushed))
    }

    /// Refuse to go on after an earlier failure.
    fn check_failed(&self) -> Result<(), StorageError> {
        match &self.failed {
            Some(first) => Err(StorageError::Failed(first.clone())),
            None => Ok(()),
        }
    }

    /// Remember the first failure: never retry an fsync and carry on (a
    /// failed fsync may have dropped the dirty pages, and the next one would
    /// then succeed without writing them: PostgreSQL's "fsyncgate").
    fn note_failure(&mut self, result: Result<(), StorageError>) -> Result<(), StorageError> {
        if let Err(e) = &result {
            if self.failed.is_none() {
                self.failed = Some(e.to_string());
            }
        }
        result
    }

    fn append_inner(&mut self, actions: &[Action]) -> Result<(), StorageError> {
        for action in actions {
            match action {
                Action::PersistHardState(hs) => {
                    self.push(&RecordRef::HardState(*hs))?;
                    self.hard_state = *hs;
                }
                Action::PersistEntries(entries) => {
                    let Some(last) = entries.last() else { continue };
                    self.push(&RecordRef::Entries(entries))?;
                    self.last_index = last.index;
                }
                Action::PersistSnapshot {
                    snapshot,
                    discard_log,
                } => {
                    snapshot_file::write(&self.fs, &self.dir, snapshot)?;
                    let meta = SnapshotMeta {
                        index: snapshot.index,
                        term: snapshot.term,
                    };
                    self.push(&RecordRef::Snapshot {
                        meta,
                        discard_log: *discard_log,
                    })?;
                    self.snapshot = Some(meta);
                    self.last_index = if *discard_log {
                        meta.index
                    } else {
                        self.last_index.max(meta.index)
                    };
                    self.cleanup_due = true;
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Make every write so far durable with one fsync (group commit), then
    /// delete the snapshot files and log segments a durable snapshot has made
    /// redundant. After an error, this and every later write or sync fails.
    pub fn sync(&mut self) -> Result<(), StorageError> {
        self.check_failed()?;
        let result = self.sync_inner();
        self.note_failure(result)
    }

    fn sync_inner(&mut self) -> Result<(), StorageError> {
        if self.pending_bytes > 0 {
            self.active.sync()?;
            self.pending_bytes = 0;
        }
        if self.cleanup_due {
            self.cleanup()?;
            self.cleanup_due = false;
        }
        Ok(())
    }

    /// [`DiskStorage::append`] then [`DiskStorage::sync`]: after it returns,
    /// every persist in `actions` is durable, so the actions after them
    /// (sends, replies) may go. Call it on the longest run of consecutive
    /// persists to pay for one fsync per batch.
    pub fn persist_batch(&mut self, actions: &[Action]) -> Result<(), StorageError> {
        self.append(actions)?;
        self.sync()
    }

    /// Carry out a list of actions as the machine returned it: each run of
    /// consecutive persists is written and fsynced once, then the actions
    /// after it are handed to `perform` in order. This is the whole ordering
    /// rule for a driver that does its disk work inline.
    pub fn execute(
        &mut self,
        actions: &[Action],
        perform: impl FnMut(&Action),
    ) -> Result<(), StorageError> {
        Storage::execute(self, actions, perform)
    }

    /// Bytes written since the last fsync: what a crash right now could lose.
    pub fn pending_bytes(&self) -> u64 {
        self.pending_bytes
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The log segment files currently held, oldest first.
    pub fn segment_paths(&self) -> Vec<PathBuf> {
        self.segments.iter().map(|s| s.path.clone()).collect()
    }

    /// Index of the latest snapshot written (0 without one).
    pub fn snapshot_index(&self) -> LogIndex {
        self.snapshot.map_or(LogIndex(0), |s| s.index)
    }

    /// Encode one record into the batch buffer, rolling to a new segment
    /// first if the active one is full.
    fn push(&mut self, record: &RecordRef<'_>) -> Result<(), StorageError> {
        if self.active.len + self.buf.len() as u64 >= self.options.segment_bytes {
            self.roll()?;
        }
        record::encode(record, &mut self.buf)?;
        Ok(())
    }

    fn flush_buf(&mut self) -> Result<(), StorageError> {
        if !self.buf.is_empty() {
            self.active.write(&self.buf)?;
            self.pending_bytes += self.buf.len() as u64;
            self.buf.clear();
        }
        Ok(())
    }

    /// Close the active segment (durably, so that only the newest segment can
    /// ever end in a torn record) and start the next one with a checkpoint.
    fn roll(&mut self) -> Result<(), StorageError> {
        self.flush_buf()?;
        self.active.sync()?;
        self.pending_bytes = 0;
        let seq = self.segments.last().map_or(1, |s| s.seq + 1);
        self.active = ActiveSegment::create(&self.fs, &self.dir, seq)?;
        self.segments.push(SegmentInfo {
            seq,
            path: self.active.path.clone(),
            start_last_index: self.last_index,
        });
        let checkpoint = self.checkpoint();
        record::encode(&RecordRef::Checkpoint(checkpoint), &mut self.buf)?;
        tracing::debug!(segment = %self.active.path.display(), "rolled to a new log segment");
        Ok(())
    }

    pub(crate) fn checkpoint(&self) -> Checkpoint {
        Checkpoint {
            hard_state: self.hard_state,
            snapshot: self.snapshot,
            last_index: self.last_index,
        }
    }

    /// Remove what the (now durable) latest snapshot supersedes: older
    /// snapshot files, and every segment before the newest one that started
    /// with nothing beyond the snapshot.
    fn cleanup(&mut self) -> Result<(), StorageError> {
        let Some(meta) = self.snapshot else {
            return Ok(());
        };
        let keep = snapshot_file::snapshot_name(meta.index);
        let mut removed = false;
        let names = self
            .fs
            .read_dir(&self.dir)
            .map_err(StorageError::io("list", &self.dir))?;
        for name in names {
            let name = name.to_string_lossy();
            if snapshot_file::parse_snapshot_name(&name).is_some() && name != keep {
                remove(&self.fs, &self.dir.join(&*name))?;
                removed = true;
            }
        }
        let first_kept = self
            .segments
            .iter()
            .rposition(|s| s.start_last_index <= meta.index)
            .unwrap_or(0);
        // Newest first: a crash part-way leaves a gap, and recovery starts
        // after the last gap, at a segment this rule allowed to start from.
        for segment in self.segments.drain(..first_kept).rev() {
            remove(&self.fs, &segment.path)?;
            tracing::debug!(segment = %segment.path.display(), "deleted a log segment covered by the snapshot");
            removed = true;
        }
        if removed {
            sync_dir(&self.fs, &self.dir)?;
        }
        Ok(())
    }
}

/// Remove one file.
pub(crate) fn remove(fs: &impl Fs, path: &Path) -> Result<(), StorageError> {
    fs.remove_file(path)
        .map_err(StorageError::io("remove", path))
}

impl<F: Fs> Storage for DiskStorage<F> {
    fn append(&mut self, actions: &[Action]) -> Result<(), StorageError> {
        DiskStorage::append(self, actions)
    }

    fn sync(&mut self) -> Result<(), StorageError> {
        DiskStorage::sync(self)
    }

    fn pending_bytes(&self) -> u64 {
        DiskStorage::pending_bytes(self)
    }
}
