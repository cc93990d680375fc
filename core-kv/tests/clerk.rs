//! Paper-style tests of the sans-IO [`Clerk`]: server choice and leader
//! tracking (lab 4B "clerks try servers until they find the leader", spec
//! `lab-tests.md` §5.2), retries counted in ticks, filtering of stray
//! replies, the ErrVersion/ErrMaybe rule of §3.1, one operation at a time,
//! and request numbering for exactly-once (issue 4).

use core_kv::Clerk;
use core_kv::{
    ClerkAction, ClerkConfig, ClerkInput, ClientId, ClientReply, ClientRequest, KvServer, Op,
    Outcome, Response, Seq, ServerAction, ServerInput, Version,
};
use core_raft::rng::SplitMix64;
use core_raft::NodeId;

const ME: ClientId = ClientId(77);
const RETRY: u64 = 5;

fn servers(n: u64) -> Vec<NodeId> {
    (10..10 + n).map(NodeId).collect()
}

fn clerk(n: u64, seed: u64) -> Clerk {
    Clerk::new(ClerkConfig {
        client: ME,
        servers: servers(n),
        retry_ticks: RETRY,
        seed,
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

/// The single Send in `actions`.
fn sent(actions: &[ClerkAction]) -> (NodeId, ClientRequest) {
    let sends: Vec<_> = actions
        .iter()
        .filter_map(|a| match a {
            ClerkAction::Send { to, request } => Some((*to, request.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(sends.len(), 1, "expected exactly one Send in {actions:?}");
    sends[0].clone()
}

fn done(actions: &[ClerkAction]) -> Option<Outcome> {
    actions.iter().find_map(|a| match a {
        ClerkAction::Done { outcome, .. } => Some(outcome.clone()),
        _ => None,
    })
}

fn reply(from: NodeId, seq: Seq, response: Response) -> ClerkInput {
    ClerkInput::Reply {
        from,
        reply: ClientReply {
            client: ME,
            seq,
            response,
        },
    }
}

fn wrong_leader(hint: Option<NodeId>) -> Response {
    Response::WrongLeader { leader_hint: hint }
}

/// Run `op` to completion against `leader`: answer WrongLeader (no hint)
/// from everyone else, Done(Ok) from the leader. Returns the servers tried.
fn complete_at(c: &mut Clerk, op: Op, leader: NodeId) -> Vec<NodeId> {
    let mut tried = Vec::new();
    let (mut to, mut r) = sent(&c.step(ClerkInput::Invoke(op)));
    loop {
        tried.push(to);
        if to == leader {
            let a = c.step(reply(to, r.seq, Response::Done(Outcome::Ok)));
            assert_eq!(done(&a), Some(Outcome::Ok));
            return tried;
        }
        (to, r) = sent(&c.step(reply(to, r.seq, wrong_leader(None))));
        assert!(tried.len() < 100, "never reached {leader}");
    }
}

/// Issue 4 "rotates through servers", starting point: with no leader known,
/// the first request goes to a server chosen by the seed: the same seed
/// always picks the same server, and over many seeds every server is picked.
#[test]
fn the_first_send_goes_to_a_seeded_random_server() {
    let all = servers(5);
    let mut counts = vec![0; all.len()];
    for seed in 0..500 {
        let (to, _) = sent(&clerk(5, seed).step(ClerkInput::Invoke(get("k"))));
        let (again, _) = sent(&clerk(5, seed).step(ClerkInput::Invoke(get("k"))));
        assert_eq!(to, again, "seed {seed}: not deterministic");
        let i = all
            .iter()
            .position(|s| *s == to)
            .expect("a configured server");
        counts[i] += 1;
    }
    for (i, c) in counts.iter().enumerate() {
        assert!(
            *c >= 50,
            "server {i} picked {c} times out of 500: {counts:?}"
        );
    }
}

/// Issue 4 "remembers the leader": after a server answers Done, every later
/// operation goes straight to it, with no further random choice.
#[test]
fn after_a_done_the_clerk_sticks_to_that_server() {
    for seed in 0..20 {
        let mut c = clerk(5, seed);
        let leader = servers(5)[3];
        complete_at(&mut c, put("k", "v", 0), leader);
        assert_eq!(c.leader(), Some(leader));
        for i in 0..10 {
            let tried = complete_at(&mut c, get(&format!("k{i}")), leader);
            assert_eq!(tried, vec![leader], "seed {seed}");
        }
    }
}

/// Issue 4 "follows leader hints": WrongLeader with a hint naming a known
/// server sends the retry there, with the same seq, and forgets the old leader.
#[test]
fn wrong_leader_with_a_hint_goes_to_the_hint() {
    let all = servers(5);
    let mut c = clerk(5, 1);
    complete_at(&mut c, get("a"), all[0]);
    let (to, r) = sent(&c.step(ClerkInput::Invoke(get("b"))));
    assert_eq!(to, all[0]);
    let (to2, r2) = sent(&c.step(reply(all[0], r.seq, wrong_leader(Some(all[3])))));
    assert_eq!(to2, all[3]);
    assert_eq!(r2, r, "a retry resends the same request");
    assert_eq!(c.leader(), None);
    // A hint from the hinted server to another server is followed too.
    let (to3, _) = sent(&c.step(reply(all[3], r.seq, wrong_leader(Some(all[1])))));
    assert_eq!(to3, all[1]);
    let a = c.step(reply(all[1], r.seq, Response::Done(Outcome::ErrNoKey)));
    assert_eq!(done(&a), Some(Outcome::ErrNoKey));
    assert_eq!(c.leader(), Some(all[1]));
}

/// Issue 4 "rotates through servers": WrongLeader without a usable hint
/// (none, an unknown server, or the answering server itself) moves to the
/// next server in the list, wrapping around, so that every server is tried.
/// Once every server has refused, the clerk pauses half its retry interval
/// before the next round (no leader exists right now; retrying at network
/// speed would only load the servers).
#[test]
fn wrong_leader_without_a_usable_hint_rotates() {
    let all = servers(4);
    for hint in [None, Some(NodeId(999)), Some(NodeId(u64::MAX))] {
        let mut c = clerk(4, 3);
        let (first, r) = sent(&c.step(ClerkInput::Invoke(get("k"))));
        let start = all.iter().position(|s| *s == first).unwrap();
        let mut to = first;
        let mut seen = vec![first];
        for step in 1..=8 {
            let mut actions = c.step(reply(to, r.seq, wrong_leader(hint)));
            if step % all.len() == 0 {
                assert!(
                    actions.is_empty(),
                    "a full round of refusals must pause, got {actions:?}"
                );
                for tick in 1..=RETRY / 2 {
                    actions = c.step(ClerkInput::Tick);
                    if tick < RETRY / 2 {
                        assert!(actions.is_empty(), "sent before the pause ended");
                    }
                }
            }
            let (next, again) = sent(&actions);
            assert_eq!(next, all[(start + step) % all.len()], "hint {hint:?}");
            assert_eq!(again.seq, r.seq);
            to = next;
            seen.push(next);
        }
        for s in &all {
            assert!(seen.contains(s), "{s} never tried");
        }
    }
    // A server naming itself as the leader while refusing: rotate.
    let mut c = clerk(4, 3);
    let (first, r) = sent(&c.step(ClerkInput::Invoke(get("k"))));
    let start = all.iter().position(|s| *s == first).unwrap();
    let (next, _) = sent(&c.step(reply(first, r.seq, wrong_leader(Some(first)))));
    assert_eq!(next, all[(start + 1) % all.len()]);
}

/// Issue 4 "retries with timeouts counted in ticks": silence for exactly
/// `retry_ticks` ticks resends the same request to the next server and
/// forgets the leader; fewer ticks send nothing. Each resend restarts the count.
#[test]
fn a_timeout_rotates_and_forgets_the_leader() {
    let all = servers(3);
    let mut c = clerk(3, 0);
    complete_at(&mut c, get("a"), all[1]);
    assert_eq!(c.leader(), Some(all[1]));
    let (to, r) = sent(&c.step(ClerkInput::Invoke(put("k", "v", 0))));
    assert_eq!(to, all[1]);
    let mut expected = 1;
    for _round in 0..5 {
        for _ in 0..RETRY - 1 {
            assert!(c.step(ClerkInput::Tick).is_empty());
        }
        let (next, again) = sent(&c.step(ClerkInput::Tick));
        expected = (expected + 1) % 3;
        assert_eq!(next, all[expected]);
        assert_eq!(again, r);
        assert_eq!(c.leader(), None, "a timeout forgets the leader");
    }
    // The server that finally answers becomes the leader.
    let a = c.step(reply(all[expected], r.seq, Response::Done(Outcome::Ok)));
    assert_eq!(done(&a), Some(Outcome::Ok));
    assert_eq!(c.leader(), Some(all[expected]));
}

/// With one server (lab 2), retries go to that server again and again.
#[test]
fn a_single_server_clerk_retries_the_same_server() {
    let mut c = clerk(1, 9);
    let (to, r) = sent(&c.step(ClerkInput::Invoke(get("k"))));
    for _ in 0..4 {
        for _ in 0..RETRY - 1 {
            assert!(c.step(ClerkInput::Tick).is_empty());
        }
        let (again, r2) = sent(&c.step(ClerkInput::Tick));
        assert_eq!((again, &r2), (to, &r));
    }
}

/// DESIGN.md "hostile input is normal": a reply for another client, for
/// another request number (earlier or later), or from a server the clerk
/// does not know is ignored: no action, the operation stays in flight and is
/// finished by the genuine reply.
#[test]
fn stray_replies_are_ignored() {
    let all = servers(3);
    let mut c = clerk(3, 5);
    complete_at(&mut c, get("warmup"), all[0]); // seq 1
    let (to, r) = sent(&c.step(ClerkInput::Invoke(put("k", "v", 0))));
    assert_eq!(r.seq, Seq(2));
    let strays = [
        ClerkInput::Reply {
            from: to,
            reply: ClientReply {
                client: ClientId(ME.0 + 1),
                seq: r.seq,
                response: Response::Done(Outcome::ErrVersion),
            },
        },
        reply(to, Seq(1), Response::Done(Outcome::ErrVersion)),
        reply(to, Seq(3), Response::Done(Outcome::ErrVersion)),
        reply(to, Seq(0), wrong_leader(Some(all[2]))),
        reply(NodeId(12345), r.seq, Response::Done(Outcome::ErrVersion)),
        reply(NodeId(12345), r.seq, wrong_leader(None)),
    ];
    for s in strays {
        assert!(c.step(s.clone()).is_empty(), "{s:?} was not ignored");
        assert!(c.busy());
        assert_eq!(c.leader(), Some(all[0]), "{s:?} changed the leader");
    }
    let a = c.step(reply(to, r.seq, Response::Done(Outcome::Ok)));
    assert_eq!(done(&a), Some(Outcome::Ok));
    assert!(!c.busy());
    // A late duplicate of the answer after the operation finished: ignored.
    assert!(c
        .step(reply(to, r.seq, Response::Done(Outcome::Ok)))
        .is_empty());
    // A reply while idle: ignored.
    assert!(c
        .step(reply(to, Seq(99), Response::Done(Outcome::Ok)))
        .is_empty());
    assert!(
        c.step(ClerkInput::Tick).is_empty(),
        "idle ticks send nothing"
    );
}

/// §3.1 "ErrVersion on the FIRST attempt → return ErrVersion": the Put was
/// sent once, so the server's ErrVersion is the truth.
#[test]
fn err_version_on_the_first_attempt_is_err_version() {
    let mut c = clerk(3, 2);
    let (to, r) = sent(&c.step(ClerkInput::Invoke(put("k", "v", 4))));
    let a = c.step(reply(to, r.seq, Response::Done(Outcome::ErrVersion)));
    assert_eq!(done(&a), Some(Outcome::ErrVersion));
}

/// §3.1 "ErrVersion on a resend → return ErrMaybe": after a timeout, or
/// after a WrongLeader (the refusing server may still commit the first
/// attempt), the Put may have been applied by an earlier attempt, so an
/// ErrVersion becomes ErrMaybe. Other outcomes pass through unchanged, and
/// other operations never turn into ErrMaybe.
#[test]
fn err_version_on_a_resend_is_err_maybe() {
    let resend_by_timeout = |c: &mut Clerk| {
        let mut last = None;
        for _ in 0..RETRY {
            let a = c.step(ClerkInput::Tick);
            if !a.is_empty() {
                last = Some(sent(&a));
            }
        }
        last.expect("a resend after retry_ticks")
    };
    // Timeout, then ErrVersion: ErrMaybe.
    let mut c = clerk(3, 2);
    let (_, r) = sent(&c.step(ClerkInput::Invoke(put("k", "v", 4))));
    let (to, _) = resend_by_timeout(&mut c);
    let a = c.step(reply(to, r.seq, Response::Done(Outcome::ErrVersion)));
    assert_eq!(done(&a), Some(Outcome::ErrMaybe));

    // WrongLeader, then ErrVersion: ErrMaybe.
    let mut c = clerk(3, 2);
    let (to, r) = sent(&c.step(ClerkInput::Invoke(put("k", "v", 4))));
    let (to2, _) = sent(&c.step(reply(to, r.seq, wrong_leader(None))));
    let a = c.step(reply(to2, r.seq, Response::Done(Outcome::ErrVersion)));
    assert_eq!(done(&a), Some(Outcome::ErrMaybe));

    // The answer to the *first* attempt arriving after a resend was sent:
    // the clerk cannot tell which attempt it answers, so ErrMaybe too.
    let mut c = clerk(3, 2);
    let (first, r) = sent(&c.step(ClerkInput::Invoke(put("k", "v", 4))));
    resend_by_timeout(&mut c);
    let a = c.step(reply(first, r.seq, Response::Done(Outcome::ErrVersion)));
    assert_eq!(done(&a), Some(Outcome::ErrMaybe));

    // Resent Puts with other outcomes, and resent non-Puts: unchanged.
    for (op, outcome) in [
        (put("k", "v", 4), Outcome::Ok),
        (put("k", "v", 4), Outcome::ErrNoKey),
        (get("k"), Outcome::ErrNoKey),
        (
            Op::Append {
                key: "k".into(),
                value: "v".into(),
            },
            Outcome::ErrVersion,
        ),
    ] {
        let mut c = clerk(3, 2);
        let (_, r) = sent(&c.step(ClerkInput::Invoke(op.clone())));
        let (to, _) = resend_by_timeout(&mut c);
        let a = c.step(reply(to, r.seq, Response::Done(outcome.clone())));
        assert_eq!(done(&a), Some(outcome), "{op:?}");
    }

    // A new Put after an ErrMaybe starts with a clean slate.
    let mut c = clerk(1, 2);
    let (to, r) = sent(&c.step(ClerkInput::Invoke(put("k", "v", 4))));
    resend_by_timeout(&mut c);
    c.step(reply(to, r.seq, Response::Done(Outcome::ErrVersion)));
    let (to, r) = sent(&c.step(ClerkInput::Invoke(put("k", "v", 5))));
    let a = c.step(reply(to, r.seq, Response::Done(Outcome::ErrVersion)));
    assert_eq!(done(&a), Some(Outcome::ErrVersion));
}

/// "Operations run one at a time, in order" (ClerkInput::Invoke): a second
/// Invoke while one is in flight sends nothing; it is sent in the same step
/// that finishes the first, after the first's Done. Ticks and retries of the
/// first never leak the second.
#[test]
fn a_queued_invoke_runs_only_after_the_first_finishes() {
    let mut c = clerk(3, 4);
    let (to, r1) = sent(&c.step(ClerkInput::Invoke(get("first"))));
    assert!(c.step(ClerkInput::Invoke(get("second"))).is_empty());
    assert!(c.step(ClerkInput::Invoke(get("third"))).is_empty());
    for _ in 0..RETRY * 2 {
        for a in c.step(ClerkInput::Tick) {
            if let ClerkAction::Send { request, .. } = a {
                assert_eq!(request.op, get("first"));
            }
        }
    }
    let a = c.step(reply(to, r1.seq, Response::Done(Outcome::ErrNoKey)));
    assert_eq!(a.len(), 2, "{a:?}");
    assert_eq!(
        a[0],
        ClerkAction::Done {
            op: get("first"),
            outcome: Outcome::ErrNoKey
        }
    );
    let (to2, r2) = sent(&a[1..]);
    assert_eq!(to2, to, "the answering server is now the leader");
    assert_eq!(r2.op, get("second"));
    assert!(c.busy());
    let a = c.step(reply(to2, r2.seq, Response::Done(Outcome::ErrNoKey)));
    assert_eq!(sent(&a).1.op, get("third"));
}

/// Issue 4 exactly-once: "clients carry an id and a sequence number". The
/// clerk numbers its operations 1, 2, 3, ... (one per operation, reads
/// included) and every retry of an operation, by timeout or by WrongLeader,
/// carries that operation's number and this clerk's id.
#[test]
fn sequence_numbers_rise_by_one_per_operation_and_are_reused_on_retries() {
    let all = servers(3);
    let mut rng = SplitMix64::new(11);
    let mut c = clerk(3, 6);
    for op_no in 1..=30u64 {
        let op = if op_no % 2 == 0 {
            get("k")
        } else {
            put("k", "v", op_no)
        };
        let (mut to, r) = sent(&c.step(ClerkInput::Invoke(op.clone())));
        assert_eq!(r.seq, Seq(op_no));
        assert_eq!(r.client, ME);
        assert_eq!(r.op, op);
        for _ in 0..rng.next_u64() % 4 {
            let a = if rng.next_u64() % 2 == 1 {
                c.step(reply(to, r.seq, wrong_leader(Some(all[2]))))
            } else {
                let mut a = Vec::new();
                for _ in 0..RETRY {
                    a.extend(c.step(ClerkInput::Tick));
                }
                a
            };
            let (next, again) = sent(&a);
            assert_eq!(again, r, "a retry changed the request");
            to = next;
        }
        let a = c.step(reply(to, r.seq, Response::Done(Outcome::Ok)));
        assert!(done(&a).is_some());
    }
}

/// A clerk against the single server (lab 2) over a network that loses,
/// duplicates and delays requests and replies (seeded, printed). §3.2
/// TestUnreliableNet: `Put("k", i, version = try)` for 100 tries; each ends
/// with the version at try+1 and the first attempt's value. With the
/// session table, a resend of a Put that was applied is answered from the
/// table (Ok), so the clerk never needs ErrMaybe here; when it does say
/// ErrMaybe the Put was in fact applied (one client).
#[test]
fn a_clerk_over_a_lossy_network_to_a_single_server() {
    for seed in 0..30u64 {
        let mut rng = SplitMix64::new(seed);
        let mut server = KvServer::new();
        let mut c = Clerk::new(ClerkConfig {
            client: ME,
            servers: vec![NodeId(0)],
            retry_ticks: 3,
            seed,
        });
        let mut net_to_server: Vec<ClientRequest> = Vec::new();
        let mut net_to_clerk: Vec<ClientReply> = Vec::new();
        let mut maybe = 0;
        for attempt in 0..100u64 {
            let mut outcome = None;
            let mut inbox = c.step(ClerkInput::Invoke(put("k", &attempt.to_string(), attempt)));
            let mut steps = 0;
            while outcome.is_none() {
                steps += 1;
                assert!(steps < 10_000, "seed {seed}: no progress");
                for a in inbox.drain(..) {
                    match a {
                        ClerkAction::Send { request, .. } => {
                            // 20 % lost, 10 % duplicated.
                            let roll = rng.next_u64() % 10;
                            if roll >= 2 {
                                net_to_server.push(request.clone());
                            }
                            if roll == 9 {
                                net_to_server.push(request);
                            }
                        }
                        ClerkAction::Done { outcome: o, .. } => outcome = Some(o),
                    }
                }
                if outcome.is_some() {
                    break;
                }
                match rng.next_u64() % 3 {
                    0 if !net_to_server.is_empty() => {
                        let i = (rng.next_u64() % net_to_server.len() as u64) as usize;
                        let request = net_to_server.swap_remove(i);
                        for ServerAction::Reply { reply, .. } in
                            server.step(ServerInput::Request { from: 0, request })
                        {
                            if rng.next_u64() % 10 >= 2 {
                                net_to_clerk.push(reply);
                            }
                        }
                    }
                    1 if !net_to_clerk.is_empty() => {
                        let i = (rng.next_u64() % net_to_clerk.len() as u64) as usize;
                        let reply = net_to_clerk.swap_remove(i);
                        inbox = c.step(ClerkInput::Reply {
                            from: NodeId(0),
                            reply,
                        });
                    }
                    _ => inbox = c.step(ClerkInput::Tick),
                }
            }
            let outcome = outcome.unwrap();
            if outcome == Outcome::ErrMaybe {
                maybe += 1;
            } else {
                assert_eq!(outcome, Outcome::Ok, "seed {seed}, try {attempt}");
            }
            assert_eq!(
                server.store().read(&get("k")),
                Outcome::Value {
                    value: attempt.to_string(),
                    version: Version(attempt + 1)
                },
                "seed {seed}, try {attempt}"
            );
        }
        assert_eq!(maybe, 0, "seed {seed}: the session table answers resends");
    }
}

/// A refusal from a server the clerk has already moved away from must not
/// start another attempt: the current one is still in flight. Acting on
/// stale refusals turned message duplication into a request storm in the
/// simulator (each stale refusal spawned a request, whose refusal spawned
/// another).
#[test]
fn a_stale_refusal_from_a_previous_server_is_ignored() {
    let all = servers(3);
    let mut c = clerk(3, 5);
    let (first, r) = sent(&c.step(ClerkInput::Invoke(get("k"))));
    let (second, _) = sent(&c.step(reply(first, r.seq, wrong_leader(None))));
    assert_ne!(first, second);
    // A duplicate of the first refusal arrives late.
    let late = c.step(reply(first, r.seq, wrong_leader(Some(all[0]))));
    assert!(
        late.is_empty(),
        "a stale refusal started another attempt: {late:?}"
    );
    // An answer from any server for this request still completes it.
    let done_actions = c.step(reply(second, r.seq, Response::Done(Outcome::Ok)));
    assert!(done(&done_actions).is_some());
}

/// Two stale servers (removed members, say) that keep refusing, one with
/// no idea of the leader and one naming the first, must not hold the clerk
/// between them: within a round of refusals it reaches every server, so
/// it finds the real leader.
#[test]
fn stale_servers_that_point_at_each_other_do_not_trap_the_clerk() {
    let s = servers(5);
    for seed in 0..20 {
        let mut c = clerk(5, seed);
        let mut actions = c.step(ClerkInput::Invoke(put("k", "v", 0)));
        let leader = s[0];
        let mut visited = Vec::new();
        for _ in 0..40 {
            if actions.is_empty() {
                actions = c.step(ClerkInput::Tick);
                continue;
            }
            let (to, request) = sent(&actions);
            visited.push(to);
            let response = if to == leader {
                Response::Done(Outcome::Ok)
            } else if to == s[3] {
                wrong_leader(None)
            } else if to == s[4] {
                wrong_leader(Some(s[3]))
            } else {
                wrong_leader(Some(s[4]))
            };
            actions = c.step(reply(to, request.seq, response));
            if done(&actions).is_some() {
                break;
            }
        }
        assert_eq!(
            visited.last(),
            Some(&leader),
            "seed {seed}: the clerk never reached the leader: {visited:?}"
        );
        assert!(visited.len() <= 5, "seed {seed}: {visited:?}");
    }
}

/// Bounded memory (issue 12): a server at its limit of requests in flight
/// answers `Busy` without taking the request. The clerk keeps that server,
/// waits between 1 and RETRY/2 ticks (spread by its seed, so turned-away
/// clients do not return together), sends the same request to it again,
/// and, since the busy server never saw the request, a later ErrVersion is
/// still the exact answer rather than ErrMaybe.
#[test]
fn a_busy_server_is_retried_after_a_back_off_and_busy_is_not_a_resend() {
    let mut waits = std::collections::BTreeSet::new();
    for seed in 0..32 {
        let mut c = clerk(3, seed);
        let (to, r) = sent(&c.step(ClerkInput::Invoke(put("k", "v", 4))));
        assert!(c.step(reply(to, r.seq, Response::Busy)).is_empty());
        let mut ticks = 0;
        let (again, r2) = loop {
            ticks += 1;
            let a = c.step(ClerkInput::Tick);
            if !a.is_empty() {
                break sent(&a);
            }
            assert!(ticks < RETRY, "seed {seed}: no retry within RETRY/2 ticks");
        };
        assert!(ticks <= RETRY / 2, "seed {seed}: waited {ticks} ticks");
        waits.insert(ticks);
        assert_eq!(
            (again, r2.seq),
            (to, r.seq),
            "seed {seed}: same server, same request"
        );
        assert_eq!(c.leader(), Some(to));
        let a = c.step(reply(to, r.seq, Response::Done(Outcome::ErrVersion)));
        assert_eq!(done(&a), Some(Outcome::ErrVersion), "seed {seed}");
    }
    assert!(waits.len() > 1, "back-offs are spread, got only {waits:?}");

    // A late Busy from a server the clerk already left changes nothing.
    let mut c = clerk(3, 5);
    let (first, r) = sent(&c.step(ClerkInput::Invoke(get("k"))));
    let (second, _) = sent(&c.step(reply(first, r.seq, wrong_leader(None))));
    assert_ne!(first, second);
    assert!(c.step(reply(first, r.seq, Response::Busy)).is_empty());
    let a = c.step(reply(second, r.seq, Response::Done(Outcome::ErrNoKey)));
    assert_eq!(done(&a), Some(Outcome::ErrNoKey));
}
