//! The log's everyday work: rolling segments, overwriting a suffix,
//! snapshots and the log truncation that follows them, across restarts.

mod common;

use common::{entries, hard_state, snapshot, TempDir};
use core_raft::{Action, Durable, LogIndex};
use storage::{DiskStorage, StorageOptions};

const SMALL: StorageOptions = StorageOptions {
    segment_bytes: 1024,
};

/// Persist `batches` one batch per fsync into a fresh store, returning the
/// store and the in-memory model that saw the same actions.
fn write(
    dir: &TempDir,
    options: StorageOptions,
    batches: &[Vec<Action>],
) -> (DiskStorage, Durable) {
    let (mut disk, _, _) = DiskStorage::open_with(dir.path(), options).unwrap();
    let mut model = Durable::default();
    for batch in batches {
        for action in batch {
            model.persist(action);
        }
        disk.persist_batch(batch).unwrap();
    }
    (disk, model)
}

fn reopen(dir: &TempDir, options: StorageOptions) -> (DiskStorage, Durable) {
    let (disk, durable, report) = DiskStorage::open_with(dir.path(), options).unwrap();
    assert_eq!(report.torn_tail, None);
    (disk, durable)
}

#[test]
fn segments_roll_at_the_configured_size_and_replay_in_order() {
    let dir = TempDir::new("rolling");
    let mut batches = vec![vec![hard_state(1, Some(1), 0)]];
    batches.extend((1..=60).map(|i| vec![entries(i, i, 1, 100)]));
    let (disk, model) = write(&dir, SMALL, &batches);
    let segments = disk.segment_paths();
    assert!(
        segments.len() >= 6,
        "60 x ~130 bytes in 1 KiB segments: {segments:?}"
    );
    assert_eq!(segments, dir.files("log-"));
    for path in &segments[..segments.len() - 1] {
        let len = std::fs::metadata(path).unwrap().len();
        assert!(
            (1024..1024 + 200).contains(&len),
            "{path:?} holds {len} bytes"
        );
    }
    drop(disk);
    let (disk, recovered) = reopen(&dir, SMALL);
    assert_eq!(recovered, model);
    assert_eq!(disk.segment_paths(), segments);
}

#[test]
fn an_overwritten_suffix_is_replaced_even_across_segments() {
    let dir = TempDir::new("overwrite");
    let batches = vec![
        vec![hard_state(1, Some(1), 0), entries(1, 30, 1, 64)],
        vec![hard_state(2, None, 3)],
        // A new leader's log wins from index 4 on: 4..=30 are dropped.
        vec![entries(4, 6, 2, 10)],
        vec![entries(7, 7, 2, 10)],
    ];
    let (disk, model) = write(&dir, SMALL, &batches);
    assert_eq!(model.last_index(), LogIndex(7));
    drop(disk);
    let (mut disk, recovered) = reopen(&dir, SMALL);
    assert_eq!(recovered, model);

    // And once more after the restart, from the middle of the new suffix.
    let mut model = model;
    let more = [hard_state(3, Some(2), 3), entries(6, 9, 3, 5)];
    for a in &more {
        model.persist(a);
    }
    disk.persist_batch(&more).unwrap();
    drop(disk);
    let (_, recovered) = reopen(&dir, SMALL);
    assert_eq!(recovered, model);
    assert_eq!(recovered.entries.len(), 9);
}

#[test]
fn a_snapshot_survives_restart_and_truncates_the_log() {
    let dir = TempDir::new("snapshot");
    let mut batches = vec![vec![hard_state(1, Some(1), 0)]];
    batches.extend((1..=50).map(|i| vec![entries(i, i, 1, 100)]));
    let (mut disk, mut model) = write(&dir, SMALL, &batches);
    let before = disk.segment_paths().len();
    assert!(before > 3);

    let snap = snapshot(50, 1, b"state through 50", false);
    model.persist(&snap);
    disk.persist_batch(&[snap]).unwrap();
    assert_eq!(disk.snapshot_index(), LogIndex(50));
    // Every segment before the active one held only covered entries.
    assert_eq!(disk.segment_paths().len(), 1, "{:?}", disk.segment_paths());
    assert_eq!(dir.files("log-"), disk.segment_paths());
    drop(disk);

    let (mut disk, recovered) = reopen(&dir, SMALL);
    assert_eq!(recovered, model);
    assert_eq!(
        recovered.snapshot.as_ref().unwrap().data,
        b"state through 50"
    );

    // The log goes on after the snapshot; a later snapshot replaces the file.
    let more: Vec<Action> = (51..=70).map(|i| entries(i, i, 1, 100)).collect();
    for a in &more {
        model.persist(a);
        disk.persist_batch(std::slice::from_ref(a)).unwrap();
    }
    let snap = snapshot(60, 1, b"state through 60", false);
    model.persist(&snap);
    disk.persist_batch(&[snap]).unwrap();
    assert_eq!(dir.files("snapshot-").len(), 1);
    drop(disk);
    let (_, recovered) = reopen(&dir, SMALL);
    assert_eq!(recovered, model);
    assert_eq!(recovered.entries.first().unwrap().index, LogIndex(61));
}

