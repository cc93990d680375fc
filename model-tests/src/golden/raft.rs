//! The Raft language of the golden files: commands over one
//! [`Scenario`] (the simulated cluster in manual delivery, with its disks
//! and its invariant checks after every step), printing every step with the
//! one-line `Display` forms of `core_raft`'s inputs, actions and messages.
//!
//! # Example
//!
//! ```text
//! cluster 3
//! ----
//! n1: follower t0 vote=none lead=none last=i0/t0 commit=i0 applied=i0 snap=i0
//! n2: follower t0 vote=none lead=none last=i0/t0 commit=i0 applied=i0 snap=i0
//! n3: follower t0 vote=none lead=none last=i0/t0 commit=i0 applied=i0 snap=i0
//!
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
//! Every step prints `n2 <- <input>` and below it, indented, each action the
//! core returned (`-> persist ...`, `-> send n1: ...`, `-> apply ...`,
//! `-> read-ready ...`). Ticks that do nothing are counted rather than
//! listed: `n1 <- tick x18` is eighteen ticks of n1 without any action,
//! printed just before the next step that does something (or at the end of
//! the command). A message that reaches a crashed node or crosses a cut
//! link is printed as `lost n1 -> n3: <message> (n3 is down)` or
//! `(link cut)`. A command with nothing to report prints `ok`.
//!
//! # Commands
//!
//! Nodes are `n1`..`nN`. Filters are `from=nX`, `to=nY` and
//! `kind=<message kind>` (`RequestVote`, `AppendEntries`,
//! `InstallSnapshotResponse`, ...); a message matches if it matches all.
//!
//! | command | effect |
//! |---|---|
//! | `log n1 t1 t1 t2 [term=T] [vote=nX] [commit=C]` | the next `cluster` starts n1 from a disk holding entries of these terms at indexes 1, 2, ... (hard-state term defaults to the last entry's) |
//! | `cluster N [settings]` | a fresh cluster of nodes n1..nN; prints `state` |
//! | `tick n1 [times]`, `tick-all [times]` | ticks one node, or every live node round by round |
//! | `campaign n1` | ticks n1 until it sends vote requests (pre-vote or vote) or becomes leader |
//! | `propose n1 <text>` | proposes the text's bytes at n1 |
//! | `read n1 <id>` | a ReadIndex read with handle `id` |
//! | `snapshot n1 <index>` | n1's application hands over a snapshot through `index` |
//! | `deliver [filters]` | delivers the oldest matching message until none is waiting |
//! | `deliver-one [filters]` | delivers the oldest matching message |
//! | `drop <filters>`, `drop-all` | drops waiting messages |
//! | `queue` | prints the waiting messages, oldest first |
//! | `crash n2`, `restart n2` | loses n2's memory; rebuilds it from its disk |
//! | `isolate n1`, `partition n1 n2 \| n3`, `heal` | cuts links (messages on them are lost at delivery); brings every link up |
//! | `state [n1 n2 ...]` | role, term, vote, leader, last entry, commit, applied and snapshot index of each node (the disk's for a crashed one) |
//!
//! Settings of `cluster`, with the defaults of
//! [`crate::sim::scenario::test_config`]: `election=10..20` (election
//! timeout range in ticks, inclusive), `heartbeat=3` (ticks),
//! `pre-vote=on`, `check-quorum=on`, `noop=on` (the leader's empty entry),
//! `batch=512` (entries per AppendEntries), `inflight=8` (appends, and
//! snapshot chunks, in flight per follower), `chunk=1048576` (bytes per
//! InstallSnapshot chunk). Each node's election jitter is seeded by its id, so runs
//! are deterministic.
//!
//! Note on check-quorum: a follower that heard from a leader ignores vote
//! requests until it has itself ticked through a minimum election timeout
//! (the leader lease, thesis §4.2.3). After a leader crashes, let time pass
//! for everyone (`tick-all`), not only for the node that should campaign.

use super::{Command, Interpreter};
use crate::sim::scenario::{log_with_terms, test_config, Scenario};
use crate::sim::{Envelope, Lost};
use core_raft::{Action, Config, Durable, HardState, Input, LogIndex, Message, NodeId, Role, Term};
use std::collections::BTreeMap;

/// Deliveries one command may make before it is declared a livelock.
const MAX_DELIVERIES: usize = 100_000;

