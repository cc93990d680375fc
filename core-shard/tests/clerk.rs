//! The sharded clerk, driven by hand: configurations, group answers and
//! ticks in, sends and results out.

use core_kv::{ClientId, NotLeader, Op, Outcome, Seq, Version};
use core_shard::{
    ConfigNum, GroupId, GroupReply, ShardClerk, ShardClerkAction, ShardClerkConfig,
    ShardClerkInput, ShardConfig, ShardId, Sharding,
};
use std::collections::BTreeMap;

const SHARDING: Sharding = Sharding::CLASSIC;
const RETRY: u64 = 4;
const G1: GroupId = GroupId(1);
const G2: GroupId = GroupId(2);

fn servers(gid: GroupId) -> Vec<String> {
    (0..3).map(|i| format!("g{}-{i}", gid.0)).collect()
}

fn join(c: &ShardConfig, gid: GroupId) -> ShardConfig {
    c.join(&BTreeMap::from([(gid, servers(gid))]))
}

/// Configuration 1: everything on g1. Configuration 2: shards 5..9 on g2.
fn configs() -> (ShardConfig, ShardConfig) {
    let c1 = join(&ShardConfig::initial(SHARDING.shards), G1);
    let c2 = join(&c1, G2);
    assert_eq!(c2.shards_of(G2), (5..10).map(ShardId).collect::<Vec<_>>());
    (c1, c2)
}

/// A key of `shard` (classic sharding: by first byte).
fn key_in(shard: ShardId) -> String {
    (0..10)
        .map(|i| i.to_string())
        .find(|k| SHARDING.shard_of(k) == shard)
        .unwrap()
}

fn clerk() -> ShardClerk {
    ShardClerk::new(ShardClerkConfig {
        client: ClientId(7),
        sharding: SHARDING,
        retry_ticks: RETRY,
        seed: 3,
    })
}

fn get(key: &str) -> Op {
    Op::Get { key: key.into() }
}

