//! `stepstone test-state DEFINITION [--state NAME] [--input JSON] [--mock-result JSON] ...`:
//! one state, run as Step Functions' TestState API runs it.

use std::path::PathBuf;
use std::process::ExitCode;

use serde_json::{Map, Value};
use stepstone::asl::{Options, SINGLE_STATE_NAME, validate, validate_state};
use stepstone::engine::{
    Failure, InspectionLevel, Mock, StateConfiguration, TestState, TestStatus, test_state,
};

use super::launch::{AwsArgs, router};
use super::run::{InputArgs, machine_name, machine_or_report, parse_input};

/// TestState's inspection levels.
#[derive(Clone, Copy, Default, clap::ValueEnum)]
pub(crate) enum Level {
    /// Status, output or error, and the next state.
    #[default]
    Info,
    /// Also each step of the data flow (inspectionData).
    Debug,
    /// As DEBUG.
    Trace,
}

/// What `stepstone test-state` was asked to do.
#[derive(clap::Args)]
pub(crate) struct TestStateArgs {
    /// One state (`{"Type": "Task", ...}`) or a whole state machine (then `--state` picks the
    /// state; default: its StartAt).
    pub(crate) definition: PathBuf,
    /// The state to test in a whole state machine: at its top level or inside a Map or
    /// Parallel (`$$.Map` is then not set: give it with --context).
    #[arg(long, value_name = "NAME")]
    pub(crate) state: Option<String>,
    #[command(flatten)]
    pub(crate) input: InputArgs,
    /// The result of the state's work (a Task's result, a Map's or a Parallel's array), as JSON
    /// text: nothing is called.
    #[arg(long, value_name = "JSON", conflicts_with = "mock_error")]
    pub(crate) mock_result: Option<String>,
    /// The error the state's work fails with: nothing is called.
    #[arg(long, value_name = "ERROR")]
    pub(crate) mock_error: Option<String>,
    /// The cause that goes with --mock-error.
    #[arg(long, value_name = "CAUSE", requires = "mock_error")]
    pub(crate) mock_cause: Option<String>,
    /// INFO: status, output or error, next state. DEBUG and TRACE: also inspectionData, each
    /// step of the data flow.
    #[arg(long, value_enum, value_name = "LEVEL", ignore_case = true, default_value_t = Level::Info)]
    pub(crate) inspection_level: Level,
    /// Variables in scope when the state starts, as a JSON object.
    #[arg(long, value_name = "JSON")]
    pub(crate) variables: Option<String>,
    /// The context object ($$, $states.context), as JSON, in place of the one made up.
    #[arg(long, value_name = "JSON")]
    pub(crate) context: Option<String>,
    /// With a mocked error: the retries the matching retrier has made already.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub(crate) retrier_retry_count: u32,
    /// With a mocked error in a Map or Parallel: the state inside it that raised it.
    #[arg(long, value_name = "NAME", requires = "mock_error")]
    pub(crate) error_caused_by_state: Option<String>,
    /// With a mocked Map result: how many of its iterations failed (held against its
    /// ToleratedFailureCount or ToleratedFailurePercentage).
    #[arg(long, value_name = "N")]
    pub(crate) map_iteration_failure_count: Option<u64>,
    /// For a mocked Map with an ItemReader: the items it read, as a JSON array.
    #[arg(long, value_name = "JSON")]
    pub(crate) map_item_reader_data: Option<String>,
    /// Print TestState's response shape as one JSON line: status, output, error, cause,
    /// nextState, inspectionData (values as JSON, not JSON text).
    #[arg(long)]
    pub(crate) json: bool,
    /// Handle the Tasks whose Resource is RESOURCE with a local command, when not mocked;
    /// repeatable.
    #[arg(long = "task", value_name = "RESOURCE=COMMAND")]
    pub(crate) tasks: Vec<String>,
    #[command(flatten)]
    pub(crate) aws: AwsArgs,
}

pub(crate) fn run(args: TestStateArgs) -> Result<ExitCode, String> {
    let what = args.definition.display().to_string();
    let text = super::read_definition(&args.definition)?;
    let definition: Value =
        serde_json::from_str(&text).map_err(|e| format!("{what} is not JSON: {e}"))?;
    // One state has a Type; a state machine has States.
    let (machine, state) = if definition.get("States").is_none() && definition.get("Type").is_some()
    {
        let name = args.state.as_deref().unwrap_or(SINGLE_STATE_NAME);
        let validation = validate_state(&definition, name, Options::default());
        (machine_or_report(validation, &what)?, name.to_owned())
    } else {
        let machine = machine_or_report(validate(&definition, Options::default()), &what)?;
        let state = match &args.state {
            Some(s) => s.clone(),
            None => machine.definition().scope.start_at.clone(),
        };
        (machine, state)
    };
    let test = TestState {
        input: args.input.read()?,
        mock: mock(&args)?,
        context: args
            .context
            .as_deref()
            .map(|c| parse_input(c, "--context"))
            .transpose()?,
        variables: match args.variables.as_deref() {
            None => Map::new(),
            Some(v) => match parse_input(v, "--variables")? {
                Value::Object(m) => m,
                other => return Err(format!("--variables must be a JSON object, not {other}")),
            },
        },
        inspection_level: match args.inspection_level {
            Level::Info => InspectionLevel::Info,
            Level::Debug => InspectionLevel::Debug,
            Level::Trace => InspectionLevel::Trace,
        },
        configuration: StateConfiguration {
            retrier_retry_count: args.retrier_retry_count,
            error_caused_by_state: args.error_caused_by_state.clone(),
            map_iteration_failure_count: args.map_iteration_failure_count,
            map_item_reader_data: args
                .map_item_reader_data
                .as_deref()
                .map(|d| parse_input(d, "--map-item-reader-data"))
                .transpose()?,
        },
        machine_name: Some(machine_name(&args.definition)),
    };
    let tasks = router(&args.tasks, &args.aws, None, None)?;
    let response = super::launch::runtime()?
        .block_on(test_state(&machine, &state, &test, &tasks))
        .map_err(|e| e.to_string())?;
    if args.json {
        outln!("{}", response.to_json());
    } else {
        print_response(&response.to_json());
    }
    Ok(if response.status == TestStatus::Failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn mock(args: &TestStateArgs) -> Result<Option<Mock>, String> {
    Ok(match (&args.mock_result, &args.mock_error) {
        (Some(result), _) => Some(Mock::Result(parse_input(result, "--mock-result")?)),
        (None, Some(error)) => Some(Mock::Error(Failure::new(
            error.clone(),
            args.mock_cause.clone().unwrap_or_default(),
        ))),
        (None, None) => None,
    })
}

/// The response, one field per line, the inspection data indented below.
fn print_response(response: &Value) {
    for field in ["status", "error", "cause", "nextState", "output"] {
        if let Some(v) = response.get(field) {
            let shown = match v {
                Value::String(s) if field != "output" => s.clone(),
                other => other.to_string(),
            };
            outln!("{field}: {shown}");
        }
    }
    if let Some(Value::Object(data)) = response.get("inspectionData") {
        outln!("inspectionData:");
        for (step, v) in data {
            outln!("  {step}: {v}");
        }
    }
}