/// Ticks `tick` and `tick-all` accept at once: a story that needs more is
/// not readable anyway.
const MAX_TICKS: u64 = 10_000;

/// The Raft interpreter: the cluster of the last `cluster` command, and the
/// disks preset by `log` commands for the next one.
#[derive(Default)]
pub struct RaftInterpreter {
    presets: BTreeMap<NodeId, Durable>,
    scenario: Option<Scenario>,
}

impl RaftInterpreter {
    /// An interpreter with no cluster yet.
    pub fn new() -> RaftInterpreter {
        RaftInterpreter::default()
    }
}

impl Interpreter for RaftInterpreter {
    fn run(&mut self, command: &Command) -> String {
        let mut out = Out::default();
        if let Err(e) = self.dispatch(command, &mut out) {
            out.line(format!("error: {e}"));
        }
        out.finish()
    }
}

/// Cluster-wide settings of `cluster`.
#[derive(Clone, Copy, Debug)]
struct Settings {
    election: (u64, u64),
    heartbeat: u64,
    pre_vote: bool,
    check_quorum: bool,
    noop: bool,
    batch: Option<usize>,
    inflight: Option<usize>,
    chunk: Option<usize>,
}

impl Settings {
    fn parse(c: &Command) -> Result<Settings, String> {
        c.only_keys(&[
            "election",
            "heartbeat",
            "pre-vote",
            "check-quorum",
            "noop",
            "batch",
            "inflight",
            "chunk",
        ])?;
        let election = match c.value("election") {
            None => (10, 20),
            Some(v) => {
                let (lo, hi) = v
                    .split_once("..")
                    .ok_or_else(|| format!("election={v}: expected MIN..MAX"))?;
                (number(lo)?, number(hi)?)
            }
        };
        Ok(Settings {
            election,
            heartbeat: c.value("heartbeat").map_or(Ok(3), number)?,
            pre_vote: c.value("pre-vote").map_or(Ok(true), on_off)?,
            check_quorum: c.value("check-quorum").map_or(Ok(true), on_off)?,
            noop: c.value("noop").map_or(Ok(true), on_off)?,
            batch: c
                .value("batch")
                .map(number)
                .transpose()?
                .map(|n| n as usize),
            inflight: c
                .value("inflight")
                .map(number)
                .transpose()?
                .map(|n| n as usize),
            chunk: c
                .value("chunk")
                .map(number)
                .transpose()?
                .map(|n| n as usize),
        })
    }

    fn apply(&self, c: &mut Config) {
        (c.election_ticks_min, c.election_ticks_max) = self.election;
        c.heartbeat_ticks = self.heartbeat;
        c.pre_vote = self.pre_vote;
        c.check_quorum = self.check_quorum;
        c.leader_noop = self.noop;
        if let Some(n) = self.batch {
            c.max_entries_per_message = n;
        }
        if let Some(n) = self.inflight {
            c.max_inflight_messages = n;
        }
        if let Some(n) = self.chunk {
            c.snapshot_chunk_bytes = n;
        }
    }
}

/// Which waiting messages a `deliver` or `drop` is about.
#[derive(Clone, Copy, Debug, Default)]
struct Filter {
    from: Option<NodeId>,
    to: Option<NodeId>,
    kind: Option<&'static str>,
}

impl Filter {
    fn parse(c: &Command, size: u64) -> Result<Filter, String> {
        c.only_keys(&["from", "to", "kind"])?;
        if let Some(extra) = c.positional().first() {
            return Err(format!("{}: unexpected {extra:?}", c.name));
        }
        let kind = match c.value("kind") {
            None => None,
            Some(k) => Some(
                *KINDS
                    .iter()
                    .find(|known| **known == k)
                    .ok_or_else(|| format!("kind={k}: known kinds are {}", KINDS.join(", ")))?,
            ),
        };
        Ok(Filter {
            from: c.value("from").map(|v| node(v, size)).transpose()?,
            to: c.value("to").map(|v| node(v, size)).transpose()?,
            kind,
        })
    }

    fn is_empty(&self) -> bool {
        self.from.is_none() && self.to.is_none() && self.kind.is_none()
    }

    fn matches(&self, e: &Envelope) -> bool {
        self.from.is_none_or(|f| f == e.from)
            && self.to.is_none_or(|t| t == e.to)
            && self.kind.is_none_or(|k| k == kind(&e.msg))
    }
}

