//! The classic (S24 / S21) key/value-on-Raft tests with Put/Append/Get
//! (catalogue §5.3): every client's appends must appear exactly once and in
//! order after each iteration, and the history must be linearizable under
//! the classic model.

use core_kv::{KvStore, Op, Outcome};
use model_tests::kvsim::clients::{check_appends, Appender, ClerkClient, History, Stop};
use model_tests::kvsim::lab::{
    generic_classic_test, kv_exactly_once, run_ops, Generic, RETRY_TICKS,
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
) -> Generic {
    Generic {
        clients,
        servers,
        reliable,
        crash,
        partitions,
        max_raft_state: max,
        random_keys: false,
    }
}

macro_rules! classic {
    ($name:ident, $doc:literal, $g:expr) => {
        #[doc = $doc]
        #[test]
        fn $name() {
            run_seeds(stringify!($name), SEEDS, |seed| {
                generic_classic_test(&$g, seed);
            });
        }
    };
}

classic!(
    classic_many_partitions_one_client_4a,
    "TestManyPartitionsOneClient4A (S24).",
    g(1, 5, true, false, true, None)
);
classic!(
    classic_persist_one_client_4a,
    "TestPersistOneClient4A (S24).",
    g(1, 5, true, true, false, None)
);
classic!(
    classic_persist_concurrent_4a,
    "TestPersistConcurrent4A (S24).",
    g(5, 5, true, true, false, None)
);
classic!(
    classic_persist_concurrent_unreliable_4a,
    "TestPersistConcurrentUnreliable4A (S24).",
    g(5, 5, false, true, false, None)
);
classic!(
    classic_persist_partition_4a,
    "TestPersistPartition4A (S24).",
    g(5, 5, true, true, true, None)
);
classic!(
    classic_snapshot_recover_4b,
    "TestSnapshotRecover4B (S24).",
    g(1, 5, true, true, false, Some(1000))
);
classic!(
    classic_snapshot_recover_many_clients_4b,
    "TestSnapshotRecoverManyClients4B (S24): 20 clients.",
    g(20, 5, true, true, false, Some(1000))
);
classic!(
    classic_snapshot_unreliable_4b,
    "TestSnapshotUnreliable4B (S24).",
    g(5, 5, false, false, false, Some(1000))
);
classic!(
    classic_basic_4a,
    "TestBasic4A (S24).",
    g(1, 5, true, false, false, None)
);
classic!(
    classic_concurrent_4a,
    "TestConcurrent4A (S24).",
    g(5, 5, true, false, false, None)
);
classic!(
    classic_unreliable_4a,
    "TestUnreliable4A (S24).",
    g(5, 5, false, false, false, None)
);
classic!(
    classic_many_partitions_many_clients_4a,
    "TestManyPartitionsManyClients4A (S24).",
    g(5, 5, true, false, true, None)
);
classic!(
    classic_persist_partition_unreliable_4a,
    "TestPersistPartitionUnreliable4A (S24).",
    g(5, 5, false, true, true, None)
);
classic!(
    classic_snapshot_unreliable_recover_4b,
    "TestSnapshotUnreliableRecover4B (S24).",
    g(5, 5, false, true, false, Some(1000))
);
classic!(
    classic_snapshot_unreliable_recover_concurrent_partition_4b,
    "TestSnapshotUnreliableRecoverConcurrentPartition4B (S24).",
    g(5, 5, false, true, true, Some(1000))
);

/// TestUnreliableOneKey4A (S24): 3 servers, unreliable network, 5 clients
/// each appending 10 elements to one key; all 50 present exactly once and in
/// per-client order.
#[test]
fn classic_unreliable_one_key_4a() {
    run_seeds("classic_unreliable_one_key_4a", SEEDS, |seed| {
        let mut w: World<KvStore> = World::new(WorldConfig::replicated(3, false, seed));
        w.set_service_check(kv_exactly_once);
        let h: History = Rc::new(RefCell::new(Vec::new()));
        let stop: Stop = Rc::new(RefCell::new(false));
        for c in 0..5u64 {
            let work = Appender::new(c + 1, "k".into(), true, Some(10), stop.clone());
            w.add_client(
                Box::new(ClerkClient::new(
                    c + 1,
                    3,
                    RETRY_TICKS,
                    seed ^ c,
                    work,
                    h.clone(),
                )),
                None,
            );
        }
        w.run_until_clients_finish(120_000);
        let value = match run_ops(&mut w, vec![Op::Get { key: "k".into() }], None, &h, 30_000)[0] {
            Outcome::Value { ref value, .. } => value.clone(),
            ref o => panic!("seed {seed}: Get returned {o:?}"),
        };
        for c in 0..5u64 {
            if let Err(e) = check_appends(&value, c + 1, 10) {
                panic!("seed {seed}: client {}: {e}", c + 1);
            }
        }
        assert_eq!(value.matches(" y").count(), 50, "seed {seed}: {value:?}");
        // Linearizability for an append-only history, exactly and cheaply:
        // an append that returned before another was called must come first
        // in the final value. (The generic search is exponential here: no
        // read pins the order, so every interleaving is a distinct state.)
        let appends: Vec<(u64, u64, usize)> = h
            .borrow()
            .iter()
            .filter_map(|r| match (&r.op, r.ret) {
                (Op::Append { value: element, .. }, Some(ret)) => {
                    let at = value
                        .find(element.as_str())
                        .expect("every element is present");
                    Some((r.call, ret, at))
                }
                _ => None,
            })
            .collect();
        for a in &appends {
            for b in &appends {
                assert!(
                    !(a.1 < b.0 && a.2 > b.2),
                    "seed {seed}: an append that returned at {} ms appears after one called at {} ms",
                    a.1,
                    b.0
                );
            }
        }
    });
}
