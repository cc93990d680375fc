//! Exactly-once client sessions, as a layer any state machine can sit
//! under.
//!
//! A client numbers its mutations 1, 2, 3, ... and resends a request until
//! it gets an answer, so the same request can reach the log several times.
//! [`Sessions`] remembers, per client, the latest request applied and its
//! answer: a resend of that request is answered from the table without being
//! applied again, and an older one (a delayed duplicate the client has
//! already moved past) is never applied. The table is part of the replicated
//! state: it changes only in `apply`, and it is carried in snapshots, so
//! every replica answers the same way.
//!
//! * [`Sessions`] is the table on its own, for state machines that keep
//!   several (the sharded service keeps one per shard, and moves it with
//!   the shard's data).
//! * [`Sessioned`] wraps any [`StateMachine`] so that its operations become
//!   exactly-once [`ClientRequest`]s.
//!
//! Extension points, settled here so later work does not reshape the API:
//! a session will hold a window of sequence numbers (several requests in
//! flight per client) and a last-active time carried in log entries (so
//! sessions expire deterministically on every replica); both change only
//! [`Session`]'s contents and [`Sessions::admit`]'s rule, not the callers.

use crate::rsm::StateMachine;
use crate::types::{ClientId, Seq};
use core_raft::LogIndex;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// A client's request: who asks, its request number, and the operation.
/// The number is the same on every resend of one request.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ClientRequest<Op = crate::op::Op> {
    /// Who asks.
    pub client: ClientId,
    /// The client's request number (the same on every retry).
    pub seq: Seq,
    /// What to do.
    pub op: Op,
}

/// The latest mutation applied for one client.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session<Out> {
    seq: Seq,
    outcome: Out,
}

/// What the table says about an arriving request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Admission<Out> {
    /// Not seen before: apply it, then [`Sessions::record`] its answer.
    Fresh,
    /// The latest request of this client, already applied: answer with this.
    Duplicate(Out),
    /// Older than the latest applied request: the client has moved past it
    /// and will not read the answer. Never apply it.
    Stale,
}

/// The session table: per client, the latest applied request and its
/// answer. Ordered maps keep snapshots byte-identical across replicas.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sessions<Out> {
    table: BTreeMap<ClientId, Session<Out>>,
    /// Requests answered from the table instead of applied again.
    duplicates: u64,
}

impl<Out> Session<Out> {
    /// Request `seq` was applied with answer `outcome`.
    pub fn new(seq: Seq, outcome: Out) -> Self {
        Session { seq, outcome }
    }

    /// The request number of the latest applied request.
    pub fn seq(&self) -> Seq {
        self.seq
    }

    /// Its answer.
    pub fn outcome(&self) -> &Out {
        &self.outcome
    }
}

impl<Out: Clone> Session<Out> {
    /// The admission rule for request `seq` of a client whose latest
    /// applied request is `latest`: [`Sessions::admit`] without the table,
    /// for a store that keeps its sessions elsewhere (a database), so that
    /// every store decides alike. It counts nothing; the caller counts
    /// [`Admission::Duplicate`]s where [`Sessions::duplicates`] would.
    pub fn admit(latest: Option<&Session<Out>>, seq: Seq) -> Admission<Out> {
        match latest {
            Some(s) if seq == s.seq => Admission::Duplicate(s.outcome.clone()),
            Some(s) if seq < s.seq => Admission::Stale,
            _ => Admission::Fresh,
        }
    }
}

impl<Out> Default for Sessions<Out> {
    fn default() -> Self {
        Sessions {
            table: BTreeMap::new(),
            duplicates: 0,
        }
    }
}

impl<Out: Clone> Sessions<Out> {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Decide what to do with request `seq` of `client`. Deterministic, and
    /// it changes the table only by counting duplicates, so it may run
    /// inside `apply`.
    pub fn admit(&mut self, client: ClientId, seq: Seq) -> Admission<Out> {
        let admission = Session::admit(self.table.get(&client), seq);
        if let Admission::Duplicate(_) = admission {
            self.duplicates += 1;
        }
        admission
    }

    /// Remember `outcome` as the answer to `client`'s request `seq`, which
    /// was just applied.
    pub fn record(&mut self, client: ClientId, seq: Seq, outcome: Out) {
        assert!(
            self.table.get(&client).is_none_or(|s| s.seq < seq),
            "{client}: recording request {seq:?} at or below the latest applied one"
        );
        self.table.insert(client, Session { seq, outcome });
    }
}

impl<Out> Sessions<Out> {
    /// How many retried requests were answered from the table rather than
    /// applied again (each one a double application avoided).
    pub fn duplicates(&self) -> u64 {
        self.duplicates
    }