/// The message kinds, as `kind=` names them.
const KINDS: [&str; 7] = [
    "RequestVote",
    "RequestVoteResponse",
    "AppendEntries",
    "AppendEntriesResponse",
    "InstallSnapshot",
    "InstallSnapshotResponse",
    "TimeoutNow",
];

fn kind(msg: &Message) -> &'static str {
    match msg {
        Message::RequestVote(_) => KINDS[0],
        Message::RequestVoteResponse(_) => KINDS[1],
        Message::AppendEntries(_) => KINDS[2],
        Message::AppendEntriesResponse(_) => KINDS[3],
        Message::InstallSnapshot(_) => KINDS[4],
        Message::InstallSnapshotResponse(_) => KINDS[5],
        Message::TimeoutNow(_) => KINDS[6],
    }
}

/// The output of one command, with quiet ticks folded.
#[derive(Default)]
struct Out {
    lines: Vec<String>,
    /// Ticks per node that produced no action and are not printed yet.
    quiet: BTreeMap<NodeId, u64>,
}

impl Out {
    fn step(&mut self, id: NodeId, input: &Input, actions: &[Action]) {
        if *input == Input::Tick && actions.is_empty() {
            *self.quiet.entry(id).or_default() += 1;
            return;
        }
        self.line(format!("{id} <- {input}"));
        for a in actions {
            self.lines.push(format!("  -> {a}"));
        }
    }

    fn line(&mut self, line: String) {
        self.flush_quiet();
        self.lines.push(line);
    }

    /// Quiet ticks have no effect, so where exactly they fell between the
    /// other steps does not matter; only how many each node took before
    /// the next step that did something.
    fn flush_quiet(&mut self) {
        for (id, n) in std::mem::take(&mut self.quiet) {
            self.lines.push(match n {
                1 => format!("{id} <- tick"),
                n => format!("{id} <- tick x{n}"),
            });
        }
    }

    fn finish(mut self) -> String {
        self.flush_quiet();
        if self.lines.is_empty() {
            return "ok".to_string();
        }
        self.lines.join("\n")
    }
}

impl RaftInterpreter {
    fn dispatch(&mut self, c: &Command, out: &mut Out) -> Result<(), String> {
        match c.name.as_str() {
            "log" => return self.preset(c),
            "cluster" => return self.cluster(c, out),
            _ => {}
        }
        let sc = self
            .scenario
            .as_mut()
            .ok_or("no cluster yet: start the file with `cluster N`")?;
        let size = sc.ids().len() as u64;
        let args = c.positional();
        match c.name.as_str() {
            "tick" => {
                c.only_keys(&[])?;
                let (id, times) = node_and_count(&args, size)?;
                for _ in 0..times {
                    step(sc, out, id, Input::Tick)?;
                }
            }
            "tick-all" => {
                c.only_keys(&[])?;
                let times = match args[..] {
                    [] => 1,
                    [t] => count(t)?,
                    _ => return Err("usage: tick-all [times]".into()),
                };
                for _ in 0..times {
                    for id in sc.ids() {
                        if sc.is_up(id) {
                            step(sc, out, id, Input::Tick)?;
                        }
                    }
                }
            }
            "campaign" => campaign(sc, out, one_node(c, size)?)?,
            "propose" => {
                // The text is every word after the node, `=` included.
                let (id, text) = match c.args.split_first() {
                    Some((id, text)) if !text.is_empty() => (node(id, size)?, text.join(" ")),
                    _ => return Err("usage: propose n1 <text>".into()),
                };
                step(sc, out, id, Input::Propose(text.into_bytes()))?;
            }
            "read" => {
                let (id, read) = node_and_number(c, size, "read n1 <id>")?;
                step(sc, out, id, Input::ReadIndex { id: read })?;
            }
            "snapshot" => {
                let (id, index) = node_and_number(c, size, "snapshot n1 <index>")?;
                let data = format!("{id} state through i{index}").into_bytes();
                let index = LogIndex(index);
                step(sc, out, id, Input::Snapshot { index, data })?;
            }
            "deliver" => deliver(sc, out, Filter::parse(c, size)?, MAX_DELIVERIES)?,
            "deliver-one" => deliver(sc, out, Filter::parse(c, size)?, 1)?,
            "drop" => {
                let filter = Filter::parse(c, size)?;
                if filter.is_empty() {
                    return Err("drop needs a filter (from=, to=, kind=); use drop-all".into());
                }
                drop_where(sc, out, filter);
            }
            "drop-all" => {
                no_args(c)?;
                drop_where(sc, out, Filter::default());
            }
            "queue" => {
                no_args(c)?;
                let queue = sc.queue();
                if queue.is_empty() {
                    out.line("no message waiting".into());
                }
                for e in queue {
                    out.line(format!("{} -> {}: {}", e.from, e.to, e.msg));
                }
            }
            "crash" => {
                let id = one_node(c, size)?;
                if !sc.is_up(id) {
                    return Err(format!("{id} is already down"));
                }
                sc.crash(id);
                out.line(state_line(sc, id));
            }
            "restart" => {
                let id = one_node(c, size)?;
                if sc.is_up(id) {
                    return Err(format!("{id} is up; crash it first"));
                }
                sc.restart(id);
                out.line(state_line(sc, id));
            }
            "isolate" => {
                let id = one_node(c, size)?;
                let others: Vec<NodeId> = sc.ids().into_iter().filter(|o| *o != id).collect();
                sc.isolate(id);
                out.line(links_down(&[id], &others));
            }
            "partition" => {
                c.only_keys(&[])?;
                let bar = args.iter().position(|a| *a == "|");
                let (left, right) = match bar {
                    Some(k) if k > 0 && k + 1 < args.len() => (&args[..k], &args[k + 1..]),
                    _ => return Err("usage: partition n1 n2 | n3".into()),
                };
                let nodes = |side: &[&str]| -> Result<Vec<NodeId>, String> {
                    side.iter().map(|a| node(a, size)).collect()
                };
                let (left, right) = (nodes(left)?, nodes(right)?);
                sc.partition(&left, &right);
                out.line(links_down(&left, &right));
            }
            "heal" => {
                no_args(c)?;
                sc.heal();
                out.line("all links up".into());
            }
            "state" => {
                c.only_keys(&[])?;
                let ids = if args.is_empty() {
                    sc.ids()
                } else {
                    args.iter()
                        .map(|a| node(a, size))
                        .collect::<Result<_, _>>()?
                };
                for id in ids {
                    out.line(state_line(sc, id));
                }
            }
            other => return Err(format!("unknown command {other:?}")),
        }
        Ok(())
    }

