//! The interpreter: a pure state machine over one execution.
//!
//! An execution is a tree of runs: the root run walks the state machine's top scope; a Parallel
//! state starts one child run per branch, a Map state one per item. Runs advance synchronously,
//! state after state, until they finish or block on something outside: a task to dispatch or a
//! timer to wait for. Each block becomes a [`Command`] for the driver, which performs it and
//! reports back with an [`Input`]. No I/O and no clock happen here: time comes in with each call,
//! which is what makes the interpreter testable (and, later, replayable from a checkpoint).

use std::collections::VecDeque;
use std::sync::OnceLock;

use serde_json::{Map, Value, json};
use stepstone_asl::eval::{self, Context, Env};
use stepstone_asl::intrinsics::splitmix64;
use stepstone_asl::states::{Assign, DataFlow, ErrorHandling, StateKind, Transition};
use stepstone_asl::timestamp::Timestamp;
use stepstone_asl::{Machine, ScopeRef, State, StateId};

use crate::failure::Failure;
use crate::history::{EventKind, History, HistoryMode};
use crate::limits::Limits;
use crate::test_state::step;
use crate::vars::Vars;

/// The error of a payload or a variable over its size limit.
pub(crate) const DATA_LIMIT_EXCEEDED: &str = "States.DataLimitExceeded";

/// How many states one call into the interpreter may enter before it yields to the driver.
pub const STATES_PER_CALL: u32 = 4096;

/// Identifies a run (the root, a branch, an iteration) within its execution. Ids are reused
/// after a run ends, with a new generation, so a late answer for an ended run is ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct RunId {
    index: u32,
    generation: u32,
}

impl RunId {
    pub(crate) fn new(index: u32, generation: u32) -> RunId {
        RunId { index, generation }
    }

    /// An id that names no run: answers for it are ignored.
    pub fn detached() -> RunId {
        RunId {
            index: u32::MAX,
            generation: u32::MAX,
        }
    }
}

/// What identifies an execution and what `$$.Execution` and `$$.StateMachine` show.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ExecutionInfo {
    /// `arn:aws:states:<region>:<account>:execution:<machine>:<name>`
    pub execution_arn: String,
    /// The execution's name.
    pub name: String,
    /// `arn:aws:states:<region>:<account>:stateMachine:<machine>`
    pub state_machine_arn: String,
    /// The state machine's name.
    pub state_machine_name: String,
    /// The role ARN shown in `$$.Execution.RoleArn`.
    pub role_arn: String,
    /// When the execution started.
    pub start_time: Timestamp,
    /// The execution's input.
    pub input: Value,
    /// How many times the execution was redriven.
    pub redrive_count: u32,
    /// When it was last redriven. Since checkpoint v2.
    #[serde(default)]
    pub redrive_time: Option<Timestamp>,
    /// An EXPRESS execution: its ARN reads `express:` and it has no RedriveCount.
    pub express: bool,
}

impl ExecutionInfo {
    /// Names and ARNs for an execution `name` of state machine `machine_name`, in the default
    /// local account and region.
    pub fn new(
        machine_name: &str,
        name: &str,
        input: Value,
        start_time: Timestamp,
        express: bool,
    ) -> ExecutionInfo {
        let prefix = "arn:aws:states:us-east-1:123456789012";
        let execution_arn = if express {
            // AWS adds a run id to an express execution's ARN.
            let run_id = splitmix64(start_time.unix_nanos as u64);
            format!(
                "{prefix}:express:{machine_name}:{name}:{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
                run_id >> 32,
                (run_id >> 16) & 0xffff,
                run_id & 0xfff,
                (run_id >> 20) & 0xfff,
                run_id & 0xffff_ffff_ffff
            )
        } else {
            format!("{prefix}:execution:{machine_name}:{name}")
        };
        ExecutionInfo {
            execution_arn,
            name: name.to_owned(),
            state_machine_arn: format!("{prefix}:stateMachine:{machine_name}"),
            state_machine_name: machine_name.to_owned(),
            role_arn: "arn:aws:iam::123456789012:role/stepstone".to_owned(),
            start_time,
            input,
            redrive_count: 0,
            redrive_time: None,
            express,
        }
    }
}

/// A task for the driver to perform.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TaskRequest {
    /// The run waiting for it.
    pub run: RunId,
    /// The execution's ARN.
    pub execution_arn: String,
    /// The Task state's name.
    pub state_name: String,
    /// The `Resource` ARN as written.
    pub resource: String,
    /// The task's input (after InputPath and Parameters).
    pub input: Value,
    /// 0 for the first try, then one more per retry.
    pub attempt: u32,
    /// How many tasks this state dispatched before in this execution (0 for the first), over
    /// retries, loops and Map iterations alike: what a MockConfigFile's invocation numbers
    /// count. Kept in the checkpoint, so a task sent again after a crash has the same number.
    #[serde(default)]
    pub invocation: u32,
    /// Stable across resumes: `<execution ARN>/<state>/<entered event>/<attempt>`.
    pub idempotency_token: String,
    /// The region the task's calls go to, when the state names one (a Stepstone extension).
    pub region: Option<String>,
    /// `TimeoutSeconds`, when set.
    pub timeout_seconds: Option<u64>,
    /// For a `.waitForTaskToken` task: its token (`$$.Task.Token`). The dispatch only delivers
    /// the request; the result comes back with the token (see [`crate::Signals`]). Since
    /// checkpoint v2.
    #[serde(default)]
    pub task_token: Option<String>,
    /// `HeartbeatSeconds`: for a task waiting for its token, the longest time between two
    /// heartbeats. Since checkpoint v2.
    #[serde(default)]
    pub heartbeat_seconds: Option<u64>,
}

/// What the driver must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Perform a task, then report [`Input::TaskDone`].
    Dispatch(TaskRequest),
    /// At `until`, report [`Input::TimerFired`].
    Timer {
        /// The run waiting.
        run: RunId,
        /// When.
        until: Timestamp,
        /// Why, for progress displays.
        reason: TimerReason,
    },
}

