//! The key/value state: keys with values and versions, plus the
//! exactly-once session table ([`crate::Sessions`]).
//!
//! Every mutation carries `(client, seq)`. A clerk has at most one request
//! outstanding, so a retry is either the latest applied request (answered
//! from the table without applying again) or a newer one; an older one is a
//! stale duplicate, answered `ErrMaybe` and never applied. Reads skip the
//! table, so read-only clients cost nothing.

use crate::op::{Op, Outcome};
use crate::session::{Admission, ClientRequest, Sessions};
use crate::types::{ClientId, Version};
use core_raft::LogIndex;
use imbl::OrdMap;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Keys with values and versions, plus the session table. Ordered maps keep
/// snapshots byte-identical across replicas.
///
/// The data lives in a persistent (copy-on-write) ordered map, so that
/// [`crate::StateMachine::snapshot`] is an O(1) clone whatever the state's
/// size: the encoding happens in the snapshot's reader, off the event loop
/// when the driver asks for it ([`crate::RsmConfig::capture_off_loop`]),
/// while the replica goes on applying. It encodes exactly as a `BTreeMap`
/// (a length, then the pairs in key order), so snapshots of both read the
/// same.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvStore {
    #[serde(with = "untrusted_map")]
    data: OrdMap<String, (String, Version)>,
    sessions: Sessions<Outcome>,
}

/// Serde for the data map. imbl's own `Deserialize` reserves as many
/// entries as the input's length prefix claims, so a snapshot from the
/// network claiming 2^60 entries would abort the process; this one grows
/// with the entries actually present. It encodes as a map, like imbl's and
/// like `BTreeMap`'s.
mod untrusted_map {
    use imbl::OrdMap;
    use serde::de::{MapAccess, Visitor};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use std::fmt;
    use std::marker::PhantomData;

    pub fn serialize<K, V, S>(map: &OrdMap<K, V>, serializer: S) -> Result<S::Ok, S::Error>
    where
        K: Serialize + Ord + Clone,
        V: Serialize + Clone,
        S: Serializer,
    {
        serializer.collect_map(map.iter())
    }

    pub fn deserialize<'de, K, V, D>(deserializer: D) -> Result<OrdMap<K, V>, D::Error>
    where
        K: Deserialize<'de> + Ord + Clone,
        V: Deserialize<'de> + Clone,
        D: Deserializer<'de>,
    {
        struct Entries<K, V>(PhantomData<(K, V)>);

        impl<'de, K, V> Visitor<'de> for Entries<K, V>
        where
            K: Deserialize<'de> + Ord + Clone,
            V: Deserialize<'de> + Clone,
        {
            type Value = OrdMap<K, V>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
                let mut map = OrdMap::new();
                while let Some((k, v)) = access.next_entry()? {
                    map.insert(k, v);
                }
                Ok(map)
            }
        }

        deserializer.deserialize_map(Entries(PhantomData))
    }
}

/// The rule for a read-only operation, given its key's value and version
/// (`None`: absent): `Value` or `ErrNoKey` for a `Get`; a mutation gets
/// `ErrVersion` (it is never applied by a read). Shared by every key/value
/// store, in memory or on disk, so that they answer alike.
pub fn read_rule(current: Option<(&str, Version)>, op: &Op) -> Outcome {
    match (op, current) {
        (Op::Get { .. }, Some((value, version))) => Outcome::Value {
            value: value.to_owned(),
            version,
        },
        (Op::Get { .. }, None) => Outcome::ErrNoKey,
        _ => Outcome::ErrVersion,
    }
}

/// The rule for one admitted (fresh) operation, given its key's value and
/// version (`None`: absent): its outcome, and the entry to store for the
/// key (`None`: the key is left as it is). Versions start at 1 and every
/// change adds one; a versioned `Put` installs only at the version it names
/// (0 creates). Shared by every key/value store, in memory or on disk, so
/// that they cannot drift apart.
pub fn mutation_rule(
    current: Option<(&str, Version)>,
    op: &Op,
) -> (Outcome, Option<(String, Version)>) {
    match op {
        Op::Get { .. } => (read_rule(current, op), None),
        Op::Put { value, version, .. } => match current {
            Some((_, at)) if at == *version => {
                (Outcome::Ok, Some((value.clone(), Version(at.0 + 1))))
            }
            Some(_) => (Outcome::ErrVersion, None),
            None if version.0 == 0 => (Outcome::Ok, Some((value.clone(), Version(1)))),
            None => (Outcome::ErrNoKey, None),
        },
        Op::Set { value, .. } => {
            let at = current.map_or(0, |(_, v)| v.0);
            (Outcome::Ok, Some((value.clone(), Version(at + 1))))
        }
        Op::Append { value, .. } => {
            let (old, at) = current.map_or(("", 0), |(v, at)| (v, at.0));
            let mut new = String::with_capacity(old.len() + value.len());
            new.push_str(old);
            new.push_str(value);
            (Outcome::Ok, Some((new, Version(at + 1))))
        }
    }
}

