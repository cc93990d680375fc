//! A simulated filesystem for power-loss and disk-error tests: an [`Fs`]
//! that keeps what was written apart from what was made durable, and at a
//! simulated power cut ([`SimFs::crash`]) keeps an arbitrary, seeded-random
//! part of what was not.
//!
//! The model is the one the store has to survive on real disks, made as
//! hostile as the guarantees allow:
//!
//! * A file's bytes are durable once [`FsFile::sync_data`] or
//!   [`FsFile::sync_all`] returns. At a crash, every
//!   [`SECTOR_BYTES`]-sized sector a later write touched independently
//!   holds any one of its versions since that sync (sectors are written
//!   atomically but in any order, as disks do between flushes), and the
//!   file's length is any of the lengths it had since that sync. So a
//!   crash can keep any subset of the unsynced writes, tear a write at a
//!   sector boundary, leave zeros where a sector never landed, or cut the
//!   file anywhere in its unsynced tail.
//! * A directory entry (a create, rename or remove) is durable once
//!   [`Fs::sync_dir`] of its directory returns, and not before, whatever
//!   was fsynced meanwhile: at a crash, any subset of the directory's
//!   unsynced operations survives, each whole (a rename is atomic).
//! * A failed fsync is the Linux one: it reports the error once, and the
//!   writes it covered are never written, though reads still see them until
//!   the crash; the next fsync succeeds (PostgreSQL's "fsyncgate"). Code
//!   that retries an fsync and carries on loses data here as it would there.
//!
//! Directories themselves ([`Fs::create_dir_all`]) are durable at once,
//! renames stay within one directory, and a directory lists only files:
//! the store needs no more.
//!
//! Faults: [`SimFs::inject`] makes chosen operations on chosen files fail
//! with an error number, and [`SimFs::cut_power_after`] makes every
//! operation fail after a given number of changes, to stop a writer at an
//! exact point before [`SimFs::crash`].
//!
//! A `SimFs` is a handle: clones share one simulated machine, so a test
//! keeps one while the store under test owns another.

use crate::fs::{Fs, FsFile};
use core_raft::rng::SplitMix64;
use std::collections::{BTreeMap, VecDeque};
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// The unit a disk writes atomically; a crash tears writes at multiples of
/// it. The sector recovery assumes ([`crate::record::SECTOR_BYTES`]).
pub const SECTOR_BYTES: u64 = crate::record::SECTOR_BYTES as u64;

/// `EIO`: the error number of a failed write or fsync.
pub const EIO: i32 = 5;
/// `ENOSPC`: the error number of a full disk.
pub const ENOSPC: i32 = 28;

/// How many operations [`SimFs::trace`] remembers.
const TRACE_LEN: usize = 64;

/// The operations a [`Fault`] can target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SimOp {
    /// [`Fs::create`] and [`Fs::create_new`].
    Create,
    /// [`Fs::open_append`] and [`Fs::open_write`].
    Open,
    /// [`FsFile::write_all`].
    Write,
    /// [`FsFile::sync_data`] and [`FsFile::sync_all`].
    Sync,
    /// [`FsFile::set_len`].
    SetLen,
    /// [`Fs::read`].
    Read,
    /// [`Fs::read_dir`].
    ReadDir,
    /// [`Fs::rename`] (matched on the source).
    Rename,
    /// [`Fs::remove_file`].
    Remove,
    /// [`Fs::sync_dir`] (matched on the directory).
    SyncDir,
    /// [`Fs::try_lock`].
    Lock,
}

/// Make matching operations fail: the `skip + 1`-th operation `op` on a
/// path whose last component contains `name_contains`, and, if `sticky`,
/// every one after it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fault {
    /// Which operation.
    pub op: SimOp,
    /// Only paths whose file name contains this ("" matches all).
    pub name_contains: String,
    /// Matching operations let through before the first failure.
    pub skip: u64,
    /// The error number returned ([`EIO`], [`ENOSPC`], ...).
    pub errno: i32,
    /// Keep failing after the first failure.
    pub sticky: bool,
}

