//! Shared helpers: unique temporary directories and action builders.
#![allow(dead_code)]

use core_raft::message::Payload;
use core_raft::{Action, Entry, HardState, LogIndex, NodeId, Snapshot, Term};
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
        },
        discard_log,
    }
}
