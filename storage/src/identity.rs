//! Who a data directory belongs to: the `identity` file.
//!
//! The file is written once, when a node first starts on an empty
//! directory, and names the cluster, the node id and an *incarnation*: a
//! random number that exists only in this directory. Raft's safety rests
//! on a node remembering its term and vote; a node whose disk was wiped
//! has forgotten them and must not speak under its old identity. Its
//! peers know its incarnation from the cluster's membership, so a wiped
//! node (which creates a new incarnation) is refused until an operator
//! removes the old member and adds it back as a new one.
//!
//! The file also records the data format, so that a directory written by
//! an older release is refused with advice instead of misread. It is
//! plain text, for operators:
//!
//! ```text
//! format 3
//! cluster 6824
//! node 2
//! incarnation 9f3c1e77a2b04d51
//! ```

use crate::dir_lock;
use crate::error::StorageError;
use crate::fs::{Fs, FsFile, RealFs};
use crate::segment::sync_dir;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

/// The data-directory format this release reads and writes. Format 3 added
/// node identities and memberships with addresses and incarnations.
pub const DATA_FORMAT: u32 = 3;

/// The file's name inside a data directory.
pub const IDENTITY_FILE: &str = "identity";

/// Who a data directory belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeIdentity {
    /// The cluster id.
    pub cluster: u64,
    /// The node id.
    pub node: u64,
    /// A random, nonzero number created with the directory.
    pub incarnation: u64,
}

/// Read the identity of the data directory `dir`, or create one if the
/// directory is new (creating the directory too). Fails if the directory
/// belongs to another node or cluster, was written by another format, or
/// holds Raft state without an identity (a release before format 3).
/// Returns the identity and whether it was just created.
///
/// Fails with [`StorageError::InUse`] while a [`crate::DiskStorage`] (of
/// this process or another) has the directory open: the identity of a
/// directory in use is not this caller's to read or create.
pub fn load_or_create(
    dir: &Path,
    cluster: u64,
    node: u64,
) -> Result<(NodeIdentity, bool), StorageError> {
    load_or_create_in(&RealFs, dir, cluster, node)
}

/// [`load_or_create`] on the filesystem `fs`.
pub fn load_or_create_in<F: Fs>(
    fs: &F,
    dir: &Path,
    cluster: u64,
    node: u64,
) -> Result<(NodeIdentity, bool), StorageError> {
    fs.create_dir_all(dir)
        .map_err(StorageError::io("create data directory", dir))?;
    // Held while reading or creating, so that two nodes starting at once on
    // one directory cannot both create an identity.
    let _lock = dir_lock::lock(fs, dir)?;
    let path = dir.join(IDENTITY_FILE);
    match fs.read(&path) {
        Ok(bytes) => {
            let found = decode(&path, &bytes)?;
            if found.cluster != cluster || found.node != node {
                return Err(StorageError::Identity {
                    path,
                    what: format!(
                        "it belongs to node {} of cluster {}, not node {node} of cluster \
                         {cluster}; check --id, --cluster and --data-dir",
                        found.node, found.cluster
                    ),
                });
            }
            Ok((found, false))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if holds_raft_state(fs, dir)? {
                return Err(StorageError::Identity {
                    path,
                    what: format!(
                        "the directory holds a Raft log but no identity file: it was \
                         written by a release before data format {DATA_FORMAT}, or the file \
                         was deleted. This release cannot use it: move the directory away, \
                         start the node on an empty one and add it back as a new member"
                    ),
                });
            }
            let identity = NodeIdentity {
                cluster,
                node,
                incarnation: fresh_incarnation(),
            };
            write(fs, dir, &path, &identity)?;
            tracing::info!(
                dir = %dir.display(),
                node,
                "new data directory, incarnation {:016x}",
                identity.incarnation
            );
            Ok((identity, true))
        }
        Err(e) => Err(StorageError::io("read", &path)(e)),
    }
}

