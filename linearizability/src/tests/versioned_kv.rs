//! Versioned KV (2025 model) histories with known answers.

use super::super::models::{KvErr, KvInput, KvOutput, VersionedKvModel};
use super::super::{Model, Operation, Verdict};
use super::{get, put, put_input, run};

#[test]
fn put_then_get_is_ok_and_version_in_get_is_not_checked() {
    let mut history = vec![put(1, "k", "a", 0, KvErr::Ok, 0, 10)];
    history.push(Operation::completed(
        2,
        KvInput::Get { key: "k".into() },
        20,
        30,
        KvOutput::Get {
            value: "a".into(),
            version: 7,
            err: KvErr::Ok,
        },
    ));
    assert_eq!(run(&VersionedKvModel, &history).verdict, Verdict::Ok);
}

#[test]
fn stale_get_after_completed_put_is_illegal() {
    let history = [
        put(1, "k", "a", 0, KvErr::Ok, 0, 10),
        get(2, "k", "", 20, 30),
    ];
    let outcome = run(&VersionedKvModel, &history);
    assert_eq!(outcome.verdict, Verdict::Illegal);
    assert_eq!(outcome.failure.unwrap().label, "key \"k\"");
}

#[test]
fn put_at_wrong_version_must_report_err_version() {
    let ok = [
        put(1, "k", "a", 0, KvErr::Ok, 0, 10),
        put(2, "k", "b", 0, KvErr::ErrVersion, 20, 30),
        get(3, "k", "a", 40, 50),
    ];
    assert_eq!(run(&VersionedKvModel, &ok).verdict, Verdict::Ok);
    let lying = [put(1, "k", "a", 0, KvErr::ErrVersion, 0, 10)];
    assert_eq!(run(&VersionedKvModel, &lying).verdict, Verdict::Illegal);
    let no_key = [put(1, "k", "a", 0, KvErr::ErrNoKey, 0, 10)];
    assert_eq!(run(&VersionedKvModel, &no_key).verdict, Verdict::Illegal);
}

#[test]
fn err_maybe_may_lose_to_a_concurrent_put() {
    // Client 1's ErrMaybe put overlaps client 2's successful put at the same
    // version: it can be placed after it (version mismatch, no effect).
    let history = [
        put(1, "k", "a", 0, KvErr::ErrMaybe, 0, 100),
        put(2, "k", "b", 0, KvErr::Ok, 10, 20),
        get(3, "k", "b", 110, 120),
    ];
    assert_eq!(run(&VersionedKvModel, &history).verdict, Verdict::Ok);
    // "a" cannot win: client 2's put at version 0 succeeded, so it came first.
    let history = [
        put(1, "k", "a", 0, KvErr::ErrMaybe, 0, 100),
        put(2, "k", "b", 0, KvErr::Ok, 10, 20),
        get(3, "k", "a", 110, 120),
    ];
    assert_eq!(run(&VersionedKvModel, &history).verdict, Verdict::Illegal);
}

#[test]
fn err_maybe_may_have_taken_effect() {
    let history = [
        put(1, "k", "a", 0, KvErr::ErrMaybe, 0, 10),
        get(2, "k", "a", 20, 30),
        put(2, "k", "b", 1, KvErr::Ok, 40, 50),
    ];
    assert_eq!(run(&VersionedKvModel, &history).verdict, Verdict::Ok);
}

#[test]
fn err_maybe_at_matching_version_must_apply_as_in_6_5840() {
    // The quirk of models1.KvModel: alone, an ErrMaybe put at the current
    // version is linearized where the version matches, so it took effect.
    let history = [
        put(1, "k", "a", 0, KvErr::ErrMaybe, 0, 10),
        get(2, "k", "", 20, 30),
    ];
    assert_eq!(run(&VersionedKvModel, &history).verdict, Verdict::Illegal);
}

#[test]
fn put_without_reply_may_or_may_not_take_effect() {
    let pending = || Operation::pending(1, put_input("k", "a", 0), 0);
    for value in ["", "a"] {
        let history = [pending(), get(2, "k", value, 5, 10)];
        assert_eq!(
            run(&VersionedKvModel, &history).verdict,
            Verdict::Ok,
            "{value}"
        );
    }
    // Never applied: a later put at version 0 succeeds.
    let history = [
        pending(),
        put(2, "k", "b", 0, KvErr::Ok, 5, 10),
        get(2, "k", "b", 20, 30),
    ];
    assert_eq!(run(&VersionedKvModel, &history).verdict, Verdict::Ok);
    let history = [pending(), get(2, "k", "a", 5, 10), get(2, "k", "", 20, 30)];
    assert_eq!(run(&VersionedKvModel, &history).verdict, Verdict::Illegal);
}

#[test]
fn keys_are_checked_independently_and_smallest_failure_reported() {
    let history = [
        // Key "big": illegal, four operations.
        put(1, "big", "x", 0, KvErr::Ok, 0, 10),
        get(2, "big", "x", 20, 30),
        get(3, "big", "x", 20, 30),
        get(2, "big", "", 40, 50),
        // Key "small": illegal, two operations.
        put(4, "small", "y", 0, KvErr::Ok, 0, 10),
        get(5, "small", "", 20, 30),
        // Key "fine": legal.
        put(6, "fine", "z", 0, KvErr::Ok, 0, 10),
    ];
    let outcome = run(&VersionedKvModel, &history);
    assert_eq!(outcome.verdict, Verdict::Illegal);
    assert_eq!(outcome.partitions, 3);
    let failure = outcome.failure.unwrap();
    assert_eq!(failure.label, "key \"small\"");
    assert_eq!(failure.ops.len(), 2);
    // A get on a key never written concurrent to a put elsewhere is fine.
    let history = [
        put(1, "a", "x", 0, KvErr::Ok, 0, 10),
        get(2, "b", "", 20, 30),
    ];
    assert_eq!(run(&VersionedKvModel, &history).verdict, Verdict::Ok);
}

#[test]
fn mismatched_output_kind_is_illegal() {
    let model = VersionedKvModel;
    let state = model.init();
    let get_input = KvInput::Get { key: "k".into() };
    assert!(model
        .step(&state, &get_input, Some(&KvOutput::Put { err: KvErr::Ok }))
        .is_none());
}
