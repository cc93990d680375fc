//! Checking a whole history: partition it, search each partition within a
//! time budget, and combine the verdicts.
//!
//! Partitions are searched smallest first, so the first one found illegal is
//! the smallest failing one and the report stays short. Without a timeout the
//! outcome is fully deterministic, also with several threads: a partition is
//! only abandoned because a *smaller* one (earlier in that order) failed.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::model::{Model, Operation, Partition};
use super::render::Failure;
use super::search::{search, Limits, SearchResult};

/// Limits on a check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckOptions {
    /// Wall-clock budget for the whole check. Linearizability checking is
    /// NP-hard, so some histories cannot be decided in reasonable time; when
    /// the budget runs out the verdict is [`Verdict::Unknown`]. The 6.5840
    /// tests use 1 s (10 s for `TestPutConcurrentReliable`).
    pub budget: Duration,
    /// An optional cap on search steps per partition. Unlike `budget` it does
    /// not depend on machine speed, so a simulator can get the same verdict,
    /// `Unknown` included, on every machine.
    pub max_steps_per_partition: Option<u64>,
}

impl Default for CheckOptions {
    /// One second and no step cap, as the 6.5840 tests.
    fn default() -> Self {
        CheckOptions {
            budget: Duration::from_secs(1),
            max_steps_per_partition: None,
        }
    }
}

impl CheckOptions {
    /// Options with the given wall-clock budget and no step cap.
    pub fn with_budget(budget: Duration) -> Self {
        CheckOptions {
            budget,
            max_steps_per_partition: None,
        }
    }
}

/// The three possible answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// Every partition is linearizable.
    Ok,
    /// Some partition is not linearizable; see [`CheckOutcome::failure`].
    Illegal,
    /// No partition was found illegal, but at least one could not be decided
    /// within the budget. Not a pass: report it (6.5840 prints "timed out,
    /// assuming history is ok").
    Unknown,
}

/// Everything a check found out.
#[derive(Clone, Debug)]
pub struct CheckOutcome {
    /// The verdict for the whole history.
    pub verdict: Verdict,
    /// How many partitions the model split the history into.
    pub partitions: usize,
    /// Labels of the partitions left undecided (budget spent), in the order
    /// they were scheduled. Non-empty whenever the verdict is `Unknown`.
    pub undecided: Vec<String>,
    /// For `Illegal`, the smallest failing partition, ready to print.
    pub failure: Option<Failure>,
}

impl CheckOutcome {
    /// Whether the verdict is [`Verdict::Ok`].
    pub fn is_ok(&self) -> bool {
        self.verdict == Verdict::Ok
    }
}

impl fmt::Display for CheckOutcome {
    /// A summary line, followed for `Illegal` by the failure report.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.verdict {
            Verdict::Ok => write!(
                f,
                "history is linearizable ({} partitions)",
                self.partitions
            ),
            Verdict::Unknown => write!(
                f,
                "linearizability unknown: {} of {} partitions undecided within the budget ({})",
                self.undecided.len(),
                self.partitions,
                self.undecided.join(", ")
            ),
            Verdict::Illegal => match &self.failure {
                Some(failure) => write!(f, "{failure}"),
                None => write!(f, "history is not linearizable"),
            },
        }
    }
}

/// Checks `history` against `model` on the calling thread.
///
/// # Panics
///
/// If an operation returns before it is called, or if the model's
/// partitioning names an operation index outside the history.
pub fn check<M: Model>(
    model: &M,
    history: &[Operation<M::Input, M::Output>],
    options: &CheckOptions,
) -> CheckOutcome {
    let deadline = Instant::now() + options.budget;
    let partitions = scheduled_partitions(model, history);
    let mut slots: Vec<Slot> = (0..partitions.len()).map(|_| Slot::NotRun).collect();
    for (i, partition) in partitions.iter().enumerate() {
        let mut should_stop = || Instant::now() >= deadline;
        if should_stop() {
            break;
        }
        slots[i] = run(model, history, partition, options, &mut should_stop);
        if matches!(slots[i], Slot::Illegal(_)) {
            break;
        }
    }
    assemble(model, history, &partitions, slots)
}

