//! The readable trace of a simulated run, and a hash of everything that
//! happened (for the determinism self-check).

use std::collections::VecDeque;

/// What to do with the readable trace of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TraceMode {
    /// No trace (fastest).
    Off,
    /// Keep the last lines, printed with a failure report.
    Tail,
    /// Print every line to standard output as it happens.
    Print,
}

impl TraceMode {
    /// `Tail` if `SIM_TRACE` is set, else `Off`.
    pub fn from_env() -> TraceMode {
        if std::env::var_os("SIM_TRACE").is_some() {
            TraceMode::Tail
        } else {
            TraceMode::Off
        }
    }
}

/// Lines of trace kept in `Tail` mode.
const TAIL_LINES: usize = 60;

/// The trace and the run's hash.
#[derive(Debug)]
pub struct Trace {
    mode: TraceMode,
    tail: VecDeque<String>,
    hash: u64,
}

impl Trace {
    /// An empty trace.
    pub fn new(mode: TraceMode) -> Trace {
        Trace {
            mode,
            tail: VecDeque::new(),
            hash: 0xcbf2_9ce4_8422_2325,
        }
    }

    /// True if lines are recorded (callers skip formatting otherwise).
    pub fn on(&self) -> bool {
        self.mode != TraceMode::Off
    }

    /// Record a line at virtual time `now_ms` (formatted only if tracing).
    pub fn line(&mut self, now_ms: u64, line: impl FnOnce() -> String) {
        if self.on() {
            self.push(format!("{now_ms:>8}ms {}", line()));
        }
    }

    /// Record a continuation line (an action of the step just traced).
    pub fn detail(&mut self, line: impl FnOnce() -> String) {
        if self.on() {
            self.push(format!("            -> {}", line()));
        }
    }

    fn push(&mut self, line: String) {
        match self.mode {
            TraceMode::Off => {}
            TraceMode::Print => println!("{line}"),
            TraceMode::Tail => {
                if self.tail.len() == TAIL_LINES {
                    self.tail.pop_front();
                }
                self.tail.push_back(line);
            }
        }
    }

    /// The kept lines, oldest first.
    pub fn tail(&self) -> impl Iterator<Item = &String> {
        self.tail.iter()
    }

    /// The tail as one block, or a hint on how to get one.
    pub fn report(&self) -> String {
        if self.tail.is_empty() {
            return "(set SIM_TRACE=1 for a trace of the run)".to_string();
        }
        let mut out = String::from("last trace lines:\n");
        for line in &self.tail {
            out.push_str(line);
            out.push('\n');
        }
        out
    }

    /// Mix words into the run's hash.
    pub fn hash(&mut self, words: &[u64]) {
        for w in words {
            self.hash_bytes(&w.to_le_bytes());
        }
    }

    /// Mix bytes into the run's hash (FNV-1a).
    pub fn hash_bytes(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.hash ^= u64::from(*b);
            self.hash = self.hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    /// The run's hash so far.
    pub fn digest(&self) -> u64 {
        self.hash
    }
}
