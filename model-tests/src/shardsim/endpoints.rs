//! The endpoints outside the worlds: a client running a workload through a
//! sharded clerk, a script of controller operations, a 2025 controller
//! library running administrative calls, and a classic group's agent.

use super::flavor::{Classic, Driven, Flavor};
use super::world::{parse_server_name, server_name, Endpoint, EndpointIo};
use crate::kvsim::clients::{History, Recorded, Workload};
use crate::kvsim::world::server_id;
use crate::sim::rng::SimRng;
use core_kv::{
    Clerk, ClerkAction, ClerkConfig, ClerkInput, ClientId, ClientReply, ClientRequest, Seq,
};
use core_shard::classic::{Agent, AgentAction, AgentConfig, AgentInput, CtrlOp, CtrlReply};
use core_shard::driven::{Call, CallResult, Controller, CtrlAction, CtrlConfig, CtrlInput};
use core_shard::{GroupId, ShardClerk, ShardClerkAction, ShardClerkConfig, ShardClerkInput};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

/// Clerk retry interval: 10 ticks (100 ms), the lab clerks' usual wait.
pub const RETRY_TICKS: u64 = 10;

/// Client ids of controller clerks are a client's id plus this, so that
/// they never collide with the clients' own ids in a shared service.
const CTRL_CLIENT_OFFSET: u64 = 1 << 50;

fn ctrl_clerk<F: Flavor>(client: u64, seed: u64) -> Clerk<F::CtrlOp, F::CtrlOut> {
    Clerk::new(ClerkConfig {
        client: ClientId(client),
        servers: (0..F::CTRL_SERVERS).map(server_id).collect(),
        retry_ticks: RETRY_TICKS,
        seed,
    })
}

/// A client: a workload run through a sharded clerk, which fetches
/// configurations from the controller service with a clerk of its own.
/// Every operation's call and return time is recorded for the checker.
pub struct ShardClient<F: Flavor, W: Workload> {
    id: u64,
    clerk: ShardClerk,
    ctrl: Clerk<F::CtrlOp, F::CtrlOut>,
    fetching: bool,
    workload: W,
    rng: SimRng,
    history: History,
    in_flight: Option<usize>,
    now_ms: u64,
}

impl<F: Flavor, W: Workload> ShardClient<F, W> {
    /// Client `id` running `workload`, recording into `history`.
    pub fn new(id: u64, seed: u64, workload: W, history: History) -> Self {
        ShardClient {
            id,
            clerk: ShardClerk::new(ShardClerkConfig {
                client: ClientId(id),
                sharding: F::SHARDING,
                retry_ticks: RETRY_TICKS,
                seed,
            }),
            ctrl: ctrl_clerk::<F>(id + CTRL_CLIENT_OFFSET, seed ^ 0xC7),
            fetching: false,
            workload,
            rng: SimRng::new(seed ^ 0xC11E),
            history,
            in_flight: None,
            now_ms: 0,
        }
    }

    fn clerk_step(&mut self, input: ShardClerkInput, io: &EndpointIo<'_, F>) {
        for a in self.clerk.step(input) {
            match a {
                ShardClerkAction::Send {
                    gid,
                    server,
                    request,
                } => {
                    if let Some((_, i)) = parse_server_name(&server) {
                        io.send_group(gid, i, request.seq.0, F::client_op(request));
                    }
                }
                ShardClerkAction::NeedConfig => {
                    if !self.fetching {
                        self.fetching = true;
                        let actions = self.ctrl.step(ClerkInput::Invoke(F::latest_query()));
                        self.ctrl_actions(actions, io);
                    }
                }
                ShardClerkAction::Done { op, outcome } => {
                    if let Some(i) = self.in_flight.take() {
                        let mut h = self.history.borrow_mut();
                        h[i].ret = Some(self.now_ms);
                        h[i].outcome = Some(outcome.clone());
                    }
                    if let Err(e) = self.workload.on_done(self.now_ms, &op, &outcome) {
                        panic!("client {}: {e}", self.id);
                    }
                }
            }
        }
    }

    fn ctrl_actions(
        &mut self,
        actions: Vec<ClerkAction<F::CtrlOp, F::CtrlOut>>,
        io: &EndpointIo<'_, F>,
    ) {
        for a in actions {
            match a {
                ClerkAction::Send { to, request } => {
                    io.send_ctrl(to.0 as usize - 1, request.seq.0, request)
                }
                ClerkAction::Done { outcome, .. } => {
                    self.fetching = false;
                    if let Some(cfg) = F::config_from(&outcome) {
                        self.clerk_step(ShardClerkInput::Config(cfg), io);
                    }
                }
            }
        }
    }
}

