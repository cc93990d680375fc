//! A blocking operator's client: asks nodes for their status and asks the
//! leader for membership changes and leadership transfers, following the
//! leader's address when a node names it. The `kv member`, `kv status` and
//! `kv transfer-leader` commands, and a node started with `--join`, use it.

use core_kv::{ChangeOutcome, ClusterChange};
use node_shell::DEFAULT_MAX_FRAME_BYTES;
use node_shell::{AdminReply, AdminRequest, Frame, NodeStatus, CLIENT_NODE};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};
use wire::{read_frame, write_frame, Hello};

/// How long one request to one node may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);

/// Pause before asking again when no leader is known or a change must wait.
const RETRY_PAUSE: Duration = Duration::from_millis(100);

/// Why an operator's request failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    /// A node could not be reached or spoke garbage.
    #[error("{addr}: {what}")]
    Unreachable {
        /// The node's address.
        addr: String,
        /// What went wrong.
        what: String,
    },
    /// The leader refused the change for good.
    #[error("refused by the leader: {0}")]
    Refused(String),
    /// No leader took the request in time.
    #[error("no leader answered within {0:?} (is a majority of the voters up?)")]
    Timeout(Duration),
}

/// An operator's client of one cluster.
#[derive(Clone, Debug)]
pub struct AdminClient {
    /// Addresses to start from (any members).
    seeds: Vec<String>,
    /// The leader's address, once known.
    leader: Option<String>,
    hello: Hello,
    next_id: u64,
}

impl AdminClient {
    /// A client of the cluster `cluster` (speaking `protocol`) that starts
    /// from the nodes at `seeds`.
    pub fn new(seeds: Vec<String>, cluster: u64, protocol: u32) -> AdminClient {
        AdminClient {
            seeds,
            leader: None,
            hello: Hello::new(protocol, cluster, CLIENT_NODE),
            next_id: 0,
        }
    }

    /// The status of the node at `addr`.
    pub fn status(&mut self, addr: &str) -> Result<NodeStatus, AdminError> {
        match self.call(addr, AdminRequest::Status)? {
            AdminReply::Status(s) => Ok(*s),
            other => Err(unreachable(
                addr,
                format!("answered {other:?} to a status request"),
            )),
        }
    }

    /// The leader's status: asks the seeds (and whoever they name) until
    /// a leader answers or `deadline` passes.
    pub fn leader_status(&mut self, deadline: Duration) -> Result<NodeStatus, AdminError> {
        let started = Instant::now();
        loop {
            for addr in self.candidates() {
                let Ok(status) = self.status(&addr) else {
                    continue;
                };
                if status.role == "leader" {
                    self.leader = Some(addr);
                    return Ok(status);
                }
                if let Some(l) = status.leader_addr {
                    if let Ok(s) = self.status(&l) {
                        if s.role == "leader" {
                            self.leader = Some(l);
                            return Ok(s);
                        }
                    }
                }
            }
            if started.elapsed() > deadline {
                return Err(AdminError::Timeout(deadline));
            }
            std::thread::sleep(RETRY_PAUSE);
        }
    }

    /// Ask the leader for `change`, retrying while no leader is known or
    /// the leader asks to retry, until `deadline`.
    pub fn change(
        &mut self,
        change: ClusterChange,
        deadline: Duration,
    ) -> Result<ChangeOutcome, AdminError> {
        let started = Instant::now();
        loop {
            for addr in self.candidates() {
                let reply = match self.call(&addr, AdminRequest::Change(change.clone())) {
                    Ok(r) => r,
                    Err(_) => continue,
                };
                let AdminReply::Changed {
                    outcome,
                    leader_addr,
                } = reply
                else {
                    continue;
                };
                match outcome {
                    ChangeOutcome::Proposed { .. } | ChangeOutcome::TransferStarted => {
                        self.leader = Some(addr);
                        return Ok(outcome);
                    }
                    ChangeOutcome::Refused { reason, retry } => {
                        self.leader = Some(addr);
                        if !retry {
                            return Err(AdminError::Refused(reason));
                        }
                        break;
                    }
                    ChangeOutcome::NotLeader(_) => {
                        if let Some(l) = leader_addr {
                            self.leader = Some(l);
                            break;
                        }
                    }
                }
            }
            if started.elapsed() > deadline {
                return Err(AdminError::Timeout(deadline));
            }
            std::thread::sleep(RETRY_PAUSE);
        }
    }

    /// The known leader first, then the seeds.
    fn candidates(&self) -> Vec<String> {
        let mut out: Vec<String> = self.leader.iter().cloned().collect();
        out.extend(
            self.seeds
                .iter()
                .filter(|s| Some(*s) != self.leader.as_ref())
                .cloned(),
        );
        out
    }

    /// One request to the node at `addr` on a fresh connection.
    fn call(&mut self, addr: &str, request: AdminRequest) -> Result<AdminReply, AdminError> {
        self.next_id += 1;
        let id = self.next_id;
        let fail = |what: String| unreachable(addr, what);
        let sock = addr
            .to_socket_addrs()
            .map_err(|e| fail(format!("bad address: {e}")))?
            .next()
            .ok_or_else(|| fail("the address resolves to nothing".into()))?;
        let mut stream = TcpStream::connect_timeout(&sock, CALL_TIMEOUT)
            .map_err(|e| fail(format!("cannot connect: {e}")))?;
        let _ = stream.set_read_timeout(Some(CALL_TIMEOUT));
        let max = DEFAULT_MAX_FRAME_BYTES;
        write_frame(&mut stream, &self.hello, max).map_err(|e| fail(e.to_string()))?;
        let frame: Frame<(), ()> = Frame::Admin { id, request };
        write_frame(&mut stream, &frame, max).map_err(|e| fail(e.to_string()))?;
        loop {
            match read_frame::<_, Frame<(), ()>>(&mut stream, max) {
                Ok(Some(Frame::AdminReply { id: got, reply })) if got == id => return Ok(reply),
                Ok(Some(_)) => continue,
                Ok(None) => return Err(fail("closed the connection without answering".into())),
                Err(e) => return Err(fail(e.to_string())),
            }
        }
    }
}

fn unreachable(addr: &str, what: String) -> AdminError {
    AdminError::Unreachable {
        addr: addr.to_string(),
        what,
    }
}
