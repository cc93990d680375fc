//! The classic sharded key/value tests (S24 `src/shardkv/test_test.go`,
//! labs 5A/5B and the two challenges; the same as S21 `pkg/shardkv`
//! without the suffixes), catalogue §8, on the simulated service
//! (`ShardWorld<Classic>`): a replicated controller of 3 servers and three
//! groups (gids 100, 101, 102) of 3 servers each, all started at once as
//! the Go `make_config` does; `join` only asks the controller. Keys are
//! "0", "1", ... as in Go (the classic `key2shard` takes the first byte
//! modulo 10, so "0".."9" hit ten different shards). Times are virtual
//! milliseconds, and every timed sleep and loop is the Go test's own
//! length (the whole file takes a few seconds of real time).
//!
//! The Go tests' single clerk `ck` is a fresh scripted clerk per batch of
//! operations here (a batch runs in order, one operation at a time, as `ck`
//! would); the appender goroutines are long-running client endpoints with
//! the [`Appender`] workload in its append-only mode (elements
//! `"x <client> <j> y"` instead of Go's random strings), and the final check
//! is that every key holds exactly its initial value followed by every
//! acknowledged append, each once and in order — the "exactly once across
//! moves" check.
//!
//! Replay one seed: `SIM_SEED=n cargo test --release -p model-tests --test
//! shardkv_classic -- --exact name`.

use core_kv::{Op, Outcome};
use core_shard::classic::{CtrlOp, CtrlReply};
use core_shard::{
    ConfigNum, GroupId, ShardClerk, ShardClerkAction, ShardClerkConfig, ShardClerkInput,
    ShardConfig, ShardId, Sharding,
};
use model_tests::kvsim::clients::{check_appends, Appender, History, Stop, Workload};
use model_tests::kvsim::lab::assert_classic_linearizable;
use model_tests::shardsim::endpoints::{ShardClient, RETRY_TICKS};
use model_tests::shardsim::lab::{append, ctrl_ops, get, history, leave, query, set};
use model_tests::shardsim::world::{parse_server_name, server_name};
use model_tests::shardsim::{Classic, Endpoint, EndpointIo, Flavor, ShardSimConfig, ShardWorld};
use model_tests::sim::rng::SimRng;
use model_tests::sim::seeds::run_seeds;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

const SEEDS: u64 = 3;

/// The three groups of every test (the Go tester's groups 0, 1, 2).
const G0: u64 = 100;
const G1: u64 = 101;
const G2: u64 = 102;
const GIDS: [u64; 3] = [G0, G1, G2];

/// How long one batch of clerk operations or one controller operation may
/// take (the Go tests have only their 120 s wall limit).
const OPS_LIMIT_MS: u64 = 60_000;

/// How long appender clients may take to finish their last operation once
/// told to stop.
const STOP_LIMIT_MS: u64 = 60_000;

/// The challenge-2 tests' limit for the operations that must complete (the
/// Go tests have none: they would hang).
const CHALLENGE2_LIMIT_MS: u64 = 10_000;

/// Client ids of the long-running clients are 1..=10; clerks of the
/// rejection test are numbered from here (scripted clerks use 2^40 and up,
/// controller clerks 2^50 and up, agents 2^60 and up).
const FIXED_CLIENT_BASE: u64 = 1 << 42;

// ---------------------------------------------------------------------
// The tester: a world with three groups, joins, checks.
// ---------------------------------------------------------------------

/// The Go `make_config(t, 3, unreliable, maxraftstate)`: the controller and
/// all three groups running, nothing joined.
fn world(seed: u64, reliable: bool, max_raft_state: Option<usize>) -> ShardWorld<Classic> {
    let mut w = ShardWorld::new(ShardSimConfig {
        max_raft_state,
        ..ShardSimConfig::new(seed, reliable)
    });
    for g in GIDS {
        w.start_group(GroupId(g));
    }
    w
}

/// `cfg.join`/`cfg.joinm`: one controller `Join` of `gids` (their servers
/// keep whatever state they are in: a shut-down server stays down).
fn join(w: &mut ShardWorld<Classic>, gids: &[u64]) {
    let groups: BTreeMap<GroupId, Vec<String>> = gids
        .iter()
        .map(|g| (GroupId(*g), w.group_servers(GroupId(*g))))
        .collect();
    let r = ctrl_ops(w, vec![CtrlOp::Join(groups)], OPS_LIMIT_MS);
    if !matches!(r.as_slice(), [Ok(CtrlReply::Changed { .. })]) {
        w.fail(format!("Join({gids:?}) answered {r:?}"));
    }
}

fn shutdown_groups(w: &mut ShardWorld<Classic>, gids: &[u64]) {
    for g in gids {
        w.shutdown_group(GroupId(*g));
    }
}

fn start_groups(w: &mut ShardWorld<Classic>, gids: &[u64]) {
    for g in gids {
        w.start_group(GroupId(*g));
    }
}

/// `cfg.ShutdownServer(g, i)` for every group.
fn shutdown_server_everywhere(w: &mut ShardWorld<Classic>, i: usize) {
    for g in GIDS {
        w.group_mut(GroupId(g)).expect("started").shutdown(i);
    }
}