impl<F: Flavor, W: Workload> Endpoint<F> for ShardClient<F, W> {
    fn step(&mut self, now_ms: u64, tick: bool, io: &EndpointIo<'_, F>) {
        self.now_ms = now_ms;
        for (gid, server, id, result) in io.group_answers() {
            let input = ShardClerkInput::Reply {
                gid,
                server: server_name(gid, server),
                seq: Seq(id),
                result,
            };
            self.clerk_step(input, io);
        }
        for (server, id, answer) in io.ctrl_answers() {
            let reply = ClientReply::new(self.ctrl.client(), Seq(id), answer);
            let actions = self.ctrl.step(ClerkInput::Reply {
                from: server_id(server),
                reply,
            });
            self.ctrl_actions(actions, io);
        }
        if !tick {
            return;
        }
        self.clerk_step(ShardClerkInput::Tick, io);
        let actions = self.ctrl.step(ClerkInput::Tick);
        self.ctrl_actions(actions, io);
        if !self.clerk.busy() {
            if let Some(op) = self.workload.next_op(now_ms, &mut self.rng) {
                {
                    let mut h = self.history.borrow_mut();
                    h.push(Recorded {
                        client: self.id,
                        call: now_ms,
                        ret: None,
                        op: op.clone(),
                        outcome: None,
                    });
                    self.in_flight = Some(h.len() - 1);
                }
                self.clerk_step(ShardClerkInput::Invoke(op), io);
            }
        }
    }

    fn finished(&self) -> bool {
        !self.clerk.busy() && self.workload.finished()
    }
}

/// Results of a [`CtrlScript`], in order.
pub type CtrlResults<F> = Rc<RefCell<Vec<<F as Flavor>::CtrlOut>>>;

/// A fixed list of controller-service operations run in order through one
/// clerk (the classic `Join`/`Leave`/`Move`/`Query`, or 2025 key/value
/// reads of the stored configuration).
pub struct CtrlScript<F: Flavor> {
    clerk: Clerk<F::CtrlOp, F::CtrlOut>,
    ops: VecDeque<F::CtrlOp>,
    results: CtrlResults<F>,
}

impl<F: Flavor> CtrlScript<F> {
    /// A script of `ops` for client `client`.
    pub fn new(client: u64, seed: u64, ops: Vec<F::CtrlOp>) -> (Self, CtrlResults<F>) {
        let results = Rc::new(RefCell::new(Vec::new()));
        (
            CtrlScript {
                clerk: ctrl_clerk::<F>(client, seed),
                ops: ops.into(),
                results: results.clone(),
            },
            results,
        )
    }

    fn carry_out(
        &mut self,
        actions: Vec<ClerkAction<F::CtrlOp, F::CtrlOut>>,
        io: &EndpointIo<'_, F>,
    ) {
        for a in actions {
            match a {
                ClerkAction::Send { to, request } => {
                    io.send_ctrl(to.0 as usize - 1, request.seq.0, request)
                }
                ClerkAction::Done { outcome, .. } => self.results.borrow_mut().push(outcome),
            }
        }
    }
}

impl<F: Flavor> Endpoint<F> for CtrlScript<F> {
    fn step(&mut self, _now_ms: u64, tick: bool, io: &EndpointIo<'_, F>) {
        for (server, id, answer) in io.ctrl_answers() {
            let reply = ClientReply::new(self.clerk.client(), Seq(id), answer);
            let actions = self.clerk.step(ClerkInput::Reply {
                from: server_id(server),
                reply,
            });
            self.carry_out(actions, io);
        }
        let _ = io.group_answers();
        if !tick {
            return;
        }
        let actions = self.clerk.step(ClerkInput::Tick);
        self.carry_out(actions, io);
        if !self.clerk.busy() {
            if let Some(op) = self.ops.pop_front() {
                let actions = self.clerk.step(ClerkInput::Invoke(op));
                self.carry_out(actions, io);
            }
        }
    }

    fn finished(&self) -> bool {
        !self.clerk.busy() && self.ops.is_empty()
    }
}

/// Results of a [`DrivenAdmin`]'s calls, in order.
pub type CallResults = Rc<RefCell<Vec<CallResult>>>;

/// One 2025 controller library instance wired to the simulated service:
/// its key/value requests go to the configuration server, its migration
/// steps to every server of the group named, and the answers come back to
/// it. Both endpoints that run controllers ([`DrivenAdmin`] and the
/// churning controller) drive one.
pub struct DrivenCtrl {
    ctrl: Controller,
    client: ClientId,
}

impl DrivenCtrl {
    /// A controller with client id `client` at the configuration store.
    pub fn new(client: u64, seed: u64) -> DrivenCtrl {
        DrivenCtrl {
            ctrl: Controller::new(CtrlConfig {
                kv: ClerkConfig {
                    client: ClientId(client),
                    servers: vec![server_id(0)],
                    retry_ticks: RETRY_TICKS,
                    seed,
                },
                retry_ticks: RETRY_TICKS,
            }),
            client: ClientId(client),
        }
    }

    /// True while a call is in progress.
    pub fn busy(&self) -> bool {
        self.ctrl.busy()
    }

    /// Start `call`; returns the calls that finished (at once, if invalid).
    pub fn invoke(&mut self, call: Call, io: &EndpointIo<'_, Driven>) -> Vec<CallResult> {
        let actions = self.ctrl.step(CtrlInput::Invoke(call));
        self.carry_out(actions, io)
    }

