//! Moving shards between two classic groups, by hand.
//!
//! ```text
//! cargo run -p core-shard --example move_shards
//! ```
//!
//! The example plays driver for one shard controller and two groups (100
//! and 101), each a plain state machine here rather than a Raft-replicated
//! one: applying an operation to it is what a replica does once the
//! operation is committed. Beside each group runs its agent; the driver
//! ticks it as the group's leader and carries out what it asks: query the
//! controller, send a step to the other group, or submit an operation to
//! its own group. Group 100 joins, a client writes, group 101 joins and
//! half the shards move over, then group 100 leaves and the rest follow.

use core_kv::{ClientId, ClientRequest, LogIndex, Op, Outcome, Seq, StateMachine};
use core_shard::classic::{
    Agent, AgentAction, AgentConfig, AgentInput, Controller, CtrlOp, CtrlReply, Group, GroupOp,
    ShardState,
};
use core_shard::{GroupId, GroupReply, Sharding};
use std::collections::{BTreeMap, VecDeque};

const SHARDING: Sharding = Sharding::CLASSIC; // 10 shards, by a key's first byte

struct World {
    ctrl: Controller,
    groups: BTreeMap<GroupId, Group>,
    agents: BTreeMap<GroupId, Agent>,
    index: u64,
}

impl World {
    /// An administrator's Join or Leave, applied by the controller.
    fn admin(&mut self, op: CtrlOp) {
        self.index += 1; // one log position counter for everything
        let CtrlReply::Changed { num } = self.ctrl.apply(LogIndex(self.index), &op) else {
            panic!("the controller refused {op:?}");
        };
        let names = |gids: Vec<&GroupId>| gids.iter().map(|g| g.to_string()).collect::<Vec<_>>();
        let what = match &op {
            CtrlOp::Join(groups) => format!("join {}", names(groups.keys().collect()).join(", ")),
            CtrlOp::Leave(gids) => format!("leave {}", names(gids.iter().collect()).join(", ")),
            other => format!("{other:?}"),
        };
        println!("\n== controller: {what} makes configuration {}", num.0);
        println!("   {}", self.ctrl.latest());
    }

    /// Apply `op` to group `gid` (a read-only one is answered without a
    /// log entry, as ReadIndex would).
    fn apply(&mut self, gid: GroupId, op: &GroupOp) -> GroupReply {
        self.index += 1;
        let group = self.groups.get_mut(&gid).expect("a running group");
        if group.is_read_only(op) {
            group.query(op)
        } else {
            group.apply(LogIndex(self.index), op)
        }
    }

    /// Tick every agent once and carry out everything that follows, in
    /// order. Returns false when no agent had anything to do but ask the
    /// controller.
    fn round(&mut self) -> bool {
        let mut busy = false;
        for gid in self.groups.keys().copied().collect::<Vec<_>>() {
            let group = &self.groups[&gid];
            let tick = AgentInput::Tick {
                leader: true,
                group,
            };
            let mut todo: VecDeque<AgentAction> =
                self.agents.get_mut(&gid).unwrap().step(tick).into();
            while let Some(action) = todo.pop_front() {
                let input = match action {
                    AgentAction::AskController { num } => {
                        let cfg = self.ctrl.query(Some(num)).clone();
                        if cfg.num != num {
                            continue; // nothing new
                        }
                        println!("   {gid} learns configuration {}", num.0);
                        AgentInput::Controller(cfg)
                    }
                    AgentAction::Send { gid: to, op, .. } => {
                        busy = true;
                        let reply = self.apply(to, &op);
                        println!("   {gid} -> {to}: {} -> {}", step(&op), answer(&reply));
                        AgentInput::Reply { from: to, reply }
                    }
                    AgentAction::Submit(op) => {
                        busy = true;
                        self.apply(gid, &op);
                        println!("   {gid} applies {}", step(&op));
                        continue;
                    }
                };
                todo.extend(self.agents.get_mut(&gid).unwrap().step(input));
            }
        }
        busy
    }

