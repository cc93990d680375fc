//! Lab 3D (log compaction), ported from 6.5840 S25 `raft1/raft_test.go`
//! (catalogue §4.2), in virtual time over several seeds. The applier takes a
//! snapshot of its whole history whenever `(index + 1) % 10 == 0`.

use model_tests::sim::lab::{cmd, MAX_LOG_SIZE};
use model_tests::sim::seeds::run_seeds;
use model_tests::sim::{Cluster, SimConfig};

const SEEDS: u64 = 8;
const SNAPSHOT_INTERVAL: u64 = 10;

fn cluster(servers: usize, reliable: bool, seed: u64) -> Cluster {
    let mut config = SimConfig::lab(servers, reliable, seed);
    config.snapshot_interval = Some(SNAPSHOT_INTERVAL);
    Cluster::new(config)
}

fn random_cmd(c: &mut Cluster) -> Vec<u8> {
    cmd(c.rng().next_u64())
}

/// `snapcommon`: 30 rounds of sending 5–14 commands while a victim is
/// disconnected or crashed; persisted Raft state must stay under 2000 bytes,
/// and the victim must catch up (by InstallSnapshot when it fell behind).
fn snapcommon(seed: u64, disconnect: bool, reliable: bool, crash: bool) {
    let servers = 3;
    let mut c = cluster(servers, reliable, seed);
    let x = random_cmd(&mut c);
    c.one(x, servers, true);
    let mut leader1 = c.check_one_leader();
    for i in 0..30 {
        let (mut victim, mut sender) = ((leader1 + 1) % servers, leader1);
        if i % 3 == 1 {
            sender = (leader1 + 1) % servers;
            victim = leader1;
        }
        if disconnect {
            c.disconnect(victim);
            let x = random_cmd(&mut c);
            c.one(x, servers - 1, true);
        }
        if crash {
            c.shutdown(victim);
            let x = random_cmd(&mut c);
            c.one(x, servers - 1, true);
        }
        // Perhaps send enough to get a snapshot.
        let nn = SNAPSHOT_INTERVAL / 2 + c.rng().below(SNAPSHOT_INTERVAL);
        for _ in 0..nn {
            let x = random_cmd(&mut c);
            c.start_cmd(sender, x);
        }
        // Let the applier catch up with the Starts.
        let x = random_cmd(&mut c);
        if !disconnect && !crash {
            // All followers caught up, so no InstallSnapshot is needed.
            c.one(x, servers, true);
        } else {
            c.one(x, servers - 1, true);
        }
        let size = c.max_raft_state_size();
        assert!(
            size < MAX_LOG_SIZE,
            "seed {seed}: log size too large: {size} bytes"
        );
        if disconnect {
            // Reconnect a follower who may be behind and need a snapshot.
            c.connect(victim);
            let x = random_cmd(&mut c);
            c.one(x, servers, true);
            leader1 = c.check_one_leader();
        }
        if crash {
            c.restart(victim);
            let x = random_cmd(&mut c);
            c.one(x, servers, true);
            leader1 = c.check_one_leader();
        }
    }
    if disconnect || crash {
        // The lab leaves this implicit; we make sure the scenario really
        // exercised InstallSnapshot.
        assert!(
            c.net.snapshots_sent > 0,
            "seed {seed}: no InstallSnapshot was ever sent"
        );
    }
    c.check_time_limit();
}

/// TestSnapshotBasic3D.
#[test]
fn snapshot_basic_3d() {
    run_seeds("snapshot_basic_3d", SEEDS, |seed| {
        snapcommon(seed, false, true, false)
    });
}

/// TestSnapshotInstall3D.
#[test]
fn snapshot_install_3d() {
    run_seeds("snapshot_install_3d", SEEDS, |seed| {
        snapcommon(seed, true, true, false)
    });
}

/// TestSnapshotInstallUnreliable3D.
#[test]
fn snapshot_install_unreliable_3d() {
    run_seeds("snapshot_install_unreliable_3d", SEEDS, |seed| {
        snapcommon(seed, true, false, false)
    });
}

/// TestSnapshotInstallCrash3D.
#[test]
fn snapshot_install_crash_3d() {
    run_seeds("snapshot_install_crash_3d", SEEDS, |seed| {
        snapcommon(seed, false, true, true)
    });
}

/// TestSnapshotInstallUnCrash3D.
#[test]
fn snapshot_install_uncrash_3d() {
    run_seeds("snapshot_install_uncrash_3d", SEEDS, |seed| {
        snapcommon(seed, false, false, true)
    });
}

/// TestSnapshotAllCrash3D (unreliable in S25): after crashing and restarting
/// every server, the next agreement lands after the previous one: no index
/// regression after restart from a snapshot.
#[test]
fn snapshot_all_crash_3d() {
    run_seeds("snapshot_all_crash_3d", SEEDS, |seed| {
        let servers = 3;
        let mut c = cluster(servers, false, seed);
        let x = random_cmd(&mut c);
        c.one(x, servers, true);
        for _ in 0..5 {
            // Perhaps enough to get a snapshot.
            let nn = SNAPSHOT_INTERVAL / 2 + c.rng().below(SNAPSHOT_INTERVAL);
            for _ in 0..nn {
                let x = random_cmd(&mut c);
                c.one(x, servers, true);
            }
            let x = random_cmd(&mut c);
            let index1 = c.one(x, servers, true);
            // Crash all.
            for i in 0..servers {
                c.shutdown(i);
            }
            for i in 0..servers {
                c.restart(i);
            }
            let x = random_cmd(&mut c);
            let index2 = c.one(x, servers, true);
            assert!(
                index2.0 > index1.0,
                "seed {seed}: index decreased from {index1} to {index2}"
            );
        }
        c.check_time_limit();
    });
}

/// TestSnapshotInit3D (unreliable in S25): restarting from a snapshot must
/// initialise the in-memory state from it; no state is lost over two full
/// restarts.
#[test]
fn snapshot_init_3d() {
    run_seeds("snapshot_init_3d", SEEDS, |seed| {
        let servers = 3;
        let mut c = cluster(servers, false, seed);
        let x = random_cmd(&mut c);
        c.one(x, servers, true);
        // Enough ops to make a snapshot.
        for _ in 0..SNAPSHOT_INTERVAL + 1 {
            let x = random_cmd(&mut c);
            c.one(x, servers, true);
        }
        for round in 0..2 {
            for i in 0..servers {
                c.shutdown(i);
            }
            for i in 0..servers {
                c.restart(i);
            }
            let x = random_cmd(&mut c);
            c.one(x, servers, true);
            // The snapshot must have been taken and survived the restart.
            assert!(
                (0..servers).all(|i| c.durable(i).snapshot.is_some()),
                "seed {seed}: round {round}: a server restarted without its snapshot"
            );
        }
        c.check_time_limit();
    });
}