impl Fault {
    /// Fail the first `op` on a file whose name contains `name_contains`
    /// with `errno`, once.
    pub fn new(op: SimOp, name_contains: &str, errno: i32) -> Fault {
        Fault {
            op,
            name_contains: name_contains.into(),
            skip: 0,
            errno,
            sticky: false,
        }
    }

    /// Let `skip` matching operations succeed first.
    pub fn after(mut self, skip: u64) -> Fault {
        self.skip = skip;
        self
    }

    /// Fail every matching operation from the first failure on.
    pub fn sticky(mut self) -> Fault {
        self.sticky = true;
        self
    }
}

/// A simulated machine's filesystem; see the module documentation.
#[derive(Clone)]
pub struct SimFs {
    world: Arc<Mutex<World>>,
}

impl fmt::Debug for SimFs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let w = self.world();
        f.debug_struct("SimFs")
            .field("files", &w.inodes.len())
            .field("crashes", &w.generation)
            .field("changes", &w.changes)
            .finish()
    }
}

/// Everything the simulated machine holds.
struct World {
    rng: SplitMix64,
    /// Crashes so far; handles opened before the last one are dead.
    generation: u64,
    dirs: BTreeMap<PathBuf, Dir>,
    inodes: BTreeMap<u64, Inode>,
    next_inode: u64,
    /// Held locks: path to lock id.
    locks: BTreeMap<PathBuf, u64>,
    next_lock: u64,
    faults: Vec<(Fault, u64)>,
    injected: u64,
    /// Changes (writes, syncs, creates, renames, removes) so far.
    changes: u64,
    /// Changes left before the power goes; `Some(0)` means it is off.
    power_left: Option<u64>,
    trace: VecDeque<String>,
}

#[derive(Default)]
struct Dir {
    /// The names as the running system sees them.
    entries: BTreeMap<OsString, u64>,
    /// The names as of the last directory fsync.
    durable: BTreeMap<OsString, u64>,
    /// Operations since then, in order.
    pending: Vec<DirOp>,
}

enum DirOp {
    Link(OsString, u64),
    Unlink(OsString, u64),
    Rename(OsString, OsString, u64),
}

#[derive(Default)]
struct Inode {
    /// The bytes as the running system sees them.
    data: Vec<u8>,
    /// The bytes as of the last fsync.
    durable: Vec<u8>,
    /// Changes since then, in order.
    pending: Vec<DataOp>,
}

enum DataOp {
    Write { at: u64, bytes: Vec<u8> },
    SetLen(u64),
}

impl DataOp {
    fn apply(&self, data: &mut Vec<u8>) {
        match self {
            DataOp::Write { at, bytes } => {
                let end = *at as usize + bytes.len();
                if data.len() < end {
                    data.resize(end, 0);
                }
                data[*at as usize..end].copy_from_slice(bytes);
            }
            DataOp::SetLen(len) => data.resize(*len as usize, 0),
        }
    }
}

/// An open file of a [`SimFs`].
pub struct SimFile {
    fs: SimFs,
    path: PathBuf,
    inode: u64,
    generation: u64,
    append: bool,
    position: u64,
}

impl fmt::Debug for SimFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimFile").field("path", &self.path).finish()
    }
}

/// A lock taken with [`Fs::try_lock`] on a [`SimFs`]; dropping it (or a
/// crash) releases it.
pub struct SimLock {
    fs: SimFs,
    path: PathBuf,
    id: u64,
}

impl fmt::Debug for SimLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimLock").field("path", &self.path).finish()
    }
}

impl Drop for SimLock {
    fn drop(&mut self) {
        let mut w = self.fs.world();
        if w.locks.get(&self.path) == Some(&self.id) {
            w.locks.remove(&self.path);
        }
    }
}

