//! `sim`: run the deterministic simulator over many seeds from the command
//! line, replay a failing seed, or print the readable trace of one.

use clap::{Parser, Subcommand};
use model_tests::sim::swarm::{run_swarm, SwarmOptions, SwarmReport};
use model_tests::sim::TraceMode;
use std::io::{IsTerminal, Write};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::process::ExitCode;
use std::time::Instant;

/// Deterministic simulation of the pure protocol cores.
///
/// Every seed picks its own cluster size (3, 5 or 7) and fault mix (loss,
/// duplication, delay, long reordering, partitions, crashes, crashes between
/// two actions of a step), runs a chaotic phase with every safety invariant
/// checked after every step, then heals the cluster and requires progress.
/// A failing seed prints the command that replays it.
#[derive(Parser)]
#[command(name = "sim", version)]
struct Cli {
    #[command(subcommand)]
    system: System,
}

#[derive(Subcommand)]
enum System {
    /// Simulate Raft clusters (election, replication, persistence, snapshots).
    Raft(RaftArgs),
    /// Simulate the replicated key/value service with many clients: exactly-once
    /// after every step, linearizability of every history.
    Kv(KvArgs),
    /// Simulate the sharded key/value service (classic or 2025, by seed)
    /// while groups join, leave and shards move: no shard served by two
    /// groups at any instant, appends exactly once across moves,
    /// linearizability of every history.
    Shard(ShardArgs),
    /// Fuzz every decoder of bytes from the network or a disk (frames,
    /// handshake, Raft messages, KV frames and snapshots, MapReduce
    /// messages, storage records, snapshot and identity files) with seeded
    /// random and mutated inputs: no panic, and a bounded allocation per
    /// input.
    Fuzz(FuzzArgs),
}

#[derive(Parser)]
struct FuzzArgs {
    /// Inputs per target.
    #[arg(long, default_value_t = 10_000_000)]
    inputs: u64,
    /// The run's seed; input i of a target depends on (seed, target, i) only.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Fuzz only this target (see the list printed by a run).
    #[arg(long)]
    target: Option<String>,
    /// Rebuild input INDEX of --target with --seed, print it and decode it
    /// without catching a panic (for the backtrace).
    #[arg(long, value_name = "INDEX", requires = "target")]
    replay: Option<u64>,
    /// Targets fuzzed at once, one thread each.
    #[arg(long, default_value_t = 1)]
    jobs: usize,
}

/// Counts allocations per thread so that `sim fuzz` can bound what one
/// input makes a decoder allocate. The simulator's other commands pay one
/// thread-local update per allocation for it, which their timings absorb.
#[global_allocator]
static ALLOC: model_tests::fuzz::alloc::CountingAlloc = model_tests::fuzz::alloc::CountingAlloc;

#[derive(Parser)]
struct ShardArgs {
    /// Number of seeds to run.
    #[arg(long, default_value_t = 100)]
    seeds: u64,
    /// First seed of the range.
    #[arg(long, default_value_t = 1)]
    start: u64,
    /// Run only this seed (overrides --seeds/--start).
    #[arg(long)]
    seed: Option<u64>,
    /// Virtual milliseconds of faults and reconfiguration per seed.
    #[arg(long, default_value_t = 5_000)]
    chaos_ms: u64,
    /// Stop at the first failing seed.
    #[arg(long)]
    fail_fast: bool,
}

#[derive(Parser)]
struct KvArgs {
    /// Number of seeds to run.
    #[arg(long, default_value_t = 100)]
    seeds: u64,
    /// First seed of the range.
    #[arg(long, default_value_t = 1)]
    start: u64,
    /// Run only this seed (overrides --seeds/--start).
    #[arg(long)]
    seed: Option<u64>,
    /// Virtual milliseconds of the chaotic phase of each seed.
    #[arg(long, default_value_t = 5_000)]
    chaos_ms: u64,
    /// Stop at the first failing seed.
    #[arg(long)]
    fail_fast: bool,
}

