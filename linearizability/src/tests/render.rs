//! The failure report: text and HTML.

use super::super::models::{KvErr, VersionedKvModel};
use super::super::{Failure, Operation, Verdict};
use super::{get, put, put_input, run};

fn failure() -> Failure {
    let history = [
        put(1, "k<1>", "a", 0, KvErr::Ok, 0, 10),
        Operation::pending(3, put_input("k<1>", "b", 1), 5),
        get(2, "k<1>", "a", 12, 20),
        get(2, "k<1>", "", 30, 40),
    ];
    let outcome = run(&VersionedKvModel, &history);
    assert_eq!(outcome.verdict, Verdict::Illegal);
    outcome.failure.unwrap()
}

#[test]
fn text_report_names_key_intervals_prefix_and_culprit() {
    let failure = failure();
    // put a; get a; then the reply-less put b (it may act late).
    assert_eq!(failure.prefix.len(), 3);
    assert_eq!(failure.ops[failure.blocked].history_index, 3);
    assert_eq!(failure.state_after_prefix(), "(\"b\", v2)");
    let text = failure.to_string();
    for needle in [
        "key \"k<1>\"",
        "[0, 10]",
        "[5, inf)",
        "(no reply)",
        "longest linearizable prefix (3 of 4 operations)",
        "<-- could not be linearized",
        "then op 3 (client 2, [30, 40]) get(\"k<1>\") -> (\"\", v0, Ok)",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
}

#[test]
fn html_report_is_self_contained_and_escaped() {
    let failure = failure();
    let html = failure.to_html();
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.contains("<svg") && html.contains("</svg>"));
    assert!(html.contains("k&lt;1&gt;"), "labels are escaped");
    assert!(!html.contains("k<1>"), "no raw markup from descriptions");
    assert!(!html.contains("<script") && !html.contains("http://") || html.contains("xmlns"));
    assert!(
        html.contains("stroke-dasharray"),
        "the reply-less op is dashed"
    );

    let path = std::env::temp_dir().join(format!("linearizability-{}.html", std::process::id()));
    failure.write_html(&path).unwrap();
    let written = std::fs::read_to_string(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(written, html);
}
