//! One owner per data directory: while a store has a directory open, a
//! second open of it, or reading its identity, is refused with a message
//! naming the directory and the holder; dropping the store (or dying, or a
//! power cut) releases it. `flock` locks belong to an open file, not to a
//! process, so two opens in one process conflict like two processes do.

mod common;

use common::{entries, hard_state, TempDir};
use std::path::Path;
use storage::simfs::SimFs;
use storage::{identity, DiskStorage, StorageError, StorageOptions, LOCK_FILE};

#[test]
fn a_second_open_of_a_directory_in_use_is_refused_until_the_first_closes() {
    let dir = TempDir::new("lock");
    let (mut disk, _, _) = DiskStorage::open(dir.path()).unwrap();
    disk.persist_batch(&[hard_state(1, None, 0), entries(1, 3, 1, 10)])
        .unwrap();

    let err = DiskStorage::open(dir.path()).unwrap_err();
    let message = err.to_string();
    assert!(
        matches!(&err, StorageError::InUse { holder: Some(pid), .. } if *pid == std::process::id()),
        "{err:?}"
    );
    assert!(
        message.contains(&dir.path().display().to_string()),
        "{message}"
    );
    assert!(message.contains("in use"), "{message}");
    assert!(
        message.contains(&format!("pid {}", std::process::id())),
        "{message}"
    );
    // The identity of a directory in use is not read or created either.
    let err = identity::load_or_create(dir.path(), 6824, 1).unwrap_err();
    assert!(matches!(err, StorageError::InUse { .. }), "{err}");
    assert!(!dir.path().join(identity::IDENTITY_FILE).exists());
    // The refused opens changed nothing.
    disk.persist_batch(&[entries(4, 4, 1, 10)]).unwrap();
    drop(disk);

    let (_, recovered, _) = DiskStorage::open(dir.path()).unwrap();
    assert_eq!(recovered.entries.len(), 4);
    assert!(dir.path().join(LOCK_FILE).exists());
}

#[test]
fn the_identity_lock_is_released_when_the_identity_is_read() {
    let dir = TempDir::new("lock-identity");
    let (a, created) = identity::load_or_create(dir.path(), 6824, 1).unwrap();
    assert!(created);
    // As a driver boots: identity, then storage, in one process.
    let (disk, _, _) = DiskStorage::open(dir.path()).unwrap();
    drop(disk);
    let (b, created) = identity::load_or_create(dir.path(), 6824, 1).unwrap();
    assert!(!created);
    assert_eq!(a, b);
}

#[test]
fn a_crash_releases_the_lock_on_the_simulated_filesystem() {
    let sim = SimFs::new(3);
    let dir = Path::new("/sim/node");
    let options = StorageOptions::default();
    let (first, _, _) = DiskStorage::open_in(sim.clone(), dir, options).unwrap();
    let err = DiskStorage::open_in(sim.clone(), dir, options).unwrap_err();
    assert!(
        matches!(err, StorageError::InUse { holder: None, .. }),
        "{err}"
    );
    sim.crash();
    let (_second, _, _) = DiskStorage::open_in(sim.clone(), dir, options).unwrap();
    // The store from before the crash lets go of nothing that is not its.
    drop(first);
    let err = DiskStorage::open_in(sim.clone(), dir, options).unwrap_err();
    assert!(matches!(err, StorageError::InUse { .. }), "{err}");
}
