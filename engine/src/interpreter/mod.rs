//! The interpreter: a pure state machine over one execution.
//!
//! An execution is a tree of runs: the root run walks the state machine's top scope; a Parallel
//! state starts one child run per branch, a Map state one per item. Runs advance synchronously,
//! state after state, until they finish or block on something outside: a task to dispatch or a
//! timer to wait for. Each block becomes a [`Command`] for the driver, which performs it and
//! reports back with an [`Input`]. No I/O and no clock happen here: time comes in with each call,
//! which is what makes the interpreter testable (and, later, replayable from a checkpoint).

use std::collections::VecDeque;

use serde_json::Value;
use stepstone_asl::errors;
use stepstone_asl::timestamp::Timestamp;
use stepstone_asl::{Machine, ScopeRef, StateId};

use crate::failure::Failure;
use crate::history::{EventData, EventKind, History, HistoryMode};
use crate::limits::Limits;
use crate::vars::Vars;
use stepstone_asl::jsonata::Interrupt;

mod children;
mod context;
mod data_flow;
mod jsonata;
mod persist;
pub(crate) mod probe;
mod redrive;
mod retry_catch;
mod runs;
mod states;
mod step;

pub use crate::model::{Command, ExecutionInfo, Input, RunId, Status, TaskRequest, TimerReason};
pub use persist::RestoreError;
pub use redrive::RedriveError;
pub(crate) use runs::{Link, OutputFrom, Run, RunData, Slot, Waiting};

/// How many states one call into the interpreter may enter before it yields to the driver.
pub const STATES_PER_CALL: u32 = 4096;

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

