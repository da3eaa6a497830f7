//! TestState: one state run on its own, as Step Functions' TestState API runs it.
//!
//! The state runs in the ordinary interpreter, with a [`Probe`] attached to the execution. The
//! probe changes four things, and only for the run of the tested state (the root run):
//!
//! - the run stops where the state would hand over to the next one: its output and the name of
//!   that state are the answer (`nextState`);
//! - an error a retrier matches is not retried: the answer is RETRIABLE, with the backoff the
//!   retry would wait (`retrierRetryCount` says how many retries were used already); an error a
//!   catcher takes goes through the catcher (Output, ResultPath, Assign) and the answer is
//!   CAUGHT_ERROR with the catcher's `Next`;
//! - a mocked Map or Parallel state runs no iteration or branch: the mock is its result, or its
//!   error (for a Map, `mapIterationFailureCount` failed iterations are held against its
//!   tolerated failure threshold);
//! - each step of the data flow is recorded (`inspectionData`): the state's input, after
//!   InputPath, after Parameters or Arguments, the result, after ResultSelector, after
//!   ResultPath, and a Map's items and limits.
//!
//! A mocked Task needs no probe: the mock is its task dispatcher. Unmocked tasks go to the
//! dispatcher given. A Map or Parallel must be mocked, as TestState requires. Waits do not
//! wait.

use std::cell::RefCell;
use std::fmt;

use serde_json::{Map, Value, json};
use stepstone_asl::states::{IntegrationPattern, Resource, Retrier};
use stepstone_asl::{Machine, QueryLanguage, ScopeRef, State, StateId, StateKind};

use crate::dispatch::TaskDispatcher;
use crate::driver::{wall_clock, within_timeout};
use crate::failure::Failure;
use crate::history::HistoryMode;
use crate::interpreter::{Command, Execution, ExecutionInfo, Input, RunId, Status};
use crate::limits::Limits;
use crate::vars::Vars;

/// What TestState's `mock` gives in place of the state's work.
#[derive(Debug, Clone, PartialEq)]
pub enum Mock {
    /// The task's (or Map's, or Parallel's) result.
    Result(Value),
    /// The error the state's work fails with.
    Error(Failure),
}

/// TestState's `stateConfiguration`: where a mocked state stands.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StateConfiguration {
    /// Retries already made by the retrier that matches the mocked error.
    pub retrier_retry_count: u32,
    /// For a Map or Parallel with a mocked error: the state inside it the error comes from.
    pub error_caused_by_state: Option<String>,
    /// For a mocked Map: how many of its iterations failed.
    pub map_iteration_failure_count: Option<u64>,
    /// For a mocked Map with an ItemReader: what the reader read (a JSON array).
    pub map_item_reader_data: Option<Value>,
}

/// How much TestState tells.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum InspectionLevel {
    /// Status, output or error, next state.
    #[default]
    Info,
    /// Also `inspectionData`: each step of the data flow.
    Debug,
    /// As DEBUG (TRACE adds the HTTP request and response of HTTP Tasks, which Stepstone does
    /// not run).
    Trace,
}

/// One TestState call's parameters, but the definition and the state.
#[derive(Debug, Clone, Default)]
pub struct TestState {
    /// The state's input.
    pub input: Value,
    /// The result or error that replaces the state's work.
    pub mock: Option<Mock>,
    /// The context object (`$$`, `$states.context`) in place of the one made up for the test.
    pub context: Option<Value>,
    /// Variables in scope when the state starts.
    pub variables: Map<String, Value>,
    /// How much to tell.
    pub inspection_level: InspectionLevel,
    /// Where a mocked state stands.
    pub configuration: StateConfiguration,
    /// The state machine's name in the made-up context (default `TestStateMachine`).
    pub machine_name: Option<String>,
}

/// How the state ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestStatus {
    /// It finished; `next_state` says where the machine would go.
    Succeeded,
    /// It failed, and neither Retry nor Catch handles the error.
    Failed,
    /// It failed, and a retrier would try it again.
    Retriable,
    /// It failed, and a catcher took the error to `next_state`.
    CaughtError,
}

impl TestStatus {
    /// `SUCCEEDED`, `FAILED`, `RETRIABLE`, `CAUGHT_ERROR`.
    pub fn as_str(self) -> &'static str {
        match self {
            TestStatus::Succeeded => "SUCCEEDED",
            TestStatus::Failed => "FAILED",
            TestStatus::Retriable => "RETRIABLE",
            TestStatus::CaughtError => "CAUGHT_ERROR",
        }
    }
}

