//! Paper-style tests of the [`Lock`] built only on versioned Get/Put (spec
//! `lab-tests.md` §3.3): one owner acquires and releases; contenders never
//! both hold it, in every interleaving explored and under ErrMaybe answers;
//! ErrMaybe on the claim and on the release is resolved by reading the key.

use core_kv::{
    Clerk, ClerkAction, ClerkConfig, ClerkInput, ClientId, ClientReply, ClientRequest, KvServer,
    KvStore, Lock, LockStep, Op, Outcome, Seq, ServerAction, ServerInput, Version,
};
use core_raft::rng::SplitMix64;
use core_raft::NodeId;

const KEY: &str = "l";

fn get_l() -> Op {
    Op::Get { key: KEY.into() }
}

fn put_l(value: &str, version: u64) -> Op {
    Op::Put {
        key: KEY.into(),
        value: value.into(),
        version: Version(version),
    }
}

fn holder(store: &KvStore) -> Option<(String, Version)> {
    match store.read(&get_l()) {
        Outcome::Value { value, version } => Some((value, version)),
        _ => None,
    }
}

/// Apply `op` for `client` with a fresh sequence number.
fn run(store: &mut KvStore, client: u64, seq: &mut u64, op: &Op) -> Outcome {
    *seq += 1;
    store.apply(&ClientRequest {
        client: ClientId(client),
        seq: Seq(*seq),
        op: op.clone(),
    })
}

/// Drive one lock's step to completion against a store with truthful answers.
fn drive(
    store: &mut KvStore,
    lock: &mut Lock,
    client: u64,
    seq: &mut u64,
    first: LockStep,
) -> LockStep {
    let mut step = first;
    for _ in 0..100 {
        match step {
            LockStep::Run(op) | LockStep::Wait(op) => {
                let o = run(store, client, seq, &op);
                step = lock.on_outcome(o);
            }
            done => return done,
        }
    }
    panic!("lock did not settle");
}

/// §3.3: a single owner acquires a fresh lock (the key is absent: it is
/// created holding the owner's name), holds it, and releases it (the key
/// holds ""); it can do so again and again, the version rising by 2 each time.
#[test]
fn a_single_owner_acquires_and_releases() {
    let mut store = KvStore::new();
    let mut lock = Lock::new(KEY, "alice");
    let mut seq = 0;
    assert!(!lock.is_held());
    let first = lock.acquire();
    assert_eq!(
        first,
        LockStep::Run(get_l()),
        "acquire starts by reading the key"
    );
    assert_eq!(
        drive(&mut store, &mut lock, 1, &mut seq, first),
        LockStep::Acquired
    );
    assert!(lock.is_held());
    assert_eq!(holder(&store), Some(("alice".into(), Version(1))));
    let r = lock.release();
    assert_eq!(
        r,
        LockStep::Run(put_l("", 1)),
        "release writes \"\" at the held version"
    );
    assert_eq!(
        drive(&mut store, &mut lock, 1, &mut seq, r),
        LockStep::Released
    );
    assert!(!lock.is_held());
    assert_eq!(holder(&store), Some(("".into(), Version(2))));
    for round in 1..=5u64 {
        let a = lock.acquire();
        assert_eq!(
            drive(&mut store, &mut lock, 1, &mut seq, a),
            LockStep::Acquired
        );
        assert_eq!(
            holder(&store),
            Some(("alice".into(), Version(2 * round + 1)))
        );
        let r = lock.release();
        assert_eq!(
            drive(&mut store, &mut lock, 1, &mut seq, r),
            LockStep::Released
        );
        assert_eq!(holder(&store), Some(("".into(), Version(2 * round + 2))));
    }
}

/// §3.3: a contender that finds the key holding another owner's name does
/// not claim it; it waits (re-reads) until the key is "" and then claims it.
#[test]
fn a_contender_waits_for_the_holder() {
    let mut store = KvStore::new();
    let (mut a, mut b) = (Lock::new(KEY, "a"), Lock::new(KEY, "b"));
    let (mut sa, mut sb) = (0, 0);
    let s = a.acquire();
    assert_eq!(drive(&mut store, &mut a, 1, &mut sa, s), LockStep::Acquired);
    let mut step = b.acquire();
    for _ in 0..5 {
        let (LockStep::Run(op) | LockStep::Wait(op)) = step else {
            panic!("b got {step:?} while a holds the lock");
        };
        assert_eq!(op, get_l(), "b may only read while a holds the lock");
        let o = run(&mut store, 2, &mut sb, &op);
        step = b.on_outcome(o);
        assert!(matches!(step, LockStep::Wait(_)), "{step:?}");
    }
    let r = a.release();
    drive(&mut store, &mut a, 1, &mut sa, r);
    assert_eq!(
        drive(&mut store, &mut b, 2, &mut sb, step),
        LockStep::Acquired
    );
    assert_eq!(holder(&store), Some(("b".into(), Version(3))));
}