#[test]
fn an_installed_snapshot_discards_the_conflicting_log() {
    let dir = TempDir::new("install");
    let batches = vec![
        vec![hard_state(1, Some(1), 0), entries(1, 10, 1, 8)],
        vec![
            hard_state(3, None, 0),
            snapshot(8, 2, b"leader's state", true),
        ],
        vec![entries(9, 12, 3, 8)],
    ];
    let (disk, model) = write(&dir, SMALL, &batches);
    drop(disk);
    let (_, recovered) = reopen(&dir, SMALL);
    assert_eq!(recovered, model);
    assert_eq!(recovered.entries.len(), 4);
}

#[test]
fn unsynced_bytes_are_counted_and_one_sync_covers_many_appends() {
    let dir = TempDir::new("pending");
    let (mut disk, _, _) = DiskStorage::open(dir.path()).unwrap();
    assert_eq!(disk.pending_bytes(), 0);
    disk.append(&[hard_state(1, None, 0)]).unwrap();
    let one = disk.pending_bytes();
    assert!(one > 0);
    disk.append(&[
        entries(1, 3, 1, 10),
        Action::NotLeader { leader_hint: None },
    ])
    .unwrap();
    assert!(disk.pending_bytes() > one);
    disk.sync().unwrap();
    assert_eq!(disk.pending_bytes(), 0);
    // Non-persist actions write nothing.
    disk.append(&[Action::Apply(vec![])]).unwrap();
    assert_eq!(disk.pending_bytes(), 0);
}

#[test]
fn execute_writes_each_run_of_persists_before_the_actions_after_it() {
    let dir = TempDir::new("execute");
    let (mut disk, _, _) = DiskStorage::open(dir.path()).unwrap();
    let segment = disk.segment_paths()[0].clone();
    let size = || std::fs::metadata(&segment).unwrap().len();
    let start = size();
    let actions = [
        hard_state(1, Some(1), 0),
        entries(1, 2, 1, 10),
        Action::NotLeader { leader_hint: None },
        Action::ReadFailed {
            id: 1,
            leader_hint: None,
        },
        entries(3, 3, 1, 10),
        Action::NotLeader { leader_hint: None },
    ];
    // `perform` sees every other action, in order, each after the persists
    // before it reached the segment.
    let mut performed = Vec::new();
    disk.execute(&actions, |a| performed.push((a.clone(), size())))
        .unwrap();
    assert_eq!(disk.pending_bytes(), 0);
    let order: Vec<Action> = performed.iter().map(|(a, _)| a.clone()).collect();
    assert_eq!(
        order,
        [actions[2].clone(), actions[3].clone(), actions[5].clone()]
    );
    assert!(start < performed[0].1);
    assert_eq!(performed[0].1, performed[1].1);
    assert!(performed[1].1 < performed[2].1);
    assert_eq!(performed[2].1, size());
    drop(disk);
    let (_, recovered, _) = DiskStorage::open(dir.path()).unwrap();
    assert_eq!(recovered.last_index(), LogIndex(3));
}

/// Snapshot files now carry the cluster membership (format 2). A format-1
/// file, written before membership existed, is refused with a message that
/// names the format and says what to do; it is never read as format 2.
#[test]
fn a_snapshot_file_of_the_format_before_membership_is_refused_with_advice() {
    let dir = TempDir::new("snapshot-v1");
    let mut batches = vec![vec![hard_state(1, Some(1), 0)]];
    batches.extend((1..=5).map(|i| vec![entries(i, i, 1, 10)]));
    let (mut disk, mut model) = write(&dir, SMALL, &batches);
    let mut snap = snapshot(5, 1, b"state", false);
    if let Action::PersistSnapshot { snapshot, .. } = &mut snap {
        snapshot.membership = core_raft::Membership::with_voters([core_raft::NodeId(1)]);
    }
    model.persist(&snap);
    disk.persist_batch(&[snap]).unwrap();
    drop(disk);
    let (_, recovered) = reopen(&dir, SMALL);
    assert_eq!(recovered, model, "the membership survives a restart");
    // Rewrite the file's magic to each older format.
    let file = dir.files("snapshot-").pop().expect("a snapshot file");
    let current = std::fs::read(&file).unwrap();
    assert_eq!(&current[..8], b"RAFTSNP4");
    for (magic, named) in [
        (b"RAFTSNP1", "format 1"),
        (b"RAFTSNP2", "format 2"),
        (b"RAFTSNP3", "format 3"),
    ] {
        let mut bytes = current.clone();
        bytes[..8].copy_from_slice(magic);
        std::fs::write(&file, bytes).unwrap();
        let Err(err) = DiskStorage::open_with(dir.path(), SMALL) else {
            panic!("a {named} snapshot was accepted")
        };
        let err = err.to_string();
        assert!(err.contains(named), "{err}");
        assert!(err.contains("add the node back as a new member"), "{err}");
    }
}
