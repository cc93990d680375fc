//! Simulated key/value clients: a [`ClerkClient`] drives a `core_kv::Clerk`
//! with a [`Workload`] and records every operation's call and return time
//! for the linearizability checker.

use super::world::{server_id, Answer, Outbox, SimClient};
use crate::sim::rng::SimRng;
use core_kv::{
    ClerkAction, ClerkConfig, ClerkInput, ClientId, ClientReply, KvStore, Lock, LockStep, Op,
    Outcome, Response, Seq, Version,
};
pub use linearizability::kv::Recorded;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

/// A shared history of recorded operations.
pub type History = Rc<RefCell<Vec<Recorded>>>;

/// What a client does next, one operation at a time.
pub trait Workload {
    /// The next operation to invoke now, if any.
    fn next_op(&mut self, now_ms: u64, rng: &mut SimRng) -> Option<Op>;
    /// The last invoked operation finished. Returning an error fails the run.
    fn on_done(&mut self, now_ms: u64, op: &Op, outcome: &Outcome) -> Result<(), String>;
    /// True once nothing more will be invoked.
    fn finished(&self) -> bool;
}

/// A simulated client: a clerk plus a workload.
pub struct ClerkClient<W: Workload> {
    clerk: core_kv::Clerk,
    workload: W,
    rng: SimRng,
    history: History,
    /// Index in `history` of the operation in flight.
    in_flight: Option<usize>,
    id: u64,
}

impl<W: Workload> ClerkClient<W> {
    /// A client with id `id` talking to `servers` servers.
    pub fn new(
        id: u64,
        servers: usize,
        retry_ticks: u64,
        seed: u64,
        workload: W,
        history: History,
    ) -> Self {
        ClerkClient {
            clerk: core_kv::Clerk::new(ClerkConfig {
                client: ClientId(id),
                servers: (0..servers).map(server_id).collect(),
                retry_ticks,
                seed,
            }),
            workload,
            rng: SimRng::new(seed ^ 0xC11E),
            history,
            in_flight: None,
            id,
        }
    }

    fn carry_out(
        &mut self,
        now_ms: u64,
        actions: Vec<ClerkAction>,
        out: &mut Outbox<core_kv::ClientRequest>,
    ) {
        for a in actions {
            match a {
                ClerkAction::Send { to, request } => {
                    out.send(to.0 as usize - 1, request.seq.0, request)
                }
                ClerkAction::Done { op, outcome } => {
                    if let Some(i) = self.in_flight.take() {
                        let mut h = self.history.borrow_mut();
                        h[i].ret = Some(now_ms);
                        h[i].outcome = Some(outcome.clone());
                    }
                    if let Err(e) = self.workload.on_done(now_ms, &op, &outcome) {
                        panic!("client {}: {e}", self.id);
                    }
                }
            }
        }
    }

    fn maybe_invoke(&mut self, now_ms: u64, out: &mut Outbox<core_kv::ClientRequest>) {
        if self.clerk.busy() {
            return;
        }
        if let Some(op) = self.workload.next_op(now_ms, &mut self.rng) {
            let mut h = self.history.borrow_mut();
            h.push(Recorded {
                client: self.id,
                call: now_ms,
                ret: None,
                op: op.clone(),
                outcome: None,
            });
            self.in_flight = Some(h.len() - 1);
            drop(h);
            let actions = self.clerk.step(ClerkInput::Invoke(op));
            self.carry_out(now_ms, actions, out);
        }
    }
}

impl<W: Workload> SimClient<KvStore> for ClerkClient<W> {
    fn on_tick(&mut self, now_ms: u64, out: &mut Outbox<core_kv::ClientRequest>) {
        let actions = self.clerk.step(ClerkInput::Tick);
        self.carry_out(now_ms, actions, out);
        self.maybe_invoke(now_ms, out);
    }

    fn on_answer(
        &mut self,
        now_ms: u64,
        server: usize,
        id: u64,
        answer: Answer<KvStore>,
        out: &mut Outbox<core_kv::ClientRequest>,
    ) {
        let reply = ClientReply {
            client: ClientId(self.id),
            seq: Seq(id),
            response: match answer {
                Ok(outcome) => Response::Done(outcome),
                Err(e) => Response::WrongLeader {
                    leader_hint: e.leader_hint,
                },
            },
        };
        let actions = self.clerk.step(ClerkInput::Reply {
            from: server_id(server),
            reply,
        });
        self.carry_out(now_ms, actions, out);
        self.maybe_invoke(now_ms, out);
    }

