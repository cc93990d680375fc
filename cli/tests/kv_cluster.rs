//! Real processes: three `kv serve` replicas on loopback with their Raft
//! state on disk. Acknowledged writes must survive kill -9 of any node and
//! of the whole cluster, each applied exactly once.

use core_kv::{Op, Outcome, Version};
use driver_tokio::kv::KvClient;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The servers of one test; killed when dropped, even on panic.
struct Cluster {
    /// `--runtime` of each node.
    runtimes: Vec<&'static str>,
    addrs: Vec<SocketAddr>,
    dirs: Vec<PathBuf>,
    children: Vec<Option<Child>>,
    root: PathBuf,
}

impl Cluster {
    fn start(name: &str) -> Cluster {
        Self::start_with(name, ["tokio", "tokio", "tokio"])
    }

    fn start_with(name: &str, runtimes: [&'static str; 3]) -> Cluster {
        let root = std::env::temp_dir().join(format!("kv-cluster-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        // Free ports: bind to port 0, note the port, release it.
        let addrs: Vec<SocketAddr> = (0..3)
            .map(|_| {
                TcpListener::bind("127.0.0.1:0")
                    .unwrap()
                    .local_addr()
                    .unwrap()
            })
            .collect();
        let dirs = (1..=3).map(|i| root.join(format!("node{i}"))).collect();
        let mut c = Cluster {
            runtimes: runtimes.to_vec(),
            addrs,
            dirs,
            children: vec![None, None, None],
            root,
        };
        for i in 1..=3 {
            c.start_node(i);
        }
        c
    }

    fn start_node(&mut self, id: usize) {
        let peers: Vec<String> = self.addrs.iter().map(|a| a.to_string()).collect();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.root.join(format!("node{id}.log")))
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_kv"))
            .args([
                "serve",
                "--id",
                &id.to_string(),
                "--peers",
                &peers.join(","),
            ])
            .args(["--runtime", self.runtimes[id - 1]])
            .arg("--data-dir")
            .arg(&self.dirs[id - 1])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start kv serve");
        self.children[id - 1] = Some(child);
    }

    fn kill(&mut self, id: usize) {
        if let Some(mut child) = self.children[id - 1].take() {
            let _ = child.kill(); // SIGKILL: nothing unsynced survives
            let _ = child.wait();
        }
    }

    fn client(&self) -> KvClient {
        KvClient::for_cluster(self.addrs.clone(), 6824).unwrap()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for id in 1..=3 {
            self.kill(id);
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.root);
        }
    }
}

const OP_DEADLINE: Duration = Duration::from_secs(60);

async fn append(c: &mut KvClient, element: &str) {
    let out = c
        .run(
            Op::Append {
                key: "log".into(),
                value: element.into(),
            },
            OP_DEADLINE,
        )
        .await
        .expect("append acknowledged");
    assert_eq!(out, Outcome::Ok);
}

async fn get(c: &mut KvClient, key: &str) -> Outcome {
    c.run(Op::Get { key: key.into() }, OP_DEADLINE)
        .await
        .expect("get answered")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_kill_9_of_nodes_and_of_the_cluster() {
    kill_9_scenario(Cluster::start("kill9")).await;
}

/// The same on the threads/mio driver.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn threads_runtime_cluster_survives_kill_9() {
    kill_9_scenario(Cluster::start_with(
        "threads",
        ["threads", "threads", "threads"],
    ))
    .await;
}

/// One cluster mixing both drivers: one wire format, one storage format.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_cluster_of_both_drivers_survives_kill_9() {
    kill_9_scenario(Cluster::start_with("mixed", ["tokio", "threads", "tokio"])).await;
}

