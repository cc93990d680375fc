//! Crashes and damage: torn tails are repaired and reported, corruption
//! anywhere else refuses to start with the file and offset, and snapshot
//! files left half-done by a crash are ignored.

mod common;

use common::{entries, hard_state, snapshot, TempDir};
use core_raft::{Action, Durable, LogIndex};
use std::fs::{self, OpenOptions};
use std::path::Path;
use storage::{DiskStorage, StorageError, StorageOptions};

const SMALL: StorageOptions = StorageOptions {
    segment_bytes: 2048,
};

fn len(path: &Path) -> u64 {
    fs::metadata(path).unwrap().len()
}

fn truncate(path: &Path, to: u64) {
    OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(to)
        .unwrap();
}

fn flip_byte(path: &Path, at: u64) {
    let mut bytes = fs::read(path).unwrap();
    bytes[at as usize] ^= 0x5a;
    fs::write(path, bytes).unwrap();
}

/// Ten synced batches in one segment; returns the model after each batch and
/// the segment length after each batch.
fn ten_batches(dir: &TempDir) -> (Vec<Durable>, Vec<u64>) {
    let (mut disk, _, _) = DiskStorage::open(dir.path()).unwrap();
    let segment = disk.segment_paths()[0].clone();
    let mut model = Durable::default();
    let (mut models, mut lens) = (Vec::new(), Vec::new());
    for i in 1..=10 {
        let batch = [hard_state(1, Some(1), i - 1), entries(i, i, 1, 40)];
        for a in &batch {
            model.persist(a);
        }
        disk.persist_batch(&batch).unwrap();
        models.push(model.clone());
        lens.push(len(&segment));
    }
    (models, lens)
}

#[test]
fn a_log_cut_mid_record_recovers_to_the_last_whole_record_and_reports_it() {
    let dir = TempDir::new("torn");
    let (models, lens) = ten_batches(&dir);
    let segment = dir.files("log-")[0].clone();
    // Cut the last batch's second record in half.
    truncate(&segment, lens[9] - 20);

    let (mut disk, recovered, report) = DiskStorage::open(dir.path()).unwrap();
    let torn = report.torn_tail.expect("the torn record is reported");
    assert_eq!(torn.path, segment);
    assert!(torn.offset > lens[8] && torn.offset < lens[9], "{torn}");
    assert_eq!(len(&segment), torn.offset);
    // The hard state of batch 10 survived, its entry did not.
    assert_eq!(recovered.entries, models[8].entries);
    assert_eq!(recovered.hard_state, models[9].hard_state);

    // The store keeps working after the repair.
    disk.persist_batch(&[entries(10, 11, 1, 5)]).unwrap();
    drop(disk);
    let (_, recovered, report) = DiskStorage::open(dir.path()).unwrap();
    assert_eq!(report.torn_tail, None);
    assert_eq!(recovered.last_index(), LogIndex(11));
}

#[test]
fn a_short_header_and_a_bad_final_checksum_are_torn_tails_too() {
    let dir = TempDir::new("torn-header");
    let (models, lens) = ten_batches(&dir);
    let segment = dir.files("log-")[0].clone();
    truncate(&segment, lens[8] + 3);
    let (disk, recovered, report) = DiskStorage::open(dir.path()).unwrap();
    assert_eq!(report.torn_tail.unwrap().offset, lens[8]);
    assert_eq!(recovered, models[8]);
    drop(disk);

    // Damage inside the very last record: a torn write, not corruption.
    let last = len(&segment);
    flip_byte(&segment, last - 1);
    let (_, recovered, report) = DiskStorage::open(dir.path()).unwrap();
    assert!(report.torn_tail.unwrap().reason.contains("checksum"));
    assert_eq!(recovered.entries, models[7].entries);
}

#[test]
fn a_flipped_byte_in_the_middle_of_a_segment_refuses_to_start_naming_file_and_offset() {
    let dir = TempDir::new("flip");
    let (_, lens) = ten_batches(&dir);
    let segment = dir.files("log-")[0].clone();
    // Inside the payload of the first record of batch 5.
    flip_byte(&segment, lens[3] + 10);
    let before = fs::read(&segment).unwrap();

    let err = DiskStorage::open(dir.path()).unwrap_err();
    let message = err.to_string();
    assert!(
        matches!(err, StorageError::CorruptRecord { offset, .. } if offset == lens[3]),
        "{message}"
    );
    assert!(
        message.contains(&segment.display().to_string()),
        "{message}"
    );
    assert!(
        message.contains(&format!("at byte {}", lens[3])),
        "{message}"
    );
    assert!(message.contains("checksum"), "{message}");
    // Nothing was repaired or deleted.
    assert_eq!(fs::read(&segment).unwrap(), before);
}