/// The one Send among `actions`: (group, server, request number, op).
fn the_send(actions: &[ShardClerkAction]) -> (GroupId, String, Seq, Op) {
    let sends: Vec<_> = actions
        .iter()
        .filter_map(|a| match a {
            ShardClerkAction::Send {
                gid,
                server,
                request,
            } => {
                assert_eq!(request.client, ClientId(7));
                Some((*gid, server.clone(), request.seq, request.op.clone()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(sends.len(), 1, "one send in {actions:?}");
    sends.into_iter().next().unwrap()
}

fn reply(
    gid: GroupId,
    server: &str,
    seq: Seq,
    result: Result<GroupReply, NotLeader>,
) -> ShardClerkInput {
    ShardClerkInput::Reply {
        gid,
        server: server.into(),
        seq,
        result,
    }
}

fn done(actions: &[ShardClerkAction]) -> Option<Outcome> {
    actions.iter().find_map(|a| match a {
        ShardClerkAction::Done { outcome, .. } => Some(outcome.clone()),
        _ => None,
    })
}

fn next_server(server: &str, gid: GroupId) -> String {
    let list = servers(gid);
    let i = list.iter().position(|s| s == server).unwrap();
    list[(i + 1) % list.len()].clone()
}

#[test]
fn the_clerk_asks_for_a_configuration_before_anything_else() {
    let mut ck = clerk();
    assert_eq!(
        ck.step(ShardClerkInput::Invoke(get("3"))),
        vec![ShardClerkAction::NeedConfig]
    );
    assert!(ck.busy() && ck.shard_config().is_none());
    // Without an answer it asks again every retry interval, and sends
    // nothing.
    for t in 1..=RETRY {
        let actions = ck.step(ShardClerkInput::Tick);
        if t < RETRY {
            assert!(actions.is_empty());
        } else {
            assert_eq!(actions, vec![ShardClerkAction::NeedConfig]);
        }
    }
    // A configuration with no groups does not help either.
    let c0 = ShardConfig::initial(SHARDING.shards);
    assert_eq!(
        ck.step(ShardClerkInput::Config(c0)),
        vec![ShardClerkAction::NeedConfig]
    );
}

#[test]
fn a_key_is_routed_to_its_shards_group() {
    let (_, c2) = configs();
    let mut ck = clerk();
    ck.step(ShardClerkInput::Invoke(get(&key_in(ShardId(6)))));
    let (gid, server, seq, op) = the_send(&ck.step(ShardClerkInput::Config(c2.clone())));
    assert_eq!((gid, seq, op), (G2, Seq(1), get(&key_in(ShardId(6)))));
    assert!(servers(G2).contains(&server));
    let out = ck.step(reply(
        G2,
        &server,
        seq,
        Ok(GroupReply::Kv(Outcome::ErrNoKey)),
    ));
    assert_eq!(done(&out), Some(Outcome::ErrNoKey));
    assert!(!ck.busy());
    // The next key goes to g1, with the next request number, and to the
    // server that answered last time in g2 if it goes to g2 again.
    let (gid, _, seq, _) = the_send(&ck.step(ShardClerkInput::Invoke(get(&key_in(ShardId(1))))));
    assert_eq!((gid, seq), (G1, Seq(2)));
    let _ = ck.step(reply(
        G1,
        &servers(G1)[0],
        seq,
        Ok(GroupReply::Kv(Outcome::ErrNoKey)),
    ));
    let (gid, again, seq, _) =
        the_send(&ck.step(ShardClerkInput::Invoke(get(&key_in(ShardId(8))))));
    assert_eq!((gid, again, seq), (G2, server, Seq(3)));
}

#[test]
fn not_leader_moves_on_to_the_groups_next_server() {
    let (c1, _) = configs();
    let mut ck = clerk();
    ck.step(ShardClerkInput::Invoke(get("1")));
    let (_, first, seq, _) = the_send(&ck.step(ShardClerkInput::Config(c1)));
    let not_leader = Err(NotLeader { leader_hint: None });
    let (gid, second, seq2, _) = the_send(&ck.step(reply(G1, &first, seq, not_leader.clone())));
    assert_eq!((gid, seq2), (G1, seq), "same request, same group");
    assert_eq!(second, next_server(&first, G1));
    // A late refusal from the server already left changes nothing.
    assert!(ck.step(reply(G1, &first, seq, not_leader)).is_empty());
    // Silence for a whole retry interval also moves on.
    let mut actions = Vec::new();
    for _ in 0..RETRY {
        actions = ck.step(ShardClerkInput::Tick);
    }
    let (_, third, _, _) = the_send(&actions);
    assert_eq!(third, next_server(&second, G1));
    let out = ck.step(reply(
        G1,
        &third,
        seq,
        Ok(GroupReply::Kv(Outcome::ErrNoKey)),
    ));
    assert_eq!(done(&out), Some(Outcome::ErrNoKey));
}

#[test]
fn wrong_group_asks_for_a_configuration_then_reroutes_the_same_request() {
    let (c1, c2) = configs();
    let key = key_in(ShardId(9));
    let mut ck = clerk();
    ck.step(ShardClerkInput::Invoke(get(&key)));
    let (gid, server, seq, _) = the_send(&ck.step(ShardClerkInput::Config(c1.clone())));
    assert_eq!(gid, G1);
    assert_eq!(
        ck.step(reply(G1, &server, seq, Ok(GroupReply::WrongGroup))),
        vec![ShardClerkAction::NeedConfig]
    );
    // An older configuration is ignored.
    let c0 = ShardConfig::initial(SHARDING.shards);
    assert!(ck
        .step(ShardClerkInput::Config(c0))
        .iter()
        .all(|a| !matches!(a, ShardClerkAction::Send { .. })));
    assert_eq!(ck.shard_config().unwrap().num, ConfigNum(1));
    let (gid, _, seq2, op) = the_send(&ck.step(ShardClerkInput::Config(c2)));
    assert_eq!((gid, seq2, op), (G2, seq, get(&key)));
    assert_eq!(ck.shard_config().unwrap().num, ConfigNum(2));
}

#[test]
fn a_late_answer_from_the_old_group_still_completes_the_operation() {
    let (c1, c2) = configs();
    let key = key_in(ShardId(5));
    let append = Op::Append {
        key: key.clone(),
        value: "x".into(),
    };
    let mut ck = clerk();
    ck.step(ShardClerkInput::Invoke(append.clone()));
    let (_, old_server, seq, _) = the_send(&ck.step(ShardClerkInput::Config(c1)));
    // The first attempt is slow; a retry at the next server is told
    // WrongGroup, and the clerk goes to g2.
    let mut actions = Vec::new();
    for _ in 0..RETRY {
        actions = ck.step(ShardClerkInput::Tick);
    }
    let (_, retry_server, _, _) = the_send(&actions);
    ck.step(reply(G1, &retry_server, seq, Ok(GroupReply::WrongGroup)));
    let (gid, _, _, _) = the_send(&ck.step(ShardClerkInput::Config(c2)));
    assert_eq!(gid, G2);
    // Then the first attempt's answer arrives from g1: it was applied there
    // (before the shard moved), so the operation is done.
    let out = ck.step(reply(G1, &old_server, seq, Ok(GroupReply::Kv(Outcome::Ok))));
    assert_eq!(
        out,
        vec![ShardClerkAction::Done {
            op: append,
            outcome: Outcome::Ok
        }]
    );
    assert!(!ck.busy());
    // g2's answer to the same request, arriving now, is ignored.
    assert!(ck
        .step(reply(
            G2,
            &servers(G2)[0],
            seq,
            Ok(GroupReply::Kv(Outcome::Ok))
        ))
        .is_empty());
}

#[test]
fn request_numbers_continue_across_groups() {
    let (_, c2) = configs();
    let mut ck = clerk();
    ck.step(ShardClerkInput::Config(c2));
    let mut seqs = Vec::new();
    for (i, shard) in [0, 7, 3, 9, 5].into_iter().enumerate() {
        let op = Op::Set {
            key: key_in(ShardId(shard)),
            value: format!("{i}"),
        };
        let (gid, server, seq, _) = the_send(&ck.step(ShardClerkInput::Invoke(op)));
        assert_eq!(gid, if shard >= 5 { G2 } else { G1 });
        seqs.push(seq.0);
        ck.step(reply(gid, &server, seq, Ok(GroupReply::Kv(Outcome::Ok))));
    }
    assert_eq!(seqs, [1, 2, 3, 4, 5]);
}

#[test]
fn operations_run_one_at_a_time_in_order() {
    let (c1, _) = configs();
    let mut ck = clerk();
    ck.step(ShardClerkInput::Config(c1));
    let (_, server, seq, op) = the_send(&ck.step(ShardClerkInput::Invoke(get("1"))));
    assert_eq!(op, get("1"));
    assert!(ck.step(ShardClerkInput::Invoke(get("2"))).is_empty());
    let out = ck.step(reply(
        G1,
        &server,
        seq,
        Ok(GroupReply::Kv(Outcome::ErrNoKey)),
    ));
    assert_eq!(done(&out), Some(Outcome::ErrNoKey));
    let (_, _, seq2, op2) = the_send(&out);
    assert_eq!((seq2, op2), (Seq(2), get("2")));
    // An answer to the finished request is ignored.
    assert!(ck
        .step(reply(G1, &server, seq, Ok(GroupReply::Kv(Outcome::Ok))))
        .is_empty());
}

fn versioned_put() -> Op {
    Op::Put {
        key: "4".into(),
        value: "v".into(),
        version: Version(1),
    }
}

#[test]
fn a_resent_versioned_put_answered_err_version_reports_err_maybe() {
    let (c1, _) = configs();
    let mut ck = clerk();
    ck.step(ShardClerkInput::Config(c1));
    let (_, _, seq, _) = the_send(&ck.step(ShardClerkInput::Invoke(versioned_put())));
    let mut actions = Vec::new();
    for _ in 0..RETRY {
        actions = ck.step(ShardClerkInput::Tick);
    }
    let (_, second, _, _) = the_send(&actions);
    let out = ck.step(reply(
        G1,
        &second,
        seq,
        Ok(GroupReply::Kv(Outcome::ErrVersion)),
    ));
    assert_eq!(done(&out), Some(Outcome::ErrMaybe));
}

#[test]
fn a_versioned_put_resent_to_a_new_group_answered_err_version_reports_err_maybe() {
    let (c1, c2) = configs();
    let put = Op::Put {
        key: key_in(ShardId(6)),
        value: "v".into(),
        version: Version(1),
    };
    let mut ck = clerk();
    ck.step(ShardClerkInput::Config(c1));
    let (_, server, seq, _) = the_send(&ck.step(ShardClerkInput::Invoke(put)));
    ck.step(reply(G1, &server, seq, Ok(GroupReply::WrongGroup)));
    let (_, s2, _, _) = the_send(&ck.step(ShardClerkInput::Config(c2)));
    let out = ck.step(reply(G2, &s2, seq, Ok(GroupReply::Kv(Outcome::ErrVersion))));
    assert_eq!(done(&out), Some(Outcome::ErrMaybe));
}

#[test]
fn a_versioned_put_sent_once_reports_err_version_as_is() {
    let (c1, _) = configs();
    let mut ck = clerk();
    ck.step(ShardClerkInput::Config(c1));
    let (_, server, seq, _) = the_send(&ck.step(ShardClerkInput::Invoke(versioned_put())));
    let out = ck.step(reply(
        G1,
        &server,
        seq,
        Ok(GroupReply::Kv(Outcome::ErrVersion)),
    ));
    assert_eq!(done(&out), Some(Outcome::ErrVersion));
}

#[test]
fn a_configuration_of_another_service_is_ignored() {
    let mut ck = clerk();
    ck.step(ShardClerkInput::Invoke(get("1")));
    let twelve = join(&ShardConfig::initial(12), G1);
    assert!(ck.step(ShardClerkInput::Config(twelve)).is_empty());
    assert!(ck.shard_config().is_none());
}

#[test]
fn the_same_inputs_give_the_same_actions() {
    let (c1, c2) = configs();
    let run = || {
        let mut ck = clerk();
        let mut log = Vec::new();
        log.extend(ck.step(ShardClerkInput::Invoke(get("7"))));
        log.extend(ck.step(ShardClerkInput::Config(c1.clone())));
        for _ in 0..3 * RETRY {
            log.extend(ck.step(ShardClerkInput::Tick));
        }
        log.extend(ck.step(ShardClerkInput::Config(c2.clone())));
        log
    };
    assert_eq!(run(), run());
}
