//! The MapReduce coordinator shell, driven with bytes as a driver would:
//! exact scenarios for the handshake, hostile connections and disconnects,
//! then whole jobs over simulated workers with frames cut into random
//! chunks (`SHELL_SEED=<n>` replays one seed).

use core_mr::coordinator::{JobOutcome, Phase};
use core_mr::worker::{Action as WorkerAction, ExitReason, Input as WorkerInput};
use core_mr::{
    Coordinator, CoordinatorConfig, MapTask, MapTaskId, Reply, Report, Request, TaskRef, Worker,
    PROTOCOL_VERSION,
};
use core_raft::rng::SplitMix64;
use node_shell::mr::{Action, ConnId, CoordinatorShell, Input, COORDINATOR_NODE, MAX_FRAME_BYTES};
use serde::Serialize;
use std::collections::BTreeMap;
use wire::{encode_frame, Decoder, HandshakeError, Hello, HELLO_MAGIC};

const CLUSTER: u64 = 42;

fn shell_with(config: CoordinatorConfig, files: usize) -> CoordinatorShell {
    let files = (0..files).map(|i| format!("f{i}")).collect();
    CoordinatorShell::new(Coordinator::new(config, files).unwrap(), CLUSTER)
}

fn shell(files: usize, n_reduce: u32) -> CoordinatorShell {
    let config = CoordinatorConfig {
        n_reduce,
        ..CoordinatorConfig::default()
    };
    shell_with(config, files)
}

fn frame<T: Serialize>(msg: &T) -> Vec<u8> {
    encode_frame(msg, MAX_FRAME_BYTES).unwrap()
}

fn worker_hello() -> Hello {
    Hello::new(PROTOCOL_VERSION, CLUSTER, 7)
}

fn coordinator_hello() -> Vec<u8> {
    frame(&Hello::new(PROTOCOL_VERSION, CLUSTER, COORDINATOR_NODE))
}

fn request(report: Option<Report>) -> Vec<u8> {
    frame(&Request { report })
}

fn map_reply(id: u32, n_reduce: u32) -> Vec<u8> {
    frame(&Reply::Map(MapTask {
        id: MapTaskId(id),
        file: format!("f{id}"),
        n_reduce,
    }))
}

fn recv(shell: &mut CoordinatorShell, conn: u64, bytes: Vec<u8>) -> Vec<Action> {
    shell.step(Input::Received {
        conn: ConnId(conn),
        bytes,
    })
}

/// Accepts `conn`, checks the greeting, sends the worker's hello and a
/// first request; returns what that request produced.
fn join(shell: &mut CoordinatorShell, conn: u64) -> Vec<Action> {
    let greeting = shell.step(Input::Accepted { conn: ConnId(conn) });
    assert_eq!(greeting, vec![write(conn, coordinator_hello())]);
    let mut bytes = frame(&worker_hello());
    bytes.extend(request(None));
    recv(shell, conn, bytes)
}

fn write(conn: u64, bytes: Vec<u8>) -> Action {
    Action::Write {
        conn: ConnId(conn),
        bytes,
    }
}

fn progress(shell: &CoordinatorShell) -> Action {
    Action::Progress(shell.progress())
}

#[test]
fn a_worker_is_greeted_then_given_a_map_task() {
    let mut s = shell(2, 3);
    let got = join(&mut s, 1);
    assert_eq!(got, vec![write(1, map_reply(0, 3)), progress(&s)]);
    assert_eq!(s.progress().map.in_progress, 1);
}

#[test]
fn refused_hellos_close_with_a_reason_naming_the_mismatch() {
    let wrong_cluster = Hello::new(PROTOCOL_VERSION, 8, 7);
    let wrong_version = Hello::new(PROTOCOL_VERSION + 1, CLUSTER, 7);
    let wrong_magic = Hello {
        magic: *b"HTTP",
        ..worker_hello()
    };
    let cases = [
        (
            wrong_cluster,
            HandshakeError::Cluster {
                ours: CLUSTER,
                theirs: 8,
            },
            "cluster id mismatch",
        ),
        (
            wrong_version,
            HandshakeError::Version {
                ours: PROTOCOL_VERSION,
                theirs: PROTOCOL_VERSION + 1,
            },
            "protocol version mismatch",
        ),
        (wrong_magic, HandshakeError::BadMagic(*b"HTTP"), "bad magic"),
    ];
    for (hello, error, words) in cases {
        let mut s = shell(1, 1);
        s.step(Input::Accepted { conn: ConnId(3) });
        let got = recv(&mut s, 3, frame(&hello));
        let reason = error.to_string();
        assert!(reason.contains(words), "{reason}");
        let expected = vec![
            Action::Note(format!("refused connection 3: {reason}")),
            Action::Close {
                conn: ConnId(3),
                reason,
            },
        ];
        assert_eq!(got, expected);
        assert_eq!(s.connections(), 0);
        // What the driver had already read, and the end it reports, are ignored.
        assert_eq!(recv(&mut s, 3, request(None)), vec![]);
        assert_eq!(s.step(Input::Closed { conn: ConnId(3) }), vec![]);
    }
    assert_eq!(HELLO_MAGIC, *b"6824");
}

