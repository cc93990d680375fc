//! Throughput of the linearizability checker on generated versioned-KV
//! histories: 10 000 operations over 10 keys from 15 clients, linearizable by
//! construction, at three degrees of overlap; plus the same history with one
//! corrupted read (the search must then exhaust a partition), and all 10 000
//! on a single key (no partitioning to help).
//!
//! Run with `cargo bench -p linearizability`. Criterion
//! reports time per check; the throughput line is in operations per second
//! (divide by 10 000 for checks per second).

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use linearizability::generate::{corrupt_one_read, RandomKvHistory};
use linearizability::models::VersionedKvModel;
use linearizability::{check, check_parallel, CheckOptions, Verdict};

const OPS: usize = 10_000;

fn history(max_widening: u64) -> RandomKvHistory {
    RandomKvHistory {
        seed: 42,
        ops: OPS,
        keys: 10,
        clients: 15,
        max_widening,
        maybe_percent: 5,
        no_reply_percent: 1,
    }
}

fn bench(c: &mut Criterion) {
    let options = CheckOptions::with_budget(Duration::from_secs(60));
    let mut group = c.benchmark_group("check_10k_ops_10_keys_15_clients");
    group.throughput(Throughput::Elements(OPS as u64));
    group.sample_size(20);
    for widening in [10, 40, 160] {
        let ops = history(widening).generate();
        assert_eq!(
            check(&VersionedKvModel, &ops, &options).verdict,
            Verdict::Ok
        );
        group.bench_with_input(BenchmarkId::new("ok/widening", widening), &ops, |b, ops| {
            b.iter(|| check(&VersionedKvModel, black_box(ops), &options).verdict)
        });
    }
    let ops = history(40).generate();
    group.bench_with_input(
        BenchmarkId::new("ok_2_threads/widening", 40),
        &ops,
        |b, ops| b.iter(|| check_parallel(&VersionedKvModel, black_box(ops), &options, 2).verdict),
    );
    let one_key = RandomKvHistory {
        keys: 1,
        ..history(40)
    }
    .generate();
    group.bench_with_input(
        BenchmarkId::new("ok_one_key/widening", 40),
        &one_key,
        |b, ops| b.iter(|| check(&VersionedKvModel, black_box(ops), &options).verdict),
    );
    let mut bad = history(40).generate();
    corrupt_one_read(&mut bad, 42);
    assert_eq!(
        check(&VersionedKvModel, &bad, &options).verdict,
        Verdict::Illegal
    );
    group.bench_with_input(BenchmarkId::new("illegal/widening", 40), &bad, |b, ops| {
        b.iter(|| check(&VersionedKvModel, black_box(ops), &options).verdict)
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