/// Why a timer was set.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum TimerReason {
    /// A Wait state.
    Wait {
        /// The state's name.
        state: String,
    },
    /// The delay before retry `attempt` of `max_attempts` of a state.
    Retry {
        /// The state's name.
        state: String,
        /// The error being retried.
        error: String,
        /// 1 for the first retry.
        attempt: u32,
        /// The retrier's MaxAttempts.
        max_attempts: u64,
    },
}

/// What the driver reports.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// A dispatched task finished.
    TaskDone {
        /// The run that dispatched it.
        run: RunId,
        /// Its result or failure.
        result: Result<Value, Failure>,
    },
    /// A timer came due.
    TimerFired {
        /// The run that set it.
        run: RunId,
    },
    /// The execution ran past its `TimeoutSeconds`.
    TimedOut,
}

/// Where an execution stands.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Status {
    /// Not finished.
    Running,
    /// Finished with this output.
    Succeeded(Value),
    /// Failed with this error.
    Failed(Failure),
    /// Ran past its `TimeoutSeconds`.
    TimedOut(Failure),
    /// Stopped from outside (`stepstone stop`, StopExecution).
    Aborted(Failure),
}

impl Status {
    /// `RUNNING`, `SUCCEEDED`, `FAILED`, `TIMED_OUT`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Status::Running => "RUNNING",
            Status::Succeeded(_) => "SUCCEEDED",
            Status::Failed(_) => "FAILED",
            Status::TimedOut(_) => "TIMED_OUT",
            Status::Aborted(_) => "ABORTED",
        }
    }
}

/// How a state ended, for its run.
pub(crate) enum Flow {
    /// Go to this state with this input.
    Next(StateId, Value),
    /// The run ends with this output.
    End(Value),
    /// The state failed: Retry and Catch get a chance (in Task, Parallel, Map), else the run fails.
    Fail(Failure),
    /// The run waits for a task, a timer or its children.
    Blocked,
}

/// What a blocked run waits for.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
pub(crate) enum Waiting {
    Nothing,
    /// A task: the request (re-sent as it is after a crash) and the names its history events
    /// carry.
    Task {
        request: Box<TaskRequest>,
        resource_type: String,
        resource: String,
    },
    /// A Wait state's timer, due at `until`.
    Wait {
        until: Timestamp,
        reason: TimerReason,
    },
    /// The delay before a retry, due at `until`.
    Retry {
        until: Timestamp,
        reason: TimerReason,
    },
    /// Child runs of a Parallel or Map state.
    Children(Box<crate::children::Children>),
}

/// The parent of a child run, and which child it is.
#[derive(Clone, Copy, serde::Serialize, serde::Deserialize)]
pub(crate) struct Link {
    pub(crate) parent: RunId,
    pub(crate) slot: usize,
}

pub(crate) struct Run<'m> {
    pub(crate) scope: ScopeRef<'m>,
    /// `scope` as (state, child) steps from the machine's root: what a checkpoint stores.
    pub(crate) scope_path: Vec<(u32, u32)>,
    pub(crate) state: StateId,
    /// The current state's raw input.
    pub(crate) input: Value,
    pub(crate) vars: Vars,
    pub(crate) parent: Option<Link>,
    pub(crate) entered_event: u64,
    pub(crate) entered_time: Timestamp,
    pub(crate) last_event: u64,
    /// Attempts used per retrier of the current state.
    pub(crate) attempts: Vec<u32>,
    pub(crate) retry_count: u32,
    pub(crate) waiting: Waiting,
    /// A Map's effective input while its iterations start (ItemSelector reads it).
    pub(crate) input_for_items: Option<Value>,
    /// Set when Parameters consumed the raw input: how the output follows from the result.
    pub(crate) output_from_result: Option<OutputFrom>,
    /// What the current state assigned, kept (with a full history only) for its StateExited
    /// event. Set and taken within one call: never checkpointed.
    pub(crate) assigned: Option<Map<String, Value>>,
    /// Whether the current state was entered (its StateEntered event, `entered_event`, holds
    /// its raw input); false while the run waits in `ready` to enter it.
    pub(crate) entered: bool,
    /// The run failed, or was stopped because its execution or a sibling failed: it stays,
    /// frozen at its current state, so that a redrive can go on from there (see
    /// `redrive.rs`). A fallen run never advances, and answers to it are ignored.
    pub(crate) fallen: bool,
}

/// How a state's output follows from its result alone (its raw input having been consumed).
#[derive(Clone, serde::Serialize, serde::Deserialize)]
pub(crate) enum OutputFrom {
    /// ResultPath `$`: OutputPath applies to the result.
    Result,
    /// OutputPath inside ResultPath: these steps of the result.
    Suffix(Vec<stepstone_asl::path::Step>),
}

pub(crate) struct Slot<'m> {
    pub(crate) generation: u32,
    pub(crate) run: Option<Run<'m>>,
}

/// One execution of a [`Machine`].
pub struct Execution<'m> {
    pub(crate) machine: &'m Machine,
    pub(crate) info: ExecutionInfo,
    pub(crate) history: History,
    pub(crate) limits: Limits,
    pub(crate) slots: Vec<Slot<'m>>,
    pub(crate) free: Vec<u32>,
    pub(crate) ready: VecDeque<RunId>,
    pub(crate) commands: Vec<Command>,
    pub(crate) status: Status,
    pub(crate) now: Timestamp,
    pub(crate) seed: u64,
    pub(crate) states_entered: u64,
    /// Tasks dispatched so far, per state name (see [`TaskRequest::invocation`]).
    pub(crate) dispatches: std::collections::BTreeMap<String, u32>,
    /// States this call may still enter (see `advance`).
    budget: u32,
    /// The run whose state just raised a JSONata evaluation failure, and the field: its
    /// EvaluationFailed event is recorded when the failure reaches the run (see
    /// `record_evaluation_failure`). Failures are built through `&self`, hence the cell.
    pub(crate) evaluation_failed: std::cell::RefCell<Option<(RunId, Option<String>)>>,
    /// Set in a TestState: watches and steers the tested state (see `test_state.rs`).
    pub(crate) probe: Option<Box<crate::test_state::Probe>>,
}

