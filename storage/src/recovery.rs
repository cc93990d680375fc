//! Opening a data directory: replay the log, repair a torn tail, load the
//! snapshot the log names, tidy what a crash left behind, and check the
//! result with [`Durable::validate`].

use crate::disk::{remove, DiskStorage};
use crate::error::StorageError;
use crate::fs::Fs;
use crate::record::{self, Checkpoint, Frame, Record, RecordRef};
use crate::segment::{self, sync_dir, ActiveSegment, SegmentInfo};
use crate::snapshot_file;
use crate::{dir_lock, RecoveryReport, StorageOptions, TornTail};
use core_raft::{Durable, LogIndex, Term};
use std::io;
use std::path::{Path, PathBuf};

/// A segment file: its sequence number and path.
type SegmentFile = (u64, PathBuf);

/// The files found in a data directory.
#[derive(Default)]
struct Listing {
    segments: Vec<SegmentFile>,
    snapshots: Vec<(LogIndex, PathBuf)>,
    temps: Vec<PathBuf>,
}

fn list(fs: &impl Fs, dir: &Path) -> Result<Listing, StorageError> {
    let mut listing = Listing::default();
    for name in fs.read_dir(dir).map_err(StorageError::io("list", dir))? {
        let path = dir.join(&name);
        let name = name.to_string_lossy();
        if let Some(seq) = segment::parse_segment_name(&name) {
            listing.segments.push((seq, path));
        } else if let Some(index) = snapshot_file::parse_snapshot_name(&name) {
            listing.snapshots.push((index, path));
        } else if snapshot_file::is_temp_name(&name) {
            listing.temps.push(path);
        }
    }
    listing.segments.sort();
    listing.snapshots.sort();
    Ok(listing)
}

/// The result of replaying one segment.
struct Replayed {
    checkpoint: Checkpoint,
    /// Bytes of valid records.
    valid_len: u64,
}

/// Replay the segment at `path` into `durable`. Only the last segment may end
/// in a torn record; it is cut off and reported.
fn replay_segment(
    fs: &impl Fs,
    path: &Path,
    is_last: bool,
    durable: &mut Durable,
    report: &mut RecoveryReport,
) -> Result<Option<Replayed>, StorageError> {
    let bytes = fs
        .read(path)
        .map_err(StorageError::io("read segment", path))?;
    let corrupt = |offset: usize, what: String| StorageError::CorruptRecord {
        path: path.to_path_buf(),
        offset: offset as u64,
        what,
    };
    let mut at = 0;
    let mut checkpoint = None;
    while at < bytes.len() {
        match record::decode(&bytes, at) {
            Frame::Record(record, len) => {
                match checkpoint_in_place(&record, checkpoint.is_none()) {
                    Ok(Some(cp)) => checkpoint = Some(cp),
                    Ok(None) => {}
                    Err(what) => return Err(corrupt(at, what.into())),
                }
                record.replay(durable);
                report.records += 1;
                at += len;
            }
            Frame::Torn(what) if is_last => {
                cut_torn_tail(fs, path, at, bytes.len(), what, report)?;
                break;
            }
            Frame::Torn(what) => {
                return Err(corrupt(
                    at,
                    format!("{what}, but only the newest segment may end in a torn record"),
                ))
            }
            Frame::Corrupt(what) => return Err(corrupt(at, what)),
        }
    }
    match checkpoint {
        Some(checkpoint) => Ok(Some(Replayed {
            checkpoint,
            valid_len: at as u64,
        })),
        None if is_last => Ok(None),
        None => Err(corrupt(0, "segment is empty".into())),
    }
}

/// A segment opens with its checkpoint and holds no other. Returns the
/// checkpoint if `record` (the segment's first record when `first`) is it,
/// or what is out of place.
fn checkpoint_in_place(record: &Record, first: bool) -> Result<Option<Checkpoint>, &'static str> {
    match (record, first) {
        (Record::Checkpoint(cp), true) => Ok(Some(*cp)),
        (_, true) => Err("a segment must start with a checkpoint"),
        (Record::Checkpoint(_), false) => Err("a checkpoint in the middle of a segment"),
        _ => Ok(None),
    }
}

/// Cut the newest segment at `path` (`len` bytes) back to `at`, where a
/// torn record starts, and report it. The record's persist was never
/// acknowledged as durable, so dropping it loses nothing promised.
fn cut_torn_tail(
    fs: &impl Fs,
    path: &Path,
    at: usize,
    len: usize,
    what: String,
    report: &mut RecoveryReport,
) -> Result<(), StorageError> {
    tracing::warn!(segment = %path.display(), offset = at, %what, "truncating a torn final record");
    segment::truncate(fs, path, at as u64)?;
    report.torn_tail = Some(TornTail {
        path: path.to_path_buf(),
        offset: at as u64,
        discarded_bytes: (len - at) as u64,
        reason: what,
    });
    Ok(())
}

