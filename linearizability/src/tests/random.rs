//! Random histories that are linearizable by construction (and corrupted
//! copies that are not), plus the time budget.
//!
//! Seeds are fixed so that runs repeat; set `LIN_SEED=<n>` to run one seed
//! instead. Every assertion message names its seed.

use std::time::Duration;

use super::super::generate::{corrupt_one_read, RandomKvHistory};
use super::super::models::{KvErr, RegisterInput, RegisterModel, VersionedKvModel};
use super::super::search::{search, Limits, SearchResult};
use super::super::{check, check_parallel, CheckOptions, Model, Operation, Verdict};
use super::{options, read, write};

/// The seeds to run: `LIN_SEED` if set, else a fixed handful.
fn seeds() -> Vec<u64> {
    match std::env::var("LIN_SEED") {
        Ok(seed) => vec![seed.parse().expect("LIN_SEED must be a u64")],
        Err(_) => vec![1, 2, 3, 4],
    }
}

fn replay(seed: u64) -> String {
    format!("seed {seed} (replay: LIN_SEED={seed} cargo test -p model-tests --lib linearizability)")
}

fn big(seed: u64) -> RandomKvHistory {
    RandomKvHistory {
        seed,
        ops: 5_000,
        keys: 10,
        clients: 15,
        max_widening: 40,
        maybe_percent: 5,
        no_reply_percent: 1,
    }
}

#[test]
fn large_random_history_is_linearizable() {
    for seed in seeds() {
        let history = big(seed).generate();
        assert_eq!(history.len(), big(seed).ops.min(history.len()));
        let outcome = check(&VersionedKvModel, &history, &options());
        assert_eq!(outcome.verdict, Verdict::Ok, "{}\n{outcome}", replay(seed));
        assert_eq!(outcome.partitions, 10, "{}", replay(seed));
    }
}

#[test]
fn one_key_many_clients_wide_intervals_is_linearizable() {
    for seed in seeds() {
        let config = RandomKvHistory {
            seed,
            ops: 2_000,
            keys: 1,
            max_widening: 100,
            no_reply_percent: 2,
            ..RandomKvHistory::default()
        };
        let outcome = check(&VersionedKvModel, &config.generate(), &options());
        assert_eq!(outcome.verdict, Verdict::Ok, "{}\n{outcome}", replay(seed));
    }
}

#[test]
fn found_order_respects_real_time_and_model() {
    for seed in seeds() {
        let history = RandomKvHistory {
            seed,
            ops: 500,
            keys: 1,
            no_reply_percent: 3,
            ..RandomKvHistory::default()
        }
        .generate();
        let ops: Vec<_> = history.iter().collect();
        let mut never = || false;
        let limits = Limits {
            max_steps: None,
            should_stop: &mut never,
        };
        let SearchResult::Ok(order) = search(&VersionedKvModel, &ops, limits) else {
            panic!("{}: expected a linearization", replay(seed));
        };
        assert_valid_linearization(&VersionedKvModel, &ops, &order, seed);
    }
}

/// `order` must contain every completed operation once, respect real time,
/// and be legal for `model`.
fn assert_valid_linearization<M: Model>(
    model: &M,
    ops: &[&Operation<M::Input, M::Output>],
    order: &[usize],
    seed: u64,
) {
    let mut placed = vec![false; ops.len()];
    let mut state = model.init();
    for (pos, &i) in order.iter().enumerate() {
        assert!(!placed[i], "{}: op {i} placed twice", replay(seed));
        placed[i] = true;
        state = model
            .step(&state, &ops[i].input, ops[i].output())
            .unwrap_or_else(|| panic!("{}: op {i} illegal at position {pos}", replay(seed)));
        // Nothing placed later may have returned before this call.
        for &j in &order[pos + 1..] {
            let returned_before = ops[j].return_time().is_some_and(|r| r < ops[i].call);
            assert!(
                !returned_before,
                "{}: op {j} placed after op {i}",
                replay(seed)
            );
        }
    }
    for (i, op) in ops.iter().enumerate() {
        assert!(
            placed[i] || op.reply.is_none(),
            "{}: op {i} missing",
            replay(seed)
        );
    }
}

