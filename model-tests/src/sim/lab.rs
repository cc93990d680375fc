//! The 6.5840 Raft tester's helpers (`raft1/test.go`), on the simulated
//! cluster and in virtual time: `checkOneLeader`, `one`, `nCommitted`,
//! `wait`, and the lab's crash / restart / connect semantics (§4.1 of the
//! lab catalogue).

use super::cluster::Cluster;
use core_raft::{LogIndex, Term};
use std::collections::BTreeMap;

/// The tester's election timeout, used as a sleep unit (1 s).
pub const ELECTION_TIMEOUT_MS: u64 = 1000;
/// The tester's per-test limit on (here: virtual) running time.
pub const TEST_TIME_LIMIT_MS: u64 = 120_000;
/// The 3D tests' ceiling on persisted Raft state.
pub const MAX_LOG_SIZE: usize = 2000;

/// Encode an integer command the way the lab tests use ints.
pub fn cmd(x: u64) -> Vec<u8> {
    x.to_le_bytes().to_vec()
}

impl Cluster {
    /// `checkOneLeader`: up to 10 rounds of sleeping 450–549 ms, then the
    /// leader of the highest term among connected, live servers. Fails if a
    /// term has two leaders or if no leader appears in about 5 s.
    pub fn check_one_leader(&mut self) -> usize {
        for _ in 0..10 {
            let ms = 450 + self.rng().below(100);
            self.run_for(ms);
            let mut leaders: BTreeMap<Term, Vec<usize>> = BTreeMap::new();
            for i in 0..self.len() {
                if !self.is_connected(i) {
                    continue;
                }
                if let Some(r) = self.raft(i) {
                    if r.is_leader() {
                        leaders.entry(r.term()).or_default().push(i);
                    }
                }
            }
            for (term, ls) in &leaders {
                if ls.len() > 1 {
                    self.fail(format!("term {term} has {} leaders: {ls:?}", ls.len()));
                }
            }
            if let Some((_, ls)) = leaders.last_key_value() {
                return ls[0];
            }
        }
        self.fail("expected one leader, got none".into())
    }

    /// `checkTerms`: every connected, live server reports the same term.
    pub fn check_terms(&self) -> Term {
        let mut term = None;
        for i in 0..self.len() {
            if !self.is_connected(i) {
                continue;
            }
            if let Some(r) = self.raft(i) {
                match term {
                    None => term = Some(r.term()),
                    Some(t) if t != r.term() => {
                        self.fail(format!("servers disagree on term: {t} vs {}", r.term()))
                    }
                    Some(_) => {}
                }
            }
        }
        term.unwrap_or_default()
    }

    /// `checkNoLeader`: no connected server believes it leads.
    pub fn check_no_leader(&self) {
        for i in 0..self.len() {
            if self.is_connected(i) && self.raft(i).is_some_and(|r| r.is_leader()) {
                self.fail(format!(
                    "expected no leader among connected servers, but {i} claims to be leader"
                ));
            }
        }
    }

    /// `nCommitted`: how many servers applied `index`, and the command there.
    /// Fails if two servers applied different commands.
    pub fn n_committed(&self, index: LogIndex) -> (usize, Option<Vec<u8>>) {
        let mut count = 0;
        let mut value: Option<Option<Vec<u8>>> = None;
        for i in 0..self.len() {
            if let Some(v) = self.app(i).get(index) {
                if let Some(seen) = &value {
                    if seen != v {
                        self.fail(format!("committed values do not match at index {index}"));
                    }
                }
                value = Some(v.clone());
                count += 1;
            }
        }
        (count, value.flatten())
    }

    /// The lab's `Start` on server `i`: `(index, term, is_leader)`.
    pub fn start_cmd(&mut self, i: usize, command: Vec<u8>) -> (LogIndex, Term, bool) {
        match self.propose(i, command) {
            Some((index, term)) => (index, term, true),
            None => (
                LogIndex(0),
                self.raft(i).map(|r| r.term()).unwrap_or_default(),
                false,
            ),
        }
    }

    /// `one`: submit `command` at whichever server leads, and wait until at
    /// least `expected` servers applied it. Retries for 10 s; with
    /// `retry == false` a failed first agreement is fatal.
    pub fn one(&mut self, command: Vec<u8>, expected: usize, retry: bool) -> LogIndex {
        let t0 = self.now_ms;
        let mut starts = 0;
        while self.now_ms - t0 < 10_000 {
            let mut index = None;
            for _ in 0..self.len() {
                starts = (starts + 1) % self.len();
                if self.is_connected(starts) && self.is_up(starts) {
                    let (i, _, ok) = self.start_cmd(starts, command.clone());
                    if ok {
                        index = Some(i);
                        break;
                    }
                }
            }
            if let Some(index) = index {
                let t1 = self.now_ms;
                while self.now_ms - t1 < 2_000 {
                    let (n, value) = self.n_committed(index);
                    if n > 0 && n >= expected && value.as_ref() == Some(&command) {
                        return index;
                    }
                    self.run_for(20);
                }
                if !retry {
                    self.fail(format!("one({command:?}) failed to reach agreement"));
                }
            } else {
                self.run_for(50);
            }
        }
        self.fail(format!(
            "one({command:?}) failed to reach agreement in 10 s"
        ))
    }

    /// `wait`: poll with backoff until `n` servers applied `index`. Returns
    /// `None` if some server moved past `start_term` (the leader changed),
    /// fails if too few servers committed in time.
    pub fn wait(&mut self, index: LogIndex, n: usize, start_term: Option<Term>) -> Option<Vec<u8>> {
        let mut to = 10;
        for _ in 0..30 {
            let (nd, _) = self.n_committed(index);
            if nd >= n {
                break;
            }
            self.run_for(to);
            if to < 1000 {
                to *= 2;
            }
            if let Some(t) = start_term {
                if (0..self.len()).any(|i| self.raft(i).is_some_and(|r| r.term() > t)) {
                    return None;
                }
            }
        }
        let (nd, value) = self.n_committed(index);
        if nd < n {
            self.fail(format!("only {nd} decided for index {index}; wanted {n}"));
        }
        value
    }

    /// `ShutdownServer` (the lab's crash): disconnect, then lose everything
    /// not persisted.
    pub fn shutdown(&mut self, i: usize) {
        self.disconnect(i);
        self.crash(i);
    }

    /// S25 `restart(i)`: start the server from its persisted state, then
    /// reconnect **every** server of the group (§10 pitfall 2).
    pub fn restart(&mut self, i: usize) {
        if self.is_up(i) {
            self.crash(i);
        }
        self.start(i);
        self.connect_all();
    }

    /// Largest persisted Raft state over all servers (the lab's `LogSize`).
    pub fn max_raft_state_size(&self) -> usize {
        (0..self.len())
            .map(|i| self.raft_state_size(i))
            .max()
            .unwrap_or(0)
    }

    /// Incoming requests delivered at all servers (the lab's RPC count).
    pub fn rpc_total(&self) -> u64 {
        self.net.requests_delivered.iter().sum()
    }

    /// The tester's 120 s limit, in virtual time.
    pub fn check_time_limit(&self) {
        if self.now_ms > TEST_TIME_LIMIT_MS {
            self.fail(format!(
                "test took longer than 120 s of virtual time ({} ms)",
                self.now_ms
            ));
        }
    }
}