    fn finished(&self) -> bool {
        !self.clerk.busy() && self.workload.finished()
    }
}

/// A shared stop switch for open-ended workloads.
pub type Stop = Rc<RefCell<bool>>;

/// Counts of a [`OnePut`] client (the lab's `ClntRes`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PutCounts {
    /// Puts that returned OK.
    pub ok: u64,
    /// Puts that returned ErrMaybe.
    pub maybe: u64,
}

/// The lab's `OneClientPut`: loop Put(k, {me, ver}, ver) then Get until
/// stopped, on `keys[0]` or a random key.
pub struct OnePut {
    me: u64,
    keys: Vec<String>,
    random_keys: bool,
    versions: BTreeMap<String, u64>,
    stop: Stop,
    counts: Rc<RefCell<PutCounts>>,
    /// The Put in flight or just done, awaiting its Get: (key, value, version, outcome).
    last_put: Option<(String, String, u64, Option<Outcome>)>,
}

impl OnePut {
    /// A client `me` over `keys`.
    pub fn new(
        me: u64,
        keys: Vec<String>,
        random_keys: bool,
        stop: Stop,
        counts: Rc<RefCell<PutCounts>>,
    ) -> Self {
        OnePut {
            me,
            keys,
            random_keys,
            versions: BTreeMap::new(),
            stop,
            counts,
            last_put: None,
        }
    }
}

impl Workload for OnePut {
    fn next_op(&mut self, _now: u64, rng: &mut SimRng) -> Option<Op> {
        match &self.last_put {
            Some((key, _, _, Some(_))) => Some(Op::Get { key: key.clone() }),
            Some((_, _, _, None)) => None,
            None if *self.stop.borrow() => None,
            None => {
                let key = if self.random_keys {
                    self.keys[rng.pick(self.keys.len())].clone()
                } else {
                    self.keys[0].clone()
                };
                let ver = *self.versions.get(&key).unwrap_or(&0);
                let value = format!("{{\"Id\":{},\"V\":{ver}}}", self.me);
                self.last_put = Some((key.clone(), value.clone(), ver, None));
                Some(Op::Put {
                    key,
                    value,
                    version: Version(ver),
                })
            }
        }
    }

    fn on_done(&mut self, _now: u64, op: &Op, outcome: &Outcome) -> Result<(), String> {
        match op {
            Op::Put { .. } => {
                if !matches!(
                    outcome,
                    Outcome::Ok | Outcome::ErrVersion | Outcome::ErrMaybe
                ) {
                    return Err(format!("Put returned {outcome:?}"));
                }
                if let Some(p) = self.last_put.as_mut() {
                    p.3 = Some(outcome.clone());
                }
                Ok(())
            }
            Op::Get { key } => {
                let (k, value, ver, put) = self.last_put.take().expect("a Get follows a Put");
                debug_assert_eq!(&k, key);
                let (read, read_ver) = match outcome {
                    Outcome::Value { value, version } => (value.clone(), version.0),
                    Outcome::ErrNoKey => (String::new(), 0),
                    other => return Err(format!("Get returned {other:?}")),
                };
                if put == Some(Outcome::Ok) && read_ver == ver + 1 && read != value {
                    return Err(format!(
                        "Get read {read:?} at version {read_ver}, expected {value:?}"
                    ));
                }
                self.versions.insert(k, read_ver);
                let mut c = self.counts.borrow_mut();
                match put {
                    Some(Outcome::Ok) => c.ok += 1,
                    Some(Outcome::ErrMaybe) => c.maybe += 1,
                    _ => {}
                }
                Ok(())
            }
            other => Err(format!("unexpected op {other:?}")),
        }
    }

    fn finished(&self) -> bool {
        *self.stop.borrow() && self.last_put.is_none()
    }
}

/// The classic labs' append client: it first resets its key with
/// `Put(key, "")` (unless the key is `shared`), then on that key does 50 %
/// `Append("x <me> <j> y")`, otherwise `Get`, which must read exactly the
/// appends so far. With `shared`, it only appends.
pub struct Appender {
    me: u64,
    key: String,
    shared: bool,
    reset: bool,
    count: u64,
    expected: String,
    /// Stop after this many appends (`None`: when `stop` is set).
    limit: Option<u64>,
    stop: Stop,
}