#[derive(Parser)]
struct RaftArgs {
    /// Number of seeds to run.
    #[arg(long, default_value_t = 100)]
    seeds: u64,
    /// First seed of the range.
    #[arg(long, default_value_t = 1)]
    start: u64,
    /// Run only this seed (overrides --seeds/--start).
    #[arg(long)]
    seed: Option<u64>,
    /// Virtual milliseconds of the chaotic phase of each seed.
    #[arg(long, default_value_t = 20_000)]
    chaos_ms: u64,
    /// Print the readable trace of every input and action (use with --seed).
    #[arg(long)]
    trace: bool,
    /// Run every seed twice and compare trace hashes.
    #[arg(long)]
    check_determinism: bool,
    /// Stop at the first failing seed.
    #[arg(long)]
    fail_fast: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.system {
        System::Raft(args) => raft(args),
        System::Kv(args) => kv(args),
        System::Shard(args) => shard(args),
        System::Fuzz(args) => fuzz(args),
    }
}

fn fuzz(args: FuzzArgs) -> ExitCode {
    use model_tests::fuzz::{self, targets};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;

    let all = targets::all();
    let chosen: Vec<usize> = match &args.target {
        Some(name) => match all.iter().position(|t| t.name == name) {
            Some(i) => vec![i],
            None => {
                let names: Vec<&str> = all.iter().map(|t| t.name).collect();
                eprintln!("no target {name:?}; targets: {}", names.join(", "));
                return ExitCode::FAILURE;
            }
        },
        None => (0..all.len()).collect(),
    };
    if let Some(index) = args.replay {
        let t = chosen[0];
        let data = fuzz::input(t, &(all[t].corpus)(), &all[t], args.seed, index);
        println!(
            "{} input {index} of seed {}: {} bytes",
            all[t].name,
            args.seed,
            data.len()
        );
        println!("{}", fuzz::hex(&data));
        let (_, allocated) = fuzz::replay(t, args.seed, index);
        let limit = targets::BOUND.limit(data.len());
        println!("decoded without panic; peak allocation {allocated} bytes (bound {limit})");
        return if allocated <= limit {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        };
    }
    if !fuzz::alloc::is_installed() {
        eprintln!("the counting allocator is not installed; allocation figures would be 0");
        return ExitCode::FAILURE;
    }
    let bound = targets::BOUND;
    println!(
        "fuzzing {} target(s), {} inputs each, seed {}; allocation bound per input: {} x length + {} bytes",
        chosen.len(),
        args.inputs,
        args.seed,
        bound.per_input_byte,
        bound.fixed
    );
    // Panics are counted and the first is printed with its replay command;
    // the default hook would print every one of possibly millions.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let next = AtomicUsize::new(0);
    let reports = Mutex::new(Vec::new());
    let started = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..args.jobs.max(1) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(&t) = chosen.get(i) else { break };
                let r = fuzz::run(t, args.seed, args.inputs);
                let secs = r.elapsed.as_secs_f64();
                let mut line = format!(
                    "{:<22} {:>10} inputs  {} panics  max alloc {} B (input of {} B; {}% of bound)  {} over bound  {:.1} s  {:.0} inputs/s",
                    r.name,
                    r.inputs,
                    r.panics,
                    r.max_alloc.0,
                    r.max_alloc.1,
                    r.max_bound_percent,
                    r.over_bound,
                    secs,
                    r.inputs as f64 / secs.max(1e-9)
                );
                if let Some(f) = &r.first_panic {
                    line += &format!(
                        "\n  first panic at input {}: {}\n  input ({} bytes): {}\n  replay: sim fuzz --target {} --seed {} --replay {}",
                        f.index, f.message, f.input.len(), fuzz::hex(&f.input), r.name, args.seed, f.index
                    );
                }
                if let Some(o) = &r.first_over_bound {
                    line += &format!(
                        "\n  first input over the bound: {} ({} bytes) allocated {} B, bound {} B\n  replay: sim fuzz --target {} --seed {} --replay {}",
                        o.index, o.len, o.allocated, o.limit, r.name, args.seed, o.index
                    );
                }
                println!("{line}");
                reports.lock().expect("no panic holds it").push(r);
            });
        }
    });
    std::panic::set_hook(default_hook);
    let reports = reports.into_inner().expect("no panic holds it");
    let failed: Vec<&str> = reports
        .iter()
        .filter(|r| !r.clean())
        .map(|r| r.name)
        .collect();
    let total: u64 = reports.iter().map(|r| r.inputs).sum();
    println!(
        "{total} inputs in {:.1} s: {}",
        started.elapsed().as_secs_f64(),
        if failed.is_empty() {
            "no panic, every input within its allocation bound".to_string()
        } else {
            format!("FAILED: {}", failed.join(", "))
        }
    );
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn shard(args: ShardArgs) -> ExitCode {
    use model_tests::shardsim::swarm::{run_shard_swarm, ShardSwarmOptions};
    let chaos_ms = args.chaos_ms;
    let totals = run_service_seeds(
        "shard",
        seed_range(args.seed, args.start, args.seeds),
        args.fail_fast,
        |seed| run_shard_swarm(seed, chaos_ms),
        |seed| ShardSwarmOptions::from_seed(seed).to_string(),
        |r, wall| {
            format!(
                "{} ops, configuration {} reached, {} shards on a new group, {} ms virtual checked every ms, {wall:.2} s wall",
                r.ops, r.configs, r.shards_moved, r.virtual_ms
            )
        },
        &format!("shard --chaos-ms {chaos_ms}"),
    );
    let ops: usize = totals.reports.iter().map(|r| r.ops).sum();
    let configs: u64 = totals.reports.iter().map(|r| r.configs).sum();
    let moved: usize = totals.reports.iter().map(|r| r.shards_moved).sum();
    let virtual_ms: u64 = totals.reports.iter().map(|r| r.virtual_ms).sum();
    totals.finish(&format!(
        "{ops} client operations, {configs} configurations, {moved} shards ended on a new group; {:.0} simulated s",
        virtual_ms as f64 / 1000.0
    ))
}