/// §3.3 "ErrMaybe on the claim": the claim Put was applied but the clerk
/// answered ErrMaybe. The lock reads the key, sees its own name, and holds
/// the lock at the version it read, without claiming again.
#[test]
fn err_maybe_on_an_applied_claim_is_resolved_by_seeing_our_name() {
    let mut store = KvStore::new();
    let mut lock = Lock::new(KEY, "me");
    let mut seq = 0;
    let LockStep::Run(op) = lock.acquire() else {
        panic!()
    };
    let o = run(&mut store, 1, &mut seq, &op);
    let LockStep::Run(claim) = lock.on_outcome(o) else {
        panic!()
    };
    assert_eq!(claim, put_l("me", 0));
    assert_eq!(run(&mut store, 1, &mut seq, &claim), Outcome::Ok);
    // ... but the clerk says ErrMaybe.
    let step = lock.on_outcome(Outcome::ErrMaybe);
    assert_eq!(
        step,
        LockStep::Run(get_l()),
        "ErrMaybe is resolved by reading"
    );
    assert!(!lock.is_held());
    let o = run(&mut store, 1, &mut seq, &get_l());
    assert_eq!(lock.on_outcome(o), LockStep::Acquired);
    assert!(lock.is_held());
    // It holds it at the right version: its release goes through.
    let r = lock.release();
    assert_eq!(r, LockStep::Run(put_l("", 1)));
    assert_eq!(
        drive(&mut store, &mut lock, 1, &mut seq, r),
        LockStep::Released
    );
    assert_eq!(holder(&store), Some(("".into(), Version(2))));
}

/// §3.3 "ErrMaybe on the claim", the other case: the claim was not applied
/// (another contender got there first, or nobody did). The lock reads the
/// key and waits for the other holder, or claims again if it is free.
#[test]
fn err_maybe_on_an_unapplied_claim_is_resolved_by_reading() {
    // Nobody else: the claim is retried and succeeds.
    let mut store = KvStore::new();
    let mut lock = Lock::new(KEY, "me");
    let mut seq = 0;
    let LockStep::Run(op) = lock.acquire() else {
        panic!()
    };
    let o = run(&mut store, 1, &mut seq, &op);
    let LockStep::Run(_claim_lost) = lock.on_outcome(o) else {
        panic!()
    };
    let step = lock.on_outcome(Outcome::ErrMaybe);
    assert_eq!(
        drive(&mut store, &mut lock, 1, &mut seq, step),
        LockStep::Acquired
    );
    assert_eq!(holder(&store), Some(("me".into(), Version(1))));

    // Someone else claimed meanwhile: wait, never hold.
    let mut store = KvStore::new();
    let mut lock = Lock::new(KEY, "me");
    let mut other = Lock::new(KEY, "other");
    let (mut seq, mut oseq) = (0, 0);
    let LockStep::Run(op) = lock.acquire() else {
        panic!()
    };
    let o = run(&mut store, 1, &mut seq, &op);
    let LockStep::Run(_claim_lost) = lock.on_outcome(o) else {
        panic!()
    };
    let s = other.acquire();
    assert_eq!(
        drive(&mut store, &mut other, 2, &mut oseq, s),
        LockStep::Acquired
    );
    let LockStep::Run(op) = lock.on_outcome(Outcome::ErrMaybe) else {
        panic!()
    };
    let o = run(&mut store, 1, &mut seq, &op);
    assert!(matches!(lock.on_outcome(o), LockStep::Wait(_)));
    assert!(!lock.is_held());
}

