//! A cluster of `kv serve` child processes on loopback, for `kv demo`,
//! `kv cluster` and tests. Every node is killed when the value is dropped.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// `kv serve` processes with their data and logs under one directory.
pub struct LocalCluster {
    /// `--runtime` passed to every node.
    runtime: String,
    addrs: Vec<SocketAddr>,
    children: Vec<Option<Child>>,
    exe: PathBuf,
    dir: PathBuf,
}

impl LocalCluster {
    /// A cluster (not started) of `addrs.len()` nodes run with `exe` on
    /// `runtime` (`tokio` or `threads`).
    pub fn new(exe: PathBuf, dir: PathBuf, addrs: Vec<SocketAddr>, runtime: &str) -> LocalCluster {
        let children = addrs.iter().map(|_| None).collect();
        LocalCluster {
            runtime: runtime.to_string(),
            addrs,
            children,
            exe,
            dir,
        }
    }

    /// The nodes' addresses, in id order.
    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// Start node `id` (1-based); its stderr goes to `node<id>.log`.
    pub fn start(&mut self, id: usize) -> std::io::Result<()> {
        let peers: Vec<String> = self.addrs.iter().map(|a| a.to_string()).collect();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(format!("node{id}.log")))?;
        let child = Command::new(&self.exe)
            .args([
                "serve",
                "--id",
                &id.to_string(),
                "--peers",
                &peers.join(","),
            ])
            .args(["--runtime", &self.runtime])
            .arg("--data-dir")
            .arg(self.dir.join(format!("node{id}")))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()?;
        self.children[id - 1] = Some(child);
        Ok(())
    }

    /// SIGKILL node `id` and wait for it.
    pub fn kill(&mut self, id: usize) {
        if let Some(mut c) = self.children[id - 1].take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Whether some node exited on its own (its status), e.g. after an error.
    pub fn exited(&mut self) -> Option<(usize, std::process::ExitStatus)> {
        for (i, c) in self.children.iter_mut().enumerate() {
            if let Some(child) = c {
                if let Ok(Some(status)) = child.try_wait() {
                    *c = None;
                    return Some((i + 1, status));
                }
            }
        }
        None
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        for id in 1..=self.children.len() {
            self.kill(id);
        }
    }
}
