//! Paper-style tests of [`KvStore`]: the versioned-Put rules of lab 2
//! (spec `lab-tests.md` §3.1), the classic Set/Append of §3.4, and the
//! exactly-once session table that issue 4 asks for (one bounded entry per
//! client, surviving snapshots).

use core_kv::{ClientId, ClientRequest, KvStore, Op, Outcome, Seq, Version};
use core_raft::rng::SplitMix64;

fn req(client: u64, seq: u64, op: Op) -> ClientRequest {
    ClientRequest {
        client: ClientId(client),
        seq: Seq(seq),
        op,
    }
}

fn put(key: &str, value: &str, version: u64) -> Op {
    Op::Put {
        key: key.into(),
        value: value.into(),
        version: Version(version),
    }
}

fn set(key: &str, value: &str) -> Op {
    Op::Set {
        key: key.into(),
        value: value.into(),
    }
}

fn append(key: &str, value: &str) -> Op {
    Op::Append {
        key: key.into(),
        value: value.into(),
    }
}

fn get(key: &str) -> Op {
    Op::Get { key: key.into() }
}

/// What clients can observe of a store: the reads of `keys` and the number
/// of session entries. (Whole-store equality would also compare bookkeeping
/// such as counters, which retries are allowed to move.)
fn observe(s: &KvStore, keys: &[&str]) -> (Vec<Outcome>, usize) {
    (keys.iter().map(|k| s.read(&get(k))).collect(), s.sessions())
}

fn value(v: &str, version: u64) -> Outcome {
    Outcome::Value {
        value: v.into(),
        version: Version(version),
    }
}

/// §3.1 `Put(k,v,ver)`, absent key: `ver == 0` creates the key at version 1
/// and answers OK.
#[test]
fn put_version_zero_creates_an_absent_key_at_version_one() {
    let mut s = KvStore::new();
    assert_eq!(s.apply(&req(1, 1, put("k", "6.5840", 0))), Outcome::Ok);
    assert_eq!(s.read(&get("k")), value("6.5840", 1));
    assert_eq!(s.len(), 1);
}

/// §3.1 `Put(k,v,ver)`, absent key: `ver > 0` answers ErrNoKey and creates
/// nothing (TestReliablePut: "Put y@1 returns ErrNoKey, Get y returns ErrNoKey").
#[test]
fn put_nonzero_version_on_an_absent_key_is_err_no_key_and_creates_nothing() {
    let mut s = KvStore::new();
    for ver in [1, 2, u64::MAX] {
        assert_eq!(s.apply(&req(1, ver, put("y", "v", ver))), Outcome::ErrNoKey);
    }
    assert_eq!(s.read(&get("y")), Outcome::ErrNoKey);
    assert!(s.is_empty());
}

/// §3.1: a Put at the key's current version installs the value and bumps
/// the version by exactly one, every time.
#[test]
fn put_at_the_current_version_installs_and_increments() {
    let mut s = KvStore::new();
    for v in 0..50u64 {
        let text = format!("value{v}");
        assert_eq!(s.apply(&req(1, v + 1, put("k", &text, v))), Outcome::Ok);
        assert_eq!(s.read(&get("k")), value(&text, v + 1));
    }
}

/// §3.1: a Put at any other version (older, newer, or 0 on an existing key)
/// answers ErrVersion and changes neither the value nor the version.
#[test]
fn put_at_another_version_is_err_version_and_changes_nothing() {
    let mut s = KvStore::new();
    s.apply(&req(1, 1, put("k", "a", 0)));
    s.apply(&req(1, 2, put("k", "b", 1)));
    s.apply(&req(1, 3, put("k", "c", 2)));
    // Now at version 3.
    for (seq, ver) in (4..).zip([0, 1, 2, 4, 5, 1000, u64::MAX]) {
        assert_eq!(
            s.apply(&req(2, seq, put("k", "bad", ver))),
            Outcome::ErrVersion,
            "Put at version {ver} of a key at version 3"
        );
        assert_eq!(s.read(&get("k")), value("c", 3));
    }
}

