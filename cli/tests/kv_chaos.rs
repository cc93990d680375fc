//! `kv chaos` end to end, as a user runs it: a real 3-node cluster on each
//! runtime (and a mixed one) under every kind of fault for a few seconds,
//! with a fixed seed. The run must pass (linearizable history, no lost
//! write, progress and catch-up after healing), and its summary must show
//! that every requested kind of fault was injected and that the nodes
//! applied the fault files they were given.
//!
//! Seed 1's first round injects all five kinds within about 9.5 s of the
//! cluster serving, so a 14 s run sees each at least once with time to
//! spare on a loaded machine. Each test takes about 16 s.

use std::process::Command;

const KINDS: [&str; 5] = ["kill", "pause", "partition", "restart", "disk"];

#[test]
fn chaos_on_tokio_passes_and_injects_every_kind() {
    chaos("tokio");
}

#[test]
fn chaos_on_threads_passes_and_injects_every_kind() {
    chaos("threads");
}

/// Odd nodes on tokio, even ones on threads, in one cluster.
#[test]
fn chaos_on_a_mixed_cluster_passes_and_injects_every_kind() {
    chaos("mixed");
}

fn chaos(runtime: &str) {
    let dir = std::env::temp_dir().join(format!("kv-chaos-test-{runtime}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = Command::new(env!("CARGO_BIN_EXE_kv"))
        .args(["chaos", "--duration", "14s", "--seed", "1"])
        .args(["--nemesis", &KINDS.join(","), "--runtime", runtime])
        .arg("--data-dir")
        .arg(&dir)
        .output()
        .expect("run kv chaos");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report = format!(
        "kv chaos --runtime {runtime} (data in {}):\n{stdout}\n{}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "exit {}: {report}", out.status);
    assert!(stdout.contains("kv chaos: seed 1 ("), "{report}");
    assert!(line(&stdout, "verdict").ends_with("PASS"), "{report}");
    assert!(
        line(&stdout, "history").contains("history is linearizable"),
        "{report}"
    );
    assert!(line(&stdout, "lost writes").contains("none"), "{report}");
    assert!(line(&stdout, "runtimes").starts_with(runtime), "{report}");

    // faults      7 in 14 s: kill 1, pause 1, partition 2, restart 1, disk 2 (...)
    let faults = line(&stdout, "faults");
    for kind in KINDS {
        let n = count_after(faults, kind).unwrap_or_else(|| panic!("no {kind} count: {report}"));
        assert!(n >= 1, "no {kind} fault was injected: {report}");
    }
    // nodes       applied 8 fault-file changes (their logs): each partition
    // and slow disk is switched on and off through the files.
    let applied = count_after(line(&stdout, "nodes"), "applied").expect("applied count");
    let switched = count_after(faults, "partition").unwrap() + count_after(faults, "disk").unwrap();
    assert!(
        applied >= 2 * switched,
        "the nodes applied {applied} fault-file changes for {switched} faults: {report}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The summary line starting with `label`, without it.
fn line<'a>(stdout: &'a str, label: &str) -> &'a str {
    stdout
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix(label))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no {label:?} line in:\n{stdout}"))
}

/// The number after `word` in `text` (`"kill 3"` -> 3).
fn count_after(text: &str, word: &str) -> Option<usize> {
    let mut words = text.split(|c: char| c.is_whitespace() || c == ',' || c == ':');
    words.find(|w| *w == word)?;
    words.find(|w| !w.is_empty())?.parse().ok()
}
