//! The 2025 service driven by hand: [`Group`] through
//! [`StateMachine::apply`], and the [`Controller`] against real state
//! machines (a [`KvStore`] holding the configuration, [`Group`]s as the
//! groups), with every action carried out in order and every answer fed
//! back. Stopping a controller is leaving its remaining actions undelivered.

use core_kv::{
    ClerkConfig, ClientId, ClientReply, ClientRequest, KvStore, LogIndex, Op, Outcome, Seq,
    StateMachine, Version,
};
use core_raft::rng::SplitMix64;
use core_raft::NodeId;
use core_shard::driven::{
    Call, CallResult, Controller, CtrlAction, CtrlConfig, CtrlInput, Group, GroupOp, CONFIG_KEY,
    FIRST_CONFIG, FIRST_GROUP, NEXT_KEY,
};
use core_shard::{
    ConfigNum, GroupId, GroupReply, MigrationStep, Refusal, ShardConfig, ShardData, ShardId,
    Sharding,
};
use std::collections::{BTreeMap, VecDeque};

const SHARDING: Sharding = Sharding::LAB_2025;
const G1: GroupId = FIRST_GROUP;
const G2: GroupId = GroupId(2);
const G3: GroupId = GroupId(3);

fn servers(gid: GroupId) -> Vec<String> {
    (0..3).map(|i| format!("g{}-{i}", gid.0)).collect()
}

fn join(c: &ShardConfig, gid: GroupId) -> ShardConfig {
    c.join(&BTreeMap::from([(gid, servers(gid))]))
}

/// The first configuration: every shard on group 1, number 1.
fn first() -> ShardConfig {
    join(&ShardConfig::initial(SHARDING.shards), G1)
}

fn key_in(shard: ShardId) -> String {
    (0..)
        .map(|i| format!("k{i}"))
        .find(|k| SHARDING.shard_of(k) == shard)
        .expect("some key hashes to every shard")
}

fn req(client: u64, seq: u64, op: Op) -> GroupOp {
    GroupOp::Client(ClientRequest {
        client: ClientId(client),
        seq: Seq(seq),
        op,
    })
}

fn put(key: &str, value: &str, version: u64) -> Op {
    Op::Put {
        key: key.into(),
        value: value.into(),
        version: Version(version),
    }
}

fn get(key: &str) -> Op {
    Op::Get { key: key.into() }
}

fn value(v: &str, version: u64) -> GroupReply {
    GroupReply::Kv(Outcome::Value {
        value: v.into(),
        version: Version(version),
    })
}

// ---- the group alone ----------------------------------------------------

struct Replica {
    group: Group,
    index: u64,
}

impl Replica {
    fn new(gid: GroupId) -> Replica {
        Replica {
            group: Group::new(gid, SHARDING),
            index: 0,
        }
    }

    fn apply(&mut self, op: GroupOp) -> GroupReply {
        self.index += 1;
        self.group.apply(LogIndex(self.index), &op)
    }

    fn freeze(&mut self, shard: ShardId, num: u64) -> GroupReply {
        self.apply(GroupOp::Freeze {
            shard,
            num: ConfigNum(num),
        })
    }

    fn install(&mut self, shard: ShardId, num: u64, data: ShardData) -> GroupReply {
        self.apply(GroupOp::Install {
            shard,
            num: ConfigNum(num),
            data,
        })
    }

    fn delete(&mut self, shard: ShardId, num: u64) -> GroupReply {
        self.apply(GroupOp::Delete {
            shard,
            num: ConfigNum(num),
        })
    }

    fn read(&self, key: &str) -> GroupReply {
        self.group.query(&req(0, 0, get(key)))
    }
}

fn installed(shard: ShardId, num: u64) -> GroupReply {
    GroupReply::Ack {
        shard,
        num: ConfigNum(num),
        step: MigrationStep::Install,
    }
}

fn deleted(shard: ShardId, num: u64) -> GroupReply {
    GroupReply::Ack {
        shard,
        num: ConfigNum(num),
        step: MigrationStep::Delete,
    }
}

fn refused(shard: ShardId, num: u64, why: Refusal) -> GroupReply {
    GroupReply::Refused {
        shard,
        num: ConfigNum(num),
        why,
    }
}

fn stale(current: u64) -> Refusal {
    Refusal::Stale {
        current: ConfigNum(current),
    }
}

fn frozen_data(reply: GroupReply) -> ShardData {
    match reply {
        GroupReply::Shard { data, .. } => data,
        other => panic!("expected shard data, got {other:?}"),
    }
}