impl<'m> Execution<'m> {
    /// A new execution; call [`Execution::start`] to begin.
    pub fn new(
        machine: &'m Machine,
        info: ExecutionInfo,
        limits: Limits,
        history: HistoryMode,
    ) -> Execution<'m> {
        let seed = info
            .execution_arn
            .bytes()
            .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
            });
        let now = info.start_time;
        Execution {
            machine,
            info,
            history: History::with_mode(history),
            limits,
            slots: Vec::new(),
            free: Vec::new(),
            ready: VecDeque::new(),
            commands: Vec::new(),
            status: Status::Running,
            now,
            seed,
            states_entered: 0,
            dispatches: Default::default(),
            budget: 0,
            evaluation_failed: Default::default(),
            probe: None,
        }
    }

    /// Starts the execution at `now`; returns the first commands.
    pub fn start(&mut self, now: Timestamp) -> Vec<Command> {
        let root = self.machine.root();
        self.start_at(root, root.start(), Vars::default(), now)
    }

    /// Starts the execution at state `state` of `scope`, with `vars` in scope (TestState tests
    /// one state of a machine, wherever it is).
    pub(crate) fn start_at(
        &mut self,
        scope: ScopeRef<'m>,
        state: StateId,
        vars: Vars,
        now: Timestamp,
    ) -> Vec<Command> {
        self.now = now;
        let (input, role) = (&self.info.input, &self.info.role_arn);
        let id = self.history.push(0, now, || EventKind::ExecutionStarted {
            input: input.clone(),
            role_arn: role.clone(),
        });
        let run = self.spawn(scope, state, self.info.input.clone(), vars, None, id);
        if let Some(probe) = &mut self.probe {
            probe.root = Some(run);
        }
        self.advance();
        std::mem::take(&mut self.commands)
    }

    /// Reports what the driver saw at `now`; returns the next commands.
    pub fn on_input(&mut self, input: Input, now: Timestamp) -> Vec<Command> {
        self.now = now;
        if self.status != Status::Running {
            return Vec::new();
        }
        match input {
            Input::TaskDone { run, result } => {
                if self.is_waiting_task(run) {
                    let flow = self.task_done(run, result);
                    self.follow(run, flow);
                }
            }
            Input::TimerFired { run } => {
                if let Some(r) = self.get_mut(run).filter(|r| !r.fallen) {
                    match std::mem::replace(&mut r.waiting, Waiting::Nothing) {
                        Waiting::Wait { .. } => {
                            let flow = self.wait_done(run);
                            self.follow(run, flow);
                        }
                        Waiting::Retry { .. } => {
                            let flow = self.run_state_body(run);
                            self.follow(run, flow);
                        }
                        other => r.waiting = other,
                    }
                }
            }
            Input::TimedOut => {
                let failure = Failure::new("States.Timeout", "The execution timed out.");
                let last = self.history.len();
                let (error, cause) = (failure.error.clone(), failure.cause.clone());
                self.history
                    .push(last, now, || EventKind::ExecutionTimedOut { error, cause });
                self.status = Status::TimedOut(failure);
                self.fall_all();
            }
        }
        self.advance();
        std::mem::take(&mut self.commands)
    }

    /// Stops a running execution: ABORTED, with an ExecutionAborted event. Its in-flight tasks
    /// are abandoned (their results will be ignored) and its timers will never fire.
    pub fn abort(&mut self, error: &str, cause: &str, now: Timestamp) {
        if self.status != Status::Running {
            return;
        }
        self.now = now;
        let last = self.history.len();
        let (e, c) = (error.to_owned(), cause.to_owned());
        self.history
            .push(last, now, || EventKind::ExecutionAborted {
                error: e,
                cause: c,
            });
        self.status = Status::Aborted(Failure::new(error, cause));
        self.fall_all();
    }

    /// Freezes every run where it stands: the execution ended unsuccessfully.
    fn fall_all(&mut self) {
        for run in self.slots.iter_mut().filter_map(|s| s.run.as_mut()) {
            run.fallen = true;
        }
        self.ready.clear();
    }

    /// Freezes a run that failed, with the children it still waits for.
    pub(crate) fn fall(&mut self, id: RunId) {
        let Some(run) = self.get_mut(id) else { return };
        run.fallen = true;
        let running: Vec<RunId> = match &run.waiting {
            Waiting::Children(children) => children.running().collect(),
            _ => Vec::new(),
        };
        for child in running {
            self.fall(child);
        }
    }

    /// Where the execution stands.
    pub fn status(&self) -> &Status {
        &self.status
    }

    /// Its history (events are kept only when recording was asked for).
    pub fn history(&self) -> &History {
        &self.history
    }

    /// In light history mode, the events built since the last call.
    pub fn take_light_events(&mut self) -> Vec<crate::history::Event> {
        self.history.take_light()
    }

    /// Identity and input.
    pub fn info(&self) -> &ExecutionInfo {
        &self.info
    }

    /// How many states were entered so far.
    pub fn states_entered(&self) -> u64 {
        self.states_entered
    }

    // ---- runs

    pub(crate) fn spawn(
        &mut self,
        scope: ScopeRef<'m>,
        state: StateId,
        input: Value,
        vars: Vars,
        parent: Option<Link>,
        last_event: u64,
    ) -> RunId {
        // Where the scope is in the machine: how a checkpoint names it.
        let scope_path = match parent {
            None => Vec::new(),
            Some(link) => {
                let p = self.run(link.parent);
                let (_, parent_state) = self.current(link.parent);
                let child = if matches!(parent_state.kind, StateKind::Parallel(_)) {
                    link.slot as u32
                } else {
                    0
                };
                let mut path = p.scope_path.clone();
                path.push((p.state.0, child));
                path
            }
        };
        let run = Run {
            scope,
            scope_path,
            state,
            input,
            vars,
            parent,
            entered_event: 0,
            entered_time: self.now,
            last_event,
            attempts: Vec::new(),
            retry_count: 0,
            waiting: Waiting::Nothing,
            input_for_items: None,
            output_from_result: None,
            assigned: None,
            entered: false,
            fallen: false,
        };
        let id = match self.free.pop() {
            Some(index) => {
                let slot = &mut self.slots[index as usize];
                slot.generation += 1;
                slot.run = Some(run);
                RunId {
                    index,
                    generation: slot.generation,
                }
            }
            None => {
                self.slots.push(Slot {
                    generation: 0,
                    run: Some(run),
                });
                RunId {
                    index: self.slots.len() as u32 - 1,
                    generation: 0,
                }
            }
        };
        self.ready.push_back(id);
        id
    }

    pub(crate) fn get(&self, id: RunId) -> Option<&Run<'m>> {
        self.slots
            .get(id.index as usize)
            .filter(|s| s.generation == id.generation)?
            .run
            .as_ref()
    }

    pub(crate) fn get_mut(&mut self, id: RunId) -> Option<&mut Run<'m>> {
        self.slots
            .get_mut(id.index as usize)
            .filter(|s| s.generation == id.generation)?
            .run
            .as_mut()
    }

    pub(crate) fn run(&self, id: RunId) -> &Run<'m> {
        self.get(id).expect("the run is alive")
    }

    pub(crate) fn run_mut(&mut self, id: RunId) -> &mut Run<'m> {
        self.get_mut(id).expect("the run is alive")
    }

    /// Removes a run and, recursively, the children it waits for.
    pub(crate) fn remove(&mut self, id: RunId) -> Option<Run<'m>> {
        let slot = self
            .slots
            .get_mut(id.index as usize)
            .filter(|s| s.generation == id.generation)?;
        let run = slot.run.take()?;
        self.free.push(id.index);
        if let Waiting::Children(children) = &run.waiting {
            for child in children.all() {
                self.remove(child);
            }
        }
        Some(run)
    }

    /// Run `id` waits until `until`, for a Wait state or a retry's delay (as `reason` says): the
    /// run records it (a checkpoint re-arms it) and the driver is asked for a timer.
    pub(crate) fn wait_until(&mut self, id: RunId, until: Timestamp, reason: TimerReason) {
        let waiting = match reason {
            TimerReason::Wait { .. } => Waiting::Wait {
                until,
                reason: reason.clone(),
            },
            TimerReason::Retry { .. } => Waiting::Retry {
                until,
                reason: reason.clone(),
            },
        };
        self.run_mut(id).waiting = waiting;
        self.commands.push(Command::Timer {
            run: id,
            until,
            reason,
        });
    }

    /// The run whose task waits for `token`, if one does.
    pub(crate) fn waiting_for_token(&self, token: &str) -> Option<RunId> {
        self.slots.iter().enumerate().find_map(|(index, slot)| {
            let run = slot.run.as_ref().filter(|r| !r.fallen)?;
            match &run.waiting {
                Waiting::Task { request, .. } if request.task_token.as_deref() == Some(token) => {
                    Some(RunId::new(index as u32, slot.generation))
                }
                _ => None,
            }
        })
    }

    fn is_waiting_task(&self, id: RunId) -> bool {
        self.get(id)
            .is_some_and(|r| !r.fallen && matches!(r.waiting, Waiting::Task { .. }))
    }

    /// The current state of a run.
    pub(crate) fn current(&self, id: RunId) -> (&'m str, &'m State) {
        let run = self.run(id);
        let (name, state, _) = run.scope.state(run.state);
        (name, state)
    }

    /// Records an event for a run, chaining `previousEventId` through the run's own events.
    pub(crate) fn event(&mut self, id: RunId, kind: impl FnOnce() -> EventKind) -> u64 {
        let last = self.get(id).map_or(self.history.len(), |r| r.last_event);
        let event = self.history.push(last, self.now, kind);
        if let Some(r) = self.get_mut(id) {
            r.last_event = event;
        }
        event
    }

    // ---- stepping

    /// Runs every ready run until all are finished or blocked.
    ///
    /// At most [`STATES_PER_CALL`] states are entered per call; past that, the runs still ready
    /// wait for [`Execution::resume`], so the driver regains control often (to check the
    /// execution's timeout, to pass events on) even in a loop of pure states.
    fn advance(&mut self) {
        self.budget = STATES_PER_CALL;
        while let Some(id) = self.ready.pop_front() {
            if self.status != Status::Running {
                return;
            }
            if self.get(id).is_some_and(|r| !r.fallen) {
                let flow = self.enter_state(id);
                self.follow(id, flow);
            }
            if self.budget == 0 {
                return;
            }
        }
    }

    /// True when runs are ready but the last call ran out of budget: call
    /// [`Execution::resume`].
    pub fn has_ready_runs(&self) -> bool {
        self.status == Status::Running && !self.ready.is_empty()
    }

    /// Goes on with the ready runs; returns the next commands.
    pub fn resume(&mut self, now: Timestamp) -> Vec<Command> {
        self.now = now;
        self.advance();
        std::mem::take(&mut self.commands)
    }

    /// Carries a run through `flow` and the states after it, until it blocks or ends.
    pub(crate) fn follow(&mut self, id: RunId, mut flow: Flow) {
        loop {
            if self.status != Status::Running || self.get(id).is_none() {
                return;
            }
            flow = match flow {
                Flow::Next(next, input) => {
                    if self.probe.is_some() && self.probe_stops_before(id, next) {
                        return self.finish(id, Ok(input));
                    }
                    let run = self.run_mut(id);
                    run.state = next;
                    run.input = input;
                    run.attempts.clear();
                    run.retry_count = 0;
                    run.output_from_result = None;
                    run.assigned = None;
                    run.entered = false;
                    if self.budget == 0 {
                        // Out of budget: the run enters `next` on the next call.
                        self.ready.push_front(id);
                        return;
                    }
                    self.enter_state(id)
                }
                Flow::End(output) => return self.finish(id, Ok(output)),
                Flow::Fail(failure) => {
                    self.record_evaluation_failure(id, &failure);
                    match self.handle_error(id, failure) {
                        Ok(flow) => flow,
                        Err(failure) => return self.finish(id, Err(failure)),
                    }
                }
                Flow::Blocked => return,
            };
        }
    }

    /// Enters the run's current state: counts it, records the entered event, runs its body.
    fn enter_state(&mut self, id: RunId) -> Flow {
        self.states_entered += 1;
        self.budget = self.budget.saturating_sub(1);
        let (name, state) = self.current(id);
        let recording = self.history.recording();
        let input = if recording {
            self.run(id).input.clone()
        } else {
            Value::Null
        };
        let event = self.event(id, || EventKind::StateEntered {
            state_type: state.kind.type_name().into(),
            name: name.to_owned(),
            input,
        });
        let now = self.now;
        let run = self.run_mut(id);
        run.entered_event = event;
        run.entered_time = now;
        run.entered = true;
        if let Some(limit) = self.limits.max_history_events
            && self.history.len() > limit
        {
            return Flow::Fail(Failure::new(
                "States.Runtime",
                format!(
                    "The execution reached the limit of {limit} history events (see --history-limit)."
                ),
            ));
        }
        self.run_state_body(id)
    }

    /// A state's work after its entered event (also where a retry starts over).
    pub(crate) fn run_state_body(&mut self, id: RunId) -> Flow {
        let (_, state) = self.current(id);
        match &state.kind {
            StateKind::Pass(s) => self.pass(id, s),
            StateKind::Choice(s) => self.choice(id, s),
            StateKind::Wait(s) => self.wait(id, s),
            StateKind::Succeed(s) => self.succeed(id, s),
            StateKind::Fail(s) => self.fail(id, s),
            StateKind::Task(s) => self.task(id, s),
            StateKind::Parallel(s) => self.parallel(id, s),
            StateKind::Map(s) => self.map(id, s),
        }
    }

    /// Retry, then Catch, for the states that have them; `Err` when the run fails.
    fn handle_error(&mut self, id: RunId, failure: Failure) -> Result<Flow, Failure> {
        let (_, state) = self.current(id);
        let (errors, in_task): (&ErrorHandling, bool) = match &state.kind {
            StateKind::Task(t) => (&t.errors, true),
            StateKind::Parallel(p) => (&p.errors, false),
            StateKind::Map(m) => (&m.errors, false),
            _ => return Err(failure),
        };
        // A Map or Parallel that failed because of its children records …StateFailed, unless
        // it is retried: AWS records it once, for the attempt that fails for good.
        let failed_event = match (&self.run(id).waiting, &state.kind) {
            (Waiting::Children(_), StateKind::Map(_)) => Some(EventKind::MapStateFailed),
            (Waiting::Children(_), StateKind::Parallel(_)) => Some(EventKind::ParallelStateFailed),
            _ => None,
        };
        if let Some((i, retrier)) = errors
            .retry
            .iter()
            .enumerate()
            .find(|(_, r)| failure.matches(&r.error_equals, in_task))
        {
            if self.probed(id) {
                // TestState: the answer is RETRIABLE (no retry happens), or, with the
                // retrier spent, whatever Catch makes of the error.
                let probe = self.probe.as_mut().expect("probed");
                if probe.retriable(i, retrier) {
                    return Err(failure);
                }
            } else if self.schedule_retry(id, i, retrier, &failure) {
                return Ok(Flow::Blocked);
            }
            // The first matching retrier decides; when it is spent, Catch gets the error.
        }
        if let Some((index, catcher)) = errors
            .catch
            .iter()
            .enumerate()
            .find(|(_, c)| failure.matches(&c.error_equals, in_task))
        {
            if let Some(kind) = failed_event {
                self.event(id, || kind);
            }
            self.discard_children(id);
            if self.probed(id)
                && let Some(probe) = &mut self.probe
            {
                probe.caught = Some((index, failure.clone()));
            }
            let input = std::mem::take(&mut self.run_mut(id).input);
            let error_output = failure.to_output();
            let output = if self.is_jsonata(id) {
                // Output (default: the error output) and Assign over $states.errorOutput.
                let jsonata_scope = self.jsonata_scope(id, &input, None, Some(&error_output), None);
                let assigned = match &catcher.assign {
                    Some(a) => Some(self.jsonata_assign(id, "Assign", a, &jsonata_scope)?),
                    None => None,
                };
                let output = match &catcher.output {
                    Some(o) => self.jsonata_value(id, "Output", o, &jsonata_scope)?,
                    None => error_output,
                };
                if let Some(values) = assigned {
                    self.apply_assign(id, values);
                }
                output
            } else {
                if let Some(assign) = &catcher.assign
                    && let Err(e) = self.assign(id, assign, &error_output)
                {
                    return Err(self.state_failure(id, e));
                }
                eval::merge_result(input, catcher.result_path.as_ref(), error_output)
                    .map_err(|e| self.state_failure(id, e))?
            };
            // The state exits through its catcher, as AWS records it (…StateFailed, then
            // …StateExited, then the catcher's Next).
            let next = Transition::Next(catcher.next.clone());
            return Ok(self.exit(id, Some(&next), output));
        }
        if let Some(kind) = failed_event {
            self.event(id, || kind);
        }
        Err(failure)
    }

    /// Retrier `i` of the current state matched `failure`: unless it is spent, the run waits
    /// for the retry's delay (true). Handled either way (retried, or caught once the retrier is
    /// spent), the children of a failed Map or Parallel are done with.
    fn schedule_retry(
        &mut self,
        id: RunId,
        i: usize,
        retrier: &stepstone_asl::states::Retrier,
        failure: &Failure,
    ) -> bool {
        self.discard_children(id);
        let seed = self.seed;
        let run = self.run_mut(id);
        run.attempts.resize(run.attempts.len().max(i + 1), 0);
        let used = run.attempts[i];
        if u64::from(used) >= retrier.max_attempts {
            return false;
        }
        run.attempts[i] += 1;
        run.retry_count += 1;
        let mut delay = retrier.interval_after(used);
        if retrier.full_jitter {
            // Seeded from the execution and the attempt: a rerun draws the same delays.
            let draw = splitmix64(seed ^ (run.entered_event << 16) ^ u64::from(run.retry_count));
            delay *= (draw >> 11) as f64 / (1u64 << 53) as f64;
        }
        let attempt = run.attempts[i];
        let until = Timestamp {
            unix_nanos: self.now.unix_nanos + (delay * 1e9) as i128,
        };
        let (name, _) = self.current(id);
        let reason = TimerReason::Retry {
            state: name.to_owned(),
            error: failure.error.clone(),
            attempt,
            max_attempts: retrier.max_attempts,
        };
        self.wait_until(id, until, reason);
        true
    }

    /// A run ended: the execution ends, or the parent hears of it.
    fn finish(&mut self, id: RunId, result: Result<Value, Failure>) {
        self.probe_keep_variables(id);
        struct Finished {
            parent: Option<Link>,
            last_event: u64,
        }
        let finished = |r: &Run<'_>| Finished {
            parent: r.parent,
            last_event: r.last_event,
        };
        let run = match &result {
            Ok(_) => self.remove(id).as_ref().map(finished),
            Err(_) => {
                // Kept, frozen at the state that failed, for a redrive.
                self.fall(id);
                self.get(id).map(finished)
            }
        };
        let Some(run) = run else { return };
        match run.parent {
            None => {
                let last = run.last_event;
                match result {
                    Ok(output) => {
                        let o = if self.history.recording() {
                            output.clone()
                        } else {
                            Value::Null
                        };
                        self.history
                            .push(last, self.now, || EventKind::ExecutionSucceeded {
                                output: o,
                            });
                        self.status = Status::Succeeded(output);
                    }
                    Err(failure) => {
                        let (error, cause) = (failure.error.clone(), failure.cause.clone());
                        self.history
                            .push(last, self.now, || EventKind::ExecutionFailed {
                                error,
                                cause,
                            });
                        self.status = Status::Failed(failure);
                    }
                }
            }
            Some(link) => {
                if self.get(link.parent).is_some_and(|p| !p.fallen) {
                    let flow = self.child_done(link, result);
                    self.follow(link.parent, flow);
                }
            }
        }
    }

    // ---- data flow helpers shared by the states

    /// The environment for evaluating paths of run `id` with `$` = `input`.
    pub(crate) fn with_env<T>(
        &self,
        id: RunId,
        input: &Value,
        item: Option<(usize, &Value)>,
        f: impl FnOnce(&Env) -> T,
    ) -> T {
        let run = self.run(id);
        let (name, _) = self.current(id);
        let (_, state) = self.current(id);
        let retriable = matches!(
            state.kind,
            StateKind::Task(_) | StateKind::Parallel(_) | StateKind::Map(_)
        );
        let context = LazyContext {
            task_token: self.task_token(id),
            info: &self.info,
            state_name: name,
            entered: run.entered_time,
            retry_count: retriable.then_some(run.retry_count),
            item,
            cell: OnceLock::new(),
        };
        let counter = std::cell::Cell::new(
            self.seed
                ^ run.entered_event.wrapping_mul(0x9E37_79B9)
                ^ u64::from(run.retry_count) << 40,
        );
        let random = || {
            let next = splitmix64(counter.get());
            counter.set(next);
            next
        };
        // TestState may give the context object whole.
        let given = self.probe.as_ref().and_then(|p| p.context.as_ref());
        let env = Env {
            input,
            context: match given {
                Some(c) => c,
                None => &context,
            },
            variables: &run.vars,
            random: &random,
        };
        f(&env)
    }

    /// Prefixes an evaluation error with the state and its entered event, as AWS does.
    pub(crate) fn state_failure(&self, id: RunId, e: eval::Error) -> Failure {
        if e.error == crate::jsonata::QUERY_EVALUATION_ERROR {
            self.evaluation_failed.replace(Some((id, None)));
        }
        let (name, _) = self.current(id);
        let event = self.run(id).entered_event;
        Failure::new(
            e.error,
            format!(
                "An error occurred while executing the state '{name}' (entered at the event id #{event}). {}",
                e.message
            ),
        )
    }

    /// InputPath: the effective input of the current state. The raw input is moved, not
    /// copied, when nothing needs it later: a ResultPath of `$` replaces it, and there is no
    /// Retry (which starts the state over) or Catch (which writes the error into it).
    pub(crate) fn effective_input(&mut self, id: RunId, flow: &DataFlow) -> Result<Value, Failure> {
        // A JSONata state's Output and Assign read `$states.input`: it stays.
        let raw_needed_later = self.handles_errors(id)
            || self.is_jsonata(id)
            || !flow.result_path.as_ref().is_some_and(is_root);
        let run = self.run_mut(id);
        let raw = if raw_needed_later {
            run.input.clone()
        } else {
            std::mem::take(&mut run.input)
        };
        if self.probe.is_none() {
            return self.select(id, raw, flow.input_path.as_ref());
        }
        let effective = self.select(id, raw, flow.input_path.as_ref());
        if let Ok(v) = &effective {
            self.inspect(id, step::AFTER_INPUT_PATH, || v.clone());
        }
        effective
    }

    /// Evaluates `f` with `$` = the current state's effective input, reading the raw input in
    /// place when InputPath is `$` (the common case) instead of copying it.
    pub(crate) fn on_effective<T>(
        &self,
        id: RunId,
        flow: &DataFlow,
        f: impl FnOnce(&Env) -> Result<T, eval::Error>,
    ) -> Result<T, Failure> {
        let owned = self.effective_copy(id, flow)?;
        let effective = owned.as_ref().unwrap_or(&self.run(id).input);
        self.with_env(id, effective, None, f)
            .map_err(|e| self.state_failure(id, e))
    }

    /// The effective input as a new value, or `None` when it is the raw input itself
    /// (InputPath `$`), which then stays in place.
    pub(crate) fn effective_copy(
        &self,
        id: RunId,
        flow: &DataFlow,
    ) -> Result<Option<Value>, Failure> {
        let copy = match flow.input_path.as_ref() {
            Some(p) if is_root(p) => None,
            None => Some(Value::Object(Map::new())),
            Some(p) => {
                let raw = &self.run(id).input;
                let part = self.with_env(id, raw, None, |env| env.read(p));
                let part = part.ok_or_else(|| {
                    self.state_failure(
                        id,
                        eval::Error::runtime(format!(
                            "Invalid path '{}' : No results for path: {}",
                            p.as_str(),
                            p
                        )),
                    )
                })?;
                Some(part)
            }
        };
        self.inspect(id, step::AFTER_INPUT_PATH, || {
            copy.clone().unwrap_or_else(|| self.run(id).input.clone())
        });
        Ok(copy)
    }

    /// InputPath or OutputPath applied to `value`.
    pub(crate) fn select(
        &self,
        id: RunId,
        value: Value,
        path: Option<&stepstone_asl::Path>,
    ) -> Result<Value, Failure> {
        let read = |v: &Value| path.and_then(|p| self.with_env(id, v, None, |env| env.read(p)));
        eval::filter(value, path, read).map_err(|e| self.state_failure(id, e))
    }

    /// ResultSelector, ResultPath and OutputPath, after a state produced `result`; then Assign
    /// (with the variables as they were before the state, and `$` = the result).
    pub(crate) fn finish_data_flow(
        &mut self,
        id: RunId,
        flow: &DataFlow,
        result: Value,
    ) -> Result<Value, Failure> {
        if self.is_jsonata(id) {
            return self.jsonata_finish(id, flow.output.as_ref(), flow.assign.as_ref(), result);
        }
        // The result is not needed after ResultSelector: its subtrees move, not copy.
        let result = match &flow.result_selector {
            Some(t) => self
                .with_env(id, &Value::Null, None, |env| {
                    eval::template_taking(env, t, result)
                })
                .map_err(|e| self.state_failure(id, e))?,
            None => result,
        };
        let assigned = match &flow.assign {
            Some(assign) => Some(
                self.evaluate_assign(id, assign, &result)
                    .map_err(|e| self.state_failure(id, e))?,
            ),
            None => None,
        };
        self.inspect(id, step::AFTER_RESULT_SELECTOR, || result.clone());
        let output = match self.run_mut(id).output_from_result.take() {
            // The raw input was consumed by Parameters: the output follows from the result.
            Some(OutputFrom::Result) => self.select(id, result, flow.output_path.as_ref())?,
            Some(OutputFrom::Suffix(steps)) => {
                self.select_steps(id, result, &steps, flow.output_path.as_ref())?
            }
            None => {
                let input = std::mem::take(&mut self.run_mut(id).input);
                let merged = eval::merge_result(input, flow.result_path.as_ref(), result)
                    .map_err(|e| self.state_failure(id, e))?;
                self.inspect(id, step::AFTER_RESULT_PATH, || merged.clone());
                self.select(id, merged, flow.output_path.as_ref())?
            }
        };
        if let Some(values) = assigned {
            self.apply_assign(id, values);
        }
        Ok(output)
    }

    /// OutputPath inside ResultPath, applied to the result alone: the part of OutputPath below
    /// ResultPath. Errors name the whole OutputPath, as AWS does.
    fn select_steps(
        &self,
        id: RunId,
        value: Value,
        steps: &[stepstone_asl::path::Step],
        whole: Option<&stepstone_asl::Path>,
    ) -> Result<Value, Failure> {
        let found = stepstone_asl::path::get(&value, steps).is_some();
        if !found {
            return self.select(id, Value::Null, whole);
        }
        let mut value = value;
        let mut at = &mut value;
        for step in steps {
            at = match (step, at) {
                (stepstone_asl::path::Step::Field(n), Value::Object(m)) => {
                    m.get_mut(n).expect("found")
                }
                (stepstone_asl::path::Step::Index(i), Value::Array(a)) => &mut a[*i],
                _ => unreachable!("found"),
            };
        }
        Ok(std::mem::take(at))
    }

    /// Parameters evaluated with `$` = the effective input. When nothing reads the raw input
    /// afterwards (see [`OutputFrom`]), its subtrees move into the parameters instead of being
    /// copied.
    pub(crate) fn parameters(
        &mut self,
        id: RunId,
        flow: &DataFlow,
        t: &stepstone_asl::Template,
    ) -> Result<Value, Failure> {
        match self.output_ignores_input(id, flow) {
            Some(from) => {
                let raw = std::mem::take(&mut self.run_mut(id).input);
                self.run_mut(id).output_from_result = Some(from);
                self.with_env(id, &Value::Null, None, |env| {
                    eval::template_taking(env, t, raw)
                })
                .map_err(|e| self.state_failure(id, e))
            }
            None => self.on_effective(id, flow, |env| env.template(t)),
        }
    }

    /// Whether the current state's output can be computed from its result alone, so its raw
    /// input is dead once Parameters are evaluated: InputPath `$`, no Retry or Catch (a retry
    /// starts over from the input, a catch writes into it), and ResultPath `$`, or an OutputPath
    /// inside the ResultPath (which must still apply to the input, or AWS's
    /// States.ResultPathMatchFailure would be lost).
    fn output_ignores_input(&self, id: RunId, flow: &DataFlow) -> Option<OutputFrom> {
        if self.handles_errors(id) || !flow.input_path.as_ref().is_some_and(is_root) {
            return None;
        }
        let result_path = flow.result_path.as_ref()?;
        if is_root(result_path) {
            return Some(OutputFrom::Result);
        }
        let output_path = flow.output_path.as_ref()?;
        let (rp, op) = (result_path.steps()?, output_path.steps()?);
        let inside =
            matches!(output_path.root(), stepstone_asl::path::Root::Input) && op.starts_with(rp);
        (inside && eval::result_path_applies(&self.run(id).input, result_path))
            .then(|| OutputFrom::Suffix(op[rp.len()..].to_vec()))
    }

    /// True when the current state has Retry or Catch.
    /// (In a TestState, the tested state keeps its raw input too: each step is inspected.)
    #[inline]
    fn handles_errors(&self, id: RunId) -> bool {
        if self.probed(id) {
            return true;
        }
        let (_, state) = self.current(id);
        match &state.kind {
            StateKind::Task(t) => !t.errors.retry.is_empty() || !t.errors.catch.is_empty(),
            StateKind::Parallel(p) => !p.errors.retry.is_empty() || !p.errors.catch.is_empty(),
            StateKind::Map(m) => !m.errors.retry.is_empty() || !m.errors.catch.is_empty(),
            _ => false,
        }
    }

    /// Evaluates an Assign with `$` = `input`, without applying it.
    pub(crate) fn evaluate_assign(
        &self,
        id: RunId,
        assign: &Assign,
        input: &Value,
    ) -> Result<Map<String, Value>, eval::Error> {
        match assign {
            Assign::JsonPath(t) => match self.with_env(id, input, None, |env| env.template(t))? {
                Value::Object(values) => {
                    crate::vars::check_sizes(&values, self.limits.max_payload_bytes).map_err(
                        |m| eval::Error {
                            error: DATA_LIMIT_EXCEEDED,
                            message: m,
                        },
                    )?;
                    Ok(values)
                }
                _ => unreachable!("Assign is validated to be an object"),
            },
            // A JSONata Assign belongs to a JSONata state, whose fields go through
            // `jsonata_assign` (engine/src/jsonata.rs).
            Assign::Jsonata(_) => unreachable!("a JSONata state's Assign is evaluated as JSONata"),
        }
    }

    /// States.DataLimitExceeded when what a state assigns is over AWS's variable limits.
    pub(crate) fn check_assign_sizes(
        &self,
        id: RunId,
        values: &Map<String, Value>,
    ) -> Result<(), Failure> {
        crate::vars::check_sizes(values, self.limits.max_payload_bytes).map_err(|m| {
            self.state_failure(
                id,
                eval::Error {
                    error: DATA_LIMIT_EXCEEDED,
                    message: m,
                },
            )
        })
    }

    /// Evaluates and applies an Assign.
    pub(crate) fn assign(
        &mut self,
        id: RunId,
        assign: &Assign,
        input: &Value,
    ) -> Result<(), eval::Error> {
        let values = self.evaluate_assign(id, assign, input)?;
        self.apply_assign(id, values);
        Ok(())
    }

    /// A state's work gave `result`: the rest of its data flow, then on to the next state (or
    /// its failure).
    pub(crate) fn complete(
        &mut self,
        id: RunId,
        flow: &DataFlow,
        transition: Option<&Transition>,
        result: Value,
    ) -> Flow {
        match self.finish_data_flow(id, flow, result) {
            Ok(out) => self.exit(id, transition, out),
            Err(f) => Flow::Fail(f),
        }
    }

    /// Applies what a state assigned to its run's variables (all at once, after the state's
    /// other fields were evaluated), keeping a copy for its StateExited event when the history
    /// keeps data.
    pub(crate) fn apply_assign(&mut self, id: RunId, values: Map<String, Value>) {
        let keep = self.history.recording();
        let run = self.run_mut(id);
        if keep {
            run.assigned = Some(values.clone());
        }
        run.vars.assign(values);
    }

    /// Records the current state's StateExited event with `output` and what it assigned.
    pub(crate) fn record_exit(&mut self, id: RunId, output: &Value) {
        let (name, state) = self.current(id);
        if !self.history.recording() {
            // Nothing owned to carry into the event (this is every state's path on an
            // execution that keeps no history data).
            self.event(id, || EventKind::StateExited {
                state_type: state.kind.type_name().into(),
                name: name.to_owned(),
                output: Value::Null,
                assigned: None,
            });
            return;
        }
        let recorded = output.clone();
        let assigned = self.run_mut(id).assigned.take();
        self.event(id, || EventKind::StateExited {
            state_type: state.kind.type_name().into(),
            name: name.to_owned(),
            output: recorded,
            assigned,
        });
    }

    /// Records the exited event and goes on to the next state or ends the run.
    pub(crate) fn exit(
        &mut self,
        id: RunId,
        transition: Option<&Transition>,
        output: Value,
    ) -> Flow {
        self.record_exit(id, &output);
        match transition {
            Some(Transition::Next(next)) => Flow::Next(
                self.run(id).scope.id(next).expect("validated target"),
                output,
            ),
            _ => Flow::End(output),
        }
    }

    /// The machine's timeout, for the driver.
    pub fn timeout_seconds(&self) -> Option<u64> {
        self.machine.definition().timeout_seconds
    }
}