/// §3.3 "ErrMaybe on release": whether the release Put was applied or not,
/// the lock ends released and the key ends "" (the lock reads the key and
/// writes "" again if it still holds its name), so others can acquire.
#[test]
fn err_maybe_on_release_is_resolved() {
    for applied in [true, false] {
        let mut store = KvStore::new();
        let mut lock = Lock::new(KEY, "me");
        let mut seq = 0;
        let s = lock.acquire();
        drive(&mut store, &mut lock, 1, &mut seq, s);
        let LockStep::Run(release) = lock.release() else {
            panic!()
        };
        if applied {
            assert_eq!(run(&mut store, 1, &mut seq, &release), Outcome::Ok);
        }
        let step = lock.on_outcome(Outcome::ErrMaybe);
        assert_eq!(step, LockStep::Run(get_l()), "applied={applied}");
        assert_eq!(
            drive(&mut store, &mut lock, 1, &mut seq, step),
            LockStep::Released,
            "applied={applied}"
        );
        assert!(!lock.is_held());
        assert_eq!(
            holder(&store).map(|h| h.0),
            Some(String::new()),
            "applied={applied}"
        );
        let mut next = Lock::new(KEY, "next");
        let mut nseq = 0;
        let s = next.acquire();
        assert_eq!(
            drive(&mut store, &mut next, 2, &mut nseq, s),
            LockStep::Acquired
        );
    }
    // The release was applied, and another owner took the lock before the
    // check: the check sees the other name and must not touch it.
    let mut store = KvStore::new();
    let mut lock = Lock::new(KEY, "me");
    let mut other = Lock::new(KEY, "other");
    let (mut seq, mut oseq) = (0, 0);
    let s = lock.acquire();
    drive(&mut store, &mut lock, 1, &mut seq, s);
    let LockStep::Run(release) = lock.release() else {
        panic!()
    };
    run(&mut store, 1, &mut seq, &release);
    let s = other.acquire();
    assert_eq!(
        drive(&mut store, &mut other, 2, &mut oseq, s),
        LockStep::Acquired
    );
    let step = lock.on_outcome(Outcome::ErrMaybe);
    assert_eq!(
        drive(&mut store, &mut lock, 1, &mut seq, step),
        LockStep::Released
    );
    assert_eq!(holder(&store).map(|h| h.0), Some("other".into()));
    assert!(other.is_held());
}

/// One contender in a model run: its lock, the operation it must run next
/// (if any), and whether it is in its critical section.
#[derive(Clone)]
struct Contender {
    lock: Lock,
    next: Option<Op>,
    client: u64,
    seq: u64,
    entered: u32,
}

impl Contender {
    fn new(name: &str, client: u64) -> Contender {
        Contender {
            lock: Lock::new(KEY, name),
            next: None,
            client,
            seq: 0,
            entered: 0,
        }
    }

    fn follow(&mut self, step: LockStep) {
        self.next = match step {
            LockStep::Run(op) | LockStep::Wait(op) => Some(op),
            LockStep::Acquired => {
                self.entered += 1;
                None
            }
            LockStep::Released => None,
        };
    }

    /// Take one step against `store`. With `maybe`, a Put whose true answer
    /// is Ok or ErrVersion is reported as ErrMaybe (a lost reply and a
    /// resend that saw ErrVersion at a server without a session table).
    /// With `lose`, such a Put is not applied at all and reported ErrMaybe.
    fn step(&mut self, store: &mut KvStore, maybe: bool, lose: bool) {
        match self.next.take() {
            Some(op) => {
                let is_put = matches!(op, Op::Put { .. });
                let outcome = if is_put && lose {
                    // Lost: answered ErrMaybe only if a resend could have
                    // seen ErrVersion, i.e. the put would not apply now.
                    let mut probe = store.clone();
                    let mut probe_seq = self.seq;
                    match run(&mut probe, self.client, &mut probe_seq, &op) {
                        Outcome::ErrVersion => Outcome::ErrMaybe,
                        _ => run(store, self.client, &mut self.seq, &op),
                    }
                } else {
                    let o = run(store, self.client, &mut self.seq, &op);
                    if is_put && maybe && matches!(o, Outcome::Ok | Outcome::ErrVersion) {
                        Outcome::ErrMaybe
                    } else {
                        o
                    }
                };
                let step = self.lock.on_outcome(outcome);
                self.follow(step);
            }
            None if self.lock.is_held() => {
                let step = self.lock.release();
                self.follow(step);
            }
            None => {
                let step = self.lock.acquire();
                self.follow(step);
            }
        }
    }
}

/// The invariant: at most one contender holds the lock, and a holder's
/// name is what the key holds.
fn check(store: &KvStore, cs: &[Contender], trace: &str) {
    let holders: Vec<_> = cs.iter().filter(|c| c.lock.is_held()).collect();
    assert!(holders.len() <= 1, "two holders after {trace}");
    if let Some(h) = holders.first() {
        let name = format!("c{}", h.client);
        assert_eq!(
            holder(store).map(|v| v.0),
            Some(name),
            "holder's name is not in the key after {trace}"
        );
    }
}