/// TestState's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct TestStateResponse {
    /// How the state ended.
    pub status: TestStatus,
    /// The state's output (SUCCEEDED, CAUGHT_ERROR).
    pub output: Option<Value>,
    /// The error (FAILED, RETRIABLE, CAUGHT_ERROR).
    pub error: Option<Failure>,
    /// Where the machine goes next, when the state does not end it.
    pub next_state: Option<String>,
    /// Each step of the data flow (DEBUG and TRACE).
    pub inspection_data: Option<Map<String, Value>>,
}

impl TestStateResponse {
    /// TestState's response shape: `status`, `output`, `error`, `cause`, `nextState`,
    /// `inspectionData`, each only when it applies. Unlike the API, which returns JSON text,
    /// the output and the inspected values are JSON values.
    pub fn to_json(&self) -> Value {
        let mut out = Map::new();
        out.insert("status".into(), json!(self.status.as_str()));
        if let Some(o) = &self.output {
            out.insert("output".into(), o.clone());
        }
        if let Some(f) = &self.error {
            out.insert("error".into(), json!(f.error));
            out.insert("cause".into(), json!(f.cause));
        }
        if let Some(n) = &self.next_state {
            out.insert("nextState".into(), json!(n));
        }
        if let Some(d) = &self.inspection_data {
            out.insert("inspectionData".into(), Value::Object(d.clone()));
        }
        Value::Object(out)
    }
}

/// Why a state cannot be tested as asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestStateError(String);

impl fmt::Display for TestStateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TestStateError {}

/// Runs state `state_name` of `machine` as TestState does: a state of the top level, or one
/// inside a Map or Parallel (state names are unique in a definition), which then runs as if
/// its iteration or branch had just reached it (`$$.Map` is not there: give it with
/// `context`). Tasks without a mock go to `tasks`.
pub async fn test_state(
    machine: &Machine,
    state_name: &str,
    test: &TestState,
    tasks: &dyn TaskDispatcher,
) -> Result<TestStateResponse, TestStateError> {
    let root = machine.root();
    let Some((scope, sid)) = find_state(root, state_name) else {
        let names: Vec<&str> = root.states().map(|(_, n, _, _)| n).collect();
        return Err(TestStateError(format!(
            "no state '{state_name}' in the definition (its top-level states: {})",
            names.join(", ")
        )));
    };
    let (_, state, _) = scope.state(sid);
    check(scope, sid, state, test)?;

    let now = wall_clock();
    let machine_name = test.machine_name.as_deref().unwrap_or("TestStateMachine");
    let name = format!("test-state-{:x}", now.unix_nanos as u64);
    let info = ExecutionInfo::new(machine_name, &name, test.input.clone(), now, true);
    let mut execution = Execution::new(machine, info, Limits::default(), HistoryMode::Off);
    execution.probe = Some(Box::new(Probe::new(test)));
    let vars = Vars::from_frames(vec![test.variables.clone()]);
    let mut commands = execution.start_at(scope, sid, vars, now);
    while *execution.status() == Status::Running {
        if commands.is_empty() {
            if !execution.has_ready_runs() {
                return Err(TestStateError(format!(
                    "state '{state_name}' waits for something that will not come"
                )));
            }
            commands = execution.resume(wall_clock());
            continue;
        }
        let mut next = Vec::new();
        for command in commands {
            let input = match command {
                Command::Dispatch(request) => {
                    let run = request.run;
                    let result = match &test.mock {
                        Some(Mock::Result(v)) => Ok(v.clone()),
                        Some(Mock::Error(f)) => Err(f.clone()),
                        None => perform(request, tasks).await?,
                    };
                    Input::TaskDone { run, result }
                }
                // Waits, and the retry delays of a Map's iterations, do not wait.
                Command::Timer { run, .. } => Input::TimerFired { run },
            };
            next.extend(execution.on_input(input, wall_clock()));
        }
        commands = next;
    }
    let probe = execution.probe.take().expect("attached above");
    Ok(probe.response(state, execution.status().clone(), test))
}

/// What TestState answers for a Map or Parallel state without a mock.
pub const UNSUPPORTED_WITHOUT_MOCK: &str = "TestState API does not support Map or Parallel states. Supported state types include: [Task, Wait, Pass, Succeed, Fail, Choice]";

