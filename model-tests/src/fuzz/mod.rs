//! Decoder fuzzing (issue 12, part 7): every decoder of bytes from the
//! network or a disk, run over seeded random and mutated inputs, must
//! return without panicking and stay under an allocation bound per input.
//!
//! * [`targets::all`] lists the decoders, each with a corpus of valid
//!   encodings of real values.
//! * [`gen::Gen`] makes input `i` of a run from `(seed, target, i)` alone:
//!   random bytes, or corpus entries with bit flips, inserted and deleted
//!   bytes, splices, truncations and hostile length claims.
//! * [`run`] feeds a target its inputs, catching panics and measuring each
//!   input's peak allocation with [`alloc::CountingAlloc`] (installed by
//!   the binary that runs it: `sim fuzz`, or the fuzz test).
//!
//! A failing input is replayed with `sim fuzz --target NAME --seed S
//! --replay INDEX`, which rebuilds it and decodes it without catching the
//! panic, so the backtrace shows where it happened.

pub mod alloc;
pub mod gen;
pub mod targets;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};
use targets::{Target, BOUND};

/// An input that made a decoder panic.
#[derive(Clone, Debug)]
pub struct Failure {
    /// Its index in the run (for `--replay`).
    pub index: u64,
    /// The input.
    pub input: Vec<u8>,
    /// The panic message.
    pub message: String,
}

/// An input that allocated more than [`BOUND`] allows.
#[derive(Clone, Debug)]
pub struct OverBound {
    /// Its index in the run.
    pub index: u64,
    /// Its length.
    pub len: usize,
    /// Peak bytes allocated while decoding it.
    pub allocated: usize,
    /// What the bound allowed.
    pub limit: usize,
}

/// What one target's run found.
#[derive(Clone, Debug)]
pub struct TargetReport {
    /// The target's name.
    pub name: &'static str,
    /// Inputs decoded.
    pub inputs: u64,
    /// Inputs that panicked.
    pub panics: u64,
    /// The first of them.
    pub first_panic: Option<Failure>,
    /// The largest peak allocation of one input, and that input's length.
    pub max_alloc: (usize, usize),
    /// The largest ratio of peak allocation to [`BOUND`]'s limit, in
    /// percent: how close the decoder came to its bound.
    pub max_bound_percent: usize,
    /// Inputs over the bound.
    pub over_bound: u64,
    /// The first of them.
    pub first_over_bound: Option<OverBound>,
    /// Wall time of the run (generation included).
    pub elapsed: Duration,
}

impl TargetReport {
    /// No panic and no input over the bound.
    pub fn clean(&self) -> bool {
        self.panics == 0 && self.over_bound == 0
    }
}

/// Input `index` of `target` (its position in [`targets::all`]) for a run
/// seeded with `seed`.
pub fn input(target: usize, corpus: &[Vec<u8>], t: &Target, seed: u64, index: u64) -> Vec<u8> {
    gen::Gen::new(seed, target, index).input(corpus, t.fixup)
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(non-string panic payload)".to_string()
    }
}

/// Runs `inputs` inputs of target number `target` with `seed`. Panics are
/// caught and counted (the caller decides whether the panic hook prints
/// them). Allocation figures are 0 unless [`alloc::CountingAlloc`] is the
/// global allocator.
pub fn run(target: usize, seed: u64, inputs: u64) -> TargetReport {
    let all = targets::all();
    let t = &all[target];
    let corpus = (t.corpus)();
    let start = Instant::now();
    let mut report = TargetReport {
        name: t.name,
        inputs: 0,
        panics: 0,
        first_panic: None,
        max_alloc: (0, 0),
        max_bound_percent: 0,
        over_bound: 0,
        first_over_bound: None,
        elapsed: Duration::ZERO,
    };
    for index in 0..inputs {
        let data = input(target, &corpus, t, seed, index);
        let (outcome, allocated) =
            alloc::measure(|| catch_unwind(AssertUnwindSafe(|| (t.decode)(&data))));
        report.inputs += 1;
        if let Err(payload) = outcome {
            report.panics += 1;
            if report.first_panic.is_none() {
                report.first_panic = Some(Failure {
                    index,
                    input: data.clone(),
                    message: panic_message(&*payload),
                });
            }
            // The unwinding itself allocated; its figure says nothing
            // about the decoder.
            continue;
        }
        if allocated > report.max_alloc.0 {
            report.max_alloc = (allocated, data.len());
        }
        let limit = BOUND.limit(data.len());
        report.max_bound_percent = report.max_bound_percent.max(allocated * 100 / limit);
        if allocated > limit {
            report.over_bound += 1;
            if report.first_over_bound.is_none() {
                report.first_over_bound = Some(OverBound {
                    index,
                    len: data.len(),
                    allocated,
                    limit,
                });
            }
        }
    }
    report.elapsed = start.elapsed();
    report
}

/// Rebuilds input `index` of target number `target` and decodes it
/// without catching a panic; returns the input and its peak allocation.
pub fn replay(target: usize, seed: u64, index: u64) -> (Vec<u8>, usize) {
    let all = targets::all();
    let t = &all[target];
    let corpus = (t.corpus)();
    let data = input(target, &corpus, t, seed, index);
    let ((), allocated) = alloc::measure(|| (t.decode)(&data));
    (data, allocated)
}

/// Lowercase hex of `bytes`, for printing a failing input.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
