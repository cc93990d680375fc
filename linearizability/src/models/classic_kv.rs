//! The classic Put/Append/Get key/value store of the 2021–2024 labs, as
//! 6.5840's `models.KvModel`.

use super::super::model::{Model, Operation, Partition};
use super::partition_by_key;

/// A request to the classic store.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ClassicKvInput {
    /// Read a key.
    Get {
        /// The key read.
        key: String,
    },
    /// Replace a key's value.
    Put {
        /// The key written.
        key: String,
        /// The new value.
        value: String,
    },
    /// Append to a key's value (a missing key counts as `""`).
    Append {
        /// The key appended to.
        key: String,
        /// The suffix.
        value: String,
    },
}

impl ClassicKvInput {
    /// The key the request is about.
    pub fn key(&self) -> &str {
        match self {
            ClassicKvInput::Get { key }
            | ClassicKvInput::Put { key, .. }
            | ClassicKvInput::Append { key, .. } => key,
        }
    }
}

/// A reply from the classic store.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ClassicKvOutput {
    /// The value a `Get` read, or the value a `Put`/`Append` replaced (the
    /// 2024 kvsrv's `Append` returns the old value, model op 3).
    Value(String),
    /// A `Put` or `Append` acknowledged without a value.
    Done,
}

/// The classic model, partitioned per key; each key's state is its value,
/// initially `""`.
///
/// * `Get` is legal iff it read the current value.
/// * `Put` sets the value, `Append` extends it; both are always legal when
///   acknowledged with `Done`, and legal iff the returned old value is the
///   current one when answered with `Value`.
/// * Without a reply, any request may take effect or not.
#[derive(Clone, Copy, Debug, Default)]
pub struct ClassicKvModel;

impl Model for ClassicKvModel {
    type State = String;
    type Input = ClassicKvInput;
    type Output = ClassicKvOutput;

    fn init(&self) -> String {
        String::new()
    }

    fn never_changes_state(
        &self,
        input: &ClassicKvInput,
        _output: Option<&ClassicKvOutput>,
    ) -> bool {
        matches!(input, ClassicKvInput::Get { .. })
    }

    fn step(
        &self,
        state: &String,
        input: &ClassicKvInput,
        output: Option<&ClassicKvOutput>,
    ) -> Option<String> {
        let old_value_ok = match output {
            None | Some(ClassicKvOutput::Done) => true,
            Some(ClassicKvOutput::Value(old)) => old == state,
        };
        match input {
            ClassicKvInput::Get { .. } => match output {
                Some(ClassicKvOutput::Done) => None,
                _ => old_value_ok.then(|| state.clone()),
            },
            ClassicKvInput::Put { value, .. } => old_value_ok.then(|| value.clone()),
            ClassicKvInput::Append { value, .. } => old_value_ok.then(|| format!("{state}{value}")),
        }
    }

    fn partition(&self, history: &[Operation<ClassicKvInput, ClassicKvOutput>]) -> Vec<Partition> {
        partition_by_key(history.iter().map(|op| op.input.key()))
    }

    fn describe_operation(
        &self,
        input: &ClassicKvInput,
        output: Option<&ClassicKvOutput>,
    ) -> String {
        let call = match input {
            ClassicKvInput::Get { key } => format!("get({key:?})"),
            ClassicKvInput::Put { key, value } => format!("put({key:?}, {value:?})"),
            ClassicKvInput::Append { key, value } => format!("append({key:?}, {value:?})"),
        };
        match output {
            None => format!("{call} -> (no reply)"),
            Some(ClassicKvOutput::Value(v)) => format!("{call} -> {v:?}"),
            Some(ClassicKvOutput::Done) => format!("{call} -> ok"),
        }
    }
}
