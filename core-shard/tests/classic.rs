//! The classic shard group, driven by hand through
//! [`StateMachine::apply`], and its agent, driven with ticks and answers.
//!
//! The setting: the classic sharding (10 shards, a key's first byte), group
//! 1 joins (configuration 1: it gets every shard from nobody), group 2 joins
//! (configuration 2: shards 5..9 move from group 1 to group 2).

use core_kv::{ClientId, ClientRequest, LogIndex, Op, Outcome, Seq, StateMachine, Version};
use core_shard::classic::{
    Agent, AgentAction, AgentConfig, AgentInput, Group, GroupOp, ShardState, Work,
};
use core_shard::{
    ConfigNum, GroupId, GroupReply, MigrationStep, Refusal, ShardConfig, ShardId, Sharding,
};
use std::collections::BTreeMap;
use std::io::Read;

const G1: GroupId = GroupId(1);
const G2: GroupId = GroupId(2);

fn servers(gid: GroupId) -> Vec<String> {
    vec![format!("g{}a", gid.0), format!("g{}b", gid.0)]
}

fn joined(c: &ShardConfig, gid: GroupId) -> ShardConfig {
    c.join(&BTreeMap::from([(gid, servers(gid))]))
}

/// Configurations 0, 1 (g1 alone), 2 (g1 and g2).
fn configs() -> [ShardConfig; 3] {
    let c0 = ShardConfig::initial(10);
    let c1 = joined(&c0, G1);
    let c2 = joined(&c1, G2);
    [c0, c1, c2]
}

/// A key of `shard` under the classic sharding.
fn key_in(shard: ShardId) -> String {
    (0..10)
        .map(|i| i.to_string())
        .find(|k| Sharding::CLASSIC.shard_of(k) == shard)
        .expect("keys 0..9 cover every shard")
}

/// A group replica with a log position counter.
struct Replica {
    group: Group,
    index: u64,
}

impl Replica {
    fn new(gid: GroupId) -> Replica {
        Replica {
            group: Group::new(gid, Sharding::CLASSIC),
            index: 0,
        }
    }

    fn apply(&mut self, op: GroupOp) -> GroupReply {
        self.index += 1;
        self.group.apply(LogIndex(self.index), &op)
    }

    fn reconfigure(&mut self, c: &ShardConfig) -> GroupReply {
        self.apply(GroupOp::Reconfigure(c.clone()))
    }

    fn client(&mut self, client: u64, seq: u64, op: Op) -> GroupReply {
        self.apply(GroupOp::Client(ClientRequest {
            client: ClientId(client),
            seq: Seq(seq),
            op,
        }))
    }

    fn get(&mut self, key: &str) -> GroupReply {
        self.client(999, 0, Op::Get { key: key.into() })
    }

    fn state(&self, shard: ShardId) -> Option<ShardState> {
        self.group.shard_states().get(&shard).copied()
    }
}

fn append(key: &str, value: &str) -> Op {
    Op::Append {
        key: key.into(),
        value: value.into(),
    }
}

fn set(key: &str, value: &str) -> Op {
    Op::Set {
        key: key.into(),
        value: value.into(),
    }
}

fn value(v: &str, version: u64) -> GroupReply {
    GroupReply::Kv(Outcome::Value {
        value: v.into(),
        version: Version(version),
    })
}

/// Shards 5..9: the ones g2 gains in configuration 2.
fn moving() -> Vec<ShardId> {
    (5..10).map(ShardId).collect()
}

/// g1 in configuration 1 with `k=v` written to every shard.
fn g1_with_data() -> Replica {
    let [_, c1, _] = configs();
    let mut g1 = Replica::new(G1);
    g1.reconfigure(&c1);
    for s in 0..10 {
        let k = key_in(ShardId(s));
        g1.client(1, s as u64 + 1, set(&k, &format!("v{s}")));
    }
    g1
}

#[test]
fn the_moving_shards_are_5_to_9() {
    let [_, c1, c2] = configs();
    assert!(c1.shards.iter().all(|g| *g == G1));
    assert_eq!(c2.shards_of(G2), moving());
}

