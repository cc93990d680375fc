//! A quickcheck property: on small random histories the checker agrees with
//! a brute-force search over all orders, straight from the definition.

use quickcheck::QuickCheck;

use super::super::generate::Rng;
use super::super::models::{
    KvErr, KvInput, KvOutput, RegisterInput, RegisterModel, RegisterOutput, VersionedKvModel,
};
use super::super::{check, Model, Operation, Verdict};
use super::options;

/// Whether, in every partition of the model, some order of the operations
/// explains them: each next operation must not have been called after a
/// remaining completed one returned, must be legal in the current state, and
/// reply-less operations may be left out.
fn brute_force<M: Model>(model: &M, history: &[Operation<M::Input, M::Output>]) -> bool
where
    M::Input: Clone,
    M::Output: Clone,
{
    fn go<M: Model>(
        model: &M,
        ops: &[Operation<M::Input, M::Output>],
        done: &mut [bool],
        state: &M::State,
    ) -> bool {
        let remaining: Vec<usize> = (0..ops.len()).filter(|&i| !done[i]).collect();
        if remaining.iter().all(|&i| ops[i].reply.is_none()) {
            return true;
        }
        for &i in &remaining {
            let blocked = remaining
                .iter()
                .any(|&j| ops[j].return_time().is_some_and(|r| r < ops[i].call));
            if blocked {
                continue;
            }
            if let Some(next) = model.step(state, &ops[i].input, ops[i].output()) {
                done[i] = true;
                let found = go(model, ops, done, &next);
                done[i] = false;
                if found {
                    return true;
                }
            }
        }
        false
    }
    model.partition(history).iter().all(|partition| {
        let ops: Vec<_> = partition.ops.iter().map(|&i| history[i].clone()).collect();
        go(model, &ops, &mut vec![false; ops.len()], &model.init())
    })
}

/// Random interval: call in 0..20, length 0..8, no reply one time in eight.
fn interval(rng: &mut Rng) -> (u64, Option<u64>) {
    let call = rng.below(20);
    let ret = (rng.below(8) != 0).then(|| call + rng.below(8));
    (call, ret)
}

fn random_register_history(seed: u64) -> Vec<Operation<RegisterInput, RegisterOutput>> {
    let mut rng = Rng(seed);
    let n = 1 + rng.below(7) as usize;
    (0..n)
        .map(|i| {
            let (call, ret) = interval(&mut rng);
            let (input, output) = if rng.below(2) == 0 {
                (RegisterInput::Write(rng.below(3)), RegisterOutput::Ack)
            } else {
                (RegisterInput::Read, RegisterOutput::Value(rng.below(3)))
            };
            match ret {
                Some(ret) => Operation::completed(i as u64, input, call, ret, output),
                None => Operation::pending(i as u64, input, call),
            }
        })
        .collect()
}

fn random_kv_history(seed: u64) -> Vec<Operation<KvInput, KvOutput>> {
    let mut rng = Rng(seed);
    let n = 1 + rng.below(7) as usize;
    let values = ["", "a", "b"];
    (0..n)
        .map(|i| {
            let (call, ret) = interval(&mut rng);
            let key = format!("k{}", rng.below(2));
            let (input, output) = if rng.below(2) == 0 {
                let value = values[rng.below(3) as usize].to_string();
                let output = KvOutput::Get {
                    value,
                    version: 0,
                    err: KvErr::Ok,
                };
                (KvInput::Get { key }, output)
            } else {
                let err = [KvErr::Ok, KvErr::ErrVersion, KvErr::ErrMaybe][rng.below(3) as usize];
                let input = KvInput::Put {
                    key,
                    value: values[1 + rng.below(2) as usize].to_string(),
                    version: rng.below(2),
                };
                (input, KvOutput::Put { err })
            };
            match ret {
                Some(ret) => Operation::completed(i as u64, input, call, ret, output),
                None => Operation::pending(i as u64, input, call),
            }
        })
        .collect()
}

fn agrees<M: Model>(model: &M, history: &[Operation<M::Input, M::Output>]) -> bool
where
    M::Input: Clone,
    M::Output: Clone,
{
    let expected = if brute_force(model, history) {
        Verdict::Ok
    } else {
        Verdict::Illegal
    };
    let got = check(model, history, &options()).verdict;
    if got != expected {
        eprintln!("checker says {got:?}, brute force {expected:?} on {history:#?}");
    }
    got == expected
}

#[test]
fn register_checker_agrees_with_brute_force() {
    fn prop(seed: u64) -> bool {
        agrees(&RegisterModel, &random_register_history(seed))
    }
    QuickCheck::new()
        .tests(2_000)
        .quickcheck(prop as fn(u64) -> bool);
}

#[test]
fn versioned_kv_checker_agrees_with_brute_force() {
    fn prop(seed: u64) -> bool {
        agrees(&VersionedKvModel, &random_kv_history(seed))
    }
    QuickCheck::new()
        .tests(2_000)
        .quickcheck(prop as fn(u64) -> bool);
}

#[test]
fn brute_force_sees_both_verdicts() {
    // Guard against a generator that only ever yields one answer.
    let results: Vec<bool> = (0..200)
        .map(|seed| brute_force(&RegisterModel, &random_register_history(seed)))
        .collect();
    assert!(results.iter().any(|&r| r) && results.iter().any(|&r| !r));
}