fn kv(args: KvArgs) -> ExitCode {
    use model_tests::kvsim::swarm::{run_kv_swarm, KvSwarmOptions};
    let chaos_ms = args.chaos_ms;
    let totals = run_service_seeds(
        "kv",
        seed_range(args.seed, args.start, args.seeds),
        args.fail_fast,
        |seed| run_kv_swarm(seed, chaos_ms),
        |seed| KvSwarmOptions::from_seed(seed).to_string(),
        |r, wall| {
            format!(
                "{} ops, {} OK puts, {} retries answered from session tables, {} ms virtual, {wall:.2} s wall; membership: {:?}, {} committed",
                r.ops, r.puts_ok, r.duplicates_avoided, r.virtual_ms, r.reconfig, r.memberships_committed
            )
        },
        &format!("kv --chaos-ms {chaos_ms}"),
    );
    let ops: usize = totals.reports.iter().map(|r| r.ops).sum();
    let avoided: u64 = totals.reports.iter().map(|r| r.duplicates_avoided).sum();
    let virtual_ms: u64 = totals.reports.iter().map(|r| r.virtual_ms).sum();
    let sum = |f: fn(&model_tests::kvsim::swarm::KvSwarmReport) -> u64| -> u64 {
        totals.reports.iter().map(f).sum()
    };
    let membership = format!(
        "{} membership changes appended, {} committed, {} nodes replaced, {} leadership transfers",
        sum(|r| r.reconfig.proposed),
        sum(|r| r.memberships_committed),
        sum(|r| r.reconfig.replaced),
        sum(|r| r.reconfig.transfers)
    );
    totals.finish(&format!(
        "{ops} client operations, {avoided} retries answered exactly once from session tables, {membership}; {:.0} simulated s",
        virtual_ms as f64 / 1000.0
    ))
}

/// `--seed` alone, else `seeds` seeds from `start`.
fn seed_range(seed: Option<u64>, start: u64, seeds: u64) -> Vec<u64> {
    match seed {
        Some(s) => vec![s],
        None => (start..start.saturating_add(seeds)).collect(),
    }
}

