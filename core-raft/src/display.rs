//! One-line, human-readable forms of inputs, actions and messages, for
//! traces and scenario files.
//!
//! Every form is a single line in a fixed shape: the kind first (`tick`,
//! `persist hard-state`, `AppendEntries`), then `key=value` fields, with
//! indexes, terms and nodes in their own notation (`i7`, `t3`, `n2`, and
//! `i5/t2` for an entry's index and term). Payloads are abbreviated to byte
//! counts and index ranges, so a line stays short however big the message.
//! Golden-file tests compare these lines, so a change of format is a change
//! of every such file: keep them stable.

use crate::io::{Action, Input};
use crate::message::{
    AppendEntries, AppendEntriesResponse, Entry, HardState, InstallSnapshot,
    InstallSnapshotResponse, Message, Payload, Reject, RequestVote, RequestVoteResponse, Snapshot,
};
use crate::types::{LogIndex, NodeId};
use std::fmt::{self, Display, Formatter};

/// `n2`, or `none` when no node is known.
struct MaybeNode(Option<NodeId>);

impl Display for MaybeNode {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(n) => write!(f, "{n}"),
            None => f.write_str("none"),
        }
    }
}

/// The indexes a run of consecutive entries covers: `i6..=i8`, `i6` for one
/// entry, `none` for no entry.
struct Indexes<'a>(&'a [Entry]);

impl Display for Indexes<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self.0 {
            [] => f.write_str("none"),
            [one] => write!(f, "{}", one.index),
            [first, .., last] => write!(f, "{}..={}", first.index, last.index),
        }
    }
}

/// The terms of a run of entries: `term=t3` when they share one,
/// `terms=t2..=t3` otherwise (terms never decrease along a log).
struct Terms<'a>(&'a [Entry]);

impl Display for Terms<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match (self.0.first(), self.0.last()) {
            (Some(a), Some(b)) if a.term == b.term => write!(f, "term={}", a.term),
            (Some(a), Some(b)) => write!(f, "terms={}..={}", a.term, b.term),
            _ => f.write_str("term=none"),
        }
    }
}

/// `i7/t3 noop` or `i7/t3 bytes=5`.
impl Display for Entry {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.term)?;
        match &self.payload {
            Payload::Noop => f.write_str(" noop"),
            Payload::Command(data) => write!(f, " bytes={}", data.len()),
            Payload::Membership(m) => write!(f, " membership {m}"),
        }
    }
}

/// `t4 vote=n2 commit=i7` (`vote=none` before voting).
impl Display for HardState {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} vote={} commit={}",
            self.term,
            MaybeNode(self.vote),
            self.commit
        )
    }
}

/// `i300/t4 bytes=130`: what it covers and how big the state is;
/// `i300/t4 external` when the application keeps the state itself.
impl Display for Snapshot {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        if self.external {
            return write!(f, "{}/{} external", self.index, self.term);
        }
        write!(f, "{}/{} bytes={}", self.index, self.term, self.data.len())
    }
}

/// `reject prev=i5 conflict=t2@i3` (the follower's term at `prev` and where
/// that term starts), or `reject prev=i5 conflict=i4` (the follower's log
/// ends before `prev`; `i4` is one past its last entry).
impl Display for Reject {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "reject prev={} conflict=", self.prev_log_index)?;
        match self.conflict_term {
            Some(t) => write!(f, "{t}@{}", self.conflict_index),
            None => write!(f, "{}", self.conflict_index),
        }
    }
}

/// `RequestVote t4 last=i9/t3`, with ` pre-vote` for a pre-vote.
impl Display for RequestVote {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "RequestVote {} last={}/{}",
            self.term, self.last_log_index, self.last_log_term
        )?;
        pre_vote_suffix(f, self.pre_vote)?;
        if self.transfer {
            f.write_str(" transfer")?;
        }
        Ok(())
    }
}

/// `RequestVoteResponse t4 granted` or `... refused`, with ` pre-vote`.
impl Display for RequestVoteResponse {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let verdict = if self.granted { "granted" } else { "refused" };
        write!(f, "RequestVoteResponse {} {verdict}", self.term)?;
        pre_vote_suffix(f, self.pre_vote)
    }
}

fn pre_vote_suffix(f: &mut Formatter<'_>, pre_vote: bool) -> fmt::Result {
    if pre_vote {
        f.write_str(" pre-vote")?;
    }
    Ok(())
}