#[test]
fn configurations_apply_in_order_only() {
    let [c0, c1, c2] = configs();
    let mut g = Replica::new(G1);
    // Skipping configuration 1 is ignored.
    assert_eq!(
        g.reconfigure(&c2),
        GroupReply::Configured { num: ConfigNum(0) }
    );
    assert_eq!(g.group.config(), &c0);
    assert!(g.group.shard_states().is_empty());
    assert_eq!(
        g.reconfigure(&c1),
        GroupReply::Configured { num: ConfigNum(1) }
    );
    assert_eq!(g.group.config(), &c1);
    g.client(1, 1, set("3", "x"));
    // Repeating configuration 1 (or going back to 0) changes nothing: the
    // data written since stays.
    let before = g.group.clone();
    assert_eq!(
        g.reconfigure(&c1),
        GroupReply::Configured { num: ConfigNum(1) }
    );
    assert_eq!(
        g.reconfigure(&c0),
        GroupReply::Configured { num: ConfigNum(1) }
    );
    assert_eq!(g.group, before);
    // A configuration with another shard count is not this service's.
    let mut foreign = ShardConfig::initial(12).join(&BTreeMap::from([(G1, servers(G1))]));
    foreign.num = ConfigNum(2);
    assert_eq!(
        g.reconfigure(&foreign),
        GroupReply::Configured { num: ConfigNum(1) }
    );
    assert_eq!(g.group, before);
}

#[test]
fn the_next_configuration_waits_until_every_shard_has_settled() {
    let [_, c1, c2] = configs();
    let c3 = c2.leave(&[G1]);
    let mut g1 = g1_with_data();
    g1.reconfigure(&c2);
    let mut g2 = Replica::new(G2);
    g2.reconfigure(&c1);
    g2.reconfigure(&c2);
    // g1 still holds frozen shards, g2 still pulls: neither moves on.
    for g in [&mut g1, &mut g2] {
        let before = g.group.clone();
        assert_eq!(
            g.reconfigure(&c3),
            GroupReply::Configured { num: ConfigNum(2) }
        );
        assert_eq!(g.group, before);
    }
    // Once every shard is in, received and confirmed, g2 takes config 3.
    for s in moving() {
        let GroupReply::Shard { data, .. } = g1.apply(GroupOp::Pull {
            num: ConfigNum(2),
            shard: s,
        }) else {
            panic!("no data for {s}")
        };
        g2.apply(GroupOp::Insert {
            num: ConfigNum(2),
            shard: s,
            data,
        });
        assert_eq!(
            g2.reconfigure(&c3),
            GroupReply::Configured { num: ConfigNum(2) },
            "Received is not settled"
        );
        g2.apply(GroupOp::Confirm {
            num: ConfigNum(2),
            shard: s,
        });
    }
    assert_eq!(
        g2.reconfigure(&c3),
        GroupReply::Configured { num: ConfigNum(3) }
    );
}

#[test]
fn shards_gained_from_nobody_are_served_at_once_and_empty() {
    let [_, c1, _] = configs();
    let mut g = Replica::new(G1);
    assert_eq!(g.get("0"), GroupReply::WrongGroup, "no configuration yet");
    g.reconfigure(&c1);
    assert!(g.group.settled());
    assert!(g.group.work().is_empty());
    for s in 0..10 {
        assert_eq!(g.state(ShardId(s)), Some(ShardState::Serving));
    }
    assert_eq!(g.get("4"), GroupReply::Kv(Outcome::ErrNoKey));
    assert_eq!(g.client(1, 1, set("4", "x")), GroupReply::Kv(Outcome::Ok));
    assert_eq!(g.get("4"), value("x", 1));
}