#[test]
fn garbage_and_oversized_prefixes_close_only_their_connection() {
    let mut s = shell(2, 1);
    join(&mut s, 1);
    for (conn, bytes, len) in [
        (2, b"GET / HTTP/1.0\r\n\r\n".to_vec(), 0x4745_5420u64),
        (3, u32::MAX.to_be_bytes().to_vec(), u64::from(u32::MAX)),
    ] {
        s.step(Input::Accepted { conn: ConnId(conn) });
        let what = format!(
            "connection {conn}: bad handshake: frame of {len} bytes exceeds the maximum of {MAX_FRAME_BYTES} bytes"
        );
        let got = recv(&mut s, conn, bytes);
        let expected = vec![
            Action::Note(format!("dropping {what}")),
            Action::Close {
                conn: ConnId(conn),
                reason: what,
            },
        ];
        assert_eq!(got, expected);
    }
    // The worker is untouched: its report is taken and it gets the next map.
    assert_eq!(s.connections(), 1);
    let got = recv(
        &mut s,
        1,
        request(Some(Report::Done(TaskRef::Map(MapTaskId(0))))),
    );
    assert_eq!(got, vec![write(1, map_reply(1, 1)), progress(&s)]);
}

#[test]
fn an_oversized_frame_from_a_worker_drops_it_and_reissues_its_task() {
    let mut s = shell(1, 1);
    join(&mut s, 1);
    let got = recv(&mut s, 1, u32::MAX.to_be_bytes().to_vec());
    let what = format!(
        "worker-1: frame of {} bytes exceeds the maximum of {MAX_FRAME_BYTES} bytes",
        u32::MAX
    );
    let expected = vec![
        Action::Note(format!("dropping {what}")),
        Action::Close {
            conn: ConnId(1),
            reason: what,
        },
        Action::Note(
            "map 0 taken back from worker-1 (worker disconnected); will be re-issued".into(),
        ),
        progress(&s),
    ];
    assert_eq!(got, expected);
    assert_eq!(s.progress().map.idle, 1);
}

#[test]
fn a_request_before_the_hello_is_a_bad_handshake() {
    let mut s = shell(1, 1);
    s.step(Input::Accepted { conn: ConnId(1) });
    let got = recv(&mut s, 1, request(None));
    assert_eq!(got.len(), 2, "{got:?}");
    let Action::Note(line) = &got[0] else {
        panic!("{got:?}")
    };
    assert!(
        line.starts_with("dropping connection 1: bad handshake: malformed frame payload"),
        "{line}"
    );
    assert!(matches!(
        &got[1],
        Action::Close {
            conn: ConnId(1),
            ..
        }
    ));
    assert_eq!(
        s.progress().waiting_workers,
        0,
        "the request must not reach the core"
    );
}

#[test]
fn a_second_hello_drops_the_worker() {
    let mut s = shell(1, 1);
    s.step(Input::Accepted { conn: ConnId(1) });
    assert_eq!(recv(&mut s, 1, frame(&worker_hello())), vec![]);
    let got = recv(&mut s, 1, frame(&worker_hello()));
    assert_eq!(got.len(), 2, "{got:?}");
    let Action::Note(line) = &got[0] else {
        panic!("{got:?}")
    };
    assert!(
        line.starts_with("dropping worker-1: malformed frame payload"),
        "{line}"
    );
    assert!(matches!(
        &got[1],
        Action::Close {
            conn: ConnId(1),
            ..
        }
    ));
    assert_eq!(s.connections(), 0);
}

#[test]
fn a_disconnected_workers_task_goes_to_a_waiting_worker() {
    let mut s = shell(1, 1);
    join(&mut s, 1);
    let got = join(&mut s, 2);
    assert_eq!(
        got,
        vec![progress(&s)],
        "nothing left to hand out: worker 2 waits"
    );
    let got = s.step(Input::Closed { conn: ConnId(1) });
    let expected = vec![
        Action::Note(
            "map 0 taken back from worker-1 (worker disconnected); will be re-issued".into(),
        ),
        write(2, map_reply(0, 1)),
        progress(&s),
    ];
    assert_eq!(got, expected);
}

