//! End to end with the real core: a three-node Raft cluster in one process,
//! each node persisting through its own `DiskStorage` with `execute`, is
//! stopped whole and restored from disk, snapshots included.

mod common;

use common::TempDir;
use core_raft::{Action, Config, Input, LogIndex, Message, NodeId, Payload, Raft};
use std::collections::VecDeque;
use storage::{DiskStorage, StorageOptions};

const OPTIONS: StorageOptions = StorageOptions {
    segment_bytes: 2048,
};

struct Node {
    raft: Raft,
    disk: DiskStorage,
    /// The application: every command applied, in order.
    applied: Vec<Vec<u8>>,
}

type Net = VecDeque<(NodeId, NodeId, Message)>;

fn boot(dir: &TempDir, id: u64) -> Node {
    let (disk, durable, report) = DiskStorage::open_with(dir.path(), OPTIONS).unwrap();
    assert_eq!(report.torn_tail, None);
    // The application restarts from the stored snapshot, if any.
    let applied = durable
        .snapshot
        .as_ref()
        .map(|s| postcard::from_bytes(&s.data).unwrap())
        .unwrap_or_default();
    let config = Config::new(NodeId(id), vec![NodeId(1), NodeId(2), NodeId(3)]);
    let raft = Raft::restore(config, durable).unwrap();
    Node {
        raft,
        disk,
        applied,
    }
}

fn step(node: &mut Node, input: Input, net: &mut Net) {
    let id = node.raft.id();
    let actions = node.raft.step(input);
    let applied = &mut node.applied;
    node.disk
        .execute(&actions, |action| match action {
            Action::Send { to, msg } => net.push_back((id, *to, msg.clone())),
            Action::Apply(entries) => {
                for e in entries {
                    if let Payload::Command(c) = &e.payload {
                        applied.push(c.clone());
                    }
                }
            }
            Action::ApplySnapshot(s) => *applied = postcard::from_bytes(&s.data).unwrap(),
            _ => {}
        })
        .unwrap();
}

fn deliver(nodes: &mut [Node], net: &mut Net) {
    while let Some((from, to, msg)) = net.pop_front() {
        step(
            &mut nodes[to.0 as usize - 1],
            Input::Receive { from, msg },
            net,
        );
    }
}

fn leader(nodes: &mut [Node], net: &mut Net) -> usize {
    for _ in 0..2000 {
        if let Some(i) = nodes.iter().position(|n| n.raft.is_leader()) {
            return i;
        }
        for node in nodes.iter_mut() {
            step(node, Input::Tick, net);
        }
        deliver(nodes, net);
    }
    panic!("no leader elected");
}

fn propose(nodes: &mut [Node], net: &mut Net, commands: std::ops::Range<u32>) {
    let l = leader(nodes, net);
    for c in commands {
        step(&mut nodes[l], Input::Propose(c.to_le_bytes().to_vec()), net);
        deliver(nodes, net);
    }
    // Heartbeats carry the commit index to the followers.
    for _ in 0..20 {
        for node in nodes.iter_mut() {
            step(node, Input::Tick, net);
        }
        deliver(nodes, net);
    }
}

fn expected(n: u32) -> Vec<Vec<u8>> {
    (0..n).map(|c| c.to_le_bytes().to_vec()).collect()
}

#[test]
fn a_cluster_stopped_whole_restarts_from_disk_with_every_committed_command() {
    let dirs: Vec<TempDir> = (1..=3)
        .map(|i| TempDir::new(&format!("raft-{i}")))
        .collect();
    let mut nodes: Vec<Node> = (1..=3).map(|i| boot(&dirs[i - 1], i as u64)).collect();
    let mut net = Net::new();
    propose(&mut nodes, &mut net, 0..40);
    for node in &nodes {
        assert_eq!(node.applied, expected(40));
    }

    // Every node snapshots what it applied; the log behind it is truncated.
    for node in &mut nodes {
        let index = node.raft.applied_index();
        let data = postcard::to_allocvec(&node.applied).unwrap();
        step(node, Input::Snapshot { index, data }, &mut net);
        assert_eq!(node.disk.snapshot_index(), index);
    }
    propose(&mut nodes, &mut net, 40..60);

    // Stop everything (messages in flight are lost) and restart from disk.
    drop(nodes);
    net.clear();
    let mut nodes: Vec<Node> = (1..=3).map(|i| boot(&dirs[i - 1], i as u64)).collect();
    for node in &nodes {
        assert!(node.raft.snapshot_index() > LogIndex(0));
        assert!(node.raft.last_index() >= LogIndex(60));
    }
    propose(&mut nodes, &mut net, 60..70);
    for node in &nodes {
        assert_eq!(node.applied, expected(70), "node {}", node.raft.id());
    }
}
