//! Leadership transfer (thesis §3.10): a leader hands over to a chosen
//! voter, before it is removed or restarted, without the cluster waiting an
//! election timeout.

use crate::message::{Message, TimeoutNow};
use crate::types::NodeId;
use crate::{Action, Raft, Role};
use thiserror::Error;

/// Why a leader refused to transfer leadership.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum TransferRefused {
    /// Only a voter can lead.
    #[error("{0} is not a voter")]
    NotAVoter(NodeId),
    /// The leader is already the leader.
    #[error("{0} leads already")]
    ToSelf(NodeId),
}

impl Raft {
    /// Leader: start handing leadership to `to`.
    pub(crate) fn transfer_leadership(&mut self, to: NodeId) {
        if self.role != Role::Leader {
            self.out.push(Action::NotLeader {
                leader_hint: self.leader,
            });
            return;
        }
        if to == self.config.id {
            self.out
                .push(Action::TransferRefused(TransferRefused::ToSelf(to)));
            return;
        }
        if !self.membership().is_voter(to) {
            self.out
                .push(Action::TransferRefused(TransferRefused::NotAVoter(to)));
            return;
        }
        let give_up_at = self.ticks + self.config.election_ticks_max;
        self.transfer = Some((to, give_up_at));
        tracing::debug!(node = %self.config.id, %to, "transferring leadership");
        if !self.send_timeout_now_if_caught_up() {
            self.send_append(to);
        }
    }

    /// The voter leadership is being handed to, if a transfer is under way
    /// (the leader refuses proposals meanwhile and names it as the hint).
    pub(crate) fn transfer_target(&self) -> Option<NodeId> {
        self.transfer.map(|(to, _)| to)
    }

    /// Leader: once the target holds the whole log, tell it to campaign.
    /// Returns true if it did.
    pub(crate) fn send_timeout_now_if_caught_up(&mut self) -> bool {
        let Some((to, _)) = self.transfer else {
            return false;
        };
        let caught_up = self
            .progress
            .get(&to)
            .is_some_and(|p| p.match_index() == self.log.last_index());
        if caught_up {
            let term = self.term;
            self.send(to, Message::TimeoutNow(TimeoutNow { term }));
        }
        caught_up
    }

    /// Leader, every tick: give up a transfer that has not happened in an
    /// election timeout (the target may be down), and serve again.
    pub(crate) fn expire_transfer(&mut self) {
        if let Some((to, give_up_at)) = self.transfer {
            if self.ticks >= give_up_at {
                tracing::debug!(node = %self.config.id, %to, "leadership transfer timed out");
                self.transfer = None;
            }
        }
    }

    /// Follower: the leader of our term hands over. Campaign at once,
    /// skipping the pre-vote, with requests that voters answer even inside
    /// their leader lease.
    pub(crate) fn handle_timeout_now(&mut self, from: NodeId, m: TimeoutNow) {
        if m.term != self.term
            || self.role != Role::Follower
            || self.leader != Some(from)
            || !self.membership().is_voter(self.config.id)
        {
            return;
        }
        self.become_candidate_now();
    }
}