fn holds_raft_state(fs: &impl Fs, dir: &Path) -> Result<bool, StorageError> {
    for name in fs.read_dir(dir).map_err(StorageError::io("list", dir))? {
        let name = name.to_string_lossy();
        if name.ends_with(".seg") || name.ends_with(".snap") {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Parse the bytes of an identity file; `path` only names the file in
/// errors. Public so that the parser can be fuzzed on buffers in memory
/// (`sim fuzz`).
pub fn decode(path: &Path, bytes: &[u8]) -> Result<NodeIdentity, StorageError> {
    let text = std::str::from_utf8(bytes).map_err(|_| StorageError::Identity {
        path: path.to_path_buf(),
        what: "the file is not UTF-8 text".into(),
    })?;
    parse(path, text)
}

fn parse(path: &Path, text: &str) -> Result<NodeIdentity, StorageError> {
    let bad = |what: String| StorageError::Identity {
        path: path.to_path_buf(),
        what,
    };
    let mut fields = std::collections::BTreeMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let Some((key, value)) = line.split_once(' ') else {
            return Err(bad(format!("line {line:?} is not `key value`")));
        };
        fields.insert(key.trim(), value.trim());
    }
    let field = |key: &str, radix: u32| -> Result<u64, StorageError> {
        let value = fields
            .get(key)
            .ok_or_else(|| bad(format!("no `{key}` line")))?;
        u64::from_str_radix(value, radix)
            .map_err(|e| bad(format!("`{key} {value}` is not a number: {e}")))
    };
    let format = field("format", 10)?;
    if format != u64::from(DATA_FORMAT) {
        return Err(bad(format!(
            "data format {format}, but this release reads format {DATA_FORMAT} only; run \
             the release that wrote it, or move the directory away and add the node back \
             as a new member"
        )));
    }
    let identity = NodeIdentity {
        cluster: field("cluster", 10)?,
        node: field("node", 10)?,
        incarnation: field("incarnation", 16)?,
    };
    if identity.incarnation == 0 {
        return Err(bad("incarnation 0 is reserved for 'unknown'".into()));
    }
    Ok(identity)
}

fn write(
    fs: &impl Fs,
    dir: &Path,
    path: &Path,
    identity: &NodeIdentity,
) -> Result<(), StorageError> {
    let text = format!(
        "format {DATA_FORMAT}\ncluster {}\nnode {}\nincarnation {:016x}\n",
        identity.cluster, identity.node, identity.incarnation
    );
    let tmp = dir.join(format!("{IDENTITY_FILE}.tmp"));
    let mut file = fs.create(&tmp).map_err(StorageError::io("create", &tmp))?;
    file.write_all(text.as_bytes())
        .map_err(StorageError::io("write", &tmp))?;
    file.sync_all().map_err(StorageError::io("fsync", &tmp))?;
    drop(file);
    fs.rename(&tmp, path)
        .map_err(StorageError::io("rename into place", &tmp))?;
    sync_dir(fs, dir)
}

/// A random nonzero number: the standard library's per-process random
/// hash keys (seeded by the operating system) mixed with the clock and the
/// process id, so two directories created at once still differ.
fn fresh_incarnation() -> u64 {
    let mut h = RandomState::new().build_hasher();
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    h.write_u128(nanos);
    h.write_u32(std::process::id());
    h.finish().max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::path::PathBuf;

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "identity-{name}-{}-{}",
            std::process::id(),
            fresh_incarnation()
        ));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn created_once_then_read_back() {
        let dir = temp("once");
        let (a, created) = load_or_create(&dir, 6824, 2).unwrap();
        assert!(created);
        assert_ne!(a.incarnation, 0);
        let (b, created) = load_or_create(&dir, 6824, 2).unwrap();
        assert!(!created);
        assert_eq!(a, b);
        // A wiped directory gets a new incarnation.
        fs::remove_dir_all(&dir).unwrap();
        let (c, _) = load_or_create(&dir, 6824, 2).unwrap();
        assert_ne!(c.incarnation, a.incarnation);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn another_node_old_format_and_orphan_logs_are_refused() {
        let dir = temp("refuse");
        load_or_create(&dir, 6824, 2).unwrap();
        let err = load_or_create(&dir, 6824, 3).unwrap_err().to_string();
        assert!(err.contains("belongs to node 2"), "{err}");
        let text = fs::read_to_string(dir.join(IDENTITY_FILE)).unwrap();
        fs::write(
            dir.join(IDENTITY_FILE),
            text.replace("format 3", "format 2"),
        )
        .unwrap();
        let err = load_or_create(&dir, 6824, 2).unwrap_err().to_string();
        assert!(err.contains("data format 2"), "{err}");
        fs::remove_file(dir.join(IDENTITY_FILE)).unwrap();
        fs::write(dir.join("log-00000001.seg"), b"x").unwrap();
        let err = load_or_create(&dir, 6824, 2).unwrap_err().to_string();
        assert!(err.contains("no identity file"), "{err}");
        assert!(
            !dir.join(IDENTITY_FILE).exists(),
            "nothing is written over a directory it refuses"
        );
        fs::remove_dir_all(&dir).unwrap();
    }
}
