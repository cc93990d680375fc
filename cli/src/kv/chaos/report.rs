//! What a chaos run found, and the one-screen summary that says so: the
//! operations' fates, failover times, lost writes, and the verdict.

use super::{ChaosOptions, Fault, Nemesis};
use core_kv::{Op, Outcome};
use linearizability::kv::Recorded;
use linearizability::Verdict;
use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::time::Duration;

/// Everything a run found.
#[derive(Clone, Debug)]
pub struct ChaosReport {
    /// The options it ran with (seed, runtimes, kinds).
    pub opts: ChaosOptions,
    /// The faults injected, in order.
    pub faults: Vec<Fault>,
    /// Fault-file changes the nodes logged applying.
    pub applied_changes: usize,
    /// Operations with a definite answer (Put applied, Get answered).
    pub ok: usize,
    /// Operations that definitely took no effect (a Put refused at its
    /// version).
    pub failed: usize,
    /// Operations that may or may not have taken effect (no answer, or
    /// `ErrMaybe`).
    pub unknown: usize,
    /// Per fault that took the leader out: the time to the first write
    /// invoked after it and acknowledged (`None`: none was).
    pub failovers: Vec<Option<Duration>>,
    /// After healing: how long until a new write was acknowledged.
    pub progress: Result<Duration, String>,
    /// After healing: the leader's commit index every node reached.
    pub caught_up: Result<u64, String>,
    /// Acknowledged writes the final reads do not show.
    pub lost: Vec<String>,
    /// The linearizability verdict and the checker's summary.
    pub verdict: Verdict,
    /// The checker's summary (with the failure, if any).
    pub linearizability: String,
    /// With a non-linearizable history: the page that draws it.
    pub timeline: Option<std::path::PathBuf>,
    /// Things no fault explains (a node that exited on its own, ...).
    pub problems: Vec<String>,
}

impl ChaosReport {
    /// Sum up a run.
    pub fn new(
        opts: &ChaosOptions,
        history: &[Recorded],
        faults: Vec<Fault>,
        problems: Vec<String>,
        applied_changes: usize,
    ) -> ChaosReport {
        let (ok, failed, unknown) = fates(history);
        ChaosReport {
            opts: opts.clone(),
            failovers: failovers(history, &faults),
            faults,
            applied_changes,
            ok,
            failed,
            unknown,
            progress: Err("not checked".into()),
            caught_up: Err("not checked".into()),
            lost: lost_writes(history),
            verdict: Verdict::Unknown,
            linearizability: "not checked".into(),
            timeline: None,
            problems,
        }
    }

    /// Whether the run passed: linearizable, nothing lost, progress after
    /// healing, every node caught up, no unexplained trouble.
    pub fn passed(&self) -> bool {
        self.verdict == Verdict::Ok
            && self.lost.is_empty()
            && self.progress.is_ok()
            && self.caught_up.is_ok()
            && self.problems.is_empty()
    }

    /// Every fault, one line each, with the failover that followed it if
    /// it took the leader out: the run's log, to look a fault up by time.
    pub fn fault_log(&self) -> String {
        let mut failovers = self.failovers.iter();
        let mut out = String::new();
        for f in &self.faults {
            let after = if f.leader_out {
                match failovers.next() {
                    Some(Some(d)) => format!(
                        "  [in force after {:.2} s; next write {:.2} s later]",
                        f.effective_us.saturating_sub(f.at_us) as f64 / 1e6,
                        d.as_secs_f64()
                    ),
                    _ => "  [no write acknowledged after it]".to_string(),
                }
            } else {
                String::new()
            };
            out.push_str(&format!(
                "{:>8.1} s  {:<9}  {}{after}\n",
                f.at_us as f64 / 1e6,
                f.kind.name(),
                f.what
            ));
        }
        out
    }

    /// Faults injected of `kind`.
    pub fn count(&self, kind: Nemesis) -> usize {
        self.faults.iter().filter(|f| f.kind == kind).count()
    }
}

