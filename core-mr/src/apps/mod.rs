//! Built-in pure applications, registered by name. The lab's test
//! applications that sleep, exit or touch files live with the drivers.

mod indexer;
mod wc;

pub use indexer::Indexer;
pub use wc::WordCount;

use crate::App;

/// Names of the pure built-in applications.
pub const BUILTIN_NAMES: &[&str] = &["wc", "indexer"];

/// The built-in application called `name`, if there is one.
pub fn builtin(name: &str) -> Option<Box<dyn App>> {
    match name {
        "wc" => Some(Box::new(WordCount)),
        "indexer" => Some(Box::new(Indexer)),
        _ => None,
    }
}

/// Splits text into words the way the lab's apps do: maximal runs of
/// letters. (Go's `unicode.IsLetter` is category L; Rust's `is_alphabetic`
/// also admits a few marks and letter numbers. On the lab's ASCII inputs the
/// two agree.)
pub fn words(contents: &str) -> impl Iterator<Item = &str> {
    contents
        .split(|c: char| !c.is_alphabetic())
        .filter(|w| !w.is_empty())
}
