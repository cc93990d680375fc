//! The nemesis: injects faults into a running [`LocalCluster`] one at a
//! time, in an order and with timings drawn from one seed, and undoes each
//! before the next.
//!
//! Each round injects every requested kind once, in a seeded random order,
//! so that a short run still sees every kind. A fault targets the current
//! leader half of the time (by a seeded coin), otherwise a seeded random
//! node. The seed fixes every draw (kinds, targets' coin and numbers, hold
//! times, gaps, partition shapes, disk delays); the cluster's own timing
//! (who leads when) is the real world's, so a replay repeats the schedule,
//! not the exact interleaving.

use super::Nemesis;
use crate::kv::local::LocalCluster;
use core_raft::rng::SplitMix64;
use driver_threads::admin::AdminClient;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Election timeouts of the nodes (`kv serve`'s defaults: 50-100 ticks of
/// 10 ms): a pause must outlast the longest for the cluster to notice.
const ELECTION_TIMEOUT_MAX: Duration = Duration::from_millis(1000);

/// How long a node given SIGTERM may take to stop (it finishes the fsync
/// in flight) before it counts as hung.
const STOP_PATIENCE: Duration = Duration::from_secs(10);

/// How long a node may take to apply a changed fault file (it reads it
/// every 50 ms) before the nemesis reports it.
const APPLY_PATIENCE: Duration = Duration::from_secs(2);

/// Choices for the slow-disk nemesis, in ms per fsync: from a mildly slow
/// disk to one slower than the election timeout, which stalls a leader's
/// heartbeats behind its persist gate.
const DISK_DELAYS_MS: [u64; 5] = [20, 100, 300, 800, 1500];

/// One fault as injected.
#[derive(Clone, Debug)]
pub struct Fault {
    /// Its kind.
    pub kind: Nemesis,
    /// When it started, in microseconds on the workload's clock.
    pub at_us: u64,
    /// When it was known to be in force: the signalled node was dead or
    /// stopped, or every node given a fault file had logged applying it.
    /// A write invoked before then may still have gone through, so
    /// failovers are timed from here.
    pub effective_us: u64,
    /// What was done, for the log.
    pub what: String,
    /// Whether it took the leader out (killed, paused, restarted, cut off
    /// from the majority, muted or deafened it, or slowed its fsyncs past
    /// the election timeout): a failover follows.
    pub leader_out: bool,
}

/// A partition's shape.
#[derive(Clone, Debug)]
enum Shape {
    /// These nodes (a minority, holding the target) and the rest cannot
    /// hear each other.
    Isolate(BTreeSet<usize>),
    /// The target's frames to everyone are lost; it still hears them.
    Mute(usize),
    /// Everyone's frames to the target are lost; they still hear it.
    Deaf(usize),
    /// Frames from the first node to the second are lost.
    OneWay(usize, usize),
}

/// The nemesis and the cluster it torments.
pub struct NemesisRun {
    /// The cluster (handed back for healing).
    pub cluster: LocalCluster,
    /// The faults injected, in order.
    pub faults: Vec<Fault>,
    /// Things that went wrong that no fault explains (a node exiting on
    /// its own, a node hanging on SIGTERM): each fails the run.
    pub problems: Vec<String>,
    /// Nodes that are down because of a fault or a crash.
    pub down: BTreeSet<usize>,
    rng: SplitMix64,
    kinds: Vec<Nemesis>,
    origin: Instant,
    paused: BTreeSet<usize>,
    verbose: bool,
}

impl NemesisRun {
    /// A nemesis of `cluster` injecting `kinds`, drawing from `seed`,
    /// timing faults on the clock that starts at `origin`.
    pub fn new(
        cluster: LocalCluster,
        kinds: Vec<Nemesis>,
        seed: u64,
        origin: Instant,
        verbose: bool,
    ) -> NemesisRun {
        NemesisRun {
            cluster,
            faults: Vec::new(),
            problems: Vec::new(),
            down: BTreeSet::new(),
            rng: SplitMix64::new(seed),
            kinds,
            origin,
            paused: BTreeSet::new(),
            verbose,
        }
    }

    fn n(&self) -> usize {
        self.cluster.addrs().len()
    }

    fn now_us(&self) -> u64 {
        self.origin.elapsed().as_micros() as u64
    }

    /// Inject faults until `until`; every fault is undone by the time this
    /// returns (a node that crashed on its own may still be down).
    pub fn run(&mut self, until: Instant) {
        'rounds: loop {
            let mut round = self.kinds.clone();
            // Fisher-Yates with the seeded generator.
            for i in (1..round.len()).rev() {
                let j = self.rng.range_inclusive(0, i as u64) as usize;
                round.swap(i, j);
            }
            for kind in round {
                if Instant::now() >= until {
                    break 'rounds;
                }
                self.inject(kind, until);
                let gap = self.draw_ms(300, 1200);
                self.sleep_until((Instant::now() + gap).min(until));
            }
        }
    }

    /// Undo everything: clear every control file, resume paused nodes,
    /// start the dead ones.
    pub fn heal(&mut self) -> std::io::Result<()> {
        for id in 1..=self.n() {
            self.write_faults(id, "")?;
        }
        for id in std::mem::take(&mut self.paused) {
            self.cluster.signal(id, "CONT")?;
        }
        self.note_exits();
        for id in 1..=self.n() {
            if !self.cluster.is_running(id) {
                self.cluster.start(id)?;
            }
        }
        self.down.clear();
        Ok(())
    }

    fn draw_ms(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(self.rng.range_inclusive(lo, hi))
    }

    /// One fault of `kind`: inject, hold, undo.
    fn inject(&mut self, kind: Nemesis, until: Instant) {
        // Every draw happens whatever the cluster does, so that a seed
        // always means the same schedule.
        let aim_at_leader = self.rng.next_u64().is_multiple_of(2);
        let random_node = self.rng.range_inclusive(1, self.n() as u64) as usize;
        let hold = match kind {
            Nemesis::Kill => self.draw_ms(500, 3000),
            Nemesis::Pause => {
                let min = ELECTION_TIMEOUT_MAX.as_millis() as u64 + 200;
                self.draw_ms(min, min + 2300)
            }
            Nemesis::Partition | Nemesis::Disk => self.draw_ms(1500, 4000),
            Nemesis::Restart => Duration::ZERO,
        };
        let shape_draw = self.rng.next_u64();
        let other_draw = self.rng.next_u64();
        let delay_ms = DISK_DELAYS_MS[(self.rng.next_u64() % DISK_DELAYS_MS.len() as u64) as usize];

        self.note_exits();
        let leader = self.leader();
        let up: Vec<usize> = (1..=self.n())
            .filter(|id| self.cluster.is_running(*id) && !self.down.contains(id))
            .collect();
        let target = match leader {
            Some(l) if aim_at_leader => l,
            _ if up.contains(&random_node) => random_node,
            _ => match up.first() {
                Some(&id) => id,
                None => return,
            },
        };
        let is_leader = leader == Some(target);
        let role = if is_leader { " (leader)" } else { "" };
        let at_us = self.now_us();
        let hold_until = (Instant::now() + hold).min(until);
        let held = hold_until.saturating_duration_since(Instant::now());
        let result = match kind {
            Nemesis::Kill => {
                self.record(
                    kind,
                    at_us,
                    is_leader,
                    format!("SIGKILL node {target}{role}, down {:.1} s", secs(held)),
                );
                self.kill(target, hold_until)
            }
            Nemesis::Pause => {
                self.record(
                    kind,
                    at_us,
                    is_leader,
                    format!("SIGSTOP node {target}{role} for {:.1} s", secs(held)),
                );
                self.pause(target, hold_until)
            }
            Nemesis::Restart => {
                self.record(
                    kind,
                    at_us,
                    is_leader,
                    format!("SIGTERM node {target}{role} and start it again"),
                );
                self.restart(target)
            }
            Nemesis::Disk => {
                // Slower than the election timeout, a leader's syncs hold
                // its heartbeats behind the gate, and followers elect
                // another.
                let leader_out = is_leader && delay_ms > ELECTION_TIMEOUT_MAX.as_millis() as u64;
                self.record(
                    kind,
                    at_us,
                    leader_out,
                    format!(
                        "node {target}{role}: each fsync {delay_ms} ms slower, for {:.1} s",
                        secs(held)
                    ),
                );
                self.slow_disk(target, delay_ms, hold_until)
            }
            Nemesis::Partition => {
                let shape = self.shape(target, shape_draw, other_draw);
                let (what, leader_out) = describe(&shape, leader);
                self.record(
                    kind,
                    at_us,
                    leader_out,
                    format!("{what} for {:.1} s", secs(held)),
                );
                self.partition(&shape, hold_until)
            }
        };
        if let Err(e) = result {
            self.problems.push(format!(
                "the nemesis could not inject or undo a {kind:?} fault: {e}"
            ));
        }
    }

    fn record(&mut self, kind: Nemesis, at_us: u64, leader_out: bool, what: String) {
        if self.verbose {
            println!("{:>7.1} s  {:<9}  {what}", at_us as f64 / 1e6, kind.name());
        }
        self.faults.push(Fault {
            kind,
            at_us,
            effective_us: at_us,
            what,
            leader_out,
        });
    }

    /// The fault just recorded is in force from now on.
    fn in_force(&mut self) {
        let now = self.now_us();
        if let Some(f) = self.faults.last_mut() {
            f.effective_us = now;
        }
    }

    fn kill(&mut self, id: usize, until: Instant) -> std::io::Result<()> {
        self.cluster.kill(id); // Reaped: dead when it returns.
        self.in_force();
        self.down.insert(id);
        self.sleep_until(until);
        self.down.remove(&id);
        self.cluster.start(id)
    }

    fn pause(&mut self, id: usize, until: Instant) -> std::io::Result<()> {
        self.cluster.signal(id, "STOP")?;
        self.in_force();
        self.paused.insert(id);
        self.sleep_until(until);
        self.paused.remove(&id);
        self.cluster.signal(id, "CONT")
    }

    fn restart(&mut self, id: usize) -> std::io::Result<()> {
        match self.cluster.terminate(id, STOP_PATIENCE)? {
            Some(status) if status.success() => {}
            Some(status) => self.problems.push(format!(
                "node {id} exited with {status} on SIGTERM (a clean stop exits 0); see {}",
                self.cluster.log_path(id).display()
            )),
            None => self.problems.push(format!(
                "node {id} did not stop within {STOP_PATIENCE:?} of SIGTERM and was killed; see {}",
                self.cluster.log_path(id).display()
            )),
        }
        self.in_force();
        self.cluster.start(id)
    }

    fn slow_disk(&mut self, id: usize, delay_ms: u64, until: Instant) -> std::io::Result<()> {
        self.change_faults(&[(id, format!("disk-delay-ms {delay_ms}\n"))])?;
        self.in_force();
        self.sleep_until(until);
        self.change_faults(&[(id, String::new())])
    }

    fn partition(&mut self, shape: &Shape, until: Instant) -> std::io::Result<()> {
        let n = self.n();
        let all: BTreeSet<usize> = (1..=n).collect();
        let mut files: Vec<String> = vec![String::new(); n + 1];
        let list = |s: &BTreeSet<usize>| {
            let v: Vec<String> = s.iter().map(usize::to_string).collect();
            v.join(" ")
        };
        match shape {
            Shape::Isolate(side) => {
                let rest: BTreeSet<usize> = all.difference(side).copied().collect();
                for &a in side {
                    files[a] = format!("drop-to {0}\ndrop-from {0}\n", list(&rest));
                }
                for &b in &rest {
                    files[b] = format!("drop-to {0}\ndrop-from {0}\n", list(side));
                }
            }
            Shape::Mute(t) => {
                let others: BTreeSet<usize> = all.iter().copied().filter(|i| i != t).collect();
                files[*t] = format!("drop-to {}\n", list(&others));
            }
            Shape::Deaf(t) => {
                let others: BTreeSet<usize> = all.iter().copied().filter(|i| i != t).collect();
                files[*t] = format!("drop-from {}\n", list(&others));
            }
            // Cut at the receiver, so that both directives get exercised.
            Shape::OneWay(from, to) => files[*to] = format!("drop-from {from}\n"),
        }
        let cut: Vec<(usize, String)> = files
            .into_iter()
            .enumerate()
            .filter(|(_, text)| !text.is_empty())
            .collect();
        self.change_faults(&cut)?;
        self.in_force();
        self.sleep_until(until);
        let healed: Vec<(usize, String)> = cut.iter().map(|(id, _)| (*id, String::new())).collect();
        self.change_faults(&healed)
    }

    /// Give each node its new fault file (each must differ from its last)
    /// and wait until every one has logged applying it. One that does not
    /// within [`APPLY_PATIENCE`] is a problem: fault injection is broken
    /// there.
    fn change_faults(&mut self, files: &[(usize, String)]) -> std::io::Result<()> {
        let before: Vec<usize> = files.iter().map(|(id, _)| self.applied(*id)).collect();
        for (id, text) in files {
            self.write_faults(*id, text)?;
        }
        let deadline = Instant::now() + APPLY_PATIENCE;
        loop {
            let late: Vec<usize> = files
                .iter()
                .zip(&before)
                .filter(|((id, _), n)| self.applied(*id) <= **n)
                .map(|((id, _), _)| *id)
                .collect();
            if late.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                for id in late {
                    self.problems.push(format!(
                        "node {id} did not apply its fault file within {APPLY_PATIENCE:?}; see {}",
                        self.cluster.log_path(id).display()
                    ));
                }
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// How many fault-file changes node `id` has logged applying, over all
    /// its lives.
    fn applied(&self, id: usize) -> usize {
        std::fs::read_to_string(self.cluster.log_path(id)).map_or(0, |log| {
            log.lines()
                .filter(|l| l.contains(node_shell::FAULTS_APPLIED_LOG))
                .count()
        })
    }

    fn shape(&self, target: usize, shape_draw: u64, other_draw: u64) -> Shape {
        let n = self.n();
        let others: Vec<usize> = (1..=n).filter(|i| *i != target).collect();
        let other = others[(other_draw % others.len() as u64) as usize];
        match shape_draw % 4 {
            0 => {
                // A minority holding the target: with 5 nodes or more,
                // sometimes more than the target alone.
                let mut side: BTreeSet<usize> = [target].into_iter().collect();
                let extra = (other_draw >> 8) % ((n as u64 - 1) / 2);
                for k in 0..extra as usize {
                    side.insert(others[(other_draw as usize + k) % others.len()]);
                }
                Shape::Isolate(side)
            }
            1 => Shape::Mute(target),
            2 => Shape::Deaf(target),
            _ => {
                // Either direction between the target and one other node.
                if (other_draw >> 32).is_multiple_of(2) {
                    Shape::OneWay(target, other)
                } else {
                    Shape::OneWay(other, target)
                }
            }
        }
    }

    /// Write node `id`'s control file whole (a temporary file renamed over
    /// it, so the node never reads half of it).
    fn write_faults(&self, id: usize, text: &str) -> std::io::Result<()> {
        let dir = self.cluster.node_dir(id);
        let tmp = dir.join("faults.tmp");
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, dir.join(node_shell::FAULTS_FILE))
    }

    /// The node that leads in the highest term, among those that answer.
    fn leader(&self) -> Option<usize> {
        let addrs: Vec<SocketAddr> = self.cluster.addrs().to_vec();
        let mut admin = AdminClient::new(Vec::new(), 6824, core_kv::KV_PROTOCOL_VERSION);
        let mut best: Option<(u64, usize)> = None;
        for (i, addr) in addrs.iter().enumerate() {
            let id = i + 1;
            if !self.cluster.is_running(id) || self.paused.contains(&id) {
                continue;
            }
            if let Ok(s) = admin.status(&addr.to_string()) {
                if s.role == "leader" && best.is_none_or(|(t, _)| s.term.0 > t) {
                    best = Some((s.term.0, id));
                }
            }
        }
        best.map(|(_, id)| id)
    }

    /// Sleep until `until`, noting nodes that exit on their own meanwhile.
    fn sleep_until(&mut self, until: Instant) {
        loop {
            self.note_exits();
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            std::thread::sleep(left.min(Duration::from_millis(50)));
        }
    }

    /// A node that exits without being told to is a failure of the run
    /// (it is started again when the cluster is healed).
    pub fn note_exits(&mut self) {
        while let Some((id, status)) = self.cluster.exited() {
            self.down.insert(id);
            let log = self.cluster.log_path(id);
            let msg = format!(
                "node {id} exited on its own ({status}) at {:.1} s; see {}",
                self.now_us() as f64 / 1e6,
                log.display()
            );
            if self.verbose {
                println!("{msg}");
            }
            self.problems.push(msg);
        }
    }
}

/// What a partition does, and whether it takes `leader` out.
fn describe(shape: &Shape, leader: Option<usize>) -> (String, bool) {
    let is = |id: &usize| Some(*id) == leader;
    let name = |id: &usize| {
        let role = if is(id) { " (leader)" } else { "" };
        format!("node {id}{role}")
    };
    match shape {
        Shape::Isolate(side) => {
            let v: Vec<String> = side.iter().map(name).collect();
            (
                format!("isolate {} from the rest", v.join(" and ")),
                side.iter().any(is),
            )
        }
        Shape::Mute(t) => (
            format!("mute {}: its frames to all are lost", name(t)),
            is(t),
        ),
        Shape::Deaf(t) => (
            format!("deafen {}: all frames to it are lost", name(t)),
            is(t),
        ),
        Shape::OneWay(a, b) => (
            format!("one way: {}'s frames to {} are lost", name(a), name(b)),
            false,
        ),
    }
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}
