//! Classic Put/Append/Get histories with known answers.

use super::super::models::{ClassicKvInput, ClassicKvModel, ClassicKvOutput};
use super::super::{Operation, Verdict};
use super::run;

type Op = Operation<ClassicKvInput, ClassicKvOutput>;

fn append(client: u64, value: &str, call: u64, ret: u64) -> Op {
    let input = ClassicKvInput::Append {
        key: "k".into(),
        value: value.into(),
    };
    Operation::completed(client, input, call, ret, ClassicKvOutput::Done)
}

fn get(client: u64, value: &str, call: u64, ret: u64) -> Op {
    let input = ClassicKvInput::Get { key: "k".into() };
    Operation::completed(
        client,
        input,
        call,
        ret,
        ClassicKvOutput::Value(value.into()),
    )
}

#[test]
fn concurrent_appends_in_either_order() {
    for seen in ["xy", "yx"] {
        let history = [
            append(1, "x", 0, 10),
            append(2, "y", 5, 15),
            get(3, seen, 20, 30),
        ];
        assert_eq!(
            run(&ClassicKvModel, &history).verdict,
            Verdict::Ok,
            "{seen}"
        );
    }
    let lost = [
        append(1, "x", 0, 10),
        append(2, "y", 5, 15),
        get(3, "x", 20, 30),
    ];
    assert_eq!(run(&ClassicKvModel, &lost).verdict, Verdict::Illegal);
    let doubled = [append(1, "x", 0, 10), get(3, "xx", 20, 30)];
    assert_eq!(run(&ClassicKvModel, &doubled).verdict, Verdict::Illegal);
}

#[test]
fn put_replaces_and_append_may_return_old_value() {
    let put = Operation::completed(
        1,
        ClassicKvInput::Put {
            key: "k".into(),
            value: "a".into(),
        },
        0,
        10,
        ClassicKvOutput::Done,
    );
    let append_old = |old: &str| {
        Operation::completed(
            2,
            ClassicKvInput::Append {
                key: "k".into(),
                value: "b".into(),
            },
            20,
            30,
            ClassicKvOutput::Value(old.into()),
        )
    };
    let history = [put.clone(), append_old("a"), get(3, "ab", 40, 50)];
    assert_eq!(run(&ClassicKvModel, &history).verdict, Verdict::Ok);
    let history = [put, append_old(""), get(3, "ab", 40, 50)];
    assert_eq!(run(&ClassicKvModel, &history).verdict, Verdict::Illegal);
}

#[test]
fn append_without_reply_may_or_may_not_apply() {
    let pending = || {
        let input = ClassicKvInput::Append {
            key: "k".into(),
            value: "z".into(),
        };
        Operation::pending(1, input, 0)
    };
    for seen in ["", "z"] {
        let history = [pending(), get(2, seen, 10, 20)];
        assert_eq!(
            run(&ClassicKvModel, &history).verdict,
            Verdict::Ok,
            "{seen}"
        );
    }
    let twice = [pending(), get(2, "zz", 10, 20)];
    assert_eq!(run(&ClassicKvModel, &twice).verdict, Verdict::Illegal);
}
