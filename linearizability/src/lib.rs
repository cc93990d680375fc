//! A linearizability checker for recorded client histories, in the manner of
//! porcupine.
//!
//! A history is linearizable if every operation can be given a single instant
//! inside its `[call, return]` interval such that, taken in that order, the
//! operations are legal for a sequential specification (a [`Model`]). The
//! simulator records the history of every client of the KV and sharded KV
//! services; drivers can record theirs and check them the same way.
//!
//! How it works, and why:
//!
//! 1. The [`Model`] splits the history into independent partitions (per key
//!    for a KV store). A history is linearizable iff each partition is, and
//!    many small searches are exponentially cheaper than one large one
//!    (Horn & Kroening's P-compositionality).
//! 2. Each partition is searched with Wing & Gong's algorithm plus Lowe's memo
//!    cache of `(linearized operations, state)` pairs, as porcupine does.
//! 3. The search is NP-hard in general, so it runs under a time budget and
//!    says [`Verdict::Unknown`] when the budget runs out, rather than passing
//!    silently. Without a timeout the verdict is deterministic.
//! 4. Operations that never got a reply are treated as returning at
//!    +infinity: they may have taken effect at any point after their call, or
//!    never.
//! 5. On [`Verdict::Illegal`] the outcome carries a [`Failure`]: the smallest
//!    failing partition, its operations, the longest linearizable prefix and
//!    the operation that could not follow it, printable as text or written as
//!    an HTML page with a timeline ([`Failure::write_html`]).
//!
//! ```
//! use linearizability::models::{RegisterInput, RegisterModel, RegisterOutput};
//! use linearizability::{check, CheckOptions, Operation, Verdict};
//!
//! // Client 1 writes 1 during [0, 10]; client 2 then reads 0 during [20, 30]:
//! // a stale read, since the write completed before the read began.
//! let history = vec![
//!     Operation::completed(1, RegisterInput::Write(1), 0, 10, RegisterOutput::Ack),
//!     Operation::completed(2, RegisterInput::Read, 20, 30, RegisterOutput::Value(0)),
//! ];
//! let outcome = check(&RegisterModel, &history, &CheckOptions::default());
//! assert_eq!(outcome.verdict, Verdict::Illegal);
//! println!("{outcome}");
//! ```

#![forbid(unsafe_code)]

mod check;
pub mod generate;
mod html;
pub mod kv;
mod memo;
mod model;
pub mod models;
mod render;
mod search;

pub use check::{check, check_parallel, CheckOptions, CheckOutcome, Verdict};
pub use model::{Model, Operation, Partition, Reply};
pub use render::{Failure, PrefixStep, RenderedOp};

#[cfg(test)]
mod tests;
