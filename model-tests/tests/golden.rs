//! Golden-file scenario stories for core-raft: every
//! `tests/testdata/raft/*.txt` is a sequence of commands of the Raft
//! language (`model_tests::golden::raft`), each followed by the trace it
//! must print. A behaviour change fails here with a diff of the story;
//! `UPDATE_GOLDEN=1 cargo test -p model-tests --test golden` rewrites the
//! files so the change is reviewed as a `git diff`.

use model_tests::golden::{check_dir, raft::RaftInterpreter};
use std::path::Path;

#[test]
fn raft_stories() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/testdata/raft");
    check_dir(&dir, "-p model-tests --test golden", RaftInterpreter::new);
}
