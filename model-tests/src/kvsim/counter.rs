//! Lab 4A's test state machine, a counter, and a client that submits to
//! servers directly (the 4A tests call `Submit` on a server).

use super::world::{Answer, Outbox, SimClient};
use core_kv::StateMachine;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};

/// An operation on the counter.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CounterOp {
    /// Increment; returns the new value.
    Inc,
    /// Must never be applied (the lab's `log.Fatal` on Dec).
    Dec,
    /// No effect.
    Null,
    /// Read the value (read-only: served through ReadIndex when enabled).
    Get,
}

/// The counter's answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CounterOut {
    /// The value after an Inc.
    N(u64),
    /// The answer to Null.
    Null,
    /// The answer to Get.
    Value(u64),
}

/// The replicated counter.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counter {
    /// Current value.
    pub n: u64,
}

impl StateMachine for Counter {
    type Op = CounterOp;
    type Output = CounterOut;
    type Snapshot = std::io::Cursor<Vec<u8>>;

    fn apply(&mut self, _index: core_raft::LogIndex, op: &CounterOp) -> CounterOut {
        match op {
            CounterOp::Inc => {
                self.n += 1;
                CounterOut::N(self.n)
            }
            CounterOp::Dec => panic!("a Dec was applied: a minority committed an entry"),
            CounterOp::Null => CounterOut::Null,
            CounterOp::Get => CounterOut::Value(self.n),
        }
    }

    fn is_read_only(&self, op: &CounterOp) -> bool {
        *op == CounterOp::Get
    }

    fn query(&self, _op: &CounterOp) -> CounterOut {
        CounterOut::Value(self.n)
    }

    fn snapshot(&self) -> Self::Snapshot {
        std::io::Cursor::new(core_kv::snapshot::encode(&self.n))
    }

    fn restore(&mut self, snapshot: &mut dyn std::io::Read) -> Result<(), String> {
        self.n = core_kv::snapshot::decode(snapshot)?;
        Ok(())
    }
}

/// One submission as the submitter saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Submission {
    /// The server it was sent to.
    pub server: usize,
    /// The operation.
    pub op: CounterOp,
    /// Virtual ms when sent.
    pub sent: u64,
    /// Virtual ms and answer, once answered.
    pub answered: Option<(u64, Result<CounterOut, core_kv::NotLeader>)>,
}

/// Sends submissions it is told to send and records their answers. Several
/// may be outstanding at once (the tests' concurrent `Submit`s).
#[derive(Default)]
pub struct Submitter {
    queue: VecDeque<(usize, CounterOp)>,
    /// Every submission, by id.
    pub log: BTreeMap<u64, Submission>,
    next_id: u64,
    now: u64,
}

impl Submitter {
    /// Queue `op` for `server`; it is sent at the next tick.
    pub fn submit(&mut self, server: usize, op: CounterOp) {
        self.queue.push_back((server, op));
    }
}

impl SimClient<Counter> for Submitter {
    fn on_tick(&mut self, now_ms: u64, out: &mut Outbox<CounterOp>) {
        self.now = now_ms;
        while let Some((server, op)) = self.queue.pop_front() {
            self.next_id += 1;
            self.log.insert(
                self.next_id,
                Submission {
                    server,
                    op: op.clone(),
                    sent: now_ms,
                    answered: None,
                },
            );
            out.send(server, self.next_id, op);
        }
    }

    fn on_answer(
        &mut self,
        now_ms: u64,
        _server: usize,
        id: u64,
        answer: Answer<Counter>,
        _out: &mut Outbox<CounterOp>,
    ) {
        if let Some(s) = self.log.get_mut(&id) {
            if s.answered.is_none() {
                s.answered = Some((now_ms, answer));
            }
        }
    }

    fn finished(&self) -> bool {
        self.queue.is_empty() && self.log.values().all(|s| s.answered.is_some())
    }
}
