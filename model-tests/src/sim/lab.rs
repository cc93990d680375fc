//! The 6.5840 Raft tester's helpers (`raft1/test.go`), on the simulated
//! cluster and in virtual time: `checkOneLeader`, `one`, `nCommitted`,
//! `wait`, and the lab's crash / restart / connect semantics (§4.1 of the
//! lab catalogue).

use super::cluster::{Client, Cluster, CLIENT_POLL_MS};
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
        let mut task = One::new(self, command, expected, retry);
        loop {
            match task.advance(self) {
                Ok(index) => return index,
                Err(wait_ms) => self.run_for(wait_ms),
            }
        }
    }

    /// `go one(...)`: the same as [`Cluster::one`], running in the
    /// background while the scenario goes on.
    pub fn spawn_one(&mut self, command: Vec<u8>, expected: usize, retry: bool) {
        let task = One::new(self, command, expected, retry);
        self.spawn(Box::new(task));
    }

    /// Run until every background client has finished.
    pub fn join_clients(&mut self) {
        while self.clients_running() > 0 {
            self.run_for(CLIENT_POLL_MS);
        }
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

/// The state of one `one()` agreement, advanced without blocking so it can
/// run in the foreground or as a background client.
pub struct One {
    command: Vec<u8>,
    expected: usize,
    retry: bool,
    t0: u64,
    starts: usize,
    /// The index the command was accepted at, and when.
    waiting: Option<(LogIndex, u64)>,
    next_at: u64,
}

impl One {
    fn new(c: &Cluster, command: Vec<u8>, expected: usize, retry: bool) -> One {
        One {
            command,
            expected,
            retry,
            t0: c.now_ms,
            starts: 0,
            waiting: None,
            next_at: c.now_ms,
        }
    }

    /// Do what is due now: `Ok(index)` once agreed, else `Err(ms)` to wait.
    fn advance(&mut self, c: &mut Cluster) -> Result<LogIndex, u64> {
        if c.now_ms < self.next_at {
            return Err(self.next_at - c.now_ms);
        }
        if c.now_ms - self.t0 >= 10_000 {
            c.fail(format!(
                "one({:?}) failed to reach agreement in 10 s",
                self.command
            ));
        }
        if let Some((index, since)) = self.waiting {
            let (n, value) = c.n_committed(index);
            if n > 0 && n >= self.expected && value.as_ref() == Some(&self.command) {
                return Ok(index);
            }
            if c.now_ms - since < 2_000 {
                self.next_at = c.now_ms + 20;
                return Err(20);
            }
            if !self.retry {
                c.fail(format!("one({:?}) failed to reach agreement", self.command));
            }
            self.waiting = None;
        }
        for _ in 0..c.len() {
            self.starts = (self.starts + 1) % c.len();
            if c.is_connected(self.starts) && c.is_up(self.starts) {
                let (index, _, ok) = c.start_cmd(self.starts, self.command.clone());
                if ok {
                    self.waiting = Some((index, c.now_ms));
                    // Check at once: a single-node quorum commits immediately.
                    return self.advance(c);
                }
            }
        }
        self.next_at = c.now_ms + 50;
        Err(50)
    }
}

impl Client for One {
    fn poll(&mut self, cluster: &mut Cluster) -> bool {
        self.advance(cluster).is_ok()
    }
}