#[test]
fn the_first_group_starts_with_every_shard_and_others_with_none() {
    let g1 = Replica::new(G1);
    assert_eq!(g1.group.serving(), SHARDING.all().collect::<Vec<_>>());
    assert!(SHARDING
        .all()
        .all(|s| g1.group.shard_num(s) == FIRST_CONFIG));
    assert_eq!(g1.read("k1"), GroupReply::Kv(Outcome::ErrNoKey));
    let g2 = Replica::new(G2);
    assert!(g2.group.held().is_empty());
    assert_eq!(g2.group.shard_num(ShardId(0)), ConfigNum(0));
    assert_eq!(g2.read("k1"), GroupReply::WrongGroup);
}

#[test]
fn freeze_install_delete_move_a_shard_with_its_data_and_sessions() {
    let mut g1 = Replica::new(G1);
    let mut g2 = Replica::new(G2);
    let s = ShardId(4);
    let k = key_in(s);
    let first_put = req(7, 1, put(&k, "a", 0));
    assert_eq!(g1.apply(first_put.clone()), GroupReply::Kv(Outcome::Ok));

    let data = frozen_data(g1.freeze(s, 2));
    assert_eq!(g1.group.shard_num(s), ConfigNum(2));
    assert!(!g1.group.serving().contains(&s) && g1.group.held().contains(&s));
    // Frozen: clients are refused, reads and writes alike, and nothing is
    // written.
    assert_eq!(g1.apply(req(8, 1, put(&k, "b", 1))), GroupReply::WrongGroup);
    assert_eq!(g1.apply(req(8, 2, get(&k))), GroupReply::WrongGroup);
    assert_eq!(g1.read(&k), GroupReply::WrongGroup);
    // A retried freeze answers the same data.
    assert_eq!(frozen_data(g1.freeze(s, 2)), data);

    assert_eq!(g2.install(s, 2, data), installed(s, 2));
    assert_eq!(g2.group.serving(), vec![s]);
    assert_eq!(g2.group.shard_num(s), ConfigNum(2));
    assert_eq!(g2.read(&k), value("a", 1));
    // The client's retry of its first Put, answered from the moved session
    // table: Ok, not ErrVersion, and not applied twice.
    assert_eq!(g2.apply(first_put), GroupReply::Kv(Outcome::Ok));
    assert_eq!(g2.read(&k), value("a", 1));

    assert_eq!(g1.delete(s, 2), deleted(s, 2));
    assert!(!g1.group.held().contains(&s));
    assert_eq!(g1.delete(s, 2), deleted(s, 2), "a retried delete is done");
    assert_eq!(
        g1.freeze(s, 2),
        refused(s, 2, Refusal::NotHeld),
        "a retried freeze after the delete"
    );
    assert_eq!(
        g1.group.shard_num(s),
        ConfigNum(2),
        "remembered after delete"
    );
    // The other shards never noticed.
    assert_eq!(g1.group.serving().len(), 11);
}

#[test]
fn an_install_with_an_older_number_is_refused() {
    let mut g1 = Replica::new(G1);
    let mut g2 = Replica::new(G2);
    let s = ShardId(9);
    let old = frozen_data(g1.freeze(s, 2));
    assert_eq!(g2.install(s, 3, ShardData::default()), installed(s, 3));
    g2.apply(req(1, 1, put(&key_in(s), "new", 0)));
    let before = g2.group.clone();
    assert_eq!(g2.install(s, 2, old), refused(s, 2, stale(3)));
    assert_eq!(g2.group, before);
    // Nor may an older freeze or delete touch it.
    assert_eq!(g2.freeze(s, 2), refused(s, 2, stale(3)));
    assert_eq!(g2.delete(s, 2), refused(s, 2, stale(3)));
    assert_eq!(g2.group, before);
    assert_eq!(g2.read(&key_in(s)), value("new", 1));
}

#[test]
fn a_duplicate_install_does_not_overwrite_data_changed_since() {
    let mut g1 = Replica::new(G1);
    let mut g2 = Replica::new(G2);
    let s = ShardId(0);
    let k = key_in(s);
    g1.apply(req(1, 1, put(&k, "a", 0)));
    let data = frozen_data(g1.freeze(s, 2));
    assert_eq!(g2.install(s, 2, data.clone()), installed(s, 2));
    assert_eq!(
        g2.apply(req(2, 1, put(&k, "b", 1))),
        GroupReply::Kv(Outcome::Ok)
    );
    assert_eq!(g2.install(s, 2, data), installed(s, 2));
    assert_eq!(g2.read(&k), value("b", 2));
}

#[test]
fn an_install_at_the_number_the_shard_was_frozen_at_is_refused() {
    // The shard left this group in configuration 2: the same step cannot
    // bring it back.
    let mut g1 = Replica::new(G1);
    let s = ShardId(3);
    let data = frozen_data(g1.freeze(s, 2));
    assert_eq!(g1.install(s, 2, data), refused(s, 2, stale(2)));
    assert!(!g1.group.serving().contains(&s));
}

