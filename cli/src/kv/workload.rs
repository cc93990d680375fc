//! A recording workload against a running `kv` cluster: clients doing
//! versioned Puts and Gets on a few keys, each call and return timed, and
//! the history checked for linearizability. `kv demo` and the real-process
//! tests run it while they kill, restart, add and remove nodes.

use core_kv::{Op, Outcome, Version};
use driver_tokio::kv::KvClient;
use linearizability::kv::{versioned_history, Recorded};
use linearizability::models::VersionedKvModel;
use linearizability::{check, CheckOptions, Verdict};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Keys the clients use by default: few, so that clients often race on
/// one key, which is where a linearizability bug would show.
pub const KEYS: usize = 3;

/// Which keys the clients use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeySpace {
    /// Keys in use at any one time (at least one).
    pub keys: usize,
    /// Move every client to fresh keys this often (`e<N>-k<i>` in epoch
    /// N): the checker's memory grows with the square of the operations
    /// on one key, and epochs bound those whatever the run's length while
    /// clients race on as few keys as ever. `None`: the same keys (`k<i>`)
    /// throughout.
    pub epoch: Option<Duration>,
}

impl Default for KeySpace {
    /// [`KEYS`] keys, no epochs.
    fn default() -> Self {
        KeySpace {
            keys: KEYS,
            epoch: None,
        }
    }
}

impl KeySpace {
    /// The epoch at `micros` on the history's clock (`None` without epochs).
    fn epoch_at(&self, micros: u64) -> Option<u64> {
        let every = self.epoch?.as_micros().max(1) as u64;
        Some(micros / every)
    }

    /// The name of key `k` in `epoch`.
    fn name(epoch: Option<u64>, k: usize) -> String {
        match epoch {
            Some(e) => format!("e{e}-k{k}"),
            None => format!("k{k}"),
        }
    }
}

/// The recording clients, running until stopped.
pub struct Workload {
    t0: Instant,
    history: Arc<Mutex<Vec<Recorded>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    space: KeySpace,
}

impl Workload {
    /// Start `clients` recording clients of the cluster at `addrs`, on
    /// [`KEYS`] keys.
    pub fn start(clients: usize, addrs: &[SocketAddr]) -> Workload {
        Workload::start_in(clients, addrs, KeySpace::default())
    }

    /// The same in the key space `space`.
    pub fn start_in(clients: usize, addrs: &[SocketAddr], space: KeySpace) -> Workload {
        let space = KeySpace {
            keys: space.keys.max(1),
            ..space
        };
        let t0 = Instant::now();
        let micros = move || t0.elapsed().as_micros() as u64;
        let history: Arc<Mutex<Vec<Recorded>>> = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let tasks = (0..clients)
            .map(|c| {
                let (addrs, history, stop) = (addrs.to_vec(), history.clone(), stop.clone());
                tokio::spawn(client_loop(
                    c as u64 + 1,
                    addrs,
                    space,
                    history,
                    stop,
                    micros,
                ))
            })
            .collect();
        Workload {
            t0,
            history,
            stop,
            tasks,
            space,
        }
    }

    /// Microseconds since the workload started (the history's clock).
    pub fn now(&self) -> u64 {
        self.t0.elapsed().as_micros() as u64
    }

    /// The instant the history's clock counts from, so that a nemesis on
    /// another thread can time its faults on the same clock.
    pub fn origin(&self) -> Instant {
        self.t0
    }

    /// When the first Put invoked at or after `since` was acknowledged.
    pub fn first_write_acked_after(&self, since: u64) -> Option<u64> {
        let history = self.history.lock().unwrap();
        history
            .iter()
            .filter(|r| {
                r.call >= since && r.outcome == Some(Outcome::Ok) && matches!(r.op, Op::Put { .. })
            })
            .filter_map(|r| r.ret)
            .min()
    }

