//! Fault injection's I/O half (see `node_shell::faults`): reading the
//! control file, and delaying fsyncs. The frame filter is the shell's, so
//! this runtime and the threads one drop exactly the same frames.
//! `driver-tokio` has the same few lines (the drivers share no crate
//! that may do I/O besides `storage`, which should not know about tests).

use core_raft::{Action, NodeId};
use node_shell::{FaultControl, NodeInput, FAULTS_FILE};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use storage::{Storage, StorageError};

/// The control file of one node with fault injection on.
pub(crate) struct FaultFile {
    path: PathBuf,
    control: FaultControl,
    delay_ms: Arc<AtomicU64>,
}

impl FaultFile {
    /// Fault injection on for `node`, controlled by the file in `data_dir`.
    pub(crate) fn enable(node: u64, data_dir: &Path) -> FaultFile {
        let path = data_dir.join(FAULTS_FILE);
        let control = FaultControl::enable(NodeId(node), &path.display().to_string());
        FaultFile {
            path,
            control,
            delay_ms: Arc::new(AtomicU64::new(0)),
        }
    }

    /// `storage` with each sync delayed as the file says.
    pub(crate) fn slow_disk<S: Storage>(&self, storage: S) -> DelayedSync<S> {
        DelayedSync {
            inner: storage,
            delay_ms: Arc::clone(&self.delay_ms),
        }
    }

    /// Read the file (a missing one means no faults); the shell's input if
    /// the link faults may have changed. Blocking, but a read of a few
    /// bytes every 50 ms is cheaper than handing it to a thread.
    pub(crate) fn poll(&mut self) -> Option<NodeInput> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => {
                tracing::warn!("fault injection: cannot read {}: {e}", self.path.display());
                return None;
            }
        };
        let plan = self.control.update(&text)?;
        self.delay_ms.store(plan.disk_delay_ms, Ordering::Relaxed);
        Some(NodeInput::Faults(plan.links))
    }
}

/// A storage whose syncs wait first: a slow disk, as the disk thread sees
/// one (its loop keeps serving; the gate holds what depends on the sync).
pub(crate) struct DelayedSync<S> {
    inner: S,
    delay_ms: Arc<AtomicU64>,
}

impl<S: Storage> Storage for DelayedSync<S> {
    fn append(&mut self, actions: &[Action]) -> Result<(), StorageError> {
        self.inner.append(actions)
    }

    fn sync(&mut self) -> Result<(), StorageError> {
        let ms = self.delay_ms.load(Ordering::Relaxed);
        if ms > 0 {
            std::thread::sleep(Duration::from_millis(ms));
        }
        self.inner.sync()
    }

    fn pending_bytes(&self) -> u64 {
        self.inner.pending_bytes()
    }
}
