//! A whole MapReduce job driven by hand, in memory, to show the sans-IO
//! shape: the coordinator and three workers are plain values; this program
//! plays the network (it carries each `Request` and `Reply`), the clock (it
//! sends `Tick`s) and the file system (a map from file name to contents).
//! One worker "crashes" mid-task to show re-issue after the timeout.
//!
//! Run with `cargo run -p core-mr --example in_memory`.

use core_mr::coordinator::{self, Action as CAction};
use core_mr::hash::partition;
use core_mr::worker::{self, Action as WAction};
use core_mr::{apps, Coordinator, CoordinatorConfig, Reply, TaskRef, Worker, WorkerId};
use std::collections::{BTreeMap, VecDeque};

fn main() {
    let inputs = [
        ("a.txt", "the quick brown fox"),
        ("b.txt", "the lazy dog and the fox"),
        ("c.txt", "a dog is a dog"),
    ];
    let app = apps::builtin("wc").expect("wc is built in");
    let n_reduce = 2;
    let cfg = CoordinatorConfig {
        n_reduce,
        task_timeout_ticks: 5,
        max_task_failures: 3,
    };
    let files = inputs.iter().map(|(n, _)| n.to_string()).collect();
    let mut coord = Coordinator::new(cfg, files).expect("valid job");
    let mut workers: Vec<Worker> = (0..3).map(|_| Worker::new()).collect();
    // "Files": intermediate buckets per (map, reduce), and outputs.
    let mut intermediate: BTreeMap<(u32, u32), Vec<(String, String)>> = BTreeMap::new();
    let mut outputs: BTreeMap<u32, String> = BTreeMap::new();
    // Messages in flight, and the worker we pretend has crashed.
    let mut to_workers: VecDeque<(WorkerId, Reply)> = VecDeque::new();
    let mut to_coord: VecDeque<coordinator::Input> = VecDeque::new();
    let crashed = WorkerId(2);
    for (w, machine) in workers.iter_mut().enumerate() {
        for a in machine.step(worker::Input::Start) {
            if let WAction::Send(request) = a {
                to_coord.push_back(coordinator::Input::Request {
                    worker: WorkerId(w as u64),
                    request,
                });
            }
        }
    }
    for tick in 0.. {
        while let Some(input) = to_coord.pop_front() {
            for a in coord.step(input) {
                match a {
                    CAction::Reply { worker, reply } => to_workers.push_back((worker, reply)),
                    CAction::Reassigned { task, from, reason } => {
                        println!("tick {tick}: {task} taken back from {from} ({reason:?})")
                    }
                    CAction::Finished(outcome) => println!("tick {tick}: job {outcome:?}"),
                }
            }
        }
        while let Some((id, reply)) = to_workers.pop_front() {
            if id == crashed && matches!(reply, Reply::Map(_) | Reply::Reduce(_)) {
                println!("tick {tick}: {id} got {reply:?} and silently dies");
                continue;
            }
            let w = &mut workers[id.0 as usize];
            let mut pending = VecDeque::from([worker::Input::Reply(reply)]);
            while let Some(input) = pending.pop_front() {
                for a in w.step(input) {
                    match a {
                        WAction::Send(request) => to_coord.push_back(coordinator::Input::Request {
                            worker: id,
                            request,
                        }),
                        WAction::RunMap(t) => {
                            let contents = inputs[t.id.0 as usize].1;
                            app.map(&t.file, contents, &mut |k, v| {
                                let y = partition(k, t.n_reduce);
                                intermediate
                                    .entry((t.id.0, y))
                                    .or_default()
                                    .push((k.to_string(), v.to_string()));
                            });
                            pending.push_back(worker::Input::TaskDone(TaskRef::Map(t.id)));
                        }
                        WAction::RunReduce(t) => {
                            let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
                            for ((_, y), kvs) in &intermediate {
                                if *y == t.id.0 {
                                    for (k, v) in kvs {
                                        groups.entry(k.clone()).or_default().push(v.clone());
                                    }
                                }
                            }
                            let mut out = String::new();
                            for (k, vs) in groups {
                                let r = app.reduce(&k, &mut vs.into_iter());
                                out.push_str(&format!("{k} {r}\n"));
                            }
                            outputs.insert(t.id.0, out);
                            pending.push_back(worker::Input::TaskDone(TaskRef::Reduce(t.id)));
                        }
                        WAction::Exit(reason) => println!("tick {tick}: {id} exits ({reason:?})"),
                    }
                }
            }
        }
        if coord.outcome().is_some() && to_coord.is_empty() && to_workers.is_empty() {
            break;
        }
        to_coord.push_back(coordinator::Input::Tick);
    }
    for (y, out) in outputs {
        print!("--- mr-out-{y}\n{out}");
    }
}