/// `AppendEntries t3 prev=i5/t2 entries=i6..=i8 commit=i5 round=7`
/// (`entries=none` for a heartbeat).
impl Display for AppendEntries {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "AppendEntries {} prev={}/{} entries={} commit={} round={}",
            self.term,
            self.prev_log_index,
            self.prev_log_term,
            Indexes(&self.entries),
            self.leader_commit,
            self.round
        )
    }
}

/// `AppendEntriesResponse t3 match=i8 round=7`, or with the refusal in place
/// of the (unused) match index: `AppendEntriesResponse t3 reject prev=i5
/// conflict=t2@i3 round=7`.
impl Display for AppendEntriesResponse {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "AppendEntriesResponse {} ", self.term)?;
        match &self.reject {
            None => write!(f, "match={}", self.match_index)?,
            Some(r) => write!(f, "{r}")?,
        }
        write!(f, " round={}", self.round)
    }
}

/// `InstallSnapshot t5 snapshot=i300/t4 bytes=64..130/130 round=3`.
impl Display for InstallSnapshot {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "InstallSnapshot {} snapshot={}/{} bytes={}..{}/{} round={}",
            self.term,
            self.index,
            self.snapshot_term,
            self.offset,
            self.offset.saturating_add(self.data.len() as u64),
            self.total_len,
            self.round
        )
    }
}

/// `InstallSnapshotResponse t5 match=i300 round=3` once the follower holds
/// the snapshot; `InstallSnapshotResponse t5 snapshot=i300 chunk=64
/// received=130 round=3` while it assembles one.
impl Display for InstallSnapshotResponse {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "InstallSnapshotResponse {} ", self.term)?;
        if self.match_index > LogIndex(0) {
            write!(f, "match={}", self.match_index)?;
        } else {
            write!(
                f,
                "snapshot={} chunk={} received={}",
                self.index, self.offset, self.received
            )?;
        }
        write!(f, " round={}", self.round)
    }
}

/// The message's own line: its kind, the sender's term, then its fields.
impl Display for Message {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Message::RequestVote(m) => m.fmt(f),
            Message::RequestVoteResponse(m) => m.fmt(f),
            Message::AppendEntries(m) => m.fmt(f),
            Message::AppendEntriesResponse(m) => m.fmt(f),
            Message::InstallSnapshot(m) => m.fmt(f),
            Message::InstallSnapshotResponse(m) => m.fmt(f),
            Message::TimeoutNow(m) => write!(f, "TimeoutNow {}", m.term),
        }
    }
}

/// `tick`, `n2: <message>`, `propose bytes=5`, `propose batch=3 bytes=15`,
/// `read-index id=7`, `snapshot i40 bytes=100`.
impl Display for Input {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Input::Tick => f.write_str("tick"),
            Input::Receive { from, msg } => write!(f, "{from}: {msg}"),
            Input::Propose(data) => write!(f, "propose bytes={}", data.len()),
            Input::ProposeBatch(batch) => write!(
                f,
                "propose batch={} bytes={}",
                batch.len(),
                batch.iter().map(Vec::len).sum::<usize>()
            ),
            Input::ReadIndex { id } => write!(f, "read-index id={id}"),
            Input::Snapshot { index, data } => {
                write!(f, "snapshot {index} bytes={}", data.len())
            }
            Input::Compact { index } => write!(f, "compact {index}"),
            Input::ChangeMembership(change) => write!(f, "change-membership {change:?}"),
            Input::TransferLeadership { to } => write!(f, "transfer-leadership to={to}"),
        }
    }
}