/// `cfg.StartServer(g, i)` for every group.
fn start_server_everywhere(w: &mut ShardWorld<Classic>, i: usize) {
    for g in GIDS {
        w.group_mut(GroupId(g)).expect("started").start(i);
    }
}

/// `cfg.checklogs()`: every group's persisted Raft state is at most
/// 8 × maxraftstate; without a maxraftstate there is no snapshot at all.
fn checklogs(w: &ShardWorld<Classic>) {
    let max = w.config().max_raft_state;
    for gid in w.group_ids() {
        match max {
            Some(max) => {
                let size = w.raft_state_size(gid);
                if size > 8 * max {
                    w.fail(format!("{gid}: raft state {size} > 8 * {max} bytes"));
                }
            }
            None => {
                let size = w.snapshot_size(gid);
                if size != 0 {
                    w.fail(format!(
                        "{gid}: a {size}-byte snapshot without maxraftstate"
                    ));
                }
            }
        }
    }
}

/// The Go `randstring(n)`, from the world's RNG.
fn randstring(w: &mut ShardWorld<Classic>, n: usize) -> String {
    random_letters(w.rng(), n)
}

fn random_letters(rng: &mut SimRng, n: usize) -> String {
    (0..n)
        .map(|_| (b'a' + rng.below(26) as u8) as char)
        .collect()
}

/// Keys "0".."n-1".
fn keys(n: usize) -> Vec<String> {
    (0..n).map(|i| i.to_string()).collect()
}

/// The classic `key2shard`.
fn shard_of(key: &str) -> ShardId {
    Classic::SHARDING.shard_of(key)
}

/// A Get's value (a missing key reads as "", as the Go clerk returns).
fn value_of(w: &ShardWorld<Classic>, key: &str, outcome: &Outcome) -> String {
    match outcome {
        Outcome::Value { value, .. } => value.clone(),
        Outcome::ErrNoKey => String::new(),
        other => w.fail(format!("Get({key}) returned {other:?}")),
    }
}

/// Run `ops` in order through one fresh clerk (the Go tests' `ck`).
fn run(w: &mut ShardWorld<Classic>, ops: Vec<Op>) -> Vec<Outcome> {
    w.run_ops(ops, &history(), OPS_LIMIT_MS)
}

/// `ck.Put(ka[i], va[i])` for every key, then `check` for every key.
fn put_all(w: &mut ShardWorld<Classic>, ka: &[String], va: &[String]) {
    let ops = ka.iter().zip(va).map(|(k, v)| set(k, v)).collect();
    for (i, out) in run(w, ops).iter().enumerate() {
        if *out != Outcome::Ok {
            w.fail(format!("Put({}) returned {out:?}", ka[i]));
        }
    }
}

/// `check(t, ck, ka[i], va[i])` for each `i` of `which`.
fn check(w: &mut ShardWorld<Classic>, ka: &[String], va: &[String], which: &[usize]) {
    let ops = which.iter().map(|i| get(&ka[*i])).collect();
    let outs = run(w, ops);
    for (i, out) in which.iter().zip(&outs) {
        let got = value_of(w, &ka[*i], out);
        if got != va[*i] {
            w.fail(format!(
                "Get({}): expected {:?}, received {got:?}",
                ka[*i], va[*i]
            ));
        }
    }
}

fn all(n: usize) -> Vec<usize> {
    (0..n).collect()
}

/// For each `i` of `which`, in order: `check(ka[i], va[i])`, then
/// `ck.Append(ka[i], x)` with a fresh `x` of `len` letters (`va[i] += x`).
fn check_and_append(
    w: &mut ShardWorld<Classic>,
    ka: &[String],
    va: &mut [String],
    which: &[usize],
    len: usize,
) {
    let mut ops = Vec::new();
    let mut expected = Vec::new();
    for i in which {
        let x = randstring(w, len);
        ops.push(get(&ka[*i]));
        expected.push(va[*i].clone());
        ops.push(append(&ka[*i], &x));
        va[*i].push_str(&x);
    }
    let outs = run(w, ops);
    for (n, i) in which.iter().enumerate() {
        let got = value_of(w, &ka[*i], &outs[2 * n]);
        if got != expected[n] {
            w.fail(format!(
                "Get({}): expected {:?}, received {got:?}",
                ka[*i], expected[n]
            ));
        }
        if outs[2 * n + 1] != Outcome::Ok {
            w.fail(format!("Append({}) returned {:?}", ka[*i], outs[2 * n + 1]));
        }
    }
}

/// Run until `quiet_ms` pass without a new completion among `outcomes`
/// (the Go tests' `time.After(2 s)` select loop); returns the completions.
fn completions_until_quiet(
    w: &mut ShardWorld<Classic>,
    outcomes: &[Rc<RefCell<Vec<Outcome>>>],
    quiet_ms: u64,
) -> usize {
    let count = |o: &[Rc<RefCell<Vec<Outcome>>>]| o.iter().map(|x| x.borrow().len()).sum();
    let mut done: usize = count(outcomes);
    let mut since = w.now_ms;
    loop {
        w.run_for(10);
        let n = count(outcomes);
        if n != done {
            done = n;
            since = w.now_ms;
        } else if w.now_ms - since >= quiet_ms {
            return done;
        }
    }
}

