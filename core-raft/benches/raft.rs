//! Throughput of a 3-node cluster driven by the cores alone (messages
//! delivered instantly, persists applied to in-memory `Durable`s), and the
//! cost of one `step` on the replication hot path. Payloads are 128 bytes.
//!
//! Run: `cargo bench -p core-raft --bench raft -- --warm-up-time 1 --measurement-time 3`

use core_raft::{
    Action, AppendEntries, Config, Durable, Entry, Input, LogIndex, Message, NodeId, Payload, Raft,
};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::collections::VecDeque;
use std::hint::black_box;
use std::time::{Duration, Instant};

const PAYLOAD: usize = 128;
/// Every node snapshots once its log holds this many entries, so that the
/// in-memory log and storage stay bounded however long criterion runs.
const COMPACT_EVERY: u64 = 4096;

fn payload(i: u64) -> Vec<u8> {
    let mut p = vec![0u8; PAYLOAD];
    p[..8].copy_from_slice(&i.to_le_bytes());
    p
}

/// Three cores, their storage, and a FIFO of messages in flight.
struct Cluster {
    nodes: Vec<Raft>,
    durable: Vec<Durable>,
    queue: VecDeque<(NodeId, NodeId, Message)>,
    applied: u64,
    next_payload: u64,
}

impl Cluster {
    fn new() -> Cluster {
        let voters: Vec<NodeId> = (1..=3).map(NodeId).collect();
        let nodes = voters
            .iter()
            .map(|id| Raft::new(Config::new(*id, voters.clone())).unwrap())
            .collect();
        let mut c = Cluster {
            nodes,
            durable: vec![Durable::default(); 3],
            queue: VecDeque::new(),
            applied: 0,
            next_payload: 0,
        };
        while !c.nodes[0].is_leader() {
            c.step(0, Input::Tick);
            c.deliver_all();
        }
        c.deliver_all();
        c
    }

    fn step(&mut self, i: usize, input: Input) {
        let actions = self.nodes[i].step(input);
        let from = self.nodes[i].id();
        for a in actions {
            if self.durable[i].persist(&a) {
                continue;
            }
            match a {
                Action::Send { to, msg } => self.queue.push_back((from, to, msg)),
                Action::Apply(es) if i == 0 => self.applied += es.len() as u64,
                other => {
                    black_box(other);
                }
            }
        }
    }

    fn deliver_all(&mut self) {
        while let Some((from, to, msg)) = self.queue.pop_front() {
            self.step(to.0 as usize - 1, Input::Receive { from, msg });
        }
    }

    fn leader_commit(&self) -> LogIndex {
        self.nodes[0].commit_index()
    }

    fn next_payload(&mut self) -> Vec<u8> {
        self.next_payload += 1;
        payload(self.next_payload)
    }

    /// Propose `count` commands one by one (or as one batch), then deliver
    /// until the leader has committed them all.
    fn propose_and_commit(&mut self, count: usize, batch: bool) {
        let target = LogIndex(self.nodes[0].last_index().0 + count as u64);
        if batch {
            let cmds = (0..count).map(|_| self.next_payload()).collect();
            self.step(0, Input::ProposeBatch(cmds));
        } else {
            for _ in 0..count {
                let p = self.next_payload();
                self.step(0, Input::Propose(p));
            }
        }
        while self.leader_commit() < target {
            assert!(!self.queue.is_empty(), "stalled before committing");
            self.deliver_all();
        }
        self.maybe_compact();
    }

    fn maybe_compact(&mut self) {
        for i in 0..3 {
            let r = &self.nodes[i];
            if r.last_index().0 - r.snapshot_index().0 >= COMPACT_EVERY {
                let index = r.applied_index();
                self.step(
                    i,
                    Input::Snapshot {
                        index,
                        data: vec![0; 64],
                    },
                );
            }
        }
    }
}

fn cluster_throughput(c: &mut Criterion) {
    let mut g = c.benchmark_group("cluster_commit");
    g.throughput(Throughput::Elements(1));
    g.bench_function("1_client", |b| {
        let mut cl = Cluster::new();
        b.iter(|| cl.propose_and_commit(1, false));
    });
    for (name, batch) in [("1024_outstanding", false), ("propose_batch_1024", true)] {
        g.throughput(Throughput::Elements(1024));
        g.bench_function(name, |b| {
            let mut cl = Cluster::new();
            b.iter(|| cl.propose_and_commit(1024, batch));
        });
    }
    g.finish();
}

/// A leader and the follower acknowledgement of one new entry, prepared
/// outside the timed section.
fn step_cost(c: &mut Criterion) {
    let mut g = c.benchmark_group("step");
    g.throughput(Throughput::Elements(1));
    g.bench_function("leader_append_response", |b| {
        let mut cl = Cluster::new();
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let p = cl.next_payload();
                cl.step(0, Input::Propose(p));
                // Node 2 stores the entry; its answer is what we time.
                let msgs: Vec<_> = cl.queue.drain(..).collect();
                let mut ack = None;
                for (from, to, msg) in msgs {
                    if to == NodeId(2) {
                        for a in cl.nodes[1].step(Input::Receive { from, msg }) {
                            cl.durable[1].persist(&a);
                            if let Action::Send { msg, .. } = a {
                                ack = Some(msg);
                            }
                        }
                    }
                }
                let msg = ack.expect("node 2 acknowledged");
                let input = Input::Receive {
                    from: NodeId(2),
                    msg,
                };
                let start = Instant::now();
                let out = cl.nodes[0].step(input);
                total += start.elapsed();
                black_box(out);
                cl.maybe_compact();
            }
            total
        });
    });
    g.bench_function("follower_append_1_entry", |b| {
        let voters: Vec<NodeId> = (1..=3).map(NodeId).collect();
        let mut follower = Raft::new(Config::new(NodeId(2), voters)).unwrap();
        let term = core_raft::Term(1);
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                if follower.last_index().0 - follower.snapshot_index().0 >= COMPACT_EVERY {
                    let index = follower.applied_index();
                    follower.step(Input::Snapshot {
                        index,
                        data: vec![],
                    });
                }
                let prev = follower.last_index();
                let input = Input::Receive {
                    from: NodeId(1),
                    msg: Message::AppendEntries(AppendEntries {
                        term,
                        prev_log_index: prev,
                        prev_log_term: follower.last_term(),
                        entries: vec![Entry {
                            index: prev.next(),
                            term,
                            payload: Payload::Command(payload(prev.0)),
                        }],
                        leader_commit: prev,
                        round: prev.0,
                    }),
                };
                let start = Instant::now();
                let out = follower.step(input);
                total += start.elapsed();
                black_box(out);
            }
            total
        });
    });
    g.finish();
}

criterion_group!(benches, cluster_throughput, step_cost);
criterion_main!(benches);
