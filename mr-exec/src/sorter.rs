//! Map-side partitioning and sorting with bounded memory: pairs are
//! buffered per reduce partition; when the buffer passes its budget every
//! partition is sorted, combined and spilled to a run file; at the end the
//! runs of each partition are merged into its final file.

use crate::merge::Merger;
use crate::records::write_record;
use core_mr::App;
use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Approximate cost of one buffered value beyond its bytes: the `String`
/// header, the allocator's minimum chunk, and vector growth slack.
const VALUE_OVERHEAD_BYTES: usize = 64;

/// Approximate cost of one distinct key beyond its bytes (map entry, vector).
const KEY_OVERHEAD_BYTES: usize = 96;

/// A key's buffered values are offered to the combiner whenever their
/// count reaches a multiple of this.
const COMBINE_EVERY: usize = 256;

/// Default in-memory budget of one map task's buffer.
pub const DEFAULT_SORT_BUFFER_BYTES: usize = 64 * 1024 * 1024;

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A fresh temporary path in `dir` for eventually renaming onto `final_name`.
/// Unique per process and call, so concurrent attempts never collide.
pub fn temp_path(dir: &Path, final_name: &str) -> PathBuf {
    let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    dir.join(format!(".tmp-{}-{}-{}", std::process::id(), n, final_name))
}

/// Writes a file through a temporary name and renames it into place, so
/// readers see either nothing or the whole file.
pub fn write_atomically(
    dir: &Path,
    final_name: &str,
    fill: impl FnOnce(&mut BufWriter<File>) -> io::Result<()>,
) -> io::Result<()> {
    let tmp = temp_path(dir, final_name);
    let result = (|| {
        let mut w = BufWriter::with_capacity(256 * 1024, File::create(&tmp)?);
        fill(&mut w)?;
        w.flush()?;
        fs::rename(&tmp, dir.join(final_name))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Collects one map task's (or the sequential job's) output. Values are
/// grouped by key as they arrive (so each distinct key is stored and sorted
/// once) and offered to the app's combiner as they accumulate.
pub struct Sorter<'a> {
    app: &'a dyn App,
    dir: PathBuf,
    partitions: Vec<HashMap<String, Vec<String>>>,
    buffered_bytes: usize,
    budget_bytes: usize,
    /// Spilled run files, per partition.
    runs: Vec<Vec<PathBuf>>,
}

impl<'a> Sorter<'a> {
    /// A sorter for `n_partitions`, spilling into `dir` past `budget_bytes`.
    pub fn new(app: &'a dyn App, dir: &Path, n_partitions: usize, budget_bytes: usize) -> Self {
        Sorter {
            app,
            dir: dir.to_path_buf(),
            partitions: (0..n_partitions).map(|_| HashMap::new()).collect(),
            buffered_bytes: 0,
            budget_bytes,
            runs: (0..n_partitions).map(|_| Vec::new()).collect(),
        }
    }

    /// How many run files were spilled so far (for tests and stats).
    pub fn spilled_runs(&self) -> usize {
        self.runs.iter().map(Vec::len).sum()
    }

    /// Adds one pair to a partition, spilling if over budget.
    pub fn add(&mut self, partition: usize, key: &str, value: &str) -> io::Result<()> {
        let part = &mut self.partitions[partition];
        match part.get_mut(key) {
            Some(values) => {
                values.push(value.to_string());
                self.buffered_bytes += value.len() + VALUE_OVERHEAD_BYTES;
                if values.len() % COMBINE_EVERY == 0 {
                    if let Some(combined) = self.app.combine(key, values) {
                        let old: usize =
                            values.iter().map(|v| v.len() + VALUE_OVERHEAD_BYTES).sum();
                        self.buffered_bytes -= old;
                        self.buffered_bytes += combined.len() + VALUE_OVERHEAD_BYTES;
                        // A fresh vector: `clear` would keep the grown capacity.
                        *values = vec![combined];
                    }
                }
            }
            None => {
                part.insert(key.to_string(), vec![value.to_string()]);
                self.buffered_bytes +=
                    key.len() + KEY_OVERHEAD_BYTES + value.len() + VALUE_OVERHEAD_BYTES;
            }
        }
        if self.buffered_bytes > self.budget_bytes {
            self.spill()?;
        }
        Ok(())
    }

    fn spill(&mut self) -> io::Result<()> {
        for p in 0..self.partitions.len() {
            if self.partitions[p].is_empty() {
                continue;
            }
            let pairs = std::mem::take(&mut self.partitions[p]);
            let name = format!("spill-{p}-{}", self.runs[p].len());
            let tmp = temp_path(&self.dir, &name);
            let mut w = BufWriter::new(File::create(&tmp)?);
            write_sorted(self.app, pairs, &mut w)?;
            w.flush()?;
            self.runs[p].push(tmp);
        }
        self.buffered_bytes = 0;
        Ok(())
    }

    /// Writes partition `p` to `dir/name(p)` for every partition (empty
    /// partitions give empty files) and removes the spill files.
    pub fn finish(mut self, name: impl Fn(usize) -> String) -> io::Result<()> {
        let spilled = self.spilled_runs() > 0;
        if spilled {
            self.spill()?;
        }
        let result = (|| {
            for p in 0..self.partitions.len() {
                let final_name = name(p);
                if spilled {
                    let merger = Merger::open(&self.runs[p])?;
                    write_atomically(&self.dir, &final_name, |w| merge_into(merger, w))?;
                } else {
                    let pairs = std::mem::take(&mut self.partitions[p]);
                    write_atomically(&self.dir, &final_name, |w| write_sorted(self.app, pairs, w))?;
                }
            }
            Ok(())
        })();
        for run in self.runs.iter().flatten() {
            let _ = fs::remove_file(run);
        }
        result
    }

    /// Hands the sorted, merged stream of partition 0 to `f` instead of
    /// writing it (the sequential job reduces it directly).
    pub fn into_merger(mut self) -> io::Result<(Merger, Vec<PathBuf>)> {
        self.spill()?;
        let runs = std::mem::take(&mut self.runs[0]);
        Ok((Merger::open(&runs)?, runs))
    }
}

/// Writes a partition's keys in sorted order, each key's values in
/// emission order, after offering them to the app's combiner.
fn write_sorted<W: Write>(
    app: &dyn App,
    groups: HashMap<String, Vec<String>>,
    w: &mut W,
) -> io::Result<()> {
    let mut groups: Vec<(String, Vec<String>)> = groups.into_iter().collect();
    groups.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    for (key, values) in groups {
        let combined = if values.len() > 1 {
            app.combine(&key, &values)
        } else {
            None
        };
        match combined {
            Some(v) => write_record(w, &key, &v)?,
            None => {
                for v in &values {
                    write_record(w, &key, v)?;
                }
            }
        }
    }
    Ok(())
}

fn merge_into<W: Write>(mut merger: Merger, w: &mut W) -> io::Result<()> {
    while let Some((k, v)) = merger.next_record()? {
        write_record(w, &k, &v)?;
    }
    Ok(())
}
