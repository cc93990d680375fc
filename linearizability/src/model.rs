//! The vocabulary of the checker: a recorded [`Operation`], and the sequential
//! specification ([`Model`]) that a history is checked against.

use std::fmt::Debug;
use std::hash::Hash;

/// One client operation as a recorder saw it: who issued it, what it asked,
/// when it was invoked, and — if a reply arrived — what came back and when.
///
/// Times are plain `u64` (virtual ticks, a tick-plus-sequence encoding, or
/// nanoseconds since some start) because the checker only compares them.
/// The interval `[call, reply.at]` is *closed*: an operation returning at 20
/// and another invoked at 20 count as concurrent, as in porcupine, so a
/// recorder with coarse clocks never manufactures a false real-time order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operation<I, O> {
    /// The client that issued the operation; only used for rendering.
    pub client_id: u64,
    /// What the client asked for.
    pub input: I,
    /// When the client invoked the operation.
    pub call: u64,
    /// The reply, or `None` if the client never got one (it crashed, gave up,
    /// or the run ended first). Such an operation is treated as returning at
    /// +infinity: it may have taken effect at any point after `call`, or
    /// never.
    pub reply: Option<Reply<O>>,
}

/// The reply half of an [`Operation`]: what the client observed and when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply<O> {
    /// When the reply reached the client. Must not be earlier than the call.
    pub at: u64,
    /// What the client observed.
    pub output: O,
}

impl<I, O> Operation<I, O> {
    /// An operation that completed: invoked at `call`, answered at `ret`.
    pub fn completed(client_id: u64, input: I, call: u64, ret: u64, output: O) -> Self {
        Operation {
            client_id,
            input,
            call,
            reply: Some(Reply { at: ret, output }),
        }
    }

    /// An operation whose reply never arrived; it may or may not have taken
    /// effect.
    pub fn pending(client_id: u64, input: I, call: u64) -> Self {
        Operation {
            client_id,
            input,
            call,
            reply: None,
        }
    }

    /// The observed output, if there was a reply.
    pub fn output(&self) -> Option<&O> {
        self.reply.as_ref().map(|r| &r.output)
    }

    /// The return time, if there was a reply (`None` means +infinity).
    pub fn return_time(&self) -> Option<u64> {
        self.reply.as_ref().map(|r| r.at)
    }
}

/// A group of operations that can be checked on its own (typically all the
/// operations on one key), named so that a failure report can say which.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Partition {
    /// A human-readable name for the group, such as `key "k3"`.
    pub label: String,
    /// Indices into the full history of the operations in this group.
    pub ops: Vec<usize>,
}

/// A sequential specification: the object that a concurrent history should
/// look like when its operations are put in some order consistent with
/// real time.
///
/// This is porcupine's `Model`, with two differences: states are compared and
/// hashed through `Eq` and `Hash` (the memo cache needs both), and the output
/// handed to [`Model::step`] is `None` for an operation that never got a
/// reply.
pub trait Model {
    /// The state of the object (of one partition of it). Cloned on every
    /// successful step, so keep it small.
    type State: Clone + Eq + Hash + Debug;
    /// What a client asks for.
    type Input: Debug;
    /// What a client observes.
    type Output: Debug;

    /// The state before any operation.
    fn init(&self) -> Self::State;

    /// Applies `input` in `state`. Returns the new state if observing
    /// `output` is legal there, `None` if it is not.
    ///
    /// `output` is `None` for an operation without a reply: return the state
    /// the operation would produce if it took effect here (whatever it
    /// returned). The checker separately allows it never to take effect.
    ///
    /// Must be a pure function of its arguments: the memo cache and the
    /// failure report both rely on replaying a step giving the same answer.
    fn step(
        &self,
        state: &Self::State,
        input: &Self::Input,
        output: Option<&Self::Output>,
    ) -> Option<Self::State>;

    /// True if this operation, with this output, leaves the state unchanged
    /// in *every* state where it is legal (a read; a write refused for its
    /// version). The search may then linearize it as soon as it is legal and
    /// never try the alternatives, which keeps histories full of concurrent
    /// reads and refused writes tractable. The default, `false`, is always
    /// safe; answering `true` wrongly makes the checker unsound.
    fn never_changes_state(&self, _input: &Self::Input, _output: Option<&Self::Output>) -> bool {
        false
    }

    /// Splits a history into independent groups such that the history is
    /// linearizable if and only if every group is (P-compositionality).
    /// Partitioning per key turns one exponential search into many small
    /// ones. The default is a single group holding everything.
    fn partition(&self, history: &[Operation<Self::Input, Self::Output>]) -> Vec<Partition> {
        vec![Partition {
            label: "all operations".to_string(),
            ops: (0..history.len()).collect(),
        }]
    }

    /// A one-line description of an operation for reports, such as
    /// `put("k", "v", 3) -> ErrVersion`. `output` is `None` if there was no
    /// reply.
    fn describe_operation(&self, input: &Self::Input, output: Option<&Self::Output>) -> String {
        match output {
            Some(out) => format!("{input:?} -> {out:?}"),
            None => format!("{input:?} -> (no reply)"),
        }
    }

    /// A short description of a state for reports.
    fn describe_state(&self, state: &Self::State) -> String {
        format!("{state:?}")
    }
}