// ---------------------------------------------------------------------
// Long-running clients.
// ---------------------------------------------------------------------

/// A workload that waits `gap_ms` after each completed operation (the Go
/// appenders' `time.Sleep` between appends).
struct Paced<W> {
    inner: W,
    gap_ms: u64,
    ready_at: u64,
}

impl<W: Workload> Workload for Paced<W> {
    fn next_op(&mut self, now_ms: u64, rng: &mut SimRng) -> Option<Op> {
        if now_ms < self.ready_at {
            return None;
        }
        self.inner.next_op(now_ms, rng)
    }

    fn on_done(&mut self, now_ms: u64, op: &Op, outcome: &Outcome) -> Result<(), String> {
        self.ready_at = now_ms + self.gap_ms;
        self.inner.on_done(now_ms, op, outcome)
    }

    fn finished(&self) -> bool {
        self.inner.finished()
    }
}

/// The Go `ff(i)` appenders: client `i + 1` appends to `ka[i]` until
/// stopped, `gap_ms` apart. Returns the stop switch and the endpoints.
fn start_appenders(
    w: &mut ShardWorld<Classic>,
    ka: &[String],
    gap_ms: u64,
    h: &History,
) -> (Stop, Vec<usize>) {
    let stop: Stop = Rc::new(RefCell::new(false));
    let mut endpoints = Vec::new();
    for (i, key) in ka.iter().enumerate() {
        let me = i as u64 + 1;
        let work = Paced {
            inner: Appender::new(me, key.clone(), true, None, stop.clone()),
            gap_ms,
            ready_at: 0,
        };
        let seed = w.rng().next_u64();
        let client = ShardClient::<Classic, _>::new(me, seed, work, h.clone());
        endpoints.push(w.add_endpoint(Box::new(client)));
    }
    (stop, endpoints)
}

/// Stop the appenders, wait for their last operations, and check every key:
/// it holds exactly its initial value followed by every acknowledged append
/// of its client, each once and in order.
fn stop_and_check_appends(
    w: &mut ShardWorld<Classic>,
    stop: &Stop,
    endpoints: &[usize],
    ka: &[String],
    va: &[String],
    h: &History,
) {
    *stop.borrow_mut() = true;
    w.run_until(STOP_LIMIT_MS, "appenders finish", |w| {
        endpoints.iter().all(|e| w.endpoint_finished(*e))
    });
    for e in endpoints {
        w.remove_endpoint(*e);
    }
    let outs = run(w, ka.iter().map(|k| get(k)).collect());
    let mut total = 0;
    for (i, key) in ka.iter().enumerate() {
        let me = i as u64 + 1;
        let count = h
            .borrow()
            .iter()
            .filter(|r| {
                r.client == me
                    && matches!(r.op, Op::Append { .. })
                    && r.outcome == Some(Outcome::Ok)
            })
            .count() as u64;
        total += count;
        let value = value_of(w, key, &outs[i]);
        if let Err(e) = check_appends(&value, me, count) {
            w.fail(format!("key {key}: {e}"));
        }
        let mut want = va[i].clone();
        for j in 0..count {
            want.push_str(&Appender::element(me, j));
        }
        if value != want {
            w.fail(format!("Get({key}): expected {want:?}, received {value:?}"));
        }
    }
    if total == 0 {
        w.fail("no append completed".into());
    }
}

/// The Go unreliable-3 clients: on a random key, 50 % Append, 5 % Put,
/// otherwise Get, with 5-letter random values, until stopped.
struct RandomOps {
    keys: Vec<String>,
    stop: Stop,
}

impl Workload for RandomOps {
    fn next_op(&mut self, _now_ms: u64, rng: &mut SimRng) -> Option<Op> {
        if *self.stop.borrow() {
            return None;
        }
        let key = self.keys[rng.pick(self.keys.len())].clone();
        let value = random_letters(rng, 5);
        Some(if rng.below(1000) < 500 {
            Op::Append { key, value }
        } else if rng.below(1000) < 100 {
            Op::Set { key, value }
        } else {
            Op::Get { key }
        })
    }

    fn on_done(&mut self, _now_ms: u64, op: &Op, outcome: &Outcome) -> Result<(), String> {
        match (op, outcome) {
            (Op::Get { .. }, Outcome::Value { .. } | Outcome::ErrNoKey) => Ok(()),
            (Op::Append { .. } | Op::Set { .. }, Outcome::Ok) => Ok(()),
            (op, outcome) => Err(format!("{op:?} returned {outcome:?}")),
        }
    }

    fn finished(&self) -> bool {
        *self.stop.borrow()
    }
}

// ---------------------------------------------------------------------
// A clerk fed a fixed configuration (the rejection test's second
// controller).
// ---------------------------------------------------------------------