/// Refuses a test that cannot mean anything, naming what is wrong.
fn check(
    root: ScopeRef<'_>,
    sid: StateId,
    state: &State,
    test: &TestState,
) -> Result<(), TestStateError> {
    let (name, _, _) = root.state(sid);
    let kind = state.kind.type_name();
    let fail = |m: String| Err(TestStateError(m));
    let config = &test.configuration;
    if test.mock.is_none() && matches!(state.kind, StateKind::Map(_) | StateKind::Parallel(_)) {
        // AWS's refusal, word for word, and how to go on.
        return fail(format!(
            "{UNSUPPORTED_WITHOUT_MOCK} ('{name}' is a {kind} state: give the result or the error of its {} with a mock)",
            if kind == "Map" {
                "iterations"
            } else {
                "branches"
            }
        ));
    }
    if test.mock.is_some()
        && !matches!(
            state.kind,
            StateKind::Task(_) | StateKind::Map(_) | StateKind::Parallel(_)
        )
    {
        return fail(format!(
            "a mock replaces the work of a Task, Map or Parallel state; '{name}' is a {kind} state"
        ));
    }
    if let StateKind::Task(task) = &state.kind
        && test.mock.is_none()
        && let Some(Resource::Service {
            pattern: IntegrationPattern::WaitForTaskToken,
            ..
        }) = &task.resource
    {
        return fail(format!(
            "'{name}' waits for a task token: give its result with a mock (--mock-result or --mock-error), as TestState requires"
        ));
    }
    if let Some(inner) = &config.error_caused_by_state {
        if !matches!(state.kind, StateKind::Map(_) | StateKind::Parallel(_)) {
            return fail(format!(
                "errorCausedByState applies to Map and Parallel states; '{name}' is a {kind} state"
            ));
        }
        if !matches!(test.mock, Some(Mock::Error(_))) {
            return fail("errorCausedByState needs a mocked error (--mock-error)".into());
        }
        let inside = (0..)
            .map_while(|i| root.child(sid, i))
            .any(|scope| find_state(scope, inner).is_some());
        if !inside {
            return fail(format!(
                "errorCausedByState: no state '{inner}' inside '{name}'"
            ));
        }
    }
    let is_map = matches!(state.kind, StateKind::Map(_));
    if config.map_iteration_failure_count.is_some() && !is_map {
        return fail(format!(
            "mapIterationFailureCount applies to Map states; '{name}' is a {kind} state"
        ));
    }
    if let Some(data) = &config.map_item_reader_data {
        let StateKind::Map(map) = &state.kind else {
            return fail(format!(
                "mapItemReaderData applies to Map states; '{name}' is a {kind} state"
            ));
        };
        if map.item_reader.is_none() {
            return fail(format!("mapItemReaderData: '{name}' has no ItemReader"));
        }
        if !data.is_array() {
            return fail("mapItemReaderData must be a JSON array".into());
        }
    }
    Ok(())
}

/// The state named `name` in `scope` or a scope nested in it, with its scope.
fn find_state<'m>(scope: ScopeRef<'m>, name: &str) -> Option<(ScopeRef<'m>, StateId)> {
    scope.states().find_map(|(id, n, _, _)| {
        if n == name {
            return Some((scope, id));
        }
        (0..)
            .map_while(|i| scope.child(id, i))
            .find_map(|s| find_state(s, name))
    })
}

/// An unmocked task, through `tasks`, within its TimeoutSeconds.
async fn perform(
    request: crate::interpreter::TaskRequest,
    tasks: &dyn TaskDispatcher,
) -> Result<Result<Value, Failure>, TestStateError> {
    if request.task_token.is_some() && !tasks.answers_callbacks(&request) {
        return Err(TestStateError(format!(
            "task '{}' waits for a task token, which nothing will send during a test: mock it",
            request.state_name
        )));
    }
    let (timeout, state) = (request.timeout_seconds, request.state_name.clone());
    let task = tasks.dispatch(request);
    Ok(within_timeout(task, timeout, &state).await)
}

/// A data-flow step the inspection records (TestState's `inspectionData` field names).
pub(crate) mod step {
    pub(crate) const AFTER_INPUT_PATH: &str = "afterInputPath";
    pub(crate) const AFTER_PARAMETERS: &str = "afterParameters";
    pub(crate) const AFTER_ARGUMENTS: &str = "afterArguments";
    pub(crate) const RESULT: &str = "result";
    pub(crate) const AFTER_RESULT_SELECTOR: &str = "afterResultSelector";
    pub(crate) const AFTER_RESULT_PATH: &str = "afterResultPath";
    pub(crate) const AFTER_ITEMS_PATH: &str = "afterItemsPath";
    pub(crate) const MAX_CONCURRENCY: &str = "maxConcurrency";
    pub(crate) const TOLERATED_FAILURE_COUNT: &str = "toleratedFailureCount";
    pub(crate) const TOLERATED_FAILURE_PERCENTAGE: &str = "toleratedFailurePercentage";
}