    /// `log n1 t1 t1 t2 [term=T] [vote=nX] [commit=C]`.
    fn preset(&mut self, c: &Command) -> Result<(), String> {
        c.only_keys(&["term", "vote", "commit"])?;
        let args = c.positional();
        let Some((id, terms)) = args.split_first() else {
            return Err("usage: log n1 t1 t1 t2 [term=T] [vote=nX] [commit=C]".into());
        };
        let id = node(id, u64::MAX)?;
        let terms = terms
            .iter()
            .map(|t| {
                t.strip_prefix('t')
                    .ok_or_else(|| format!("{t:?}: a term is written t1, t2, ..."))
                    .and_then(number)
            })
            .collect::<Result<Vec<u64>, String>>()?;
        if terms.windows(2).any(|w| w[0] > w[1]) {
            return Err("the terms of a log never decrease".into());
        }
        let last = terms.last().copied().unwrap_or(0);
        let durable = Durable {
            hard_state: HardState {
                term: Term(c.value("term").map_or(Ok(last), number)?),
                vote: c.value("vote").map(|v| node(v, u64::MAX)).transpose()?,
                commit: LogIndex(c.value("commit").map_or(Ok(0), number)?),
            },
            snapshot: None,
            entries: log_with_terms(&terms),
        };
        durable
            .validate()
            .map_err(|e| format!("{id} could not restart from that disk: {e}"))?;
        if durable.hard_state.commit > durable.last_index() {
            return Err(format!("{id}: commit is beyond the log"));
        }
        self.presets.insert(id, durable);
        Ok(())
    }

    /// `cluster N [settings]`: a fresh cluster, from the preset disks.
    fn cluster(&mut self, c: &Command, out: &mut Out) -> Result<(), String> {
        let settings = Settings::parse(c)?;
        let size = match c.positional()[..] {
            [n] => number(n)?,
            _ => return Err("usage: cluster N [settings]".into()),
        };
        if size == 0 {
            return Err("a cluster needs at least one node".into());
        }
        let mut presets = std::mem::take(&mut self.presets);
        if let Some(id) = presets.keys().find(|id| id.0 > size) {
            return Err(format!("a log is preset for {id}, beyond n{size}"));
        }
        let voters: Vec<NodeId> = (1..=size).map(NodeId).collect();
        let mut check = test_config(voters[0], &voters);
        settings.apply(&mut check);
        check.validate().map_err(|e| e.to_string())?;
        let states = voters
            .iter()
            .map(|id| presets.remove(id).unwrap_or_default())
            .collect();
        let sc = Scenario::with_durable(states, move |cfg| settings.apply(cfg));
        for id in sc.ids() {
            out.line(state_line(&sc, id));
        }
        self.scenario = Some(sc);
        Ok(())
    }
}