#[test]
fn delete_before_freeze_is_refused_and_loses_nothing() {
    let mut g1 = Replica::new(G1);
    let s = ShardId(5);
    let k = key_in(s);
    g1.apply(req(1, 1, put(&k, "keep", 0)));
    let before = g1.group.clone();
    assert_eq!(
        g1.delete(s, 2),
        refused(
            s,
            2,
            Refusal::NotYet {
                current: ConfigNum(1)
            }
        )
    );
    assert_eq!(
        g1.delete(s, 1),
        refused(
            s,
            1,
            Refusal::NotYet {
                current: ConfigNum(1)
            }
        ),
        "a served shard is never deleted"
    );
    assert_eq!(g1.group, before);
    assert_eq!(g1.read(&k), value("keep", 1));
    // Frozen at 2, a delete for 3 is still refused.
    g1.freeze(s, 2);
    assert!(matches!(
        g1.delete(s, 3),
        GroupReply::Refused {
            why: Refusal::NotYet { .. },
            ..
        }
    ));
    assert!(g1.group.held().contains(&s));
    // And a freeze of a shard the group never held is NotHeld.
    let mut g2 = Replica::new(G2);
    assert_eq!(g2.freeze(s, 2), refused(s, 2, Refusal::NotHeld));
    assert!(g2.group.held().is_empty());
}

#[test]
fn a_newer_freeze_of_a_frozen_shard_answers_its_data() {
    // A superseding move of a shard frozen under an older one.
    let mut g1 = Replica::new(G1);
    let s = ShardId(1);
    g1.apply(req(1, 1, put(&key_in(s), "x", 0)));
    let at2 = frozen_data(g1.freeze(s, 2));
    let at3 = frozen_data(g1.freeze(s, 3));
    assert_eq!(at2, at3);
    assert_eq!(g1.group.shard_num(s), ConfigNum(3));
    assert_eq!(g1.freeze(s, 2), refused(s, 2, stale(3)));
    assert_eq!(g1.delete(s, 2), refused(s, 2, stale(3)));
    assert_eq!(g1.delete(s, 3), deleted(s, 3));
}

#[test]
fn group_snapshots_round_trip_and_belong_to_one_group() {
    let mut g1 = Replica::new(G1);
    g1.apply(req(1, 1, put("k1", "x", 0)));
    g1.freeze(ShardId(2), 2);
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut g1.group.snapshot(), &mut bytes).unwrap();
    let mut back = Group::new(G1, SHARDING);
    back.restore(&mut bytes.as_slice()).unwrap();
    assert_eq!(back, g1.group);
    let mut other = Group::new(G2, SHARDING);
    assert!(other.restore(&mut bytes.as_slice()).is_err());
    assert_eq!(other, Group::new(G2, SHARDING));
}

// ---- the controller against real state machines ----------------------

/// The configuration store and the groups.
#[derive(Clone)]
struct World {
    store: KvStore,
    groups: BTreeMap<GroupId, Group>,
    index: u64,
    /// Every key written through `client_put`, with its value and version.
    expected: BTreeMap<String, (String, Version)>,
    client_seq: u64,
}

impl World {
    fn new(gids: &[GroupId]) -> World {
        World {
            store: KvStore::new(),
            groups: gids
                .iter()
                .map(|g| (*g, Group::new(*g, SHARDING)))
                .collect(),
            index: 0,
            expected: BTreeMap::new(),
            client_seq: 0,
        }
    }

    /// Carry out one controller action; the controller's answer to it.
    fn carry_out(&mut self, ctrl: &mut Controller, action: CtrlAction) -> Vec<CtrlAction> {
        match action {
            CtrlAction::Kv { to, request } => {
                let outcome = self.store.apply(&request);
                ctrl.step(CtrlInput::Kv {
                    from: to,
                    reply: ClientReply::new(request.client, request.seq, Ok(outcome)),
                })
            }
            CtrlAction::Group { gid, servers, op } => {
                assert_eq!(servers, self::servers(gid), "servers of {gid}");
                self.index += 1;
                let group = self.groups.get_mut(&gid).expect("a known group");
                let reply = group.apply(LogIndex(self.index), &op);
                ctrl.step(CtrlInput::Group(reply))
            }
            CtrlAction::Done(_) => unreachable!("handled by the caller"),
        }
    }

    /// The stored value of `key` and its version.
    fn stored(&self, key: &str) -> Option<(ShardConfig, Version)> {
        match self.store.read(&get(key)) {
            Outcome::Value { value, version } => {
                Some((ShardConfig::from_text(&value).unwrap(), version))
            }
            _ => None,
        }
    }

    fn config(&self) -> ShardConfig {
        self.stored(CONFIG_KEY).expect("a stored configuration").0
    }