#[test]
fn ticks_take_back_a_task_held_too_long() {
    let config = CoordinatorConfig {
        n_reduce: 1,
        task_timeout_ticks: 2,
        ..CoordinatorConfig::default()
    };
    let mut s = shell_with(config, 1);
    join(&mut s, 1);
    assert_eq!(s.step(Input::Tick), vec![]);
    let got = s.step(Input::Tick);
    let expected = vec![
        Action::Note("map 0 taken back from worker-1 (timed out); will be re-issued".into()),
        progress(&s),
    ];
    assert_eq!(got, expected);
}

#[test]
fn ends_of_unknown_or_unjoined_connections_change_nothing() {
    let mut s = shell(1, 1);
    assert_eq!(s.step(Input::Closed { conn: ConnId(9) }), vec![]);
    assert_eq!(recv(&mut s, 9, b"anything".to_vec()), vec![]);
    s.step(Input::Accepted { conn: ConnId(1) });
    assert_eq!(
        recv(&mut s, 1, frame(&worker_hello())[..3].to_vec()),
        vec![]
    );
    assert_eq!(s.step(Input::Closed { conn: ConnId(1) }), vec![]);
    assert_eq!(s.step(Input::Tick), vec![]);
    assert_eq!(s.connections(), 0);
}

#[test]
fn a_reused_connection_id_ends_the_old_connection_first() {
    let mut s = shell(1, 1);
    join(&mut s, 1);
    let got = s.step(Input::Accepted { conn: ConnId(1) });
    let expected = vec![
        Action::Note(
            "map 0 taken back from worker-1 (worker disconnected); will be re-issued".into(),
        ),
        write(1, coordinator_hello()),
        progress(&s),
    ];
    assert_eq!(got, expected);
}

#[test]
fn a_task_that_keeps_failing_fails_the_job() {
    let config = CoordinatorConfig {
        n_reduce: 1,
        max_task_failures: 1,
        ..CoordinatorConfig::default()
    };
    let mut s = shell_with(config, 1);
    join(&mut s, 1);
    let task = TaskRef::Map(MapTaskId(0));
    let failed = Report::Failed {
        task,
        error: "input vanished".into(),
    };
    let got = recv(&mut s, 1, request(Some(failed)));
    let outcome = JobOutcome::Failed {
        task,
        error: "input vanished".into(),
    };
    let expected = vec![
        Action::Note("map 0 taken back from worker-1 (failed); will be re-issued".into()),
        progress(&s),
        Action::Note("job FAILED: map 0 failed repeatedly: input vanished".into()),
        Action::Finished(outcome),
        write(1, frame(&Reply::Exit)),
    ];
    assert_eq!(got, expected);
    assert_eq!(s.progress().phase, Phase::Finished);
}

#[test]
fn a_reply_too_large_to_encode_is_a_note() {
    let huge = "x".repeat(MAX_FRAME_BYTES as usize + 1);
    let core = Coordinator::new(CoordinatorConfig::default(), vec![huge]).unwrap();
    let mut s = CoordinatorShell::new(core, CLUSTER);
    let got = join(&mut s, 1);
    assert_eq!(got.len(), 2, "{got:?}");
    let Action::Note(line) = &got[0] else {
        panic!("{got:?}")
    };
    assert!(
        line.starts_with("cannot send to connection 1: frame of"),
        "{line}"
    );
    assert_eq!(got[1], progress(&s));
}

/// One simulated worker process: the real worker machine, the bytes it has
/// yet to send, and a decoder for what the coordinator sent it.
struct SimWorker {
    core: Worker,
    outbox: Vec<u8>,
    inbox: Decoder,
    greeted: bool,
    /// The task it is running (it finishes when the simulation says so).
    running: Option<TaskRef>,
    /// The task the coordinator believes it holds: from the reply that
    /// handed it out until the report about it has been fully received.
    held: Option<TaskRef>,
    exited: Option<ExitReason>,
    /// Its connection ended (a crash, or going away after exiting).
    gone: bool,
}

impl SimWorker {
    fn new() -> Self {
        let mut w = SimWorker {
            core: Worker::new(),
            outbox: frame(&worker_hello()),
            inbox: Decoder::new(MAX_FRAME_BYTES),
            greeted: false,
            running: None,
            held: None,
            exited: None,
            gone: false,
        };
        w.step(WorkerInput::Start);
        w
    }