/// §3.1 `Get(k)`: ErrNoKey for an absent key; (value, version) otherwise.
/// TestReliablePut, step by step.
#[test]
fn lab_reliable_put_sequence() {
    let mut s = KvStore::new();
    assert_eq!(s.apply(&req(1, 1, put("k", "6.5840", 0))), Outcome::Ok);
    assert_eq!(s.apply(&req(1, 2, get("k"))), value("6.5840", 1));
    assert_eq!(s.apply(&req(1, 3, put("k", "x", 0))), Outcome::ErrVersion);
    assert_eq!(s.apply(&req(1, 4, put("y", "x", 1))), Outcome::ErrNoKey);
    assert_eq!(s.apply(&req(1, 5, get("y"))), Outcome::ErrNoKey);
}

/// Keys are independent: versions and values of one key never move because
/// of operations on another.
#[test]
fn keys_are_independent() {
    let mut s = KvStore::new();
    s.apply(&req(1, 1, put("a", "1", 0)));
    s.apply(&req(1, 2, put("b", "1", 0)));
    s.apply(&req(1, 3, put("b", "2", 1)));
    s.apply(&req(1, 4, append("c", "x")));
    assert_eq!(s.read(&get("a")), value("1", 1));
    assert_eq!(s.read(&get("b")), value("2", 2));
    assert_eq!(s.read(&get("c")), value("x", 1));
}

/// §3.4 (classic Put): Set installs unconditionally, creating absent keys,
/// and (in this crate) counts as a new version, so versioned Puts after it
/// see a consistent version.
#[test]
fn set_is_unconditional_and_bumps_the_version() {
    let mut s = KvStore::new();
    assert_eq!(s.apply(&req(1, 1, set("k", "a"))), Outcome::Ok);
    assert_eq!(s.read(&get("k")), value("a", 1));
    assert_eq!(s.apply(&req(1, 2, set("k", "b"))), Outcome::Ok);
    assert_eq!(s.read(&get("k")), value("b", 2));
    assert_eq!(s.apply(&req(1, 3, put("k", "c", 1))), Outcome::ErrVersion);
    assert_eq!(s.apply(&req(1, 4, put("k", "c", 2))), Outcome::Ok);
    assert_eq!(s.read(&get("k")), value("c", 3));
    assert_eq!(s.apply(&req(1, 5, set("k", ""))), Outcome::Ok);
    assert_eq!(s.read(&get("k")), value("", 4));
}

/// §3.4 (classic Append): an absent key counts as ""; appends concatenate in
/// application order; each bumps the version.
#[test]
fn append_concatenates_from_empty() {
    let mut s = KvStore::new();
    for (i, piece) in ["x 0 0 y", "x 0 1 y", "", "x 0 2 y"].iter().enumerate() {
        assert_eq!(
            s.apply(&req(1, i as u64 + 1, append("k", piece))),
            Outcome::Ok
        );
    }
    assert_eq!(s.read(&get("k")), value("x 0 0 yx 0 1 yx 0 2 y", 4));
    // An Append after a versioned Put keeps one version sequence.
    assert_eq!(s.apply(&req(1, 10, put("k", "p", 4))), Outcome::Ok);
    assert_eq!(s.apply(&req(1, 11, append("k", "q"))), Outcome::Ok);
    assert_eq!(s.read(&get("k")), value("pq", 6));
}

/// Issue 4, exactly-once: a retry of the latest mutation of a client (same
/// client, same seq) is answered with the original outcome and never applied
/// again, for every mutation kind and every outcome (Ok, ErrVersion, ErrNoKey).
#[test]
fn a_retry_of_every_mutation_kind_is_applied_once_with_the_original_answer() {
    let mut s = KvStore::new();
    let cases: Vec<(Op, Outcome)> = vec![
        (put("k", "a", 0), Outcome::Ok),
        (put("k", "b", 1), Outcome::Ok),
        (put("k", "zz", 1), Outcome::ErrVersion),
        (put("absent", "zz", 3), Outcome::ErrNoKey),
        (set("k", "s"), Outcome::Ok),
        (append("k", "+"), Outcome::Ok),
        (append("fresh", "+"), Outcome::Ok),
    ];
    let mut seq = 0;
    for (op, expected) in cases {
        seq += 1;
        let r = req(42, seq, op.clone());
        let first = s.apply(&r);
        assert_eq!(first, expected, "{op:?}");
        let keys = ["k", "absent", "fresh"];
        let after_first = observe(&s, &keys);
        for _ in 0..5 {
            assert_eq!(s.apply(&r), expected, "retry of {op:?}");
        }
        assert_eq!(
            observe(&s, &keys),
            after_first,
            "a retry of {op:?} changed the store"
        );
    }
    assert_eq!(s.read(&get("k")), value("s+", 4));
    assert_eq!(s.read(&get("fresh")), value("+", 1));
    assert_eq!(s.sessions(), 1);
}