    /// A fresh client's Put of `key` at its owner in the stored
    /// configuration.
    fn client_put(&mut self, key: &str, v: &str) {
        let owner = self.config().owner(SHARDING.shard_of(key));
        let version = self.expected.get(key).map_or(0, |(_, ver)| ver.0);
        self.client_seq += 1;
        self.index += 1;
        let reply = self.groups.get_mut(&owner).unwrap().apply(
            LogIndex(self.index),
            &req(1000 + self.client_seq, 1, put(key, v, version)),
        );
        assert_eq!(
            reply,
            GroupReply::Kv(Outcome::Ok),
            "Put of {key} at {owner}"
        );
        self.expected
            .insert(key.into(), (v.into(), Version(version + 1)));
    }

    /// Every shard is served by its owner in the stored configuration and
    /// held by no other group, and every key written reads back.
    fn check_consistent(&self) {
        let cfg = self.config();
        assert_eq!(
            self.stored(NEXT_KEY).map(|n| n.0),
            Some(cfg.clone()),
            "no change left half done"
        );
        for s in SHARDING.all() {
            let owner = cfg.owner(s);
            for (gid, g) in &self.groups {
                if *gid == owner {
                    assert!(g.serving().contains(&s), "{owner} does not serve {s}");
                } else {
                    assert!(!g.held().contains(&s), "{gid} still holds {s} of {owner}");
                }
            }
        }
        for (key, (v, version)) in &self.expected {
            let owner = cfg.owner(SHARDING.shard_of(key));
            assert_eq!(
                self.groups[&owner].query(&req(0, 0, get(key))),
                GroupReply::Kv(Outcome::Value {
                    value: v.clone(),
                    version: *version
                }),
                "{key} at {owner}"
            );
        }
    }
}

/// A controller with the actions it has asked for and not yet had carried
/// out.
struct Driver {
    ctrl: Controller,
    queue: VecDeque<CtrlAction>,
    result: Option<CallResult>,
    delivered: usize,
}

impl Driver {
    fn new(client: u64) -> Driver {
        Driver {
            ctrl: Controller::new(CtrlConfig {
                kv: ClerkConfig {
                    client: ClientId(client),
                    servers: vec![NodeId(1)],
                    retry_ticks: 10,
                    seed: client,
                },
                retry_ticks: 5,
            }),
            queue: VecDeque::new(),
            result: None,
            delivered: 0,
        }
    }

    fn invoke(&mut self, call: Call) {
        self.result = None;
        let actions = self.ctrl.step(CtrlInput::Invoke(call));
        self.take(actions);
    }

    fn take(&mut self, actions: Vec<CtrlAction>) {
        for a in actions {
            match a {
                CtrlAction::Done(r) => {
                    assert!(self.result.is_none(), "two results for one call");
                    self.result = Some(r);
                }
                other => self.queue.push_back(other),
            }
        }
    }

    /// Carry out the oldest outstanding action (a tick if there is none).
    fn step(&mut self, world: &mut World) {
        let actions = match self.queue.pop_front() {
            Some(a) => {
                self.delivered += 1;
                world.carry_out(&mut self.ctrl, a)
            }
            None => self.ctrl.step(CtrlInput::Tick),
        };
        self.take(actions);
    }

    fn running(&self) -> bool {
        self.result.is_none()
    }

    /// Run the current call to its end.
    fn finish(&mut self, world: &mut World) -> CallResult {
        for _ in 0..10_000 {
            if let Some(r) = self.result.clone() {
                assert!(!self.ctrl.busy());
                assert!(
                    self.queue.is_empty(),
                    "actions after Done: {:?}",
                    self.queue
                );
                return r;
            }
            self.step(world);
        }
        panic!("the call did not finish")
    }

    fn call(&mut self, world: &mut World, call: Call) -> CallResult {
        self.invoke(call);
        self.finish(world)
    }
}

/// A world with groups 1, 2, 3, the first configuration stored, and 60
/// keys written at group 1.
fn populated() -> World {
    let mut w = World::new(&[G1, G2, G3]);
    assert_eq!(
        Driver::new(100).call(&mut w, Call::InitConfig(first())),
        CallResult::Done
    );
    for i in 0..60 {
        w.client_put(&format!("k{i}"), &format!("v{i}"));
    }
    w
}