/// A client whose clerk only ever receives `config`, as if it asked a
/// controller of its own (modelled on `ShardClient`). It runs one
/// operation and records its outcome.
struct FixedConfigClient {
    clerk: ShardClerk,
    config: ShardConfig,
    op: Option<Op>,
    need_config: bool,
    outcomes: Rc<RefCell<Vec<Outcome>>>,
}

impl FixedConfigClient {
    fn new(id: u64, seed: u64, config: ShardConfig, op: Op) -> (Self, Rc<RefCell<Vec<Outcome>>>) {
        let outcomes = Rc::new(RefCell::new(Vec::new()));
        let client = FixedConfigClient {
            clerk: ShardClerk::new(ShardClerkConfig {
                client: core_kv::ClientId(id),
                sharding: Classic::SHARDING,
                retry_ticks: RETRY_TICKS,
                seed,
            }),
            config,
            op: Some(op),
            need_config: false,
            outcomes: outcomes.clone(),
        };
        (client, outcomes)
    }

    fn clerk_step(&mut self, input: ShardClerkInput, io: &EndpointIo<'_, Classic>) {
        for a in self.clerk.step(input) {
            match a {
                ShardClerkAction::Send {
                    gid,
                    server,
                    request,
                } => {
                    if let Some((g, i)) = parse_server_name(&server) {
                        if g == gid {
                            io.send_group(g, i, request.seq.0, Classic::client_op(request));
                        }
                    }
                }
                // Answered at the next tick, as a controller round trip.
                ShardClerkAction::NeedConfig => self.need_config = true,
                ShardClerkAction::Done { outcome, .. } => self.outcomes.borrow_mut().push(outcome),
            }
        }
    }
}

impl Endpoint<Classic> for FixedConfigClient {
    fn step(&mut self, _now_ms: u64, tick: bool, io: &EndpointIo<'_, Classic>) {
        for (gid, server, id, result) in io.group_answers() {
            let input = ShardClerkInput::Reply {
                gid,
                server: server_name(gid, server),
                seq: core_kv::Seq(id),
                result,
            };
            self.clerk_step(input, io);
        }
        let _ = io.ctrl_answers();
        if !tick {
            return;
        }
        if std::mem::take(&mut self.need_config) {
            self.clerk_step(ShardClerkInput::Config(self.config.clone()), io);
        }
        if let Some(op) = self.op.take() {
            self.clerk_step(ShardClerkInput::Invoke(op), io);
        }
        self.clerk_step(ShardClerkInput::Tick, io);
    }

    fn finished(&self) -> bool {
        self.op.is_none() && !self.clerk.busy()
    }
}

// ---------------------------------------------------------------------
// 5A
// ---------------------------------------------------------------------

/// TestStaticShards(5A): two groups, 10 keys; with group 101 shut down,
/// exactly 5 of 10 single-Get clerks complete before 2 s pass without a
/// completion; after it restarts every value is there (and the five stalled
/// Gets complete too, with the right values — a check the Go test leaves
/// to its leaked goroutines).
#[test]
fn static_shards_5a() {
    run_seeds("static_shards_5a", SEEDS, |seed| {
        let mut w = world(seed, true, None);
        join(&mut w, &[G0]);
        join(&mut w, &[G1]);
        let ka = keys(10);
        let va: Vec<String> = (0..10).map(|_| randstring(&mut w, 20)).collect();
        put_all(&mut w, &ka, &va);
        check(&mut w, &ka, &va, &all(10));

        w.shutdown_group(GroupId(G1));
        checklogs(&w);
        let h = history();
        let started: Vec<_> = ka.iter().map(|k| w.start_ops(vec![get(k)], &h)).collect();
        let outcomes: Vec<_> = started.iter().map(|(_, o)| o.clone()).collect();
        let done = completions_until_quiet(&mut w, &outcomes, 2000);
        for (i, o) in outcomes.iter().enumerate() {
            if let Some(out) = o.borrow().first() {
                let got = value_of(&w, &ka[i], out);
                if got != va[i] {
                    w.fail(format!(
                        "Get({}): expected {:?}, received {got:?}",
                        ka[i], va[i]
                    ));
                }
            }
        }
        if done != 5 {
            w.fail(format!(
                "expected 5 completions with one group dead; got {done}"
            ));
        }

        w.start_group(GroupId(G1));
        check(&mut w, &ka, &va, &all(10));
        w.run_until(OPS_LIMIT_MS, "the stalled Gets complete", |w| {
            started.iter().all(|(e, _)| w.endpoint_finished(*e))
        });
        for (i, (e, o)) in started.iter().enumerate() {
            let got = value_of(&w, &ka[i], &o.borrow()[0]);
            if got != va[i] {
                w.fail(format!(
                    "Get({}): expected {:?}, received {got:?}",
                    ka[i], va[i]
                ));
            }
            w.remove_endpoint(*e);
        }
    });
}