impl Appender {
    /// A client `me` appending to `key`.
    pub fn new(me: u64, key: String, shared: bool, limit: Option<u64>, stop: Stop) -> Self {
        Appender {
            me,
            key,
            shared,
            reset: !shared,
            count: 0,
            expected: String::new(),
            limit,
            stop,
        }
    }

    /// The element this client appends as its `j`-th.
    pub fn element(me: u64, j: u64) -> String {
        format!("x {me} {j} y")
    }

    /// How many appends this client completed.
    pub fn count(&self) -> u64 {
        self.count
    }
}

impl Workload for Appender {
    fn next_op(&mut self, _now: u64, rng: &mut SimRng) -> Option<Op> {
        if self.finished() {
            return None;
        }
        if self.reset {
            return Some(Op::Set {
                key: self.key.clone(),
                value: String::new(),
            });
        }
        if self.shared || rng.chance(1, 2) {
            Some(Op::Append {
                key: self.key.clone(),
                value: Self::element(self.me, self.count),
            })
        } else {
            Some(Op::Get {
                key: self.key.clone(),
            })
        }
    }

    fn on_done(&mut self, _now: u64, op: &Op, outcome: &Outcome) -> Result<(), String> {
        match (op, outcome) {
            (Op::Set { .. }, Outcome::Ok) => {
                self.reset = false;
                Ok(())
            }
            (Op::Append { value, .. }, Outcome::Ok) => {
                self.expected.push_str(value);
                self.count += 1;
                Ok(())
            }
            (Op::Get { .. }, Outcome::Value { value, .. }) if !self.shared => {
                if *value != self.expected {
                    return Err(format!(
                        "Get({}) read {value:?}, expected {:?}",
                        self.key, self.expected
                    ));
                }
                Ok(())
            }
            (Op::Get { .. }, Outcome::ErrNoKey) if self.expected.is_empty() => Ok(()),
            (op, outcome) => Err(format!("{op:?} returned {outcome:?}")),
        }
    }

    fn finished(&self) -> bool {
        match self.limit {
            Some(l) => self.count >= l,
            None => *self.stop.borrow(),
        }
    }
}

/// Check the lab's `checkClntAppends`: in `value`, every element of client
/// `me` for `j < count` appears exactly once, and in order.
pub fn check_appends(value: &str, me: u64, count: u64) -> Result<(), String> {
    let mut last = None;
    for j in 0..count {
        let element = Appender::element(me, j);
        let found: Vec<usize> = value.match_indices(&element).map(|(i, _)| i).collect();
        match found.as_slice() {
            [] => return Err(format!("missing element {element:?} in append result")),
            [at] => {
                if let Some(prev) = last {
                    if *at < prev {
                        return Err(format!("element {element:?} is out of order"));
                    }
                }
                last = Some(*at);
            }
            _ => return Err(format!("element {element:?} appears {} times", found.len())),
        }
    }
    Ok(())
}

/// `n` sequential Puts to one key at versions 0, 1, 2, ...; each must be OK.
pub struct SequentialPuts {
    key: String,
    n: u64,
    done: u64,
    /// Virtual ms of the first Put's call and the last Put's return.
    pub span: (Option<u64>, Option<u64>),
}

impl SequentialPuts {
    /// `n` Puts to `key`.
    pub fn new(key: &str, n: u64) -> Self {
        SequentialPuts {
            key: key.to_string(),
            n,
            done: 0,
            span: (None, None),
        }
    }
}

impl Workload for SequentialPuts {
    fn next_op(&mut self, now: u64, _rng: &mut SimRng) -> Option<Op> {
        if self.done >= self.n {
            return None;
        }
        self.span.0.get_or_insert(now);
        Some(Op::Put {
            key: self.key.clone(),
            value: "x".into(),
            version: Version(self.done),
        })
    }

    fn on_done(&mut self, now: u64, _op: &Op, outcome: &Outcome) -> Result<(), String> {
        if *outcome != Outcome::Ok {
            return Err(format!("Put {} returned {outcome:?}", self.done));
        }
        self.done += 1;
        self.span.1 = Some(now);
        Ok(())
    }

    fn finished(&self) -> bool {
        self.done >= self.n
    }
}

