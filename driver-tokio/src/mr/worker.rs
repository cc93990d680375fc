//! A worker as a tokio client. Tasks run on the blocking pool with the
//! shared, runtime-neutral task code.

use super::framed::read_message;
use core_mr::worker::{Action, Input};
use core_mr::{App, Reply, Worker, PROTOCOL_VERSION};
use driver_threads::mr::error::WorkerError;
use driver_threads::mr::options::{WorkerOptions, MAX_FRAME_BYTES};
use driver_threads::mr::task::execute;
use driver_threads::mr::worker::{worker_node_id, WorkerSummary};
use std::collections::VecDeque;
use std::io;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::Instant;
use wire::{encode_frame, Decoder, Hello};

async fn connect_with_retry(addr: &str, timeout: Duration) -> Result<TcpStream, WorkerError> {
    let deadline = Instant::now() + timeout;
    loop {
        let attempt =
            match tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(addr)).await {
                Ok(r) => r,
                Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "connect timed out")),
            };
        match attempt {
            Ok(s) => return Ok(s),
            Err(source) if Instant::now() >= deadline => {
                return Err(WorkerError::Connect {
                    addr: addr.to_string(),
                    source,
                })
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Runs a worker until the job is over or the coordinator is gone.
pub async fn run_worker(
    app: Arc<dyn App>,
    opts: &WorkerOptions,
) -> Result<WorkerSummary, WorkerError> {
    let mut stream = connect_with_retry(&opts.coordinator, opts.connect_timeout).await?;
    let _ = stream.set_nodelay(true);
    let hello = Hello::new(PROTOCOL_VERSION, opts.cluster, worker_node_id());
    let frame =
        encode_frame(&hello, MAX_FRAME_BYTES).map_err(|e| WorkerError::Handshake(e.to_string()))?;
    stream
        .write_all(&frame)
        .await
        .map_err(|e| WorkerError::Handshake(e.to_string()))?;
    let mut decoder = Decoder::new(MAX_FRAME_BYTES);
    let peer: Hello = match read_message(&mut stream, &mut decoder).await {
        Ok(Some(h)) => h,
        Ok(None) => {
            return Err(WorkerError::Handshake(
                "coordinator closed the connection".into(),
            ))
        }
        Err(e) => return Err(WorkerError::Handshake(e.to_string())),
    };
    hello
        .check(&peer, |_| true)
        .map_err(|e| WorkerError::Handshake(e.to_string()))?;

    let mut core = Worker::new();
    let mut inputs = VecDeque::from([Input::Start]);
    while let Some(input) = inputs.pop_front() {
        for action in core.step(input) {
            match action {
                Action::Send(request) => {
                    let reply = match encode_frame(&request, MAX_FRAME_BYTES) {
                        Ok(f) => match stream.write_all(&f).await {
                            Ok(()) => read_message::<_, Reply>(&mut stream, &mut decoder)
                                .await
                                .ok()
                                .flatten(),
                            Err(_) => None,
                        },
                        Err(_) => None,
                    };
                    inputs.push_back(match reply {
                        Some(r) => Input::Reply(r),
                        None => Input::CoordinatorGone,
                    });
                }
                Action::RunMap(_) | Action::RunReduce(_) => {
                    let app = Arc::clone(&app);
                    let task_opts = opts.task.clone();
                    let input = tokio::task::spawn_blocking(move || {
                        execute(app.as_ref(), &action, &task_opts)
                    })
                    .await
                    .expect("task execution panicked");
                    inputs.push_back(input);
                }
                Action::Exit(reason) => {
                    return Ok(WorkerSummary {
                        reason,
                        tasks_done: core.tasks_done(),
                    })
                }
            }
        }
    }
    unreachable!("the worker core always ends with Exit")
}