    /// Number of clients with a session.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// True if no client has a session.
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// Every client's session, in client order (the order of the encoding).
    pub fn iter(&self) -> impl Iterator<Item = (ClientId, &Session<Out>)> {
        self.table.iter().map(|(c, s)| (*c, s))
    }

    /// The latest applied request number of `client`, if it has a session.
    pub fn latest(&self, client: ClientId) -> Option<Seq> {
        self.table.get(&client).map(|s| s.seq)
    }
}

/// The answer to a request that arrived after a newer request of the same
/// client had been applied: it was not applied, and its client is no longer
/// waiting for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Stale;

impl fmt::Display for Stale {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("stale request: a newer request of this client was already applied")
    }
}

/// The operation type of a state machine under sessions (for example
/// [`Sessioned`] or the key/value store): a [`ClientRequest`] around the
/// user's command. Clients are generic over the state machine through it.
pub trait SessionRequest: Sized {
    /// The command inside the request.
    type Command;
    /// The operation for request `request`.
    fn from_request(request: ClientRequest<Self::Command>) -> Self;
}

impl<O> SessionRequest for ClientRequest<O> {
    type Command = O;

    fn from_request(request: ClientRequest<O>) -> Self {
        request
    }
}

/// How a client reads a replica's output for one of its requests: the
/// answer, or nothing when the output is not for a waiting client (the
/// `Err(Stale)` of [`Sessioned`]: the client has moved past that request).
pub trait SessionOutput {
    /// What the client's caller gets.
    type Answer;
    /// The answer, if a client waits for it.
    fn into_answer(self) -> Option<Self::Answer>;
}

impl<T> SessionOutput for Result<T, Stale> {
    type Answer = T;

    fn into_answer(self) -> Option<T> {
        self.ok()
    }
}

/// Any state machine, made exactly-once: its operations arrive as
/// [`ClientRequest`]s and each mutation is applied at most once however often
/// it is retried. Read-only operations skip the session table, so read-only
/// clients cost nothing. The answer to a [`Stale`] request is `Err(Stale)`.
/// Its snapshot is the session table followed by the inner machine's own
/// snapshot, so a machine that streams its state keeps doing so.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sessioned<S: StateMachine> {
    inner: S,
    sessions: Sessions<S::Output>,
}

impl<S: StateMachine> Sessioned<S> {
    /// Wrap `inner`, with no sessions yet.
    pub fn new(inner: S) -> Self {
        Sessioned {
            inner,
            sessions: Sessions::default(),
        }
    }

    /// The wrapped state machine.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// The session table.
    pub fn sessions(&self) -> &Sessions<S::Output> {
        &self.sessions
    }
}

impl<S: StateMachine> StateMachine for Sessioned<S> {
    type Op = ClientRequest<S::Op>;
    type Output = Result<S::Output, Stale>;
    /// The session table (length-prefixed), then the inner machine's own
    /// snapshot, streamed as it produces it.
    type Snapshot = std::io::Chain<std::io::Cursor<Vec<u8>>, S::Snapshot>;

    fn apply(&mut self, index: LogIndex, req: &Self::Op) -> Self::Output {
        if self.inner.is_read_only(&req.op) {
            return Ok(self.inner.query(&req.op));
        }
        match self.sessions.admit(req.client, req.seq) {
            Admission::Duplicate(out) => Ok(out),
            Admission::Stale => Err(Stale),
            Admission::Fresh => {
                let out = self.inner.apply(index, &req.op);
                self.sessions.record(req.client, req.seq, out.clone());
                Ok(out)
            }
        }
    }

    fn is_read_only(&self, req: &Self::Op) -> bool {
        self.inner.is_read_only(&req.op)
    }

    fn query(&self, req: &Self::Op) -> Self::Output {
        Ok(self.inner.query(&req.op))
    }

    /// Never durable: the session table lives in memory only, so even
    /// around a durable machine the pair must be rebuilt from snapshots
    /// and the log. For the same reason it reports no applied index: the
    /// replica must apply every entry after the snapshot again, or the
    /// table would miss their sessions after a restart.
    const DURABLE: bool = false;

    fn applied_index(&self) -> Option<LogIndex> {
        None
    }

    fn applied_batch(&mut self) {
        self.inner.applied_batch();
    }

    fn storage_summary(&self) -> Option<String> {
        self.inner.storage_summary()
    }

    fn snapshot(&self) -> Self::Snapshot {
        use std::io::Read;
        let sessions = crate::snapshot::encode(&self.sessions);
        let mut head = (sessions.len() as u64).to_le_bytes().to_vec();
        head.extend(sessions);
        std::io::Cursor::new(head).chain(self.inner.snapshot())
    }

