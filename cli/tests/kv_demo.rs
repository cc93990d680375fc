//! `kv demo` end to end, as the README runs it (shorter phases): it must
//! report a failover and a linearizable history.

use std::process::Command;

#[test]
fn kv_demo_reports_failover_and_a_linearizable_history() {
    demo("tokio");
}

/// The same demo with every node on the threads/mio driver.
#[test]
fn kv_demo_on_the_threads_runtime() {
    demo("threads");
}

fn demo(runtime: &str) {
    let dir = std::env::temp_dir().join(format!("kv-demo-test-{runtime}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = Command::new(env!("CARGO_BIN_EXE_kv"))
        .args(["demo", "--phase-secs", "1", "--runtime", runtime])
        .arg("--data-dir")
        .arg(&dir)
        .output()
        .expect("run kv demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "kv demo failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(&format!("({runtime} runtime)")), "{stdout}");
    assert!(stdout.contains("killed the leader"), "{stdout}");
    assert!(
        stdout.contains("failover: the next write succeeded"),
        "{stdout}"
    );
    assert!(
        stdout.contains("linearizability: history is linearizable"),
        "{stdout}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