#[test]
fn a_gained_shard_is_pulled_inserted_served_and_confirmed() {
    let [_, c1, c2] = configs();
    let mut g1 = g1_with_data();
    let mut g2 = Replica::new(G2);
    g2.reconfigure(&c1);
    assert!(g2.group.shard_states().is_empty(), "g2 owns nothing in 1");
    assert_eq!(
        g2.reconfigure(&c2),
        GroupReply::Configured { num: ConfigNum(2) }
    );
    let s = ShardId(7);
    let k = key_in(s);
    assert_eq!(g2.state(s), Some(ShardState::Pulling));
    assert!(!g2.group.settled());
    assert_eq!(g2.get(&k), GroupReply::WrongGroup, "Pulling is not served");
    assert_eq!(
        g2.client(5, 1, set(&k, "lost")),
        GroupReply::WrongGroup,
        "nor written"
    );
    let pulls: Vec<Work> = moving()
        .into_iter()
        .map(|shard| Work::Pull {
            shard,
            num: ConfigNum(2),
            from: G1,
        })
        .collect();
    assert_eq!(g2.group.work(), pulls);
    assert_eq!(g2.group.prev(), &c1);

    g1.reconfigure(&c2);
    let data = match g1.apply(GroupOp::Pull {
        num: ConfigNum(2),
        shard: s,
    }) {
        GroupReply::Shard { shard, num, data } => {
            assert_eq!((shard, num), (s, ConfigNum(2)));
            data
        }
        other => panic!("Pull answered {other:?}"),
    };
    assert_eq!(
        g2.apply(GroupOp::Insert {
            num: ConfigNum(2),
            shard: s,
            data: data.clone(),
        }),
        GroupReply::Ack {
            shard: s,
            num: ConfigNum(2),
            step: MigrationStep::Install,
        }
    );
    assert_eq!(g2.state(s), Some(ShardState::Received));
    assert_eq!(g2.get(&k), value("v7", 1), "Received is served");
    // A second Insert (a duplicate) does not overwrite what changed since.
    g2.client(5, 2, append(&k, "+"));
    g2.apply(GroupOp::Insert {
        num: ConfigNum(2),
        shard: s,
        data,
    });
    assert_eq!(g2.get(&k), value("v7+", 2));
    assert!(g2.group.work().contains(&Work::Delete {
        shard: s,
        num: ConfigNum(2),
        from: G1
    }));
    assert_eq!(
        g2.apply(GroupOp::Confirm {
            num: ConfigNum(2),
            shard: s
        }),
        GroupReply::Ack {
            shard: s,
            num: ConfigNum(2),
            step: MigrationStep::Confirm,
        }
    );
    assert_eq!(g2.state(s), Some(ShardState::Serving));
    assert_eq!(g2.get(&k), value("v7+", 2));
    assert!(!g2.group.settled(), "the other four are still Pulling");
}

#[test]
fn a_lost_shard_is_frozen_answers_pulls_of_its_configuration_only_and_is_deleted() {
    let [_, _, c2] = configs();
    let mut g1 = g1_with_data();
    g1.reconfigure(&c2);
    let (lost, kept) = (ShardId(6), ShardId(2));
    assert_eq!(g1.state(lost), Some(ShardState::Frozen));
    assert_eq!(g1.state(kept), Some(ShardState::Serving));
    assert_eq!(g1.get(&key_in(lost)), GroupReply::WrongGroup);
    assert_eq!(
        g1.client(1, 20, append(&key_in(lost), "x")),
        GroupReply::WrongGroup
    );
    assert_eq!(g1.get(&key_in(kept)), value("v2", 1));
    assert!(
        !g1.group.settled(),
        "frozen shards keep the group unsettled"
    );
    assert!(g1.group.work().is_empty(), "the new owner does the work");

    let pull = |num| GroupOp::Pull {
        num: ConfigNum(num),
        shard: lost,
    };
    for (num, why) in [
        (
            1,
            Refusal::Stale {
                current: ConfigNum(2),
            },
        ),
        (
            3,
            Refusal::NotYet {
                current: ConfigNum(2),
            },
        ),
    ] {
        assert_eq!(
            g1.apply(pull(num)),
            GroupReply::Refused {
                shard: lost,
                num: ConfigNum(num),
                why
            }
        );
        assert_eq!(g1.group.query(&pull(num)), g1.apply(pull(num)));
    }
    // A shard the group still serves is not handed out.
    assert_eq!(
        g1.apply(GroupOp::Pull {
            num: ConfigNum(2),
            shard: kept
        }),
        GroupReply::Refused {
            shard: kept,
            num: ConfigNum(2),
            why: Refusal::NotHeld
        }
    );
    let answer = g1.group.query(&pull(2));
    match &answer {
        GroupReply::Shard { shard, num, data } => {
            assert_eq!((*shard, *num), (lost, ConfigNum(2)));
            assert_eq!(
                data.read(&Op::Get { key: key_in(lost) }),
                Outcome::Value {
                    value: "v6".into(),
                    version: Version(1)
                }
            );
            assert_eq!(data.len(), 1, "only the shard's own keys");
        }
        other => panic!("Pull answered {other:?}"),
    }
    assert!(g1.group.is_read_only(&pull(2)));

    // Delete: the wrong configuration is refused or already done, the right
    // one removes the copy.
    let delete = |num| GroupOp::Delete {
        num: ConfigNum(num),
        shard: lost,
    };
    assert_eq!(
        g1.apply(delete(3)),
        GroupReply::Refused {
            shard: lost,
            num: ConfigNum(3),
            why: Refusal::NotYet {
                current: ConfigNum(2)
            }
        }
    );
    assert_eq!(g1.state(lost), Some(ShardState::Frozen));
    assert_eq!(
        g1.apply(delete(1)),
        GroupReply::Ack {
            shard: lost,
            num: ConfigNum(1),
            step: MigrationStep::Delete,
        },
        "an older configuration's delete was done before the group moved on"
    );
    assert_eq!(g1.state(lost), Some(ShardState::Frozen));
    assert_eq!(
        g1.apply(delete(2)),
        GroupReply::Ack {
            shard: lost,
            num: ConfigNum(2),
            step: MigrationStep::Delete,
        }
    );
    assert_eq!(g1.state(lost), None);
    assert!(g1.group.shard_data(lost).is_none());
    assert_eq!(
        g1.apply(pull(2)),
        GroupReply::Refused {
            shard: lost,
            num: ConfigNum(2),
            why: Refusal::NotHeld
        }
    );
    // A repeated Delete is acknowledged and deletes nothing else; Delete of
    // a served shard deletes nothing.
    assert_eq!(
        g1.apply(delete(2)),
        GroupReply::Ack {
            shard: lost,
            num: ConfigNum(2),
            step: MigrationStep::Delete,
        }
    );
    g1.apply(GroupOp::Delete {
        num: ConfigNum(2),
        shard: kept,
    });
    assert_eq!(g1.state(kept), Some(ShardState::Serving));
    for s in moving() {
        g1.apply(GroupOp::Delete {
            num: ConfigNum(2),
            shard: s,
        });
    }
    assert!(g1.group.settled());
    assert_eq!(
        g1.group.shard_states().keys().copied().collect::<Vec<_>>(),
        (0..5).map(ShardId).collect::<Vec<_>>()
    );
}

