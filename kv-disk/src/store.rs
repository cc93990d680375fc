//! [`DiskKv`]: the key/value state, its sessions and its applied index in
//! one redb database.
//!
//! Tables: `data` (key -> the postcard encoding of `(value, version)`,
//! exactly the bytes a `KvStore` snapshot holds for the pair), `sessions`
//! (client -> the postcard encoding of its `Session<Outcome>`), and `meta`
//! (`format`, `applied`, `duplicates`).

use crate::error::{storage, Error};
use crate::snapshot::{self, SnapshotReader};
use core_kv::{
    mutation_rule, read_rule, Admission, ClientId, ClientRequest, LogIndex, Op, Outcome, Seq,
    Session, Version,
};
use redb::{
    Database, Durability, ReadableDatabase as _, ReadableTable as _, ReadableTableMetadata as _,
    StorageBackend, TableDefinition, WriteTransaction,
};
use std::path::{Path, PathBuf};

pub(crate) const DATA: TableDefinition<&str, &[u8]> = TableDefinition::new("data");
pub(crate) const SESSIONS: TableDefinition<u64, &[u8]> = TableDefinition::new("sessions");
pub(crate) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

pub(crate) const META_FORMAT: &str = "format";
pub(crate) const META_APPLIED: &str = "applied";
pub(crate) const META_DUPLICATES: &str = "duplicates";

/// The layout of the tables this build writes and reads. A database of
/// another format is refused at [`DiskKv::open`] ([`Error::Format`]).
pub const FORMAT: u64 = 1;

/// How a [`DiskKv`] trades fsyncs for the length of a replay.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Options {
    /// Commit durably (fsync) every this many applies; the ones between
    /// are committed without fsync and become durable with the next
    /// durable commit. A crash loses at most this many applies, which the
    /// replica applies again from its log. At least 1 (every apply).
    pub durable_every: u64,
    /// Commit the open transaction once it holds this many applies (at
    /// least 1). A commit, durable or not, writes the pages it changed, so
    /// committing every replica step would cost a few page writes per
    /// small write; reads see the open transaction meanwhile, and a crash
    /// only loses what the Raft log still holds.
    pub commit_every: u64,
    /// Bytes of pages redb may cache in memory (redb's own default is
    /// 1 GiB, more than a node with a memory cap can spare).
    pub cache_bytes: usize,
}

impl Default for Options {
    /// A durable commit every 1,000 applies: about one fsync per 1,000
    /// writes under load, and a replay of at most 1,000 entries after a
    /// crash. [`DiskKv::sync`] on a timer bounds it in time as well.
    fn default() -> Self {
        Options {
            durable_every: 1000,
            commit_every: 256,
            cache_bytes: 64 << 20,
        }
    }
}

/// [`core_kv::KvStore`] in a redb database: the same operations, outcomes,
/// versions and exactly-once sessions, and the same snapshot bytes, with
/// the state on disk rather than in memory. Each apply commits its effects
/// and its log index in one transaction, so after a crash the database
/// holds exactly the entries through its durable applied index.
pub struct DiskKv {
    db: Database,
    path: Option<PathBuf>,
    options: Options,
    /// The applied index of the last durable commit.
    durable: Option<LogIndex>,
    /// The applied index of the last commit.
    last_applied: Option<LogIndex>,
    /// Applies since the last durable commit.
    pending: u64,
    /// Applies in the open transaction.
    in_open: u64,
    /// The transaction the applies of the current batch go into, committed
    /// at [`core_kv::StateMachine::applied_batch`].
    open: Option<WriteTransaction>,
}

impl std::fmt::Debug for DiskKv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiskKv")
            .field("path", &self.path)
            .field("durable", &self.durable)
            .field("last_applied", &self.last_applied)
            .finish()
    }
}