/// The steps TestState shows for each kind of state, as recorded from AWS (the conformance
/// corpus' test_state cases): a Pass with `Result` shows neither InputPath nor Parameters (it
/// reads neither); a Parallel shows only what follows its branches; a JSONata state shows its
/// Arguments, result and a Map's limits, and no JSONPath step.
fn shown_steps(state: &State) -> &'static [&'static str] {
    use step::*;
    let jsonata = state.query_language == QueryLanguage::Jsonata;
    match &state.kind {
        StateKind::Task(_) if jsonata => &[AFTER_ARGUMENTS, RESULT],
        StateKind::Map(_) if jsonata => &[
            MAX_CONCURRENCY,
            TOLERATED_FAILURE_COUNT,
            TOLERATED_FAILURE_PERCENTAGE,
        ],
        _ if jsonata => &[],
        StateKind::Pass(p) if p.result.is_some() => {
            &[RESULT, AFTER_RESULT_SELECTOR, AFTER_RESULT_PATH]
        }
        StateKind::Pass(_) => &[
            AFTER_INPUT_PATH,
            AFTER_PARAMETERS,
            AFTER_RESULT_SELECTOR,
            AFTER_RESULT_PATH,
        ],
        StateKind::Task(_) => &[
            AFTER_INPUT_PATH,
            AFTER_PARAMETERS,
            RESULT,
            AFTER_RESULT_SELECTOR,
            AFTER_RESULT_PATH,
        ],
        StateKind::Parallel(_) => &[AFTER_RESULT_SELECTOR, AFTER_RESULT_PATH],
        StateKind::Map(_) => &[
            AFTER_INPUT_PATH,
            AFTER_ITEMS_PATH,
            AFTER_RESULT_SELECTOR,
            AFTER_RESULT_PATH,
            MAX_CONCURRENCY,
            TOLERATED_FAILURE_COUNT,
            TOLERATED_FAILURE_PERCENTAGE,
        ],
        StateKind::Choice(_) | StateKind::Succeed(_) | StateKind::Fail(_) | StateKind::Wait(_) => {
            &[AFTER_INPUT_PATH]
        }
    }
}

/// What the interpreter consults and records while it runs the tested state (see the module
/// documentation).
pub(crate) struct Probe {
    pub(crate) mock: Option<Mock>,
    pub(crate) context: Option<Value>,
    pub(crate) configuration: StateConfiguration,
    /// The root run, once started.
    pub(crate) root: Option<RunId>,
    /// Data-flow steps recorded so far (the interpreter records through `&self`).
    pub(crate) steps: RefCell<Map<String, Value>>,
    /// The state the machine would go to next.
    pub(crate) next_state: Option<String>,
    /// A retrier matched: its index and the delay before the retry, in seconds.
    pub(crate) retry: Option<(usize, f64)>,
    /// A catcher took the error: its index and the error.
    pub(crate) caught: Option<(usize, Failure)>,
    /// The variables when the state ended.
    pub(crate) variables: Map<String, Value>,
}

impl Probe {
    /// Kept out of line: executions that are not a TestState only test `probe.is_some()`.
    #[cold]
    #[inline(never)]
    fn record(&self, id: RunId, step: &'static str, value: impl FnOnce() -> Value) {
        if self.root == Some(id) {
            self.steps.borrow_mut().insert(step.into(), value());
        }
    }

    fn new(test: &TestState) -> Probe {
        Probe {
            mock: test.mock.clone(),
            context: test.context.clone(),
            configuration: test.configuration.clone(),
            root: None,
            steps: RefCell::new(Map::new()),
            next_state: None,
            retry: None,
            caught: None,
            variables: Map::new(),
        }
    }

    /// A retrier matched the tested state's error: RETRIABLE (with the delay the retry would
    /// wait, from the retries already made) unless the retrier is spent. Jitter is left out:
    /// the delay shown is the backoff's ceiling.
    pub(crate) fn retriable(&mut self, index: usize, retrier: &Retrier) -> bool {
        let used = self.configuration.retrier_retry_count;
        if u64::from(used) >= retrier.max_attempts {
            return false;
        }
        self.retry = Some((index, retrier.interval_after(used)));
        true
    }

