//! The coordinator as a tokio server: one task per connection moves frames;
//! a single loop owns the core and fires ticks.

use crate::framed::read_message;
use core_mr::coordinator::Input;
use core_mr::{Request, WorkerId};
use mr_exec::addr::{resolve, write_addr_file};
use mr_exec::error::CoordinatorError;
use mr_exec::options::{CoordinatorOptions, MAX_FRAME_BYTES};
use mr_exec::shell::{CoordinatorShell, JobSummary};
use std::collections::HashMap;
use std::net::SocketAddr;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};
use wire::{Decoder, Hello};

enum Event {
    Joined(WorkerId, u64),
    Refused(WorkerId, String),
    Request(WorkerId, Request),
    Closed(WorkerId, Option<String>),
}

/// Runs a coordinator until the job ends plus the grace period.
pub async fn run_coordinator(opts: &CoordinatorOptions) -> Result<JobSummary, CoordinatorError> {
    let mut shell = CoordinatorShell::new(opts)?;
    let addr = resolve(&opts.listen)?;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| CoordinatorError::Bind {
            addr: opts.listen.clone(),
            source,
        })?;
    let local = listener.local_addr()?;
    shell.note(&format!(
        "listening on {local} (tokio runtime); {} map task(s), {} reduce task(s)",
        opts.files.len(),
        opts.n_reduce
    ));
    if let Some(p) = &opts.addr_file {
        write_addr_file(p, local)?;
    }
    let our_hello = Hello::new(core_mr::PROTOCOL_VERSION, opts.cluster, 0);
    let (events_tx, mut events) = mpsc::unbounded_channel::<Event>();
    let mut writers: HashMap<WorkerId, mpsc::UnboundedSender<Vec<u8>>> = HashMap::new();
    let mut joined: HashMap<WorkerId, bool> = HashMap::new();
    let mut next_id = 1u64;
    let mut ticker = tokio::time::interval_at(Instant::now() + opts.tick, opts.tick);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut stop_at: Option<Instant> = None;
    loop {
        let frames = tokio::select! {
            accepted = listener.accept() => {
                match accepted {
                    Ok((stream, peer)) => {
                        let worker = WorkerId(next_id);
                        next_id += 1;
                        let (tx, rx) = mpsc::unbounded_channel();
                        let _ = tx.send(shell.hello_frame());
                        writers.insert(worker, tx);
                        tokio::spawn(serve(stream, peer, worker, our_hello.clone(), events_tx.clone(), rx));
                    }
                    Err(e) => tracing::warn!("accept failed: {e}"),
                }
                Vec::new()
            }
            Some(event) = events.recv() => match event {
                Event::Joined(worker, node) => {
                    tracing::debug!(%worker, node, "worker connected");
                    joined.insert(worker, true);
                    Vec::new()
                }
                Event::Refused(worker, why) => {
                    shell.note(&why);
                    writers.remove(&worker);
                    Vec::new()
                }
                Event::Request(worker, request) => shell.step(Input::Request { worker, request }),
                Event::Closed(worker, why) => {
                    if let Some(why) = why {
                        shell.note(&format!("dropping {worker}: {why}"));
                    }
                    writers.remove(&worker);
                    if joined.remove(&worker).is_some() {
                        shell.step(Input::Disconnected { worker })
                    } else {
                        Vec::new()
                    }
                }
            },
            _ = ticker.tick() => shell.step(Input::Tick),
            _ = tokio::time::sleep_until(stop_at.unwrap_or_else(Instant::now)), if stop_at.is_some() => break,
        };
        for (worker, frame) in frames {
            if let Some(tx) = writers.get(&worker) {
                let _ = tx.send(frame);
            }
        }
        if shell.finished() && stop_at.is_none() {
            stop_at = Some(Instant::now() + opts.grace);
        }
    }
    shell.result()
}

/// Moves one connection's frames: a writer task drains `outgoing`; this
/// task reads, checks the handshake, and forwards requests.
async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    worker: WorkerId,
    our_hello: Hello,
    events: mpsc::UnboundedSender<Event>,
    mut outgoing: mpsc::UnboundedReceiver<Vec<u8>>,
) {
    let _ = stream.set_nodelay(true);
    let (mut rd, mut wr) = stream.into_split();
    tokio::spawn(async move {
        while let Some(frame) = outgoing.recv().await {
            if wr.write_all(&frame).await.is_err() {
                break;
            }
        }
        let _ = wr.shutdown().await;
    });
    let mut decoder = Decoder::new(MAX_FRAME_BYTES);
    match read_message::<_, Hello>(&mut rd, &mut decoder).await {
        Ok(Some(hello)) => match our_hello.check(&hello, |_| true) {
            Ok(()) => {
                let _ = events.send(Event::Joined(worker, hello.node));
            }
            Err(e) => {
                let _ = events.send(Event::Refused(
                    worker,
                    format!("refused connection from {peer}: {e}"),
                ));
                return;
            }
        },
        Ok(None) => {
            let _ = events.send(Event::Closed(worker, None));
            return;
        }
        Err(e) => {
            let _ = events.send(Event::Refused(
                worker,
                format!("dropping connection from {peer}: bad handshake: {e}"),
            ));
            return;
        }
    }
    loop {
        match read_message::<_, Request>(&mut rd, &mut decoder).await {
            Ok(Some(r)) => {
                if events.send(Event::Request(worker, r)).is_err() {
                    return;
                }
            }
            Ok(None) => {
                let _ = events.send(Event::Closed(worker, None));
                return;
            }
            Err(e) => {
                let _ = events.send(Event::Closed(worker, Some(format!("{peer}: {e}"))));
                return;
            }
        }
    }
}