/// Issue 4, exactly-once: a delayed duplicate of an *older* request (the
/// client has since moved on) is never applied, whatever its kind; its answer
/// is not the original (the client no longer listens) and is ErrMaybe.
#[test]
fn an_older_duplicate_is_never_applied() {
    let mut s = KvStore::new();
    let old = [
        req(7, 1, put("k", "a", 0)),
        req(7, 2, append("k", "b")),
        req(7, 3, set("k2", "c")),
        req(7, 4, append("k", "d")),
    ];
    for r in &old {
        assert_eq!(s.apply(r), Outcome::Ok);
    }
    let before = observe(&s, &["k", "k2"]);
    for r in old.iter().take(3).rev() {
        assert_eq!(s.apply(r), Outcome::ErrMaybe, "{r:?}");
    }
    assert_eq!(observe(&s, &["k", "k2"]), before);
    assert_eq!(s.read(&get("k")), value("abd", 3));
}

/// Issue 4, exactly-once under a hostile network: several clients whose
/// requests arrive with random duplication and reordering (but each client
/// has at most one request outstanding, so a newer request only arrives after
/// the older one was answered) apply every append exactly once, in each
/// client's order (§3.4 `checkClntAppends`). Seeded; the seed is printed.
#[test]
fn random_duplicates_and_reordering_apply_each_append_exactly_once() {
    for seed in 0..50u64 {
        let mut rng = SplitMix64::new(seed);
        let mut s = KvStore::new();
        let clients = 5u64;
        let per_client = 20u64;
        // Every request ever sent, which the network may redeliver at any time.
        let mut sent: Vec<ClientRequest> = Vec::new();
        let mut next = vec![1u64; clients as usize];
        while next.iter().any(|n| *n <= per_client) {
            let roll = rng.next_u64() % 10;
            if roll < 4 && !sent.is_empty() {
                // A duplicate of any earlier request, in any order.
                let r = sent[(rng.next_u64() % sent.len() as u64) as usize].clone();
                let before = s.read(&get(&format!("k{}", r.client.0)));
                let outcome = s.apply(&r);
                assert!(
                    matches!(outcome, Outcome::Ok | Outcome::ErrMaybe),
                    "seed {seed}: duplicate {r:?} got {outcome:?}"
                );
                assert_eq!(
                    s.read(&get(&format!("k{}", r.client.0))),
                    before,
                    "seed {seed}: a duplicate changed the store"
                );
                continue;
            }
            let c = rng.next_u64() % clients;
            let j = next[c as usize];
            if j > per_client {
                continue;
            }
            let r = req(c, j, append(&format!("k{c}"), &format!("x {c} {j} y;")));
            assert_eq!(s.apply(&r), Outcome::Ok, "seed {seed}");
            sent.push(r);
            next[c as usize] += 1;
        }
        for c in 0..clients {
            let expected: String = (1..=per_client).map(|j| format!("x {c} {j} y;")).collect();
            assert_eq!(
                s.read(&get(&format!("k{c}"))),
                value(&expected, per_client),
                "seed {seed}: client {c}'s appends"
            );
        }
        assert_eq!(s.sessions(), clients as usize);
    }
}

/// Issue 4: "the server keeps one bounded entry per client": however many
/// requests a client sends, it has one session entry.
#[test]
fn one_session_entry_per_client() {
    let mut s = KvStore::new();
    for seq in 1..=1000 {
        s.apply(&req(1, seq, append("k", "x")));
        s.apply(&req(2, seq, set("j", &seq.to_string())));
    }
    assert_eq!(s.sessions(), 2);
}