/// TestRejection5A (S24 only): two groups, 10 keys; then clerks whose own
/// controller only knows group 100 (configuration 1 with every shard on
/// 100, and never a newer one) send every Get to group 100. Exactly the 5
/// Gets on shards 100 owns complete; for the others 100 must answer
/// WrongGroup forever (any answer would mean it served a shard it does not
/// own).
#[test]
fn rejection_5a() {
    run_seeds("rejection_5a", SEEDS, |seed| {
        let mut w = world(seed, true, None);
        join(&mut w, &[G0]);
        join(&mut w, &[G1]);
        let ka = keys(10);
        let va: Vec<String> = (0..10).map(|_| randstring(&mut w, 20)).collect();
        put_all(&mut w, &ka, &va);
        check(&mut w, &ka, &va, &all(10));

        let mut groups = BTreeMap::new();
        groups.insert(GroupId(G0), w.group_servers(GroupId(G0)));
        let only_g0 = ShardConfig::initial(Sharding::CLASSIC.shards).join(&groups);
        assert_eq!(only_g0.num, ConfigNum(1));
        let mut started = Vec::new();
        for (i, k) in ka.iter().enumerate() {
            let seed = w.rng().next_u64();
            let (client, outcomes) =
                FixedConfigClient::new(FIXED_CLIENT_BASE + i as u64, seed, only_g0.clone(), get(k));
            started.push((w.add_endpoint(Box::new(client)), outcomes));
        }
        let outcomes: Vec<_> = started.iter().map(|(_, o)| o.clone()).collect();
        let done = completions_until_quiet(&mut w, &outcomes, 2000);

        let real = query(&mut w, None);
        for (i, o) in outcomes.iter().enumerate() {
            let owner = real.owner(shard_of(&ka[i]));
            match o.borrow().first() {
                Some(out) if owner != GroupId(G0) => w.fail(format!(
                    "Get({}) on a shard of {owner} completed through {} with {out:?}",
                    ka[i],
                    GroupId(G0)
                )),
                Some(out) => {
                    let got = value_of(&w, &ka[i], out);
                    if got != va[i] {
                        w.fail(format!(
                            "Get({}): expected {:?}, received {got:?}",
                            ka[i], va[i]
                        ));
                    }
                }
                None => {}
            }
        }
        if done != 5 {
            w.fail(format!("expected 5 completions; got {done}"));
        }
        for (e, _) in started {
            w.remove_endpoint(e);
        }
    });
}

// ---------------------------------------------------------------------
// 5B
// ---------------------------------------------------------------------

/// TestJoinLeave(5B): join 100, 10 keys; join 101, check and append; leave
/// 100, check and append; after 1 s, checklogs, shut 100 down; every value
/// is still there.
#[test]
fn join_leave_5b() {
    run_seeds("join_leave_5b", SEEDS, |seed| {
        let mut w = world(seed, true, None);
        join(&mut w, &[G0]);
        let ka = keys(10);
        let mut va: Vec<String> = (0..10).map(|_| randstring(&mut w, 5)).collect();
        put_all(&mut w, &ka, &va);
        check(&mut w, &ka, &va, &all(10));

        join(&mut w, &[G1]);
        check_and_append(&mut w, &ka, &mut va, &all(10), 5);
        leave(&mut w, &[G0]);
        check_and_append(&mut w, &ka, &mut va, &all(10), 5);

        w.run_for(1000);
        checklogs(&w);
        w.shutdown_group(GroupId(G0));
        check(&mut w, &ka, &va, &all(10));
    });
}

/// TestSnapshot(5B): maxraftstate 1000, 30 keys moved through several
/// joins and leaves; checklogs; every group crashed and restarted from its
/// snapshots; every value is there.
#[test]
fn snapshot_5b() {
    run_seeds("snapshot_5b", SEEDS, |seed| {
        let mut w = world(seed, true, Some(1000));
        join(&mut w, &[G0]);
        let ka = keys(30);
        let mut va: Vec<String> = (0..30).map(|_| randstring(&mut w, 20)).collect();
        put_all(&mut w, &ka, &va);
        check(&mut w, &ka, &va, &all(30));

        join(&mut w, &[G1]);
        join(&mut w, &[G2]);
        leave(&mut w, &[G0]);
        check_and_append(&mut w, &ka, &mut va, &all(30), 20);

        leave(&mut w, &[G1]);
        join(&mut w, &[G0]);
        check_and_append(&mut w, &ka, &mut va, &all(30), 20);

        w.run_for(1000);
        check(&mut w, &ka, &va, &all(30));
        w.run_for(1000);
        checklogs(&w);

        shutdown_groups(&mut w, &GIDS);
        start_groups(&mut w, &GIDS);
        check(&mut w, &ka, &va, &all(30));
    });
}

