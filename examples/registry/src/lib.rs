//! A user's own state machine, replicated by the library: a registry of
//! names (services, hosts, anything) and their values (addresses, URLs).
//!
//! Everything a user writes to replicate a state machine is in this file and
//! in one of the two programs beside it:
//!
//! * here, the machine: [`Registry`] implements [`core_kv::StateMachine`]
//!   (deterministic `apply`, `query` for reads, snapshot and restore), and
//!   its operations implement [`core_kv::ClerkOp`] so a client can send them;
//! * `src/bin/registry-tokio.rs` and `src/bin/registry-threads.rs`: wrap it
//!   in [`core_kv::Sessioned`] (exactly-once: a retried `Register` is applied
//!   once) and hand it to a driver's `run_node`, which does the rest (TCP,
//!   Raft, the log and snapshots on disk, client sessions); their client
//!   commands use the driver's `Client`.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use core_kv::{ClerkOp, LogIndex, StateMachine};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::io::{Cursor, Read};

/// The registry's protocol version, checked in every connection's
/// handshake: a registry client that reaches a key/value node (which speaks
/// `core_kv::KV_PROTOCOL_VERSION`), or a node of an older release, is
/// refused with a message naming both versions instead of misreading its
/// bytes. Bump it whenever [`Op`] or [`Answer`] change shape.
pub const PROTOCOL: u32 = 104;

/// An operation on the registry, as clients send it and the log stores it.
///
/// It doubles as the client commands of the two programs (`clap`'s derive:
/// the doc comments below are their `--help`), so a new operation is a new
/// command without touching them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, clap::Subcommand)]
pub enum Op {
    /// Bind NAME to VALUE, replacing any earlier value.
    Register {
        /// The name.
        name: String,
        /// Its new value.
        value: String,
    },
    /// Remove NAME (nothing happens if it is not registered).
    Unregister {
        /// The name.
        name: String,
    },
    /// Print the value of NAME. Read-only: the leader answers it through
    /// ReadIndex, without writing the log.
    Lookup {
        /// The name.
        name: String,
    },
    /// Print every name with its value. Read-only, like `lookup`.
    List,
}

/// What an operation returns to its client.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Answer {
    /// `Register` and `Unregister`: the value the name had before
    /// (`None`: it was not registered).
    Previous(Option<String>),
    /// `Lookup`: the value, if the name is registered.
    Value(Option<String>),
    /// `List`: every name with its value, in name order.
    Entries(BTreeMap<String, String>),
}

/// A retried operation keeps its answer: the session layer answers a resend
/// of an applied `Register` with the answer it recorded the first time, so
/// nothing needs rewriting (unlike the key/value store's versioned Put).
impl ClerkOp<Answer> for Op {}

/// The replicated state: names and values, in a `BTreeMap` so that every
/// replica iterates (and snapshots) them in one order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registry {
    names: BTreeMap<String, String>,
    /// How many operations changed the map. A change is a function of the
    /// operations applied, so replicas that applied the same log agree on
    /// it; a replica that is behind shows a smaller number.
    revision: u64,
}

impl Registry {
    /// Every registered name with its value.
    pub fn names(&self) -> &BTreeMap<String, String> {
        &self.names
    }

    /// How many applied operations changed the registry.
    pub fn revision(&self) -> u64 {
        self.revision
    }
}

/// One line that identifies the state (`revision=2 {"db": "10.0.0.5:5432"}`):
/// the programs print it when a node stops, so replicas can be compared.
impl fmt::Display for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "revision={} {:?}", self.revision, self.names)
    }
}

impl StateMachine for Registry {
    type Op = Op;
    type Output = Answer;
    type Snapshot = Cursor<Vec<u8>>;

    fn apply(&mut self, _index: LogIndex, op: &Op) -> Answer {
        let (previous, changed) = match op {
            Op::Register { name, value } => {
                let previous = self.names.insert(name.clone(), value.clone());
                let changed = previous.as_ref() != Some(value);
                (previous, changed)
            }
            Op::Unregister { name } => {
                let previous = self.names.remove(name);
                let changed = previous.is_some();
                (previous, changed)
            }
            // A replica with ReadIndex off serves reads through the log:
            // they are answered like a query and change nothing.
            Op::Lookup { .. } | Op::List => return self.query(op),
        };
        if changed {
            self.revision += 1;
        }
        Answer::Previous(previous)
    }