#[test]
fn a_torn_looking_tail_in_an_older_segment_is_corruption() {
    let dir = TempDir::new("old-tail");
    let (mut disk, _, _) = DiskStorage::open_with(dir.path(), SMALL).unwrap();
    disk.persist_batch(&[hard_state(1, None, 0)]).unwrap();
    for i in 1..=40 {
        disk.persist_batch(&[entries(i, i, 1, 100)]).unwrap();
    }
    drop(disk);
    let segments = dir.files("log-");
    assert!(segments.len() > 2);
    let first = &segments[0];
    truncate(first, len(first) - 5);
    let err = DiskStorage::open_with(dir.path(), SMALL).unwrap_err();
    assert!(
        matches!(err, StorageError::CorruptRecord { ref path, .. } if path == first),
        "{err}"
    );
}

#[test]
fn a_leftover_snapshot_temp_file_is_removed_and_the_old_snapshot_used() {
    let dir = TempDir::new("snap-tmp");
    let (mut disk, _, _) = DiskStorage::open(dir.path()).unwrap();
    let actions = [
        hard_state(1, Some(1), 0),
        entries(1, 10, 1, 8),
        snapshot(5, 1, b"old", false),
    ];
    disk.persist_batch(&actions).unwrap();
    drop(disk);
    // A crash while writing the snapshot through 9, before its rename...
    let tmp = dir.path().join(format!("snapshot-{:020}.snap.tmp", 9));
    fs::write(&tmp, b"half a snapshot").unwrap();
    // ...and one that was renamed but whose log record never became durable.
    let unrecorded = dir.path().join(format!("snapshot-{:020}.snap", 10));
    fs::copy(&dir.files("snapshot-")[0], &unrecorded).unwrap();

    let (_, recovered, report) = DiskStorage::open(dir.path()).unwrap();
    let snap = recovered.snapshot.unwrap();
    assert_eq!(
        (snap.index, snap.data.as_slice()),
        (LogIndex(5), &b"old"[..])
    );
    assert_eq!(recovered.entries.first().unwrap().index, LogIndex(6));
    assert!(report.removed.contains(&tmp) && report.removed.contains(&unrecorded));
    assert!(!tmp.exists() && !unrecorded.exists());
}

#[test]
fn a_corrupt_or_missing_snapshot_file_refuses_to_start() {
    let dir = TempDir::new("snap-bad");
    let (mut disk, _, _) = DiskStorage::open(dir.path()).unwrap();
    disk.persist_batch(&[
        hard_state(1, Some(1), 0),
        entries(1, 10, 1, 8),
        snapshot(5, 1, &[7; 100], false),
    ])
    .unwrap();
    drop(disk);
    let file = dir.files("snapshot-")[0].clone();
    let good = fs::read(&file).unwrap();

    flip_byte(&file, 60);
    let err = DiskStorage::open(dir.path()).unwrap_err();
    assert!(matches!(err, StorageError::CorruptSnapshot { .. }), "{err}");
    assert!(
        err.to_string().contains(&file.display().to_string()),
        "{err}"
    );

    fs::write(&file, &good[..good.len() - 1]).unwrap();
    let err = DiskStorage::open(dir.path()).unwrap_err();
    assert!(matches!(err, StorageError::CorruptSnapshot { .. }), "{err}");

    fs::remove_file(&file).unwrap();
    let err = DiskStorage::open(dir.path()).unwrap_err();
    assert!(matches!(err, StorageError::MissingSnapshot { .. }), "{err}");

    fs::write(&file, &good).unwrap();
    assert!(DiskStorage::open(dir.path()).is_ok());
}