/// TestMissChange(5B): maxraftstate 1000; server 0 of every group misses
/// three configuration changes, then server 1 misses two more; restarted
/// servers catch up and every value is right throughout.
#[test]
fn miss_change_5b() {
    run_seeds("miss_change_5b", SEEDS, |seed| {
        let mut w = world(seed, true, Some(1000));
        join(&mut w, &[G0]);
        let ka = keys(10);
        let mut va: Vec<String> = (0..10).map(|_| randstring(&mut w, 20)).collect();
        put_all(&mut w, &ka, &va);
        check(&mut w, &ka, &va, &all(10));

        join(&mut w, &[G1]);
        shutdown_server_everywhere(&mut w, 0);
        join(&mut w, &[G2]);
        leave(&mut w, &[G1]);
        leave(&mut w, &[G0]);
        check_and_append(&mut w, &ka, &mut va, &all(10), 20);

        join(&mut w, &[G1]);
        check_and_append(&mut w, &ka, &mut va, &all(10), 20);

        start_server_everywhere(&mut w, 0);
        check_and_append(&mut w, &ka, &mut va, &all(10), 20);

        w.run_for(2000);
        shutdown_server_everywhere(&mut w, 1);
        join(&mut w, &[G0]);
        leave(&mut w, &[G2]);
        check_and_append(&mut w, &ka, &mut va, &all(10), 20);

        start_server_everywhere(&mut w, 1);
        check(&mut w, &ka, &va, &all(10));
    });
}

/// TestConcurrent1(5B): maxraftstate 100; 10 appenders (10 ms apart) while
/// groups join, leave, all crash and restart; every acknowledged append is
/// in its key exactly once, in order.
#[test]
fn concurrent1_5b() {
    run_seeds("concurrent1_5b", SEEDS, |seed| {
        let mut w = world(seed, true, Some(100));
        join(&mut w, &[G0]);
        let ka = keys(10);
        let va: Vec<String> = (0..10).map(|_| randstring(&mut w, 5)).collect();
        put_all(&mut w, &ka, &va);
        let h = history();
        let (stop, appenders) = start_appenders(&mut w, &ka, 10, &h);

        w.run_for(150);
        join(&mut w, &[G1]);
        w.run_for(500);
        join(&mut w, &[G2]);
        w.run_for(500);
        leave(&mut w, &[G0]);

        w.shutdown_group(GroupId(G0));
        w.run_for(100);
        w.shutdown_group(GroupId(G1));
        w.run_for(100);
        w.shutdown_group(GroupId(G2));

        leave(&mut w, &[G2]);

        w.run_for(100);
        start_groups(&mut w, &GIDS);

        w.run_for(100);
        join(&mut w, &[G0]);
        leave(&mut w, &[G1]);
        w.run_for(500);
        join(&mut w, &[G1]);

        w.run_for(1000);
        stop_and_check_appends(&mut w, &stop, &appenders, &ka, &va, &h);
    });
}

/// TestConcurrent2(5B): no snapshots; 10 appenders (50 ms apart) while the
/// shards move among all three groups with 3 s pauses, then groups 101 and
/// 102 crash for 1 s; every acknowledged append is there exactly once.
#[test]
fn concurrent2_5b() {
    run_seeds("concurrent2_5b", SEEDS, |seed| {
        let mut w = world(seed, true, None);
        join(&mut w, &[G1]);
        join(&mut w, &[G0]);
        join(&mut w, &[G2]);
        let ka = keys(10);
        let va: Vec<String> = (0..10).map(|_| randstring(&mut w, 1)).collect();
        put_all(&mut w, &ka, &va);
        let h = history();
        let (stop, appenders) = start_appenders(&mut w, &ka, 50, &h);

        leave(&mut w, &[G0]);
        leave(&mut w, &[G2]);
        w.run_for(3000);
        join(&mut w, &[G0]);
        join(&mut w, &[G2]);
        leave(&mut w, &[G1]);
        w.run_for(3000);
        join(&mut w, &[G1]);
        leave(&mut w, &[G0]);
        leave(&mut w, &[G2]);
        w.run_for(3000);

        shutdown_groups(&mut w, &[G1, G2]);
        w.run_for(1000);
        start_groups(&mut w, &[G1, G2]);

        w.run_for(2000);
        stop_and_check_appends(&mut w, &stop, &appenders, &ka, &va, &h);
    });
}

/// TestConcurrent3(5B): maxraftstate 300; 10 appenders without pause while,
/// for 12 s, groups 101 and 102 join, every group crashes and restarts, and
/// 101 and 102 leave, with random pauses under 900 ms; every acknowledged
/// append is there exactly once.
#[test]
fn concurrent3_5b() {
    run_seeds("concurrent3_5b", SEEDS, |seed| {
        let mut w = world(seed, true, Some(300));
        join(&mut w, &[G0]);
        let ka = keys(10);
        let va: Vec<String> = (0..10).map(|_| randstring(&mut w, 1)).collect();
        put_all(&mut w, &ka, &va);
        let h = history();
        let (stop, appenders) = start_appenders(&mut w, &ka, 0, &h);

        let t0 = w.now_ms;
        while w.now_ms - t0 < 12_000 {
            join(&mut w, &[G2]);
            join(&mut w, &[G1]);
            let pause = w.rng().below(900);
            w.run_for(pause);
            shutdown_groups(&mut w, &GIDS);
            start_groups(&mut w, &GIDS);
            let pause = w.rng().below(900);
            w.run_for(pause);
            leave(&mut w, &[G1]);
            leave(&mut w, &[G2]);
            let pause = w.rng().below(900);
            w.run_for(pause);
        }

        w.run_for(2000);
        stop_and_check_appends(&mut w, &stop, &appenders, &ka, &va, &h);
    });
}