/// What a run of service swarm seeds ended with.
struct Totals<R> {
    system: &'static str,
    reports: Vec<R>,
    failed: Vec<u64>,
    unknown: Vec<u64>,
    started: Instant,
}

impl<R> Totals<R> {
    /// Print the summary line (`details` after the counts) and the exit code.
    fn finish(self, details: &str) -> ExitCode {
        let wall = self.started.elapsed().as_secs_f64();
        println!(
            "{}: {} passed, {} failed, {} unknown; {details} in {wall:.1} wall s",
            self.system,
            self.reports.len(),
            self.failed.len(),
            self.unknown.len()
        );
        if self.failed.is_empty() && self.unknown.is_empty() {
            ExitCode::SUCCESS
        } else {
            println!(
                "failing seeds: {:?}; undecided seeds: {:?}",
                self.failed, self.unknown
            );
            ExitCode::FAILURE
        }
    }
}

/// Run a service swarm over `seeds`: a failing seed prints its options,
/// the panic and the replay command (`sim <replay> --seed <n>`); an
/// undecided linearizability check counts apart. With a single seed, its
/// report is printed.
fn run_service_seeds<R>(
    system: &'static str,
    seeds: Vec<u64>,
    fail_fast: bool,
    run: impl Fn(u64) -> R,
    options: impl Fn(u64) -> String,
    report: impl Fn(&R, f64) -> String,
    replay: &str,
) -> Totals<R> {
    std::panic::set_hook(Box::new(|_| {}));
    let interactive = std::io::stderr().is_terminal();
    let mut totals = Totals {
        system,
        reports: Vec::new(),
        failed: Vec::new(),
        unknown: Vec::new(),
        started: Instant::now(),
    };
    let single = seeds.len() == 1;
    for (k, &seed) in seeds.iter().enumerate() {
        let t = Instant::now();
        match catch_unwind(AssertUnwindSafe(|| run(seed))) {
            Ok(r) => {
                if single {
                    let wall = t.elapsed().as_secs_f64();
                    println!("seed {seed}: ok ({}); {}", options(seed), report(&r, wall));
                }
                totals.reports.push(r);
            }
            Err(panic) => {
                let message = panic_message(panic);
                let is_unknown = message.contains("linearizability unknown");
                println!(
                    "seed {seed}: {} ({})",
                    if is_unknown { "UNKNOWN" } else { "FAILED" },
                    options(seed)
                );
                println!("{message}");
                println!(
                    "replay: cargo run --release -p model-tests --bin sim -- {replay} --seed {seed}\n"
                );
                if is_unknown {
                    totals.unknown.push(seed);
                } else {
                    totals.failed.push(seed);
                }
                if fail_fast {
                    break;
                }
            }
        }
        if interactive {
            eprint!(
                "\r{} / {} seeds, {} failed, {} unknown",
                k + 1,
                seeds.len(),
                totals.failed.len(),
                totals.unknown.len()
            );
            let _ = std::io::stderr().flush();
        }
    }
    if interactive {
        eprintln!();
    }
    totals
}