#[test]
fn init_config_then_query() {
    let mut w = World::new(&[G1]);
    let mut ctrl = Driver::new(100);
    assert!(matches!(
        ctrl.call(&mut w, Call::Query),
        CallResult::Invalid(_)
    ));
    assert!(matches!(
        ctrl.call(&mut w, Call::ChangeConfigTo(join(&first(), G2))),
        CallResult::Invalid(_)
    ));
    assert_eq!(
        ctrl.call(&mut w, Call::InitConfig(first())),
        CallResult::Done
    );
    let CallResult::Config(c) = ctrl.call(&mut w, Call::Query) else {
        panic!("Query did not answer a configuration")
    };
    assert_eq!(c, first());
    assert_eq!(c.num, FIRST_CONFIG);
    assert!(c.shards.iter().all(|g| *g == G1));
    c.check_balanced().unwrap();
    // A first configuration the groups cannot agree with is refused: only
    // group 1 starts owning shards.
    let other = join(&ShardConfig::initial(SHARDING.shards), G2);
    assert!(matches!(
        Driver::new(101).call(&mut w, Call::InitConfig(other)),
        CallResult::Invalid(_)
    ));
    // A second valid InitConfig (other server names) changes nothing.
    let mut renamed = first();
    renamed.groups.insert(G1, vec!["elsewhere".into()]);
    assert_eq!(
        Driver::new(102).call(&mut w, Call::InitConfig(renamed)),
        CallResult::Done
    );
    assert_eq!(ctrl.call(&mut w, Call::Query), CallResult::Config(first()));
    assert_eq!(ctrl.call(&mut w, Call::InitController), CallResult::Done);
    w.check_consistent();
}

#[test]
fn joining_group_2_moves_the_right_shards_with_their_data() {
    let mut w = populated();
    let c2 = join(&first(), G2);
    let moving: Vec<ShardId> = SHARDING.all().filter(|s| c2.owner(*s) == G2).collect();
    assert_eq!(moving.len(), 6);
    let mut ctrl = Driver::new(100);
    assert_eq!(
        ctrl.call(&mut w, Call::ChangeConfigTo(c2.clone())),
        CallResult::Done
    );
    assert_eq!(
        ctrl.call(&mut w, Call::Query),
        CallResult::Config(c2.clone())
    );
    w.check_consistent();
    assert_eq!(w.groups[&G2].serving(), moving);
    for s in &moving {
        assert_eq!(w.groups[&G1].shard_num(*s), ConfigNum(2));
        assert_eq!(w.groups[&G2].shard_num(*s), ConfigNum(2));
    }
    // Shards that did not move were not touched.
    let stayed = SHARDING.all().find(|s| c2.owner(*s) == G1).unwrap();
    assert_eq!(w.groups[&G1].shard_num(stayed), FIRST_CONFIG);
    // Keys keep their versions, and g3 got nothing.
    assert!(w.groups[&G3].held().is_empty());
    // Asking for the same change again is refused: the number is taken.
    assert_eq!(
        ctrl.call(&mut w, Call::ChangeConfigTo(c2)),
        CallResult::Superseded
    );
}

#[test]
fn a_configuration_that_drops_a_shard_is_invalid_and_changes_nothing() {
    let mut w = populated();
    let mut bad = join(&first(), G2);
    bad.shards[0] = GroupId::NONE;
    let before = w.groups.clone();
    assert!(matches!(
        Driver::new(100).call(&mut w, Call::ChangeConfigTo(bad)),
        CallResult::Invalid(_)
    ));
    let mut unknown = join(&first(), G2);
    unknown.shards[0] = GroupId(9);
    assert!(matches!(
        Driver::new(101).call(&mut w, Call::ChangeConfigTo(unknown)),
        CallResult::Invalid(_)
    ));
    assert_eq!(w.groups, before);
    w.check_consistent();
}

#[test]
fn a_change_left_half_done_is_finished_by_the_next_controller() {
    let c2 = join(&first(), G2);
    // Stop the first controller after every possible number of steps.
    let alone = {
        let mut w = populated();
        let mut d = Driver::new(100);
        d.call(&mut w, Call::ChangeConfigTo(c2.clone()));
        d.delivered
    };
    let mut seen_half_done = false;
    for stop in 0..alone {
        let mut w = populated();
        let mut a = Driver::new(100);
        a.invoke(Call::ChangeConfigTo(c2.clone()));
        while a.delivered < stop {
            a.step(&mut w);
        }
        assert!(a.running());
        let half_done = w.config() == first() && w.stored(NEXT_KEY).unwrap().0 == c2;
        if half_done && w.groups[&G1].serving().len() < 12 {
            seen_half_done = true;
        }
        drop(a);
        let mut b = Driver::new(101);
        assert_eq!(b.call(&mut w, Call::InitController), CallResult::Done);
        let stored = w.config();
        assert!(stored == first() || stored == c2, "stop {stop}: {stored}");
        if half_done {
            assert_eq!(stored, c2, "stop {stop}: the change was finished");
        }
        w.check_consistent();
        // A second recovery has nothing to do.
        let before = w.groups.clone();
        assert_eq!(b.call(&mut w, Call::InitController), CallResult::Done);
        assert_eq!(w.groups, before);
    }
    assert!(seen_half_done, "some stop left shards frozen mid-move");
}

