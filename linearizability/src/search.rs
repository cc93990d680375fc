//! The search for one partition: Wing & Gong's algorithm with Lowe's memo
//! cache, as porcupine's `checkSingle` implements it.
//!
//! Every operation becomes a call entry and a return entry; the entries, sorted
//! by time, form a doubly linked list. Walking the list from the front, the
//! search tries to linearize each call it meets (the model must accept the
//! operation in the current state) and, on success, *lifts* the call and its
//! return out of the list and starts again from the front. Meeting a return
//! entry means the operation it belongs to had to be linearized by now and was
//! not, so the search *unlifts* the last linearized operation and tries the
//! next candidate after it. A history is linearizable when every completed
//! operation has been lifted; operations without a reply may stay behind
//! (they never took effect).
//!
//! One pruning beyond porcupine: a candidate that is legal now and that the
//! model says never changes the state (`Model::never_changes_state`: a read,
//! a Put refused for its version) may always be linearized first. It is
//! minimal (no unlinearized operation returned before its call), so no
//! real-time constraint forbids it; and since it changes the state nowhere,
//! moving it from its place in any linearization to the front changes no
//! other operation's legality. So if any linearization of the remaining
//! operations exists, one starts with it: when that choice fails, its
//! siblings need not be tried. (An operation that merely happens to leave
//! *this* state unchanged, like writing the current value, does not qualify:
//! at its later place it may have changed the state.) Without this, many
//! concurrent refused Puts make the search enumerate their subsets.

use super::memo::{Bitset, Memo};
use super::model::{Model, Operation};

/// How often (in loop iterations) the search asks whether to give up. Often
/// enough to honour millisecond budgets, rarely enough to cost nothing.
const STOP_CHECK_INTERVAL: u64 = 256;

/// Marks the end of the linked list.
const NIL: usize = usize::MAX;

/// The sentinel node in front of the list.
const HEAD: usize = 0;

/// The verdict of one partition's search.
#[derive(Debug)]
pub(crate) enum SearchResult {
    /// Linearizable; the order found, as indices into the partition (read by
    /// the tests, which verify it independently).
    Ok(#[cfg_attr(not(test), allow(dead_code))] Vec<usize>),
    /// Not linearizable; how far the search got.
    Illegal(Deepest),
    /// The search was asked to stop (budget spent or another partition failed).
    Stopped,
}

/// The deepest point the search reached in a non-linearizable partition.
#[derive(Debug)]
pub(crate) struct Deepest {
    /// The longest linearizable prefix found, as indices into the partition,
    /// in linearization order.
    pub(crate) prefix: Vec<usize>,
    /// The operation whose return was reached without it being linearizable
    /// after `prefix`.
    pub(crate) blocked: usize,
}

/// One call or return entry of the linked list (an arena node).
#[derive(Clone, Debug)]
struct Node {
    /// Index of the operation in the partition.
    op: usize,
    /// For a call entry, the node of its return entry; `NIL` for a return.
    matching: usize,
    prev: usize,
    next: usize,
}

/// The linked list of entries over an arena; node 0 is the head sentinel.
struct EntryList {
    nodes: Vec<Node>,
}

impl EntryList {
    /// Builds the time-ordered list for `ops`. At equal times calls come
    /// before returns (closed intervals) and a reply-less operation's return
    /// comes after every real one.
    fn new<I, O>(ops: &[&Operation<I, O>]) -> Self {
        // (time, kind: 0 call / 1 return / 2 never returned, op index)
        let mut entries: Vec<(u64, u8, usize)> = Vec::with_capacity(2 * ops.len());
        for (i, op) in ops.iter().enumerate() {
            entries.push((op.call, 0, i));
            match op.return_time() {
                Some(ret) => {
                    assert!(
                        ret >= op.call,
                        "operation {i} of client {} returns at {ret}, before its call at {}",
                        op.client_id,
                        op.call
                    );
                    entries.push((ret, 1, i));
                }
                None => entries.push((u64::MAX, 2, i)),
            }
        }
        entries.sort_unstable();
        let mut nodes = Vec::with_capacity(entries.len() + 1);
        nodes.push(Node {
            op: usize::MAX,
            matching: NIL,
            prev: NIL,
            next: NIL,
        });
        let mut return_node = vec![NIL; ops.len()];
        for (pos, &(_, kind, op)) in entries.iter().enumerate() {
            let id = pos + 1;
            if kind != 0 {
                return_node[op] = id;
            }
            nodes.push(Node {
                op,
                matching: NIL,
                prev: id - 1,
                next: if pos + 1 < entries.len() { id + 1 } else { NIL },
            });
        }
        if !entries.is_empty() {
            nodes[HEAD].next = 1;
        }
        for (pos, &(_, kind, op)) in entries.iter().enumerate() {
            if kind == 0 {
                nodes[pos + 1].matching = return_node[op];
            }
        }
        EntryList { nodes }
    }

    /// Unlinks the call entry `call` and its return entry.
    fn lift(&mut self, call: usize) {
        let ret = self.nodes[call].matching;
        for id in [call, ret] {
            let Node { prev, next, .. } = self.nodes[id];
            self.nodes[prev].next = next;
            if next != NIL {
                self.nodes[next].prev = prev;
            }
        }
    }