impl DiskKv {
    /// Open the database at `path`, creating it if absent, with the
    /// default [`Options`].
    pub fn open(path: impl AsRef<Path>) -> Result<DiskKv, Error> {
        Self::open_with(path, Options::default())
    }

    /// Open the database at `path`, creating it if absent.
    pub fn open_with(path: impl AsRef<Path>, options: Options) -> Result<DiskKv, Error> {
        let path = path.as_ref().to_path_buf();
        let db = Database::builder()
            .set_cache_size(options.cache_bytes)
            .create(&path)
            .map_err(|e| Error::opening(path.clone(), e))?;
        Self::init(db, Some(path), options)
    }

    /// Open a database kept by `backend` (redb's storage interface), for
    /// tests that model a disk: for example one that keeps written and
    /// synced bytes apart to lose the unsynced ones in a simulated crash.
    pub fn open_backend(backend: impl StorageBackend, options: Options) -> Result<DiskKv, Error> {
        let db = Database::builder()
            .set_cache_size(options.cache_bytes)
            .create_with_backend(backend)
            .map_err(|e| Error::opening(PathBuf::from("<backend>"), e))?;
        Self::init(db, None, options)
    }

    fn init(db: Database, path: Option<PathBuf>, options: Options) -> Result<DiskKv, Error> {
        let name = path.clone().unwrap_or_else(|| PathBuf::from("<backend>"));
        let corrupt = |reason: String| Error::Corrupt {
            path: name.clone(),
            reason,
        };
        let tx = db.begin_write().map_err(storage)?;
        let applied = {
            let fresh = tx.list_tables().map_err(storage)?.next().is_none();
            let mut meta = tx.open_table(META).map_err(|e| corrupt(e.to_string()))?;
            tx.open_table(DATA).map_err(|e| corrupt(e.to_string()))?;
            tx.open_table(SESSIONS)
                .map_err(|e| corrupt(e.to_string()))?;
            let format = meta.get(META_FORMAT).map_err(storage)?.map(|v| v.value());
            match format {
                Some(FORMAT) => {}
                Some(found) => {
                    return Err(Error::Format {
                        path: name,
                        found,
                        expected: FORMAT,
                    })
                }
                None if fresh => {
                    meta.insert(META_FORMAT, FORMAT).map_err(storage)?;
                }
                None => return Err(corrupt("other tables, but no kv-disk format".into())),
            }
            let applied = meta.get(META_APPLIED).map_err(storage)?;
            applied.map(|v| LogIndex(v.value()))
        };
        tx.commit().map_err(storage)?;
        Ok(DiskKv {
            db,
            path,
            options: Options {
                durable_every: options.durable_every.max(1),
                commit_every: options.commit_every.max(1),
                ..options
            },
            durable: applied,
            last_applied: applied,
            pending: 0,
            in_open: 0,
            open: None,
        })
    }

    /// The index of the latest apply, durable or not (what reads see).
    pub fn last_applied(&self) -> Option<LogIndex> {
        self.last_applied
    }

    /// Make every apply so far durable (one fsync), and report the durable
    /// applied index. Call it on a timer, so that a quiet node's latest
    /// applies do not wait for [`Options::durable_every`] more.
    pub fn sync(&mut self) -> Result<Option<LogIndex>, Error> {
        self.commit_batch(true)?;
        if self.pending > 0 {
            let tx = self.begin(true)?;
            tx.commit().map_err(storage)?;
            self.durable = self.last_applied;
            self.pending = 0;
        }
        Ok(self.durable)
    }

    /// Number of keys.
    pub fn len(&self) -> Result<u64, Error> {
        let tx = self.db.begin_read().map_err(storage)?;
        let data = tx.open_table(DATA).map_err(storage)?;
        data.len().map_err(storage)
    }

    /// True if no key exists.
    pub fn is_empty(&self) -> Result<bool, Error> {
        Ok(self.len()? == 0)
    }

