//! A unified line diff, so a failing golden file reads like `git diff`:
//! file name, line numbers, the lines that changed and a few around them.

use std::fmt::Write as _;

/// Unchanged lines shown around each change.
const CONTEXT: usize = 3;

/// Diff lines printed at most; a behaviour change usually shows itself in
/// the first hunk, and the rest would bury it.
const MAX_LINES: usize = 120;

/// Above this many line pairs the diff gives up on aligning the middle and
/// shows it as removed then added (quadratic memory would be the cost).
const MAX_CELLS: usize = 16_000_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Same,
    Removed,
    Added,
}

/// One step of the edit script, with the line numbers (0-based) it is at
/// in the expected (`old`) and actual (`new`) text.
#[derive(Clone, Copy, Debug)]
struct Edit {
    op: Op,
    old: usize,
    new: usize,
}

/// A unified diff of `expected` against `actual` (`name` is the file),
/// headed by the first line where they part. Empty if they are equal.
pub fn unified(name: &str, expected: &str, actual: &str) -> String {
    let a: Vec<&str> = expected.lines().collect();
    let b: Vec<&str> = actual.lines().collect();
    let edits = script(&a, &b);
    let Some(first) = edits.iter().find(|e| e.op != Op::Same) else {
        return String::new();
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{name}:{}: the output differs from here on",
        first.old + 1
    );
    let _ = writeln!(out, "--- {name} (expected)");
    let _ = writeln!(out, "+++ {name} (actual)");
    let mut printed = 0;
    let hunks = hunks(&edits);
    for (k, &(start, end)) in hunks.iter().enumerate() {
        if printed >= MAX_LINES {
            let _ = writeln!(out, "... {} more hunks", hunks.len() - k);
            break;
        }
        let old_len = edits[start..end]
            .iter()
            .filter(|e| e.op != Op::Added)
            .count();
        let new_len = edits[start..end]
            .iter()
            .filter(|e| e.op != Op::Removed)
            .count();
        let (o, n) = (edits[start].old, edits[start].new);
        let _ = writeln!(out, "@@ -{},{old_len} +{},{new_len} @@", o + 1, n + 1);
        for e in &edits[start..end] {
            let (sign, line) = match e.op {
                Op::Same => (' ', a[e.old]),
                Op::Removed => ('-', a[e.old]),
                Op::Added => ('+', b[e.new]),
            };
            let _ = writeln!(out, "{sign}{line}");
            printed += 1;
        }
    }
    out
}

/// The edit script turning `a` into `b`: a longest common subsequence of
/// lines, after the common prefix and suffix.
fn script(a: &[&str], b: &[&str]) -> Vec<Edit> {
    let prefix = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let suffix = a[prefix..]
        .iter()
        .rev()
        .zip(b[prefix..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let (am, bm) = (&a[prefix..a.len() - suffix], &b[prefix..b.len() - suffix]);
    let mut edits: Vec<Edit> = (0..prefix)
        .map(|k| Edit {
            op: Op::Same,
            old: k,
            new: k,
        })
        .collect();
    let (n, m) = (am.len(), bm.len());
    // lcs[i * (m + 1) + j]: length of a common subsequence of am[i..], bm[j..].
    let aligned = (n + 1) * (m + 1) <= MAX_CELLS;
    let mut lcs = vec![0u32; if aligned { (n + 1) * (m + 1) } else { 0 }];
    if aligned {
        for i in (0..n).rev() {
            for j in (0..m).rev() {
                lcs[i * (m + 1) + j] = if am[i] == bm[j] {
                    lcs[(i + 1) * (m + 1) + j + 1] + 1
                } else {
                    lcs[(i + 1) * (m + 1) + j].max(lcs[i * (m + 1) + j + 1])
                };
            }
        }
    }
    let (mut i, mut j) = (0, 0);
    while i < n || j < m {
        let op = if i < n && j < m && am[i] == bm[j] {
            Op::Same
        } else if j == m
            || (i < n && (!aligned || lcs[(i + 1) * (m + 1) + j] >= lcs[i * (m + 1) + j + 1]))
        {
            Op::Removed
        } else {
            Op::Added
        };
        edits.push(Edit {
            op,
            old: prefix + i,
            new: prefix + j,
        });
        match op {
            Op::Same => (i, j) = (i + 1, j + 1),
            Op::Removed => i += 1,
            Op::Added => j += 1,
        }
    }
    edits.extend((0..suffix).map(|k| Edit {
        op: Op::Same,
        old: prefix + n + k,
        new: prefix + m + k,
    }));
    edits
}

/// Ranges of `edits` to print: each change with [`CONTEXT`] lines around
/// it, changes closer than twice that merged into one hunk.
fn hunks(edits: &[Edit]) -> Vec<(usize, usize)> {
    let mut hunks: Vec<(usize, usize)> = Vec::new();
    for (k, e) in edits.iter().enumerate() {
        if e.op == Op::Same {
            continue;
        }
        let start = k.saturating_sub(CONTEXT);
        let end = (k + 1 + CONTEXT).min(edits.len());
        match hunks.last_mut() {
            Some(last) if start <= last.1 => last.1 = end,
            _ => hunks.push((start, end)),
        }
    }
    hunks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_texts_have_no_diff() {
        assert_eq!(unified("f", "a\nb\n", "a\nb\n"), "");
    }

    #[test]
    fn a_changed_line_with_context() {
        let old = "1\n2\n3\n4\n5\n6\n7\n8\n9\n";
        let new = "1\n2\n3\n4\nfive\n6\n7\n8\n9\n";
        assert_eq!(
            unified("f.txt", old, new),
            "f.txt:5: the output differs from here on\n\
             --- f.txt (expected)\n\
             +++ f.txt (actual)\n\
             @@ -2,7 +2,7 @@\n 2\n 3\n 4\n-5\n+five\n 6\n 7\n 8\n"
        );
    }

    #[test]
    fn insertions_and_removals_far_apart_make_two_hunks() {
        let old: String = (1..=20).map(|k| format!("{k}\n")).collect();
        let new = old.replace("3\n", "").replace("18\n", "18\nextra\n");
        let diff = unified("f", &old, &new);
        assert_eq!(diff.matches("@@ -").count(), 2, "{diff}");
        assert!(diff.contains("\n-3\n"), "{diff}");
        assert!(diff.contains("\n+extra\n"), "{diff}");
        assert!(diff.starts_with("f:3:"), "{diff}");
    }
}
