//! The sharded testers' building blocks on the simulated service: scripted
//! clerks, joins and leaves through either controller, and the checks the
//! lab tests share.

use super::endpoints::{CallResults, CtrlScript, DrivenAdmin, ShardClient};
use super::flavor::{Classic, Driven, Flavor};
use super::world::ShardWorld;
use crate::kvsim::clients::History;
use crate::kvsim::lab::Script;
use core_kv::{Op, Outcome, Stale, Version};
use core_shard::classic::{CtrlOp, CtrlReply};
use core_shard::driven::{Call, CallResult, FIRST_GROUP};
use core_shard::{ConfigNum, GroupId, ShardConfig, ShardId};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

/// Client ids handed out to scripted clerks start here, above workload
/// clients (numbered from 1) and below the agents' ids.
const SCRIPT_CLIENT_BASE: u64 = 1 << 40;

/// A fresh, empty history.
pub fn history() -> History {
    Rc::new(RefCell::new(Vec::new()))
}

/// A versioned Put.
pub fn put(key: &str, value: &str, version: u64) -> Op {
    Op::Put {
        key: key.into(),
        value: value.into(),
        version: Version(version),
    }
}

/// A Get.
pub fn get(key: &str) -> Op {
    Op::Get { key: key.into() }
}

/// A classic Append.
pub fn append(key: &str, value: &str) -> Op {
    Op::Append {
        key: key.into(),
        value: value.into(),
    }
}

/// A classic (unconditional) Put.
pub fn set(key: &str, value: &str) -> Op {
    Op::Set {
        key: key.into(),
        value: value.into(),
    }
}

impl<F: Flavor> ShardWorld<F> {
    fn fresh_client_id(&mut self) -> u64 {
        SCRIPT_CLIENT_BASE + self.rng().below(1 << 30)
    }

    /// Start a scripted clerk running `ops` (recorded in `history`);
    /// returns its endpoint and its outcomes so far.
    pub fn start_ops(
        &mut self,
        ops: Vec<Op>,
        history: &History,
    ) -> (usize, Rc<RefCell<Vec<Outcome>>>) {
        let id = self.fresh_client_id();
        let seed = self.rng().next_u64();
        let (script, outcomes) = Script::new(ops);
        let client = ShardClient::<F, _>::new(id, seed, script, history.clone());
        (self.add_endpoint(Box::new(client)), outcomes)
    }

    /// Run `ops` in order through a fresh clerk; fail after `limit_ms`.
    pub fn run_ops(&mut self, ops: Vec<Op>, history: &History, limit_ms: u64) -> Vec<Outcome> {
        let (e, outcomes) = self.start_ops(ops, history);
        self.run_until_finished(e, limit_ms);
        self.remove_endpoint(e);
        let v = outcomes.borrow().clone();
        v
    }

    /// Get `key` through a fresh clerk and fail unless it reads `value` at
    /// `version` (the lab's `CheckGet`).
    pub fn check_get(&mut self, key: &str, value: &str, version: u64, limit_ms: u64) {
        let out = self.run_ops(vec![get(key)], &history(), limit_ms);
        let want = Outcome::Value {
            value: value.into(),
            version: Version(version),
        };
        if out[0] != want {
            self.fail(format!("Get({key}) = {:?}, want {want:?}", out[0]));
        }
    }

    /// Which group serves `shard` now, judged by each group's state.
    pub fn serving_group(&self, shard: ShardId) -> Option<GroupId> {
        self.group_ids().into_iter().find(|g| {
            self.group_state(*g)
                .is_some_and(|s| F::serving(s).contains(&shard))
        })
    }
}

/// Classic: run controller operations in order through a fresh clerk.
pub fn ctrl_ops(
    w: &mut ShardWorld<Classic>,
    ops: Vec<CtrlOp>,
    limit_ms: u64,
) -> Vec<Result<CtrlReply, Stale>> {
    let id = w.fresh_client_id();
    let seed = w.rng().next_u64();
    let (script, results) = CtrlScript::<Classic>::new(id, seed, ops);
    let e = w.add_endpoint(Box::new(script));
    w.run_until_finished(e, limit_ms);
    w.remove_endpoint(e);
    let r = results.borrow().clone();
    r
}