    fn step(&mut self, input: WorkerInput) {
        for action in self.core.step(input) {
            let task = match action {
                WorkerAction::Send(r) => {
                    self.outbox.extend(frame(&r));
                    continue;
                }
                WorkerAction::RunMap(t) => TaskRef::Map(t.id),
                WorkerAction::RunReduce(t) => TaskRef::Reduce(t.id),
                WorkerAction::Exit(reason) => {
                    self.exited = Some(reason);
                    continue;
                }
            };
            self.running = Some(task);
            self.held = Some(task);
        }
    }

    /// Takes the coordinator's bytes; frames must decode, the hello first.
    fn deliver(&mut self, bytes: &[u8]) {
        self.inbox.push(bytes);
        if !self.greeted {
            let hello: Option<Hello> = self.inbox.next_message().unwrap();
            let ours = Hello::new(PROTOCOL_VERSION, CLUSTER, COORDINATOR_NODE);
            assert_eq!(hello, Some(ours));
            self.greeted = true;
        }
        while let Some(reply) = self.inbox.next_message::<Reply>().unwrap() {
            self.step(WorkerInput::Reply(reply));
        }
    }
}

/// What a seeded job produced, for the checks and the determinism check.
#[derive(Debug, PartialEq, Eq)]
struct Run {
    trace: Vec<Action>,
    finished: Vec<JobOutcome>,
}

/// A whole job: workers join at random times, their bytes arrive in random
/// chunks, tasks finish in random order, some workers crash and are
/// replaced, ticks re-issue slow tasks (in half the seeds), and a stranger
/// sends random bytes throughout.
struct Sim {
    rng: SplitMix64,
    shell: CoordinatorShell,
    workers: BTreeMap<u64, SimWorker>,
    /// Workers alive at once once all have joined.
    n_workers: usize,
    crashes_left: u32,
    /// Whether the task timeout can fire within a run.
    timeouts: bool,
    run: Run,
}

const STRANGER: ConnId = ConnId(1_000_000);

impl Sim {
    fn new(seed: u64) -> Sim {
        let mut rng = SplitMix64::new(seed);
        let timeouts = rng.range_inclusive(0, 1) == 0;
        let config = CoordinatorConfig {
            n_reduce: rng.range_inclusive(1, 4) as u32,
            task_timeout_ticks: if timeouts {
                rng.range_inclusive(3, 40)
            } else {
                u64::MAX
            },
            max_task_failures: 3,
        };
        let n_files = rng.range_inclusive(1, 6) as usize;
        let mut shell = shell_with(config, n_files);
        shell.step(Input::Accepted { conn: STRANGER });
        Sim {
            n_workers: rng.range_inclusive(1, 4) as usize,
            crashes_left: rng.range_inclusive(0, 3) as u32,
            rng,
            shell,
            workers: BTreeMap::new(),
            timeouts,
            run: Run {
                trace: Vec::new(),
                finished: Vec::new(),
            },
        }
    }

    fn live(&self) -> impl Iterator<Item = (&u64, &SimWorker)> {
        self.workers
            .iter()
            .filter(|(_, w)| !w.gone || w.exited.is_some())
    }

    fn done(&self) -> bool {
        self.live().count() == self.n_workers && self.live().all(|(_, w)| w.exited.is_some())
    }

    /// A random live worker for which `want` holds.
    fn pick(&mut self, want: impl Fn(&SimWorker) -> bool) -> Option<u64> {
        let fits: Vec<u64> = self
            .workers
            .iter()
            .filter(|(_, w)| !w.gone && want(w))
            .map(|(c, _)| *c)
            .collect();
        let i = self.rng.range_inclusive(0, 1 << 16) as usize;
        fits.get(i % fits.len().max(1)).copied()
    }

    /// The next thing that happens to the coordinator, if anything.
    fn next_input(&mut self) -> Option<Input> {
        match self.rng.range_inclusive(0, 10) {
            0 => Some(Input::Tick),
            1..=5 => {
                let conn = self.pick(|w| !w.outbox.is_empty())?;
                let w = self.workers.get_mut(&conn).unwrap();
                let len = self.rng.range_inclusive(1, w.outbox.len().min(24) as u64) as usize;
                let bytes: Vec<u8> = w.outbox.drain(..len).collect();
                if w.outbox.is_empty() && w.running.is_none() {
                    w.held = None; // Its report is complete with these bytes.
                }
                Some(Input::Received {
                    conn: ConnId(conn),
                    bytes,
                })
            }
            6 | 7 => {
                let conn = self.pick(|w| w.running.is_some())?;
                let w = self.workers.get_mut(&conn).unwrap();
                let task = w.running.take().unwrap();
                w.step(WorkerInput::TaskDone(task));
                None
            }
            8 => {
                let bytes = (0..self.rng.range_inclusive(1, 8))
                    .map(|_| self.rng.next_u64() as u8)
                    .collect();
                Some(Input::Received {
                    conn: STRANGER,
                    bytes,
                })
            }
            9 if self.live().count() < self.n_workers => {
                let conn = self.workers.len() as u64 + 1;
                self.workers.insert(conn, SimWorker::new());
                Some(Input::Accepted { conn: ConnId(conn) })
            }
            10 if self.crashes_left > 0 => self.crash(),
            _ => None,
        }
    }