impl SimFs {
    /// An empty machine whose crashes are drawn from `seed`.
    pub fn new(seed: u64) -> SimFs {
        SimFs {
            world: Arc::new(Mutex::new(World {
                rng: SplitMix64::new(seed),
                generation: 0,
                dirs: BTreeMap::new(),
                inodes: BTreeMap::new(),
                next_inode: 1,
                locks: BTreeMap::new(),
                next_lock: 1,
                faults: Vec::new(),
                injected: 0,
                changes: 0,
                power_left: None,
                trace: VecDeque::new(),
            })),
        }
    }

    fn world(&self) -> MutexGuard<'_, World> {
        // A panic while holding the lock leaves the world as consistent as
        // any crash would; keep going so the test reports its own failure.
        self.world.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Add a fault; see [`Fault`].
    pub fn inject(&self, fault: Fault) {
        self.world().faults.push((fault, 0));
    }

    /// Remove every fault.
    pub fn clear_faults(&self) {
        self.world().faults.clear();
    }

    /// How many operations failed because of an injected [`Fault`].
    pub fn injected(&self) -> u64 {
        self.world().injected
    }

    /// Changes made so far (creates, writes, syncs, truncations, renames,
    /// removes, directory syncs): the points a power cut can fall between.
    pub fn changes(&self) -> u64 {
        self.world().changes
    }

    /// Let `changes` more changes through, then fail every operation (the
    /// power is gone) until [`SimFs::crash`].
    pub fn cut_power_after(&self, changes: u64) {
        self.world().power_left = Some(changes);
    }

    /// True once a power cut set by [`SimFs::cut_power_after`] happened.
    pub fn power_is_off(&self) -> bool {
        self.world().power_left == Some(0)
    }

    /// The last operations, oldest first, for a failing test to print.
    pub fn trace(&self) -> Vec<String> {
        self.world().trace.iter().cloned().collect()
    }

    /// Lose power and come back up: every file and directory keeps what
    /// was durable plus a random part of what was not (see the module
    /// documentation), open files and locks are gone, and the power is back.
    /// Injected faults stay.
    pub fn crash(&self) {
        let mut w = self.world();
        let w = &mut *w;
        w.generation += 1;
        w.power_left = None;
        w.locks.clear();
        for dir in w.dirs.values_mut() {
            let survivors = dir_after_crash(&mut w.rng, dir);
            dir.entries = survivors.clone();
            dir.durable = survivors;
            dir.pending.clear();
        }
        let live: std::collections::BTreeSet<u64> = w
            .dirs
            .values()
            .flat_map(|d| d.entries.values().copied())
            .collect();
        w.inodes.retain(|ino, _| live.contains(ino));
        for inode in w.inodes.values_mut() {
            let data = data_after_crash(&mut w.rng, inode);
            inode.data = data.clone();
            inode.durable = data;
            inode.pending.clear();
        }
        let generation = w.generation;
        w.note(format!("crash #{generation}"));
    }
}

/// How much of a list of unsynced operations a crash keeps: a prefix (none,
/// all, or some: a filesystem that orders its writes), or a random choice
/// per unit (one that does not).
#[derive(Clone, Copy)]
enum Keep {
    Prefix(usize),
    Random,
}

fn pick_keep(rng: &mut SplitMix64, n: usize) -> Keep {
    match rng.range_inclusive(0, 9) {
        0 | 1 => Keep::Prefix(0),
        2 | 3 => Keep::Prefix(n),
        4 | 5 => Keep::Prefix(rng.range_inclusive(0, n as u64) as usize),
        _ => Keep::Random,
    }
}