#[test]
fn insert_and_confirm_of_another_configuration_are_refused() {
    let [_, c1, c2] = configs();
    let mut g2 = Replica::new(G2);
    g2.reconfigure(&c1);
    g2.reconfigure(&c2);
    let s = ShardId(5);
    let mut data = core_shard::ShardData::default();
    data.apply(&ClientRequest {
        client: ClientId(1),
        seq: Seq(1),
        op: set(&key_in(s), "old"),
    });
    for (num, why) in [
        (
            1,
            Refusal::Stale {
                current: ConfigNum(2),
            },
        ),
        (
            3,
            Refusal::NotYet {
                current: ConfigNum(2),
            },
        ),
    ] {
        let refused = GroupReply::Refused {
            shard: s,
            num: ConfigNum(num),
            why,
        };
        assert_eq!(
            g2.apply(GroupOp::Insert {
                num: ConfigNum(num),
                shard: s,
                data: data.clone()
            }),
            refused
        );
        assert_eq!(
            g2.apply(GroupOp::Confirm {
                num: ConfigNum(num),
                shard: s
            }),
            refused
        );
        assert_eq!(g2.state(s), Some(ShardState::Pulling));
    }
    // A Confirm before the Insert does not skip the data.
    g2.apply(GroupOp::Confirm {
        num: ConfigNum(2),
        shard: s,
    });
    assert_eq!(g2.state(s), Some(ShardState::Pulling));
}