    /// Relinks what [`EntryList::lift`] unlinked (in reverse order).
    fn unlift(&mut self, call: usize) {
        let ret = self.nodes[call].matching;
        for id in [ret, call] {
            let Node { prev, next, .. } = self.nodes[id];
            self.nodes[prev].next = id;
            if next != NIL {
                self.nodes[next].prev = id;
            }
        }
    }
}

/// Limits on one search.
pub(crate) struct Limits<'a> {
    /// Give up after this many loop iterations (a deterministic budget).
    pub(crate) max_steps: Option<u64>,
    /// Polled every few hundred iterations; `true` means give up.
    pub(crate) should_stop: &'a mut dyn FnMut() -> bool,
}

/// Checks one partition (`ops`, in any order) against `model`.
///
/// # Panics
///
/// If an operation returns before it is called.
pub(crate) fn search<M: Model>(
    model: &M,
    ops: &[&Operation<M::Input, M::Output>],
    limits: Limits<'_>,
) -> SearchResult {
    let mut list = EntryList::new(ops);
    let mut linearized = Bitset::new(ops.len());
    let mut memo = Memo::new();
    let mut state = model.init();
    // Linearized call nodes, each with the state before it and whether the
    // operation left the state unchanged (see the module doc's pruning).
    let mut calls: Vec<(usize, M::State, bool)> = Vec::new();
    let mut unlinearized_completed = ops.iter().filter(|op| op.reply.is_some()).count();
    // The deepest prefix so far; `low_water` is the lowest stack depth since
    // it was copied, so only the changed tail is copied next time.
    let mut deepest: Option<Deepest> = None;
    let mut low_water = 0;

    let mut cur = list.nodes[HEAD].next;
    let mut steps: u64 = 0;
    let mut until_stop_check = STOP_CHECK_INTERVAL;
    while unlinearized_completed > 0 {
        steps += 1;
        until_stop_check -= 1;
        if until_stop_check == 0 {
            until_stop_check = STOP_CHECK_INTERVAL;
            if (limits.should_stop)() {
                return SearchResult::Stopped;
            }
        }
        if limits.max_steps.is_some_and(|max| steps > max) {
            return SearchResult::Stopped;
        }
        let node = &list.nodes[cur];
        let op_index = node.op;
        if node.matching != NIL {
            // A call entry: try to linearize it here.
            let op = ops[op_index];
            let next = node.next;
            match model.step(&state, &op.input, op.output()) {
                Some(new_state) => {
                    let preserving = model.never_changes_state(&op.input, op.output());
                    debug_assert!(
                        !preserving || new_state == state,
                        "never_changes_state lied"
                    );
                    linearized.insert(op_index);
                    if memo.insert(&linearized, &new_state) {
                        calls.push((cur, std::mem::replace(&mut state, new_state), preserving));
                        list.lift(cur);
                        if op.reply.is_some() {
                            unlinearized_completed -= 1;
                        }
                        cur = list.nodes[HEAD].next;
                        continue;
                    }
                    linearized.remove(op_index);
                    if !preserving {
                        cur = next;
                        continue;
                    }
                    // Taking this state-preserving operation first leads to
                    // an explored, failed point, so the current prefix fails
                    // too: backtrack (below).
                }
                None => {
                    cur = next;
                    continue;
                }
            }
        }
        {
            // A return entry: its operation cannot be linearized after the
            // current prefix. Remember the deepest such point, then backtrack.
            let blocked_by = if node_is_return(&list, cur) {
                op_index
            } else {
                list.nodes[cur].op
            };
            let deeper = match &deepest {
                Some(d) => calls.len() > d.prefix.len(),
                None => true,
            };
            if deeper {
                let d = deepest.get_or_insert_with(|| Deepest {
                    prefix: Vec::new(),
                    blocked: blocked_by,
                });
                d.prefix.truncate(low_water);
                let tail = &calls[d.prefix.len()..];
                d.prefix
                    .extend(tail.iter().map(|(node, _, _)| list.nodes[*node].op));
                d.blocked = blocked_by;
                low_water = calls.len();
            }
            // Undo the last choice; if it preserved the state, its siblings
            // cannot succeed either (module doc), so undo further.
            loop {
                let Some((call_node, previous, preserving)) = calls.pop() else {
                    return SearchResult::Illegal(deepest.expect("recorded just above"));
                };
                low_water = low_water.min(calls.len());
                state = previous;
                let op_index = list.nodes[call_node].op;
                linearized.remove(op_index);
                if ops[op_index].reply.is_some() {
                    unlinearized_completed += 1;
                }
                list.unlift(call_node);
                cur = list.nodes[call_node].next;
                if !preserving {
                    break;
                }
            }
        }
    }
    SearchResult::Ok(
        calls
            .iter()
            .map(|(node, _, _)| list.nodes[*node].op)
            .collect(),
    )
}

/// Whether `node` is a return entry.
fn node_is_return(list: &EntryList, node: usize) -> bool {
    list.nodes[node].matching == NIL
}