/// The entries of `dir` after a crash: the durable ones, then the surviving
/// unsynced operations applied in order, each whole.
fn dir_after_crash(rng: &mut SplitMix64, dir: &Dir) -> BTreeMap<OsString, u64> {
    let mut entries = dir.durable.clone();
    let keep = pick_keep(rng, dir.pending.len());
    for (i, op) in dir.pending.iter().enumerate() {
        let kept = match keep {
            Keep::Prefix(n) => i < n,
            Keep::Random => rng.next_u64() & 1 == 0,
        };
        if !kept {
            continue;
        }
        match op {
            DirOp::Link(name, ino) => {
                entries.insert(name.clone(), *ino);
            }
            DirOp::Unlink(name, ino) => {
                if entries.get(name) == Some(ino) {
                    entries.remove(name);
                }
            }
            DirOp::Rename(from, to, ino) => {
                if entries.get(from) == Some(ino) {
                    entries.remove(from);
                }
                entries.insert(to.clone(), *ino);
            }
        }
    }
    entries
}

/// The bytes of `inode` after a crash: its length is one it had since the
/// last sync, and each sector holds one of its versions since then.
fn data_after_crash(rng: &mut SplitMix64, inode: &Inode) -> Vec<u8> {
    let n = inode.pending.len();
    if n == 0 {
        return inode.durable.clone();
    }
    let keep = pick_keep(rng, n);
    let choose = |rng: &mut SplitMix64| match keep {
        Keep::Prefix(k) => k,
        Keep::Random => rng.range_inclusive(0, n as u64) as usize,
    };
    // Lengths after each prefix of the pending operations.
    let mut lens = vec![inode.durable.len() as u64];
    for op in &inode.pending {
        let last = *lens.last().expect("starts non-empty");
        lens.push(match op {
            DataOp::Write { at, bytes } => last.max(at + bytes.len() as u64),
            DataOp::SetLen(len) => *len,
        });
    }
    let len = lens[choose(rng)];
    let mut out = vec![0u8; len as usize];
    for start in (0..len).step_by(SECTOR_BYTES as usize) {
        let end = (start + SECTOR_BYTES).min(len);
        let version = choose(rng);
        let sector = sector_version(inode, start, start + SECTOR_BYTES, version);
        out[start as usize..end as usize].copy_from_slice(&sector[..(end - start) as usize]);
    }
    out
}

/// The bytes `[from, to)` of `inode` after its first `ops` pending
/// operations (zeros where the file was shorter).
fn sector_version(inode: &Inode, from: u64, to: u64, ops: usize) -> Vec<u8> {
    let mut sector = vec![0u8; (to - from) as usize];
    let copy = |at: u64, bytes: &[u8], sector: &mut [u8]| {
        let lo = at.max(from);
        let hi = (at + bytes.len() as u64).min(to);
        if lo < hi {
            sector[(lo - from) as usize..(hi - from) as usize]
                .copy_from_slice(&bytes[(lo - at) as usize..(hi - at) as usize]);
        }
    };
    copy(0, &inode.durable, &mut sector);
    for op in &inode.pending[..ops] {
        match op {
            DataOp::Write { at, bytes } => copy(*at, bytes, &mut sector),
            DataOp::SetLen(len) => {
                // What a truncation cut off reads as zeros if the file grows
                // back.
                let cut = (*len).clamp(from, to);
                sector[(cut - from) as usize..].fill(0);
            }
        }
    }
    sector
}

/// The error every operation returns once the power is off.
fn power_off() -> io::Error {
    io::Error::other("simulated power loss")
}

fn stale() -> io::Error {
    io::Error::other("the simulated machine crashed since this file was opened")
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{} does not exist", path.display()),
    )
}

fn split(path: &Path) -> io::Result<(PathBuf, OsString)> {
    match (path.parent(), path.file_name()) {
        (Some(dir), Some(name)) => Ok((dir.to_path_buf(), name.to_os_string())),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not a file path", path.display()),
        )),
    }
}

impl World {
    fn note(&mut self, what: String) {
        if self.trace.len() == TRACE_LEN {
            self.trace.pop_front();
        }
        self.trace.push_back(what);
    }

