//! Golden-file scenario tests in the style of etcd's `testdata/*.txt`
//! (cockroachdb's *datadriven* format): a file is a story, a sequence of
//! commands each followed by exactly what it caused, so a reader sees a
//! whole election in one place and a change of behaviour shows up as a
//! diff of the file.
//!
//! # The file format
//!
//! ```text
//! # Comments and blank lines between cases are kept as they are.
//! campaign n1
//! ----
//! n1 <- tick x18
//! n1 <- tick
//!   -> send n2: RequestVote t1 last=i0/t0 pre-vote
//!   -> send n3: RequestVote t1 last=i0/t0 pre-vote
//!
//! deliver to=n2
//! ----
//! n2 <- n1: RequestVote t1 last=i0/t0 pre-vote
//!   -> send n1: RequestVoteResponse t1 granted pre-vote
//! ```
//!
//! * A line that is neither blank nor a `#` comment is a command.
//! * The line after a command is `----`; the output follows, one line per
//!   event, and ends at the first blank line (or the end of the file). An
//!   output therefore never contains a blank line: the runner drops any.
//! * A command without a `----` line has no expected output yet: write a
//!   story as commands and comments only, then let `UPDATE_GOLDEN=1` fill
//!   in what happened.
//!
//! # Running and updating
//!
//! [`check_dir`] runs every `*.txt` file of a directory, each with a fresh
//! [`Interpreter`], and compares the file as it would be rewritten with the
//! actual outputs against the file on disk, byte for byte. A difference
//! fails with a unified diff carrying file names and line numbers. With
//! `UPDATE_GOLDEN=1` in the environment the files are rewritten instead, so
//! a behaviour change reaches review as a `git diff` of the stories.
//!
//! A panic inside a command (the simulator's invariant checks panic on a
//! safety violation) is caught: the command's output becomes `panic: ...`,
//! the rest of the file is not run, and the test fails even when updating,
//! because a story must never record a broken invariant as expected.
//!
//! The format is independent of what the commands mean: [`raft`] is the
//! language over the Raft [`crate::sim::scenario::Scenario`]; other
//! services bring their own [`Interpreter`].

pub mod diff;
pub mod raft;

use std::fmt::Write as _;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

/// The line between a command and its output.
pub const SEPARATOR: &str = "----";

/// The environment variable that makes [`check_dir`] rewrite the files.
pub const UPDATE_ENV: &str = "UPDATE_GOLDEN";

/// Runs the commands of one golden file, in order, against one world.
pub trait Interpreter {
    /// Carry out `command` and describe what happened, one event per line.
    /// Mistakes in the command (an unknown node, a bad argument) are part
    /// of the output as a line starting with `error:`, after whatever the
    /// command did before it failed; only a broken invariant panics.
    fn run(&mut self, command: &Command) -> String;
}

/// One command line, split into words.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Command {
    /// 1-based line number in its file.
    pub line: usize,
    /// The whole line as written.
    pub text: String,
    /// The first word.
    pub name: String,
    /// The other words, in order (`key=value` words included).
    pub args: Vec<String>,
}

impl Command {
    /// Split `text` (found at `line`) into a command name and arguments.
    pub fn parse(line: usize, text: &str) -> Command {
        let mut words = text.split_whitespace().map(str::to_string);
        let name = words.next().unwrap_or_default();
        Command {
            line,
            text: text.to_string(),
            name,
            args: words.collect(),
        }
    }

    /// The arguments that are not `key=value`, in order.
    pub fn positional(&self) -> Vec<&str> {
        self.args
            .iter()
            .filter(|a| !a.contains('='))
            .map(String::as_str)
            .collect()
    }

    /// The value of `key=value`, if given.
    pub fn value(&self, key: &str) -> Option<&str> {
        self.args
            .iter()
            .find_map(|a| a.split_once('=').filter(|(k, _)| *k == key).map(|(_, v)| v))
    }