    fn is_read_only(&self, op: &Op) -> bool {
        matches!(op, Op::Lookup { .. } | Op::List)
    }

    fn query(&self, op: &Op) -> Answer {
        match op {
            Op::Lookup { name } => Answer::Value(self.names.get(name).cloned()),
            Op::List => Answer::Entries(self.names.clone()),
            // Not read-only, so never asked; answering with the current
            // value keeps `query` total without changing anything.
            Op::Register { name, .. } | Op::Unregister { name } => {
                Answer::Previous(self.names.get(name).cloned())
            }
        }
    }

    fn snapshot(&self) -> Cursor<Vec<u8>> {
        Cursor::new(core_kv::snapshot::encode(self))
    }

    fn restore(&mut self, snapshot: &mut dyn Read) -> Result<(), String> {
        *self = core_kv::snapshot::decode(snapshot)?;
        Ok(())
    }
}

/// How the client programs print an answer.
impl fmt::Display for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Answer::Previous(None) => write!(f, "ok"),
            Answer::Previous(Some(old)) => write!(f, "ok (was {old})"),
            Answer::Value(Some(value)) => write!(f, "{value}"),
            Answer::Value(None) => write!(f, "not registered"),
            Answer::Entries(names) => {
                for (i, (name, value)) in names.iter().enumerate() {
                    let sep = if i == 0 { "" } else { "\n" };
                    write!(f, "{sep}{name} {value}")?;
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core_kv::{ClientId, ClientRequest, Seq, Sessioned};

    fn register(name: &str, value: &str) -> Op {
        Op::Register {
            name: name.into(),
            value: value.into(),
        }
    }

    #[test]
    fn only_changes_move_the_revision() {
        let mut r = Registry::default();
        let i = LogIndex(1);
        assert_eq!(r.apply(i, &register("db", "a")), Answer::Previous(None));
        assert_eq!(
            r.apply(i, &register("db", "a")),
            Answer::Previous(Some("a".into()))
        );
        assert_eq!(
            r.revision(),
            1,
            "re-registering the same value changes nothing"
        );
        r.apply(i, &register("db", "b"));
        r.apply(i, &Op::Unregister { name: "db".into() });
        r.apply(i, &Op::Unregister { name: "db".into() });
        assert_eq!(r.revision(), 3);
        assert_eq!(
            r.query(&Op::Lookup { name: "db".into() }),
            Answer::Value(None)
        );
    }

    #[test]
    fn a_snapshot_restores_the_same_state() {
        let mut r = Registry::default();
        r.apply(LogIndex(1), &register("db", "10.0.0.5:5432"));
        r.apply(LogIndex(2), &register("cache", "10.0.0.6:6379"));
        let mut copy = Registry::default();
        copy.restore(&mut r.snapshot()).unwrap();
        assert_eq!(copy, r);
        assert_eq!(
            copy.to_string(),
            r#"revision=2 {"cache": "10.0.0.6:6379", "db": "10.0.0.5:5432"}"#
        );
        assert!(copy.restore(&mut Cursor::new(vec![0xff; 3])).is_err());
    }

    #[test]
    fn sessioned_applies_a_retried_request_once() {
        let mut s = Sessioned::new(Registry::default());
        let req = |seq, op| ClientRequest {
            client: ClientId(7),
            seq: Seq(seq),
            op,
        };
        let first = s.apply(LogIndex(1), &req(1, register("db", "a")));
        assert_eq!(first, Ok(Answer::Previous(None)));
        let second = s.apply(LogIndex(2), &req(2, Op::Unregister { name: "db".into() }));
        assert_eq!(second, Ok(Answer::Previous(Some("a".into()))));
        // A delayed copy of request 2 and one of request 1 reach the log.
        let again = s.apply(LogIndex(3), &req(2, Op::Unregister { name: "db".into() }));
        assert_eq!(again, Ok(Answer::Previous(Some("a".into()))));
        assert!(s.apply(LogIndex(4), &req(1, register("db", "a"))).is_err());
        assert_eq!(s.inner().revision(), 2);
        assert!(s.inner().names().is_empty());
    }
}