    /// Number of clients with a session entry.
    pub fn sessions(&self) -> Result<u64, Error> {
        let tx = self.db.begin_read().map_err(storage)?;
        let sessions = tx.open_table(SESSIONS).map_err(storage)?;
        sessions.len().map_err(storage)
    }

    /// How many retried mutations were answered from the session table
    /// rather than applied again (as `KvStore::duplicates`).
    pub fn duplicates(&self) -> Result<u64, Error> {
        let tx = self.db.begin_read().map_err(storage)?;
        let meta = tx.open_table(META).map_err(storage)?;
        let duplicates = meta.get(META_DUPLICATES).map_err(storage)?;
        Ok(duplicates.map_or(0, |v| v.value()))
    }

    /// Bytes the database file takes (`None` for a database on a
    /// [`DiskKv::open_backend`] backend).
    pub fn size_on_disk(&self) -> Result<Option<u64>, Error> {
        let Some(path) = &self.path else {
            return Ok(None);
        };
        let meta = std::fs::metadata(path).map_err(|source| Error::Io {
            path: path.clone(),
            source,
        })?;
        Ok(Some(meta.len()))
    }

    /// A write transaction; a durable one also saves redb's allocator state
    /// (quick repair), so that opening after a crash does not walk the
    /// whole file.
    fn begin(&self, durable: bool) -> Result<WriteTransaction, Error> {
        let mut tx = self.db.begin_write().map_err(storage)?;
        if durable {
            tx.set_quick_repair(true);
        } else {
            tx.set_durability(Durability::None).map_err(storage)?;
        }
        Ok(tx)
    }

    /// Commit the batch's transaction, if one is open: durably (with an
    /// fsync) when `durable` or when [`Options::durable_every`] applies
    /// have gone by without one.
    fn commit_batch(&mut self, durable: bool) -> Result<(), Error> {
        let Some(mut tx) = self.open.take() else {
            return Ok(());
        };
        self.in_open = 0;
        let durable = durable || self.pending >= self.options.durable_every;
        // The applied index goes into the transaction that holds the
        // applies: they commit (or a crash drops them) together.
        if let Some(applied) = self.last_applied {
            let mut meta = tx.open_table(META).map_err(storage)?;
            meta.insert(META_APPLIED, applied.0).map_err(storage)?;
        }
        if durable {
            tx.set_durability(Durability::Immediate).map_err(storage)?;
            tx.set_quick_repair(true);
        }
        tx.commit().map_err(storage)?;
        if durable {
            self.durable = self.last_applied;
            self.pending = 0;
        }
        Ok(())
    }

    fn try_apply(&mut self, index: LogIndex, req: &ClientRequest) -> Result<Outcome, Error> {
        let tx = match self.open.take() {
            Some(tx) => tx,
            None => self.begin(false)?,
        };
        let outcome = {
            let mut data = tx.open_table(DATA).map_err(storage)?;
            let mut sessions = tx.open_table(SESSIONS).map_err(storage)?;
            let outcome = if req.op.is_read_only() {
                let current = data.get(req.op.key()).map_err(storage)?;
                read_rule(
                    decode_entry(req.op.key(), current.as_ref().map(|v| v.value()))?,
                    &req.op,
                )
            } else {
                let latest = sessions.get(req.client.0).map_err(storage)?;
                let latest: Option<Session<Outcome>> = latest
                    .map(|v| postcard::from_bytes(v.value()))
                    .transpose()
                    .map_err(|e| corrupt_row("session", req.client.0, e))?;
                match Session::admit(latest.as_ref(), req.seq) {
                    Admission::Duplicate(outcome) => {
                        let mut meta = tx.open_table(META).map_err(storage)?;
                        let count = meta.get(META_DUPLICATES).map_err(storage)?;
                        let count = count.map_or(0, |v| v.value()) + 1;
                        meta.insert(META_DUPLICATES, count).map_err(storage)?;
                        outcome
                    }
                    // As KvStore: a delayed duplicate of a request the
                    // client has moved past is never applied.
                    Admission::Stale => Outcome::ErrMaybe,
                    Admission::Fresh => {
                        let write = {
                            let current = data.get(req.op.key()).map_err(storage)?;
                            let current =
                                decode_entry(req.op.key(), current.as_ref().map(|v| v.value()))?;
                            mutation_rule(current, &req.op)
                        };
                        let (outcome, write) = write;
                        if let Some((value, version)) = write {
                            let bytes = encode_entry(&value, version);
                            data.insert(req.op.key(), bytes.as_slice())
                                .map_err(storage)?;
                        }
                        record(&mut sessions, req.client, req.seq, &outcome)?;
                        outcome
                    }
                }
            };
            outcome
        };
        self.open = Some(tx);
        self.last_applied = Some(index);
        self.pending += 1;
        self.in_open += 1;
        Ok(outcome)
    }