/// `$` itself.
pub(crate) fn is_root(path: &stepstone_asl::Path) -> bool {
    matches!(path.root(), stepstone_asl::path::Root::Input)
        && path.steps().is_some_and(<[_]>::is_empty)
}

/// The context object, built on first use.
struct LazyContext<'a> {
    /// `$$.Task.Token`, in a `.waitForTaskToken` Task.
    task_token: Option<String>,
    info: &'a ExecutionInfo,
    state_name: &'a str,
    entered: Timestamp,
    /// Only states that can retry show `RetryCount`.
    retry_count: Option<u32>,
    item: Option<(usize, &'a Value)>,
    cell: OnceLock<Value>,
}

impl Context for LazyContext<'_> {
    fn value(&self) -> &Value {
        self.cell.get_or_init(|| {
            // AWS's key order; Task appears only in a Task that waits for its token.
            let mut execution = json!({
                "Id": self.info.execution_arn,
                "Input": self.info.input,
                "StartTime": self.info.start_time.to_string(),
                "Name": self.info.name,
                "RoleArn": self.info.role_arn,
            });
            if !self.info.express {
                execution["RedriveCount"] = json!(self.info.redrive_count);
            }
            let mut state = json!({"Name": self.state_name, "EnteredTime": self.entered.to_string()});
            if let Some(n) = self.retry_count {
                state["RetryCount"] = json!(n);
            }
            let mut ctx = json!({
                "Execution": execution,
                "StateMachine": {"Id": self.info.state_machine_arn, "Name": self.info.state_machine_name},
                "State": state,
            });
            if let Some((index, value)) = self.item {
                ctx["Map"] = json!({"Item": {"Index": index, "Value": value}});
            }
            if let Some(token) = &self.task_token {
                ctx["Task"] = json!({"Token": token});
            }
            ctx
        })
    }
}