#[test]
fn large_random_history_with_one_corrupted_read_is_illegal() {
    for seed in seeds() {
        let mut history = big(seed).generate();
        let corrupted = corrupt_one_read(&mut history, seed).expect("history has reads");
        let outcome = check(&VersionedKvModel, &history, &options());
        assert_eq!(
            outcome.verdict,
            Verdict::Illegal,
            "{}\n{outcome}",
            replay(seed)
        );
        let failure = outcome.failure.as_ref().unwrap();
        let key = history[corrupted].input.key();
        assert_eq!(failure.label, format!("key {key:?}"), "{}", replay(seed));
        assert!(
            failure.ops.iter().any(|op| op.history_index == corrupted),
            "{}",
            replay(seed)
        );
        assert!(
            failure
                .prefix
                .iter()
                .all(|s| failure.ops[s.op].history_index != corrupted),
            "{}: the corrupted read can never be linearized",
            replay(seed)
        );
        // The verdict and the report are deterministic, with threads too.
        let again = check(&VersionedKvModel, &history, &options());
        assert_eq!(again.failure, outcome.failure, "{}", replay(seed));
        let parallel = check_parallel(&VersionedKvModel, &history, &options(), 2);
        assert_eq!(parallel.verdict, Verdict::Illegal, "{}", replay(seed));
        assert_eq!(parallel.failure, outcome.failure, "{}", replay(seed));
    }
}

#[test]
fn parallel_agrees_on_linearizable_history() {
    for seed in seeds() {
        let history = big(seed).generate();
        let outcome = check_parallel(&VersionedKvModel, &history, &options(), 3);
        assert_eq!(outcome.verdict, Verdict::Ok, "{}\n{outcome}", replay(seed));
    }
}

/// Sixty writes of distinct values and a read of a value never written, all
/// concurrent: the search must try every subset of writes before it can say
/// `Illegal`, about 2^60 configurations.
fn hard_history() -> Vec<Operation<RegisterInput, super::super::models::RegisterOutput>> {
    let mut history: Vec<_> = (0..60).map(|i| write(i, i + 1, 0, 1_000)).collect();
    history.push(read(99, 1_000_000, 0, 1_000));
    history
}

#[test]
fn tiny_time_budget_on_hard_history_is_unknown() {
    let options = CheckOptions::with_budget(Duration::from_millis(20));
    let outcome = check(&RegisterModel, &hard_history(), &options);
    assert_eq!(outcome.verdict, Verdict::Unknown);
    assert_eq!(outcome.undecided, vec!["all operations".to_string()]);
    assert!(outcome.failure.is_none());
    assert!(outcome.to_string().contains("unknown"), "{outcome}");
    let parallel = check_parallel(&RegisterModel, &hard_history(), &options, 2);
    assert_eq!(parallel.verdict, Verdict::Unknown);
}

#[test]
fn step_budget_gives_deterministic_unknown() {
    let options = CheckOptions {
        budget: Duration::from_secs(60),
        max_steps_per_partition: Some(10_000),
    };
    let outcome = check(&RegisterModel, &hard_history(), &options);
    assert_eq!(outcome.verdict, Verdict::Unknown);
    // A generous step budget does not change an easy verdict.
    let easy = [write(1, 1, 0, 10), read(2, 1, 20, 30)];
    assert_eq!(check(&RegisterModel, &easy, &options).verdict, Verdict::Ok);
}

#[test]
fn illegal_beats_unknown() {
    // Key "hard" (61 operations) cannot be decided within the step budget and
    // is searched first; key "k0" (200 operations) is plainly illegal.
    let options = CheckOptions {
        budget: Duration::from_secs(60),
        max_steps_per_partition: Some(10_000),
    };
    let mut history = RandomKvHistory {
        seed: 7,
        ops: 200,
        max_widening: 5,
        keys: 1,
        ..RandomKvHistory::default()
    }
    .generate();
    corrupt_one_read(&mut history, 7).unwrap();
    for i in 0..60 {
        history.push(super::put(
            100 + i,
            "hard",
            &format!("v{i}"),
            0,
            KvErr::ErrMaybe,
            0,
            1_000,
        ));
    }
    history.push(super::get(99, "hard", "never written", 0, 1_000));
    let outcome = check(&VersionedKvModel, &history, &options);
    assert_eq!(outcome.verdict, Verdict::Illegal, "{outcome}");
    assert_eq!(outcome.undecided, vec!["key \"hard\"".to_string()]);
    assert_eq!(outcome.failure.unwrap().label, "key \"k0\"");
}
