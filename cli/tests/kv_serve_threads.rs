//! `kv serve --runtime threads` runs the mio driver on its own threads and
//! starts no async runtime (the command used to build a tokio runtime just
//! to wait for signals), serves a client, and stops cleanly on SIGTERM.

use driver_tokio::kv::KvClient;
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The names of the process's threads (Linux: `/proc/<pid>/task/*/comm`).
fn thread_names(pid: u32) -> Vec<String> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .filter_map(Result::ok)
        .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
        .map(|n| n.trim().to_string())
        .collect()
}

#[test]
fn a_threads_node_starts_no_async_runtime_and_stops_on_sigterm() {
    let dir = std::env::temp_dir().join(format!("kv-threads-only-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let addr = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_kv"))
        .args(["serve", "--id", "1", "--runtime", "threads"])
        .args(["--peers", &addr.to_string()])
        .arg("--data-dir")
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // A write through the one-node cluster: the node is up and serving.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let answer = rt.block_on(async {
        let mut client = KvClient::for_cluster(vec![addr], 6824).unwrap();
        let op = core_kv::Op::Set {
            key: "k".into(),
            value: "v".into(),
        };
        client.run(op, Duration::from_secs(20)).await
    });
    assert_eq!(answer.unwrap(), core_kv::Outcome::Ok);
    let names = thread_names(child.id());
    assert!(!names.is_empty(), "cannot read the node's threads");
    assert!(
        !names.iter().any(|n| n.starts_with("tokio")),
        "a threads-runtime node runs tokio threads: {names:?}"
    );
    assert!(
        names.iter().any(|n| n == "disk"),
        "no disk thread: {names:?}"
    );
    // SIGTERM: the node finishes its fsync in flight and exits 0.
    let pid = child.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "the node ignored SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "exit status {status}");
    let _ = std::fs::remove_dir_all(&dir);
}