    fn try_query(&self, op: &Op) -> Result<Outcome, Error> {
        if !op.is_read_only() {
            return Ok(read_rule(None, op));
        }
        // The replica reads after `applied_batch`; should it not, the
        // batch's own transaction sees its applies.
        if let Some(tx) = &self.open {
            let data = tx.open_table(DATA).map_err(storage)?;
            let current = data.get(op.key()).map_err(storage)?;
            return Ok(read_rule(
                decode_entry(op.key(), current.as_ref().map(|v| v.value()))?,
                op,
            ));
        }
        let tx = self.db.begin_read().map_err(storage)?;
        let data = tx.open_table(DATA).map_err(storage)?;
        let current = data.get(op.key()).map_err(storage)?;
        Ok(read_rule(
            decode_entry(op.key(), current.as_ref().map(|v| v.value()))?,
            op,
        ))
    }

    /// Replace the state with a snapshot's, in one durable transaction: on
    /// any error (a corrupt or cut snapshot) nothing is committed and the
    /// previous state stays.
    fn try_restore(
        &mut self,
        index: Option<LogIndex>,
        reader: &mut dyn std::io::Read,
    ) -> Result<(), String> {
        // Applies not yet committed are superseded by the snapshot.
        self.open = None;
        self.in_open = 0;
        let tx = self.begin(true).map_err(|e| e.to_string())?;
        snapshot::restore_into(&tx, reader)?;
        {
            let mut meta = tx.open_table(META).map_err(|e| e.to_string())?;
            match index {
                Some(i) => meta.insert(META_APPLIED, i.0).map(|_| ()),
                None => meta.remove(META_APPLIED).map(|_| ()),
            }
            .map_err(|e| e.to_string())?;
        }
        tx.commit().map_err(|e| e.to_string())?;
        self.durable = index;
        self.last_applied = index;
        self.pending = 0;
        Ok(())
    }
}

/// Record `outcome` as the answer to `client`'s request `seq`.
fn record(
    sessions: &mut redb::Table<u64, &[u8]>,
    client: ClientId,
    seq: Seq,
    outcome: &Outcome,
) -> Result<(), Error> {
    let session = Session::new(seq, outcome.clone());
    let bytes = postcard::to_allocvec(&session).expect("encoding to a Vec cannot fail");
    sessions
        .insert(client.0, bytes.as_slice())
        .map_err(storage)?;
    Ok(())
}

/// The stored bytes of a key's entry: postcard's `(value, version)`.
pub(crate) fn encode_entry(value: &str, version: Version) -> Vec<u8> {
    postcard::to_allocvec(&(value, version)).expect("encoding to a Vec cannot fail")
}

fn decode_entry<'a>(
    key: &str,
    bytes: Option<&'a [u8]>,
) -> Result<Option<(&'a str, Version)>, Error> {
    bytes
        .map(postcard::from_bytes::<(&str, Version)>)
        .transpose()
        .map_err(|e| corrupt_row("data", key, e))
}

