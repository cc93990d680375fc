//! Fault injection for tests of real clusters (`kv chaos`): which Raft
//! frames a node drops, and how long its disk waits before each fsync.
//!
//! It is off unless a node is started with it (`kv serve
//! --fault-injection`). The control is a plain file, [`FAULTS_FILE`], in the
//! node's own data directory, so only someone who can already write the
//! node's data on its machine can switch faults on; nothing on the network
//! reaches it. The driver reads the file every [`FAULTS_POLL_MS`] and hands
//! its text to a [`FaultControl`]; a changed file becomes
//! [`crate::NodeInput::Faults`] (the frame filter lives in the shell, so
//! both drivers and the simulator drop exactly the same frames) and a disk
//! delay the driver applies itself.
//!
//! The file holds one directive per line (`#` starts a comment):
//!
//! ```text
//! drop-to 2 3        # frames this node sends to nodes 2 and 3 are lost
//! drop-from 3        # frames node 3 sends to this node are lost
//! disk-delay-ms 300  # every fsync waits 300 ms first
//! ```
//!
//! An empty or missing file means no faults. Only Raft frames between
//! replicas are dropped: handshakes go through (so connections stay up, as
//! they do when a switch drops packets) and clients are served as usual.

use crate::NodeInput;
use core_raft::NodeId;
use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use thiserror::Error;

/// The control file's name inside the node's data directory.
pub const FAULTS_FILE: &str = "faults";

/// How often a driver reads the control file, in milliseconds: well under
/// the election timeout (500 ms or more), so a partition takes effect
/// before the cluster could notice the delay.
pub const FAULTS_POLL_MS: u64 = 50;

/// What a node's log line says when it applies a changed control file, so
/// that a test can see that a fault is in force.
pub const FAULTS_APPLIED_LOG: &str = "fault injection: now";

/// Raft links a node cuts, each in one direction.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LinkFaults {
    /// Peers this node's Raft frames to are dropped (before they are sent).
    pub drop_to: BTreeSet<NodeId>,
    /// Peers whose Raft frames to this node are dropped (as they arrive).
    pub drop_from: BTreeSet<NodeId>,
}

impl LinkFaults {
    /// Whether no link is cut.
    pub fn is_empty(&self) -> bool {
        self.drop_to.is_empty() && self.drop_from.is_empty()
    }
}

/// Everything one control file asks for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FaultPlan {
    /// The links to cut.
    pub links: LinkFaults,
    /// How long the driver waits before each fsync (0: not at all).
    pub disk_delay_ms: u64,
}

/// A control file that does not parse; the node keeps the faults it had.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("faults file, line {line}: {what} (expected `drop-to ID..`, `drop-from ID..` or `disk-delay-ms MS`)")]
pub struct FaultFileError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong with it.
    pub what: String,
}

impl FaultPlan {
    /// Parse a control file's text (see the module documentation).
    pub fn parse(text: &str) -> Result<FaultPlan, FaultFileError> {
        let mut plan = FaultPlan::default();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let err = |what: String| FaultFileError { line: i + 1, what };
            let mut words = line.split(|c: char| c.is_whitespace() || c == ',');
            let directive = words.next().unwrap_or("");
            let args: Vec<&str> = words.filter(|w| !w.is_empty()).collect();
            if args.is_empty() {
                return Err(err(format!("{directive:?} needs an argument")));
            }
            match directive {
                "drop-to" | "drop-from" => {
                    let set = if directive == "drop-to" {
                        &mut plan.links.drop_to
                    } else {
                        &mut plan.links.drop_from
                    };
                    for a in args {
                        match a.parse::<u64>() {
                            Ok(id) if id > 0 => {
                                set.insert(NodeId(id));
                            }
                            _ => return Err(err(format!("{a:?} is not a node id"))),
                        }
                    }
                }
                "disk-delay-ms" => {
                    let [ms] = args.as_slice() else {
                        return Err(err("disk-delay-ms takes one number".into()));
                    };
                    plan.disk_delay_ms = ms
                        .parse()
                        .map_err(|_| err(format!("{ms:?} is not a number of milliseconds")))?;
                }
                other => return Err(err(format!("unknown directive {other:?}"))),
            }
        }
        Ok(plan)
    }
}

impl fmt::Display for FaultPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.links.is_empty() && self.disk_delay_ms == 0 {
            return write!(f, "no faults");
        }
        let ids = |s: &BTreeSet<NodeId>| {
            let v: Vec<String> = s.iter().map(|n| n.0.to_string()).collect();
            v.join(",")
        };
        let mut parts = Vec::new();
        if !self.links.drop_to.is_empty() {
            parts.push(format!("dropping frames to {}", ids(&self.links.drop_to)));
        }
        if !self.links.drop_from.is_empty() {
            parts.push(format!(
                "dropping frames from {}",
                ids(&self.links.drop_from)
            ));
        }
        if self.disk_delay_ms > 0 {
            parts.push(format!("fsync delayed {} ms", self.disk_delay_ms));
        }
        write!(f, "{}", parts.join("; "))
    }
}

