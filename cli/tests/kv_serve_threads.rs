//! `kv serve --runtime threads` runs the mio driver on its own threads and
//! starts no async runtime (the command used to build a tokio runtime just
//! to wait for signals), serves a client, and stops cleanly on SIGTERM. A
//! second `kv serve` on its data directory refuses to start, and a node
//! killed with SIGKILL leaves the directory free.

use driver_tokio::kv::KvClient;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
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

fn free_addr() -> std::net::SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn serve(dir: &Path, addr: std::net::SocketAddr) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kv"));
    cmd.args(["serve", "--id", "1", "--runtime", "threads"])
        .args(["--peers", &addr.to_string()])
        .arg("--data-dir")
        .arg(dir);
    cmd
}

/// Run a second `kv serve` on `dir` (on another port, so that only the
/// directory can be the conflict) and return what it did.
fn second_serve(dir: &Path) -> Output {
    let mut child = serve(dir, free_addr())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn wait_for_write(addr: std::net::SocketAddr) {
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
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_second_node_on_a_data_directory_in_use_refuses_to_start_until_the_first_is_killed() {
    let dir = std::env::temp_dir().join(format!("kv-one-owner-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let addr = free_addr();
    let first = serve(&dir, addr)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut first = Killed(first);
    wait_for_write(addr);

    let second = second_serve(&dir);
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(!second.status.success(), "{stderr}");
    assert!(
        second.status.code().is_some(),
        "refused by exiting, not killed by a signal or a timeout: {stderr}"
    );
    assert!(stderr.contains("is in use by another process"), "{stderr}");
    assert!(
        stderr.contains(&format!("(pid {})", first.0.id())),
        "{stderr}"
    );
    assert!(stderr.contains(&dir.display().to_string()), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    // SIGKILL releases the lock with the process: the directory is usable.
    first.0.kill().unwrap();
    first.0.wait().unwrap();
    let addr = free_addr();
    let _again = Killed(
        serve(&dir, addr)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for_write(addr);
    let _ = std::fs::remove_dir_all(&dir);
}
