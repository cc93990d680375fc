//! A crash loses a suffix of applies and nothing else: after reopening,
//! the store holds exactly entries 1..=k for its applied index k, and the
//! replica's replay of k+1.. brings it to the same state as a store that
//! never crashed (no entry applied twice, none lost).
//!
//! Dropping a redb database is a clean close (it commits durably), so a
//! drop cannot stand for a crash. These tests keep the database on a
//! storage backend that holds written and synced bytes apart (like the
//! simulator's disk) and reopen from what a crash leaves: only the synced
//! bytes (power cut, page cache lost), all written bytes (the process
//! died, the page cache survived), or the synced bytes plus a random part
//! of the unsynced writes. One more test copies a real file mid-run.
//! Seeded; `KV_DISK_SEED=n` replays one seed.

mod common;

use common::{drain, seeds, Rng, Scratch, SeedGuard, Workload};
use core_kv::{ClientRequest, KvStore, LogIndex, StateMachine};
use kv_disk::{DiskKv, Options};
use std::io;
use std::sync::{Arc, Mutex};

const SEEDS: u64 = 24;
const ENTRIES: u64 = 600;

#[derive(Debug)]
enum Unsynced {
    Write(u64, Vec<u8>),
    SetLen(u64),
}

#[derive(Debug, Default)]
struct Disk {
    /// What reads see: every write so far.
    current: Vec<u8>,
    /// What survives any crash: the bytes as of the last sync.
    synced: Vec<u8>,
    /// Writes since then, in order.
    unsynced: Vec<Unsynced>,
}

/// A redb storage backend in memory that can crash.
#[derive(Debug, Clone, Default)]
struct CrashDisk(Arc<Mutex<Disk>>);

#[derive(Clone, Copy, Debug)]
enum Crash {
    /// Only synced bytes survive.
    PowerCut,
    /// Every write survives.
    ProcessDies,
    /// Synced bytes and each unsynced write with probability 1/2.
    Torn,
}

impl CrashDisk {
    fn with(bytes: Vec<u8>) -> CrashDisk {
        CrashDisk(Arc::new(Mutex::new(Disk {
            current: bytes.clone(),
            synced: bytes,
            unsynced: Vec::new(),
        })))
    }

    /// The bytes a crash leaves now.
    fn crash(&self, how: Crash, rng: &mut Rng) -> Vec<u8> {
        let disk = self.0.lock().unwrap();
        let mut image = disk.synced.clone();
        for w in &disk.unsynced {
            let keep = match how {
                Crash::PowerCut => false,
                Crash::ProcessDies => true,
                Crash::Torn => rng.below(2) == 0,
            };
            if keep {
                match w {
                    Unsynced::Write(offset, data) => write_at(&mut image, *offset, data),
                    Unsynced::SetLen(len) => image.resize(*len as usize, 0),
                }
            }
        }
        image
    }
}

fn write_at(bytes: &mut Vec<u8>, offset: u64, data: &[u8]) {
    let end = offset as usize + data.len();
    if bytes.len() < end {
        bytes.resize(end, 0);
    }
    bytes[offset as usize..end].copy_from_slice(data);
}

impl redb::StorageBackend for CrashDisk {
    fn len(&self) -> io::Result<u64> {
        Ok(self.0.lock().unwrap().current.len() as u64)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        let disk = self.0.lock().unwrap();
        let end = offset as usize + out.len();
        if end > disk.current.len() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "read past the end",
            ));
        }
        out.copy_from_slice(&disk.current[offset as usize..end]);
        Ok(())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut disk = self.0.lock().unwrap();
        disk.current.resize(len as usize, 0);
        disk.unsynced.push(Unsynced::SetLen(len));
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        let mut disk = self.0.lock().unwrap();
        disk.synced = disk.current.clone();
        disk.unsynced.clear();
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        let mut disk = self.0.lock().unwrap();
        write_at(&mut disk.current, offset, data);
        disk.unsynced.push(Unsynced::Write(offset, data.to_vec()));
        Ok(())
    }
}

/// A memory store that applied exactly `reqs`.
fn applied(reqs: &[ClientRequest]) -> KvStore {
    let mut mem = KvStore::new();
    for r in reqs {
        mem.apply(r);
    }
    mem
}