#[test]
fn a_missing_middle_segment_refuses_to_start() {
    let dir = TempDir::new("gap");
    let (mut disk, _, _) = DiskStorage::open_with(dir.path(), SMALL).unwrap();
    disk.persist_batch(&[hard_state(1, None, 0)]).unwrap();
    for i in 1..=40 {
        disk.persist_batch(&[entries(i, i, 1, 100)]).unwrap();
    }
    drop(disk);
    let segments = dir.files("log-");
    fs::remove_file(&segments[1]).unwrap();
    let err = DiskStorage::open_with(dir.path(), SMALL).unwrap_err();
    assert!(matches!(err, StorageError::MissingSegments { .. }), "{err}");
    assert!(
        err.to_string()
            .contains(&*segments[2].display().to_string()),
        "{err}"
    );
}

/// Crash simulation: after a synced batch, a second batch is written but not
/// synced, and the "power fails" with any prefix of its bytes on disk.
/// Whatever was synced survives; at most whole unsynced actions reappear.
#[test]
fn a_crash_before_sync_keeps_everything_synced() {
    let synced = [hard_state(1, Some(1), 0), entries(1, 5, 1, 30)];
    let unsynced = [
        hard_state(2, None, 3),
        entries(4, 8, 2, 30),
        entries(9, 9, 2, 30),
    ];
    // The states a recovery may legitimately produce.
    let mut model = Durable::default();
    synced.iter().for_each(|a| {
        model.persist(a);
    });
    let mut allowed = vec![model.clone()];
    for a in &unsynced {
        model.persist(a);
        allowed.push(model.clone());
    }

    // Where each unsynced action's record ends.
    let probe = TempDir::new("crash-probe");
    let (mut disk, _, _) = DiskStorage::open(probe.path()).unwrap();
    disk.persist_batch(&synced).unwrap();
    let segment = disk.segment_paths()[0].clone();
    let mut boundaries = vec![len(&segment)];
    for a in &unsynced {
        disk.append(std::slice::from_ref(a)).unwrap();
        boundaries.push(len(&segment));
    }
    assert!(disk.pending_bytes() > 0);
    drop(disk);

    // Every record boundary, a byte either side, and the middle of each record.
    let mut cuts = Vec::new();
    for pair in boundaries.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        cuts.extend([a, a + 1, a + 7, a + 8, (a + b) / 2, b - 1]);
    }
    cuts.push(*boundaries.last().unwrap());
    for cut in cuts {
        let dir = TempDir::new("crash");
        let (mut disk, _, _) = DiskStorage::open(dir.path()).unwrap();
        disk.persist_batch(&synced).unwrap();
        disk.append(&unsynced).unwrap();
        let segment = disk.segment_paths()[0].clone();
        drop(disk); // no sync
        truncate(&segment, cut);
        let (_, recovered, report) = DiskStorage::open(dir.path()).unwrap();
        let whole = boundaries[1..].iter().filter(|b| **b <= cut).count();
        assert_eq!(recovered, allowed[whole], "cut at byte {cut}");
        assert_eq!(
            report.torn_tail.is_some(),
            !boundaries.contains(&cut),
            "cut at byte {cut}"
        );
    }

    // A plain drop without sync loses nothing the OS already has.
    let dir = TempDir::new("crash-drop");
    let (mut disk, _, _) = DiskStorage::open(dir.path()).unwrap();
    disk.persist_batch(&synced).unwrap();
    disk.append(&unsynced).unwrap();
    drop(disk);
    let (_, recovered, _) = DiskStorage::open(dir.path()).unwrap();
    assert_eq!(&recovered, allowed.last().unwrap());
}

#[test]
fn actions_other_than_persists_write_nothing() {
    let dir = TempDir::new("ignore");
    let (mut disk, _, _) = DiskStorage::open(dir.path()).unwrap();
    disk.persist_batch(&[Action::NotLeader { leader_hint: None }])
        .unwrap();
    drop(disk);
    let (_, recovered, report) = DiskStorage::open(dir.path()).unwrap();
    assert_eq!(recovered, Durable::default());
    assert_eq!(report.records, 1, "only the segment checkpoint");
}