/// The lock tests' client: acquire, check `l0` is empty, write our name,
/// wait 10 ms, clear it, release; until stopped.
pub struct LockUser {
    me: String,
    lock: Lock,
    stop: Stop,
    phase: LockPhase,
    /// Completed acquire/release rounds.
    pub rounds: Rc<RefCell<u64>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum LockPhase {
    Init,
    InitDone,
    Locking(LockStep),
    Check,
    Mark(Version),
    Hold { until: u64, version: Version },
    Clear(Version),
    Unlocking(LockStep),
    Idle,
}

impl LockUser {
    /// A lock user named `me`.
    pub fn new(me: &str, stop: Stop, rounds: Rc<RefCell<u64>>) -> Self {
        LockUser {
            me: me.to_string(),
            lock: Lock::new("l", me),
            stop,
            phase: LockPhase::Init,
            rounds,
        }
    }

    fn lock_step(&mut self, step: LockStep, releasing: bool) {
        self.phase = match step {
            LockStep::Acquired => LockPhase::Check,
            LockStep::Released => {
                *self.rounds.borrow_mut() += 1;
                LockPhase::Idle
            }
            s if releasing => LockPhase::Unlocking(s),
            s => LockPhase::Locking(s),
        };
    }
}

impl Workload for LockUser {
    fn next_op(&mut self, now: u64, _rng: &mut SimRng) -> Option<Op> {
        loop {
            match &self.phase {
                LockPhase::Init => {
                    return Some(Op::Put {
                        key: "l0".into(),
                        value: String::new(),
                        version: Version(0),
                    })
                }
                LockPhase::InitDone | LockPhase::Idle => {
                    if *self.stop.borrow() {
                        return None;
                    }
                    let step = self.lock.acquire();
                    self.lock_step(step, false);
                }
                LockPhase::Locking(LockStep::Run(op) | LockStep::Wait(op))
                | LockPhase::Unlocking(LockStep::Run(op) | LockStep::Wait(op)) => {
                    return Some(op.clone())
                }
                LockPhase::Locking(_) | LockPhase::Unlocking(_) => {
                    unreachable!("terminal steps are mapped")
                }
                LockPhase::Check => return Some(Op::Get { key: "l0".into() }),
                LockPhase::Mark(v) => {
                    return Some(Op::Put {
                        key: "l0".into(),
                        value: self.me.clone(),
                        version: *v,
                    })
                }
                LockPhase::Hold { until, version } => {
                    if now < *until {
                        return None;
                    }
                    let v = *version;
                    self.phase = LockPhase::Clear(v);
                }
                LockPhase::Clear(v) => {
                    return Some(Op::Put {
                        key: "l0".into(),
                        value: String::new(),
                        version: *v,
                    })
                }
            }
        }
    }

    fn on_done(&mut self, now: u64, _op: &Op, outcome: &Outcome) -> Result<(), String> {
        match std::mem::replace(&mut self.phase, LockPhase::Idle) {
            LockPhase::Init => self.phase = LockPhase::InitDone,
            LockPhase::Locking(_) => {
                let step = self.lock.on_outcome(outcome.clone());
                self.lock_step(step, false);
            }
            LockPhase::Unlocking(_) => {
                let step = self.lock.on_outcome(outcome.clone());
                self.lock_step(step, true);
            }
            LockPhase::Check => match outcome {
                Outcome::Value { value, version } if value.is_empty() => {
                    self.phase = LockPhase::Mark(*version)
                }
                Outcome::Value { value, .. } => {
                    return Err(format!("two clients acquired the lock: l0 holds {value:?}"))
                }
                other => return Err(format!("Get(l0) returned {other:?}")),
            },
            LockPhase::Mark(v) => match outcome {
                Outcome::Ok | Outcome::ErrMaybe => {
                    self.phase = LockPhase::Hold {
                        until: now + 10,
                        version: Version(v.0 + 1),
                    }
                }
                other => return Err(format!("Put(l0, me) returned {other:?}")),
            },
            LockPhase::Clear(_) => match outcome {
                Outcome::Ok | Outcome::ErrMaybe => {
                    let step = self.lock.release();
                    self.lock_step(step, true);
                }
                other => return Err(format!("Put(l0, \"\") returned {other:?}")),
            },
            phase => return Err(format!("an outcome arrived in phase {phase:?}")),
        }
        Ok(())
    }

    fn finished(&self) -> bool {
        *self.stop.borrow() && matches!(self.phase, LockPhase::Idle | LockPhase::InitDone)
    }
}
