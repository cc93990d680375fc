//! Three Raft nodes in one process, driven by hand: the smallest complete
//! driver. It shows the caller's duties from the crate docs: tick, deliver
//! messages, persist before acting on later actions, apply in order.
//!
//! Run with `cargo run -p core-raft --example three_nodes`.

use core_raft::{Action, Config, Durable, Input, LogIndex, NodeId, Payload, Raft};
use std::collections::VecDeque;

/// One node: the machine, its "disk" and the commands it applied.
struct Node {
    raft: Raft,
    disk: Durable,
    applied: Vec<String>,
}

fn main() {
    let ids: Vec<NodeId> = (1..=3).map(NodeId).collect();
    let mut nodes: Vec<Node> = ids
        .iter()
        .map(|id| Node {
            raft: Raft::new(Config::new(*id, ids.clone())).expect("valid config"),
            disk: Durable::default(),
            applied: Vec::new(),
        })
        .collect();
    let mut network: VecDeque<(NodeId, NodeId, core_raft::Message)> = VecDeque::new();

    // Drive the cluster: one tick per node, then deliver every message.
    let run = |nodes: &mut Vec<Node>, network: &mut VecDeque<_>, ticks: u32| {
        for _ in 0..ticks {
            for node in nodes.iter_mut() {
                let actions = node.raft.step(Input::Tick);
                execute(node, actions, network);
            }
            while let Some((from, to, msg)) = network.pop_front() {
                let node = &mut nodes[(to.0 - 1) as usize];
                let actions = node.raft.step(Input::Receive { from, msg });
                execute(node, actions, network);
            }
        }
    };

    run(&mut nodes, &mut network, 150);
    let leader = nodes
        .iter()
        .position(|n| n.raft.is_leader())
        .expect("a leader within 1.5 s of ticks");
    println!(
        "leader: {} in {}",
        nodes[leader].raft.id(),
        nodes[leader].raft.term()
    );

    for word in ["alpha", "beta", "gamma"] {
        let actions = nodes[leader]
            .raft
            .step(Input::Propose(word.as_bytes().to_vec()));
        for a in &actions {
            if let Action::Proposed { index, term } = a {
                println!("proposed {word:?} at {index} in {term}");
            }
        }
        execute(&mut nodes[leader], actions, &mut network);
    }
    run(&mut nodes, &mut network, 20);

    // Compact the leader's log: the application hands a snapshot of its state.
    let applied = nodes[leader].raft.applied_index();
    let state = nodes[leader].applied.join(",").into_bytes();
    let actions = nodes[leader].raft.step(Input::Snapshot {
        index: applied,
        data: state,
    });
    execute(&mut nodes[leader], actions, &mut network);

    for n in &nodes {
        println!(
            "{}: applied {:?}; commit {}; snapshot at {}; {} entries on disk",
            n.raft.id(),
            n.applied,
            n.raft.commit_index(),
            n.raft.snapshot_index(),
            n.disk.entries.len()
        );
    }

    // A crash loses memory, not the disk: rebuild from what was persisted.
    let node = &nodes[0];
    let restored =
        Raft::restore(node.raft.config().clone(), node.disk.clone()).expect("valid disk");
    println!(
        "{} restarted from disk in {} with last index {}",
        restored.id(),
        restored.term(),
        restored.last_index()
    );
    assert!(restored.last_index() >= LogIndex(3));
}

/// Carry out actions in order: persist first (here: into memory), then send,
/// then apply.
fn execute(
    node: &mut Node,
    actions: Vec<Action>,
    network: &mut VecDeque<(NodeId, NodeId, core_raft::Message)>,
) {
    let me = node.raft.id();
    for action in actions {
        if node.disk.persist(&action) {
            continue;
        }
        match action {
            Action::Send { to, msg } => network.push_back((me, to, msg)),
            Action::Apply(entries) => {
                for e in entries {
                    if let Payload::Command(c) = e.payload {
                        node.applied.push(String::from_utf8_lossy(&c).into_owned());
                    }
                }
            }
            Action::ApplySnapshot(s) => {
                node.applied = String::from_utf8_lossy(&s.data)
                    .split(',')
                    .map(str::to_owned)
                    .collect();
            }
            _ => {}
        }
    }
}