fn raft(args: RaftArgs) -> ExitCode {
    let seeds: Vec<u64> = match args.seed {
        Some(s) => vec![s],
        None => (args.start..args.start.saturating_add(args.seeds)).collect(),
    };
    // Untraced runs are about ten times faster; a failing seed is re-run
    // with the trace tail on to report what led to the failure.
    let trace = if args.trace {
        TraceMode::Print
    } else {
        TraceMode::Off
    };
    // Panics are reported per seed below; keep the default hook quiet.
    std::panic::set_hook(Box::new(|_| {}));
    let interactive = std::io::stderr().is_terminal();
    let started = Instant::now();
    let (mut passed, mut failed) = (0u64, Vec::new());
    let (mut virtual_ms, mut steps) = (0u64, 0u64);
    let mut reconfig = ReconfigTotals::default();
    for (k, &seed) in seeds.iter().enumerate() {
        let outcome = run_one(seed, args.chaos_ms, trace, args.check_determinism);
        match outcome {
            Ok(report) => {
                passed += 1;
                // With --check-determinism every seed ran twice.
                let runs = if args.check_determinism { 2 } else { 1 };
                virtual_ms += runs * report.virtual_ms;
                steps += runs * report.steps;
                reconfig.add(&report);
                if args.seed.is_some() {
                    println!(
                        "seed {seed}: ok; {} committed, {} leader terms, {} steps, {} ms virtual, recovered in {} ms; membership: {:?}, {} committed",
                        report.committed, report.leader_terms, report.steps, report.virtual_ms, report.recovery_ms, report.reconfig, report.memberships_committed
                    );
                }
            }
            Err(message) => {
                let message = if trace == TraceMode::Off {
                    run_one(seed, args.chaos_ms, TraceMode::Tail, false)
                        .err()
                        .unwrap_or(message)
                } else {
                    message
                };
                println!("seed {seed}: FAILED ({})", SwarmOptions::from_seed(seed));
                println!("{message}");
                println!(
                    "replay: cargo run --release -p model-tests --bin sim -- raft --seed {seed} --chaos-ms {} --trace\n",
                    args.chaos_ms
                );
                failed.push(seed);
                if args.fail_fast {
                    break;
                }
            }
        }
        if interactive && (k + 1) % 10 == 0 {
            eprint!(
                "\r{} / {} seeds, {} failed",
                k + 1,
                seeds.len(),
                failed.len()
            );
            let _ = std::io::stderr().flush();
        }
    }
    if interactive {
        eprintln!();
    }
    let wall = started.elapsed().as_secs_f64();
    let sim_s = virtual_ms as f64 / 1000.0;
    println!(
        "raft: {passed} passed, {} failed; {sim_s:.0} simulated s in {wall:.1} wall s ({:.0} simulated s per wall s, {:.2} M steps/s)",
        failed.len(),
        sim_s / wall.max(1e-9),
        steps as f64 / wall.max(1e-9) / 1e6
    );
    println!("raft: {reconfig}");
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        println!("failing seeds: {failed:?}");
        ExitCode::FAILURE
    }
}

/// The operator's work summed over the passing seeds of a Raft run.
#[derive(Default)]
struct ReconfigTotals {
    seeds: u64,
    proposed: u64,
    committed: u64,
    refused: u64,
    transfers: u64,
    replaced: u64,
    leaders_removed: u64,
}

impl ReconfigTotals {
    fn add(&mut self, r: &SwarmReport) {
        self.seeds += u64::from(r.reconfig.proposed > 0);
        self.proposed += r.reconfig.proposed;
        self.committed += r.memberships_committed;
        self.refused += r.reconfig.refused;
        self.transfers += r.reconfig.transfers;
        self.replaced += r.reconfig.replaced;
        self.leaders_removed += r.reconfig.leaders_removed;
    }
}

impl std::fmt::Display for ReconfigTotals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "membership changes in {} seeds: {} appended, {} committed, {} refused and retried; {} leaders removed themselves, {} nodes replaced, {} leadership transfers",
            self.seeds,
            self.proposed,
            self.committed,
            self.refused,
            self.leaders_removed,
            self.replaced,
            self.transfers
        )
    }
}

/// Run one seed (twice with the determinism check), turning a panic into
/// its message.
fn run_one(seed: u64, chaos_ms: u64, trace: TraceMode, twice: bool) -> Result<SwarmReport, String> {
    let run = || catch_unwind(AssertUnwindSafe(|| run_swarm(seed, chaos_ms, trace)));
    let first = run().map_err(panic_message)?;
    if twice {
        let second = run().map_err(panic_message)?;
        if first != second {
            return Err(format!(
                "non-deterministic: two runs of seed {seed} differ:\n  {first:?}\n  {second:?}"
            ));
        }
    }
    Ok(first)
}

fn panic_message(panic: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else {
        "panic with a non-text payload".to_string()
    }
}