/// Open the store in `dir`; see [`DiskStorage::open`].
///
/// Replay repairs only what a crash can leave in the newest segment (a torn
/// final record, a segment whose checkpoint never landed); snapshot
/// temporaries go first since no record can name them. Every other leftover
/// is removed, and a new segment created, only once the recovered state has
/// checked out.
pub(crate) fn recover<F: Fs>(
    fs: F,
    dir: &Path,
    options: StorageOptions,
) -> Result<(DiskStorage<F>, Durable, RecoveryReport), StorageError> {
    fs.create_dir_all(dir)
        .map_err(StorageError::io("create data directory", dir))?;
    // Before reading anything: another store may be writing here.
    let lock = dir_lock::lock(&fs, dir)?;
    let dir = dir.to_path_buf();
    let mut report = RecoveryReport::default();
    let listing = list(&fs, &dir)?;
    remove_unfinished_snapshots(&fs, &listing, &mut report)?;
    if listing.segments.is_empty() && !listing.snapshots.is_empty() {
        return Err(StorageError::MissingSegments {
            dir,
            what: "snapshot files exist but there is no log segment (log-*.seg)".into(),
        });
    }
    let (leftovers, run) = split_live_run(&listing.segments);
    let ReplayedLog {
        mut durable,
        mut segments,
        active_len,
    } = replay_run(&fs, run, &mut report)?;
    let current = load_named_snapshot(&fs, &dir, &mut durable)?;
    let current_index = current.map(|(index, _)| index);
    check_segments_cover(&dir, &segments, current_index.unwrap_or(LogIndex(0)))?;
    durable
        .validate()
        .map_err(|source| StorageError::Inconsistent {
            dir: dir.clone(),
            source,
        })?;
    let snapshots = &listing.snapshots;
    remove_leftovers(&fs, &dir, leftovers, snapshots, current_index, &mut report)?;
    let snapshot = current.map(|(index, term)| record::SnapshotMeta { index, term });
    let next_seq = listing.segments.last().map_or(1, |(seq, _)| seq + 1);
    let active = open_active(
        &fs,
        &dir,
        next_seq,
        &mut segments,
        &durable,
        snapshot,
        active_len,
    )?;
    let storage = DiskStorage {
        fs,
        _lock: lock,
        dir,
        options,
        active,
        segments,
        hard_state: durable.hard_state,
        snapshot,
        last_index: durable.last_index(),
        pending_bytes: 0,
        cleanup_due: false,
        buf: Vec::new(),
        failed: None,
    };
    report.segments = storage.segments.len();
    log_recovered(&storage, &report);
    Ok((storage, durable, report))
}

/// One line saying what recovery found and did.
fn log_recovered<F: Fs>(storage: &DiskStorage<F>, report: &RecoveryReport) {
    tracing::info!(
        dir = %storage.dir.display(),
        segments = report.segments,
        records = report.records,
        torn_tail = report.torn_tail.is_some(),
        removed = report.removed.len(),
        "recovered Raft storage"
    );
}

/// A snapshot never renamed into place: its persist never completed, and no
/// record can name it, so it goes at once.
fn remove_unfinished_snapshots(
    fs: &impl Fs,
    listing: &Listing,
    report: &mut RecoveryReport,
) -> Result<(), StorageError> {
    for tmp in &listing.temps {
        tracing::warn!(file = %tmp.display(), "removing a snapshot left unfinished by a crash");
        remove(fs, tmp)?;
        report.removed.push(tmp.clone());
    }
    Ok(())
}

/// Split the segments (sorted by sequence number) into leftovers and the
/// live log. Segment deletion removes a prefix newest-first, so after a crash
/// the live log is the contiguous run at the end; older files are leftovers.
fn split_live_run(segments: &[SegmentFile]) -> (&[SegmentFile], &[SegmentFile]) {
    let run_start = (1..segments.len())
        .rev()
        .find(|&i| segments[i - 1].0 + 1 != segments[i].0)
        .unwrap_or(0);
    segments.split_at(run_start)
}

/// What replaying the live segments produced.
struct ReplayedLog {
    /// The state the records describe (with the snapshot still a placeholder).
    durable: Durable,
    /// The segments kept, oldest first.
    segments: Vec<SegmentInfo>,
    /// Valid bytes in the newest kept segment: appending resumes there.
    active_len: u64,
}

