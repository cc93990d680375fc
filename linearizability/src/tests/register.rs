//! Register histories with known answers.

use super::super::models::{RegisterInput, RegisterModel};
use super::super::{Operation, Verdict};
use super::{read, run, write};

#[test]
fn empty_history_is_ok() {
    let outcome = run(&RegisterModel, &[]);
    assert_eq!(outcome.verdict, Verdict::Ok);
    assert!(outcome.failure.is_none() && outcome.undecided.is_empty());
}

#[test]
fn sequential_write_then_read_is_ok() {
    let history = [write(1, 5, 0, 10), read(2, 5, 20, 30)];
    assert_eq!(run(&RegisterModel, &history).verdict, Verdict::Ok);
}

#[test]
fn stale_read_after_completed_write_is_illegal() {
    let history = [write(1, 5, 0, 10), read(2, 0, 20, 30)];
    let outcome = run(&RegisterModel, &history);
    assert_eq!(outcome.verdict, Verdict::Illegal);
    let failure = outcome
        .failure
        .expect("an illegal outcome carries a failure");
    assert_eq!(failure.ops.len(), 2);
    assert_eq!(failure.prefix.len(), 1, "the write linearizes alone");
    assert_eq!(failure.ops[failure.prefix[0].op].history_index, 0);
    assert_eq!(
        failure.ops[failure.blocked].history_index, 1,
        "the read is stuck"
    );
}

#[test]
fn read_concurrent_with_write_may_see_either_value() {
    for value in [0, 5] {
        let history = [write(1, 5, 0, 10), read(2, value, 5, 15)];
        assert_eq!(
            run(&RegisterModel, &history).verdict,
            Verdict::Ok,
            "read {value}"
        );
    }
    let history = [write(1, 5, 0, 10), read(2, 7, 5, 15)];
    assert_eq!(run(&RegisterModel, &history).verdict, Verdict::Illegal);
}

#[test]
fn intervals_are_closed() {
    // Touching at 10: concurrent, so the read may precede the write.
    let touching = [write(1, 5, 0, 10), read(2, 0, 10, 20)];
    assert_eq!(run(&RegisterModel, &touching).verdict, Verdict::Ok);
    let apart = [write(1, 5, 0, 10), read(2, 0, 11, 20)];
    assert_eq!(run(&RegisterModel, &apart).verdict, Verdict::Illegal);
}

#[test]
fn concurrent_writes_observed_in_opposite_orders_is_illegal() {
    // Both writes span everything; client 3 sees 1 then 2, client 4 sees 2
    // then 1: no single order of the writes explains both.
    let history = [
        write(1, 1, 0, 100),
        write(2, 2, 0, 100),
        read(3, 1, 10, 20),
        read(3, 2, 30, 40),
        read(4, 2, 10, 20),
        read(4, 1, 30, 40),
    ];
    assert_eq!(run(&RegisterModel, &history).verdict, Verdict::Illegal);
    // The same reads in a consistent order are fine.
    let history = [
        write(1, 1, 0, 100),
        write(2, 2, 0, 100),
        read(3, 1, 10, 20),
        read(3, 2, 30, 40),
        read(4, 1, 10, 20),
        read(4, 2, 30, 40),
    ];
    assert_eq!(run(&RegisterModel, &history).verdict, Verdict::Ok);
}

#[test]
fn value_cannot_flip_back_after_both_writes_complete() {
    let history = [
        write(1, 1, 0, 10),
        write(2, 2, 0, 10),
        read(3, 1, 20, 30),
        read(3, 2, 40, 50),
    ];
    assert_eq!(run(&RegisterModel, &history).verdict, Verdict::Illegal);
}

#[test]
fn write_without_reply_may_or_may_not_take_effect() {
    let pending = || Operation::pending(1, RegisterInput::Write(9), 0);
    for value in [0, 9] {
        let history = [pending(), read(2, value, 5, 10)];
        assert_eq!(
            run(&RegisterModel, &history).verdict,
            Verdict::Ok,
            "read {value}"
        );
    }
    // It may take effect late, after an earlier read saw the old value...
    let history = [pending(), read(2, 0, 5, 10), read(2, 9, 20, 30)];
    assert_eq!(run(&RegisterModel, &history).verdict, Verdict::Ok);
    // ...but once seen, it cannot be undone.
    let history = [pending(), read(2, 9, 5, 10), read(2, 0, 20, 30)];
    assert_eq!(run(&RegisterModel, &history).verdict, Verdict::Illegal);
}

#[test]
fn write_without_reply_cannot_act_before_its_call() {
    let history = [
        read(2, 9, 0, 5),
        Operation::pending(1, RegisterInput::Write(9), 10),
    ];
    assert_eq!(run(&RegisterModel, &history).verdict, Verdict::Illegal);
}

#[test]
fn read_without_reply_constrains_nothing() {
    let history = [
        write(1, 1, 0, 10),
        Operation::pending(2, RegisterInput::Read, 0),
        read(3, 1, 20, 30),
    ];
    assert_eq!(run(&RegisterModel, &history).verdict, Verdict::Ok);
}

#[test]
#[should_panic(expected = "before its call")]
fn return_before_call_is_rejected() {
    let _ = run(&RegisterModel, &[write(1, 1, 10, 5)]);
}
