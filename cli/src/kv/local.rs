//! A cluster of `kv serve` child processes on loopback, for `kv demo`,
//! `kv cluster` and tests. Every node is killed when the value is dropped.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// `kv serve` processes with their data and logs under one directory.
pub struct LocalCluster {
    /// `--runtime` passed to every node...
    runtime: String,
    /// ...except these.
    runtimes: BTreeMap<usize, String>,
    /// More `kv serve` flags given to every node.
    serve_args: Vec<String>,
    addrs: Vec<SocketAddr>,
    children: BTreeMap<usize, Child>,
    exe: PathBuf,
    dir: PathBuf,
}

impl LocalCluster {
    /// A cluster (not started) of `addrs.len()` nodes run with `exe` on
    /// `runtime` (`tokio` or `threads`).
    pub fn new(exe: PathBuf, dir: PathBuf, addrs: Vec<SocketAddr>, runtime: &str) -> LocalCluster {
        let children = BTreeMap::new();
        LocalCluster {
            runtime: runtime.to_string(),
            runtimes: BTreeMap::new(),
            serve_args: Vec::new(),
            addrs,
            children,
            exe,
            dir,
        }
    }

    /// Run node `id` on `runtime` from its next start on (a cluster may
    /// mix both: they speak one wire format).
    pub fn set_runtime(&mut self, id: usize, runtime: &str) {
        self.runtimes.insert(id, runtime.to_string());
    }

    /// Node `id`'s `--runtime`.
    pub fn runtime_of(&self, id: usize) -> &str {
        self.runtimes.get(&id).unwrap_or(&self.runtime)
    }

    /// Give every node started from now on these `kv serve` flags too.
    pub fn with_serve_args(mut self, args: &[&str]) -> LocalCluster {
        self.serve_args = args.iter().map(|a| a.to_string()).collect();
        self
    }

    /// The nodes' addresses, in id order.
    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// Node `id`'s data directory.
    pub fn node_dir(&self, id: usize) -> PathBuf {
        self.dir.join(format!("node{id}"))
    }

    /// Node `id`'s log file.
    pub fn log_path(&self, id: usize) -> PathBuf {
        self.dir.join(format!("node{id}.log"))
    }

    /// Start bootstrap peer `id` (1-based, of the addresses given to
    /// [`LocalCluster::new`]); its stderr goes to `node<id>.log`.
    pub fn start(&mut self, id: usize) -> std::io::Result<()> {
        let peers: Vec<String> = (1..)
            .zip(&self.addrs)
            .map(|(i, a)| format!("{i}={a}"))
            .collect();
        let args = [
            "--id".to_string(),
            id.to_string(),
            "--peers".into(),
            peers.join(","),
        ];
        self.spawn(id, &args)
    }

    /// Start a new node `id` listening at `listen` that joins the cluster
    /// through `seeds` (it adds itself as a learner and promotes itself
    /// once caught up).
    pub fn start_joining(
        &mut self,
        id: usize,
        listen: SocketAddr,
        seeds: &[SocketAddr],
    ) -> std::io::Result<()> {
        let seeds: Vec<String> = seeds.iter().map(SocketAddr::to_string).collect();
        let args = [
            "--id".to_string(),
            id.to_string(),
            "--listen".into(),
            listen.to_string(),
            "--join".into(),
            seeds.join(","),
        ];
        self.spawn(id, &args)
    }

    fn spawn(&mut self, id: usize, args: &[String]) -> std::io::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path(id))?;
        let child = Command::new(&self.exe)
            .arg("serve")
            .args(args)
            .args(["--runtime", self.runtime_of(id)])
            .args(&self.serve_args)
            .arg("--data-dir")
            .arg(self.node_dir(id))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()?;
        self.children.insert(id, child);
        Ok(())
    }

    /// SIGKILL node `id` and wait for it.
    pub fn kill(&mut self, id: usize) {
        if let Some(mut c) = self.children.remove(&id) {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The process id of node `id`, if it is running.
    pub fn pid(&self, id: usize) -> Option<u32> {
        self.children.get(&id).map(Child::id)
    }

    /// Whether node `id` was started and has not been reaped since.
    pub fn is_running(&self, id: usize) -> bool {
        self.children.contains_key(&id)
    }

    /// Send node `id` a signal by name (`STOP`, `CONT`, `TERM`, ...) with
    /// the system's `kill` command, which spares this crate an unsafe FFI
    /// call for a test tool.
    pub fn signal(&self, id: usize, signal: &str) -> std::io::Result<()> {
        let Some(child) = self.children.get(&id) else {
            return Err(std::io::Error::other(format!("node {id} is not running")));
        };
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(child.id().to_string())
            .stderr(Stdio::null())
            .status()?;
        if status.success() {
            Ok(())
        } else {
            Err(std::io::Error::other(format!(
                "kill -{signal} {} failed ({status})",
                child.id()
            )))
        }
    }

    /// SIGTERM node `id` and wait up to `patience` for it to exit (then
    /// SIGKILL it). Returns its exit status, or `None` if it had to be
    /// killed.
    pub fn terminate(
        &mut self,
        id: usize,
        patience: Duration,
    ) -> std::io::Result<Option<ExitStatus>> {
        self.signal(id, "TERM")?;
        let deadline = Instant::now() + patience;
        let Some(child) = self.children.get_mut(&id) else {
            return Ok(None);
        };
        loop {
            if let Some(status) = child.try_wait()? {
                self.children.remove(&id);
                return Ok(Some(status));
            }
            if Instant::now() >= deadline {
                self.kill(id);
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Whether some node exited on its own (its status), e.g. after an error.
    pub fn exited(&mut self) -> Option<(usize, std::process::ExitStatus)> {
        let (id, status) = self
            .children
            .iter_mut()
            .find_map(|(id, c)| c.try_wait().ok().flatten().map(|s| (*id, s)))?;
        self.children.remove(&id);
        Some((id, status))
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        let ids: Vec<usize> = self.children.keys().copied().collect();
        for id in ids {
            self.kill(id);
        }
    }
}
