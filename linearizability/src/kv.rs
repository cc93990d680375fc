//! Histories recorded against the key/value service (`core_kv::Op` and
//! `core_kv::Outcome`), and their translation into the checker's models:
//! the simulator's clients, `kv demo` and any user recording a real
//! cluster's history share these, so nothing has to link the simulator to
//! check a history.

use crate::models::{ClassicKvInput, ClassicKvOutput, KvErr, KvInput, KvOutput};
use crate::Operation;
use core_kv::{Op, Outcome};

/// One operation as a client saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recorded {
    /// The client.
    pub client: u64,
    /// When invoked (virtual ms in the simulator; any monotonic unit works).
    pub call: u64,
    /// When it returned, if it did (same unit as `call`).
    pub ret: Option<u64>,
    /// The operation.
    pub op: Op,
    /// Its outcome, if it returned.
    pub outcome: Option<Outcome>,
}

/// The recorded history as operations of the versioned model. Classic ops
/// are skipped.
pub fn versioned_history(history: &[Recorded]) -> Vec<Operation<KvInput, KvOutput>> {
    history
        .iter()
        .filter_map(|r| {
            let input = match &r.op {
                Op::Get { key } => KvInput::Get { key: key.clone() },
                Op::Put {
                    key,
                    value,
                    version,
                } => KvInput::Put {
                    key: key.clone(),
                    value: value.clone(),
                    version: version.0,
                },
                _ => return None,
            };
            let output = r.outcome.as_ref().map(|o| match (&r.op, o) {
                (Op::Get { .. }, Outcome::Value { value, version }) => KvOutput::Get {
                    value: value.clone(),
                    version: version.0,
                    err: KvErr::Ok,
                },
                (Op::Get { .. }, _) => KvOutput::Get {
                    value: String::new(),
                    version: 0,
                    err: KvErr::ErrNoKey,
                },
                (_, Outcome::Ok) => KvOutput::Put { err: KvErr::Ok },
                (_, Outcome::ErrVersion) => KvOutput::Put {
                    err: KvErr::ErrVersion,
                },
                (_, Outcome::ErrMaybe) => KvOutput::Put {
                    err: KvErr::ErrMaybe,
                },
                (_, _) => KvOutput::Put {
                    err: KvErr::ErrNoKey,
                },
            });
            Some(match (r.ret, output) {
                (Some(ret), Some(out)) => Operation::completed(r.client, input, r.call, ret, out),
                _ => Operation::pending(r.client, input, r.call),
            })
        })
        .collect()
}

/// The recorded history as operations of the classic model.
pub fn classic_history(history: &[Recorded]) -> Vec<Operation<ClassicKvInput, ClassicKvOutput>> {
    history
        .iter()
        .filter_map(|r| {
            let input = match &r.op {
                Op::Get { key } => ClassicKvInput::Get { key: key.clone() },
                Op::Set { key, value } => ClassicKvInput::Put {
                    key: key.clone(),
                    value: value.clone(),
                },
                Op::Append { key, value } => ClassicKvInput::Append {
                    key: key.clone(),
                    value: value.clone(),
                },
                Op::Put { .. } => return None,
            };
            let output = r.outcome.as_ref().map(|o| match o {
                Outcome::Value { value, .. } => ClassicKvOutput::Value(value.clone()),
                Outcome::ErrNoKey => ClassicKvOutput::Value(String::new()),
                _ => ClassicKvOutput::Done,
            });
            Some(match (r.ret, output) {
                (Some(ret), Some(out)) => Operation::completed(r.client, input, r.call, ret, out),
                _ => Operation::pending(r.client, input, r.call),
            })
        })
        .collect()
}
