//! Membership operations on a running cluster, as the `kv member`,
//! `kv transfer-leader` and `kv status` commands and `kv serve --join` run
//! them: each change goes to the leader, and the command waits until the
//! change is committed (and, for a new node, until it has caught up as a
//! learner before promoting it), printing progress as it goes.

use core_kv::{ChangeOutcome, ClusterChange};
use core_raft::{Member, Membership, MembershipChange, NodeId};
use driver_threads::admin::{AdminClient, AdminError};
use node_shell::NodeStatus;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

/// How often the commands look at the leader while they wait.
const POLL: Duration = Duration::from_millis(100);

/// A membership operation's failure, ready to print.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct MemberError(String);

impl From<AdminError> for MemberError {
    fn from(e: AdminError) -> Self {
        MemberError(e.to_string())
    }
}

fn fail<T>(what: String) -> Result<T, MemberError> {
    Err(MemberError(what))
}

/// Runs membership operations against one cluster.
pub struct Operator {
    client: AdminClient,
    /// How long any one wait may take.
    pub timeout: Duration,
    /// Print progress lines to stderr.
    pub verbose: bool,
}

impl Operator {
    /// An operator of the cluster reachable at `seeds`.
    pub fn new(client: AdminClient, timeout: Duration) -> Operator {
        Operator {
            client,
            timeout,
            verbose: true,
        }
    }

    fn say(&self, line: String) {
        if self.verbose {
            eprintln!("{line}");
        }
    }

    /// The leader's status.
    pub fn leader(&mut self) -> Result<NodeStatus, MemberError> {
        Ok(self.client.leader_status(self.timeout)?)
    }

    /// The status of the node at `addr`.
    pub fn status_of(&mut self, addr: &str) -> Result<NodeStatus, MemberError> {
        Ok(self.client.status(addr)?)
    }

    /// Ask the leader for `change`; returns how it was taken.
    fn ask(&mut self, change: ClusterChange) -> Result<ChangeOutcome, MemberError> {
        Ok(self.client.change(change, self.timeout)?)
    }

    /// Wait until the leader's committed membership satisfies `done`.
    fn await_membership(
        &mut self,
        what: &str,
        done: impl Fn(&Membership) -> bool,
    ) -> Result<NodeStatus, MemberError> {
        let started = Instant::now();
        loop {
            if let Ok(s) = self.client.leader_status(POLL * 5) {
                if done(&s.membership) && s.membership_committed() {
                    return Ok(s);
                }
            }
            if started.elapsed() > self.timeout {
                return fail(format!(
                    "{what}: not committed within {:?}; `kv member list` shows where it stands",
                    self.timeout
                ));
            }
            std::thread::sleep(POLL);
        }
    }

    /// Add node `id` listening at `addr` with `incarnation`: as a learner,
    /// then (unless `learner_only`) wait until it holds every committed
    /// entry and promote it.
    pub fn add(
        &mut self,
        id: NodeId,
        addr: &str,
        incarnation: u64,
        learner_only: bool,
    ) -> Result<(), MemberError> {
        let leader = self.leader()?;
        match leader.membership.member(id) {
            Some(m) if m.incarnation != incarnation => {
                return fail(format!(
                    "node {} is already a member with incarnation {:016x}, and the node at \
                     {addr} has {incarnation:016x}: a different data directory. Remove node {} \
                     first (`kv member remove {}`), or add this node under a new id",
                    id.0, m.incarnation, id.0, id.0
                ));
            }
            Some(_) => self.say(format!("node {} is already a member", id.0)),
            None => {
                let member = Member {
                    addr: addr.to_string(),
                    incarnation,
                };
                let change = MembershipChange::AddLearner(id, member);
                self.ask(ClusterChange::Membership(change))?;
                self.await_membership("adding the learner", |m| m.learners.contains(&id))?;
                self.say(format!("node {} ({addr}) added as a learner", id.0));
            }
        }
        if learner_only || self.leader()?.membership.is_voter(id) {
            return Ok(());
        }
        self.await_caught_up(id)?;
        self.promote(id)
    }

    /// Add the running node at `addr`, which must be node `id`: its
    /// incarnation comes from its own status.
    pub fn add_running(
        &mut self,
        id: NodeId,
        addr: &str,
        learner_only: bool,
    ) -> Result<(), MemberError> {
        let status = self.status_of(addr)?;
        if status.id != id {
            return fail(format!(
                "the node at {addr} is node {}, not node {}",
                status.id.0, id.0
            ));
        }
        self.add(id, addr, status.incarnation, learner_only)
    }