#[test]
fn a_retried_append_is_applied_once_across_a_move() {
    let [_, c1, c2] = configs();
    let s = ShardId(8);
    let k = key_in(s);
    let mut g1 = Replica::new(G1);
    g1.reconfigure(&c1);
    let req = GroupOp::Client(ClientRequest {
        client: ClientId(42),
        seq: Seq(3),
        op: append(&k, "once"),
    });
    // Applied at g1; the answer is lost, so the client will retry.
    assert_eq!(g1.apply(req.clone()), GroupReply::Kv(Outcome::Ok));
    g1.reconfigure(&c2);
    assert_eq!(g1.apply(req.clone()), GroupReply::WrongGroup);

    let mut g2 = Replica::new(G2);
    g2.reconfigure(&c1);
    g2.reconfigure(&c2);
    let GroupReply::Shard { data, .. } = g1.apply(GroupOp::Pull {
        num: ConfigNum(2),
        shard: s,
    }) else {
        panic!("no shard data")
    };
    g2.apply(GroupOp::Insert {
        num: ConfigNum(2),
        shard: s,
        data,
    });
    // The retry at the new owner is answered from the moved session table.
    assert_eq!(g2.apply(req.clone()), GroupReply::Kv(Outcome::Ok));
    assert_eq!(g2.get(&k), value("once", 1), "not doubled");
    assert_eq!(g2.group.shard_data(s).unwrap().duplicates(), 1);
    // The client's next request is applied.
    g2.client(42, 4, append(&k, "+twice"));
    assert_eq!(g2.get(&k), value("once+twice", 2));
}

fn snapshot_bytes(g: &Group) -> Vec<u8> {
    let mut bytes = Vec::new();
    g.snapshot().read_to_end(&mut bytes).unwrap();
    bytes
}

#[test]
fn snapshots_round_trip_and_belong_to_one_group() {
    let [_, _, c2] = configs();
    let mut g1 = g1_with_data();
    g1.reconfigure(&c2);
    let bytes = snapshot_bytes(&g1.group);
    let mut back = Group::new(G1, Sharding::CLASSIC);
    back.restore(&mut bytes.as_slice()).unwrap();
    assert_eq!(back, g1.group);
    assert_eq!(back.config(), &c2);
    assert_eq!(back.shard_states(), g1.group.shard_states());
    assert_eq!(snapshot_bytes(&back), bytes);

    let mut other_gid = Group::new(G2, Sharding::CLASSIC);
    let err = other_gid.restore(&mut bytes.as_slice()).unwrap_err();
    assert!(err.contains("g1") && err.contains("g2"), "{err}");
    assert_eq!(other_gid, Group::new(G2, Sharding::CLASSIC), "unchanged");
    let mut other_sharding = Group::new(G1, Sharding::LAB_2025);
    assert!(other_sharding.restore(&mut bytes.as_slice()).is_err());
    assert!(back.restore(&mut &bytes[..bytes.len() / 2]).is_err());
    assert_eq!(back, g1.group, "a cut snapshot changes nothing");
}

#[test]
fn client_reads_are_read_only_and_answer_like_apply() {
    let mut g1 = g1_with_data();
    let get = GroupOp::Client(ClientRequest {
        client: ClientId(1),
        seq: Seq(50),
        op: Op::Get { key: "3".into() },
    });
    assert!(g1.group.is_read_only(&get));
    assert!(!g1.group.is_read_only(&GroupOp::Client(ClientRequest {
        client: ClientId(1),
        seq: Seq(50),
        op: set("3", "y"),
    })));
    assert_eq!(g1.group.query(&get), g1.apply(get.clone()));
    let g2 = Group::new(G2, Sharding::CLASSIC);
    assert_eq!(g2.query(&get), GroupReply::WrongGroup);
}

// ---- the agent -------------------------------------------------------

fn agent(gid: GroupId, round_ticks: u64) -> Agent {
    Agent::new(gid, AgentConfig { round_ticks })
}

/// Another group's answer, as the host hands it to an agent.
fn from(gid: GroupId, reply: GroupReply) -> AgentInput<'static> {
    AgentInput::Reply { from: gid, reply }
}

fn tick(a: &mut Agent, leader: bool, g: &Group) -> Vec<AgentAction> {
    a.step(AgentInput::Tick { leader, group: g })
}

#[test]
fn a_leader_agent_asks_for_the_next_configuration_when_settled() {
    let [_, c1, c2] = configs();
    let mut g = Replica::new(G1);
    g.reconfigure(&c1);
    let mut a = agent(G1, 5);
    assert_eq!(
        tick(&mut a, true, &g.group),
        vec![AgentAction::AskController { num: ConfigNum(2) }]
    );
    assert_eq!(
        a.step(AgentInput::Controller(c2.clone())),
        vec![AgentAction::Submit(GroupOp::Reconfigure(c2.clone()))]
    );
    // Not the next one: nothing (a later or an older configuration).
    let c3 = c2.leave(&[G2]);
    assert!(a.step(AgentInput::Controller(c3)).is_empty());
    assert!(a.step(AgentInput::Controller(c1)).is_empty());
}