    /// Each group's shards, one letter per shard.
    fn states(&self) -> String {
        let letter = |s: Option<&ShardState>| match s {
            Some(ShardState::Serving) => "S",
            Some(ShardState::Pulling) => "P",
            Some(ShardState::Received) => "R",
            Some(ShardState::Frozen) => "F",
            None => ".",
        };
        let row = |g: &Group| {
            let states = g.shard_states();
            let letters: Vec<&str> = SHARDING.all().map(|s| letter(states.get(&s))).collect();
            format!(
                "   {} in config {}: {}",
                g.gid(),
                g.config().num.0,
                letters.join(" ")
            )
        };
        self.groups.values().map(row).collect::<Vec<_>>().join("\n")
    }

    /// Run rounds until no agent has anything left to do, showing the
    /// shard states whenever they change.
    fn settle(&mut self) {
        let mut shown = String::new();
        while self.round() {
            let now = self.states();
            if now != shown {
                println!("{now}");
                shown = now;
            }
        }
    }

    /// A client's operation, sent where the latest configuration says.
    fn client(&mut self, seq: u64, op: Op) -> Outcome {
        let shard = SHARDING.shard_of(op.key());
        let owner = self.ctrl.latest().owner(shard);
        let req = GroupOp::Client(ClientRequest {
            client: ClientId(1),
            seq: Seq(seq),
            op: op.clone(),
        });
        match self.apply(owner, &req) {
            GroupReply::Kv(outcome) => {
                println!("   client #{seq} {op:?} ({shard}) at {owner} -> {outcome:?}");
                outcome
            }
            other => panic!("{owner} answered {other:?}"),
        }
    }
}

fn step(op: &GroupOp) -> String {
    match op {
        GroupOp::Pull { num, shard } => format!("Pull {shard} of config {}", num.0),
        GroupOp::Insert { num, shard, data } => {
            format!("Insert {shard} of config {} ({} keys)", num.0, data.len())
        }
        GroupOp::Delete { num, shard } => format!("Delete {shard} of config {}", num.0),
        GroupOp::Confirm { num, shard } => format!("Confirm {shard} of config {}", num.0),
        GroupOp::Reconfigure(c) => format!("Reconfigure to configuration {}", c.num.0),
        GroupOp::Client(r) => format!("{:?}", r.op),
    }
}

fn answer(reply: &GroupReply) -> String {
    match reply {
        GroupReply::Shard { data, .. } => format!("its data ({} keys)", data.len()),
        GroupReply::Ack { .. } => "done".into(),
        other => format!("{other:?}"),
    }
}

fn main() {
    let (g100, g101) = (GroupId(100), GroupId(101));
    let mut w = World {
        ctrl: Controller::default(),
        groups: [g100, g101].map(|g| (g, Group::new(g, SHARDING))).into(),
        agents: [g100, g101]
            .map(|g| (g, Agent::new(g, AgentConfig { round_ticks: 1 })))
            .into(),
        index: 0,
    };
    println!("shard states, shards 0 to 9: S serving, P pulling (waiting for the data),");
    println!("R received (served; old copy not yet deleted), F frozen (handed over), . not held");

    let servers = |g: GroupId| vec![format!("{g}-a"), format!("{g}-b"), format!("{g}-c")];
    w.admin(CtrlOp::Join(BTreeMap::from([(g100, servers(g100))])));
    w.settle();
    let set = |k: &str, v: &str| Op::Set {
        key: k.into(),
        value: v.into(),
    };
    w.client(1, set("apple", "red"));
    w.client(2, set("date", "brown"));
    let append = Op::Append {
        key: "apple".into(),
        value: "+green".into(),
    };
    w.client(3, append.clone());

    w.admin(CtrlOp::Join(BTreeMap::from([(g101, servers(g101))])));
    w.settle();
    println!("   the client never saw the answer to #3 and resends it to the new owner:");
    w.client(3, append);
    let get = |k: &str| Op::Get { key: k.into() };
    let apple = w.client(4, get("apple"));
    println!("   (\"apple\" moved with its data and its client sessions: appended once)");

    w.admin(CtrlOp::Leave(vec![g100]));
    w.settle();
    assert_eq!(w.client(5, get("apple")), apple);
    w.client(6, get("date"));
    println!("\nevery shard is now on {g101}; nothing was lost or applied twice");
}