/// Checks `history` against `model` with `threads` worker threads (at least
/// one). Same answer as [`check`] unless the budget runs out.
///
/// # Panics
///
/// As [`check`].
pub fn check_parallel<M>(
    model: &M,
    history: &[Operation<M::Input, M::Output>],
    options: &CheckOptions,
    threads: usize,
) -> CheckOutcome
where
    M: Model + Sync,
    M::Input: Sync,
    M::Output: Sync,
{
    let deadline = Instant::now() + options.budget;
    let partitions = scheduled_partitions(model, history);
    let next = AtomicUsize::new(0);
    // The schedule position of the earliest partition found illegal so far.
    let first_illegal = AtomicUsize::new(usize::MAX);
    let slots = Mutex::new(
        (0..partitions.len())
            .map(|_| Slot::NotRun)
            .collect::<Vec<_>>(),
    );
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= partitions.len() {
                    break;
                }
                let mut should_stop =
                    || first_illegal.load(Ordering::Relaxed) < i || Instant::now() >= deadline;
                if should_stop() {
                    continue;
                }
                let slot = run(model, history, &partitions[i], options, &mut should_stop);
                if matches!(slot, Slot::Illegal(_)) {
                    first_illegal.fetch_min(i, Ordering::Relaxed);
                }
                slots.lock().unwrap_or_else(|e| e.into_inner())[i] = slot;
            });
        }
    });
    let slots = slots.into_inner().unwrap_or_else(|e| e.into_inner());
    assemble(model, history, &partitions, slots)
}

/// What became of one partition.
enum Slot {
    /// Not searched (budget spent, or a smaller partition failed first).
    NotRun,
    /// Linearizable.
    Ok,
    /// Search stopped before a verdict.
    Stopped,
    /// Not linearizable.
    Illegal(super::search::Deepest),
}

/// The model's partitions, smallest first (ties in the model's order).
fn scheduled_partitions<M: Model>(
    model: &M,
    history: &[Operation<M::Input, M::Output>],
) -> Vec<Partition> {
    let mut partitions = model.partition(history);
    partitions.sort_by_key(|p| p.ops.len());
    partitions
}

/// Searches one partition.
fn run<M: Model>(
    model: &M,
    history: &[Operation<M::Input, M::Output>],
    partition: &Partition,
    options: &CheckOptions,
    should_stop: &mut dyn FnMut() -> bool,
) -> Slot {
    let ops: Vec<&Operation<M::Input, M::Output>> =
        partition.ops.iter().map(|&i| &history[i]).collect();
    let limits = Limits {
        max_steps: options.max_steps_per_partition,
        should_stop,
    };
    match search(model, &ops, limits) {
        SearchResult::Ok(_) => Slot::Ok,
        SearchResult::Stopped => Slot::Stopped,
        SearchResult::Illegal(deepest) => Slot::Illegal(deepest),
    }
}

/// Combines per-partition results: the earliest illegal partition wins;
/// otherwise any undecided partition before it makes the verdict `Unknown`.
fn assemble<M: Model>(
    model: &M,
    history: &[Operation<M::Input, M::Output>],
    partitions: &[Partition],
    mut slots: Vec<Slot>,
) -> CheckOutcome {
    let first_illegal = slots.iter().position(|s| matches!(s, Slot::Illegal(_)));
    let considered = first_illegal.unwrap_or(slots.len());
    let undecided: Vec<String> = slots[..considered]
        .iter()
        .zip(partitions)
        .filter(|(slot, _)| !matches!(slot, Slot::Ok))
        .map(|(_, p)| p.label.clone())
        .collect();
    let failure = first_illegal.map(|i| {
        let Slot::Illegal(deepest) = std::mem::replace(&mut slots[i], Slot::NotRun) else {
            unreachable!("position() found an Illegal slot here");
        };
        Failure::new(model, history, &partitions[i], &deepest)
    });
    let verdict = if failure.is_some() {
        Verdict::Illegal
    } else if undecided.is_empty() {
        Verdict::Ok
    } else {
        Verdict::Unknown
    };
    CheckOutcome {
        verdict,
        partitions: partitions.len(),
        undecided,
        failure,
    }
}
