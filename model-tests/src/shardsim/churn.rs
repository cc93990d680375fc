//! A 2025 controller that keeps reconfiguring: it joins one group and
//! leaves it again, round after round, until told to stop (the testers'
//! `partitionCtrler` and `concurCtrler` goroutines).

use super::endpoints::DrivenCtrl;
use super::flavor::Driven;
use super::world::{Endpoint, EndpointIo};
use crate::kvsim::clients::Stop;
use core_shard::driven::{Call, CallResult};
use core_shard::{GroupId, ShardConfig};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

/// The change a churning controller is making.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Not changing anything (starting, or between changes).
    Idle,
    /// Joining its group.
    Join,
    /// Leaving its group.
    Leave,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Next {
    Init,
    QueryToJoin,
    Join,
    QueryToLeave,
    Leave,
}

/// What a churning controller reports.
#[derive(Clone, Debug)]
pub struct ChurnState {
    /// The change in progress.
    pub phase: Phase,
    /// Rounds (join and leave) completed.
    pub rounds: u64,
    /// Every call's result, in order.
    pub results: Vec<CallResult>,
}

/// A controller joining and leaving `gid` until stopped.
pub struct Churner {
    gid: GroupId,
    servers: Vec<String>,
    client: u64,
    seed: u64,
    /// A new controller (with a new client id) for each round, starting
    /// with `InitController`, as `concurCtrler` does; else one controller
    /// that runs `InitController` once.
    fresh_each_round: bool,
    ctrl: DrivenCtrl,
    next: Next,
    /// The configuration the next change starts from.
    base: Option<ShardConfig>,
    stop: Stop,
    state: Rc<RefCell<ChurnState>>,
}

impl Churner {
    /// A churner for `gid` (whose servers are `servers`).
    pub fn new(
        gid: GroupId,
        servers: Vec<String>,
        client: u64,
        seed: u64,
        fresh_each_round: bool,
        stop: Stop,
    ) -> (Churner, Rc<RefCell<ChurnState>>) {
        let state = Rc::new(RefCell::new(ChurnState {
            phase: Phase::Idle,
            rounds: 0,
            results: Vec::new(),
        }));
        (
            Churner {
                gid,
                servers,
                client,
                seed,
                fresh_each_round,
                ctrl: DrivenCtrl::new(client, seed),
                next: Next::Init,
                base: None,
                stop,
                state: state.clone(),
            },
            state,
        )
    }

    fn invoke(&mut self, call: Call, io: &EndpointIo<'_, Driven>) {
        for result in self.ctrl.invoke(call, io) {
            self.on_done(result);
        }
    }

    fn on_done(&mut self, result: CallResult) {
        let mut st = self.state.borrow_mut();
        st.results.push(result.clone());
        st.phase = Phase::Idle;
        self.next = match (self.next, result) {
            (Next::Init, _) => Next::QueryToJoin,
            (Next::QueryToJoin, CallResult::Config(cfg)) => {
                self.base = Some(cfg);
                Next::Join
            }
            (Next::Join, _) => Next::QueryToLeave,
            (Next::QueryToLeave, CallResult::Config(cfg)) => {
                self.base = Some(cfg);
                Next::Leave
            }
            (Next::Leave, _) => {
                st.rounds += 1;
                if self.fresh_each_round {
                    Next::Init
                } else {
                    Next::QueryToJoin
                }
            }
            (n, _) => n,
        };
    }

    /// Start the next call.
    fn start_next(&mut self, io: &EndpointIo<'_, Driven>) {
        match self.next {
            Next::Init => {
                if self.fresh_each_round {
                    self.client += 1;
                    self.seed = self.seed.wrapping_add(1);
                    self.ctrl = DrivenCtrl::new(self.client, self.seed);
                }
                self.invoke(Call::InitController, io);
            }
            Next::QueryToJoin | Next::QueryToLeave => self.invoke(Call::Query, io),
            Next::Join => {
                let base = self.base.take().expect("a join follows a query");
                let mut groups = BTreeMap::new();
                groups.insert(self.gid, self.servers.clone());
                self.state.borrow_mut().phase = Phase::Join;
                self.invoke(Call::ChangeConfigTo(base.join(&groups)), io);
            }
            Next::Leave => {
                let base = self.base.take().expect("a leave follows a query");
                if !base.groups.contains_key(&self.gid) {
                    // The join did not happen (superseded): join again.
                    self.next = Next::QueryToJoin;
                    return;
                }
                self.state.borrow_mut().phase = Phase::Leave;
                self.invoke(Call::ChangeConfigTo(base.leave(&[self.gid])), io);
            }
        }
    }
}

impl Endpoint<Driven> for Churner {
    fn step(&mut self, _now_ms: u64, tick: bool, io: &EndpointIo<'_, Driven>) {
        for result in self.ctrl.poll(tick, io) {
            self.on_done(result);
        }
        if tick && !self.ctrl.busy() && !*self.stop.borrow() {
            self.start_next(io);
        }
    }

    fn finished(&self) -> bool {
        !self.ctrl.busy() && *self.stop.borrow()
    }
}
