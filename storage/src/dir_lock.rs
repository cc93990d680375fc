//! One owner per data directory. Two nodes writing one Raft log would
//! interleave records and each believe its own; the second node to start on a
//! directory in use is refused instead. The lock is an advisory lock
//! (`flock`) on the file `lock`, held as long as the store is open: the
//! operating system drops it when the process ends, however it ends, so a
//! node killed with SIGKILL leaves nothing to clean up.

use crate::error::StorageError;
use crate::fs::Fs;
use std::io;
use std::path::Path;

/// The lock file's name inside a data directory. It is never removed:
/// deleting a lock file while another process opens it would let two
/// processes each lock a different file of the same name.
pub const LOCK_FILE: &str = "lock";

/// Lock the data directory `dir` (which must exist) for this store, or say
/// who holds it.
pub(crate) fn lock<F: Fs>(fs: &F, dir: &Path) -> Result<F::Lock, StorageError> {
    let path = dir.join(LOCK_FILE);
    match fs.try_lock(&path) {
        Ok(lock) => Ok(lock),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
            // The holder wrote its process id after locking; a reader racing
            // that write just gets no id.
            let holder = fs
                .read(&path)
                .ok()
                .and_then(|bytes| String::from_utf8(bytes).ok())
                .and_then(|text| text.trim().parse().ok());
            Err(StorageError::InUse {
                dir: dir.to_path_buf(),
                holder,
            })
        }
        Err(e) => Err(StorageError::io("lock", &path)(e)),
    }
}

/// Fail as [`crate::DiskStorage::open`] would if another process holds the
/// data directory `dir` (which must exist), without keeping the lock: for
/// a process that opens other files in the directory (a state machine's
/// database) before its storage, so that a second node on a directory in
/// use is refused with the owner's process id rather than a lesser error
/// about one of those files.
pub fn check_not_in_use(dir: &Path) -> Result<(), StorageError> {
    lock(&crate::fs::RealFs, dir).map(drop)
}