    /// Wait until learner `id` holds every entry the leader had committed.
    fn await_caught_up(&mut self, id: NodeId) -> Result<(), MemberError> {
        let started = Instant::now();
        let mut last_report = Instant::now();
        loop {
            let s = self.leader()?;
            if s.caught_up(id) {
                self.say(format!(
                    "node {} has caught up (commit index {})",
                    id.0, s.commit.0
                ));
                return Ok(());
            }
            if last_report.elapsed() > Duration::from_secs(1) {
                let matched = s
                    .replication
                    .iter()
                    .find(|(p, _)| *p == id)
                    .map(|(_, m)| m.0);
                self.say(format!(
                    "node {} catching up: holds {} of {} committed entries",
                    id.0,
                    matched.unwrap_or(0),
                    s.commit.0
                ));
                last_report = Instant::now();
            }
            if started.elapsed() > self.timeout {
                return fail(format!(
                    "node {} did not catch up within {:?}; it stays a learner (promote it \
                     later with `kv member promote {}`)",
                    id.0, self.timeout, id.0
                ));
            }
            std::thread::sleep(POLL);
        }
    }

    /// Make learner `id` a voter (done already counts as done).
    pub fn promote(&mut self, id: NodeId) -> Result<(), MemberError> {
        let asked = self.ask(ClusterChange::Membership(MembershipChange::Promote(id)));
        if let Err(e) = asked {
            if self.leader()?.membership.is_voter(id) {
                self.say(format!("node {} is a voter", id.0));
                return Ok(());
            }
            return Err(e);
        }
        self.await_membership("promoting the learner", |m| m.is_voter(id))?;
        self.say(format!("node {} is a voter", id.0));
        Ok(())
    }

    /// Remove node `id`; if it leads, hand leadership to another voter
    /// first.
    pub fn remove(&mut self, id: NodeId) -> Result<(), MemberError> {
        let leader = self.leader()?;
        if !leader.membership.contains(id) {
            return fail(format!("node {} is not a member", id.0));
        }
        if leader.id == id {
            self.say(format!(
                "node {} leads: transferring leadership first",
                id.0
            ));
            self.transfer(None)?;
        }
        self.ask(ClusterChange::Membership(MembershipChange::Remove(id)))?;
        self.await_membership("removing the node", |m| !m.contains(id))?;
        self.say(format!("node {} removed", id.0));
        Ok(())
    }

    /// Hand leadership to `to` (default: the most up-to-date other voter)
    /// and wait until it leads.
    pub fn transfer(&mut self, to: Option<NodeId>) -> Result<NodeId, MemberError> {
        let leader = self.leader()?;
        let to = match to {
            Some(t) => t,
            None => leader
                .replication
                .iter()
                .filter(|(p, _)| leader.membership.is_voter(*p))
                .max_by_key(|(_, m)| *m)
                .map(|(p, _)| *p)
                .ok_or_else(|| MemberError("no other voter to lead".into()))?,
        };
        if leader.id == to {
            self.say(format!("node {} leads already", to.0));
            return Ok(to);
        }
        let started = Instant::now();
        loop {
            match self.ask(ClusterChange::TransferLeadership(to))? {
                ChangeOutcome::TransferStarted => {}
                other => return fail(format!("unexpected answer: {other:?}")),
            }
            let wait_until = Instant::now() + Duration::from_secs(2);
            while Instant::now() < wait_until {
                if let Ok(s) = self.client.leader_status(POLL * 5) {
                    if s.id == to {
                        self.say(format!("node {} leads (term {})", to.0, s.term.0));
                        return Ok(to);
                    }
                }
                std::thread::sleep(POLL);
            }
            if started.elapsed() > self.timeout {
                return fail(format!(
                    "node {} did not take over within {:?}",
                    to.0, self.timeout
                ));
            }
        }
    }

    /// The membership as a table, with each member's own view.
    pub fn list(&mut self) -> Result<String, MemberError> {
        let leader = self.leader()?;
        let m = &leader.membership;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<4} {:<22} {:<8} {:<14} {:>6} {:>9} {:>9}  INCARNATION",
            "ID", "ADDRESS", "MEMBER", "ROLE", "TERM", "APPLIED", "MATCH"
        );
        let ids: Vec<NodeId> = m.voters.iter().chain(m.learners.iter()).copied().collect();
        for id in ids {
            let info = m.member(id).cloned().unwrap_or_default();
            let kind = if m.is_voter(id) { "voter" } else { "learner" };
            let matched = if id == leader.id {
                leader.last_index.0.to_string()
            } else {
                leader
                    .replication
                    .iter()
                    .find(|(p, _)| *p == id)
                    .map_or("-".to_string(), |(_, i)| i.0.to_string())
            };
            let (role, term, applied) = match self.client.status(&info.addr) {
                Ok(s) => (s.role, s.term.0.to_string(), s.applied.0.to_string()),
                Err(_) => ("unreachable".to_string(), "-".into(), "-".into()),
            };
            let _ = writeln!(
                out,
                "{:<4} {:<22} {:<8} {:<14} {:>6} {:>9} {:>9}  {:016x}",
                id.0, info.addr, kind, role, term, applied, matched, info.incarnation
            );
        }
        let _ = write!(
            out,
            "leader: node {}, commit index {}, membership entry {} ({})",
            leader.id.0,
            leader.commit.0,
            leader.membership_index.0,
            if leader.membership_committed() {
                "committed"
            } else {
                "not yet committed"
            }
        );
        Ok(out)
    }
}
