//! Tests of the checker: hand-written histories with known answers, random
//! histories linearizable by construction, timeouts, rendering, and a
//! quickcheck comparison with a brute-force checker.

mod brute_force;
mod classic_kv;
mod random;
mod register;
mod render;
mod versioned_kv;

use std::time::Duration;

use super::models::{KvErr, KvInput, KvOutput, RegisterInput, RegisterOutput};
use super::{check, CheckOptions, CheckOutcome, Model, Operation};

/// A generous budget: hand-written histories must never come back `Unknown`.
fn options() -> CheckOptions {
    CheckOptions::with_budget(Duration::from_secs(60))
}

/// Checks with [`options`].
fn run<M: Model>(model: &M, history: &[Operation<M::Input, M::Output>]) -> CheckOutcome {
    check(model, history, &options())
}

type RegOp = Operation<RegisterInput, RegisterOutput>;

fn write(client: u64, value: u64, call: u64, ret: u64) -> RegOp {
    Operation::completed(
        client,
        RegisterInput::Write(value),
        call,
        ret,
        RegisterOutput::Ack,
    )
}

fn read(client: u64, value: u64, call: u64, ret: u64) -> RegOp {
    Operation::completed(
        client,
        RegisterInput::Read,
        call,
        ret,
        RegisterOutput::Value(value),
    )
}

type KvOp = Operation<KvInput, KvOutput>;

fn get(client: u64, key: &str, value: &str, call: u64, ret: u64) -> KvOp {
    let input = KvInput::Get { key: key.into() };
    let output = KvOutput::Get {
        value: value.into(),
        version: 0,
        err: KvErr::Ok,
    };
    Operation::completed(client, input, call, ret, output)
}

fn put_input(key: &str, value: &str, version: u64) -> KvInput {
    KvInput::Put {
        key: key.into(),
        value: value.into(),
        version,
    }
}

fn put(client: u64, key: &str, value: &str, version: u64, err: KvErr, call: u64, ret: u64) -> KvOp {
    let output = KvOutput::Put { err };
    Operation::completed(client, put_input(key, value, version), call, ret, output)
}