/// A snapshot that does not decode.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("corrupt key/value snapshot: {0}")]
pub struct SnapshotError(pub String);

impl KvStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Apply one request exactly once.
    pub fn apply(&mut self, req: &ClientRequest) -> Outcome {
        if req.op.is_read_only() {
            return self.read(&req.op);
        }
        match self.sessions.admit(req.client, req.seq) {
            Admission::Duplicate(outcome) => outcome,
            // A delayed duplicate of a request the client has already moved
            // past; it will not read this answer. Never re-apply.
            Admission::Stale => Outcome::ErrMaybe,
            Admission::Fresh => {
                let outcome = self.mutate(&req.op);
                self.sessions.record(req.client, req.seq, outcome.clone());
                outcome
            }
        }
    }

    /// Answer a read-only operation from the current state. Mutations get
    /// `ErrVersion` (they are never applied here).
    pub fn read(&self, op: &Op) -> Outcome {
        read_rule(self.entry(op.key()), op)
    }

    fn entry(&self, key: &str) -> Option<(&str, Version)> {
        self.data
            .get(key)
            .map(|(v, version)| (v.as_str(), *version))
    }

    fn mutate(&mut self, op: &Op) -> Outcome {
        let (outcome, write) = mutation_rule(self.entry(op.key()), op);
        if let Some(entry) = write {
            self.data.insert(op.key().to_owned(), entry);
        }
        outcome
    }

    /// How many retried mutations were answered from the session table
    /// rather than applied again (each one a double application avoided).
    pub fn duplicates(&self) -> u64 {
        self.sessions.duplicates()
    }

    /// Number of clients with a session entry.
    pub fn sessions(&self) -> usize {
        self.sessions.len()
    }

    /// The latest mutation applied for `client`, if any.
    pub fn latest_seq(&self, client: ClientId) -> Option<crate::Seq> {
        self.sessions.latest(client)
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// True if no key exists.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Serialize data and sessions.
    pub fn to_snapshot(&self) -> Vec<u8> {
        crate::snapshot::encode(self)
    }

    /// Rebuild from [`KvStore::to_snapshot`] output. Bytes left over after
    /// the store mean it is not such output: rejected too.
    pub fn from_snapshot(data: &[u8]) -> Result<KvStore, SnapshotError> {
        crate::snapshot::decode_bytes(data).map_err(SnapshotError)
    }
}

impl crate::StateMachine for KvStore {
    type Op = ClientRequest;
    type Output = Outcome;
    type Snapshot = crate::snapshot::EncodeOnRead<KvStore>;

    fn apply(&mut self, _index: LogIndex, op: &ClientRequest) -> Outcome {
        KvStore::apply(self, op)
    }

    fn is_read_only(&self, op: &ClientRequest) -> bool {
        op.op.is_read_only()
    }

    fn query(&self, op: &ClientRequest) -> Outcome {
        self.read(&op.op)
    }

    fn snapshot(&self) -> Self::Snapshot {
        crate::snapshot::EncodeOnRead::new(self.clone())
    }