    fn restore(&mut self, snapshot: &mut dyn std::io::Read) -> Result<(), String> {
        self.restore_sessions(snapshot)?;
        self.inner.restore(snapshot)
    }

    fn restore_at(
        &mut self,
        index: LogIndex,
        snapshot: &mut dyn std::io::Read,
    ) -> Result<(), String> {
        self.restore_sessions(snapshot)?;
        self.inner.restore_at(index, snapshot)
    }
}

impl<S: StateMachine> Sessioned<S> {
    /// Read the session table at the head of a snapshot.
    fn restore_sessions(&mut self, snapshot: &mut dyn std::io::Read) -> Result<(), String> {
        use std::io::Read;
        let mut len = [0u8; 8];
        snapshot
            .read_exact(&mut len)
            .map_err(|e| format!("session table length: {e}"))?;
        let len = u64::from_le_bytes(len);
        let mut table = Vec::new();
        Read::take(&mut *snapshot, len)
            .read_to_end(&mut table)
            .map_err(|e| format!("session table: {e}"))?;
        if table.len() as u64 != len {
            return Err(format!(
                "session table cut short: {} of {len} bytes",
                table.len()
            ));
        }
        self.sessions = crate::snapshot::decode_bytes(&table)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_retry_is_answered_from_the_table_and_an_older_request_is_stale() {
        let mut s: Sessions<u64> = Sessions::new();
        let c = ClientId(7);
        assert_eq!(s.admit(c, Seq(1)), Admission::Fresh);
        s.record(c, Seq(1), 10);
        assert_eq!(s.admit(c, Seq(1)), Admission::Duplicate(10));
        assert_eq!(s.admit(c, Seq(2)), Admission::Fresh);
        s.record(c, Seq(2), 20);
        assert_eq!(s.admit(c, Seq(1)), Admission::Stale);
        assert_eq!(s.duplicates(), 1);
        assert_eq!(s.latest(c), Some(Seq(2)));
        assert_eq!(s.len(), 1);
    }

    /// A counter whose snapshot is its decimal text, to show the inner
    /// snapshot is the machine's own.
    #[derive(Default, Debug, PartialEq)]
    struct Count(u64);

    impl StateMachine for Count {
        type Op = ();
        type Output = u64;
        type Snapshot = std::io::Cursor<Vec<u8>>;
        fn apply(&mut self, _: LogIndex, _: &()) -> u64 {
            self.0 += 1;
            self.0
        }
        fn query(&self, _: &()) -> u64 {
            self.0
        }
        fn snapshot(&self) -> Self::Snapshot {
            std::io::Cursor::new(self.0.to_string().into_bytes())
        }
        fn restore(&mut self, r: &mut dyn std::io::Read) -> Result<(), String> {
            let text =
                String::from_utf8(crate::snapshot::read_all(r)?).map_err(|e| e.to_string())?;
            self.0 = text.parse().map_err(|e| format!("{e}"))?;
            Ok(())
        }
    }

    #[test]
    fn sessioned_applies_a_retry_once_and_snapshots_sessions_then_the_inner_state() {
        let mut s = Sessioned::new(Count::default());
        let req = |seq| ClientRequest {
            client: ClientId(1),
            seq: Seq(seq),
            op: (),
        };
        assert_eq!(s.apply(LogIndex(1), &req(1)), Ok(1));
        assert_eq!(
            s.apply(LogIndex(2), &req(1)),
            Ok(1),
            "a retry is answered, not applied"
        );
        assert_eq!(s.apply(LogIndex(3), &req(2)), Ok(2));
        assert_eq!(s.apply(LogIndex(4), &req(1)), Err(Stale));
        let bytes = crate::snapshot::read_all(&mut s.snapshot()).unwrap();
        assert!(
            bytes.ends_with(b"2"),
            "the inner snapshot comes last, as the machine wrote it"
        );
        let mut back = Sessioned::new(Count::default());
        back.restore(&mut bytes.as_slice()).unwrap();
        assert_eq!(back.inner(), &Count(2));
        assert_eq!(back.apply(LogIndex(5), &req(2)), Ok(2), "sessions survived");
        assert!(
            back.restore(&mut &bytes[..5]).is_err(),
            "a cut snapshot is refused"
        );
    }

    #[test]
    #[should_panic(expected = "at or below the latest applied one")]
    fn recording_an_old_request_is_a_broken_invariant() {
        let mut s: Sessions<u64> = Sessions::new();
        s.record(ClientId(1), Seq(2), 0);
        s.record(ClientId(1), Seq(1), 0);
    }
}