    /// Every operation starts here: fail it if the power is off or a fault
    /// matches, and count it (and maybe cut the power) if it is a change.
    fn begin(&mut self, op: SimOp, path: &Path, change: bool) -> io::Result<()> {
        if self.power_left == Some(0) {
            return Err(power_off());
        }
        let name = path.file_name().unwrap_or(OsStr::new(""));
        let name = name.to_string_lossy();
        for (fault, seen) in &mut self.faults {
            if fault.op != op || !name.contains(fault.name_contains.as_str()) {
                continue;
            }
            *seen += 1;
            if *seen == fault.skip + 1 || (fault.sticky && *seen > fault.skip) {
                let errno = fault.errno;
                self.injected += 1;
                self.note(format!(
                    "{op:?} {} -> injected errno {errno}",
                    path.display()
                ));
                return Err(io::Error::from_raw_os_error(errno));
            }
        }
        if change {
            self.changes += 1;
            if let Some(left) = &mut self.power_left {
                *left -= 1;
            }
        }
        self.note(format!("{op:?} {}", path.display()));
        Ok(())
    }

    fn dir(&mut self, dir: &Path) -> io::Result<&mut Dir> {
        self.dirs.get_mut(dir).ok_or_else(|| not_found(dir))
    }

    fn lookup(&self, path: &Path) -> io::Result<u64> {
        let (dir, name) = split(path)?;
        self.dirs
            .get(&dir)
            .and_then(|d| d.entries.get(&name))
            .copied()
            .ok_or_else(|| not_found(path))
    }

    fn inode(&mut self, ino: u64) -> &mut Inode {
        self.inodes
            .get_mut(&ino)
            .expect("open files keep their inode")
    }

    /// A new empty file at `path` (which must not exist).
    fn link_new(&mut self, path: &Path) -> io::Result<u64> {
        let (dir, name) = split(path)?;
        let ino = self.next_inode;
        let d = self.dir(&dir)?;
        d.entries.insert(name.clone(), ino);
        d.pending.push(DirOp::Link(name, ino));
        self.next_inode += 1;
        self.inodes.insert(ino, Inode::default());
        Ok(ino)
    }

    fn apply(&mut self, ino: u64, op: DataOp) {
        let inode = self.inode(ino);
        op.apply(&mut inode.data);
        inode.pending.push(op);
    }
}

impl SimFs {
    fn open(&self, path: &Path, ino: u64, append: bool, generation: u64) -> SimFile {
        SimFile {
            fs: self.clone(),
            path: path.to_path_buf(),
            inode: ino,
            generation,
            append,
            position: 0,
        }
    }
}