fn run(seed: u64, how: Crash) {
    let _guard = SeedGuard {
        seed,
        test: "crash",
    };
    let mut work = Workload::new(seed, 20, 4);
    let reqs: Vec<ClientRequest> = (0..ENTRIES).map(|_| work.next()).collect();
    let rng = work.rng();
    let options = Options {
        durable_every: 1 + rng.below(40),
        ..Options::default()
    };
    let crash_at = 1 + rng.below(ENTRIES);

    let disk = CrashDisk::default();
    let mut kv = DiskKv::open_backend(disk.clone(), options).unwrap();
    let mut durable = 0;
    for i in 1..=crash_at {
        kv.apply(LogIndex(i), &reqs[i as usize - 1]);
        // Batches of random length; a crash may cut one short.
        if rng.below(3) == 0 {
            kv.applied_batch();
        }
        if rng.below(50) == 0 {
            kv.sync().unwrap();
        }
        let now = kv.applied_index().map_or(0, |a| a.0);
        assert!(
            now >= durable && now <= i,
            "seed {seed}: durable index {now} at {i}"
        );
        durable = now;
    }
    let image = disk.crash(how, rng);
    drop(kv);

    let mut kv = DiskKv::open_backend(CrashDisk::with(image), options).unwrap();
    let k = kv.applied_index().map_or(0, |a| a.0);
    match how {
        Crash::PowerCut => assert_eq!(k, durable, "seed {seed}: {how:?}"),
        _ => assert!(
            (durable..=crash_at).contains(&k),
            "seed {seed}: {how:?}: reopened at {k}, durable {durable}, crashed at {crash_at}"
        ),
    }
    assert_eq!(kv.last_applied(), kv.applied_index());
    let mut mem = applied(&reqs[..k as usize]);
    assert_eq!(
        drain(kv.snapshot()),
        mem.to_snapshot(),
        "seed {seed}: {how:?}: the state at {k}"
    );
    // The replica replays the rest of its log.
    for i in k + 1..=ENTRIES {
        let req = &reqs[i as usize - 1];
        assert_eq!(kv.apply(LogIndex(i), req), mem.apply(req), "seed {seed}");
    }
    kv.make_durable();
    assert_eq!(
        drain(kv.snapshot()),
        applied(&reqs).to_snapshot(),
        "seed {seed}"
    );
}

#[test]
fn a_power_cut_reopens_at_the_last_durable_apply() {
    for seed in seeds(SEEDS) {
        run(seed, Crash::PowerCut);
    }
}

#[test]
fn a_process_crash_reopens_at_a_whole_apply() {
    for seed in seeds(SEEDS) {
        run(seed, Crash::ProcessDies);
    }
}

#[test]
fn torn_unsynced_writes_reopen_at_a_whole_apply() {
    for seed in seeds(SEEDS) {
        run(seed, Crash::Torn);
    }
}

/// On a real file: a copy taken between applies is what a crash of the
/// process would leave (the page cache holds every write).
#[test]
fn a_copy_of_the_file_mid_run_reopens_at_a_whole_apply() {
    let dir = Scratch::new("copy");
    let mut work = Workload::new(7, 50, 4);
    let reqs: Vec<ClientRequest> = (0..2000).map(|_| work.next()).collect();
    let mut kv = DiskKv::open_with(
        dir.file("kv.redb"),
        Options {
            durable_every: 300,
            ..Options::default()
        },
    )
    .unwrap();
    for (i, req) in reqs.iter().enumerate().take(1000) {
        kv.apply(LogIndex(i as u64 + 1), req);
        kv.applied_batch();
    }
    let durable = kv.applied_index().unwrap().0;
    assert_eq!(durable, 900);
    std::fs::copy(dir.file("kv.redb"), dir.file("crashed.redb")).unwrap();
    drop(kv);
    let kv = DiskKv::open(dir.file("crashed.redb")).unwrap();
    let k = kv.applied_index().unwrap().0;
    assert!((900..=1000).contains(&k), "reopened at {k}");
    assert_eq!(
        drain(kv.snapshot()),
        applied(&reqs[..k as usize]).to_snapshot()
    );
}