    /// Feed the answers that arrived, and a tick if `tick`; returns the
    /// calls that finished.
    pub fn poll(&mut self, tick: bool, io: &EndpointIo<'_, Driven>) -> Vec<CallResult> {
        let mut done = Vec::new();
        for (server, id, answer) in io.ctrl_answers() {
            let reply = ClientReply::new(self.client, Seq(id), answer);
            let actions = self.ctrl.step(CtrlInput::Kv {
                from: server_id(server),
                reply,
            });
            done.extend(self.carry_out(actions, io));
        }
        for (_, _, _, answer) in io.group_answers() {
            if let Ok(reply) = answer {
                let actions = self.ctrl.step(CtrlInput::Group(reply));
                done.extend(self.carry_out(actions, io));
            }
        }
        if tick {
            let actions = self.ctrl.step(CtrlInput::Tick);
            done.extend(self.carry_out(actions, io));
        }
        done
    }

    fn carry_out(
        &mut self,
        actions: Vec<CtrlAction>,
        io: &EndpointIo<'_, Driven>,
    ) -> Vec<CallResult> {
        let mut done = Vec::new();
        for a in actions {
            match a {
                CtrlAction::Kv { to, request } => {
                    io.send_ctrl(to.0 as usize - 1, request.seq.0, request)
                }
                CtrlAction::Group { gid, servers, op } => io.broadcast_group(gid, &servers, &op),
                CtrlAction::Done(result) => done.push(result),
            }
        }
        done
    }
}

/// A 2025 controller library instance running administrative calls in
/// order (one tester-side `ShardCtrler`).
pub struct DrivenAdmin {
    ctrl: DrivenCtrl,
    calls: VecDeque<Call>,
    results: CallResults,
}

impl DrivenAdmin {
    /// A controller with its own client id for the configuration store.
    pub fn new(client: u64, seed: u64, calls: Vec<Call>) -> (Self, CallResults) {
        let results = Rc::new(RefCell::new(Vec::new()));
        (
            DrivenAdmin {
                ctrl: DrivenCtrl::new(client, seed),
                calls: calls.into(),
                results: results.clone(),
            },
            results,
        )
    }
}

impl Endpoint<Driven> for DrivenAdmin {
    fn step(&mut self, _now_ms: u64, tick: bool, io: &EndpointIo<'_, Driven>) {
        let done = self.ctrl.poll(tick, io);
        self.results.borrow_mut().extend(done);
        if tick && !self.ctrl.busy() {
            if let Some(call) = self.calls.pop_front() {
                let done = self.ctrl.invoke(call, io);
                self.results.borrow_mut().extend(done);
            }
        }
    }

    fn finished(&self) -> bool {
        !self.ctrl.busy() && self.calls.is_empty()
    }
}

/// A classic group server's agent, run beside the replica: ticked with the
/// replica's role and applied state, reset when the server is down.
pub struct AgentHost {
    gid: GroupId,
    server: usize,
    agent: Agent,
    client: ClientId,
}

impl AgentHost {
    /// The agent of server `server` of group `gid`.
    pub fn new(gid: GroupId, server: usize, seed: u64) -> Self {
        AgentHost {
            gid,
            server,
            agent: Agent::new(gid, AgentConfig::default()),
            client: ClientId((1 << 60) | (seed >> 4)),
        }
    }

    fn carry_out(&mut self, actions: Vec<AgentAction>, io: &EndpointIo<'_, Classic>) {
        for a in actions {
            match a {
                AgentAction::AskController { num } => {
                    // A read: any server may be asked; only the leader
                    // answers it, through ReadIndex.
                    for s in 0..io.ctrl_servers() {
                        io.send_ctrl(
                            s,
                            0,
                            ClientRequest {
                                client: self.client,
                                seq: Seq(0),
                                op: CtrlOp::Query(Some(num)),
                            },
                        );
                    }
                }
                AgentAction::Send { gid, servers, op } => io.broadcast_group(gid, &servers, &op),
                AgentAction::Submit(op) => io.send_group(self.gid, self.server, 0, op),
            }
        }
    }
}

impl Endpoint<Classic> for AgentHost {
    fn step(&mut self, _now_ms: u64, tick: bool, io: &EndpointIo<'_, Classic>) {
        for (_, _, answer) in io.ctrl_answers() {
            if let Ok(Ok(CtrlReply::Config(cfg))) = answer {
                let actions = self.agent.step(AgentInput::Controller(cfg));
                self.carry_out(actions, io);
            }
        }
        for (from, _, _, answer) in io.group_answers() {
            if let Ok(reply) = answer {
                let actions = self.agent.step(AgentInput::Reply { from, reply });
                self.carry_out(actions, io);
            }
        }
        if !tick {
            return;
        }
        let actions = match io.replica(self.gid, self.server) {
            None => {
                // Down: a restarted server starts a fresh agent.
                self.agent = Agent::new(self.gid, AgentConfig::default());
                Vec::new()
            }
            Some(r) => self.agent.step(AgentInput::Tick {
                leader: r.raft().is_leader(),
                group: r.state(),
            }),
        };
        self.carry_out(actions, io);
    }

    /// An agent runs for as long as its group exists.
    fn finished(&self) -> bool {
        true
    }
}
