//! A disk thread for drivers: persist batches are handed over as they come
//! and made durable in the background, with one fsync for every batch that
//! queued while the previous fsync ran (group commit). The driver's event
//! loop never waits for the disk; it learns through a callback which batch
//! is durable and releases what depended on it (see `node-shell`'s gate).

use crate::error::StorageError;
use crate::mem::Storage;
use core_raft::Action;
use std::sync::mpsc;
use std::thread::JoinHandle;

/// A batch number, as handed out by the node shell (increasing).
pub type Batch = u64;

/// Owns a [`Storage`] on its own thread.
pub struct DiskWriter {
    batches: Option<mpsc::Sender<(Batch, Vec<Action>)>>,
    thread: Option<JoinHandle<Result<(), StorageError>>>,
    /// Batches queued by the event loop and not yet handed to the thread.
    queued: Option<(Batch, Vec<Action>)>,
}

impl DiskWriter {
    /// Start the thread. `on_durable` is called on it with the highest batch
    /// made durable after each sync, or with the error that stopped it (the
    /// thread then ends: what reached the disk is unknown, and the node must
    /// stop without acknowledging anything more; recovery sorts it out).
    pub fn start<S, F>(mut storage: S, mut on_durable: F) -> DiskWriter
    where
        S: Storage + Send + 'static,
        F: FnMut(Result<Batch, StorageError>) + Send + 'static,
    {
        let (tx, rx) = mpsc::channel::<(Batch, Vec<Action>)>();
        let thread: JoinHandle<Result<(), StorageError>> = std::thread::Builder::new()
            .name("disk".into())
            .spawn(move || {
                while let Ok((first, mut actions)) = rx.recv() {
                    // Everything that queued meanwhile shares this write
                    // and the next fsync: one write call, one sync.
                    let mut last = first;
                    while let Ok((batch, more)) = rx.try_recv() {
                        actions.extend(more);
                        last = batch;
                    }
                    let result = storage.append(&actions).and_then(|()| storage.sync());
                    match result {
                        Ok(()) => on_durable(Ok(last)),
                        Err(e) => {
                            let reason = e.to_string();
                            on_durable(Err(e));
                            return Err(StorageError::WriterStopped(reason));
                        }
                    }
                }
                Ok(())
            })
            .expect("cannot start the disk thread");
        DiskWriter {
            batches: Some(tx),
            thread: Some(thread),
            queued: None,
        }
    }

    /// Queue batch `batch` (its `Persist*` actions, in order) without
    /// waking the thread: an event loop queues every batch of one turn and
    /// then [`DiskWriter::flush`]es them together, so the thread does not
    /// start an fsync for the first batch while the rest of the turn is
    /// still being stepped. Batches must be queued in increasing order.
    pub fn queue(&mut self, batch: Batch, actions: Vec<Action>) {
        match &mut self.queued {
            Some((last, queued)) => {
                *last = batch;
                queued.extend(actions);
            }
            None => self.queued = Some((batch, actions)),
        }
    }

    /// Hand everything queued to the thread, as one batch.
    pub fn flush(&mut self) {
        if let Some((batch, actions)) = self.queued.take() {
            self.submit(batch, actions);
        }
    }

    /// Hand over batch `batch` (its `Persist*` actions, in order). Batches
    /// must be handed over in increasing order. After the thread stopped on
    /// an error, batches are dropped: the callback has already reported it.
    pub fn submit(&self, batch: Batch, actions: Vec<Action>) {
        if let Some(tx) = &self.batches {
            let _ = tx.send((batch, actions));
        }
    }

    /// Make every batch handed over durable, then stop the thread.
    pub fn finish(mut self) -> Result<(), StorageError> {
        self.stop()
    }

    fn stop(&mut self) -> Result<(), StorageError> {
        self.flush();
        self.batches = None;
        match self.thread.take().map(|t| t.join()) {
            None => Ok(()),
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(StorageError::WriterPanicked),
        }
    }
}

impl Drop for DiskWriter {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemStorage;
    use core_raft::{HardState, Term};
    use std::sync::{Arc, Mutex};

    fn hs(term: u64) -> Action {
        Action::PersistHardState(HardState {
            term: Term(term),
            ..HardState::default()
        })
    }

    #[test]
    fn every_batch_becomes_durable_in_order_and_finish_drains() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        let w = DiskWriter::start(MemStorage::default(), move |r| {
            log.lock().unwrap().push(r.unwrap())
        });
        let mut w = w;
        for b in 1..=50 {
            if b % 2 == 0 {
                w.submit(b, vec![hs(b)]);
            } else {
                // Queued batches go out with the next flush or submit.
                w.queue(b, vec![hs(b)]);
                w.flush();
            }
        }
        w.queue(51, vec![hs(51)]);
        w.finish().unwrap();
        let seen = seen.lock().unwrap();
        // Group commit may merge batches, so not every number is reported,
        // but the reports increase and end with the last batch.
        assert!(seen.windows(2).all(|p| p[0] < p[1]), "{seen:?}");
        assert_eq!(seen.last(), Some(&51), "finish flushes what was queued");
    }

    /// A storage whose sync fails: nothing after it may be acknowledged.
    struct Failing;

    impl Storage for Failing {
        fn append(&mut self, _: &[Action]) -> Result<(), StorageError> {
            Ok(())
        }
        fn sync(&mut self) -> Result<(), StorageError> {
            Err(StorageError::io("fsync", "/dev/broken")(
                std::io::Error::other("EIO"),
            ))
        }
        fn pending_bytes(&self) -> u64 {
            0
        }
    }

    #[test]
    fn a_failed_sync_is_reported_once_and_stops_the_thread() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        let w = DiskWriter::start(Failing, move |r| {
            log.lock().unwrap().push(r.map_err(|e| e.to_string()))
        });
        w.submit(1, vec![hs(1)]);
        w.submit(2, vec![hs(2)]);
        let end = w.finish();
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 1, "{seen:?}");
        assert!(seen[0].as_ref().unwrap_err().contains("fsync /dev/broken"));
        assert!(matches!(end, Err(StorageError::WriterStopped(_))));
    }
}