/// Feed `input` to `id` and print the step.
fn step(sc: &mut Scenario, out: &mut Out, id: NodeId, input: Input) -> Result<Vec<Action>, String> {
    if !sc.is_up(id) {
        return Err(format!("{id} is down"));
    }
    let actions = sc.step(id, input.clone());
    out.step(id, &input, &actions);
    Ok(actions)
}

/// Tick `id` until it asks for votes (or wins outright, alone).
fn campaign(sc: &mut Scenario, out: &mut Out, id: NodeId) -> Result<(), String> {
    if !sc.is_up(id) {
        return Err(format!("{id} is down"));
    }
    if sc.node(id).is_leader() {
        return Err(format!("{id} is the leader"));
    }
    let max = sc.config(id).election_ticks_max;
    for _ in 0..=max {
        let actions = step(sc, out, id, Input::Tick)?;
        let asks = actions.iter().any(|a| {
            matches!(
                a,
                Action::Send {
                    msg: Message::RequestVote(_),
                    ..
                }
            )
        });
        if asks || sc.node(id).is_leader() {
            return Ok(());
        }
    }
    Err(format!("{id} did not campaign within {} ticks", max + 1))
}

/// Deliver the oldest waiting message matching `filter`, `limit` times or
/// until none is waiting.
fn deliver(sc: &mut Scenario, out: &mut Out, filter: Filter, limit: usize) -> Result<(), String> {
    let mut delivered = 0;
    while delivered < limit {
        let Some(k) = sc.queue().iter().position(|e| filter.matches(e)) else {
            if delivered == 0 {
                out.line("no message waiting".into());
            }
            return Ok(());
        };
        let e = sc.remove_queued(k).expect("the position was just found");
        delivered += 1;
        let input = Input::Receive {
            from: e.from,
            msg: e.msg.clone(),
        };
        match sc.try_deliver(e.clone()) {
            Ok(actions) => out.step(e.to, &input, &actions),
            Err(Lost::Down) => out.line(format!(
                "lost {} -> {}: {} ({} is down)",
                e.from, e.to, e.msg, e.to
            )),
            Err(Lost::LinkCut) => {
                out.line(format!("lost {} -> {}: {} (link cut)", e.from, e.to, e.msg))
            }
        }
    }
    if limit > 1 {
        return Err(format!("messages still flowing after {limit} deliveries"));
    }
    Ok(())
}

fn drop_where(sc: &mut Scenario, out: &mut Out, filter: Filter) {
    let dropped: Vec<Envelope> = sc
        .queue()
        .into_iter()
        .filter(|e| filter.matches(e))
        .collect();
    sc.drop_where(|e| filter.matches(e));
    if dropped.is_empty() {
        out.line("no message waiting".into());
    }
    for e in dropped {
        out.line(format!("dropped {} -> {}: {}", e.from, e.to, e.msg));
    }
}

/// One node's state: the live machine's, or what its disk holds.
fn state_line(sc: &Scenario, id: NodeId) -> String {
    if !sc.is_up(id) {
        let d = sc.durable(id);
        let last_term = d
            .entries
            .last()
            .map(|e| e.term)
            .or(d.snapshot.as_ref().map(|s| s.term))
            .unwrap_or_default();
        let snap = d.snapshot.as_ref().map_or(LogIndex(0), |s| s.index);
        return format!(
            "{id}: down (disk {} last={}/{} snap={})",
            d.hard_state,
            d.last_index(),
            last_term,
            snap
        );
    }
    let r = sc.node(id);
    let role = match r.role() {
        Role::Follower => "follower",
        Role::PreCandidate => "pre-candidate",
        Role::Candidate => "candidate",
        Role::Leader => "leader",
    };
    let name = |n: Option<NodeId>| n.map_or("none".to_string(), |n| n.to_string());
    format!(
        "{id}: {role} {} vote={} lead={} last={}/{} commit={} applied={} snap={}",
        r.term(),
        name(r.vote()),
        name(r.leader_hint()),
        r.last_index(),
        r.last_term(),
        r.commit_index(),
        r.applied_index(),
        r.snapshot_index()
    )
}