/// §3.3 mutual exclusion, exhaustively: two contenders cycling
/// acquire/release on one key, every interleaving of their single steps up
/// to depth 14, and at each Put every way the answer may come back (true
/// answer, applied-but-ErrMaybe, lost-and-ErrMaybe). Never two holders.
#[test]
fn two_contenders_never_both_hold_in_any_interleaving() {
    fn explore(
        store: &KvStore,
        cs: &[Contender],
        depth: u32,
        trace: &mut String,
        leaves: &mut u64,
    ) {
        check(store, cs, trace);
        if depth == 0 {
            *leaves += 1;
            return;
        }
        for who in 0..cs.len() {
            let is_put = matches!(cs[who].next, Some(Op::Put { .. }));
            let modes: &[(bool, bool)] = if is_put {
                &[(false, false), (true, false), (false, true)]
            } else {
                &[(false, false)]
            };
            for &(maybe, lose) in modes {
                let mut store = store.clone();
                let mut cs = cs.to_vec();
                cs[who].step(&mut store, maybe, lose);
                let len = trace.len();
                trace.push_str(&format!(
                    "{who}{} ",
                    if maybe {
                        "m"
                    } else if lose {
                        "l"
                    } else {
                        ""
                    }
                ));
                explore(&store, &cs, depth - 1, trace, leaves);
                trace.truncate(len);
            }
        }
    }
    let cs = vec![Contender::new("c1", 1), Contender::new("c2", 2)];
    let mut leaves = 0;
    explore(&KvStore::new(), &cs, 14, &mut String::new(), &mut leaves);
    assert!(leaves > 100_000, "explored {leaves} interleavings");
}

/// §3.3 mutual exclusion, randomly: three contenders, long runs, random
/// scheduling and random ErrMaybe answers (seeded; the seed is printed on
/// failure). Never two holders, and everyone gets the lock sometimes.
#[test]
fn three_contenders_random_schedules() {
    for seed in 0..300u64 {
        let mut rng = SplitMix64::new(seed);
        let mut store = KvStore::new();
        let mut cs: Vec<Contender> = (1..=3)
            .map(|i| Contender::new(&format!("c{i}"), i))
            .collect();
        for step in 0..2000 {
            let who = (rng.next_u64() % cs.len() as u64) as usize;
            let roll = rng.next_u64() % 10;
            cs[who].step(&mut store, roll == 0, roll == 1);
            check(&store, &cs, &format!("seed {seed}, step {step}"));
        }
        for c in &cs {
            assert!(c.entered > 0, "seed {seed}: c{} never acquired", c.client);
        }
    }
}