/// `persist hard-state t4 vote=n2 commit=i7`, `persist entries i6..=i8
/// term=t3`, `persist snapshot i300/t4 bytes=130 discard-log`,
/// `send n2: <message>`, `proposed i8/t3`, `not-leader hint=n2`,
/// `apply entries i6..=i8`, `apply snapshot i300/t4 bytes=130`,
/// `read-ready id=7 index=i8`, `read-failed id=7 hint=none`.
impl Display for Action {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Action::PersistHardState(hs) => write!(f, "persist hard-state {hs}"),
            Action::PersistEntries(es) => {
                write!(f, "persist entries {} {}", Indexes(es), Terms(es))
            }
            Action::PersistSnapshot {
                snapshot,
                discard_log,
            } => {
                write!(f, "persist snapshot {snapshot}")?;
                if *discard_log {
                    f.write_str(" discard-log")?;
                }
                Ok(())
            }
            Action::Send { to, msg } => write!(f, "send {to}: {msg}"),
            Action::Proposed { index, term } => write!(f, "proposed {index}/{term}"),
            Action::NotLeader { leader_hint } => {
                write!(f, "not-leader hint={}", MaybeNode(*leader_hint))
            }
            Action::Apply(es) => write!(f, "apply entries {}", Indexes(es)),
            Action::ApplySnapshot(s) => write!(f, "apply snapshot {s}"),
            Action::ReadReady { id, index } => write!(f, "read-ready id={id} index={index}"),
            Action::SnapshotWanted { index } => write!(f, "snapshot-wanted from={index}"),
            Action::ReadFailed { id, leader_hint } => {
                write!(f, "read-failed id={id} hint={}", MaybeNode(*leader_hint))
            }
            Action::MembershipRefused(why) => write!(f, "membership-refused: {why}"),
            Action::TransferRefused(why) => write!(f, "transfer-refused: {why}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Term;

    fn entry(index: u64, term: u64, payload: Payload) -> Entry {
        Entry {
            index: LogIndex(index),
            term: Term(term),
            payload,
        }
    }

    fn installed() -> InstallSnapshotResponse {
        InstallSnapshotResponse {
            term: Term(5),
            match_index: LogIndex(300),
            index: LogIndex(300),
            offset: 0,
            received: 130,
            round: 3,
        }
    }

    fn snapshot() -> Snapshot {
        Snapshot::new(LogIndex(300), Term(4), Default::default(), vec![0; 130])
    }

    fn line(x: impl Display) -> String {
        x.to_string()
    }

    #[test]
    fn records() {
        assert_eq!(line(entry(6, 2, Payload::Noop)), "i6/t2 noop");
        assert_eq!(
            line(entry(7, 3, Payload::Command(vec![1; 5]))),
            "i7/t3 bytes=5"
        );
        let hs = HardState {
            term: Term(4),
            vote: Some(NodeId(2)),
            commit: LogIndex(7),
        };
        assert_eq!(line(hs), "t4 vote=n2 commit=i7");
        assert_eq!(line(HardState::default()), "t0 vote=none commit=i0");
        assert_eq!(line(snapshot()), "i300/t4 bytes=130");
    }

    #[test]
    fn messages() {
        let append = AppendEntries {
            term: Term(3),
            prev_log_index: LogIndex(5),
            prev_log_term: Term(2),
            entries: vec![
                entry(6, 2, Payload::Noop),
                entry(7, 3, Payload::Command(vec![1])),
                entry(8, 3, Payload::Command(vec![2])),
            ],
            leader_commit: LogIndex(5),
            round: 7,
        };
        assert_eq!(
            line(Message::AppendEntries(append.clone())),
            "AppendEntries t3 prev=i5/t2 entries=i6..=i8 commit=i5 round=7"
        );
        let heartbeat = AppendEntries {
            entries: Vec::new(),
            ..append
        };
        assert_eq!(
            line(Message::AppendEntries(heartbeat)),
            "AppendEntries t3 prev=i5/t2 entries=none commit=i5 round=7"
        );
        let vote = RequestVote {
            term: Term(4),
            last_log_index: LogIndex(9),
            last_log_term: Term(3),
            pre_vote: true,
            transfer: false,
        };
        assert_eq!(
            line(Message::RequestVote(vote)),
            "RequestVote t4 last=i9/t3 pre-vote"
        );
        let answer = RequestVoteResponse {
            term: Term(4),
            granted: false,
            pre_vote: false,
        };
        assert_eq!(
            line(Message::RequestVoteResponse(answer)),
            "RequestVoteResponse t4 refused"
        );
        let ack = AppendEntriesResponse {
            term: Term(3),
            match_index: LogIndex(8),
            reject: None,
            round: 7,
        };
        assert_eq!(
            line(Message::AppendEntriesResponse(ack)),
            "AppendEntriesResponse t3 match=i8 round=7"
        );
        let refusal = AppendEntriesResponse {
            term: Term(3),
            match_index: LogIndex(0),
            reject: Some(Reject {
                prev_log_index: LogIndex(5),
                conflict_term: Some(Term(2)),
                conflict_index: LogIndex(3),
            }),
            round: 7,
        };
        assert_eq!(
            line(Message::AppendEntriesResponse(refusal)),
            "AppendEntriesResponse t3 reject prev=i5 conflict=t2@i3 round=7"
        );
        let short_log = Reject {
            prev_log_index: LogIndex(5),
            conflict_term: None,
            conflict_index: LogIndex(4),
        };
        assert_eq!(line(short_log), "reject prev=i5 conflict=i4");
        let install = InstallSnapshot {
            term: Term(5),
            index: LogIndex(300),
            snapshot_term: Term(4),
            membership: Default::default(),
            total_len: 130,
            offset: 64,
            data: vec![9; 66],
            round: 3,
        };
        assert_eq!(
            line(Message::InstallSnapshot(install)),
            "InstallSnapshot t5 snapshot=i300/t4 bytes=64..130/130 round=3"
        );
        assert_eq!(
            line(Message::InstallSnapshotResponse(installed())),
            "InstallSnapshotResponse t5 match=i300 round=3"
        );
        let partly = InstallSnapshotResponse {
            match_index: LogIndex(0),
            received: 64,
            offset: 64,
            ..installed()
        };
        assert_eq!(
            line(Message::InstallSnapshotResponse(partly)),
            "InstallSnapshotResponse t5 snapshot=i300 chunk=64 received=64 round=3"
        );
    }

    #[test]
    fn inputs() {
        assert_eq!(line(Input::Tick), "tick");
        let receive = Input::Receive {
            from: NodeId(2),
            msg: Message::InstallSnapshotResponse(installed()),
        };
        assert_eq!(
            line(receive),
            "n2: InstallSnapshotResponse t5 match=i300 round=3"
        );
        assert_eq!(line(Input::Propose(vec![0; 5])), "propose bytes=5");
        let batch = Input::ProposeBatch(vec![vec![0; 5], vec![0; 10]]);
        assert_eq!(line(batch), "propose batch=2 bytes=15");
        assert_eq!(line(Input::ReadIndex { id: 7 }), "read-index id=7");
        let snap = Input::Snapshot {
            index: LogIndex(40),
            data: vec![0; 100],
        };
        assert_eq!(line(snap), "snapshot i40 bytes=100");
    }

    #[test]
    fn actions() {
        let hs = HardState {
            term: Term(4),
            vote: Some(NodeId(2)),
            commit: LogIndex(7),
        };
        assert_eq!(
            line(Action::PersistHardState(hs)),
            "persist hard-state t4 vote=n2 commit=i7"
        );
        let entries = vec![
            entry(6, 2, Payload::Noop),
            entry(7, 3, Payload::Command(vec![1])),
        ];
        assert_eq!(
            line(Action::PersistEntries(entries.clone())),
            "persist entries i6..=i7 terms=t2..=t3"
        );
        assert_eq!(
            line(Action::PersistEntries(entries[1..].to_vec())),
            "persist entries i7 term=t3"
        );
        let persist = Action::PersistSnapshot {
            snapshot: snapshot(),
            discard_log: true,
        };
        assert_eq!(
            line(persist),
            "persist snapshot i300/t4 bytes=130 discard-log"
        );
        let vote = RequestVote {
            term: Term(4),
            last_log_index: LogIndex(9),
            last_log_term: Term(3),
            pre_vote: false,
            transfer: false,
        };
        let send = Action::Send {
            to: NodeId(3),
            msg: Message::RequestVote(vote),
        };
        assert_eq!(line(send), "send n3: RequestVote t4 last=i9/t3");
        let proposed = Action::Proposed {
            index: LogIndex(8),
            term: Term(3),
        };
        assert_eq!(line(proposed), "proposed i8/t3");
        let not_leader = Action::NotLeader {
            leader_hint: Some(NodeId(2)),
        };
        assert_eq!(line(not_leader), "not-leader hint=n2");
        assert_eq!(line(Action::Apply(entries)), "apply entries i6..=i7");
        assert_eq!(
            line(Action::ApplySnapshot(snapshot())),
            "apply snapshot i300/t4 bytes=130"
        );
        let ready = Action::ReadReady {
            id: 7,
            index: LogIndex(8),
        };
        assert_eq!(line(ready), "read-ready id=7 index=i8");
        let failed = Action::ReadFailed {
            id: 7,
            leader_hint: None,
        };
        assert_eq!(line(failed), "read-failed id=7 hint=none");
    }
}
