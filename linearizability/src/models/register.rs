//! A single integer register: the smallest useful model, for tests and for
//! learning what the checker accepts.

use super::super::model::Model;

/// A request to the register.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RegisterInput {
    /// Read the value.
    Read,
    /// Replace the value.
    Write(u64),
}

/// A reply from the register.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RegisterOutput {
    /// The value a `Read` returned.
    Value(u64),
    /// A `Write` acknowledged.
    Ack,
}

/// One register, initially 0, not partitioned. A `Read` is legal iff it
/// returned the current value; a `Write` always is.
#[derive(Clone, Copy, Debug, Default)]
pub struct RegisterModel;

impl Model for RegisterModel {
    type State = u64;
    type Input = RegisterInput;
    type Output = RegisterOutput;

    fn init(&self) -> u64 {
        0
    }

    fn never_changes_state(&self, input: &RegisterInput, _output: Option<&RegisterOutput>) -> bool {
        matches!(input, RegisterInput::Read)
    }

    fn step(
        &self,
        state: &u64,
        input: &RegisterInput,
        output: Option<&RegisterOutput>,
    ) -> Option<u64> {
        match (input, output) {
            (RegisterInput::Read, None) => Some(*state),
            (RegisterInput::Read, Some(RegisterOutput::Value(v))) => (v == state).then_some(*state),
            (RegisterInput::Write(v), None | Some(RegisterOutput::Ack)) => Some(*v),
            _ => None,
        }
    }

    fn describe_operation(&self, input: &RegisterInput, output: Option<&RegisterOutput>) -> String {
        match (input, output) {
            (RegisterInput::Read, Some(RegisterOutput::Value(v))) => format!("read() -> {v}"),
            (RegisterInput::Write(v), Some(RegisterOutput::Ack)) => format!("write({v})"),
            (input, None) => format!("{input:?} -> (no reply)"),
            (input, Some(output)) => format!("{input:?} -> {output:?} (mismatched)"),
        }
    }
}
