//! Leader election (§5.2) with pre-vote (thesis §9.6) and the leader lease
//! that check-quorum gives followers (thesis §4.2.3).

use crate::message::{Entry, Message, Payload, RequestVote, RequestVoteResponse};
use crate::progress::Progress;
use crate::{Raft, Role};

impl Raft {
    /// True while this node has reason to believe a leader is alive: it heard
    /// from one (or is one) within the minimum election timeout. Vote requests
    /// are then ignored, so a node returning from a partition cannot depose a
    /// healthy leader.
    pub(crate) fn in_leader_lease(&self) -> bool {
        self.config.check_quorum
            && self.leader.is_some()
            && self.election_elapsed < self.config.election_ticks_min
    }

    /// Whether this node may start an election: a voter of the membership
    /// in effect may; so may a voter whose own removal is appended but not
    /// yet committed (thesis §4.2.2). Its log may hold entries, the removal
    /// among them, that the remaining voters lack, so that it alone can
    /// win; it campaigns among them without counting its own vote, leads
    /// only until the removal commits, then steps down for good.
    pub(crate) fn may_campaign(&self) -> bool {
        let id = self.config.id;
        if self.membership().is_voter(id) {
            return true;
        }
        let at = self.membership_index();
        at > self.commit && self.membership_at(at.prev()).is_voter(id)
    }

    /// Followers and candidates: count toward the election timeout.
    pub(crate) fn tick_election(&mut self) {
        self.election_elapsed += 1;
        if self.election_elapsed >= self.election_timeout {
            if !self.may_campaign() {
                // Learners and removed nodes never campaign.
                self.reset_election_timer();
                return;
            }
            if self.term.0 >= u64::MAX - 1 {
                // Only forged messages get a node here; campaigning would
                // reach the maximal term, which has no successor.
                tracing::warn!(node = %self.config.id, term = %self.term, "term space exhausted; not campaigning");
                self.reset_election_timer();
                return;
            }
            if self.config.pre_vote {
                self.become_pre_candidate();
            } else {
                self.become_candidate();
            }
        }
    }

    fn become_pre_candidate(&mut self) {
        self.set_role(Role::PreCandidate);
        self.leader = None;
        self.start_campaign(true, false);
    }

    fn become_candidate(&mut self) {
        self.campaign_in_next_term(false);
    }

    /// Leadership transfer: campaign at once, asking voters to set their
    /// leader lease aside.
    pub(crate) fn become_candidate_now(&mut self) {
        self.campaign_in_next_term(true);
    }

    fn campaign_in_next_term(&mut self, transfer: bool) {
        self.set_role(Role::Candidate);
        self.leader = None;
        self.term = self.term.next();
        self.vote = Some(self.config.id);
        // The new term and self-vote must be durable before any vote request
        // leaves: otherwise a crash could let this node vote twice in a term.
        self.persist_hard_state();
        self.start_campaign(false, transfer);
    }

    fn start_campaign(&mut self, pre_vote: bool, transfer: bool) {
        self.votes.clear();
        self.votes.insert(self.config.id, true);
        self.reset_election_timer();
        if self.tally_votes() {
            return;
        }
        let term = if pre_vote {
            self.term.next()
        } else {
            self.term
        };
        let msg = Message::RequestVote(RequestVote {
            term,
            last_log_index: self.log.last_index(),
            last_log_term: self.log.last_term(),
            pre_vote,
            transfer,
        });
        let voters: Vec<crate::NodeId> = self
            .membership()
            .voters
            .iter()
            .copied()
            .filter(|v| *v != self.config.id)
            .collect();
        for peer in voters {
            self.send(peer, msg.clone());
        }
    }

    /// Act on the votes gathered so far. Returns true if the campaign ended.
    fn tally_votes(&mut self) -> bool {
        let m = self.membership();
        let granted = self
            .votes
            .iter()
            .filter(|(n, g)| **g && m.is_voter(**n))
            .count();
        let refused = self
            .votes
            .iter()
            .filter(|(n, g)| !**g && m.is_voter(**n))
            .count();
        if granted >= self.quorum() {
            match self.role {
                Role::PreCandidate => self.become_candidate(),
                Role::Candidate => self.become_leader(),
                _ => {}
            }
            return true;
        }
        if refused >= self.quorum() {
            // The campaign cannot succeed; wait for a leader or the next timeout.
            self.become_follower(self.term, None);
            return true;
        }
        false
    }

    /// Voter side of a vote or pre-vote request (its term was already
    /// reconciled with ours in `receive`).
    pub(crate) fn handle_request_vote(&mut self, from: crate::NodeId, m: RequestVote) {
        let RequestVote {
            term,
            last_log_index,
            last_log_term,
            pre_vote,
            transfer: _,
        } = m;
        // §5.4.1: only a candidate whose log is at least as up to date as
        // ours may get our vote.
        let up_to_date = last_log_term > self.log.last_term()
            || (last_log_term == self.log.last_term() && last_log_index >= self.log.last_index());
        let can_vote = self.vote == Some(from)
            || (self.vote.is_none() && self.leader.is_none())
            || (pre_vote && term > self.term);
        let granted = can_vote && up_to_date;
        if granted && !pre_vote {
            self.vote = Some(from);
            self.persist_hard_state();
            self.reset_election_timer();
        }
        let reply_term = if granted && pre_vote { term } else { self.term };
        let reply = RequestVoteResponse {
            term: reply_term,
            granted,
            pre_vote,
        };
        self.send(from, Message::RequestVoteResponse(reply));
    }

    /// Candidate side: count a vote (or pre-vote) for the campaign it
    /// belongs to, ignoring answers to an earlier one.
    pub(crate) fn handle_vote_response(&mut self, from: crate::NodeId, m: RequestVoteResponse) {
        let RequestVoteResponse {
            term,
            granted,
            pre_vote,
        } = m;
        let expected = match (self.role, pre_vote) {
            (Role::PreCandidate, true) => self.term.next(),
            (Role::Candidate, false) => self.term,
            _ => return,
        };
        if term != expected && granted {
            return;
        }
        self.votes.insert(from, granted);
        self.tally_votes();
    }

    pub(crate) fn become_leader(&mut self) {
        self.set_role(Role::Leader);
        self.leader = Some(self.config.id);
        self.votes.clear();
        self.election_elapsed = 0;
        self.heartbeat_elapsed = 0;
        // A leader receives no snapshot; free a half-assembled one.
        self.incoming = None;
        // A copy asked for in an earlier term may never have come.
        self.snapshot_wanted = false;
        let next = self.log.last_index().next();
        self.progress = self
            .peers
            .iter()
            .map(|p| (*p, Progress::new(next)))
            .collect();
        tracing::debug!(node = %self.config.id, term = %self.term, "became leader");
        if self.config.leader_noop {
            let entry = Entry {
                index: next,
                term: self.term,
                payload: Payload::Noop,
            };
            self.log.push(entry.clone());
            self.out.push(crate::Action::PersistEntries(vec![entry]));
        }
        for peer in self.peers.clone() {
            self.send_append(peer);
        }
        self.maybe_commit();
    }
}
