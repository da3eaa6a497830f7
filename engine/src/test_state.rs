//! TestState: one state run on its own, as Step Functions' TestState API runs it.
//!
//! The state runs in the ordinary interpreter, with a probe (`interpreter/probe.rs`) attached to the execution. The
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

use std::fmt;

use serde_json::{Map, Value, json};
use stepstone_asl::states::{IntegrationPattern, Resource};
use stepstone_asl::{Machine, QueryLanguage, ScopeRef, State, StateId, StateKind};

use crate::clock::wall_clock;
use crate::dispatch::{TaskDispatcher, within_timeout};
use crate::failure::Failure;
use crate::history::HistoryMode;
use crate::interpreter::probe::{Probe, step};
use crate::interpreter::{Command, Execution, ExecutionInfo, Input, Status};
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
    execution.attach_probe(probe_for(test));
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
    let probe = execution.detach_probe().expect("attached above");
    Ok(response(probe, state, execution.status().clone(), test))
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

/// The probe a TestState call attaches: its mock and configuration, the interpreter's terms.
fn probe_for(test: &TestState) -> Probe {
    Probe {
        mock: test.mock.clone().map(|mock| match mock {
            Mock::Result(v) => Ok(v),
            Mock::Error(f) => Err(f),
        }),
        context: test.context.clone(),
        retrier_retry_count: test.configuration.retrier_retry_count,
        map_iteration_failure_count: test.configuration.map_iteration_failure_count,
        map_item_reader_data: test.configuration.map_item_reader_data.clone(),
        ..Probe::default()
    }
}

/// TestState's answer, from what the probe saw and how the state ended.
fn response(probe: Probe, state: &State, status: Status, test: &TestState) -> TestStateResponse {
    let (status, output, error) = match status {
        Status::Succeeded(output) => match &probe.caught {
            Some((_, f)) => (TestStatus::CaughtError, Some(output), Some(f.clone())),
            None => (TestStatus::Succeeded, Some(output), None),
        },
        Status::Failed(f) | Status::TimedOut(f) | Status::Aborted(f) => {
            if probe.retry.is_some() {
                (TestStatus::Retriable, None, Some(f))
            } else {
                (TestStatus::Failed, None, Some(f))
            }
        }
        Status::Running => unreachable!("the test runs until the state ends"),
    };
    let inspection_data = (test.inspection_level != InspectionLevel::Info).then(|| {
        let mut steps = probe.steps.into_inner();
        let mut data = Map::new();
        data.insert("input".into(), test.input.clone());
        for step in shown_steps(state) {
            if let Some(v) = steps.remove(*step) {
                data.insert((*step).into(), v);
            }
        }
        if let Some((index, delay)) = probe.retry {
            data.insert(
                "errorDetails".into(),
                json!({"retryBackoffIntervalSeconds": seconds(delay), "retryIndex": index}),
            );
        }
        if let Some((index, _)) = &probe.caught {
            data.insert("errorDetails".into(), json!({"catchIndex": index}));
        }
        if !probe.variables.is_empty() {
            data.insert("variables".into(), Value::Object(probe.variables));
        }
        data
    });
    TestStateResponse {
        status,
        output,
        error,
        next_state: probe.next_state,
        inspection_data,
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