fn corrupt_row(table: &str, row: impl std::fmt::Display, e: postcard::Error) -> Error {
    Error::Storage(redb::Error::Corrupted(format!(
        "a {table} row ({row}) does not decode: {e}"
    )))
}

impl core_kv::StateMachine for DiskKv {
    type Op = ClientRequest;
    type Output = Outcome;
    type Snapshot = SnapshotReader;

    /// Apply the entry at `index` and commit it with its index. Panics on
    /// an I/O error (the entry cannot be skipped) and on an index at or
    /// below the last applied one (the replica hands each entry once).
    fn apply(&mut self, index: LogIndex, req: &ClientRequest) -> Outcome {
        assert!(
            self.last_applied.is_none_or(|a| a < index),
            "kv-disk: entry {index} handed after {:?}",
            self.last_applied
        );
        match self.try_apply(index, req) {
            Ok(outcome) => outcome,
            Err(e) => panic!("kv-disk: cannot apply entry {index}: {e}; restart to resume from the last durable apply"),
        }
    }

    fn is_read_only(&self, req: &ClientRequest) -> bool {
        req.op.is_read_only()
    }

    /// Commit the applies of the open transaction once it holds
    /// [`Options::commit_every`] of them (without fsync, but durably every
    /// [`Options::durable_every`] applies). Reads see the open transaction
    /// meanwhile; the replica makes the store durable before it captures a
    /// snapshot (`make_durable`).
    fn applied_batch(&mut self) {
        if self.in_open < self.options.commit_every && self.pending < self.options.durable_every {
            return;
        }
        if let Err(e) = self.commit_batch(false) {
            panic!("kv-disk: cannot commit applies through {:?}: {e}; restart to resume from the last durable apply", self.last_applied);
        }
    }

    fn storage_summary(&self) -> Option<String> {
        let size = self.size_on_disk().ok().flatten();
        let keys = self.len().ok();
        let mut s = String::from("disk (redb)");
        if let Some(keys) = keys {
            s += &format!(", {keys} keys");
        }
        if let Some(size) = size {
            s += &format!(", {:.1} MiB", size as f64 / (1 << 20) as f64);
        }
        if let Some(path) = &self.path {
            s += &format!(" in {}", path.display());
        }
        if let Some(durable) = self.durable {
            s += &format!(", durable through index {}", durable.0);
        }
        Some(s)
    }

    fn query(&self, req: &ClientRequest) -> Outcome {
        match self.try_query(&req.op) {
            Ok(outcome) => outcome,
            Err(e) => panic!("kv-disk: cannot read: {e}"),
        }
    }

    /// The state, its sessions and its applied index commit together.
    const DURABLE: bool = true;

    /// The index of the last durable apply: what a crash keeps.
    fn applied_index(&self) -> Option<LogIndex> {
        self.durable
    }

    fn make_durable(&mut self) -> Option<LogIndex> {
        match self.sync() {
            Ok(durable) => durable,
            Err(e) => panic!("kv-disk: cannot make the applies through {:?} durable: {e}; restart to resume from the last durable apply", self.last_applied),
        }
    }

    fn snapshot(&self) -> SnapshotReader {
        SnapshotReader::new(&self.db)
    }

    /// Restore without knowing the snapshot's index: the applied index is
    /// then unknown (`None`) until the next apply.
    fn restore(&mut self, reader: &mut dyn std::io::Read) -> Result<(), String> {
        self.try_restore(None, reader)
    }

    fn restore_at(
        &mut self,
        index: LogIndex,
        reader: &mut dyn std::io::Read,
    ) -> Result<(), String> {
        self.try_restore(Some(index), reader)
    }
}

impl Drop for DiskKv {
    /// Make the latest applies durable, so that a clean stop replays
    /// nothing.
    fn drop(&mut self) {
        if let Err(e) = self.sync() {
            tracing::error!("kv-disk: cannot make the latest applies durable at close: {e}");
        }
    }
}