    fn response(self, state: &State, status: Status, test: &TestState) -> TestStateResponse {
        let (status, output, error) = match status {
            Status::Succeeded(output) => match &self.caught {
                Some((_, f)) => (TestStatus::CaughtError, Some(output), Some(f.clone())),
                None => (TestStatus::Succeeded, Some(output), None),
            },
            Status::Failed(f) | Status::TimedOut(f) | Status::Aborted(f) => {
                if self.retry.is_some() {
                    (TestStatus::Retriable, None, Some(f))
                } else {
                    (TestStatus::Failed, None, Some(f))
                }
            }
            Status::Running => unreachable!("the test runs until the state ends"),
        };
        let inspection_data = (test.inspection_level != InspectionLevel::Info).then(|| {
            let mut steps = self.steps.into_inner();
            let mut data = Map::new();
            data.insert("input".into(), test.input.clone());
            for step in shown_steps(state) {
                if let Some(v) = steps.remove(*step) {
                    data.insert((*step).into(), v);
                }
            }
            if let Some((index, delay)) = self.retry {
                data.insert(
                    "errorDetails".into(),
                    json!({"retryBackoffIntervalSeconds": seconds(delay), "retryIndex": index}),
                );
            }
            if let Some((index, _)) = &self.caught {
                data.insert("errorDetails".into(), json!({"catchIndex": index}));
            }
            if !self.variables.is_empty() {
                data.insert("variables".into(), Value::Object(self.variables));
            }
            data
        });
        TestStateResponse {
            status,
            output,
            error,
            next_state: self.next_state,
            inspection_data,
        }
    }
}

/// Whole seconds as an integer, as AWS shows them; a fraction as it is.
fn seconds(s: f64) -> Value {
    if s.fract() == 0.0 && s < 9e15 {
        json!(s as u64)
    } else {
        json!(s)
    }
}

impl Execution<'_> {
    /// Whether run `id` is the tested state's run of a TestState: the one the probe watches.
    #[inline]
    pub(crate) fn probed(&self, id: RunId) -> bool {
        self.probe.as_ref().is_some_and(|p| p.root == Some(id))
    }

    /// Records a data-flow step of the tested state (nothing outside a TestState).
    #[inline(always)]
    pub(crate) fn inspect(&self, id: RunId, step: &'static str, value: impl FnOnce() -> Value) {
        if let Some(probe) = &self.probe {
            probe.record(id, step, value);
        }
    }

    /// The mocked result or error of the tested Map or Parallel state, which then runs no
    /// child.
    pub(crate) fn probe_mock(&self, id: RunId) -> Option<Result<Value, Failure>> {
        if !self.probed(id) {
            return None;
        }
        match self.probe.as_ref()?.mock.as_ref()? {
            Mock::Result(v) => Some(Ok(v.clone())),
            Mock::Error(f) => Some(Err(f.clone())),
        }
    }

    /// The tested state hands over to `next`: the test ends there.
    pub(crate) fn probe_stops_before(&mut self, id: RunId, next: StateId) -> bool {
        if !self.probed(id) {
            return false;
        }
        let (name, _, _) = self.run(id).scope.state(next);
        if let Some(probe) = &mut self.probe {
            probe.next_state = Some(name.to_owned());
        }
        true
    }

    /// The tested state ended: keep its variables for the inspection.
    pub(crate) fn probe_keep_variables(&mut self, id: RunId) {
        if !self.probed(id) {
            return;
        }
        let variables: Map<String, Value> =
            self.run(id).vars.frames().into_iter().flatten().collect();
        if let Some(probe) = &mut self.probe {
            probe.variables = variables;
        }
    }

    /// The items a mocked Map with an ItemReader iterates over: `mapItemReaderData`.
    pub(crate) fn probe_reader_items(&self) -> Option<Value> {
        self.probe
            .as_ref()?
            .configuration
            .map_item_reader_data
            .clone()
    }

    /// For a mocked Map that succeeded: whether `mapIterationFailureCount` failed iterations
    /// exceed its tolerated failure threshold. A Map without ToleratedFailureCount or
    /// ToleratedFailurePercentage is not held to one (as AWS answers).
    pub(crate) fn probe_exceeds_tolerance(
        &self,
        items: usize,
        count: Option<i64>,
        percentage: Option<f64>,
    ) -> bool {
        let Some(failed) = self
            .probe
            .as_ref()
            .and_then(|p| p.configuration.map_iteration_failure_count)
        else {
            return false;
        };
        count.is_some_and(|n| failed as i64 > n)
            || percentage.is_some_and(|p| items > 0 && failed as f64 * 100.0 / items as f64 > p)
    }
}