/// TestUnreliable1(5B): unreliable network, maxraftstate 100; 10 keys
/// moved from 100 to 101 and 102, 20 checks with appends; then 100 back and
/// 101 out, 20 checks.
#[test]
fn unreliable1_5b() {
    run_seeds("unreliable1_5b", SEEDS, |seed| {
        let mut w = world(seed, false, Some(100));
        join(&mut w, &[G0]);
        let ka = keys(10);
        let mut va: Vec<String> = (0..10).map(|_| randstring(&mut w, 5)).collect();
        put_all(&mut w, &ka, &va);

        join(&mut w, &[G1]);
        join(&mut w, &[G2]);
        leave(&mut w, &[G0]);
        let twenty: Vec<usize> = (0..20).map(|ii| ii % 10).collect();
        check_and_append(&mut w, &ka, &mut va, &twenty, 5);

        join(&mut w, &[G0]);
        leave(&mut w, &[G1]);
        check(&mut w, &ka, &va, &twenty);
    });
}

/// The Unreliable2/3 schedule: joins and leaves 500 ms apart while clients
/// run, then 2 s more.
fn unreliable_schedule(w: &mut ShardWorld<Classic>) {
    w.run_for(150);
    join(w, &[G1]);
    w.run_for(500);
    join(w, &[G2]);
    w.run_for(500);
    leave(w, &[G0]);
    w.run_for(500);
    leave(w, &[G1]);
    w.run_for(500);
    join(w, &[G1]);
    join(w, &[G0]);
    w.run_for(2000);
}

/// TestUnreliable2(5B): unreliable network, maxraftstate 100; 10 appenders
/// without pause while groups join and leave; the network turns reliable
/// when they stop; every acknowledged append is there exactly once.
#[test]
fn unreliable2_5b() {
    run_seeds("unreliable2_5b", SEEDS, |seed| {
        let mut w = world(seed, false, Some(100));
        join(&mut w, &[G0]);
        let ka = keys(10);
        let va: Vec<String> = (0..10).map(|_| randstring(&mut w, 5)).collect();
        put_all(&mut w, &ka, &va);
        let h = history();
        let (stop, appenders) = start_appenders(&mut w, &ka, 0, &h);

        unreliable_schedule(&mut w);

        *stop.borrow_mut() = true;
        w.set_reliable(true);
        stop_and_check_appends(&mut w, &stop, &appenders, &ka, &va, &h);
    });
}

/// TestUnreliable3(5B): as Unreliable2, but 10 clients do random Append
/// (50 %), Put (5 %) and Get on random keys, and the whole history (initial
/// Puts included) must be linearizable under the classic model; an
/// undecided verdict fails (the Go test passes it).
#[test]
fn unreliable3_5b() {
    run_seeds("unreliable3_5b", SEEDS, |seed| {
        let mut w = world(seed, false, Some(100));
        join(&mut w, &[G0]);
        let ka = keys(10);
        let va: Vec<String> = (0..10).map(|_| randstring(&mut w, 5)).collect();
        let h = history();
        let ops = ka.iter().zip(&va).map(|(k, v)| set(k, v)).collect();
        w.run_ops(ops, &h, OPS_LIMIT_MS);

        let stop: Stop = Rc::new(RefCell::new(false));
        let mut clients = Vec::new();
        for i in 0..10u64 {
            let work = RandomOps {
                keys: ka.clone(),
                stop: stop.clone(),
            };
            let seed = w.rng().next_u64();
            let client = ShardClient::<Classic, _>::new(i + 1, seed, work, h.clone());
            clients.push(w.add_endpoint(Box::new(client)));
        }

        unreliable_schedule(&mut w);

        *stop.borrow_mut() = true;
        w.set_reliable(true);
        w.run_until(STOP_LIMIT_MS, "clients finish", |w| {
            clients.iter().all(|e| w.endpoint_finished(*e))
        });
        for e in clients {
            w.remove_endpoint(e);
        }
        assert_classic_linearizable(&h, seed);
    });
}

// ---------------------------------------------------------------------
// Challenges
// ---------------------------------------------------------------------

