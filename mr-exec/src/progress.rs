//! The coordinator's progress display: a single self-updating line on a
//! terminal, plain log lines (one per change) otherwise.

use core_mr::coordinator::{Phase, PhaseCounts, Progress};
use std::io::{IsTerminal, Write};

/// Prints progress and events to stderr.
pub struct ProgressReporter {
    terminal: bool,
    quiet: bool,
    last: Option<Progress>,
}

fn counts(name: &str, c: &PhaseCounts) -> String {
    let total = c.idle + c.in_progress + c.done;
    format!(
        "{name} {}/{total} done, {} running, {} failed over",
        c.done, c.in_progress, c.reassigned
    )
}

/// One-line rendering of a progress snapshot.
pub fn render(p: &Progress) -> String {
    let phase = match p.phase {
        Phase::Map => "map phase",
        Phase::Reduce => "reduce phase",
        Phase::Finished => "finished",
    };
    format!(
        "[{phase}] {} | {} | {} worker(s) waiting",
        counts("map", &p.map),
        counts("reduce", &p.reduce),
        p.waiting_workers
    )
}

impl ProgressReporter {
    /// A reporter that redraws in place if stderr is a terminal; `quiet`
    /// suppresses progress lines (events are still printed).
    pub fn new(quiet: bool) -> Self {
        ProgressReporter {
            terminal: std::io::stderr().is_terminal(),
            quiet,
            last: None,
        }
    }

    /// Shows `p` if it differs from what was last shown.
    pub fn update(&mut self, p: &Progress) {
        if self.quiet || self.last.as_ref() == Some(p) {
            return;
        }
        self.last = Some(*p);
        let line = render(p);
        let mut err = std::io::stderr().lock();
        if self.terminal {
            let _ = write!(err, "\r\x1b[2K{line}");
            let _ = err.flush();
        } else {
            let _ = writeln!(err, "mr coordinator: {line}");
        }
    }

    /// Prints an event line without garbling the progress line.
    pub fn note(&mut self, msg: &str) {
        let mut err = std::io::stderr().lock();
        if self.terminal && self.last.is_some() && !self.quiet {
            let _ = write!(err, "\r\x1b[2K");
        }
        let _ = writeln!(err, "mr coordinator: {msg}");
        if self.terminal && !self.quiet {
            if let Some(p) = &self.last {
                let _ = write!(err, "{}", render(p));
                let _ = err.flush();
            }
        }
    }

    /// Ends the progress line.
    pub fn finish(&mut self) {
        if self.terminal && self.last.is_some() && !self.quiet {
            eprintln!();
        }
    }
}
