//! The filesystem as the store sees it: exactly the operations it performs,
//! behind a trait, so that the same code runs on the real disk ([`RealFs`],
//! the default) and on a simulated one ([`crate::simfs::SimFs`]) that can
//! lose unsynced writes at a power cut or fail chosen operations.
//!
//! The trait is deliberately small and says what durability each call gives,
//! because that is what the store's correctness rests on: a file's bytes are
//! durable only after [`FsFile::sync_data`] or [`FsFile::sync_all`], and a
//! directory entry (a create, rename or remove) only after
//! [`Fs::sync_dir`] on its directory.

use std::ffi::OsString;
use std::fmt::Debug;
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Write};
use std::path::Path;

/// The filesystem operations [`crate::DiskStorage`] and
/// [`crate::identity`] perform.
pub trait Fs: Debug + Send + 'static {
    /// An open file.
    type File: FsFile;
    /// An exclusive advisory lock, released when dropped.
    type Lock: Debug + Send + 'static;

    /// Create `dir` and its missing parents.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Create a file that must not exist yet, opened for appending.
    fn create_new(&self, path: &Path) -> io::Result<Self::File>;
    /// Create a file, or empty an existing one, opened for writing.
    fn create(&self, path: &Path) -> io::Result<Self::File>;
    /// Open an existing file for appending.
    fn open_append(&self, path: &Path) -> io::Result<Self::File>;
    /// Open an existing file for writing in place (to truncate it).
    fn open_write(&self, path: &Path) -> io::Result<Self::File>;
    /// The whole content of a file.
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// The names of the entries of a directory, in no particular order.
    fn read_dir(&self, dir: &Path) -> io::Result<Vec<OsString>>;
    /// Rename `from` to `to` (same directory), replacing `to` atomically.
    /// Durable only after [`Fs::sync_dir`].
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Remove a file. Durable only after [`Fs::sync_dir`].
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Make the entries of `dir` (files created, renamed, removed) durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Take an exclusive advisory lock on the file at `path` (creating it)
    /// without waiting, and record this process's id in it for the error
    /// message of whoever is refused next. Fails with
    /// [`io::ErrorKind::WouldBlock`] if someone holds it; the lock belongs
    /// to the returned value, not to the process, so a second lock taken in
    /// the same process conflicts too. Dying releases it.
    fn try_lock(&self, path: &Path) -> io::Result<Self::Lock>;
}

/// An open file of an [`Fs`].
pub trait FsFile: Debug + Send + 'static {
    /// Write all of `bytes` at the file's position (the end, for files
    /// opened to append). Not durable until synced.
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()>;
    /// Make the file's bytes (and its length) durable (`fdatasync`).
    fn sync_data(&mut self) -> io::Result<()>;
    /// Make the file's bytes and all its metadata durable (`fsync`).
    fn sync_all(&mut self) -> io::Result<()>;
    /// Cut or extend the file to `len` bytes. Not durable until synced.
    fn set_len(&mut self, len: u64) -> io::Result<()>;
}

/// The operating system's filesystem: each method is the one `std::fs` call
/// the store made before this trait existed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RealFs;

impl Fs for RealFs {
    type File = File;
    type Lock = File;

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        fs::create_dir_all(dir)
    }

    fn create_new(&self, path: &Path) -> io::Result<File> {
        OpenOptions::new().create_new(true).append(true).open(path)
    }

    fn create(&self, path: &Path) -> io::Result<File> {
        File::create(path)
    }

    fn open_append(&self, path: &Path) -> io::Result<File> {
        OpenOptions::new().append(true).open(path)
    }

    fn open_write(&self, path: &Path) -> io::Result<File> {
        OpenOptions::new().write(true).open(path)
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        fs::read(path)
    }

    fn read_dir(&self, dir: &Path) -> io::Result<Vec<OsString>> {
        fs::read_dir(dir)?
            .map(|entry| entry.map(|e| e.file_name()))
            .collect()
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }

    fn try_lock(&self, path: &Path) -> io::Result<File> {
        // Never truncate on open: the file may be locked by someone else,
        // whose process id it holds.
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(io::Error::from(io::ErrorKind::WouldBlock))
            }
            Err(TryLockError::Error(e)) => return Err(e),
        }
        // Only a hint for the next one refused, so neither synced nor
        // checked: the lock is what excludes, not the file's content.
        file.set_len(0)?;
        writeln!(file, "{}", std::process::id())?;
        Ok(file)
    }
}

impl FsFile for File {
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        Write::write_all(self, bytes)
    }

    fn sync_data(&mut self) -> io::Result<()> {
        File::sync_data(self)
    }

    fn sync_all(&mut self) -> io::Result<()> {
        File::sync_all(self)
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        File::set_len(self, len)
    }
}