/// Run two drivers to their ends, choosing which one moves next from
/// `seed`.
fn race(w: &mut World, a: &mut Driver, b: &mut Driver, seed: u64) {
    let mut rng = SplitMix64::new(seed);
    for _ in 0..10_000 {
        match (a.running(), b.running()) {
            (false, false) => return,
            (true, false) => a.step(w),
            (false, true) => b.step(w),
            (true, true) => {
                if rng.next_u64().is_multiple_of(2) {
                    a.step(w)
                } else {
                    b.step(w)
                }
            }
        }
    }
    panic!("the race did not end");
}

#[test]
fn of_two_controllers_racing_for_one_number_exactly_one_wins() {
    let c_a = join(&first(), G2);
    let c_b = join(&first(), G3);
    assert_eq!(c_a.num, c_b.num);
    let mut wins = [0; 2];
    for seed in 0..200 {
        let mut w = populated();
        let mut a = Driver::new(100);
        let mut b = Driver::new(101);
        a.invoke(Call::ChangeConfigTo(c_a.clone()));
        b.invoke(Call::ChangeConfigTo(c_b.clone()));
        race(&mut w, &mut a, &mut b, seed);
        let results = (a.result.clone().unwrap(), b.result.clone().unwrap());
        let winner = match results {
            (CallResult::Done, CallResult::Superseded) => {
                wins[0] += 1;
                &c_a
            }
            (CallResult::Superseded, CallResult::Done) => {
                wins[1] += 1;
                &c_b
            }
            other => panic!("seed {seed}: {other:?}"),
        };
        assert_eq!(&w.config(), winner, "seed {seed}");
        w.check_consistent();
        let loser = if winner == &c_a { G3 } else { G2 };
        assert!(w.groups[&loser].held().is_empty(), "seed {seed}");
    }
    assert!(
        wins[0] > 0 && wins[1] > 0,
        "both sides won some races: {wins:?}"
    );
}

#[test]
fn a_controller_and_a_recovering_one_finish_the_same_change_together() {
    let c2 = join(&first(), G2);
    for seed in 0..100 {
        let mut w = populated();
        let mut a = Driver::new(100);
        a.invoke(Call::ChangeConfigTo(c2.clone()));
        // Let `a` store its next configuration, then race a recovery.
        while w.stored(NEXT_KEY).unwrap().0 != c2 {
            a.step(&mut w);
        }
        let mut b = Driver::new(101);
        b.invoke(Call::InitController);
        race(&mut w, &mut a, &mut b, seed);
        assert_eq!(a.result, Some(CallResult::Done), "seed {seed}");
        assert_eq!(b.result, Some(CallResult::Done), "seed {seed}");
        assert_eq!(w.config(), c2);
        w.check_consistent();
    }
}

#[test]
fn a_superseded_controller_that_resumes_changes_nothing() {
    let c2 = join(&first(), G2);
    let c3 = c2.leave(&[G2]);
    assert_eq!(c3.num, ConfigNum(3));
    let alone = {
        let mut w = populated();
        let mut d = Driver::new(100);
        d.call(&mut w, Call::ChangeConfigTo(c2.clone()));
        d.delivered
    };
    for stop in 0..alone {
        let mut w = populated();
        let mut a = Driver::new(100);
        a.invoke(Call::ChangeConfigTo(c2.clone()));
        while a.delivered < stop {
            a.step(&mut w);
        }
        // `a` is cut off. Another controller recovers, makes configuration
        // 2 if `a` had not got that far, then 3 (everything back on g1);
        // clients write to the shards that moved twice.
        let mut b = Driver::new(101);
        assert_eq!(b.call(&mut w, Call::InitController), CallResult::Done);
        if w.config().num == FIRST_CONFIG {
            assert_eq!(
                b.call(&mut w, Call::ChangeConfigTo(c2.clone())),
                CallResult::Done
            );
        }
        assert_eq!(
            b.call(&mut w, Call::ChangeConfigTo(c3.clone())),
            CallResult::Done
        );
        for s in c2.shards_of(G2) {
            w.client_put(&key_in(s), &format!("after {stop}"));
        }
        w.check_consistent();
        let groups = w.groups.clone();
        let (config, next) = (w.stored(CONFIG_KEY), w.stored(NEXT_KEY));

        // `a` comes back and runs to its end: every step it takes is
        // refused or finds its work done.
        let result = a.finish(&mut w);
        assert!(
            matches!(result, CallResult::Done | CallResult::Superseded),
            "stop {stop}: {result:?}"
        );
        assert_eq!(w.groups, groups, "stop {stop}: a group changed");
        assert_eq!(w.stored(CONFIG_KEY), config, "stop {stop}");
        assert_eq!(w.stored(NEXT_KEY), next, "stop {stop}");
        w.check_consistent();
    }
}