impl fmt::Display for ChaosReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = &self.opts;
        writeln!(f, "--- kv chaos summary ---")?;
        writeln!(f, "seed        {} (replay: {})", o.seed, o.replay_command())?;
        let runtimes: Vec<String> = (1..=o.nodes)
            .map(|id| format!("node {id} {}", o.runtime.of_node(id)))
            .collect();
        writeln!(
            f,
            "runtimes    {} ({})",
            o.runtime.name(),
            runtimes.join(", ")
        )?;
        let kinds: Vec<String> = Nemesis::ALL
            .iter()
            .filter(|k| o.nemeses.contains(k))
            .map(|k| format!("{} {}", k.name(), self.count(*k)))
            .collect();
        let leader_out = self.faults.iter().filter(|f| f.leader_out).count();
        writeln!(
            f,
            "faults      {} in {:.0} s: {} ({} took the leader out)",
            self.faults.len(),
            o.duration.as_secs_f64(),
            kinds.join(", "),
            leader_out
        )?;
        writeln!(
            f,
            "nodes       applied {} fault-file changes (their logs)",
            self.applied_changes
        )?;
        writeln!(
            f,
            "operations  {} ok, {} failed, {} unknown",
            self.ok, self.failed, self.unknown
        )?;
        let mut measured: Vec<Duration> = self.failovers.iter().flatten().copied().collect();
        measured.sort();
        let unmeasured = self.failovers.len() - measured.len();
        // Which fault the slowest failover followed, to look it up above.
        let slowest = self
            .faults
            .iter()
            .filter(|f| f.leader_out)
            .zip(&self.failovers)
            .max_by_key(|(_, d)| *d)
            .map_or(0.0, |(f, _)| f.at_us as f64 / 1e6);
        match (measured.get(measured.len() / 2), measured.last()) {
            (Some(median), Some(max)) => writeln!(
                f,
                "failover    median {:.2} s, max {:.2} s (the fault at {slowest:.1} s) over {} leader fault{}{}",
                median.as_secs_f64(),
                max.as_secs_f64(),
                measured.len(),
                if measured.len() == 1 { "" } else { "s" },
                if unmeasured > 0 {
                    format!(" ({unmeasured} without a write before the end)")
                } else {
                    String::new()
                }
            )?,
            _ => writeln!(f, "failover    no leader fault was measured")?,
        }
        match (&self.progress, &self.caught_up) {
            (Ok(d), Ok(commit)) => writeln!(
                f,
                "progress    a new write acknowledged {:.2} s after healing; every node applied through index {commit}",
                d.as_secs_f64()
            )?,
            (Ok(d), Err(e)) => writeln!(
                f,
                "progress    a new write acknowledged {:.2} s after healing; but {e}",
                d.as_secs_f64()
            )?,
            (Err(e), _) => writeln!(f, "progress    {e}")?,
        }
        if self.lost.is_empty() {
            writeln!(f, "lost writes none (every key read back after healing)")?;
        } else {
            writeln!(f, "lost writes {}", self.lost.len())?;
            for l in &self.lost {
                writeln!(f, "            {l}")?;
            }
        }
        let first = self.linearizability.lines().next().unwrap_or_default();
        writeln!(f, "history     {first}")?;
        if let Some(page) = &self.timeline {
            writeln!(f, "timeline    {}", page.display())?;
        }
        for p in &self.problems {
            writeln!(f, "problem     {p}")?;
        }
        if self.passed() {
            write!(f, "verdict     PASS")
        } else {
            write!(f, "verdict     FAIL")
        }
    }
}

/// Operations by fate: ok, failed (definitely no effect), unknown.
fn fates(history: &[Recorded]) -> (usize, usize, usize) {
    let (mut ok, mut failed, mut unknown) = (0, 0, 0);
    for r in history {
        match &r.outcome {
            Some(Outcome::Ok | Outcome::Value { .. } | Outcome::ErrNoKey) => ok += 1,
            Some(Outcome::ErrVersion) => failed += 1,
            Some(Outcome::ErrMaybe) | None => unknown += 1,
        }
    }
    (ok, failed, unknown)
}

/// For each fault that took the leader out, the time from when it was in
/// force to the acknowledgement of the first write invoked after that.
fn failovers(history: &[Recorded], faults: &[Fault]) -> Vec<Option<Duration>> {
    let mut acked: Vec<(u64, u64)> = history
        .iter()
        .filter(|r| matches!(r.op, Op::Put { .. }) && r.outcome == Some(Outcome::Ok))
        .filter_map(|r| r.ret.map(|ret| (r.call, ret)))
        .collect();
    acked.sort();
    // earliest[i]: the earliest return among writes invoked at acked[i] or later.
    let mut earliest = vec![u64::MAX; acked.len() + 1];
    for i in (0..acked.len()).rev() {
        earliest[i] = earliest[i + 1].min(acked[i].1);
    }
    faults
        .iter()
        .filter(|f| f.leader_out)
        .map(|f| {
            let i = acked.partition_point(|(call, _)| *call < f.effective_us);
            (earliest[i] != u64::MAX)
                .then(|| Duration::from_micros(earliest[i].saturating_sub(f.effective_us)))
        })
        .collect()
}