    /// Stop every client (an operation in flight stays in the history
    /// without a return) and hand back the history.
    pub async fn stop(self) -> Vec<Recorded> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for t in self.tasks {
            let _ = t.await;
        }
        let history = self.history.lock().unwrap();
        history.clone()
    }

    /// Operations acknowledged so far.
    pub fn acknowledged(&self) -> usize {
        let history = self.history.lock().unwrap();
        history.iter().filter(|r| r.ret.is_some()).count()
    }

    /// Stop the clients, then read every key once more, those of every
    /// epoch included (recorded, so a lost acknowledged write shows up as a
    /// stale read) and hand back the history.
    pub async fn stop_and_read_back(self, addrs: &[SocketAddr]) -> Vec<Recorded> {
        let (t0, space) = (self.t0, self.space);
        let mut recorded = self.stop().await;
        let epochs: Vec<Option<u64>> = match space.epoch_at(t0.elapsed().as_micros() as u64) {
            Some(last) => (0..=last).map(Some).collect(),
            None => vec![None],
        };
        let keys = epochs
            .into_iter()
            .flat_map(|e| (0..space.keys).map(move |k| KeySpace::name(e, k)));
        if let Ok(mut client) = KvClient::for_cluster(addrs.to_vec(), 6824) {
            for key in keys {
                let op = Op::Get { key };
                let call = t0.elapsed().as_micros() as u64;
                let outcome = client.run(op.clone(), Duration::from_secs(30)).await.ok();
                let ret = outcome.as_ref().map(|_| t0.elapsed().as_micros() as u64);
                recorded.push(Recorded {
                    client: 0,
                    call,
                    ret,
                    op,
                    outcome,
                });
            }
        }
        recorded
    }
}

/// Check a recorded history for linearizability; returns the verdict and
/// the checker's summary. A failing history's timeline page is written to
/// `dir/linearizability.html`.
pub fn check_history(recorded: &[Recorded], dir: &Path) -> (Verdict, String) {
    check_history_within(recorded, dir, Duration::from_secs(30))
}

/// [`check_history`] with a time budget of `budget` for the search (a
/// long history needs more than the default 30 s).
pub fn check_history_within(
    recorded: &[Recorded],
    dir: &Path,
    budget: Duration,
) -> (Verdict, String) {
    let outcome = check(
        &VersionedKvModel,
        &versioned_history(recorded),
        &CheckOptions::with_budget(budget),
    );
    if outcome.verdict == Verdict::Illegal {
        if let Some(f) = &outcome.failure {
            let page = dir.join("linearizability.html");
            if f.write_html(&page).is_ok() {
                println!("timeline of the failing key: {}", page.display());
            }
        }
    }
    (outcome.verdict, outcome.to_string())
}

/// One client: versioned Puts and Gets on a few keys until stopped,
/// recording call and return times for the checker.
async fn client_loop(
    me: u64,
    addrs: Vec<SocketAddr>,
    space: KeySpace,
    history: Arc<Mutex<Vec<Recorded>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    now: impl Fn() -> u64,
) {
    let Ok(mut client) = KvClient::for_cluster(addrs, 6824) else {
        return;
    };
    let keys = space.keys;
    let mut versions = vec![0u64; keys];
    let mut epoch = space.epoch_at(now());
    let mut n = 0u64;
    // After a refused Put, read that key to learn its version.
    let mut reread: Option<usize> = None;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        n += 1;
        let now_epoch = space.epoch_at(now());
        if now_epoch != epoch {
            // Fresh keys: none exists yet.
            epoch = now_epoch;
            versions.fill(0);
            reread = None;
        }
        let (k, op) = match reread.take() {
            Some(k) => (
                k,
                Op::Get {
                    key: KeySpace::name(epoch, k),
                },
            ),
            None => {
                let k = ((me + n) % keys as u64) as usize;
                let key = KeySpace::name(epoch, k);
                if n.is_multiple_of(2) {
                    (k, Op::Get { key })
                } else {
                    (
                        k,
                        Op::Put {
                            key,
                            value: format!("c{me}-{n}"),
                            version: Version(versions[k]),
                        },
                    )
                }
            }
        };
        let call = now();
        let index = {
            let mut h = history.lock().unwrap();
            h.push(Recorded {
                client: me,
                call,
                ret: None,
                op: op.clone(),
                outcome: None,
            });
            h.len() - 1
        };
        // No deadline of our own: an operation in flight when the demo
        // stops stays in the history without a return, as "maybe applied".
        let result = tokio::select! {
            r = client.run(op, Duration::from_secs(60)) => r.ok(),
            _ = wait_for(&stop) => None,
        };
        let Some(outcome) = result else { break };
        let ret = now();
        match &outcome {
            Outcome::Value { version, .. } => versions[k] = version.0,
            Outcome::Ok => versions[k] += 1,
            Outcome::ErrNoKey => versions[k] = 0,
            Outcome::ErrVersion | Outcome::ErrMaybe => reread = Some(k),
        }
        let mut h = history.lock().unwrap();
        h[index].ret = Some(ret);
        h[index].outcome = Some(outcome);
    }
}

async fn wait_for(stop: &std::sync::atomic::AtomicBool) {
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