/// §3.3 TestManyClientsUnreliable, in miniature: three lock users, each with
/// its own clerk, against the single server over a network that loses and
/// duplicates requests and replies (seeded, printed). In its critical
/// section each user does the lab's check: `Get("l0")` must be "", then
/// `Put("l0", me)`, then `Put("l0", "")` (each OK or ErrMaybe). A non-empty
/// l0 on entry means two users held the lock.
#[test]
fn lock_users_over_a_lossy_network_exclude_each_other() {
    #[derive(Debug, PartialEq)]
    enum Phase {
        Idle,
        Locking,
        CheckL0,
        SetL0(Version),
        ClearL0,
        Unlocking,
    }
    struct User {
        clerk: Clerk,
        lock: Lock,
        phase: Phase,
        rounds: u32,
        name: String,
    }
    for seed in 0..40u64 {
        let mut rng = SplitMix64::new(seed);
        let mut server = KvServer::new();
        let mut users: Vec<User> = (0..3)
            .map(|i| User {
                clerk: Clerk::new(ClerkConfig {
                    client: ClientId(i),
                    servers: vec![NodeId(0)],
                    retry_ticks: 4,
                    seed: seed * 10 + i,
                }),
                lock: Lock::new("l", format!("u{i}")),
                phase: Phase::Idle,
                rounds: 0,
                name: format!("u{i}"),
            })
            .collect();
        let mut to_server: Vec<ClientRequest> = Vec::new();
        let mut to_clerk: Vec<ClientReply> = Vec::new();
        // Each user's clerk actions, to be interpreted.
        let mut pending: Vec<Vec<ClerkAction>> = vec![Vec::new(); 3];
        for (i, u) in users.iter_mut().enumerate() {
            // The lab's setup: Put("l0", "", 0), result ignored.
            pending[i] = u.clerk.step(ClerkInput::Invoke(Op::Put {
                key: "l0".into(),
                value: String::new(),
                version: Version(0),
            }));
        }
        let in_cs = |users: &Vec<User>| {
            users
                .iter()
                .filter(|u| matches!(u.phase, Phase::CheckL0 | Phase::SetL0(_) | Phase::ClearL0))
                .count()
        };
        for step in 0..30_000 {
            // Interpret clerk actions.
            for i in 0..3 {
                let actions = std::mem::take(&mut pending[i]);
                for a in actions {
                    match a {
                        ClerkAction::Send { request, .. } => {
                            let roll = rng.next_u64() % 10;
                            if roll >= 1 {
                                to_server.push(request.clone());
                            }
                            if roll == 9 {
                                to_server.push(request);
                            }
                        }
                        ClerkAction::Done { outcome, .. } => {
                            let u = &mut users[i];
                            let next: Option<Op> =
                                match std::mem::replace(&mut u.phase, Phase::Idle) {
                                    Phase::Idle => None, // the setup Put
                                    Phase::Locking => match u.lock.on_outcome(outcome) {
                                        LockStep::Run(op) | LockStep::Wait(op) => {
                                            u.phase = Phase::Locking;
                                            Some(op)
                                        }
                                        LockStep::Acquired => {
                                            u.phase = Phase::CheckL0;
                                            Some(Op::Get { key: "l0".into() })
                                        }
                                        LockStep::Released => unreachable!(),
                                    },
                                    Phase::CheckL0 => {
                                        let Outcome::Value { value, version } = outcome else {
                                            panic!("seed {seed}: Get l0 failed: {outcome:?}")
                                        };
                                        assert_eq!(
                                        value, "",
                                        "seed {seed}, step {step}: two clients acquired the lock"
                                    );
                                        u.phase = Phase::SetL0(version);
                                        Some(Op::Put {
                                            key: "l0".into(),
                                            value: u.name.clone(),
                                            version,
                                        })
                                    }
                                    Phase::SetL0(v) => {
                                        assert!(
                                            matches!(outcome, Outcome::Ok | Outcome::ErrMaybe),
                                            "seed {seed}: Put l0 = me got {outcome:?}"
                                        );
                                        u.phase = Phase::ClearL0;
                                        Some(Op::Put {
                                            key: "l0".into(),
                                            value: String::new(),
                                            version: Version(v.0 + 1),
                                        })
                                    }
                                    Phase::ClearL0 => {
                                        assert!(
                                            matches!(outcome, Outcome::Ok | Outcome::ErrMaybe),
                                            "seed {seed}: Put l0 = \"\" got {outcome:?}"
                                        );
                                        u.phase = Phase::Unlocking;
                                        match u.lock.release() {
                                            LockStep::Run(op) => Some(op),
                                            s => panic!("{s:?}"),
                                        }
                                    }
                                    Phase::Unlocking => match u.lock.on_outcome(outcome) {
                                        LockStep::Run(op) | LockStep::Wait(op) => {
                                            u.phase = Phase::Unlocking;
                                            Some(op)
                                        }
                                        LockStep::Released => {
                                            u.rounds += 1;
                                            None
                                        }
                                        LockStep::Acquired => unreachable!(),
                                    },
                                };
                            if let Some(op) = next {
                                pending[i].extend(u.clerk.step(ClerkInput::Invoke(op)));
                            }
                        }
                    }
                }
            }
            assert!(
                in_cs(&users) <= 1,
                "seed {seed}, step {step}: two users in the critical section"
            );
            // Idle users start a new round.
            for (i, u) in users.iter_mut().enumerate() {
                if u.phase == Phase::Idle && !u.clerk.busy() {
                    u.phase = Phase::Locking;
                    let LockStep::Run(op) = u.lock.acquire() else {
                        panic!()
                    };
                    pending[i].extend(u.clerk.step(ClerkInput::Invoke(op)));
                }
            }
            match rng.next_u64() % 4 {
                0 | 1 if !to_server.is_empty() => {
                    let k = (rng.next_u64() % to_server.len() as u64) as usize;
                    let request = to_server.swap_remove(k);
                    for ServerAction::Reply { reply, .. } in
                        server.step(ServerInput::Request { from: 0, request })
                    {
                        if rng.next_u64() % 10 >= 1 {
                            to_clerk.push(reply);
                        }
                    }
                }
                2 if !to_clerk.is_empty() => {
                    let k = (rng.next_u64() % to_clerk.len() as u64) as usize;
                    let reply = to_clerk.swap_remove(k);
                    let i = reply.client.0 as usize;
                    pending[i].extend(users[i].clerk.step(ClerkInput::Reply {
                        from: NodeId(0),
                        reply,
                    }));
                }
                _ => {
                    for (i, u) in users.iter_mut().enumerate() {
                        pending[i].extend(u.clerk.step(ClerkInput::Tick));
                    }
                }
            }
        }
        let total: u32 = users.iter().map(|u| u.rounds).sum();
        assert!(
            total >= 10,
            "seed {seed}: only {total} lock rounds completed"
        );
    }
}