/// Acknowledged versioned Puts that the final reads (client 0, after
/// healing) contradict. A Put at version v that was acknowledged made the
/// key's version v + 1, and only that Put could, so the final read must
/// show at least v + 1, and exactly that Put's value if it shows v + 1.
/// The linearizability check covers this too; this names the write.
fn lost_writes(history: &[Recorded]) -> Vec<String> {
    let mut acked: BTreeMap<&str, BTreeMap<u64, &str>> = BTreeMap::new();
    for r in history.iter().filter(|r| r.outcome == Some(Outcome::Ok)) {
        if let Op::Put {
            key,
            value,
            version,
        } = &r.op
        {
            acked
                .entry(key)
                .or_default()
                .insert(version.0 + 1, value.as_str());
        }
    }
    let mut lost = Vec::new();
    let finals: Vec<&Recorded> = history.iter().filter(|r| r.client == 0).collect();
    for (key, versions) in &acked {
        let read = finals
            .iter()
            .find(|r| matches!(&r.op, Op::Get { key: k } if k == key));
        let (newest, value) = versions
            .last_key_value()
            .map(|(v, x)| (*v, *x))
            .expect("only keys with writes are listed");
        match read.and_then(|r| r.outcome.as_ref()) {
            None => lost.push(format!("key {key}: could not be read back after healing")),
            Some(Outcome::Value {
                value: got,
                version,
            }) => {
                if version.0 < newest {
                    lost.push(format!(
                        "key {key}: the write of {value:?} (version {newest}) was acknowledged, \
                         but the final read shows version {}",
                        version.0
                    ));
                } else if let Some(expected) = versions.get(&version.0) {
                    if got != expected {
                        lost.push(format!(
                            "key {key}: version {} was written as {expected:?} (acknowledged), \
                             but the final read shows {got:?}",
                            version.0
                        ));
                    }
                }
            }
            Some(other) => lost.push(format!(
                "key {key}: the write of {value:?} (version {newest}) was acknowledged, \
                 but the final read answered {other:?}"
            )),
        }
    }
    lost
}

/// Lines in the nodes' logs that say a node applied a changed fault file.
pub fn control_changes_in_logs(dir: &Path, nodes: usize) -> usize {
    (1..=nodes)
        .filter_map(|id| std::fs::read_to_string(dir.join(format!("node{id}.log"))).ok())
        .map(|log| {
            log.lines()
                .filter(|l| l.contains(node_shell::FAULTS_APPLIED_LOG))
                .count()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use core_kv::Version;

    fn put(client: u64, call: u64, ret: u64, key: &str, v: u64, out: Outcome) -> Recorded {
        Recorded {
            client,
            call,
            ret: Some(ret),
            op: Op::Put {
                key: key.into(),
                value: format!("w{v}"),
                version: Version(v),
            },
            outcome: Some(out),
        }
    }

    fn read_back(key: &str, value: &str, version: u64) -> Recorded {
        Recorded {
            client: 0,
            call: 1000,
            ret: Some(1001),
            op: Op::Get { key: key.into() },
            outcome: Some(Outcome::Value {
                value: value.into(),
                version: Version(version),
            }),
        }
    }

    #[test]
    fn a_final_read_behind_an_acknowledged_write_is_a_lost_write() {
        let mut h = vec![
            put(1, 0, 5, "k0", 0, Outcome::Ok),
            put(1, 6, 9, "k0", 1, Outcome::Ok),
            put(2, 6, 9, "k0", 1, Outcome::ErrVersion),
        ];
        h.push(read_back("k0", "w1", 2));
        assert!(lost_writes(&h).is_empty(), "{:?}", lost_writes(&h));
        h.pop();
        h.push(read_back("k0", "w0", 1));
        let lost = lost_writes(&h);
        assert_eq!(lost.len(), 1);
        assert!(lost[0].contains("version 2"), "{lost:?}");
        h.pop();
        h.push(read_back("k0", "other", 2));
        assert!(lost_writes(&h)[0].contains("\"other\""));
        h.pop();
        assert!(lost_writes(&h)[0].contains("could not be read back"));
    }

    #[test]
    fn failover_is_timed_to_the_first_write_invoked_after_the_fault() {
        let h = vec![
            put(1, 0, 120, "k0", 0, Outcome::Ok), // invoked before: ignored
            put(2, 110, 300, "k1", 0, Outcome::Ok),
            put(3, 150, 250, "k2", 0, Outcome::Ok),
            put(4, 160, 200, "k2", 1, Outcome::ErrVersion), // refused: ignored
        ];
        let fault = |at_us, leader_out| Fault {
            kind: Nemesis::Kill,
            at_us,
            effective_us: at_us,
            what: String::new(),
            leader_out,
        };
        let f = failovers(&h, &[fault(100, true), fault(105, false), fault(400, true)]);
        assert_eq!(f, vec![Some(Duration::from_micros(150)), None]);
        assert_eq!(fates(&h), (3, 1, 0));
    }
}
