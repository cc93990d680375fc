//! The failure report: the smallest non-linearizable partition, rendered to
//! plain strings so it can be printed, stored or turned into HTML without the
//! model at hand.

use std::fmt;

use super::model::{Model, Operation, Partition};
use super::search::Deepest;

/// One operation of a failing partition, described for a reader.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RenderedOp {
    /// Position of the operation in the checked history.
    pub history_index: usize,
    /// The client that issued it.
    pub client_id: u64,
    /// When it was called.
    pub call: u64,
    /// When it returned; `None` if it never did.
    pub ret: Option<u64>,
    /// The model's description of input and output.
    pub description: String,
}

/// One step of the longest linearizable prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrefixStep {
    /// Index into [`Failure::ops`].
    pub op: usize,
    /// The model state after this operation.
    pub state_after: String,
}

/// A non-linearizable partition and how far the search got in it: enough to
/// see, by hand, why no order of its operations fits the model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// The partition's label (for the KV models, the key).
    pub label: String,
    /// The model's initial state.
    pub initial_state: String,
    /// The partition's operations sorted by call time, then return time.
    pub ops: Vec<RenderedOp>,
    /// The longest linearizable prefix the search found, in order.
    pub prefix: Vec<PrefixStep>,
    /// Index into `ops` of the operation that could not be linearized after
    /// that prefix: it returned before any consistent continuation could
    /// include it.
    pub blocked: usize,
}

impl Failure {
    /// Renders `deepest` (indices into `partition.ops`) with `model`.
    pub(crate) fn new<M: Model>(
        model: &M,
        history: &[Operation<M::Input, M::Output>],
        partition: &Partition,
        deepest: &Deepest,
    ) -> Self {
        // Sort the partition by call time; remember where each op went.
        let mut order: Vec<usize> = (0..partition.ops.len()).collect();
        order.sort_by_key(|&local| {
            let op = &history[partition.ops[local]];
            (op.call, op.return_time().unwrap_or(u64::MAX), local)
        });
        let mut position = vec![0; order.len()];
        for (pos, &local) in order.iter().enumerate() {
            position[local] = pos;
        }
        let ops = order
            .iter()
            .map(|&local| {
                let index = partition.ops[local];
                let op = &history[index];
                RenderedOp {
                    history_index: index,
                    client_id: op.client_id,
                    call: op.call,
                    ret: op.return_time(),
                    description: model.describe_operation(&op.input, op.output()),
                }
            })
            .collect();
        let mut state = model.init();
        let initial_state = model.describe_state(&state);
        let mut prefix = Vec::with_capacity(deepest.prefix.len());
        for &local in &deepest.prefix {
            let op = &history[partition.ops[local]];
            state = model
                .step(&state, &op.input, op.output())
                .expect("the search only records legal steps, and models are deterministic");
            prefix.push(PrefixStep {
                op: position[local],
                state_after: model.describe_state(&state),
            });
        }
        Failure {
            label: partition.label.clone(),
            initial_state,
            ops,
            prefix,
            blocked: position[deepest.blocked],
        }
    }

    /// The state after the longest linearizable prefix.
    pub fn state_after_prefix(&self) -> &str {
        self.prefix
            .last()
            .map_or(&self.initial_state, |s| &s.state_after)
    }

    /// Writes the HTML page of [`Failure::to_html`] to `path`.
    pub fn write_html(&self, path: impl AsRef<std::path::Path>) -> std::io::Result<()> {
        std::fs::write(path, self.to_html())
    }
}

/// `[call, ret]`, or `[call, ∞)` for an operation without a reply.
pub(crate) fn interval(op: &RenderedOp) -> String {
    match op.ret {
        Some(ret) => format!("[{}, {}]", op.call, ret),
        None => format!("[{}, inf)", op.call),
    }
}

impl fmt::Display for Failure {
    /// A plain-text report: operations by call time, the longest linearizable
    /// prefix with the state after each step, and the operation that broke it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rank = vec![None; self.ops.len()];
        for (i, step) in self.prefix.iter().enumerate() {
            rank[step.op] = Some(i + 1);
        }
        writeln!(
            f,
            "history is not linearizable: {} ({} operations in this partition)",
            self.label,
            self.ops.len()
        )?;
        writeln!(f, "initial state: {}", self.initial_state)?;
        writeln!(f, "operations by call time:")?;
        let width = self
            .ops
            .iter()
            .map(|op| interval(op).len())
            .max()
            .unwrap_or(0);
        for (i, op) in self.ops.iter().enumerate() {
            let note = match rank[i] {
                Some(r) => format!("  (linearized #{r})"),
                None if i == self.blocked => "  <-- could not be linearized".to_string(),
                None => String::new(),
            };
            let origin = format!("(history #{})", op.history_index);
            writeln!(
                f,
                "  op {i:>3} {origin:<16} client {:>3}  {:<width$}  {}{note}",
                op.client_id,
                interval(op),
                op.description,
            )?;
        }
        writeln!(
            f,
            "longest linearizable prefix ({} of {} operations):",
            self.prefix.len(),
            self.ops.len()
        )?;
        for (i, step) in self.prefix.iter().enumerate() {
            let op = &self.ops[step.op];
            writeln!(
                f,
                "  {:>3}. op {:>3}  {}  => {}",
                i + 1,
                step.op,
                op.description,
                step.state_after
            )?;
        }
        let blocked = &self.ops[self.blocked];
        write!(
            f,
            "then op {} (client {}, {}) {} could not be linearized before it returned; \
             state after the prefix: {}",
            self.blocked,
            blocked.client_id,
            interval(blocked),
            blocked.description,
            self.state_after_prefix()
        )
    }
}
