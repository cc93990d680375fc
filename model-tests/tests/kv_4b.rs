//! Lab 4B and 4C (the fault-tolerant key/value service on Raft), ported from
//! 6.5840 S25 `kvraft1/kvraft_test.go` (catalogue §5.2), in virtual time over
//! several seeds. Every history is checked for linearizability (an undecided
//! check fails the test), and every replica is checked for exactly-once
//! application after every step.

use core_kv::{KvStore, Op, Outcome, Version};
use model_tests::kvsim::clients::{ClerkClient, History, SequentialPuts};
use model_tests::kvsim::lab::{
    assert_versioned_linearizable, generic_test, run_ops, Generic, RETRY_TICKS,
};
use model_tests::kvsim::{World, WorldConfig};
use model_tests::sim::seeds::run_seeds;
use std::cell::RefCell;
use std::rc::Rc;

const SEEDS: u64 = 3;

fn g(
    clients: usize,
    servers: usize,
    reliable: bool,
    crash: bool,
    partitions: bool,
    max: Option<usize>,
    random_keys: bool,
) -> Generic {
    Generic {
        clients,
        servers,
        reliable,
        crash,
        partitions,
        max_raft_state: max,
        random_keys,
    }
}

fn history() -> History {
    Rc::new(RefCell::new(Vec::new()))
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

macro_rules! generic {
    ($name:ident, $doc:literal, $g:expr) => {
        generic!($name, $doc, $g, SEEDS);
    };
    ($name:ident, $doc:literal, $g:expr, $seeds:expr) => {
        #[doc = $doc]
        #[test]
        fn $name() {
            run_seeds(stringify!($name), $seeds, |seed| {
                generic_test(&$g, seed);
            });
        }
    };
}

generic!(
    basic_4b,
    "TestBasic4B: one client, five servers.",
    g(1, 5, true, false, false, None, false)
);
generic!(
    concurrent_4b,
    "TestConcurrent4B: five clients.",
    g(5, 5, true, false, false, None, false)
);
generic!(
    unreliable_4b,
    "TestUnreliable4B: five clients, unreliable network.",
    g(5, 5, false, false, false, None, false)
);
generic!(
    many_partitions_one_client_4b,
    "TestManyPartitionsOneClient4B.",
    g(1, 5, true, false, true, None, false)
);
generic!(
    many_partitions_many_clients_4b,
    "TestManyPartitionsManyClients4B.",
    g(5, 5, true, false, true, None, false)
);
generic!(
    persist_one_client_4b,
    "TestPersistOneClient4B: every server crashes after each iteration.",
    g(1, 5, true, true, false, None, false)
);
generic!(
    persist_concurrent_4b,
    "TestPersistConcurrent4B.",
    g(5, 5, true, true, false, None, false)
);
generic!(
    persist_concurrent_unreliable_4b,
    "TestPersistConcurrentUnreliable4B.",
    g(5, 5, false, true, false, None, false)
);
generic!(
    persist_partition_4b,
    "TestPersistPartition4B.",
    g(5, 5, true, true, true, None, false)
);
generic!(
    persist_partition_unreliable_4b,
    "TestPersistPartitionUnreliable4B.",
    g(5, 5, false, true, true, None, false)
);
generic!(
    persist_partition_unreliable_linearizable_4b,
    "TestPersistPartitionUnreliableLinearizable4B: 15 clients, 7 servers, 100 keys.",
    g(15, 7, false, true, true, None, true)
);
generic!(
    snapshot_recover_4c,
    "TestSnapshotRecover4C.",
    g(1, 5, true, true, false, Some(1000), false)
);
generic!(
    snapshot_recover_many_clients_4c,
    "TestSnapshotRecoverManyClients4C: 20 clients on one key. Its history takes the checker tens of seconds, so it runs one seed by default (`SIM_SEEDS` for more).",
    g(20, 5, true, true, false, Some(1000), false),
    1
);
generic!(
    snapshot_unreliable_4c,
    "TestSnapshotUnreliable4C.",
    g(5, 5, false, false, false, Some(1000), false)
);
generic!(
    snapshot_unreliable_recover_4c,
    "TestSnapshotUnreliableRecover4C.",
    g(5, 5, false, true, false, Some(1000), false)
);
generic!(
    snapshot_unreliable_recover_concurrent_partition_4c,
    "TestSnapshotUnreliableRecoverConcurrentPartition4C.",
    g(5, 5, false, true, true, Some(1000), false)
);
generic!(
    snapshot_unreliable_recover_concurrent_partition_linearizable_4c,
    "TestSnapshotUnreliableRecoverConcurrentPartitionLinearizable4C: 15 clients, 7 servers, 100 keys.",
    g(15, 7, false, true, true, Some(1000), true)
);

/// GenericTestSpeed: Get (waits for a leader), then 1000 sequential Puts;
/// they must take under 33.3 ms each on average, i.e. commit faster than
/// once per 100 ms heartbeat.
fn speed(seed: u64, max_raft_state: Option<usize>) {
    let mut config = WorldConfig::replicated(3, true, seed);
    config.max_raft_state = max_raft_state;
    let mut w: World<KvStore> = World::new(config);
    let h = history();
    run_ops(&mut w, vec![get("x")], None, &h, 10_000);
    let work = Rc::new(RefCell::new(ClerkClient::new(
        1,
        3,
        RETRY_TICKS,
        seed,
        SequentialPuts::new("k", 1000),
        h.clone(),
    )));
    let t0 = w.now_ms;
    let c = w.add_client(Box::new(work.clone()), None);
    w.run_until_clients_finish(120_000);
    w.remove_client(c);
    let elapsed = w.now_ms - t0;
    let last = run_ops(&mut w, vec![get("k")], None, &h, 10_000);
    assert!(
        matches!(&last[0], Outcome::Value { version, .. } if version.0 == 1000),
        "seed {seed}: final version {:?}",
        last[0]
    );
    assert!(
        elapsed * 3 < 1000 * 100,
        "seed {seed}: 1000 Puts took {elapsed} ms (limit 33 333 ms)"
    );
    eprintln!(
        "seed {seed}: 1000 sequential Puts in {elapsed} virtual ms ({:.1} ms/op)",
        elapsed as f64 / 1000.0
    );
}

/// TestSpeed4B.
#[test]
fn speed_4b() {
    run_seeds("speed_4b", SEEDS, |seed| speed(seed, None));
}

/// TestSpeed4C: the same with snapshots every 1000 bytes.
#[test]
fn speed_4c() {
    run_seeds("speed_4c", SEEDS, |seed| speed(seed, Some(1000)));
}

/// TestOnePartition4B: with the leader in a 2-server minority, clerks there
/// cannot complete a Put or a Get for as long as the partition lasts; after
/// healing, the pending Put completes within 3 s and its value wins.
#[test]
fn one_partition_4b() {
    run_seeds("one_partition_4b", SEEDS, |seed| {
        let servers = 5;
        let mut w: World<KvStore> = World::new(WorldConfig::replicated(servers, false, seed));
        let h = history();
        // PutAtLeastOnce("1", "13").
        let mut ver = 0;
        loop {
            match run_ops(&mut w, vec![put("1", "13", ver)], None, &h, 30_000)[0] {
                Outcome::Ok => break,
                Outcome::ErrMaybe | Outcome::ErrVersion => ver += 1,
                ref o => panic!("seed {seed}: Put returned {o:?}"),
            }
        }
        let ver = ver + 1;
        w.run_for(1000);
        let leader = w.leader().expect("a leader after a successful Put");
        let p1: Vec<usize> = (0..servers).filter(|i| *i != leader).take(3).collect();
        let p2: Vec<usize> = (0..servers).filter(|i| !p1.contains(i)).collect();
        w.partition(&p1, &p2);
        // The majority makes progress.
        assert_eq!(
            run_ops(&mut w, vec![put("1", "14", ver)], Some(&p1), &h, 30_000)[0],
            Outcome::Ok
        );
        let got = run_ops(&mut w, vec![get("1")], Some(&p1), &h, 30_000);
        assert_eq!(
            got[0],
            Outcome::Value {
                value: "14".into(),
                version: Version(ver + 1)
            }
        );
        // Clerks confined to the minority start a Put and a Get.
        let (put15, put_out) = model_tests::kvsim::lab::Script::new(vec![put("1", "15", ver + 1)]);
        let (get1, get_out) = model_tests::kvsim::lab::Script::new(vec![get("1")]);
        let c_put = w.add_client(
            Box::new(ClerkClient::new(
                77,
                servers,
                RETRY_TICKS,
                seed ^ 77,
                put15,
                h.clone(),
            )),
            Some(&p2),
        );
        let c_get = w.add_client(
            Box::new(ClerkClient::new(
                78,
                servers,
                RETRY_TICKS,
                seed ^ 78,
                get1,
                h.clone(),
            )),
            Some(&p2),
        );
        w.run_for(1000);
        assert!(
            put_out.borrow().is_empty(),
            "seed {seed}: a Put completed in the minority"
        );
        assert!(
            get_out.borrow().is_empty(),
            "seed {seed}: a Get completed in the minority"
        );
        // CheckGet 14, and Put 16 in the majority.
        let got = run_ops(&mut w, vec![get("1")], Some(&p1), &h, 30_000);
        assert_eq!(
            got[0],
            Outcome::Value {
                value: "14".into(),
                version: Version(ver + 1)
            }
        );
        // The lab puts "16" here at version ver+1; it then expects the
        // minority's "15" at that same version to win after healing, which
        // only works because its "16" Put uses a stale version (ErrVersion).
        let out16 = run_ops(&mut w, vec![put("1", "16", ver)], Some(&p1), &h, 30_000);
        assert!(
            matches!(out16[0], Outcome::ErrVersion | Outcome::ErrMaybe),
            "seed {seed}: stale Put 16 returned {:?}",
            out16[0]
        );
        // Heal, and let the minority clerks reach everyone.
        w.heal();
        w.set_reach(c_put, &(0..servers).collect::<Vec<_>>());
        w.set_reach(c_get, &(0..servers).collect::<Vec<_>>());
        let t0 = w.now_ms;
        while put_out.borrow().is_empty() {
            assert!(
                w.now_ms - t0 < 3000,
                "seed {seed}: the Put did not complete within 3 s of healing"
            );
            w.run_for(10);
        }
        assert_eq!(
            put_out.borrow()[0],
            Outcome::Ok,
            "seed {seed}: the minority's Put"
        );
        w.run_for(1000);
        let got = run_ops(&mut w, vec![get("1")], None, &h, 30_000);
        assert_eq!(
            got[0],
            Outcome::Value {
                value: "15".into(),
                version: Version(ver + 2)
            }
        );
        assert_versioned_linearizable(&h, seed);
    });
}

/// TestSnapshotRPC4C: a server cut off while 50 Puts commit must catch up
/// by InstallSnapshot; the persisted state stays under 8 × 1000 bytes.
#[test]
fn snapshot_rpc_4c() {
    run_seeds("snapshot_rpc_4c", SEEDS, |seed| {
        let mut config = WorldConfig::replicated(3, true, seed);
        config.max_raft_state = Some(1000);
        let mut w: World<KvStore> = World::new(config);
        let h = history();
        assert_eq!(
            run_ops(&mut w, vec![put("a", "A", 0)], None, &h, 30_000)[0],
            Outcome::Ok
        );
        // A bunch of puts into the majority partition.
        w.partition(&[0, 1], &[2]);
        let puts: Vec<Op> = (0..50)
            .map(|i| put(&i.to_string(), &i.to_string(), 0))
            .collect();
        let out = run_ops(&mut w, puts, Some(&[0, 1]), &h, 60_000);
        assert!(
            out.iter().all(|o| *o == Outcome::Ok),
            "seed {seed}: {out:?}"
        );
        w.run_for(1000);
        assert_eq!(
            run_ops(&mut w, vec![put("b", "B", 0)], Some(&[0, 1]), &h, 30_000)[0],
            Outcome::Ok
        );
        let size = w.max_raft_state_size();
        assert!(
            size <= 8 * 1000,
            "seed {seed}: logs were not trimmed ({size} > 8000)"
        );
        // Now make a group that requires participation of the lagging server.
        w.partition(&[0, 2], &[1]);
        let snapshots_before = w.net.snapshots_sent;
        let out = run_ops(
            &mut w,
            vec![
                put("c", "C", 0),
                put("d", "D", 0),
                get("a"),
                get("b"),
                get("1"),
                get("49"),
            ],
            Some(&[0, 2]),
            &h,
            60_000,
        );
        assert_eq!(&out[..2], &[Outcome::Ok, Outcome::Ok]);
        assert_eq!(
            out[2],
            Outcome::Value {
                value: "A".into(),
                version: Version(1)
            }
        );
        assert_eq!(
            out[3],
            Outcome::Value {
                value: "B".into(),
                version: Version(1)
            }
        );
        assert_eq!(
            out[4],
            Outcome::Value {
                value: "1".into(),
                version: Version(1)
            }
        );
        assert_eq!(
            out[5],
            Outcome::Value {
                value: "49".into(),
                version: Version(1)
            }
        );
        assert!(
            w.net.snapshots_sent > snapshots_before,
            "seed {seed}: server 2 caught up without InstallSnapshot"
        );
        // Now everybody.
        w.heal();
        let out = run_ops(
            &mut w,
            vec![put("e", "E", 0), get("c"), get("e"), get("1")],
            None,
            &h,
            60_000,
        );
        assert_eq!(out[0], Outcome::Ok);
        assert_eq!(
            out[1],
            Outcome::Value {
                value: "C".into(),
                version: Version(1)
            }
        );
        assert_eq!(
            out[2],
            Outcome::Value {
                value: "E".into(),
                version: Version(1)
            }
        );
        assert_eq!(
            out[3],
            Outcome::Value {
                value: "1".into(),
                version: Version(1)
            }
        );
        assert_versioned_linearizable(&h, seed);
    });
}

/// TestSnapshotSize4C: 200 rounds of Put x=0 / Put x=1 with checks keep the
/// persisted Raft state under 8000 bytes and the snapshot under 500 bytes.
#[test]
fn snapshot_size_4c() {
    run_seeds("snapshot_size_4c", SEEDS, |seed| {
        let mut config = WorldConfig::replicated(3, true, seed);
        config.max_raft_state = Some(1000);
        let mut w: World<KvStore> = World::new(config);
        let h = history();
        let mut ops = Vec::new();
        for i in 0..200u64 {
            ops.push(put("x", "0", 2 * i));
            ops.push(get("x"));
            ops.push(put("x", "1", 2 * i + 1));
            ops.push(get("x"));
        }
        let out = run_ops(&mut w, ops, None, &h, 300_000);
        for (i, o) in out.iter().enumerate() {
            let expected = match i % 4 {
                0 | 2 => Outcome::Ok,
                1 => Outcome::Value {
                    value: "0".into(),
                    version: Version(i as u64 / 2 + 1),
                },
                _ => Outcome::Value {
                    value: "1".into(),
                    version: Version(i as u64 / 2 + 1),
                },
            };
            assert_eq!(*o, expected, "seed {seed}: op {i}");
        }
        let size = w.max_raft_state_size();
        assert!(
            size <= 8000,
            "seed {seed}: logs were not trimmed ({size} > 8000)"
        );
        let snap = w.max_snapshot_size();
        assert!(
            snap <= 500,
            "seed {seed}: snapshot too large ({snap} > 500)"
        );
        assert!(snap > 0, "seed {seed}: no snapshot was taken");
    });
}