/// §3.1 "there must be no per-client state" for readers (and §3.4
/// TestMemGetManyClients): Gets create no session entry, whether sent with
/// fresh ids or interleaved with a client's mutations, and do not disturb a
/// client's session (a retry after a Get is still deduplicated).
#[test]
fn reads_leave_no_session_state() {
    let mut s = KvStore::new();
    for c in 0..10_000 {
        s.apply(&req(c, 1, get("k")));
    }
    assert_eq!(s.sessions(), 0);
    let w = req(1, 1, append("k", "a"));
    s.apply(&w);
    s.apply(&req(1, 2, get("k")));
    s.apply(&req(1, 3, get("nope")));
    assert_eq!(s.sessions(), 1);
    // The Gets (seq 2, 3) did not move the session forward: a retry of seq 1
    // is still answered from the table, not reported as an old duplicate.
    assert_eq!(s.apply(&w), Outcome::Ok);
    assert_eq!(s.read(&get("k")), value("a", 1));
}

/// `read` answers only reads: a mutation passed to it is refused with
/// ErrVersion and never applied.
#[test]
fn read_never_mutates() {
    let mut s = KvStore::new();
    s.apply(&req(1, 1, put("k", "a", 0)));
    let before = s.clone();
    assert_eq!(s.read(&put("k", "b", 1)), Outcome::ErrVersion);
    assert_eq!(s.read(&append("k", "b")), Outcome::ErrVersion);
    assert_eq!(s.read(&set("k", "b")), Outcome::ErrVersion);
    assert_eq!(s, before);
}

/// Issue 4: the client table survives snapshots. After a round trip the
/// store is equal, a retry of each client's latest request is still answered
/// from the table (not applied again), and an older duplicate is still refused.
#[test]
fn the_session_table_survives_a_snapshot_round_trip() {
    let mut s = KvStore::new();
    s.apply(&req(1, 1, append("k", "a")));
    s.apply(&req(1, 2, append("k", "b")));
    s.apply(&req(2, 1, put("v", "x", 0)));
    s.apply(&req(3, 9, put("v", "y", 0))); // ErrVersion, remembered too
    let bytes = s.to_snapshot();
    let mut back = KvStore::from_snapshot(&bytes).expect("round trip");
    assert_eq!(back, s);
    assert_eq!(back.sessions(), 3);
    assert_eq!(back.to_snapshot(), bytes, "snapshots are canonical");
    assert_eq!(back.apply(&req(1, 2, append("k", "b"))), Outcome::Ok);
    assert_eq!(back.apply(&req(1, 1, append("k", "a"))), Outcome::ErrMaybe);
    assert_eq!(back.apply(&req(2, 1, put("v", "x", 0))), Outcome::Ok);
    assert_eq!(
        back.apply(&req(3, 9, put("v", "y", 0))),
        Outcome::ErrVersion
    );
    assert_eq!(
        observe(&back, &["k", "v"]),
        observe(&s, &["k", "v"]),
        "no retry was applied after the restore"
    );
}