#[test]
fn a_lost_migration_step_is_resent_after_retry_ticks() {
    let mut w = populated();
    let mut a = Driver::new(100);
    a.invoke(Call::ChangeConfigTo(join(&first(), G2)));
    // Run until the freezes are out, then lose them all.
    while !a
        .queue
        .iter()
        .any(|x| matches!(x, CtrlAction::Group { .. }))
    {
        a.step(&mut w);
    }
    let lost: Vec<CtrlAction> = a.queue.drain(..).collect();
    assert_eq!(lost.len(), 6, "one freeze per moving shard");
    let mut resent = Vec::new();
    for tick in 1..=5 {
        resent = a.ctrl.step(CtrlInput::Tick);
        if tick < 5 {
            assert!(resent.is_empty(), "resent early, at tick {tick}");
        }
    }
    assert_eq!(resent, lost, "every unanswered step, again");
    a.take(resent);
    assert_eq!(a.finish(&mut w), CallResult::Done);
    w.check_consistent();
}

#[test]
fn a_duplicated_install_ack_does_not_pass_for_the_deletes_ack() {
    // The network duplicates one Install; its second Ack reaches the
    // controller after it has sent the Delete, and the Delete is lost.
    let mut w = populated();
    let mut a = Driver::new(100);
    a.invoke(Call::ChangeConfigTo(join(&first(), G2)));
    let is_install = |x: &CtrlAction| {
        matches!(
            x,
            CtrlAction::Group {
                op: GroupOp::Install { .. },
                ..
            }
        )
    };
    while !a.queue.front().is_some_and(is_install) {
        a.step(&mut w);
    }
    let install = a.queue.pop_front().unwrap();
    let CtrlAction::Group {
        op: GroupOp::Install { shard, .. },
        ..
    } = install.clone()
    else {
        unreachable!()
    };
    let delete = w.carry_out(&mut a.ctrl, install.clone());
    assert!(matches!(
        &delete[..],
        [CtrlAction::Group {
            op: GroupOp::Delete { .. },
            ..
        }]
    ));
    let again = w.carry_out(&mut a.ctrl, install);
    a.take(again);
    // The Delete is lost; everything else is delivered.
    assert_eq!(a.finish(&mut w), CallResult::Done);
    assert!(
        !w.groups[&G1].held().contains(&shard),
        "g1 still holds {shard}, frozen, and nobody will ever delete it"
    );
}

#[test]
fn a_not_yet_refusal_does_not_count_as_a_finished_move() {
    let mut w = populated();
    let c2 = join(&first(), G2);
    let mut a = Driver::new(100);
    a.invoke(Call::ChangeConfigTo(c2.clone()));
    while !a
        .queue
        .iter()
        .any(|x| matches!(x, CtrlAction::Group { .. }))
    {
        a.step(&mut w);
    }
    // Forged (or very confused) refusals: "not yet" means try again.
    for s in c2.shards_of(G2) {
        let out = a.ctrl.step(CtrlInput::Group(refused(
            s,
            2,
            Refusal::NotYet {
                current: ConfigNum(1),
            },
        )));
        assert!(out.is_empty(), "{out:?}");
    }
    assert_eq!(a.finish(&mut w), CallResult::Done);
    w.check_consistent();
}

/// A message between a controller and the world: a request (an action) or
/// the answer to one.
enum Msg {
    Request(CtrlAction),
    Answer(CtrlInput),
}

/// Carry out a request; its answer as the controller's input.
fn answer(w: &mut World, action: CtrlAction) -> CtrlInput {
    match action {
        CtrlAction::Kv { to, request } => CtrlInput::Kv {
            from: to,
            reply: ClientReply::new(request.client, request.seq, Ok(w.store.apply(&request))),
        },
        CtrlAction::Group { gid, op, .. } => {
            w.index += 1;
            let reply = w
                .groups
                .get_mut(&gid)
                .unwrap()
                .apply(LogIndex(w.index), &op);
            CtrlInput::Group(reply)
        }
        CtrlAction::Done(_) => unreachable!(),
    }
}

/// Queue a controller's requests; record its result.
fn push(
    net: &mut Vec<(usize, Msg)>,
    results: &mut [Option<CallResult>],
    i: usize,
    out: Vec<CtrlAction>,
) {
    for a in out {
        match a {
            CtrlAction::Done(r) => {
                assert!(results[i].is_none(), "two results for one call");
                results[i] = Some(r);
            }
            other => net.push((i, Msg::Request(other))),
        }
    }
}

