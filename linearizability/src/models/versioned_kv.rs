//! The versioned key/value store of the 2025 labs (kvsrv1, kvraft1,
//! shardkv1), exactly as 6.5840's `models1.KvModel`.

use super::super::model::{Model, Operation, Partition};
use super::partition_by_key;

/// The error a versioned clerk reports (the subset that can be logged).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KvErr {
    /// Success.
    Ok,
    /// `Get` of a key that was never written (its value reads as `""`).
    ErrNoKey,
    /// `Put` at a version other than the current one; nothing changed.
    ErrVersion,
    /// `Put` whose first attempt may have taken effect: a retry saw
    /// `ErrVersion`, and the clerk cannot tell whose write that was.
    ErrMaybe,
}

/// A request to the versioned store.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum KvInput {
    /// Read a key.
    Get {
        /// The key read.
        key: String,
    },
    /// Write `value` to `key` if its version is `version` (0 creates).
    Put {
        /// The key written.
        key: String,
        /// The new value.
        value: String,
        /// The version the writer expects the key to be at.
        version: u64,
    },
}

impl KvInput {
    /// The key the request is about.
    pub fn key(&self) -> &str {
        match self {
            KvInput::Get { key } | KvInput::Put { key, .. } => key,
        }
    }
}

/// A reply from the versioned store.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum KvOutput {
    /// Reply to a `Get`.
    Get {
        /// The value read (`""` for a missing key).
        value: String,
        /// The version read. Not checked, as in 6.5840.
        version: u64,
        /// `Ok` or `ErrNoKey`. Not checked, as in 6.5840.
        err: KvErr,
    },
    /// Reply to a `Put`.
    Put {
        /// The outcome.
        err: KvErr,
    },
}

/// The state of one key: its value and how many `Put`s took effect.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct KvState {
    /// The current value (`""` before the first `Put`).
    pub value: String,
    /// The current version (0 before the first `Put`).
    pub version: u64,
}

/// The 2025 model, partitioned per key, initial state `("", 0)`.
///
/// * `Get` is legal iff the value read equals the state's value; the version
///   and error in the reply are not checked.
/// * `Put` at the current version is legal iff it reports `Ok` or `ErrMaybe`,
///   and then takes effect: `(value, version + 1)`.
/// * `Put` at any other version is legal iff it reports `ErrVersion` or
///   `ErrMaybe`, and changes nothing.
/// * A `Put` reporting `ErrNoKey` is never legal.
///
/// Note the quirk kept from 6.5840: an `ErrMaybe` `Put` that is linearized
/// where the version matches *must* take effect there; the search may still
/// place it where the version does not match. A `Put` without a reply is
/// treated like `ErrMaybe`, and a `Get` without one changes nothing; either may
/// also never take effect at all.
#[derive(Clone, Copy, Debug, Default)]
pub struct VersionedKvModel;

impl Model for VersionedKvModel {
    type State = KvState;
    type Input = KvInput;
    type Output = KvOutput;

    fn init(&self) -> KvState {
        KvState::default()
    }

    fn never_changes_state(&self, input: &KvInput, output: Option<&KvOutput>) -> bool {
        match (input, output) {
            (KvInput::Get { .. }, _) => true,
            (KvInput::Put { .. }, Some(KvOutput::Put { err })) => *err == KvErr::ErrVersion,
            _ => false,
        }
    }

    fn step(&self, state: &KvState, input: &KvInput, output: Option<&KvOutput>) -> Option<KvState> {
        match (input, output) {
            (KvInput::Get { .. }, None) => Some(state.clone()),
            (KvInput::Get { .. }, Some(KvOutput::Get { value, .. })) => {
                (*value == state.value).then(|| state.clone())
            }
            (KvInput::Put { value, version, .. }, out) => {
                let err = match out {
                    None => KvErr::ErrMaybe,
                    Some(KvOutput::Put { err }) => *err,
                    Some(KvOutput::Get { .. }) => return None,
                };
                if *version == state.version {
                    matches!(err, KvErr::Ok | KvErr::ErrMaybe).then(|| KvState {
                        value: value.clone(),
                        version: state.version + 1,
                    })
                } else {
                    matches!(err, KvErr::ErrVersion | KvErr::ErrMaybe).then(|| state.clone())
                }
            }
            (KvInput::Get { .. }, Some(KvOutput::Put { .. })) => None,
        }
    }

    fn partition(&self, history: &[Operation<KvInput, KvOutput>]) -> Vec<Partition> {
        partition_by_key(history.iter().map(|op| op.input.key()))
    }

    fn describe_operation(&self, input: &KvInput, output: Option<&KvOutput>) -> String {
        let call = match input {
            KvInput::Get { key } => format!("get({key:?})"),
            KvInput::Put {
                key,
                value,
                version,
            } => format!("put({key:?}, {value:?}, v{version})"),
        };
        match output {
            None => format!("{call} -> (no reply)"),
            Some(KvOutput::Get {
                value,
                version,
                err,
            }) => format!("{call} -> ({value:?}, v{version}, {err:?})"),
            Some(KvOutput::Put { err }) => format!("{call} -> {err:?}"),
        }
    }

    fn describe_state(&self, state: &KvState) -> String {
        format!("({:?}, v{})", state.value, state.version)
    }
}
