//! Scenario tests of the pure worker.

use core_mr::worker::{Action, ExitReason, Input};
use core_mr::{MapTask, MapTaskId, Reply, Report, Request, TaskRef, Worker};

fn map0() -> MapTask {
    MapTask {
        id: MapTaskId(0),
        file: "f".into(),
        n_reduce: 3,
    }
}

#[test]
fn asks_runs_reports_and_exits() {
    let mut w = Worker::new();
    assert_eq!(
        w.step(Input::Start),
        [Action::Send(Request { report: None })]
    );
    assert_eq!(
        w.step(Input::Reply(Reply::Map(map0()))),
        [Action::RunMap(map0())]
    );
    let t = TaskRef::Map(MapTaskId(0));
    assert_eq!(
        w.step(Input::TaskDone(t)),
        [Action::Send(Request {
            report: Some(Report::Done(t))
        })]
    );
    assert_eq!(w.tasks_done(), 1);
    assert_eq!(
        w.step(Input::Reply(Reply::Exit)),
        [Action::Exit(ExitReason::JobOver)]
    );
    assert!(w.has_exited());
    assert!(w.step(Input::Start).is_empty());
}

#[test]
fn out_of_place_inputs_are_dropped() {
    let mut w = Worker::new();
    assert!(
        w.step(Input::Reply(Reply::Exit)).is_empty(),
        "reply before start"
    );
    w.step(Input::Start);
    w.step(Input::Reply(Reply::Map(map0())));
    // A completion for a task it is not running, and a second reply.
    let other = TaskRef::Map(MapTaskId(9));
    assert!(w.step(Input::TaskDone(other)).is_empty());
    assert!(w.step(Input::Reply(Reply::Exit)).is_empty());
    assert_eq!(
        w.step(Input::CoordinatorGone),
        [Action::Exit(ExitReason::CoordinatorGone)]
    );
}