    /// A worker dies; when the coordinator knew it held a task, that task
    /// must be named as re-issued in the very step that learns of the end.
    fn crash(&mut self) -> Option<Input> {
        let conn = self.pick(|w| w.greeted && w.exited.is_none())?;
        self.crashes_left -= 1;
        let w = self.workers.get_mut(&conn).unwrap();
        w.gone = true;
        let held = w.held;
        let input = Input::Closed { conn: ConnId(conn) };
        let actions = self.apply(input);
        let reissued = |t: TaskRef| {
            format!("{t} taken back from worker-{conn} (worker disconnected); will be re-issued")
        };
        let notes: Vec<&Action> = actions
            .iter()
            .filter(|a| matches!(a, Action::Note(_)))
            .collect();
        match held {
            Some(t) if !self.timeouts && self.run.finished.is_empty() => {
                assert_eq!(notes, vec![&Action::Note(reissued(t))]);
            }
            Some(t) => assert!(
                notes.iter().all(|n| **n == Action::Note(reissued(t))),
                "{notes:?}"
            ),
            None => assert!(notes.is_empty(), "{notes:?}"),
        }
        None
    }

    /// Steps the shell and plays its actions out on the simulated world.
    fn apply(&mut self, input: Input) -> Vec<Action> {
        let actions = self.shell.step(input);
        for action in &actions {
            match action {
                Action::Write { conn, .. } if *conn == STRANGER => {}
                Action::Write { conn, bytes } => {
                    let w = self
                        .workers
                        .get_mut(&conn.0)
                        .expect("writes go to known workers");
                    assert!(!w.gone, "a write to a connection that ended");
                    w.deliver(bytes);
                }
                Action::Close { conn, .. } => {
                    assert_eq!(*conn, STRANGER, "only the stranger is dropped")
                }
                Action::Finished(outcome) => self.run.finished.push(outcome.clone()),
                Action::Note(_) | Action::Progress(_) => {}
            }
        }
        self.run.trace.extend(actions.iter().cloned());
        // A worker told to exit goes away, as the real one does.
        let exited: Vec<u64> = self
            .workers
            .iter()
            .filter(|(_, w)| w.exited.is_some() && !w.gone)
            .map(|(c, _)| *c)
            .collect();
        for conn in exited {
            self.workers.get_mut(&conn).unwrap().gone = true;
            self.apply(Input::Closed { conn: ConnId(conn) });
        }
        actions
    }
}

fn run_job(seed: u64) -> Run {
    let mut sim = Sim::new(seed);
    for _ in 0..200_000 {
        if sim.done() {
            break;
        }
        if let Some(input) = sim.next_input() {
            sim.apply(input);
        }
    }
    assert!(sim.done(), "the job did not end within the step budget");
    let p = sim.shell.progress();
    assert_eq!(p.phase, Phase::Finished);
    assert!(
        p.map.done > 0 && p.map.idle + p.map.in_progress == 0,
        "{p:?}"
    );
    assert!(p.reduce.idle + p.reduce.in_progress == 0, "{p:?}");
    for (_, w) in sim.live() {
        assert_eq!(w.exited, Some(ExitReason::JobOver));
    }
    sim.run
}

#[test]
fn seeded_jobs_over_random_chunkings_finish() {
    let seeds: Vec<u64> = match std::env::var("SHELL_SEED") {
        Ok(s) => vec![s.parse().expect("SHELL_SEED must be a number")],
        Err(_) => (0..300).collect(),
    };
    for seed in seeds {
        let result = std::panic::catch_unwind(|| {
            let run = run_job(seed);
            assert_eq!(
                run.finished,
                vec![JobOutcome::Succeeded],
                "one outcome, success"
            );
            assert_eq!(run, run_job(seed), "the same seed gives the same actions");
        });
        if let Err(panic) = result {
            eprintln!("failing seed; replay with SHELL_SEED={seed} cargo test -p node-shell --test mr_shell");
            std::panic::resume_unwind(panic);
        }
    }
}
