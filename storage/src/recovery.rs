//! Opening a data directory: replay the log, repair a torn tail, load the
//! snapshot the log names, tidy what a crash left behind, and check the
//! result with [`Durable::validate`].

use crate::disk::{remove, DiskStorage};
use crate::error::StorageError;
use crate::record::{self, Checkpoint, Frame, Record, RecordRef};
use crate::segment::{self, sync_dir, ActiveSegment, SegmentInfo};
use crate::snapshot_file;
use crate::{RecoveryReport, StorageOptions, TornTail};
use core_raft::{Durable, LogIndex};
use std::fs;
use std::path::{Path, PathBuf};

/// The files found in a data directory.
#[derive(Default)]
struct Listing {
    segments: Vec<(u64, PathBuf)>,
    snapshots: Vec<(LogIndex, PathBuf)>,
    temps: Vec<PathBuf>,
}

fn list(dir: &Path) -> Result<Listing, StorageError> {
    let mut listing = Listing::default();
    for entry in fs::read_dir(dir).map_err(StorageError::io("list", dir))? {
        let entry = entry.map_err(StorageError::io("list", dir))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if let Some(seq) = segment::parse_segment_name(&name) {
            listing.segments.push((seq, entry.path()));
        } else if let Some(index) = snapshot_file::parse_snapshot_name(&name) {
            listing.snapshots.push((index, entry.path()));
        } else if snapshot_file::is_temp_name(&name) {
            listing.temps.push(entry.path());
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
    path: &Path,
    is_last: bool,
    durable: &mut Durable,
    report: &mut RecoveryReport,
) -> Result<Option<Replayed>, StorageError> {
    let bytes = fs::read(path).map_err(StorageError::io("read segment", path))?;
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
                match (&record, checkpoint.is_none()) {
                    (Record::Checkpoint(cp), true) => checkpoint = Some(*cp),
                    (_, true) => {
                        return Err(corrupt(at, "a segment must start with a checkpoint".into()))
                    }
                    (Record::Checkpoint(_), false) => {
                        return Err(corrupt(
                            at,
                            "a checkpoint in the middle of a segment".into(),
                        ))
                    }
                    _ => {}
                }
                record.replay(durable);
                report.records += 1;
                at += len;
            }
            Frame::Torn(what) if is_last => {
                tracing::warn!(segment = %path.display(), offset = at, %what, "truncating a torn final record");
                segment::truncate(path, at as u64)?;
                report.torn_tail = Some(TornTail {
                    path: path.to_path_buf(),
                    offset: at as u64,
                    discarded_bytes: (bytes.len() - at) as u64,
                    reason: what,
                });
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

/// Open the store in `dir`; see [`DiskStorage::open`].
pub(crate) fn recover(
    dir: &Path,
    options: StorageOptions,
) -> Result<(DiskStorage, Durable, RecoveryReport), StorageError> {
    fs::create_dir_all(dir).map_err(StorageError::io("create data directory", dir))?;
    let dir = dir.to_path_buf();
    let mut report = RecoveryReport::default();
    let listing = list(&dir)?;

    // A snapshot never renamed into place: its persist never completed.
    for tmp in &listing.temps {
        tracing::warn!(file = %tmp.display(), "removing a snapshot left unfinished by a crash");
        remove(tmp)?;
        report.removed.push(tmp.clone());
    }

    if listing.segments.is_empty() && !listing.snapshots.is_empty() {
        return Err(StorageError::MissingSegments {
            dir,
            what: "snapshot files exist but there is no log segment (log-*.seg)".into(),
        });
    }

    // Segment deletion removes a prefix newest-first, so after a crash the
    // live log is the contiguous run at the end; older files are leftovers.
    let run_start = (1..listing.segments.len())
        .rev()
        .find(|&i| listing.segments[i - 1].0 + 1 != listing.segments[i].0)
        .unwrap_or(0);
    let (leftovers, run) = listing.segments.split_at(run_start);

    let mut durable = Durable::default();
    let mut segments = Vec::new();
    let mut active_len = 0;
    for (i, (seq, path)) in run.iter().enumerate() {
        let is_last = i + 1 == run.len();
        match replay_segment(path, is_last, &mut durable, &mut report)? {
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
                remove(path)?;
                report.removed.push(path.clone());
            }
        }
    }

    // Swap the snapshot placeholder for the file the log names.
    let current = durable.snapshot.as_ref().map(|s| (s.index, s.term));
    if let Some((index, term)) = current {
        let path = dir.join(snapshot_file::snapshot_name(index));
        if !path.exists() {
            return Err(StorageError::MissingSnapshot { path, index });
        }
        let snapshot = snapshot_file::read(&path)?;
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
    }
    let snap_index = current.map_or(LogIndex(0), |(index, _)| index);

    // Replaying from a later segment is only sound if a snapshot covers what
    // the deleted segments held (see `DiskStorage::cleanup`).
    if !segments.is_empty() && !segments.iter().any(|s| s.start_last_index <= snap_index) {
        return Err(StorageError::MissingSegments {
            what: format!(
                "{} is the oldest segment left and starts after index {}, \
                 but the snapshot only covers through index {snap_index}",
                segments[0].path.display(),
                segments[0].start_last_index
            ),
            dir,
        });
    }

    durable
        .validate()
        .map_err(|source| StorageError::Inconsistent {
            dir: dir.clone(),
            source,
        })?;

    // Only now, with the state known good, tidy up what a crash left behind.
    for (_, path) in leftovers {
        remove(path)?;
        report.removed.push(path.clone());
    }
    for (index, path) in &listing.snapshots {
        if Some(*index) != current.map(|(i, _)| i) {
            remove(path)?;
            report.removed.push(path.clone());
        }
    }
    if !report.removed.is_empty() {
        sync_dir(&dir)?;
    }

    let snapshot = current.map(|(index, term)| record::SnapshotMeta { index, term });
    let last_index = durable.last_index();
    let active = match segments.last() {
        Some(last) => ActiveSegment::reopen(last.path.clone(), active_len)?,
        None => {
            let seq = listing.segments.last().map_or(1, |(seq, _)| seq + 1);
            let mut active = ActiveSegment::create(&dir, seq)?;
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
            active
        }
    };
    let storage = DiskStorage {
        dir,
        options,
        active,
        segments,
        hard_state: durable.hard_state,
        snapshot,
        last_index,
        pending_bytes: 0,
        cleanup_due: false,
        buf: Vec::new(),
    };
    report.segments = storage.segments.len();
    tracing::info!(
        dir = %storage.dir.display(),
        segments = report.segments,
        records = report.records,
        torn_tail = report.torn_tail.is_some(),
        removed = report.removed.len(),
        "recovered Raft storage"
    );
    Ok((storage, durable, report))
}