    fn restore(&mut self, snapshot: &mut dyn std::io::Read) -> Result<(), String> {
        let bytes = crate::snapshot::read_all(snapshot)?;
        *self = KvStore::from_snapshot(&bytes).map_err(|e| e.to_string())?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Seq;

    fn req(client: u64, seq: u64, op: Op) -> ClientRequest {
        ClientRequest {
            client: ClientId(client),
            seq: Seq(seq),
            op,
        }
    }

    fn put(key: &str, value: &str, version: u64) -> Op {
        Op::Put {
            key: key.into(),
            value: value.into(),
            version: Version(version),
        }
    }

    fn get(key: &str) -> Op {
        Op::Get { key: key.into() }
    }

    #[test]
    fn versioned_put_follows_the_lab_rules() {
        let mut s = KvStore::new();
        assert_eq!(s.apply(&req(1, 1, put("k", "a", 0))), Outcome::Ok);
        assert_eq!(
            s.apply(&req(1, 2, get("k"))),
            Outcome::Value {
                value: "a".into(),
                version: Version(1)
            }
        );
        assert_eq!(s.apply(&req(1, 3, put("k", "b", 0))), Outcome::ErrVersion);
        assert_eq!(s.apply(&req(1, 4, put("y", "b", 1))), Outcome::ErrNoKey);
        assert_eq!(s.apply(&req(1, 5, get("y"))), Outcome::ErrNoKey);
    }

    #[test]
    fn a_retried_mutation_is_applied_once_and_answered_the_same() {
        let mut s = KvStore::new();
        let append = req(
            7,
            1,
            Op::Append {
                key: "k".into(),
                value: "x".into(),
            },
        );
        assert_eq!(s.apply(&append), Outcome::Ok);
        assert_eq!(s.apply(&append), Outcome::Ok);
        assert_eq!(
            s.read(&get("k")),
            Outcome::Value {
                value: "x".into(),
                version: Version(1)
            }
        );
        let p = req(7, 2, put("k", "y", 1));
        assert_eq!(s.apply(&p), Outcome::Ok);
        // The retry of an applied versioned Put gets its original answer, not ErrVersion.
        assert_eq!(s.apply(&p), Outcome::Ok);
        // An older duplicate is never applied again.
        assert_eq!(s.apply(&append), Outcome::ErrMaybe);
        assert_eq!(
            s.read(&get("k")),
            Outcome::Value {
                value: "y".into(),
                version: Version(2)
            }
        );
    }

    #[test]
    fn reads_leave_no_session_state() {
        let mut s = KvStore::new();
        for c in 0..1000 {
            s.apply(&req(c, 1, get("k")));
        }
        assert_eq!(s.sessions(), 0);
    }

    #[test]
    fn snapshots_round_trip_and_reject_garbage() {
        let mut s = KvStore::new();
        s.apply(&req(1, 1, put("a", "1", 0)));
        s.apply(&req(
            2,
            1,
            Op::Set {
                key: "b".into(),
                value: "2".into(),
            },
        ));
        let back = KvStore::from_snapshot(&s.to_snapshot()).unwrap();
        assert_eq!(back, s);
        assert!(KvStore::from_snapshot(&[0xff, 0xff, 0xff]).is_err());
    }

    /// A snapshot whose map length claims far more entries than its bytes
    /// hold is corrupt, not a reason to size a buffer: before the fix these
    /// claims panicked ("capacity overflow") or aborted the process.
    #[test]
    fn a_hostile_map_length_is_rejected_without_allocating_for_it() {
        for claimed in [u64::MAX, 1 << 40, u64::from(u32::MAX)] {
            let mut bytes = postcard::to_allocvec(&claimed).unwrap();
            bytes.extend_from_slice(&[1, b'k', 1, b'v', 0]);
            let err = KvStore::from_snapshot(&bytes).unwrap_err();
            assert!(err.0.contains("end"), "{claimed}: {err}");
        }
    }

    /// The persistent map encodes like the `BTreeMap` it replaced, so
    /// snapshots written before it still restore.
    #[test]
    fn the_data_encodes_as_an_ordered_map() {
        let mut s = KvStore::new();
        let mut plain = std::collections::BTreeMap::new();
        for (seq, k) in [(1, "b"), (2, "a"), (3, "c")] {
            s.apply(&req(
                1,
                seq,
                Op::Set {
                    key: k.into(),
                    value: k.repeat(3),
                },
            ));
            plain.insert(k.to_string(), (k.repeat(3), Version(1)));
        }
        let sessions: Sessions<Outcome> = Sessions::default();
        let old = postcard::to_allocvec(&(plain, sessions)).unwrap();
        let new = postcard::to_allocvec(&s.data).unwrap();
        assert!(old.starts_with(&new));
    }

    /// A capture taken before more writes still reads as the state at the
    /// capture: the copy-on-write clone does not see later changes.
    #[test]
    fn a_capture_reads_the_state_as_it_was_when_taken() {
        use crate::StateMachine as _;
        use std::io::Read as _;
        let mut s = KvStore::new();
        s.apply(&req(1, 1, put("a", "1", 0)));
        let mut capture = s.snapshot();
        let at_capture = s.clone();
        s.apply(&req(1, 2, put("a", "2", 1)));
        s.apply(&req(1, 3, put("b", "3", 0)));
        let mut bytes = Vec::new();
        capture.read_to_end(&mut bytes).unwrap();
        assert_eq!(KvStore::from_snapshot(&bytes).unwrap(), at_capture);
        assert_ne!(at_capture, s);
    }
}