    /// Refuse `key=value` arguments other than `allowed`, so a misspelt
    /// setting is an error rather than silently ignored.
    pub fn only_keys(&self, allowed: &[&str]) -> Result<(), String> {
        for arg in &self.args {
            if let Some((key, _)) = arg.split_once('=') {
                if !allowed.contains(&key) {
                    return Err(format!(
                        "{}: unknown setting {key:?} (known: {})",
                        self.name,
                        allowed.join(", ")
                    ));
                }
            }
        }
        Ok(())
    }
}

/// A piece of a golden file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Item {
    /// A comment or a blank line, kept verbatim.
    Text(String),
    /// A command and its expected output (`None`: no `----` line yet).
    Case {
        /// The command.
        command: Command,
        /// The expected output lines.
        expected: Option<Vec<String>>,
    },
}

/// Split a golden file into comments and cases.
pub fn parse(text: &str) -> Vec<Item> {
    let lines: Vec<&str> = text.lines().collect();
    let mut items = Vec::new();
    let mut k = 0;
    while k < lines.len() {
        let line = lines[k];
        k += 1;
        if line.trim().is_empty() || line.starts_with('#') {
            items.push(Item::Text(line.to_string()));
            continue;
        }
        let command = Command::parse(k, line);
        let mut expected = None;
        if lines.get(k) == Some(&SEPARATOR) {
            k += 1;
            let mut output = Vec::new();
            while k < lines.len() && !lines[k].trim().is_empty() {
                output.push(lines[k].to_string());
                k += 1;
            }
            expected = Some(output);
        }
        // The blank line closing the case belongs to it (render writes it
        // back), also after a command still waiting for its output.
        if lines.get(k).is_some_and(|l| l.trim().is_empty()) {
            k += 1;
        }
        items.push(Item::Case { command, expected });
    }
    items
}

/// Write `items` back as a file, each case with `outputs[i]` (the i-th
/// case's output) in place of its expected output. Parsing the result gives
/// the same items back.
pub fn render(items: &[Item], outputs: &[Vec<String>]) -> String {
    let mut out = String::new();
    let mut case = 0;
    for (k, item) in items.iter().enumerate() {
        match item {
            Item::Text(line) => {
                out.push_str(line);
                out.push('\n');
            }
            Item::Case { command, .. } => {
                out.push_str(&command.text);
                out.push('\n');
                out.push_str(SEPARATOR);
                out.push('\n');
                for line in &outputs[case] {
                    out.push_str(line);
                    out.push('\n');
                }
                case += 1;
                if k + 1 < items.len() {
                    out.push('\n');
                }
            }
        }
    }
    out
}

/// What running one file came to.
#[derive(Debug)]
pub struct Outcome {
    /// The file as it was.
    pub expected: String,
    /// The file as the commands' actual outputs would rewrite it.
    pub actual: String,
    /// Where a command panicked, and the full panic message.
    pub panic: Option<(usize, String)>,
}

impl Outcome {
    /// True if every output was as expected and nothing panicked.
    pub fn passed(&self) -> bool {
        self.panic.is_none() && self.expected == self.actual
    }
}

/// Run the commands of `text` with `interpreter`, in order.
pub fn run(text: &str, interpreter: &mut dyn Interpreter) -> Outcome {
    let items = parse(text);
    let mut outputs = Vec::new();
    let mut panic = None;
    for item in &items {
        let Item::Case { command, .. } = item else {
            continue;
        };
        let output = match &panic {
            Some((line, _)) => format!("not run: the command on line {line} panicked"),
            None => match catch_unwind(AssertUnwindSafe(|| interpreter.run(command))) {
                Ok(output) => output,
                Err(payload) => {
                    let message = panic_message(payload.as_ref());
                    let first = message.lines().next().unwrap_or("").to_string();
                    panic = Some((command.line, message));
                    format!("panic: {first}")
                }
            },
        };
        outputs.push(
            output
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(str::to_string)
                .collect(),
        );
    }
    Outcome {
        expected: text.to_string(),
        actual: render(&items, &outputs),
        panic,
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(a panic without a message)".to_string()
    }
}

