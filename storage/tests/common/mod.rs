//! Shared helpers: unique temporary directories and action builders.
#![allow(dead_code)]

use core_raft::message::Payload;
use core_raft::rng::SplitMix64;
use core_raft::{Action, Durable, Entry, HardState, LogIndex, NodeId, Snapshot, Term};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// A fresh directory under the system temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let path = std::env::temp_dir().join(format!(
            "storage-test-{name}-{}-{nanos}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Files in the directory whose name starts with `prefix`, sorted.
    pub fn files(&self, prefix: &str) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.0)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
            .collect();
        files.sort();
        files
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn hard_state(term: u64, vote: Option<u64>, commit: u64) -> Action {
    Action::PersistHardState(HardState {
        term: Term(term),
        vote: vote.map(NodeId),
        commit: LogIndex(commit),
    })
}

/// Entries `from..=to` in `term`, each carrying `size` bytes.
pub fn entries(from: u64, to: u64, term: u64, size: usize) -> Action {
    Action::PersistEntries(
        (from..=to)
            .map(|i| Entry {
                index: LogIndex(i),
                term: Term(term),
                payload: Payload::Command(vec![(i % 251) as u8; size]),
            })
            .collect(),
    )
}

pub fn snapshot(index: u64, term: u64, data: &[u8], discard_log: bool) -> Action {
    Action::PersistSnapshot {
        snapshot: Snapshot {
            membership: Default::default(),
            index: LogIndex(index),
            term: Term(term),
            data: data.to_vec(),
            external: false,
        },
        discard_log,
    }
}

/// One random persist action that a correct node could emit given `model`.
pub fn random_action(rng: &mut SplitMix64, model: &Durable) -> Action {
    let hs = model.hard_state;
    let snap_index = model.snapshot.as_ref().map_or(0, |s| s.index.0);
    let last = model.last_index().0;
    if hs.term.0 == 0 {
        // A node has a term before it holds any entry.
        return hard_state(1, None, 0);
    }
    match rng.range_inclusive(0, 9) {
        0 | 1 => {
            let term = hs.term.0 + rng.range_inclusive(0, 1);
            Action::PersistHardState(HardState {
                term: Term(term.max(1)),
                vote: (rng.range_inclusive(0, 1) == 1).then(|| NodeId(rng.range_inclusive(1, 3))),
                commit: LogIndex(rng.range_inclusive(0, last)),
            })
        }
        2 if last > snap_index => {
            let index = rng.range_inclusive(snap_index + 1, last);
            let term = model
                .entries
                .iter()
                .find(|e| e.index.0 == index)
                .expect("live entry")
                .term;
            Action::PersistSnapshot {
                snapshot: Snapshot {
                    membership: Default::default(),
                    index: LogIndex(index),
                    term,
                    // Sometimes several sectors long, so that a crash can
                    // tear a snapshot file that was not fsynced.
                    data: vec![rng.next_u64() as u8; rng.range_inclusive(0, 1200) as usize],
                    external: false,
                },
                discard_log: false,
            }
        }
        3 if rng.range_inclusive(0, 3) == 0 => Action::PersistSnapshot {
            snapshot: Snapshot {
                membership: Default::default(),
                index: LogIndex(snap_index + rng.range_inclusive(1, 20)),
                term: hs.term,
                data: b"installed".to_vec(),
                external: false,
            },
            discard_log: true,
        },
        _ => {
            // Mostly appends at the end, sometimes an overwrite of a suffix.
            let from = if rng.range_inclusive(0, 4) == 0 {
                rng.range_inclusive(snap_index + 1, last + 1)
            } else {
                last + 1
            };
            let count = rng.range_inclusive(1, 6);
            let term = hs.term.max(Term(1));
            let entries = (from..from + count)
                .map(|i| Entry {
                    index: LogIndex(i),
                    term,
                    payload: if rng.range_inclusive(0, 9) == 0 {
                        Payload::Noop
                    } else {
                        Payload::Command(vec![i as u8; rng.range_inclusive(0, 200) as usize])
                    },
                })
                .collect();
            Action::PersistEntries(entries)
        }
    }
}