/// TestChallenge1Delete: maxraftstate 1 (a snapshot after every entry);
/// 30 keys of 1000 bytes moved around all three groups twice, then spread
/// over all three; the persisted Raft state plus snapshot of all 9 servers
/// together stay within the Go bound 3 × (27 × 1000 + 2 × 3 × 1000 + 6000)
/// = 117 000 bytes, so moved shards must have been deleted.
#[test]
fn challenge1_delete() {
    run_seeds("challenge1_delete", SEEDS, |seed| {
        let mut w = world(seed, true, Some(1));
        join(&mut w, &[G0]);
        let n = 30;
        let ka = keys(n);
        let va: Vec<String> = (0..n).map(|_| randstring(&mut w, 1000)).collect();
        put_all(&mut w, &ka, &va);
        let first3 = all(3);
        check(&mut w, &ka, &va, &first3);

        for _ in 0..2 {
            join(&mut w, &[G1]);
            leave(&mut w, &[G0]);
            join(&mut w, &[G2]);
            w.run_for(3000);
            check(&mut w, &ka, &va, &first3);
            leave(&mut w, &[G1]);
            join(&mut w, &[G0]);
            leave(&mut w, &[G2]);
            w.run_for(3000);
            check(&mut w, &ka, &va, &first3);
        }

        join(&mut w, &[G1]);
        join(&mut w, &[G2]);
        for _ in 0..3 {
            w.run_for(1000);
            check(&mut w, &ka, &va, &first3);
        }

        let total = w.total_group_state_bytes();
        let expected = 3 * ((n - 3) * 1000 + 2 * 3 * 1000 + 6000);
        println!("seed {seed}: challenge1 total group state {total} bytes (bound {expected})");
        if total > expected {
            w.fail(format!(
                "snapshot + persisted Raft state are too big: {total} > {expected}"
            ));
        }
        check(&mut w, &ka, &va, &all(n));
    });
}

/// TestChallenge2Unaffected: unreliable, maxraftstate 100; 101 joins and
/// takes half the shards, which get new values; then 100 is shut down and
/// leaves, so 101 can never get the rest. Get, Put and Get on the keys of
/// the shards 101 already had must still complete — within 10 s (our
/// limit; the Go test has none and would hang).
#[test]
fn challenge2_unaffected() {
    run_seeds("challenge2_unaffected", SEEDS, |seed| {
        let mut w = world(seed, false, Some(100));
        join(&mut w, &[G0]);
        let ka = keys(10);
        let mut va: Vec<String> = vec!["100".to_string(); 10];
        put_all(&mut w, &ka, &va);

        join(&mut w, &[G1]);
        let c = query(&mut w, None);
        let owned: Vec<usize> = (0..10)
            .filter(|i| c.owner(shard_of(&ka[*i])) == GroupId(G1))
            .collect();
        w.run_for(1000);
        for i in &owned {
            va[*i] = "101".to_string();
        }
        let puts = owned.iter().map(|i| set(&ka[*i], &va[*i])).collect();
        run(&mut w, puts);

        w.shutdown_group(GroupId(G0));
        leave(&mut w, &[G0]);
        w.run_for(1000);

        still_served(&mut w, &ka, &va, &owned, "-1");
    });
}

/// TestChallenge2Partial: unreliable, maxraftstate 100; all three groups
/// join at once; then 100 is shut down and 100 and 102 leave together. 101
/// can get 102's shards but never 100's; it must serve each shard as soon
/// as it arrives, so Get, Put and Get on 102's former keys complete —
/// within 10 s (our limit; the Go test has none).
#[test]
fn challenge2_partial() {
    run_seeds("challenge2_partial", SEEDS, |seed| {
        let mut w = world(seed, false, Some(100));
        join(&mut w, &GIDS);
        w.run_for(1000);
        let ka = keys(10);
        let va: Vec<String> = vec!["100".to_string(); 10];
        put_all(&mut w, &ka, &va);

        let c = query(&mut w, None);
        let owned: Vec<usize> = (0..10)
            .filter(|i| c.owner(shard_of(&ka[*i])) == GroupId(G2))
            .collect();

        w.shutdown_group(GroupId(G0));
        leave(&mut w, &[G0, G2]);
        w.run_for(1000);

        still_served(&mut w, &ka, &va, &owned, "-2");
    });
}

/// The challenge-2 ending: for each key of `owned`, `check`, `Put(v +
/// suffix)`, `check`, all within [`CHALLENGE2_LIMIT_MS`].
fn still_served(
    w: &mut ShardWorld<Classic>,
    ka: &[String],
    va: &[String],
    owned: &[usize],
    suffix: &str,
) {
    if owned.is_empty() {
        w.fail("the group owns no shard of the test keys".into());
    }
    let mut ops = Vec::new();
    for i in owned {
        let new = format!("{}{suffix}", va[*i]);
        ops.extend([get(&ka[*i]), set(&ka[*i], &new), get(&ka[*i])]);
    }
    let outs = w.run_ops(ops, &history(), CHALLENGE2_LIMIT_MS);
    for (n, i) in owned.iter().enumerate() {
        let new = format!("{}{suffix}", va[*i]);
        let (before, put, after) = (&outs[3 * n], &outs[3 * n + 1], &outs[3 * n + 2]);
        let got = value_of(w, &ka[*i], before);
        if got != va[*i] {
            w.fail(format!(
                "Get({}): expected {:?}, received {got:?}",
                ka[*i], va[*i]
            ));
        }
        if *put != Outcome::Ok {
            w.fail(format!("Put({}) returned {put:?}", ka[*i]));
        }
        let got = value_of(w, &ka[*i], after);
        if got != new {
            w.fail(format!(
                "Get({}): expected {new:?}, received {got:?}",
                ka[*i]
            ));
        }
    }
}