/// True if `UPDATE_GOLDEN` asks for the files to be rewritten.
pub fn updating() -> bool {
    std::env::var_os(UPDATE_ENV).is_some_and(|v| !v.is_empty() && v != "0")
}

/// Run every `*.txt` file in `dir` (sorted by name), each with a fresh
/// interpreter from `fresh`. Rewrites files whose output changed if
/// [`updating`]; otherwise panics with a diff per failing file and a note
/// on how to accept the new output. `test` names the test for that note
/// (`-p model-tests --test golden`).
pub fn check_dir<I: Interpreter>(dir: &Path, test: &str, fresh: impl Fn() -> I) {
    let files = txt_files(dir);
    assert!(!files.is_empty(), "no golden files in {}", dir.display());
    let update = updating();
    let mut report = String::new();
    for path in &files {
        let text = std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        let outcome = run(&text, &mut fresh());
        let name = path.display().to_string();
        if let Some((line, message)) = &outcome.panic {
            let _ = writeln!(
                report,
                "{name}:{line}: the command panicked (not updated):\n{message}\n"
            );
        }
        if outcome.expected == outcome.actual {
            continue;
        }
        if update && outcome.panic.is_none() {
            std::fs::write(path, &outcome.actual)
                .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
            println!("updated {name}");
            continue;
        }
        report.push_str(&diff::unified(&name, &outcome.expected, &outcome.actual));
        report.push('\n');
    }
    if !report.is_empty() {
        panic!(
            "golden files differ from what the commands now print:\n\n{report}\
             If the new behaviour is intended, rewrite the files with\n  \
             {UPDATE_ENV}=1 cargo test {test}\nand review the change with `git diff`."
        );
    }
}

fn txt_files(dir: &Path) -> Vec<PathBuf> {
    let entries =
        std::fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .collect();
    files.sort();
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Echoes its command's arguments, and panics on `boom`.
    struct Echo;

    impl Interpreter for Echo {
        fn run(&mut self, command: &Command) -> String {
            if command.name == "boom" {
                panic!("boom at line {}", command.line);
            }
            command.args.join("\n")
        }
    }

    const FILE: &str = "# a comment\n\necho a b\n----\na\nb\n\n# more\necho c\n----\nc\n";

    #[test]
    fn a_file_renders_back_to_itself() {
        let outcome = run(FILE, &mut Echo);
        assert!(outcome.passed(), "{}", outcome.actual);
        let items = parse(FILE);
        assert_eq!(items.len(), 5);
        assert!(matches!(
            &items[2],
            Item::Case { command, expected: Some(out) }
                if command.line == 3 && command.args == ["a", "b"] && out == &["a", "b"]
        ));
    }

    #[test]
    fn missing_and_wrong_outputs_are_filled_in() {
        let outcome = run("echo x\n\necho y\n----\nz\n\n# end\n", &mut Echo);
        assert!(!outcome.passed());
        let filled = "echo x\n----\nx\n\necho y\n----\ny\n\n# end\n";
        assert_eq!(outcome.actual, filled);
        assert!(run(filled, &mut Echo).passed());
    }

    #[test]
    fn a_panic_stops_the_file() {
        let outcome = run("boom\necho a\n", &mut Echo);
        let (line, message) = outcome.panic.clone().expect("a panic");
        assert_eq!(line, 1);
        assert!(message.contains("boom at line 1"), "{message}");
        assert_eq!(
            outcome.actual,
            "boom\n----\npanic: boom at line 1\n\necho a\n----\nnot run: the command on line 1 panicked\n"
        );
    }

    #[test]
    fn arguments() {
        let c = Command::parse(7, "cluster 3 noop=off  election=10..20");
        assert_eq!(c.name, "cluster");
        assert_eq!(c.positional(), ["3"]);
        assert_eq!(c.value("noop"), Some("off"));
        assert_eq!(c.value("election"), Some("10..20"));
        assert_eq!(c.value("batch"), None);
        assert!(c.only_keys(&["noop", "election"]).is_ok());
        assert!(c.only_keys(&["noop"]).is_err());
    }
}