#[test]
fn a_follower_agent_stays_silent() {
    let [_, c1, c2] = configs();
    let mut g2 = Replica::new(G2);
    g2.reconfigure(&c1);
    g2.reconfigure(&c2);
    let mut a = agent(G2, 1);
    for _ in 0..5 {
        assert!(tick(&mut a, false, &g2.group).is_empty());
    }
    assert!(a.step(AgentInput::Controller(c2.clone())).is_empty());
    assert!(a
        .step(from(
            G1,
            GroupReply::Ack {
                shard: ShardId(5),
                num: ConfigNum(2),
                step: MigrationStep::Delete,
            }
        ))
        .is_empty());
    // Once it leads, it acts at once.
    assert!(!tick(&mut a, true, &g2.group).is_empty());
    // And when it stops leading, it drops answers.
    tick(&mut a, false, &g2.group);
    assert!(a
        .step(from(
            G1,
            GroupReply::Ack {
                shard: ShardId(5),
                num: ConfigNum(2),
                step: MigrationStep::Delete,
            }
        ))
        .is_empty());
}

#[test]
fn an_agent_pulls_inserts_deletes_and_confirms() {
    let [_, c1, c2] = configs();
    let mut g1 = g1_with_data();
    g1.reconfigure(&c2);
    let mut g2 = Replica::new(G2);
    g2.reconfigure(&c1);
    g2.reconfigure(&c2);
    let mut a = agent(G2, 1);

    // Pull work goes to the previous owner's servers.
    let sends = tick(&mut a, true, &g2.group);
    let expected: Vec<AgentAction> = moving()
        .into_iter()
        .map(|shard| AgentAction::Send {
            gid: G1,
            servers: servers(G1),
            op: GroupOp::Pull {
                num: ConfigNum(2),
                shard,
            },
        })
        .collect();
    assert_eq!(sends, expected);

    // Carry the sends out at g1; each Shard answer becomes an Insert.
    for send in sends {
        let AgentAction::Send { op, .. } = send else {
            unreachable!()
        };
        let reply = g1.group.query(&op);
        let actions = a.step(from(G1, reply.clone()));
        let GroupReply::Shard { shard, num, data } = reply else {
            panic!("g1 refused a pull: {reply:?}")
        };
        assert_eq!(
            actions,
            vec![AgentAction::Submit(GroupOp::Insert { num, shard, data })]
        );
        for action in actions {
            let AgentAction::Submit(op) = action else {
                unreachable!()
            };
            g2.apply(op);
        }
    }
    assert!(moving()
        .iter()
        .all(|s| g2.state(*s) == Some(ShardState::Received)));
    assert_eq!(g2.get(&key_in(ShardId(5))), value("v5", 1));
    assert_eq!(g2.get(&key_in(ShardId(9))), value("v9", 1));

    // Next round: Delete work to the old owner; each Ack becomes a Confirm.
    let sends = tick(&mut a, true, &g2.group);
    assert_eq!(sends.len(), 5);
    for send in sends {
        let AgentAction::Send {
            gid,
            servers: to,
            op,
        } = send
        else {
            panic!("expected a Send")
        };
        assert_eq!((gid, to), (G1, servers(G1)));
        assert!(matches!(
            op,
            GroupOp::Delete {
                num: ConfigNum(2),
                ..
            }
        ));
        let reply = g1.apply(op);
        let GroupReply::Ack { shard, num, .. } = reply else {
            panic!("g1 refused a delete: {reply:?}")
        };
        assert_eq!(
            a.step(from(G1, reply)),
            vec![AgentAction::Submit(GroupOp::Confirm { num, shard })]
        );
        g2.apply(GroupOp::Confirm { num, shard });
    }
    assert!(g1.group.settled() && g2.group.settled());
    assert_eq!(
        tick(&mut a, true, &g2.group),
        vec![AgentAction::AskController { num: ConfigNum(3) }]
    );
}

