//! A slow disk on purpose: a [`Storage`] whose syncs first wait a delay
//! that can be changed while it runs (fault injection, `kv serve
//! --fault-injection`). On a disk thread this is what a slow fsync looks
//! like to a node: its loop keeps serving while the gate holds back what
//! depends on the sync.

use crate::{Storage, StorageError};
use core_raft::Action;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// `inner` with each sync delayed by `delay_ms` (0: no delay), read at
/// every sync.
pub struct DelayedSync<S> {
    inner: S,
    delay_ms: Arc<AtomicU64>,
}

impl<S: Storage> DelayedSync<S> {
    /// Wrap `inner`; whoever holds `delay_ms` sets the delay.
    pub fn new(inner: S, delay_ms: Arc<AtomicU64>) -> Self {
        DelayedSync { inner, delay_ms }
    }
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
