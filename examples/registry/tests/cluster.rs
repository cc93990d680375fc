//! Real processes: the example's programs run 3-node registry clusters on
//! loopback TCP with their Raft logs on disk, on each runtime and mixed.
//! The leader is killed with SIGKILL mid-run and restarted from its data
//! directory; at the end every node, stopped with SIGTERM, must print the
//! same state, holding every acknowledged registration exactly as written.

use core_kv::{LogIndex, Sessioned, StateMachine};
use driver_threads::{Client, DEFAULT_CLUSTER};
use registry::{Answer, Op, Registry, PROTOCOL};
use std::collections::BTreeMap;
use std::fs;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const TOKIO: &str = env!("CARGO_BIN_EXE_registry-tokio");
const THREADS: &str = env!("CARGO_BIN_EXE_registry-threads");

/// How long one client operation may take (a failover needs an election).
const OP_DEADLINE: Duration = Duration::from_secs(15);

/// Snapshot every KiB of log, so that 45 registrations take several
/// snapshots and a restarted node may have to install one.
const SNAPSHOT_BYTES: &str = "1024";

/// Three nodes of one cluster, each run by the given program; every child
/// is killed when the cluster is dropped, also when a test fails.
struct Cluster {
    exes: [&'static str; 3],
    addrs: Vec<SocketAddr>,
    peers: String,
    root: PathBuf,
    children: Vec<Option<Child>>,
}

impl Cluster {
    fn start(name: &str, exes: [&'static str; 3]) -> Cluster {
        let root = std::env::temp_dir().join(format!("registry-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(&root).unwrap();
        // Free ports: bind to port 0, note the port, release it.
        let addrs: Vec<SocketAddr> = (0..3)
            .map(|_| {
                let l = TcpListener::bind("127.0.0.1:0").unwrap();
                l.local_addr().unwrap()
            })
            .collect();
        let peers = addrs.iter().map(|a| a.to_string()).collect::<Vec<_>>();
        let mut c = Cluster {
            exes,
            addrs,
            peers: peers.join(","),
            root,
            children: vec![None, None, None],
        };
        for id in 1..=3 {
            c.start_node(id);
        }
        c
    }

    /// Start node `id` from its data directory (new or not). Its stdout
    /// goes to a file read when it stops; its log lines are appended to
    /// `node<id>.log`.
    fn start_node(&mut self, id: usize) {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.root.join(format!("node{id}.log")))
            .unwrap();
        let out = fs::File::create(self.stdout_path(id)).unwrap();
        let child = Command::new(self.exes[id - 1])
            .args(["serve", "--id", &id.to_string(), "--peers", &self.peers])
            .arg("--data-dir")
            .arg(self.root.join(format!("data{id}")))
            .args(["--snapshot-bytes", SNAPSHOT_BYTES])
            .stdout(out)
            .stderr(log)
            .spawn()
            .expect("start a node");
        self.children[id - 1] = Some(child);
    }

    fn stdout_path(&self, id: usize) -> PathBuf {
        self.root.join(format!("node{id}.out"))
    }

    /// SIGKILL: nothing the node had not synced survives.
    fn kill(&mut self, id: usize) {
        if let Some(mut child) = self.children[id - 1].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM node `id`, wait for it to exit cleanly and return the state
    /// line it printed.
    fn stop(&mut self, id: usize) -> String {
        let mut child = self.children[id - 1].take().expect("node is running");
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed");
        let deadline = Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("node {id} did not stop within 10 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        assert!(status.success(), "node {id} exited with {status}");
        let out = fs::read_to_string(self.stdout_path(id)).unwrap();
        let line = out.lines().find(|l| l.starts_with("state: "));
        line.unwrap_or_else(|| panic!("node {id} printed no state: {out:?}"))
            .to_string()
    }

    /// A library client (the blocking one: no runtime needed in the test).
    fn client(&self) -> Client<Sessioned<Registry>> {
        Client::new(self.addrs.clone(), DEFAULT_CLUSTER, PROTOCOL).unwrap()
    }

    /// Run one client command of program `exe`; its stdout, trimmed.
    fn command(&self, exe: &str, args: &[&str]) -> String {
        let out = Command::new(exe)
            .args(args)
            .args(["--peers", &self.peers])
            .stderr(Stdio::inherit())
            .output()
            .expect("run a client command");
        assert!(out.status.success(), "{exe} {args:?}: {}", out.status);
        String::from_utf8(out.stdout)
            .unwrap()
            .trim_end()
            .to_string()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for id in 1..=3 {
            self.kill(id);
        }
        if std::thread::panicking() {
            eprintln!("logs kept in {}", self.root.display());
        } else {
            let _ = fs::remove_dir_all(&self.root);
        }
    }
}

/// What the test expects: the names as acknowledged, and the same
/// operations applied to a local `Registry` (for the exact state line).
#[derive(Default)]
struct Expected {
    written: BTreeMap<String, String>,
    model: Registry,
}

impl Expected {
    /// Record an acknowledged change and check its answer: the value the
    /// name had before must be the one last acknowledged.
    fn changed(&mut self, op: Op, answer: &Answer) {
        let previous = match &op {
            Op::Register { name, value } => self.written.insert(name.clone(), value.clone()),
            Op::Unregister { name } => self.written.remove(name),
            _ => unreachable!("only changes are recorded"),
        };
        assert_eq!(answer, &Answer::Previous(previous), "answer to {op:?}");
        self.model.apply(LogIndex(0), &op);
        assert_eq!(self.model.names(), &self.written);
    }

    fn state_line(&self) -> String {
        format!("state: {}", self.model)
    }
}

fn register(client: &mut Client<Sessioned<Registry>>, expected: &mut Expected, i: u32) {
    let op = Op::Register {
        name: format!("svc{i:02}"),
        value: format!(
            "10.0.{}.{}:{} https://svc{i:02}.example/health",
            i / 8,
            i % 8,
            8000 + i
        ),
    };
    let answer = client
        .run(op.clone(), OP_DEADLINE)
        .expect("registration acknowledged");
    expected.changed(op, &answer);
}

fn kill_the_leader_and_compare_replicas(scenario: &str, exes: [&'static str; 3]) {
    let started = Instant::now();
    let mut cluster = Cluster::start(scenario, exes);
    let mut client = cluster.client();
    let mut expected = Expected::default();
    for i in 0..30 {
        register(&mut client, &mut expected, i);
    }
    // The client commands of both programs, whatever runtime the nodes run:
    // one wire format.
    let out = cluster.command(TOKIO, &["register", "svc00", "10.9.9.9:9"]);
    let was = expected.written["svc00"].clone();
    assert_eq!(out, format!("ok (was {was})"));
    let op = Op::Register {
        name: "svc00".into(),
        value: "10.9.9.9:9".into(),
    };
    expected.changed(op, &Answer::Previous(Some(was)));
    assert_eq!(cluster.command(THREADS, &["lookup", "svc00"]), "10.9.9.9:9");
    assert_eq!(
        cluster.command(TOKIO, &["lookup", "nobody"]),
        "not registered"
    );
    let list = cluster.command(THREADS, &["list"]);
    assert_eq!(list.lines().count(), 30, "{list}");
    assert!(
        list.starts_with("svc00 10.9.9.9:9\nsvc01 10.0.0.1:8001"),
        "{list}"
    );

    // Kill -9 the leader; the others elect a new one and carry on.
    let victim = client.leader().expect("a leader answered") as usize;
    cluster.kill(victim);
    for i in 30..40 {
        register(&mut client, &mut expected, i);
    }
    for name in ["svc03", "svc31"] {
        let op = Op::Unregister { name: name.into() };
        let answer = client.run(op.clone(), OP_DEADLINE).expect("acknowledged");
        expected.changed(op, &answer);
    }
    cluster.start_node(victim);
    for i in 40..45 {
        register(&mut client, &mut expected, i);
    }

    // Wait for the restarted node to catch up. Its state is only visible
    // when it stops, so look by stopping it: if it is behind, start it
    // again and look later. The other two keep a majority meanwhile.
    let want = expected.state_line();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut wait = Duration::from_millis(300);
    let mut states = BTreeMap::new();
    loop {
        std::thread::sleep(wait);
        let state = cluster.stop(victim);
        if state == want {
            states.insert(victim, state);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "node {victim} did not catch up:\n got {state}\nwant {want}"
        );
        cluster.start_node(victim);
        wait = (wait * 2).min(Duration::from_secs(2));
    }

    // A follower learns that an entry committed only from the leader's next
    // message, so it may be one commit behind. With the restarted node
    // stopped, both remaining nodes form the only majority: a write that
    // changes nothing (re-registering a name as it is) commits only once
    // both hold the whole log, and the read after it (ReadIndex) is
    // answered only after the follower has acknowledged a heartbeat that
    // carries that commit. Then both have applied everything.
    let (name, value) = expected.written.iter().next_back().unwrap();
    let same = Op::Register {
        name: name.clone(),
        value: value.clone(),
    };
    let answer = client.run(same, OP_DEADLINE).expect("acknowledged");
    assert_eq!(answer, Answer::Previous(Some(value.clone())));
    let lookup = Op::Lookup { name: name.clone() };
    let answer = client.run(lookup, OP_DEADLINE).expect("answered");
    assert_eq!(answer, Answer::Value(Some(value.clone())));

    for id in (1..=3).filter(|&id| id != victim) {
        states.insert(id, cluster.stop(id));
    }
    for (id, state) in &states {
        assert_eq!(state, &want, "node {id} differs from what was acknowledged");
    }
    eprintln!("{scenario}: {:.1} s", started.elapsed().as_secs_f64());
}

#[test]
fn tokio_cluster_survives_kill_9_and_replicas_agree() {
    kill_the_leader_and_compare_replicas("tokio", [TOKIO, TOKIO, TOKIO]);
}

#[test]
fn threads_cluster_survives_kill_9_and_replicas_agree() {
    kill_the_leader_and_compare_replicas("threads", [THREADS, THREADS, THREADS]);
}

/// Both drivers speak one wire format and one storage format.
#[test]
fn mixed_cluster_survives_kill_9_and_replicas_agree() {
    kill_the_leader_and_compare_replicas("mixed", [TOKIO, THREADS, TOKIO]);
}