/// Replay every segment of the live run, oldest first.
fn replay_run(
    fs: &impl Fs,
    run: &[SegmentFile],
    report: &mut RecoveryReport,
) -> Result<ReplayedLog, StorageError> {
    let mut durable = Durable::default();
    let mut segments = Vec::new();
    let mut active_len = 0;
    for (i, (seq, path)) in run.iter().enumerate() {
        let is_last = i + 1 == run.len();
        match replay_segment(fs, path, is_last, &mut durable, report)? {
            Some(replayed) => {
                segments.push(SegmentInfo {
                    seq: *seq,
                    path: path.clone(),
                    start_last_index: replayed.checkpoint.last_index,
                });
                active_len = replayed.valid_len;
            }
            None => {
                // The newest segment was created but its checkpoint never
                // reached the disk: drop it and keep appending to the one before.
                // (`active_len` still holds that one's length.)
                remove(fs, path)?;
                report.removed.push(path.clone());
            }
        }
    }
    Ok(ReplayedLog {
        durable,
        segments,
        active_len,
    })
}

/// Swap the snapshot placeholder the log's last marker left in `durable` for
/// the file it names, checking that the file is the one the log expects.
/// Returns that snapshot's index and term.
fn load_named_snapshot(
    fs: &impl Fs,
    dir: &Path,
    durable: &mut Durable,
) -> Result<Option<(LogIndex, Term)>, StorageError> {
    let Some((index, term)) = durable.snapshot.as_ref().map(|s| (s.index, s.term)) else {
        return Ok(None);
    };
    let path = dir.join(snapshot_file::snapshot_name(index));
    let snapshot = match snapshot_file::read(fs, &path) {
        Err(StorageError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
            return Err(StorageError::MissingSnapshot { path, index })
        }
        other => other?,
    };
    if (snapshot.index, snapshot.term) != (index, term) {
        return Err(StorageError::CorruptSnapshot {
            path,
            offset: 0,
            what: format!(
                "the log expects index {index} term {term}, the file holds index {} term {}",
                snapshot.index, snapshot.term
            ),
        });
    }
    durable.snapshot = Some(snapshot);
    Ok(Some((index, term)))
}

/// Replaying from a later segment is only sound if a snapshot covers what
/// the deleted segments held (see `DiskStorage::cleanup`): some kept segment
/// must have started at or below the snapshot's index.
fn check_segments_cover(
    dir: &Path,
    segments: &[SegmentInfo],
    snap_index: LogIndex,
) -> Result<(), StorageError> {
    if segments.is_empty() || segments.iter().any(|s| s.start_last_index <= snap_index) {
        return Ok(());
    }
    Err(StorageError::MissingSegments {
        what: format!(
            "{} is the oldest segment left and starts after index {}, \
             but the snapshot only covers through index {snap_index}",
            segments[0].path.display(),
            segments[0].start_last_index
        ),
        dir: dir.to_path_buf(),
    })
}

/// Remove the segments before the live run and every snapshot file but the
/// current one (if any), then make the removals durable.
fn remove_leftovers(
    fs: &impl Fs,
    dir: &Path,
    leftovers: &[SegmentFile],
    snapshots: &[(LogIndex, PathBuf)],
    current: Option<LogIndex>,
    report: &mut RecoveryReport,
) -> Result<(), StorageError> {
    for (_, path) in leftovers {
        remove(fs, path)?;
        report.removed.push(path.clone());
    }
    for (index, path) in snapshots {
        if Some(*index) != current {
            remove(fs, path)?;
            report.removed.push(path.clone());
        }
    }
    if !report.removed.is_empty() {
        sync_dir(fs, dir)?;
    }
    Ok(())
}

/// Reopen the newest kept segment for appending at `active_len`, or, when no
/// segment survived, start segment `next_seq` (after every sequence number
/// seen, so no name is reused), opening with a checkpoint of the recovered
/// state, and add it to `segments`.
fn open_active<F: Fs>(
    fs: &F,
    dir: &Path,
    next_seq: u64,
    segments: &mut Vec<SegmentInfo>,
    durable: &Durable,
    snapshot: Option<record::SnapshotMeta>,
    active_len: u64,
) -> Result<ActiveSegment<F>, StorageError> {
    if let Some(last) = segments.last() {
        return ActiveSegment::reopen(fs, last.path.clone(), active_len);
    }
    let seq = next_seq;
    let last_index = durable.last_index();
    let mut active = ActiveSegment::create(fs, dir, seq)?;
    let checkpoint = Checkpoint {
        hard_state: durable.hard_state,
        snapshot,
        last_index,
    };
    let mut buf = Vec::new();
    record::encode(&RecordRef::Checkpoint(checkpoint), &mut buf)?;
    active.write(&buf)?;
    active.sync()?;
    segments.push(SegmentInfo {
        seq,
        path: active.path.clone(),
        start_last_index: last_index,
    });
    Ok(active)
}