/// What a driver keeps between two reads of the control file: the text it
/// saw last, so that only changes reach the node (and its log).
#[derive(Debug)]
pub struct FaultControl {
    node: NodeId,
    last: String,
}

impl FaultControl {
    /// Fault injection switched on for `node`, whose control file is
    /// `file`. Says so loudly in the log: a node that drops frames on
    /// request must never be mistaken for a production one.
    pub fn enable(node: NodeId, file: &str) -> FaultControl {
        tracing::warn!(
            node = %node,
            "FAULT INJECTION IS ON: this node obeys {file} (read every {FAULTS_POLL_MS} ms): \
             it may drop Raft frames and delay fsyncs on purpose. For tests only."
        );
        FaultControl {
            node,
            last: String::new(),
        }
    }

    /// The control file's current text (empty if it is missing): a new
    /// plan if it changed and parses. A file that does not parse is logged
    /// once and ignored (the faults in force stay).
    pub fn update(&mut self, text: &str) -> Option<FaultPlan> {
        if text == self.last {
            return None;
        }
        self.last = text.to_string();
        match FaultPlan::parse(text) {
            Ok(plan) => {
                tracing::warn!(node = %self.node, "{FAULTS_APPLIED_LOG} {plan}");
                Some(plan)
            }
            Err(e) => {
                tracing::error!(node = %self.node, "fault injection: ignored: {e}");
                None
            }
        }
    }
}

/// What both drivers keep for a node with fault injection on: where its
/// control file is, what it said last, and the fsync delay it asks for
/// (shared with the driver's `storage::DelayedSync`). The reading itself
/// is the driver's (this crate does no I/O): it passes a reader to
/// [`FaultFile::poll_with`].
#[derive(Debug)]
pub struct FaultFile {
    path: PathBuf,
    control: FaultControl,
    delay_ms: Arc<AtomicU64>,
}

impl FaultFile {
    /// Fault injection on for `node`, controlled by the file in `data_dir`.
    pub fn enable(node: u64, data_dir: &Path) -> FaultFile {
        let path = data_dir.join(FAULTS_FILE);
        let control = FaultControl::enable(NodeId(node), &path.display().to_string());
        FaultFile {
            path,
            control,
            delay_ms: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The fsync delay in milliseconds, as the file last set it.
    pub fn disk_delay(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.delay_ms)
    }

    /// Read the file with `read` (a missing one means no faults): the
    /// shell's input if the link faults may have changed.
    pub fn poll_with(
        &mut self,
        read: impl FnOnce(&Path) -> std::io::Result<String>,
    ) -> Option<NodeInput> {
        let text = match read(&self.path) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directives_comments_and_lists_parse() {
        let plan = FaultPlan::parse(
            "# partition\ndrop-to 2 3\n  drop-from 3,4  # one way\n\ndisk-delay-ms 300\n",
        )
        .unwrap();
        assert_eq!(
            plan.links.drop_to,
            [NodeId(2), NodeId(3)].into_iter().collect()
        );
        assert_eq!(
            plan.links.drop_from,
            [NodeId(3), NodeId(4)].into_iter().collect()
        );
        assert_eq!(plan.disk_delay_ms, 300);
        assert_eq!(
            plan.to_string(),
            "dropping frames to 2,3; dropping frames from 3,4; fsync delayed 300 ms"
        );
        assert_eq!(FaultPlan::parse("").unwrap(), FaultPlan::default());
        assert_eq!(FaultPlan::default().to_string(), "no faults");
    }

    #[test]
    fn mistakes_name_their_line() {
        for (text, line, what) in [
            ("drop-to 2\ndrop-up 3", 2, "unknown directive"),
            ("drop-to", 1, "needs an argument"),
            ("drop-from x", 1, "not a node id"),
            ("drop-from 0", 1, "not a node id"),
            ("\n\ndisk-delay-ms 1 2", 3, "takes one number"),
            ("disk-delay-ms -5", 1, "not a number"),
        ] {
            let e = FaultPlan::parse(text).unwrap_err();
            assert_eq!(e.line, line, "{text:?}");
            assert!(e.to_string().contains(what), "{text:?}: {e}");
        }
    }

    #[test]
    fn only_changes_reach_the_node_and_bad_files_keep_the_faults() {
        let mut c = FaultControl::enable(NodeId(1), "faults");
        assert_eq!(c.update(""), None, "no file, no faults: nothing to do");
        let plan = c.update("drop-to 2").unwrap();
        assert!(plan.links.drop_to.contains(&NodeId(2)));
        assert_eq!(c.update("drop-to 2"), None, "unchanged");
        assert_eq!(c.update("drop-to two"), None, "bad files are ignored");
        assert_eq!(c.update(""), Some(FaultPlan::default()), "cleared");
    }
}