/// Controllers `calls` (one call each) run at once over a network that
/// reorders, duplicates and loses requests and answers, until every call
/// has ended; then every message still in flight is delivered. Returns
/// each call's result.
fn chaos(w: &mut World, calls: Vec<Call>, seed: u64) -> Vec<CallResult> {
    let mut rng = SplitMix64::new(seed);
    let mut ctrls: Vec<Driver> = (0..calls.len())
        .map(|i| Driver::new(100 + i as u64))
        .collect();
    let mut net: Vec<(usize, Msg)> = Vec::new();
    let mut results: Vec<Option<CallResult>> = vec![None; calls.len()];
    for (i, call) in calls.into_iter().enumerate() {
        let out = ctrls[i].ctrl.step(CtrlInput::Invoke(call));
        push(&mut net, &mut results, i, out);
    }
    for _ in 0..200_000 {
        if results.iter().all(Option::is_some) {
            break;
        }
        let roll = rng.next_u64() % 100;
        if roll < 30 || net.is_empty() {
            let i = (rng.next_u64() % ctrls.len() as u64) as usize;
            let out = ctrls[i].ctrl.step(CtrlInput::Tick);
            push(&mut net, &mut results, i, out);
            continue;
        }
        let k = (rng.next_u64() % net.len() as u64) as usize;
        let (i, msg) = net.swap_remove(k);
        let fate = rng.next_u64() % 100;
        if fate < 10 {
            continue; // lost
        }
        match msg {
            Msg::Request(action) => {
                if fate < 20 {
                    net.push((i, Msg::Request(action.clone()))); // duplicated
                }
                let input = answer(w, action);
                net.push((i, Msg::Answer(input)));
            }
            Msg::Answer(input) => {
                if fate < 20 {
                    net.push((i, Msg::Answer(input.clone())));
                }
                let out = ctrls[i].ctrl.step(input);
                push(&mut net, &mut results, i, out);
            }
        }
    }
    assert!(
        results.iter().all(Option::is_some),
        "seed {seed}: calls did not end"
    );
    // Late requests still in flight arrive now; they must change nothing.
    for (_, msg) in net {
        if let Msg::Request(action) = msg {
            answer(w, action);
        }
    }
    results.into_iter().map(Option::unwrap).collect()
}

#[test]
fn changes_survive_a_network_that_reorders_duplicates_and_loses_messages() {
    let c2 = join(&first(), G2);
    let c2_other = join(&first(), G3);
    for seed in 0..150 {
        // One controller alone.
        let mut w = populated();
        let r = chaos(&mut w, vec![Call::ChangeConfigTo(c2.clone())], seed);
        assert_eq!(r, [CallResult::Done], "seed {seed}");
        assert_eq!(w.config(), c2, "seed {seed}");
        w.check_consistent();

        // A change and a recovery at once.
        let mut w = populated();
        let r = chaos(
            &mut w,
            vec![Call::ChangeConfigTo(c2.clone()), Call::InitController],
            seed,
        );
        assert_eq!(r[0], CallResult::Done, "seed {seed}");
        w.check_consistent();

        // Two changes racing for one number.
        let mut w = populated();
        let r = chaos(
            &mut w,
            vec![
                Call::ChangeConfigTo(c2.clone()),
                Call::ChangeConfigTo(c2_other.clone()),
            ],
            seed,
        );
        let stored = w.config();
        match (&r[0], &r[1]) {
            (CallResult::Done, CallResult::Superseded) => assert_eq!(stored, c2),
            (CallResult::Superseded, CallResult::Done) => assert_eq!(stored, c2_other),
            other => panic!("seed {seed}: {other:?}"),
        }
        w.check_consistent();
    }
}

#[test]
fn a_change_works_after_an_init_config_that_stored_only_the_configuration() {
    // InitConfig stores the configuration, then `next`; a controller that
    // died between the two leaves no `next`. That means no change is under
    // way: the next change creates `next` and goes ahead.
    let mut w = World::new(&[G1, G2]);
    let stored = w.store.apply(&core_kv::ClientRequest {
        client: core_kv::ClientId(7),
        seq: core_kv::Seq(1),
        op: Op::Put {
            key: CONFIG_KEY.into(),
            value: first().to_text(),
            version: Version(0),
        },
    });
    assert_eq!(stored, Outcome::Ok);
    assert!(w.stored(NEXT_KEY).is_none());
    let mut ctrl = Driver::new(100);
    assert_eq!(ctrl.call(&mut w, Call::InitController), CallResult::Done);
    let c2 = join(&first(), G2);
    assert_eq!(
        ctrl.call(&mut w, Call::ChangeConfigTo(c2.clone())),
        CallResult::Done
    );
    assert_eq!(w.config(), c2);
    assert_eq!(w.stored(NEXT_KEY).unwrap().0, c2);
    w.check_consistent();
}
