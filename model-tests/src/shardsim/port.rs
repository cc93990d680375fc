//! A port: how something outside a simulated service (a sharded clerk, a
//! classic group's agent, a 2025 controller) talks to it. The port is one
//! client of that service's [`World`](crate::kvsim::World), so its requests
//! and answers cross the world's simulated network with its faults; the
//! outside endpoint queues requests into it and collects answers from it.

use crate::kvsim::{Answer, Outbox, SimClient};
use core_kv::StateMachine;
use std::cell::RefCell;
use std::rc::Rc;

/// Requests waiting to leave and answers waiting to be read.
pub struct PortBox<S: StateMachine> {
    out: Vec<(usize, u64, S::Op)>,
    inbox: Vec<(usize, u64, Answer<S>)>,
}

/// A port, shared between its world (as a client) and its endpoint.
pub type Port<S> = Rc<RefCell<PortBox<S>>>;

/// A new, empty port.
pub fn port<S: StateMachine>() -> Port<S> {
    Rc::new(RefCell::new(PortBox {
        out: Vec::new(),
        inbox: Vec::new(),
    }))
}

impl<S: StateMachine> PortBox<S> {
    /// Queue `op` for server `server`, tagged `id`.
    pub fn send(&mut self, server: usize, id: u64, op: S::Op) {
        self.out.push((server, id, op));
    }

    /// Take every answer that arrived: (server, id, answer).
    pub fn take_answers(&mut self) -> Vec<(usize, u64, Answer<S>)> {
        std::mem::take(&mut self.inbox)
    }
}

/// The world's side of a port.
pub struct PortClient<S: StateMachine>(pub Port<S>);

impl<S: StateMachine> SimClient<S> for PortClient<S> {
    fn on_tick(&mut self, _now_ms: u64, out: &mut Outbox<S::Op>) {
        for (server, id, op) in self.0.borrow_mut().out.drain(..) {
            out.send(server, id, op);
        }
    }

    fn on_answer(
        &mut self,
        _now_ms: u64,
        server: usize,
        id: u64,
        answer: Answer<S>,
        _out: &mut Outbox<S::Op>,
    ) {
        self.0.borrow_mut().inbox.push((server, id, answer));
    }

    /// A port never holds a world back from finishing.
    fn finished(&self) -> bool {
        true
    }
}
