//! `wc`: word count, with the lab's semantics.

use crate::App;

/// Emits `(word, "1")` for every word; reduce outputs the number of values.
///
/// Reduce sums the values as integers instead of counting them, which is the
/// same while every value is `"1"` and lets the combiner replace a key's
/// values with their partial count.
#[derive(Clone, Copy, Debug, Default)]
pub struct WordCount;

fn count(value: &str) -> u64 {
    // Values are "1" or a combined count; anything else counts as one
    // occurrence, which is what the lab's `len(values)` would do.
    value.parse().unwrap_or(1)
}

impl App for WordCount {
    fn map(&self, _filename: &str, contents: &str, emit: &mut dyn FnMut(&str, &str)) {
        for w in super::words(contents) {
            emit(w, "1");
        }
    }

    fn reduce(&self, _key: &str, values: &mut dyn Iterator<Item = String>) -> String {
        values.map(|v| count(&v)).sum::<u64>().to_string()
    }

    fn combine(&self, _key: &str, values: &[String]) -> Option<String> {
        Some(values.iter().map(|v| count(v)).sum::<u64>().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_letter_runs() {
        let mut got = Vec::new();
        WordCount.map("f", "It's a dog-eat-dog world, 42 times.", &mut |k, v| {
            got.push((k.to_string(), v.to_string()))
        });
        let keys: Vec<&str> = got.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            ["It", "s", "a", "dog", "eat", "dog", "world", "times"]
        );
        assert!(got.iter().all(|(_, v)| v == "1"));
    }

    #[test]
    fn combine_then_reduce_equals_reduce() {
        let vals: Vec<String> = vec!["1".into(); 7];
        let direct = WordCount.reduce("k", &mut vals.clone().into_iter());
        let partial = WordCount.combine("k", &vals[..4]).unwrap();
        let mut rest: Vec<String> = vec![partial];
        rest.extend_from_slice(&vals[4..]);
        assert_eq!(direct, "7");
        assert_eq!(WordCount.reduce("k", &mut rest.into_iter()), "7");
    }
}