/// Classic: the controller's configuration `num` (`None`: the latest).
pub fn query(w: &mut ShardWorld<Classic>, num: Option<ConfigNum>) -> ShardConfig {
    match ctrl_ops(w, vec![CtrlOp::Query(num)], 10_000).pop() {
        Some(Ok(CtrlReply::Config(c))) => c,
        other => w.fail(format!("Query({num:?}) answered {other:?}")),
    }
}

/// Classic: start groups `gids` (if not running) and join them in one
/// `Join`.
pub fn join(w: &mut ShardWorld<Classic>, gids: &[u64]) {
    let mut groups = BTreeMap::new();
    for g in gids {
        let gid = GroupId(*g);
        w.start_group(gid);
        groups.insert(gid, w.group_servers(gid));
    }
    let r = ctrl_ops(w, vec![CtrlOp::Join(groups)], 10_000);
    if !matches!(r.as_slice(), [Ok(CtrlReply::Changed { .. })]) {
        w.fail(format!("Join({gids:?}) answered {r:?}"));
    }
}

/// Classic: remove groups `gids` in one `Leave` (their servers keep
/// running, so that the shards can be pulled from them).
pub fn leave(w: &mut ShardWorld<Classic>, gids: &[u64]) {
    let gids: Vec<GroupId> = gids.iter().map(|g| GroupId(*g)).collect();
    let r = ctrl_ops(w, vec![CtrlOp::Leave(gids.clone())], 10_000);
    if !matches!(r.as_slice(), [Ok(CtrlReply::Changed { .. })]) {
        w.fail(format!("Leave({gids:?}) answered {r:?}"));
    }
}

/// 2025: start one controller running `calls`; returns its endpoint and
/// results so far.
pub fn start_calls(w: &mut ShardWorld<Driven>, calls: Vec<Call>) -> (usize, CallResults) {
    let id = w.fresh_client_id();
    let seed = w.rng().next_u64();
    let (admin, results) = DrivenAdmin::new(id, seed, calls);
    (w.add_endpoint(Box::new(admin)), results)
}

/// 2025: run one call on a fresh controller, failing after `limit_ms`.
pub fn call(w: &mut ShardWorld<Driven>, c: Call, limit_ms: u64) -> CallResult {
    let (e, results) = start_calls(w, vec![c]);
    w.run_until_finished(e, limit_ms);
    w.remove_endpoint(e);
    let r = results.borrow_mut().pop();
    r.unwrap_or_else(|| w.fail("a controller call finished without a result".into()))
}

/// 2025: the configuration in force.
pub fn driven_query(w: &mut ShardWorld<Driven>) -> ShardConfig {
    match call(w, Call::Query, 10_000) {
        CallResult::Config(c) => c,
        other => w.fail(format!("Query answered {other:?}")),
    }
}

/// 2025: the tester's set-up: start group 1 and store the first
/// configuration, in which it owns every shard.
pub fn driven_setup(w: &mut ShardWorld<Driven>) -> ShardConfig {
    w.start_group(FIRST_GROUP);
    let mut groups = BTreeMap::new();
    groups.insert(FIRST_GROUP, w.group_servers(FIRST_GROUP));
    let first = ShardConfig::initial(Driven::SHARDING.shards).join(&groups);
    match call(w, Call::InitConfig(first.clone()), 10_000) {
        CallResult::Done => first,
        other => w.fail(format!("InitConfig answered {other:?}")),
    }
}

/// 2025: start group `gid` and join it (Query, JoinBalance,
/// ChangeConfigTo); true if it is a member afterwards.
pub fn driven_join(w: &mut ShardWorld<Driven>, gid: u64, limit_ms: u64) -> bool {
    let gid = GroupId(gid);
    w.start_group(gid);
    let cfg = driven_query(w);
    let mut groups = BTreeMap::new();
    groups.insert(gid, w.group_servers(gid));
    let next = cfg.join(&groups);
    call(w, Call::ChangeConfigTo(next), limit_ms);
    driven_query(w).groups.contains_key(&gid)
}

/// 2025: leave group `gid` (LeaveBalance, ChangeConfigTo); true if it is
/// no longer a member afterwards. Its servers keep running.
pub fn driven_leave(w: &mut ShardWorld<Driven>, gid: u64, limit_ms: u64) -> bool {
    let gid = GroupId(gid);
    let cfg = driven_query(w);
    let next = cfg.leave(&[gid]);
    call(w, Call::ChangeConfigTo(next), limit_ms);
    !driven_query(w).groups.contains_key(&gid)
}
