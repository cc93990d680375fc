//! `kv bench`: a closed-loop load generator. Each client runs one operation
//! at a time (reads with probability `read_ratio`, else unconditional
//! writes of `value_size` bytes) against a running cluster; latencies go to
//! an HDR histogram.

use core_kv::{Op, Outcome};
use driver_tokio::kv::KvClient;
use hdrhistogram::Histogram;
use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Load to generate.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    /// The cluster's addresses, in id order.
    pub cluster: Vec<SocketAddr>,
    /// Cluster id.
    pub cluster_id: u64,
    /// Concurrent clients.
    pub clients: usize,
    /// How long to run.
    pub duration: Duration,
    /// Bytes per written value.
    pub value_size: usize,
    /// Fraction of operations that are reads (0.0 to 1.0).
    pub read_ratio: f64,
    /// Distinct keys.
    pub keys: u64,
    /// Seed of the clients' key sequences. Give each run its own (the
    /// `kv bench` command takes the clock's), or consecutive runs write
    /// the same keys in the same order.
    pub seed: u64,
}

/// What the run measured.
pub struct BenchReport {
    /// Operations completed.
    pub ops: u64,
    /// Operations that failed (no answer within the client's deadline).
    pub errors: u64,
    /// Wall time.
    pub elapsed: Duration,
    /// Latency in microseconds.
    pub latency_us: Histogram<u64>,
}

impl BenchReport {
    /// Completed operations per second.
    pub fn ops_per_sec(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64()
    }
}

/// Run the load; prints a progress line each second.
pub async fn run_bench(opts: &BenchOptions) -> BenchReport {
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + opts.duration;
    let mut tasks = Vec::new();
    for c in 0..opts.clients {
        let opts = opts.clone();
        let done = done.clone();
        tasks.push(tokio::spawn(async move {
            client(c as u64, opts, deadline, done).await
        }));
    }
    let interactive = std::io::stderr().is_terminal();
    let mut last = 0;
    while Instant::now() < deadline {
        tokio::time::sleep(
            Duration::from_secs(1).min(deadline.saturating_duration_since(Instant::now())),
        )
        .await;
        let now = done.load(Ordering::Relaxed);
        let line = format!(
            "{:>5.1} s: {} ops, {} ops/s",
            started.elapsed().as_secs_f64(),
            now,
            now - last
        );
        last = now;
        if interactive {
            eprint!("\r{line}   ");
            let _ = std::io::stderr().flush();
        } else {
            eprintln!("{line}");
        }
    }
    if interactive {
        eprintln!();
    }
    let mut latency_us = Histogram::<u64>::new(3).expect("3 significant digits is valid");
    let (mut ops, mut errors) = (0, 0);
    for t in tasks {
        if let Ok((h, o, e)) = t.await {
            let _ = latency_us.add(&h);
            ops += o;
            errors += e;
        }
    }
    BenchReport {
        ops,
        errors,
        elapsed: started.elapsed(),
        latency_us,
    }
}

async fn client(
    c: u64,
    opts: BenchOptions,
    deadline: Instant,
    done: Arc<AtomicU64>,
) -> (Histogram<u64>, u64, u64) {
    let mut h = Histogram::<u64>::new(3).expect("3 significant digits is valid");
    let (mut ops, mut errors) = (0u64, 0u64);
    let Ok(mut kv) = KvClient::for_cluster(opts.cluster.clone(), opts.cluster_id) else {
        return (h, 0, 0);
    };
    // A small per-client generator: the workload need not be random-grade.
    let mut x = (0x9E37_79B9_7F4A_7C15u64 ^ opts.seed)
        .wrapping_add((c + 1).wrapping_mul(0xD1B5_4A32_D192_ED03))
        | 1;
    let value = "v".repeat(opts.value_size);
    let read_per_mille = (opts.read_ratio.clamp(0.0, 1.0) * 1000.0) as u64;
    while Instant::now() < deadline {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let key = format!("bench-{}", x % opts.keys.max(1));
        let op = if (x >> 32) % 1000 < read_per_mille {
            Op::Get { key }
        } else {
            Op::Set {
                key,
                value: value.clone(),
            }
        };
        let t = Instant::now();
        let left = deadline.saturating_duration_since(t) + Duration::from_secs(10);
        match kv.run(op, left).await {
            Ok(Outcome::Ok | Outcome::Value { .. } | Outcome::ErrNoKey) => {
                let _ = h.record(t.elapsed().as_micros() as u64);
                ops += 1;
                done.fetch_add(1, Ordering::Relaxed);
            }
            _ => errors += 1,
        }
    }
    (h, ops, errors)
}
