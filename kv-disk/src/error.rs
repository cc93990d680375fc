//! What can go wrong opening or using a database.

use std::path::PathBuf;
use thiserror::Error;

/// Why a database could not be opened, synced or restored.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    /// Another process (or another `DiskKv` in this one) has the file open.
    #[error("{}: the database is in use by another process (or already open in this one)", path.display())]
    InUse {
        /// The database file.
        path: PathBuf,
    },
    /// The file is not a kv-disk database, or is damaged.
    #[error("{}: not a readable kv-disk database: {reason}", path.display())]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The file was written by a build with another layout.
    #[error("{}: this database was written by format {found}; this build reads format {expected}", path.display())]
    Format {
        /// The database file.
        path: PathBuf,
        /// The format the file records.
        found: u64,
        /// The format this build writes and reads ([`crate::FORMAT`]).
        expected: u64,
    },
    /// The operating system refused a read or a write.
    #[error("{}: {source}", path.display())]
    Io {
        /// The database file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The database failed a transaction.
    #[error("database: {0}")]
    Storage(#[from] redb::Error),
}

impl Error {
    /// Classify an error from opening the file at `path`.
    pub(crate) fn opening(path: PathBuf, e: redb::DatabaseError) -> Error {
        use redb::{DatabaseError, StorageError};
        match e {
            DatabaseError::DatabaseAlreadyOpen => Error::InUse { path },
            DatabaseError::UpgradeRequired(v) => Error::Corrupt {
                path,
                reason: format!("written in redb's file format {v}, which this build cannot read"),
            },
            // redb's word for a file whose header is not its own.
            DatabaseError::Storage(StorageError::Io(source))
                if source.kind() == std::io::ErrorKind::InvalidData =>
            {
                Error::Corrupt {
                    path,
                    reason: format!(
                        "not a redb database file, or its header is damaged ({source})"
                    ),
                }
            }
            DatabaseError::Storage(StorageError::Io(source)) => Error::Io { path, source },
            DatabaseError::Storage(StorageError::Corrupted(reason)) => {
                Error::Corrupt { path, reason }
            }
            other => Error::Corrupt {
                path,
                reason: other.to_string(),
            },
        }
    }
}

/// Any redb error, as [`Error::Storage`].
pub(crate) fn storage(e: impl Into<redb::Error>) -> Error {
    Error::Storage(e.into())
}