/// Issue 4 (lab 4C): a replica restored from a snapshot taken in the middle
/// of a stream of requests, then fed the rest of the stream including
/// duplicates of requests from before the snapshot, ends in exactly the state
/// of a replica that never snapshotted.
#[test]
fn a_restore_from_a_mid_stream_snapshot_continues_exactly_once() {
    for seed in 0..20u64 {
        let mut rng = SplitMix64::new(seed);
        let mut stream = Vec::new();
        let mut next = [1u64; 4];
        for _ in 0..200 {
            let c = (rng.next_u64() % 4) as usize;
            let op = match rng.next_u64() % 3 {
                0 => append("k", &format!("{c}.{};", next[c])),
                1 => set(&format!("s{c}"), &next[c].to_string()),
                _ => put("p", &format!("{c}"), rng.next_u64() % 5),
            };
            let r = req(c as u64, next[c], op);
            next[c] += 1;
            stream.push(r.clone());
            // The network duplicates some requests right away, some later.
            if rng.next_u64() % 3 == 1 {
                stream.push(r);
            }
        }
        // Late duplicates of early requests after the cut.
        let cut = stream.len() / 2;
        let mut late: Vec<ClientRequest> = stream[..cut]
            .iter()
            .filter(|_| rng.next_u64() % 4 == 1)
            .cloned()
            .collect();
        late.extend(stream[cut..].iter().cloned());

        let mut reference = KvStore::new();
        for r in &stream {
            reference.apply(r);
        }
        let mut first = KvStore::new();
        for r in &stream[..cut] {
            first.apply(r);
        }
        let mut restored = KvStore::from_snapshot(&first.to_snapshot()).unwrap();
        for r in &late {
            restored.apply(r);
        }
        let keys = ["k", "s0", "s1", "s2", "s3", "p"];
        assert_eq!(
            observe(&restored, &keys),
            observe(&reference, &keys),
            "seed {seed}"
        );
        // Same session tables: replaying the whole stream (all duplicates
        // now) answers identically on both and changes neither.
        for r in &stream {
            assert_eq!(restored.apply(r), reference.apply(r), "seed {seed}: {r:?}");
        }
        assert_eq!(
            observe(&restored, &keys),
            observe(&reference, &keys),
            "seed {seed}"
        );
    }
}

/// DESIGN.md "hostile input is normal": every strict prefix of a snapshot
/// (a torn write) is rejected with an error, never a panic and never a
/// silently smaller store.
#[test]
fn every_truncated_snapshot_is_rejected() {
    let mut s = KvStore::new();
    s.apply(&req(1, 1, put("key", "value", 0)));
    s.apply(&req(2, 5, append("other", "text")));
    s.apply(&req(300, 1, set("x", "")));
    let bytes = s.to_snapshot();
    for len in 0..bytes.len() {
        let err = KvStore::from_snapshot(&bytes[..len]);
        assert!(
            err.is_err(),
            "a {len}-byte prefix of a {}-byte snapshot decoded",
            bytes.len()
        );
        let msg = err.unwrap_err().to_string();
        assert!(msg.contains("corrupt"), "{msg}");
    }
}

/// DESIGN.md "hostile input is normal": random bytes, bit flips of a real
/// snapshot, and huge length prefixes decode to an error or to some store,
/// never a panic or an allocation the input cannot back.
#[test]
fn garbage_snapshots_never_panic() {
    let mut s = KvStore::new();
    for c in 0..20 {
        s.apply(&req(c, 1, append(&format!("k{c}"), "some text")));
    }
    let good = s.to_snapshot();
    let mut rng = SplitMix64::new(7);
    for round in 0..20_000 {
        let bytes: Vec<u8> = if round % 2 == 0 {
            let len = (rng.next_u64() % 64) as usize;
            (0..len).map(|_| rng.next_u64() as u8).collect()
        } else {
            let mut b = good.clone();
            for _ in 0..1 + rng.next_u64() % 4 {
                let i = (rng.next_u64() % b.len() as u64) as usize;
                b[i] ^= 1 << (rng.next_u64() % 8);
            }
            b
        };
        let _ = KvStore::from_snapshot(&bytes);
    }
    // A map length of 2^63 and a string length of 2^63 with no bytes behind them.
    let huge = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f];
    assert!(KvStore::from_snapshot(&huge).is_err());
    let mut huge_string = vec![1u8];
    huge_string.extend_from_slice(&huge);
    assert!(KvStore::from_snapshot(&huge_string).is_err());
}

/// DESIGN.md "hostile input is normal" ("never serve data that failed its
/// checksum" in spirit): a snapshot with bytes after the encoded store is
/// not what [`KvStore::to_snapshot`] wrote, so it is rejected rather than
/// silently restored from its prefix.
#[test]
fn a_snapshot_with_trailing_bytes_is_rejected() {
    let mut s = KvStore::new();
    s.apply(&req(1, 1, set("a", "b")));
    let good = s.to_snapshot();
    for extra in [&[0u8][..], &[1, 2, 3, 4], &good] {
        let mut bytes = good.clone();
        bytes.extend_from_slice(extra);
        assert!(
            KvStore::from_snapshot(&bytes).is_err(),
            "{} trailing bytes accepted",
            extra.len()
        );
    }
}