async fn kill_9_scenario(mut cluster: Cluster) {
    let mut client = cluster.client();
    let out = client
        .run(
            Op::Put {
                key: "a".into(),
                value: "1".into(),
                version: Version(0),
            },
            OP_DEADLINE,
        )
        .await
        .expect("first put");
    assert_eq!(out, Outcome::Ok);
    let mut acknowledged = Vec::new();
    for round in 0..3 {
        for j in 0..5 {
            let element = format!("[{round}.{j}]");
            append(&mut client, &element).await;
            acknowledged.push(element);
        }
        // Kill one node (sometimes the leader), write on, bring it back.
        let victim = round + 1;
        cluster.kill(victim);
        let element = format!("[{round}.after-kill]");
        append(&mut client, &element).await;
        acknowledged.push(element);
        cluster.start_node(victim);
    }
    // Kill everything at once and restart from disk.
    for id in 1..=3 {
        cluster.kill(id);
    }
    for id in 1..=3 {
        cluster.start_node(id);
    }
    let mut client = cluster.client();
    let value = match get(&mut client, "log").await {
        Outcome::Value { value, .. } => value,
        other => panic!("log: {other:?}"),
    };
    let mut at = 0;
    for element in &acknowledged {
        assert_eq!(
            value.matches(element.as_str()).count(),
            1,
            "{element} in {value}"
        );
        let pos = value.find(element.as_str()).unwrap();
        assert!(pos >= at, "{element} out of order in {value}");
        at = pos;
    }
    assert_eq!(
        get(&mut client, "a").await,
        Outcome::Value {
            value: "1".into(),
            version: Version(1)
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_cluster_id_or_garbage_is_refused_and_the_cluster_keeps_serving() {
    use std::io::Write;
    let cluster = Cluster::start("hostile");
    let mut client = cluster.client();
    assert_eq!(
        client
            .run(
                Op::Put {
                    key: "k".into(),
                    value: "v".into(),
                    version: Version(0)
                },
                OP_DEADLINE
            )
            .await
            .unwrap(),
        Outcome::Ok
    );
    // Garbage, an oversized frame and a foreign cluster at every node.
    for addr in &cluster.addrs {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        let _ = s.write_all(b"GET / HTTP/1.1\r\n\r\n");
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        let _ = s.write_all(&u32::MAX.to_be_bytes());
        let mut wrong = KvClient::for_cluster(vec![*addr], 1).unwrap();
        let refused = wrong
            .run(Op::Get { key: "k".into() }, Duration::from_secs(2))
            .await;
        assert!(refused.is_err(), "a client of another cluster was served");
    }
    let mut client = cluster.client();
    assert_eq!(
        get(&mut client, "k").await,
        Outcome::Value {
            value: "v".into(),
            version: Version(1)
        }
    );
    let log = std::fs::read_to_string(cluster.root.join("node1.log")).unwrap();
    assert!(
        log.contains("cluster id mismatch"),
        "no log line for the foreign cluster:\n{log}"
    );
}

/// Storage faults seen from the process: a log cut mid-record recovers (the
/// torn tail is reported); a byte flipped before the tail stops the node
/// with an error naming the file and the offset, and nothing is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_storage_refuses_to_start_and_a_torn_tail_recovers() {
    let mut cluster = Cluster::start("corrupt");
    let mut client = cluster.client();
    for i in 0..30 {
        append(&mut client, &format!("<{i}>")).await;
    }
    // Let the last entries reach every replica (the cut below removes a
    // record node 2 had synced, so node 3 must hold everything too).
    tokio::time::sleep(Duration::from_millis(500)).await;
    for id in 1..=3 {
        cluster.kill(id);
    }
    let segment = |id: usize| -> PathBuf {
        let mut segs: Vec<PathBuf> = std::fs::read_dir(&cluster.dirs[id - 1])
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "seg"))
            .collect();
        segs.sort();
        segs.pop().expect("a log segment")
    };
    // Node 1: flip a byte a third of the way into its newest segment.
    let seg1 = segment(1);
    let mut bytes = std::fs::read(&seg1).unwrap();
    let at = bytes.len() / 3;
    bytes[at] ^= 0x5a;
    std::fs::write(&seg1, &bytes).unwrap();
    let peers: Vec<String> = cluster.addrs.iter().map(|a| a.to_string()).collect();
    let out = Command::new(env!("CARGO_BIN_EXE_kv"))
        .args(["serve", "--id", "1", "--peers", &peers.join(",")])
        .arg("--data-dir")
        .arg(&cluster.dirs[0])
        .output()
        .expect("run kv serve");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "a node with a corrupt log started:\n{stderr}"
    );
    let name = seg1.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        stderr.contains(&name) && stderr.contains("byte"),
        "the error must name the file and offset:\n{stderr}"
    );
    // Node 2: cut its newest segment in the middle of the last record.
    let seg2 = segment(2);
    let len = std::fs::metadata(&seg2).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&seg2)
        .unwrap()
        .set_len(len - 3)
        .unwrap();
    // Nodes 2 and 3 form a majority and serve everything acknowledged that
    // a majority holds (node 2 lost at most its unacknowledged last record).
    cluster.start_node(2);
    cluster.start_node(3);
    let mut client = cluster.client();
    let value = match get(&mut client, "log").await {
        Outcome::Value { value, .. } => value,
        other => panic!("log: {other:?}"),
    };
    for i in 0..30 {
        assert_eq!(
            value.matches(&format!("<{i}>")).count(),
            1,
            "<{i}> in {value}"
        );
    }
    let log2 = std::fs::read_to_string(cluster.root.join("node2.log")).unwrap();
    assert!(
        log2.contains("torn"),
        "node 2 did not report its torn tail:\n{log2}"
    );
}
