//! Persist before send, checked action by action: whatever a node lets out
//! (a message, an applied entry, an acknowledged proposal) may only reveal
//! state that its disk holds *durably* at that moment. The simulated driver
//! releases actions through the same `node_shell::PersistGate` the real
//! drivers use, and every released action is checked here against the
//! synced state of the node's [`super::disk::SimDisk`]; a crash then loses
//! only what nobody was told about.
//!
//! An action may be released after later writes of a higher term have
//! become durable too (the gate releases a step's sends once its batch is
//! synced, and a sync covers every batch written so far). Writes reach the
//! disk in order, so what the action reveals was durable before the higher
//! term superseded it: such an action is a stale message, which Raft
//! tolerates like any delayed one. The checks therefore apply in full only
//! while the durable term is the action's own term.
//!
//! Also here: the mirror check, that a live core's view of its own durable
//! state (term, vote, log, snapshot) is what it asked its disk to write.

use super::invariants::Violation;
use core_raft::{
    Action, AppendEntries, AppendEntriesResponse, Durable, Entry, InstallSnapshotResponse,
    LogIndex, Message, NodeId, Raft, RequestVote, RequestVoteResponse, Term,
};

/// Log positions an acknowledgement vouches for: the (index, term) of each
/// entry of the AppendEntries it answers.
pub type Vouched = Vec<(LogIndex, Term)>;

/// True if `d` holds an entry with this index and term (in the log, or
/// covered by its snapshot, which only ever holds committed entries).
fn holds(d: &Durable, index: LogIndex, term: Term) -> bool {
    if d.snapshot.as_ref().is_some_and(|s| index <= s.index) {
        return true;
    }
    let at = d.entries.partition_point(|e| e.index < index);
    d.entries
        .get(at)
        .is_some_and(|e| e.index == index && e.term == term)
}

fn fail(what: String) -> Result<(), Violation> {
    Err(Violation(format!("persist before send: {what}")))
}

/// Check one released action of `id` against its synced storage `d`.
pub fn check_release(
    id: NodeId,
    d: &Durable,
    action: &Action,
    vouched: &[(LogIndex, Term)],
) -> Result<(), Violation> {
    match action {
        Action::Send { to, msg } => check_send(id, d, *to, msg, vouched),
        Action::Apply(entries) => match entries.iter().find(|e| !holds(d, e.index, e.term)) {
            Some(e) => fail(format!("{id} applied {} before it was durable", e.index)),
            None => Ok(()),
        },
        Action::Proposed { index, term }
            if d.hard_state.term == *term && !holds(d, *index, *term) =>
        {
            fail(format!(
                "{id} acknowledged a proposal at {index} before it was durable"
            ))
        }
        // A later snapshot may have superseded it on disk (see the module doc).
        Action::ApplySnapshot(s)
            if d.snapshot.as_ref() != Some(s)
                && d.snapshot.as_ref().is_none_or(|d| d.index <= s.index) =>
        {
            fail(format!(
                "{id} applied the snapshot at {} before it was durable",
                s.index
            ))
        }
        _ => Ok(()),
    }
}

fn check_send(
    id: NodeId,
    d: &Durable,
    to: NodeId,
    msg: &Message,
    vouched: &[(LogIndex, Term)],
) -> Result<(), Violation> {
    let hs = d.hard_state;
    if hs.term > msg.term() {
        return Ok(()); // Superseded by a durable higher term (see the module doc).
    }
    match msg {
        Message::RequestVote(RequestVote {
            term,
            pre_vote: false,
            ..
        }) if hs.term != *term || hs.vote != Some(id) => {
            return fail(format!(
                "{id} campaigned in {term} before its self-vote was durable"
            ))
        }
        Message::RequestVoteResponse(RequestVoteResponse {
            term,
            granted: true,
            pre_vote: false,
        }) if hs.term != *term || hs.vote != Some(to) => {
            return fail(format!(
                "{id} granted {to} its vote in {term} before it was durable"
            ))
        }
        Message::AppendEntries(AppendEntries { entries, .. }) => {
            if let Some(e) = entries.iter().find(|e| !holds(d, e.index, e.term)) {
                return fail(format!("{id} sent {} before it was durable", e.index));
            }
        }
        Message::AppendEntriesResponse(AppendEntriesResponse {
            match_index,
            reject: None,
            ..
        }) => {
            if d.last_index() < *match_index {
                return fail(format!(
                    "{id} acknowledged up to {match_index}, beyond its durable log"
                ));
            }
            let acked = vouched.iter().filter(|(i, _)| i <= match_index);
            if let Some((i, _)) = acked.clone().find(|(i, t)| !holds(d, *i, *t)) {
                return fail(format!("{id} acknowledged {i} before it was durable"));
            }
        }
        Message::InstallSnapshotResponse(InstallSnapshotResponse { match_index, .. })
            if d.last_index() < *match_index =>
        {
            return fail(format!(
                "{id} acknowledged a snapshot through {match_index} before it was durable"
            ));
        }
        _ => {}
    }
    let pre_vote = matches!(
        msg,
        Message::RequestVote(RequestVote { pre_vote: true, .. })
            | Message::RequestVoteResponse(RequestVoteResponse { pre_vote: true, .. })
    );
    if !pre_vote && hs.term < msg.term() {
        return fail(format!(
            "{id} sent a message of {} while only {} was durable",
            msg.term(),
            hs.term
        ));
    }
    Ok(())
}

/// The entries of an AppendEntries that an answer to it vouches for.
pub fn vouched_by(input: &core_raft::Input) -> Vouched {
    match input {
        core_raft::Input::Receive {
            msg: Message::AppendEntries(AppendEntries { entries, .. }),
            ..
        } => entries.iter().map(|e: &Entry| (e.index, e.term)).collect(),
        _ => Vec::new(),
    }
}

/// The core's view of its durable state equals what it wrote. `full` also
/// compares every log entry and the log's byte count (O(log) per call:
/// scenario tests use it, swarms check the cheap part).
pub fn check_mirror(raft: &Raft, written: &Durable, full: bool) -> Result<(), Violation> {
    let id = raft.id();
    let d = written;
    let snap = d.snapshot.as_ref().map_or(LogIndex(0), |s| s.index);
    let mismatch = if d.hard_state.term != raft.term() {
        Some("term")
    } else if d.hard_state.vote != raft.vote() {
        Some("vote")
    } else if snap != raft.snapshot_index() {
        Some("snapshot index")
    } else if d.last_index() != raft.last_index() {
        Some("last index")
    } else {
        None
    };
    if let Some(what) = mismatch {
        return Err(Violation(format!(
            "{id}: its {what} differs from what it asked to persist"
        )));
    }
    if full {
        if d.entries != raft.entries(snap.next(), raft.last_index()) {
            return Err(Violation(format!(
                "{id}: its log differs from its durable copy"
            )));
        }
        let bytes: usize = d.entries.iter().map(Entry::size_bytes).sum();
        if raft.log_bytes() != bytes {
            return Err(Violation(format!("{id}: log_bytes is out of date")));
        }
    }
    Ok(())
}