impl Fs for SimFs {
    type File = SimFile;
    type Lock = SimLock;

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut w = self.world();
        w.begin(SimOp::Create, dir, false)?;
        for d in dir.ancestors() {
            w.dirs.entry(d.to_path_buf()).or_default();
        }
        Ok(())
    }

    fn create_new(&self, path: &Path) -> io::Result<SimFile> {
        let mut w = self.world();
        w.begin(SimOp::Create, path, true)?;
        if w.lookup(path).is_ok() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} exists", path.display()),
            ));
        }
        let ino = w.link_new(path)?;
        Ok(self.open(path, ino, true, w.generation))
    }

    fn create(&self, path: &Path) -> io::Result<SimFile> {
        let mut w = self.world();
        w.begin(SimOp::Create, path, true)?;
        let ino = match w.lookup(path) {
            Ok(ino) => {
                w.apply(ino, DataOp::SetLen(0));
                ino
            }
            Err(_) => w.link_new(path)?,
        };
        Ok(self.open(path, ino, false, w.generation))
    }

    fn open_append(&self, path: &Path) -> io::Result<SimFile> {
        let mut w = self.world();
        w.begin(SimOp::Open, path, false)?;
        let ino = w.lookup(path)?;
        Ok(self.open(path, ino, true, w.generation))
    }

    fn open_write(&self, path: &Path) -> io::Result<SimFile> {
        let mut w = self.world();
        w.begin(SimOp::Open, path, false)?;
        let ino = w.lookup(path)?;
        Ok(self.open(path, ino, false, w.generation))
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        let mut w = self.world();
        w.begin(SimOp::Read, path, false)?;
        let ino = w.lookup(path)?;
        Ok(w.inode(ino).data.clone())
    }

    fn read_dir(&self, dir: &Path) -> io::Result<Vec<OsString>> {
        let mut w = self.world();
        w.begin(SimOp::ReadDir, dir, false)?;
        Ok(w.dir(dir)?.entries.keys().cloned().collect())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut w = self.world();
        w.begin(SimOp::Rename, from, true)?;
        let ino = w.lookup(from)?;
        let ((dir, from_name), (to_dir, to_name)) = (split(from)?, split(to)?);
        if dir != to_dir {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "the simulated filesystem renames within one directory only",
            ));
        }
        let d = w.dir(&dir)?;
        d.entries.remove(&from_name);
        d.entries.insert(to_name.clone(), ino);
        d.pending.push(DirOp::Rename(from_name, to_name, ino));
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut w = self.world();
        w.begin(SimOp::Remove, path, true)?;
        let ino = w.lookup(path)?;
        let (dir, name) = split(path)?;
        let d = w.dir(&dir)?;
        d.entries.remove(&name);
        d.pending.push(DirOp::Unlink(name, ino));
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut w = self.world();
        w.begin(SimOp::SyncDir, dir, true)?;
        let d = w.dir(dir)?;
        d.durable = d.entries.clone();
        d.pending.clear();
        Ok(())
    }

    fn try_lock(&self, path: &Path) -> io::Result<SimLock> {
        let mut w = self.world();
        w.begin(SimOp::Lock, path, false)?;
        if w.lookup(path).is_err() {
            w.link_new(path)?;
        }
        if w.locks.contains_key(path) {
            return Err(io::Error::from(io::ErrorKind::WouldBlock));
        }
        let id = w.next_lock;
        w.next_lock += 1;
        w.locks.insert(path.to_path_buf(), id);
        Ok(SimLock {
            fs: self.clone(),
            path: path.to_path_buf(),
            id,
        })
    }
}

impl SimFile {
    /// Start an operation on this file: checks the handle survived any
    /// crash, then as [`World::begin`].
    fn begin(&self, op: SimOp, change: bool) -> io::Result<MutexGuard<'_, World>> {
        let mut w = self.fs.world();
        if w.generation != self.generation {
            return Err(stale());
        }
        w.begin(op, &self.path, change)?;
        Ok(w)
    }

    fn sync(&mut self) -> io::Result<()> {
        let mut w = match self.begin(SimOp::Sync, true) {
            Ok(w) => w,
            Err(e) => {
                if e.raw_os_error().is_some() {
                    // An injected fsync error, as Linux has it: the writes it
                    // covered are dropped from the disk's future but stay
                    // readable, and the next fsync has nothing to report.
                    self.fs.world().inode(self.inode).pending.clear();
                }
                return Err(e);
            }
        };
        // Not `durable = data`: writes an earlier failed fsync dropped stay
        // lost, though still readable.
        let inode = w.inode(self.inode);
        for op in std::mem::take(&mut inode.pending) {
            op.apply(&mut inode.durable);
        }
        Ok(())
    }
}

