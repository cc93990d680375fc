//! Assertions on the machine's own state, checked after every `step`.
//!
//! A broken invariant is a bug in this crate, never the fault of an input
//! (hostile input is dropped long before it could break one), so it panics;
//! the simulator turns each panic into a failing seed. Checks that cost O(1)
//! or O(peers) are plain `assert!`s, so they also run in release builds (the
//! simulator's); checks that walk the log, or a follower's in-flight queue,
//! are `debug_assert!`s.

#[cfg(test)]
use crate::progress::Progress;
use crate::types::{LogIndex, NodeId};
use crate::{Raft, Role};

/// The role changes the code makes, and the only ones it may make:
///
/// * to `Follower` from anywhere (a higher term, a leader's message, a lost
///   campaign, check-quorum), including from `Follower` itself;
/// * to `PreCandidate` or `Candidate` on an election timeout from any role
///   but `Leader` (so a candidate that times out starts over, with a pre-vote
///   if configured), and `PreCandidate` to `Candidate` on winning a pre-vote;
/// * to `Leader` only from `Candidate`, on winning a vote.
pub(crate) fn legal_role_change(from: Role, to: Role) -> bool {
    match to {
        Role::Follower => true,
        Role::PreCandidate | Role::Candidate => from != Role::Leader,
        Role::Leader => from == Role::Candidate,
    }
}

impl Raft {
    /// Every change of role goes through here, so an illegal one fails where
    /// it happens. (Checking once per step would not do: one tick of a
    /// single-node cluster goes Follower → PreCandidate → Candidate → Leader.)
    pub(crate) fn set_role(&mut self, to: Role) {
        assert!(
            legal_role_change(self.role, to),
            "{}: illegal role change {:?} -> {:?} in {}",
            self.config.id,
            self.role,
            to,
            self.term
        );
        self.role = to;
    }

    /// The invariants that hold between any two steps.
    pub(crate) fn check_invariants(&self) {
        let id = self.config.id;
        let (applied, commit, last) = (self.applied, self.commit, self.log.last_index());
        let snap = self.log.snapshot_index();
        assert!(
            applied <= commit && commit <= last,
            "{id}: expected applied <= commit <= last index, have applied {applied}, commit {commit}, last {last}"
        );
        assert!(
            commit >= self.commit_checked,
            "{id}: commit index went back from {} to {commit}",
            self.commit_checked
        );
        assert!(
            snap <= applied,
            "{id}: snapshot at {snap} covers more than was applied ({applied})"
        );
        let kept = self.snapshot.as_ref().map_or(LogIndex(0), |s| s.index);
        assert!(
            kept == snap,
            "{id}: the snapshot kept for followers is at {kept}, the log's at {snap}"
        );
        self.check_role_state();
        if self.role == Role::Leader {
            self.check_progress();
        }
        debug_assert!(
            self.log.broken_invariant(self.term).is_none(),
            "{id}: log invariant broken: {}",
            self.log.broken_invariant(self.term).unwrap_or_default()
        );
    }

    /// What each role owns: only a leader tracks followers, only a campaign
    /// counts votes.
    fn check_role_state(&self) {
        let id = self.config.id;
        let role = self.role;
        let campaigning = matches!(role, Role::PreCandidate | Role::Candidate);
        assert!(
            self.votes.is_empty() != campaigning
                && (!campaigning || self.votes.get(&id) == Some(&true)),
            "{id}: {role:?} in {} holds votes {{{}}}",
            self.term,
            self.votes
                .iter()
                .map(|(n, granted)| format!("{n}: {granted}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        if role == Role::Leader {
            assert!(
                self.leader == Some(id) && self.vote == Some(id),
                "{id}: leader of {} with leader hint {:?} and vote {:?}",
                self.term,
                self.leader,
                self.vote
            );
            assert!(
                self.progress.keys().eq(self.peers.iter()),
                "{id}: leader of {} tracks [{}], its peers are [{}]",
                self.term,
                nodes(&self.progress.keys().copied().collect::<Vec<_>>()),
                nodes(&self.peers)
            );
        } else {
            assert!(
                self.progress.is_empty(),
                "{id}: {role:?} in {} still tracks progress of [{}]",
                self.term,
                nodes(&self.progress.keys().copied().collect::<Vec<_>>())
            );
        }
    }

    /// Leader: every follower's progress is internally consistent and never
    /// ahead of the leader's own log.
    fn check_progress(&self) {
        let id = self.config.id;
        let last = self.log.last_index();
        for (peer, pr) in &self.progress {
            assert!(
                pr.indexes_hold() && pr.next_index() <= last.next(),
                "{id}: progress of {peer} has match {} and next {} with last index {last}",
                pr.match_index(),
                pr.next_index()
            );
            debug_assert!(
                pr.broken_invariant().is_none(),
                "{id}: progress of {peer}: {}",
                pr.broken_invariant().unwrap_or_default()
            );
        }
    }
}

/// `n1, n2, ...` for assertion messages.
fn nodes(ids: &[NodeId]) -> String {
    let names: Vec<String> = ids.iter().map(NodeId::to_string).collect();
    names.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Config;

    #[test]
    fn role_changes_the_code_makes_are_legal_and_no_others() {
        use Role::*;
        let legal = [
            (Follower, Follower),
            (Follower, PreCandidate),
            (Follower, Candidate),
            (PreCandidate, Follower),
            (PreCandidate, PreCandidate),
            (PreCandidate, Candidate),
            (Candidate, Follower),
            (Candidate, PreCandidate),
            (Candidate, Candidate),
            (Candidate, Leader),
            (Leader, Follower),
        ];
        for from in [Follower, PreCandidate, Candidate, Leader] {
            for to in [Follower, PreCandidate, Candidate, Leader] {
                assert_eq!(
                    legal_role_change(from, to),
                    legal.contains(&(from, to)),
                    "{from:?} -> {to:?}"
                );
            }
        }
    }

    fn node() -> Raft {
        Raft::new(Config::new(
            NodeId(1),
            vec![NodeId(1), NodeId(2), NodeId(3)],
        ))
        .unwrap()
    }

    #[test]
    #[should_panic(expected = "n1: illegal role change Follower -> Leader in t0")]
    fn a_follower_cannot_become_leader_without_a_campaign() {
        node().set_role(Role::Leader);
    }

    #[test]
    #[should_panic(expected = "n1: commit index went back from i3 to i0")]
    fn a_commit_index_going_back_is_caught() {
        let mut r = node();
        r.commit_checked = LogIndex(3);
        r.check_invariants();
    }

    #[test]
    #[should_panic(expected = "n1: Follower in t0 still tracks progress of [n2]")]
    fn a_follower_tracking_progress_is_caught() {
        let mut r = node();
        r.progress.insert(NodeId(2), Progress::new(LogIndex(1)));
        r.check_invariants();
    }
}
