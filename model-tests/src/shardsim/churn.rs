//! A 2025 controller that keeps reconfiguring: it joins one group and
//! leaves it again, round after round, until told to stop (the testers'
//! `partitionCtrler` and `concurCtrler` goroutines).

use super::flavor::Driven;
use super::world::{parse_server_name, Endpoint, EndpointIo};
use crate::kvsim::clients::Stop;
use crate::kvsim::world::server_id;
use core_kv::{ClerkConfig, ClientId, ClientReply, Seq};
use core_shard::driven::{Call, CallResult, Controller, CtrlAction, CtrlConfig, CtrlInput};
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
    ctrl: Controller,
    next: Next,
    /// The configuration the next change starts from.
    base: Option<ShardConfig>,
    busy: bool,
    stop: Stop,
    state: Rc<RefCell<ChurnState>>,
}

fn controller(client: u64, seed: u64) -> Controller {
    Controller::new(CtrlConfig {
        kv: ClerkConfig {
            client: ClientId(client),
            servers: vec![server_id(0)],
            retry_ticks: super::endpoints::RETRY_TICKS,
            seed,
        },
        retry_ticks: super::endpoints::RETRY_TICKS,
    })
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
                ctrl: controller(client, seed),
                next: Next::Init,
                base: None,
                busy: false,
                stop,
                state: state.clone(),
            },
            state,
        )
    }

    fn invoke(&mut self, call: Call, io: &EndpointIo<'_, Driven>) {
        self.busy = true;
        let actions = self.ctrl.step(CtrlInput::Invoke(call));
        self.carry_out(actions, io);
    }

    fn carry_out(&mut self, actions: Vec<CtrlAction>, io: &EndpointIo<'_, Driven>) {
        for a in actions {
            match a {
                CtrlAction::Kv { to, request } => {
                    io.send_ctrl(to.0 as usize - 1, request.seq.0, request)
                }
                CtrlAction::Group { gid, servers, op } => {
                    for name in servers {
                        if let Some((g, i)) = parse_server_name(&name) {
                            if g == gid {
                                io.send_group(g, i, 0, op.clone());
                            }
                        }
                    }
                }
                CtrlAction::Done(result) => self.on_done(result),
            }
        }
    }

    fn on_done(&mut self, result: CallResult) {
        self.busy = false;
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
                    self.ctrl = controller(self.client, self.seed);
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
        for (server, id, answer) in io.ctrl_answers() {
            let reply = ClientReply::new(ClientId(self.client), Seq(id), answer);
            let actions = self.ctrl.step(CtrlInput::Kv {
                from: server_id(server),
                reply,
            });
            self.carry_out(actions, io);
        }
        for (_, _, _, answer) in io.group_answers() {
            if let Ok(reply) = answer {
                let actions = self.ctrl.step(CtrlInput::Group(reply));
                self.carry_out(actions, io);
            }
        }
        if !tick {
            return;
        }
        let actions = self.ctrl.step(CtrlInput::Tick);
        self.carry_out(actions, io);
        if !self.busy && !*self.stop.borrow() {
            self.start_next(io);
        }
    }

    fn finished(&self) -> bool {
        !self.busy && *self.stop.borrow()
    }
}