/// One execution of a [`Machine`].
pub struct Execution<'m> {
    pub(crate) machine: &'m Machine,
    pub(crate) info: ExecutionInfo,
    pub(crate) history: History,
    pub(crate) limits: Limits,
    /// The run table (`runs.rs`): reached through its methods, which note what changed.
    slots: Vec<Slot<'m>>,
    pub(crate) free: Vec<u32>,
    pub(crate) ready: VecDeque<RunId>,
    pub(crate) commands: Vec<Command>,
    pub(crate) status: Status,
    pub(crate) now: Timestamp,
    pub(crate) seed: u64,
    pub(crate) states_entered: u64,
    /// Tasks dispatched so far, per state name (see [`TaskRequest::invocation`]).
    pub(crate) dispatches: std::collections::BTreeMap<String, u32>,
    /// Map Runs that ended since the last save: their last records, for the store.
    pub(crate) ended_map_runs: Vec<crate::model::MapRunRecord>,
    /// The last record of each Map Run whose ResultWriter is writing, by the Map's run: once
    /// the writer answers, it is written again with the count of results written. (Not in the
    /// checkpoint: a writer that answers after a restore leaves the count at 0.)
    pub(crate) writing_map_runs: Vec<(RunId, crate::model::MapRunRecord)>,
    /// Events of distributed Maps' child executions since the last save.
    pub(crate) child_events: crate::record::ChildHistories,
    /// Whether child executions' histories are kept (see `RunOptions::child_histories`).
    pub(crate) child_histories: bool,
    /// States this call may still enter (see `advance`).
    budget: u32,
    /// The run whose state just raised a JSONata evaluation failure, and the field: its
    /// EvaluationFailed event is recorded when the failure reaches the run (see
    /// `record_evaluation_failure`). Failures are built through `&self`, hence the cell.
    pub(crate) evaluation_failed: std::cell::RefCell<Option<(RunId, Option<String>)>>,
    /// Set in a TestState: watches and steers the tested state (see `probe.rs`).
    pub(crate) probe: Option<Box<probe::Probe>>,
    /// What the next checkpoint must know beyond the changed runs (see `persist.rs`).
    persisted: persist::Persisted,
    /// The id of the last Map's or Parallel's children.
    pub(crate) next_children: u64,
    /// Children let go of since the last checkpoint whose results the store holds.
    pub(crate) dropped_children: Vec<u64>,
    /// Stops the JSONata evaluation in progress from another thread (StopExecution).
    pub(crate) interrupt: Interrupt,
    /// When the execution times out, on the real clock: no evaluation runs past it.
    pub(crate) evaluation_deadline: Option<std::time::Instant>,
    /// An evaluation was cut short by the interrupt or the execution's deadline: the state it
    /// belonged to neither fails nor goes on, and no run advances any more. The execution is
    /// being stopped or timed out, which the driver applies next (and which freezes every run
    /// where it is, for a redrive).
    pub(crate) interrupted: std::cell::Cell<bool>,
    /// What task tokens are signed with (see `tokens.rs`): the store's key.
    pub(crate) token_key: crate::TokenKey,
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
            ended_map_runs: Vec::new(),
            writing_map_runs: Vec::new(),
            child_events: Default::default(),
            child_histories: true,
            budget: 0,
            evaluation_failed: Default::default(),
            probe: None,
            persisted: persist::Persisted::default(),
            next_children: 0,
            interrupt: Interrupt::new(),
            evaluation_deadline: None,
            interrupted: std::cell::Cell::new(false),
            token_key: crate::tokens::process_key(),
            dropped_children: Vec::new(),
        }
    }

    /// The flag that stops this execution's JSONata evaluation in progress, from any thread
    /// (what StopExecution raises through [`crate::Signals`]).
    pub fn interrupt(&self) -> Interrupt {
        self.interrupt.clone()
    }

    /// No JSONata evaluation runs past `deadline` (when the execution times out, on the real
    /// clock); one cut short there leaves its state for the timeout to freeze.
    pub fn set_evaluation_deadline(&mut self, deadline: Option<std::time::Instant>) {
        self.evaluation_deadline = deadline;
    }

    /// Signs this execution's task tokens with `key` (its store's, so that they are the same
    /// after a resume; by default a key of this process).
    pub fn set_token_key(&mut self, key: crate::TokenKey) {
        self.token_key = key;
    }

    /// Whether an evaluation was cut short by the interrupt or the deadline: the execution
    /// advances no further until it is stopped or timed out.
    pub fn interrupted(&self) -> bool {
        self.interrupted.get()
    }

    /// Starts the execution at `now`; returns the first commands.
    pub fn start(&mut self, now: Timestamp) -> Vec<Command> {
        let root = self.machine.root();
        self.start_at(root, root.start(), Vars::default(), now)
    }

    /// Begins the execution at `now` without entering a state: its ExecutionStarted event is
    /// recorded and its first state is ready for [`Execution::resume`]. A driver stores the
    /// execution and makes it reachable (stop) first, since entering states may take long.
    pub fn begin(&mut self, now: Timestamp) {
        let root = self.machine.root();
        self.begin_at(root, root.start(), Vars::default(), now);
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
        self.begin_at(scope, state, vars, now);
        self.advance();
        std::mem::take(&mut self.commands)
    }

    fn begin_at(&mut self, scope: ScopeRef<'m>, state: StateId, vars: Vars, now: Timestamp) {
        self.now = now;
        let (input, role) = (&self.info.input, &self.info.role_arn);
        // Events an observer reads and drops carry no data: a large input is not copied for
        // them.
        let recording = self.history.recording();
        let id = self.history.push(0, now, || EventKind::ExecutionStarted {
            input: if recording {
                EventData::of(input)
            } else {
                EventData::null()
            },
            role_arn: role.clone(),
        });
        let run = self.spawn(scope, state, self.info.input.clone(), vars, None, id);
        if let Some(probe) = &mut self.probe {
            probe.root = Some(run);
        }
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
                    // A Map waits on a task only for its ItemReader or ResultWriter.
                    let flow = match &self.current(run).1.kind {
                        stepstone_asl::StateKind::Map(map) => self.map_task_done(run, map, result),
                        _ => self.task_done(run, result),
                    };
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
                let failure = Failure::new(errors::TIMEOUT, "The execution timed out.");
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
        for run in self.runs_mut() {
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
            self.abort_child_execution(child);
            self.fall(child);
        }
    }

    /// A distributed Map's child execution stopped because its Map (or the whole execution)
    /// did: its history ends with ExecutionAborted. (No-op for other runs.)
    fn abort_child_execution(&mut self, id: RunId) {
        let Some(last) = self
            .get(id)
            .filter(|r| r.child_start().is_some() && !r.fallen)
            .map(|r| r.last_event)
        else {
            return;
        };
        let (event, names) = self.number_child_event(id);
        if let (Some(arn), true) = (names, self.keeps_child_histories()) {
            let aborted = crate::history::Event {
                id: event,
                previous_event_id: last,
                timestamp: self.now,
                kind: EventKind::ExecutionAborted {
                    error: String::new(),
                    cause: String::new(),
                },
            };
            self.child_events.push(arn, aborted);
        }
    }

    /// Whether distributed Maps' child executions keep their histories (default: yes).
    pub fn set_child_histories(&mut self, keep: bool) {
        self.child_histories = keep;
    }

    /// Whether child executions' events are built and kept.
    pub(crate) fn keeps_child_histories(&self) -> bool {
        self.child_histories && self.history.recording()
    }

    /// Where the execution stands.
    pub fn status(&self) -> &Status {
        &self.status
    }

    /// Its history: the mode, the number of events so far, and the events built since they
    /// were last taken (see [`Execution::take_events`]).
    pub fn history(&self) -> &History {
        &self.history
    }

    /// The events built since the last call (none when the history is off); a driver passes
    /// them on (to a store, an observer, an outcome) and the execution keeps no copy.
    pub fn take_events(&mut self) -> Vec<crate::history::Event> {
        self.history.take_events()
    }

    /// Identity and input.
    pub fn info(&self) -> &ExecutionInfo {
        &self.info
    }

    /// How many states were entered so far.
    pub fn states_entered(&self) -> u64 {
        self.states_entered
    }

    /// The machine's timeout, for the driver.
    pub fn timeout_seconds(&self) -> Option<u64> {
        self.machine.definition().timeout_seconds
    }
}