fn links_down(left: &[NodeId], right: &[NodeId]) -> String {
    let mut links = Vec::new();
    for a in left {
        for b in right {
            links.push(format!("{a}-{b}"));
        }
    }
    format!("links down: {}", links.join(" "))
}

fn number(s: &str) -> Result<u64, String> {
    s.parse()
        .map_err(|_| format!("{s:?} is not a non-negative number"))
}

fn count(s: &str) -> Result<u64, String> {
    match number(s)? {
        n if n > MAX_TICKS => Err(format!("{n} ticks at once is more than {MAX_TICKS}")),
        n => Ok(n),
    }
}

fn on_off(s: &str) -> Result<bool, String> {
    match s {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err(format!("{s:?}: expected on or off")),
    }
}

/// `n3`, for a cluster of `size` nodes.
fn node(s: &str, size: u64) -> Result<NodeId, String> {
    match s.strip_prefix('n').map(str::parse::<u64>) {
        Some(Ok(k)) if (1..=size).contains(&k) => Ok(NodeId(k)),
        Some(Ok(k)) => Err(format!("no node n{k} in a cluster of {size}")),
        _ => Err(format!("{s:?} is not a node (n1, n2, ...)")),
    }
}

fn no_args(c: &Command) -> Result<(), String> {
    match c.args.first() {
        None => Ok(()),
        Some(a) => Err(format!("{}: unexpected {a:?}", c.name)),
    }
}

fn one_node(c: &Command, size: u64) -> Result<NodeId, String> {
    match c.args[..] {
        [ref id] => node(id, size),
        _ => Err(format!("usage: {} n1", c.name)),
    }
}

fn node_and_count(args: &[&str], size: u64) -> Result<(NodeId, u64), String> {
    match args[..] {
        [id] => Ok((node(id, size)?, 1)),
        [id, times] => Ok((node(id, size)?, count(times)?)),
        _ => Err("usage: tick n1 [times]".into()),
    }
}

fn node_and_number(c: &Command, size: u64, usage: &str) -> Result<(NodeId, u64), String> {
    match c.args[..] {
        [ref id, ref k] => Ok((node(id, size)?, number(k)?)),
        _ => Err(format!("usage: {usage}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::golden::run;

    /// The example in this module's documentation, as a golden file.
    fn doc_example() -> String {
        let lines: Vec<&str> = include_str!("raft.rs")
            .lines()
            .map_while(|l| l.strip_prefix("//!"))
            .map(|l| l.strip_prefix(' ').unwrap_or(l))
            .skip_while(|l| *l != "```text")
            .skip(1)
            .take_while(|l| *l != "```")
            .collect();
        lines.join("\n") + "\n"
    }

    #[test]
    fn the_documented_example_is_what_happens() {
        let example = doc_example();
        assert!(example.starts_with("cluster 3\n"), "{example}");
        let outcome = run(&example, &mut RaftInterpreter::new());
        assert!(
            outcome.passed(),
            "{}",
            crate::golden::diff::unified("doc", &outcome.expected, &outcome.actual)
        );
    }

    fn output(script: &str) -> String {
        run(script, &mut RaftInterpreter::new()).actual
    }

    #[test]
    fn mistakes_are_reported_as_output() {
        let out =
            output("tick n1\ncluster 2 noop=maybe\ncluster 2\ncrash n2\npropose n2 x\nfly n1\n");
        let errors: Vec<&str> = out.lines().filter(|l| l.starts_with("error:")).collect();
        assert_eq!(
            errors,
            [
                "error: no cluster yet: start the file with `cluster N`",
                "error: \"maybe\": expected on or off",
                "error: n2 is down",
                "error: unknown command \"fly\"",
            ],
            "{out}"
        );
    }

    #[test]
    fn quiet_ticks_are_counted_per_node() {
        let out = output("cluster 2\ntick-all 2\ntick n2\n");
        assert!(
            out.ends_with(
                "tick-all 2\n----\nn1 <- tick x2\nn2 <- tick x2\n\ntick n2\n----\nn2 <- tick\n"
            ),
            "{out}"
        );
    }
}