#[test]
fn an_agent_ignores_answers_for_another_configuration() {
    let [_, c1, c2] = configs();
    let mut g2 = Replica::new(G2);
    g2.reconfigure(&c1);
    g2.reconfigure(&c2);
    let mut a = agent(G2, 1);
    tick(&mut a, true, &g2.group);
    for num in [1, 3] {
        assert!(a
            .step(from(
                G1,
                GroupReply::Shard {
                    shard: ShardId(5),
                    num: ConfigNum(num),
                    data: Default::default()
                }
            ))
            .is_empty());
        assert!(a
            .step(from(
                G1,
                GroupReply::Ack {
                    shard: ShardId(5),
                    num: ConfigNum(num),
                    step: MigrationStep::Delete,
                }
            ))
            .is_empty());
    }
    assert!(a
        .step(from(
            G1,
            GroupReply::Refused {
                shard: ShardId(5),
                num: ConfigNum(2),
                why: Refusal::NotYet {
                    current: ConfigNum(1)
                }
            }
        ))
        .is_empty());
}

#[test]
fn an_agent_acts_every_round_ticks() {
    let [_, c1, _] = configs();
    let mut g = Replica::new(G1);
    g.reconfigure(&c1);
    let mut a = agent(G1, 3);
    let acted: Vec<bool> = (0..10)
        .map(|_| !tick(&mut a, true, &g.group).is_empty())
        .collect();
    assert_eq!(
        acted,
        [true, false, false, true, false, false, true, false, false, true]
    );
    // Losing and regaining leadership acts at once, mid-round.
    let mut a = agent(G1, 3);
    assert!(!tick(&mut a, true, &g.group).is_empty());
    assert!(tick(&mut a, false, &g.group).is_empty());
    assert!(!tick(&mut a, true, &g.group).is_empty());
}

#[test]
fn an_agent_ignores_its_own_groups_answers() {
    // The Ack of g2's own Insert must not pass for g1's Ack of the Delete:
    // that would confirm a shard whose old copy was never deleted. Acks name
    // their step, and the agent also ignores its own group's answers.
    let [_, c1, c2] = configs();
    let mut g1 = g1_with_data();
    g1.reconfigure(&c2);
    let mut g2 = Replica::new(G2);
    g2.reconfigure(&c1);
    g2.reconfigure(&c2);
    let mut a = agent(G2, 1);
    tick(&mut a, true, &g2.group);
    let s = ShardId(5);
    let pulled = g1.group.query(&GroupOp::Pull {
        num: ConfigNum(2),
        shard: s,
    });
    let [AgentAction::Submit(insert)] = &a.step(from(G1, pulled))[..] else {
        panic!("no Insert")
    };
    let own = g2.apply(insert.clone());
    assert_eq!(
        own,
        GroupReply::Ack {
            shard: s,
            num: ConfigNum(2),
            step: MigrationStep::Install,
        }
    );
    assert!(a.step(from(G2, own.clone())).is_empty());
    assert_eq!(g2.state(s), Some(ShardState::Received));
    // Nor does an install's acknowledgement from anyone else: only the
    // old owner's acknowledgement of the delete confirms.
    assert!(a.step(from(G1, own)).is_empty());
    assert_eq!(
        a.step(from(
            G1,
            GroupReply::Ack {
                shard: s,
                num: ConfigNum(2),
                step: MigrationStep::Delete,
            }
        )),
        vec![AgentAction::Submit(GroupOp::Confirm {
            num: ConfigNum(2),
            shard: s
        })]
    );
}

#[test]
fn leaving_every_group_drops_the_shards_and_the_group_keeps_following() {
    // With no groups every shard goes to nobody: nobody will ever pull them,
    // so the last owner drops them instead of waiting for ever, and stays
    // able to take the configurations that follow.
    let [_, c1, _] = configs();
    let mut g = Replica::new(G1);
    g.reconfigure(&c1);
    assert_eq!(g.client(1, 1, set("4", "x")), GroupReply::Kv(Outcome::Ok));
    let empty = c1.leave(&[G1]);
    assert!(empty.shards.iter().all(|o| *o == GroupId::NONE));
    g.reconfigure(&empty);
    assert!(g.group.shard_states().is_empty(), "nothing kept");
    assert!(g.group.settled());
    let back = empty.join(&BTreeMap::from([(G1, servers(G1))]));
    assert_eq!(
        g.reconfigure(&back),
        GroupReply::Configured { num: back.num }
    );
    assert_eq!(g.state(ShardId(4)), Some(ShardState::Serving));
    assert_eq!(
        g.get("4"),
        GroupReply::Kv(Outcome::ErrNoKey),
        "the data went with the empty configuration"
    );
}
