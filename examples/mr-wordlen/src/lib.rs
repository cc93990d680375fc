//! An application that is not one of the built-ins: a histogram of word
//! lengths. It shows the two ways of bringing your own application:
//!
//! * **linked**: `cargo run -p mr-wordlen --release -- FILES...` runs a whole
//!   job (coordinator and workers as threads, over loopback TCP) with the
//!   app compiled into the program (see `src/main.rs`);
//! * **loaded**: `cargo build -p mr-wordlen --release` produces
//!   `target/release/libmr_wordlen.so`, which any `mr` worker can run:
//!
//! ```text
//! mr coordinator pg-*.txt &
//! mr worker --lib target/release/libmr_wordlen.so
//! ```
//!
//! The library must be built by the same rustc, against the same core-mr,
//! as the `mr` binary that loads it (the plugin ABI is Rust's own).

use core_mr::App;

/// Counts words by length: keys `len-01`, `len-02`, ... (zero-padded so
/// the sorted output reads in length order), values the word counts.
#[derive(Clone, Copy, Debug, Default)]
pub struct WordLengths;

impl App for WordLengths {
    fn map(&self, _filename: &str, contents: &str, emit: &mut dyn FnMut(&str, &str)) {
        for w in core_mr::apps::words(contents) {
            emit(&format!("len-{:02}", w.chars().count()), "1");
        }
    }

    fn reduce(&self, _key: &str, values: &mut dyn Iterator<Item = String>) -> String {
        values
            .map(|v| v.parse::<u64>().unwrap_or(0))
            .sum::<u64>()
            .to_string()
    }

    fn combine(&self, key: &str, values: &[String]) -> Option<String> {
        Some(self.reduce(key, &mut values.iter().cloned()))
    }
}

core_mr::export_app!(WordLengths);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram() {
        let mut got = Vec::new();
        WordLengths.map("f", "a bb cc ddd", &mut |k, v| got.push(format!("{k}={v}")));
        assert_eq!(got, ["len-01=1", "len-02=1", "len-02=1", "len-03=1"]);
        let vals = vec!["2".to_string(), "1".to_string()];
        assert_eq!(WordLengths.reduce("len-02", &mut vals.into_iter()), "3");
    }
}