impl FsFile for SimFile {
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        let mut w = self.begin(SimOp::Write, true)?;
        let at = if self.append {
            w.inode(self.inode).data.len() as u64
        } else {
            self.position
        };
        w.apply(
            self.inode,
            DataOp::Write {
                at,
                bytes: bytes.to_vec(),
            },
        );
        drop(w);
        self.position = at + bytes.len() as u64;
        Ok(())
    }

    fn sync_data(&mut self) -> io::Result<()> {
        self.sync()
    }

    fn sync_all(&mut self) -> io::Result<()> {
        self.sync()
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        let mut w = self.begin(SimOp::SetLen, true)?;
        w.apply(self.inode, DataOp::SetLen(len));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIR: &str = "/d";

    fn file(name: &str) -> PathBuf {
        Path::new(DIR).join(name)
    }

    /// A file with one synced sector and two unsynced ones after it, created
    /// and made durable in its directory.
    fn half_synced(seed: u64) -> SimFs {
        let sim = SimFs::new(seed);
        sim.create_dir_all(Path::new(DIR)).unwrap();
        let mut f = sim.create_new(&file("a")).unwrap();
        sim.sync_dir(Path::new(DIR)).unwrap();
        f.write_all(&[1; 512]).unwrap();
        f.sync_data().unwrap();
        f.write_all(&[2; 512]).unwrap();
        f.write_all(&[3; 512]).unwrap();
        sim
    }

    #[test]
    fn a_crash_keeps_synced_bytes_and_any_sectors_of_the_rest() {
        let mut outcomes = std::collections::BTreeSet::new();
        for seed in 0..200 {
            let sim = half_synced(seed);
            sim.crash();
            let data = sim.read(&file("a")).unwrap();
            assert!(data.len() >= 512 && data[..512] == [1; 512], "seed {seed}");
            // Each later sector is either written whole or reads as zeros.
            let sectors: Vec<u8> = data[512..]
                .chunks(512)
                .map(|s| {
                    assert!(
                        s.iter().all(|b| *b == s[0]),
                        "seed {seed}: torn inside a sector"
                    );
                    s[0]
                })
                .collect();
            outcomes.insert(sectors);
        }
        // Lost, kept, cut, and the second write kept without the first.
        for expected in [vec![], vec![2, 3], vec![2], vec![0, 3]] {
            assert!(outcomes.contains(&expected), "{outcomes:?}");
        }
    }

    #[test]
    fn a_directory_entry_survives_only_once_its_directory_is_synced() {
        let (mut lost, mut kept) = (0, 0);
        for seed in 0..50 {
            let sim = SimFs::new(seed);
            sim.create_dir_all(Path::new(DIR)).unwrap();
            let mut f = sim.create_new(&file("new")).unwrap();
            f.write_all(b"x").unwrap();
            f.sync_all().unwrap();
            sim.crash();
            match sim.read(&file("new")) {
                Ok(data) => {
                    assert_eq!(data, b"x");
                    kept += 1;
                }
                Err(_) => lost += 1,
            }
            sim.rename(&file("new"), &file("renamed")).ok();
            sim.sync_dir(Path::new(DIR)).unwrap();
            sim.crash();
            assert!(sim.read(&file("new")).is_err(), "seed {seed}");
        }
        assert!(lost > 0 && kept > 0, "lost {lost}, kept {kept}");
    }

    #[test]
    fn a_failed_fsync_loses_its_writes_and_the_next_fsync_succeeds() {
        let sim = half_synced(1);
        sim.inject(Fault::new(SimOp::Sync, "a", EIO));
        let mut f = sim.open_append(&file("a")).unwrap();
        let err = f.sync_data().unwrap_err();
        assert_eq!(err.raw_os_error(), Some(EIO));
        assert_eq!(sim.read(&file("a")).unwrap().len(), 1536, "still readable");
        f.sync_data().unwrap();
        sim.crash();
        assert_eq!(sim.read(&file("a")).unwrap(), vec![1; 512]);
        // Handles from before a crash are dead.
        assert!(f.write_all(b"late").is_err());
    }

    #[test]
    fn the_power_goes_after_the_given_number_of_changes() {
        let sim = half_synced(2);
        sim.cut_power_after(1);
        let mut f = sim.open_append(&file("a")).unwrap();
        f.write_all(b"y").unwrap();
        assert!(sim.power_is_off(), "that was the last change");
        assert!(f.sync_data().is_err());
        assert!(sim.read(&file("a")).is_err(), "nothing runs without power");
        sim.crash();
        assert!(!sim.power_is_off());
        assert!(sim.read(&file("a")).is_ok());
    }
}