#[test]
fn leftovers_of_an_interrupted_log_truncation_are_removed() {
    let dir = TempDir::new("leftover-segments");
    let (mut disk, _, _) = DiskStorage::open_with(dir.path(), SMALL).unwrap();
    let mut model = Durable::default();
    let mut batches = vec![vec![hard_state(1, None, 0)]];
    batches.extend((1..=100).map(|i| vec![entries(i, i, 1, 100)]));
    batches.push(vec![snapshot(100, 1, b"through 100", false)]);
    let mut saved = Vec::new();
    for batch in &batches {
        // Keep a copy of every segment, as a crash might resurrect them.
        for path in disk.segment_paths() {
            saved.push((path.clone(), fs::read(&path).unwrap()));
        }
        batch.iter().for_each(|a| {
            model.persist(a);
        });
        disk.persist_batch(batch).unwrap();
    }
    let live = disk.segment_paths();
    assert_eq!(live.len(), 1);
    drop(disk);
    assert_eq!(dir.files("log-"), live);

    // The deletion of the first and of the last old segment "did not happen".
    let first = saved.first().unwrap().clone();
    let last_old = saved
        .iter()
        .rev()
        .find(|(p, _)| *p != live[0])
        .unwrap()
        .clone();
    for (path, bytes) in [&first, &last_old] {
        fs::write(path, bytes).unwrap();
    }
    let (_, recovered, report) = DiskStorage::open_with(dir.path(), SMALL).unwrap();
    assert_eq!(recovered, model);
    assert!(report.removed.contains(&first.0), "{report:?}");
    assert!(!report.removed.contains(&last_old.0), "{report:?}");
    assert_eq!(report.segments, 2);
}

#[test]
fn an_empty_newest_segment_left_by_a_crash_while_rolling_is_removed() {
    let dir = TempDir::new("empty-newest");
    let (mut disk, _, _) = DiskStorage::open(dir.path()).unwrap();
    let actions = [hard_state(1, Some(1), 0), entries(1, 3, 1, 10)];
    disk.persist_batch(&actions).unwrap();
    drop(disk);
    let empty = dir.path().join(format!("log-{:020}.seg", 2));
    fs::write(&empty, b"").unwrap();

    let (mut disk, recovered, report) = DiskStorage::open(dir.path()).unwrap();
    assert_eq!(recovered.last_index(), LogIndex(3));
    assert_eq!(report.removed, vec![empty.clone()]);
    disk.persist_batch(&[entries(4, 4, 1, 10)]).unwrap();
    drop(disk);
    let (_, recovered, _) = DiskStorage::open(dir.path()).unwrap();
    assert_eq!(recovered.last_index(), LogIndex(4));
}

#[test]
fn a_record_that_passes_its_checksum_but_does_not_decode_refuses_to_start() {
    let dir = TempDir::new("undecodable");
    let (_, lens) = ten_batches(&dir);
    let segment = dir.files("log-")[0].clone();
    let mut bytes = fs::read(&segment).unwrap();
    let at = lens[3] as usize;
    let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
    bytes[at + 8..at + 8 + len].fill(0xff);
    let crc = crc32fast::hash(&bytes[at + 8..at + 8 + len]);
    bytes[at + 4..at + 8].copy_from_slice(&crc.to_le_bytes());
    fs::write(&segment, &bytes).unwrap();

    let err = DiskStorage::open(dir.path()).unwrap_err();
    assert!(
        matches!(err, StorageError::CorruptRecord { offset, .. } if offset == lens[3]),
        "{err}"
    );
    assert!(err.to_string().contains("does not decode"), "{err}");
}

/// What an operator reads: the torn-tail report and the corruption error
/// both name the segment file and the byte offset.
#[test]
fn messages_name_the_file_and_offset() {
    let dir = TempDir::new("show");
    let (_, lens) = ten_batches(&dir);
    let segment = dir.files("log-")[0].clone();
    let name = segment.file_name().unwrap().to_string_lossy().into_owned();
    truncate(&segment, lens[9] - 3);
    let torn = DiskStorage::open(dir.path())
        .unwrap()
        .2
        .torn_tail
        .unwrap()
        .to_string();
    assert!(torn.contains(&name), "{torn}");
    let at: u64 = torn
        .split("at byte ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no offset in {torn:?}"));
    assert!(
        at < lens[9],
        "the torn record's offset {at} is past the cut: {torn}"
    );
    flip_byte(&segment, lens[3] + 10);
    let err = DiskStorage::open(dir.path()).unwrap_err().to_string();
    assert!(err.contains(&name), "{err}");
    assert!(err.contains(&format!("byte {}", lens[3])), "{err}");
}
