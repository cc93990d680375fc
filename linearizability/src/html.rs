//! A self-contained HTML page for a [`Failure`]: a porcupine-style SVG
//! timeline (one row per client, one bar per operation from call to return)
//! with the linearizable prefix numbered in green, the operation that could
//! not be linearized in red, and the text report underneath. No scripts and
//! no external resources; hovering a bar shows its details.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::render::{interval, Failure};

/// Horizontal space for the client labels.
const LEFT_PX: usize = 90;
/// Width of one step of compressed time.
const COLUMN_PX: usize = 34;
/// Height of one client row.
const ROW_PX: usize = 44;
/// Height of an operation bar.
const BAR_PX: usize = 26;
/// Space above the first row (for order badges) and below the last (axis).
const TOP_PX: usize = 16;
const AXIS_PX: usize = 40;

impl Failure {
    /// The report as a standalone HTML page with an SVG timeline.
    ///
    /// Time is compressed to the order of events (each distinct call or
    /// return time is one column), as in porcupine, so that long idle gaps do
    /// not squeeze the interesting overlaps; the axis shows the real times.
    pub fn to_html(&self) -> String {
        let mut times: Vec<u64> = self
            .ops
            .iter()
            .flat_map(|op| std::iter::once(op.call).chain(op.ret))
            .collect();
        times.sort_unstable();
        times.dedup();
        let column = |t: u64| times.binary_search(&t).unwrap_or_else(|i| i);
        let open_end = times.len() + 1; // where reply-less bars stop

        let rows: BTreeMap<u64, usize> = {
            let mut clients: Vec<u64> = self.ops.iter().map(|op| op.client_id).collect();
            clients.sort_unstable();
            clients.dedup();
            clients
                .into_iter()
                .enumerate()
                .map(|(i, c)| (c, i))
                .collect()
        };
        let mut rank = vec![None; self.ops.len()];
        for (i, step) in self.prefix.iter().enumerate() {
            rank[step.op] = Some(i + 1);
        }

        let width = LEFT_PX + (open_end + 2) * COLUMN_PX;
        let height = TOP_PX + rows.len() * ROW_PX + AXIS_PX;
        let mut svg = String::new();
        let _ = writeln!(
            svg,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="monospace" font-size="10">"#
        );
        for (client, row) in &rows {
            let y = TOP_PX + row * ROW_PX;
            let _ = writeln!(
                svg,
                r##"<rect x="0" y="{y}" width="{width}" height="{ROW_PX}" fill="{}"/><text x="6" y="{}" font-size="12">client {client}</text>"##,
                if row % 2 == 0 { "#fafafa" } else { "#f0f0f0" },
                y + ROW_PX / 2 + 4,
            );
        }
        for (i, op) in self.ops.iter().enumerate() {
            let x0 = LEFT_PX + column(op.call) * COLUMN_PX;
            let x1 = LEFT_PX + op.ret.map_or(open_end, column) * COLUMN_PX + COLUMN_PX * 4 / 5;
            let y = TOP_PX + rows[&op.client_id] * ROW_PX + (ROW_PX - BAR_PX) / 2;
            let (fill, stroke, stroke_width) = match rank[i] {
                Some(_) => ("#a8e6a1", "#2e7d32", 1),
                None if i == self.blocked => ("#ff9a9a", "#c62828", 3),
                None => ("#dddddd", "#777777", 1),
            };
            let dash = if op.ret.is_none() {
                r#" stroke-dasharray="4 3""#
            } else {
                ""
            };
            let mut tooltip = format!(
                "op {i} (history #{}), client {}, {}\n{}",
                op.history_index,
                op.client_id,
                interval(op),
                op.description
            );
            match rank[i] {
                Some(r) => {
                    let state = &self.prefix[r - 1].state_after;
                    let _ = write!(tooltip, "\nlinearized #{r}; state after: {state}");
                }
                None if i == self.blocked => tooltip.push_str("\ncould not be linearized"),
                None => tooltip.push_str("\nnot in the longest linearizable prefix"),
            }
            let max_chars = (x1 - x0).saturating_sub(6) / 6;
            let _ = writeln!(
                svg,
                r#"<g><title>{}</title><rect x="{x0}" y="{y}" width="{}" height="{BAR_PX}" rx="3" fill="{fill}" stroke="{stroke}" stroke-width="{stroke_width}"{dash}/><text x="{}" y="{}">{}</text>"#,
                escape(&tooltip),
                x1 - x0,
                x0 + 4,
                y + BAR_PX / 2 + 4,
                escape(&truncate(&op.description, max_chars)),
            );
            if let Some(r) = rank[i] {
                let _ = write!(
                    svg,
                    r##"<text x="{}" y="{}" fill="#2e7d32" font-weight="bold">#{r}</text>"##,
                    x0,
                    y - 2
                );
            }
            svg.push_str("</g>\n");
        }
        let axis_y = TOP_PX + rows.len() * ROW_PX + 14;
        let every = (times.len() / 40).max(1);
        for (i, t) in times.iter().enumerate().step_by(every) {
            let x = LEFT_PX + i * COLUMN_PX;
            let _ = writeln!(
                svg,
                r##"<line x1="{x}" y1="{TOP_PX}" x2="{x}" y2="{}" stroke="#cccccc" stroke-width="0.5"/><text x="{x}" y="{axis_y}" fill="#555555" transform="rotate(20 {x} {axis_y})">{t}</text>"##,
                axis_y - 12
            );
        }
        svg.push_str("</svg>\n");

        format!(
            r##"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Not linearizable: {title}</title>
<style>
body {{ font-family: sans-serif; margin: 1.5em; }}
.timeline {{ overflow-x: auto; border: 1px solid #cccccc; }}
pre {{ background: #f6f6f6; padding: 1em; overflow-x: auto; }}
.key {{ display: inline-block; width: 1em; height: 1em; vertical-align: middle; margin: 0 0.3em 0 1em; }}
</style></head><body>
<h1>History is not linearizable: {title}</h1>
<p>{n} operations in this partition; the longest linearizable prefix has {p}.
<span class="key" style="background:#a8e6a1"></span>linearized (numbered in order)
<span class="key" style="background:#ff9a9a"></span>could not be linearized
<span class="key" style="background:#dddddd"></span>not reached
(dashed: no reply). Hover over a bar for details.</p>
<div class="timeline">
{svg}</div>
<h2>Report</h2>
<pre>{report}</pre>
</body></html>
"##,
            title = escape(&self.label),
            n = self.ops.len(),
            p = self.prefix.len(),
            report = escape(&self.to_string()),
        )
    }
}

/// `text` cut to at most `max_chars` characters, marking any cut with `~`.
fn truncate(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(max_chars.saturating_sub(1)).collect();
    if max_chars > 0 {
        cut.push('~');
    }
    cut
}

/// Escapes text for HTML element content and attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}
