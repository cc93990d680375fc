//! k-way merge of sorted record streams, and grouping of the merged stream
//! by key. Memory is one pending record per input stream, whatever the
//! total size.

use crate::records::RecordReader;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{self, BufReader};
use std::path::Path;

/// Buffer per merged file. With a few hundred inputs this stays small.
const READ_BUFFER_BYTES: usize = 64 * 1024;

/// Merges sorted record files into one sorted stream. Ties between equal
/// keys come out in input order, so the merge is deterministic.
pub struct Merger {
    readers: Vec<RecordReader<BufReader<File>>>,
    heap: BinaryHeap<Reverse<(String, usize, String)>>,
    error: Option<io::Error>,
}

impl Merger {
    /// Opens every file; a missing file is an error naming it.
    pub fn open<P: AsRef<Path>>(paths: &[P]) -> io::Result<Self> {
        let mut readers = Vec::with_capacity(paths.len());
        for p in paths {
            let p = p.as_ref();
            let f = File::open(p).map_err(|e| {
                io::Error::new(e.kind(), format!("cannot open {}: {e}", p.display()))
            })?;
            readers.push(RecordReader::new(
                BufReader::with_capacity(READ_BUFFER_BYTES, f),
                p,
            ));
        }
        let mut m = Merger {
            readers,
            heap: BinaryHeap::new(),
            error: None,
        };
        for i in 0..m.readers.len() {
            m.refill(i)?;
        }
        Ok(m)
    }

    fn refill(&mut self, i: usize) -> io::Result<()> {
        if let Some((k, v)) = self.readers[i].next_record()? {
            self.heap.push(Reverse((k, i, v)));
        }
        Ok(())
    }

    /// The next record in key order.
    pub fn next_record(&mut self) -> io::Result<Option<(String, String)>> {
        let Some(Reverse((k, i, v))) = self.heap.pop() else {
            return Ok(None);
        };
        self.refill(i)?;
        Ok(Some((k, v)))
    }

    fn peek_key(&self) -> Option<&str> {
        self.heap.peek().map(|Reverse((k, _, _))| k.as_str())
    }

    /// Calls `f(key, values)` once per distinct key, in key order, streaming
    /// the values. Read errors met while `f` iterates end its iterator early
    /// and are returned afterwards.
    pub fn for_each_group(
        mut self,
        mut f: impl FnMut(&str, &mut dyn Iterator<Item = String>) -> io::Result<()>,
    ) -> io::Result<()> {
        while let Some((key, first)) = self.next_record()? {
            let mut first = Some(first);
            let this = &mut self;
            let mut values = std::iter::from_fn(|| {
                if let Some(v) = first.take() {
                    return Some(v);
                }
                if this.error.is_some() || this.peek_key() != Some(key.as_str()) {
                    return None;
                }
                match this.next_record() {
                    Ok(Some((_, v))) => Some(v),
                    Ok(None) => None,
                    Err(e) => {
                        this.error = Some(e);
                        None
                    }
                }
            });
            let result = f(&key, &mut values);
            // Skip values the function did not consume.
            for _ in values.by_ref() {}
            result?;
            if let Some(e) = self.error.take() {
                return Err(e);
            }
        }
        Ok(())
    }
}
