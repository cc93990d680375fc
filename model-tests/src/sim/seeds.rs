//! Running a scenario over many seeds, and replaying one.
//!
//! `SIM_SEED=<n>` runs only seed `n`; `SIM_SEEDS=<count>` changes how many
//! seeds each test runs (for soak runs); `SIM_TRACE=1` records a readable
//! trace whose tail is printed on failure.

use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};

/// The seeds a test should run: `SIM_SEED` alone if set, else `SIM_SEEDS`
/// (or `default_count`) consecutive seeds starting at 1.
pub fn seeds(default_count: u64) -> Vec<u64> {
    if let Some(seed) = env_u64("SIM_SEED") {
        return vec![seed];
    }
    let count = env_u64("SIM_SEEDS").unwrap_or(default_count);
    (1..=count).collect()
}

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    match v.trim().parse() {
        Ok(n) => Some(n),
        Err(_) => panic!("{name}={v:?} is not a non-negative integer"),
    }
}

/// Run `scenario` for each seed; on the first failure print the seed and the
/// command that replays it, then fail.
pub fn run_seeds(test: &str, default_count: u64, scenario: impl Fn(u64)) {
    for seed in seeds(default_count) {
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| scenario(seed))) {
            eprintln!(
                "\n*** {test} failed with seed {seed}\n*** replay: SIM_SEED={seed} SIM_TRACE=1 cargo test --release -p model-tests --test {} -- --exact {test}\n",
                test_binary()
            );
            resume_unwind(panic);
        }
    }
}

/// The name of the running test target (its binary name without the hash).
fn test_binary() -> String {
    let exe = std::env::args().next().unwrap_or_default();
    let stem = std::path::Path::new(&exe)
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("")
        .to_string();
    match stem.rsplit_once('-') {
        Some((name, _hash)) => name.to_string(),
        None => stem,
    }
}
