//! `indexer`: an inverted index, with the lab's semantics.

use crate::App;
use std::collections::BTreeSet;

/// Emits `(word, filename)` once per distinct word of a document; reduce
/// outputs `"<count> <sorted filenames joined by ','>"`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Indexer;

impl App for Indexer {
    fn map(&self, filename: &str, contents: &str, emit: &mut dyn FnMut(&str, &str)) {
        let distinct: BTreeSet<&str> = super::words(contents).collect();
        for w in distinct {
            emit(w, filename);
        }
    }

    fn reduce(&self, _key: &str, values: &mut dyn Iterator<Item = String>) -> String {
        let mut docs: Vec<String> = values.collect();
        docs.sort();
        format!("{} {}", docs.len(), docs.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distinct_words_and_sorted_docs() {
        let mut got = Vec::new();
        Indexer.map("../b.txt", "x y x", &mut |k, v| {
            got.push(format!("{k}={v}"))
        });
        assert_eq!(got, ["x=../b.txt", "y=../b.txt"]);
        let out = Indexer.reduce("x", &mut vec!["b".to_string(), "a".to_string()].into_iter());
        assert_eq!(out, "2 a,b");
    }
}
