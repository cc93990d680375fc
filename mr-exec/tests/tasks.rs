//! Task execution over real files: the external sort (spilled runs plus
//! k-way merge) must give exactly the in-memory result.

use core_mr::apps::builtin;
use core_mr::{App, MapTask, MapTaskId, ReduceTask, ReduceTaskId};
use mr_exec::merge::Merger;
use mr_exec::records::write_record;
use mr_exec::sorter::Sorter;
use mr_exec::task::{run_map, run_reduce, run_sequential, TaskOptions};
use std::fs;
use std::path::{Path, PathBuf};

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("mr-threads-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(&d).unwrap();
    d
}

fn texts() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/gutenberg");
    let mut v: Vec<String> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("test data missing at {}: {e}", dir.display()))
        .map(|e| e.unwrap().path().to_string_lossy().into_owned())
        .filter(|p| p.ends_with(".txt"))
        .collect();
    v.sort();
    assert_eq!(v.len(), 8);
    v
}

fn sorted_out(dir: &Path) -> Vec<String> {
    let mut lines: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("mr-out-")
        })
        .flat_map(|p| {
            fs::read_to_string(p)
                .unwrap()
                .lines()
                .map(String::from)
                .collect::<Vec<_>>()
        })
        .collect();
    lines.sort();
    lines
}

fn opts(dir: &Path, budget: usize) -> TaskOptions {
    TaskOptions {
        work_dir: dir.to_path_buf(),
        sort_buffer_bytes: budget,
    }
}

#[test]
fn sequential_with_spills_equals_in_memory() {
    for app_name in ["wc", "indexer"] {
        let app = builtin(app_name).unwrap();
        let big = scratch(&format!("seq-big-{app_name}"));
        let small = scratch(&format!("seq-small-{app_name}"));
        run_sequential(app.as_ref(), &texts(), &opts(&big, 1 << 30)).unwrap();
        // 64 KiB forces hundreds of spilled runs.
        run_sequential(app.as_ref(), &texts(), &opts(&small, 64 * 1024)).unwrap();
        let a = fs::read(big.join("mr-out-0")).unwrap();
        let b = fs::read(small.join("mr-out-0")).unwrap();
        assert!(a.len() > 100_000);
        assert!(a == b, "{app_name}: spilled result differs");
        // No spill files are left behind.
        assert_eq!(fs::read_dir(&small).unwrap().count(), 1);
        fs::remove_dir_all(big).unwrap();
        fs::remove_dir_all(small).unwrap();
    }
}

#[test]
fn map_and_reduce_tasks_with_spills_equal_sequential() {
    let app = builtin("wc").unwrap();
    let files = texts();
    let seq = scratch("tasks-seq");
    run_sequential(app.as_ref(), &files, &opts(&seq, 1 << 30)).unwrap();
    let want = sorted_out(&seq);
    let dir = scratch("tasks-dist");
    let o = opts(&dir, 32 * 1024);
    for (i, f) in files.iter().enumerate() {
        let t = MapTask {
            id: MapTaskId(i as u32),
            file: f.clone(),
            n_reduce: 4,
        };
        run_map(app.as_ref(), &t, &o).unwrap();
        // Running a task twice (a re-issued task) is harmless.
        if i == 0 {
            run_map(app.as_ref(), &t, &o).unwrap();
        }
    }
    for r in 0..4 {
        let t = ReduceTask {
            id: ReduceTaskId(r),
            n_map: files.len() as u32,
        };
        run_reduce(app.as_ref(), &t, &o).unwrap();
    }
    assert_eq!(sorted_out(&dir), want);
    // Only final files remain: 8 x 4 intermediate + 4 outputs.
    assert_eq!(fs::read_dir(&dir).unwrap().count(), 8 * 4 + 4);
    fs::remove_dir_all(seq).unwrap();
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn reduce_reports_a_missing_intermediate_file() {
    let app = builtin("wc").unwrap();
    let dir = scratch("missing");
    let t = ReduceTask {
        id: ReduceTaskId(0),
        n_map: 1,
    };
    let e = run_reduce(app.as_ref(), &t, &opts(&dir, 1 << 20)).unwrap_err();
    assert!(e.to_string().contains("mr-0-0"), "{e}");
    assert!(!dir.join("mr-out-0").exists(), "no partial output");
    fs::remove_dir_all(dir).unwrap();
}

struct Identity;
impl App for Identity {
    fn map(&self, _f: &str, _c: &str, _e: &mut dyn FnMut(&str, &str)) {}
    fn reduce(&self, _k: &str, values: &mut dyn Iterator<Item = String>) -> String {
        values.collect::<Vec<_>>().join(",")
    }
}

/// Seeded: random sorted runs merge into one sorted stream holding every
/// record, with each key's values grouped exactly once.
#[test]
fn merge_of_random_runs() {
    let seed: u64 = std::env::var("MR_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(7);
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407)
        | 1;
    let mut rnd = |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    let dir = scratch("merge");
    let mut all = Vec::new();
    let mut paths = Vec::new();
    for r in 0..(2 + rnd(8)) {
        let mut recs: Vec<(String, String)> = (0..rnd(500))
            .map(|i| (format!("k{:03}", rnd(200)), format!("r{r}v{i}")))
            .collect();
        recs.sort_by(|a, b| a.0.cmp(&b.0));
        let p = dir.join(format!("run-{r}"));
        let mut buf = Vec::new();
        for (k, v) in &recs {
            write_record(&mut buf, k, v).unwrap();
        }
        fs::write(&p, buf).unwrap();
        paths.push(p);
        all.extend(recs);
    }
    let mut groups = Vec::new();
    Merger::open(&paths)
        .unwrap()
        .for_each_group(|k, vs| {
            groups.push((k.to_string(), vs.collect::<Vec<_>>()));
            Ok(())
        })
        .unwrap();
    let keys: Vec<&String> = groups.iter().map(|(k, _)| k).collect();
    let mut sorted_keys = keys.clone();
    sorted_keys.sort();
    sorted_keys.dedup();
    assert_eq!(
        keys, sorted_keys,
        "seed {seed}: keys not sorted or not grouped"
    );
    let mut flat: Vec<(String, String)> = groups
        .into_iter()
        .flat_map(|(k, vs)| vs.into_iter().map(move |v| (k.clone(), v)))
        .collect();
    flat.sort();
    all.sort();
    assert_eq!(flat, all, "seed {seed}: records lost or duplicated");
    // A spilling sorter over the same pairs agrees with a plain sort.
    let mut s = Sorter::new(&Identity, &dir, 1, 1024);
    for (k, v) in &all {
        s.add(0, k, v).unwrap();
    }
    assert!(s.spilled_runs() > 1, "seed {seed}: expected spills");
    s.finish(|_| "sorted".into()).unwrap();
    let mut merged = Vec::new();
    let mut m = Merger::open(&[dir.join("sorted")]).unwrap();
    while let Some(r) = m.next_record().unwrap() {
        merged.push(r);
    }
    assert_eq!(merged, all, "seed {seed}");
    fs::remove_dir_all(dir).unwrap();
}
