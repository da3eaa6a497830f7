//! The `stepstone` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

mod cli;

/// Run AWS Step Functions state machines (Amazon States Language) on your own machine.
#[derive(Parser)]
#[command(name = "stepstone", version, about, long_about = None, after_help = EXAMPLES)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

const EXAMPLES: &str = "\
Examples:
  stepstone validate examples/multi-region-deploy/deploy.asl.json
  stepstone validate deploy.asl.json --json          # ValidateStateMachineDefinition's response
  stepstone graph examples/multi-region-deploy/deploy.asl.json --format dot | dot -Tsvg > deploy.svg
  stepstone run examples/multi-region-deploy/deploy.asl.json --virtual-time \\
      --input-file examples/multi-region-deploy/input.json \\
      --mock-config examples/multi-region-deploy/mock-config.json --test-case HappyPath
  stepstone test-state examples/multi-region-deploy/deploy.asl.json --state CheckStack \\
      --input '{\"stack\": {\"status\": \"UPDATE_IN_PROGRESS\"}}'

Exit status (validate, graph): 0 valid, 1 invalid, 2 unreadable file or bad usage.
Exit status (run): 0 SUCCEEDED, 1 FAILED or TIMED_OUT, 2 invalid definition, input or usage.
Exit status (test-state): 0 SUCCEEDED, RETRIABLE or CAUGHT_ERROR, 1 FAILED, 2 as for run.";

#[derive(Subcommand)]
enum Command {
    /// Run a state machine to its end, in this process.
    ///
    /// Progress goes to standard error while it runs: one timed line per notable event (tasks,
    /// retries, waits, Maps, failures) saying where in the execution it happens, and on a
    /// terminal a status line of the tasks running; the status and output go to standard
    /// output. Exit status: 0 SUCCEEDED, 1 FAILED or TIMED_OUT, 2 for an invalid definition,
    /// input or usage.
    ///
    /// When another `run` (detached or not) or a `serve` owns the store, the execution runs in
    /// that process and this one follows it there, printing the same; its --task commands run
    /// in this directory.
    #[command(
        after_help = "Examples:\n  stepstone run flow.asl.json --input '{\"n\": 1}'\n  stepstone run deploy.asl.json --input-file in.json --virtual-time \\\n      --task arn:aws:states:::lambda:invoke='./prepare.sh'\n  stepstone run loop.asl.json --json --stats --history-limit 0\n\nA --task command reads the task's input as JSON on stdin and prints its result as JSON on\nstdout; a non-zero exit fails the task with the {\"Error\", \"Cause\"} it printed, or\nStates.TaskFailed. It finds STEPSTONE_EXECUTION_ARN, STEPSTONE_STATE_NAME,\nSTEPSTONE_ATTEMPT, STEPSTONE_INVOCATION and STEPSTONE_IDEMPOTENCY_TOKEN in its\nenvironment."
    )]
    Run(cli::run::RunArgs),
    /// Run one state on its own, as Step Functions' TestState API does: see its output, where it
    /// would go next, and (with --inspection-level DEBUG) each step of its data flow.
    ///
    /// The definition is one state or a whole state machine (pick the state with --state; it may
    /// be inside a Map or Parallel, and then runs as its iteration or branch would). A
    /// mock (--mock-result, or --mock-error and --mock-cause) replaces the state's work: no task
    /// is called, and a Map or Parallel (which must be mocked, as in TestState) runs no
    /// iteration or branch. Retry and Catch are
    /// decided, not performed: an error a retrier matches gives RETRIABLE, one a catcher takes
    /// gives CAUGHT_ERROR with the catcher's output and next state. Unmocked tasks go to their
    /// --task command or to AWS; Waits do not wait. Exit status: 0 SUCCEEDED, RETRIABLE or
    /// CAUGHT_ERROR, 1 FAILED, 2 for an invalid definition, input or usage.
    #[command(
        after_help = "Examples:\n  stepstone test-state deploy.asl.json --state CreateStack --input '{\"region\": \"eu-west-1\"}' \\\n      --mock-result '{\"StackId\": \"arn:aws:cloudformation:eu-west-1:123456789012:stack/app/1\"}' \\\n      --inspection-level DEBUG\n  stepstone test-state task.json --mock-error Lambda.TooManyRequestsException \\\n      --retrier-retry-count 2\n  stepstone test-state map.json --mock-result '[1, 1, 0]' --map-iteration-failure-count 1 --json"
    )]
    TestState(cli::test_state::TestStateArgs),
    /// Finish executions that a crash or a kill left RUNNING, from their last checkpoint.
    ///
    /// Tasks that were in flight are dispatched again with the same idempotency token
    /// (STEPSTONE_IDEMPOTENCY_TOKEN); Waits and retry delays end at their original deadlines.
    /// The task routes and clock the execution was started with are used again.
    #[command(
        after_help = "Examples:\n  stepstone resume                      # every RUNNING execution in .stepstone/\n  stepstone resume run-18ebf1d3fcbadd18 --store /var/lib/deploys"
    )]
    Resume {
        /// Executions to resume (ARN or name); all RUNNING ones when none is given.
        executions: Vec<String>,
        #[command(flatten)]
        restart: cli::executions::RestartArgs,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Go on with a FAILED, ABORTED or TIMED_OUT execution from where it stopped
    /// (RedriveExecution), and run it to its end.
    ///
    /// The states that succeeded are not run again; the state that failed is entered again
    /// with the input it had; a Map or Parallel reruns only the iterations and branches that
    /// failed or were stopped, each from where it stopped. The history goes on after an
    /// ExecutionRedriven event, and $$.Execution.RedriveCount counts the redrives. The task
    /// routes and clock the execution was started with are used again.
    #[command(
        after_help = "Examples:\n  stepstone redrive deploy-2026-11-27          # by name\n  stepstone redrive arn:aws:states:us-east-1:123456789012:execution:deploy:deploy-2026-11-27 \\\n      --task arn:aws:states:::lambda:invoke=./fixed-handler.sh"
    )]
    Redrive {
        /// The execution's ARN or name.
        execution: String,
        #[command(flatten)]
        restart: cli::executions::RestartArgs,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Complete a task that waits for its token (.waitForTaskToken) with its result
    /// (SendTaskSuccess).
    ///
    /// The token is the task's $$.Task.Token (a --task command finds it in
    /// STEPSTONE_TASK_TOKEN). The engine running the execution takes it at once; when none runs,
    /// the result is kept in the store and `stepstone resume` goes on from it.
    #[command(
        after_help = "Examples:\n  stepstone send-task-success \"$TOKEN\" '{\"approved\": true}'"
    )]
    SendTaskSuccess {
        /// The task token.
        token: String,
        /// The task's result, as JSON text.
        output: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Fail a task that waits for its token (SendTaskFailure).
    SendTaskFailure {
        /// The task token.
        token: String,
        /// The error, for Retry and Catch.
        #[arg(long)]
        error: Option<String>,
        /// The cause.
        #[arg(long)]
        cause: Option<String>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Tell a task that waits for its token that it is still being worked on
    /// (SendTaskHeartbeat): its HeartbeatSeconds start again.
    SendTaskHeartbeat {
        /// The task token.
        token: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// List the executions in the store, newest first (ListExecutions).
    Executions {
        /// Only these: RUNNING, SUCCEEDED, FAILED, TIMED_OUT.
        #[arg(long)]
        status: Option<String>,
        /// The child executions of this Map Run (a distributed Map's; `stepstone map-runs`
        /// lists an execution's).
        #[arg(long, value_name = "MAP_RUN_ARN")]
        map_run: Option<String>,
        /// ListExecutions' response shape.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Show one execution: status, input, output or error (DescribeExecution); given a Map
    /// Run's ARN, the Map Run: status, item counts (DescribeMapRun).
    Describe {
        /// The execution's ARN or name, or a Map Run's ARN.
        execution: String,
        /// One JSON line, DescribeExecution's shape.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// List the Map Runs of an execution's distributed Maps (ListMapRuns); `describe` shows one.
    MapRuns {
        /// The execution's ARN or name.
        execution: String,
        /// ListMapRuns' response shape, one JSON line.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Show an execution's events (GetExecutionHistory).
    History {
        /// The execution's ARN or name.
        execution: String,
        /// GetExecutionHistory's response shape.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Stop a RUNNING execution: it becomes ABORTED (StopExecution).
    ///
    /// The engine running it (a `run`, `resume` or `redrive` on the same store, detached or
    /// not) stops it at once, through the store's control socket; an execution that no engine
    /// runs (left RUNNING by a crash) is stopped in the store. `stepstone redrive` can take it
    /// up again later.
    Stop {
        /// The execution's ARN or name.
        execution: String,
        /// The error recorded in the ExecutionAborted event.
        #[arg(long)]
        error: Option<String>,
        /// The cause recorded in the ExecutionAborted event.
        #[arg(long)]
        cause: Option<String>,
        /// StopExecution's response shape.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Check a definition the way AWS's ValidateStateMachineDefinition does.
    ///
    /// Every problem is reported, not only the first, each with AWS's code (SCHEMA_VALIDATION_FAILED,
    /// MISSING_TRANSITION_TARGET, ...) and a JSON Pointer to where it is
    /// (/States/Deploy/Retry/0/BackoffRate). Warnings (NO_DOLLAR, NO_PATH, PASS_RESULT_IS_STATIC,
    /// and Stepstone's own STEPSTONE_EXTENSION) do not make the definition invalid.
    #[command(
        after_help = "Examples:\n  stepstone validate deploy.asl.json\n  stepstone validate deploy.asl.json --json | jq .diagnostics\n  stepstone validate express.asl.json --type express"
    )]
    Validate {
        /// The definition (Amazon States Language JSON); `-` reads standard input.
        file: PathBuf,
        /// Print ValidateStateMachineDefinition's response shape as JSON.
        #[arg(long)]
        json: bool,
        /// The kind of state machine: EXPRESS refuses `.sync` and `.waitForTaskToken`.
        #[arg(long = "type", value_enum, default_value_t = MachineKind::Standard)]
        machine_type: MachineKind,
    },
    /// Serve the Step Functions API (AWS JSON 1.0) on this store, for AWS SDKs, the AWS CLI
    /// and other tools: state machines, executions, histories, stops and task callbacks.
    ///
    /// Point a client at the endpoint URL it prints (http://127.0.0.1:8083 by default). Any
    /// number of executions run at once; state machines and executions are kept in the store,
    /// and the executions a restart finds RUNNING go on. Operations not implemented yet answer
    /// UnknownOperationException. boto3 needs `Config(inject_host_prefix=False)` for
    /// StartSyncExecution (its `sync-` host prefix).
    #[command(
        after_help = "Examples:\n  stepstone serve --virtual-time\n  aws stepfunctions --endpoint-url http://127.0.0.1:8083 list-state-machines\n  AWS_ENDPOINT_URL_SFN=http://127.0.0.1:8083 python3 my_test.py"
    )]
    Serve(cli::serve::ServeArgs),
    /// Draw a definition's states and transitions, to look at an orchestration before running it.
    ///
    /// Edges carry their Choice rule, Default, or Catch with its errors; Parallel branches and Map
    /// item processors are drawn as subgraphs (svg and html: as boxes inside their state, laid
    /// out by Stepstone itself, the drawing the execution viewer of `serve` colours).
    #[command(
        after_help = "Examples:\n  stepstone graph deploy.asl.json > deploy.mmd\n  stepstone graph deploy.asl.json --format svg > deploy.svg\n  stepstone graph deploy.asl.json --format html > deploy.html\n  stepstone graph deploy.asl.json --format dot | dot -Tpng > deploy.png"
    )]
    Graph {
        /// The definition (Amazon States Language JSON); `-` reads standard input.
        file: PathBuf,
        /// `mermaid` (renders on GitHub and GitLab), `dot` (Graphviz), `svg` (a drawing, no
        /// other tool needed) or `html` (that drawing in a page to open in a browser).
        #[arg(long, value_enum, default_value_t = GraphFormat::Mermaid)]
        format: GraphFormat,
    },
}

/// Where executions are kept.
#[derive(clap::Args)]
pub(crate) struct StoreArgs {
    /// The store: a directory of checkpoints and histories, or a PostgreSQL database
    /// (`postgres://user:password@host:port/database`: tables made by Stepstone), used by one
    /// engine at a time.
    #[arg(
        long,
        env = "STEPSTONE_STORE",
        default_value = ".stepstone",
        value_name = "DIR|URL"
    )]
    pub(crate) store: PathBuf,
    /// The store's database: redb (the default for a new store: fsynced commits, which survive a
    /// power cut) or sled (flushed writes, which survive a killed process).
    /// An existing store is opened with its own.
    #[arg(long, value_enum)]
    pub(crate) store_engine: Option<cli::StoreEngine>,
}

impl StoreArgs {
    pub(crate) fn spec(&self) -> cli::StoreSpec {
        cli::StoreSpec::of(&self.store, self.store_engine)
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum MachineKind {
    Standard,
    Express,
}

#[derive(Clone, Copy, ValueEnum)]
enum GraphFormat {
    Mermaid,
    Dot,
    Svg,
    Html,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let result = match args.command {
        Command::Resume {
            executions,
            restart,
            store,
        } => cli::executions::resume(&store.spec(), &executions, &restart),
        Command::Redrive {
            execution,
            restart,
            store,
        } => cli::executions::redrive_one(&store.spec(), &execution, &restart),
        Command::SendTaskSuccess {
            token,
            output,
            store,
        } => match serde_json::from_str::<serde_json::Value>(&output) {
            Ok(output) => cli::executions::send_task(
                &store.spec(),
                serde_json::json!({"op": "task-success", "token": token, "output": output}),
            ),
            Err(e) => Err(format!("OUTPUT is not JSON: {e}")),
        },
        Command::SendTaskFailure {
            token,
            error,
            cause,
            store,
        } => cli::executions::send_task(
            &store.spec(),
            serde_json::json!({"op": "task-failure", "token": token, "error": error, "cause": cause}),
        ),
        Command::SendTaskHeartbeat { token, store } => cli::executions::send_task(
            &store.spec(),
            serde_json::json!({"op": "task-heartbeat", "token": token}),
        ),
        Command::Executions {
            status,
            map_run,
            json,
            store,
        } => cli::executions::list(&store.spec(), status.as_deref(), map_run.as_deref(), json),
        Command::Describe {
            execution,
            json,
            store,
        } => cli::executions::describe(&store.spec(), &execution, json),
        Command::MapRuns {
            execution,
            json,
            store,
        } => cli::executions::map_runs(&store.spec(), &execution, json),
        Command::Stop {
            execution,
            error,
            cause,
            json,
            store,
        } => cli::executions::stop(
            &store.spec(),
            &execution,
            error.as_deref(),
            cause.as_deref(),
            json,
        ),
        Command::History {
            execution,
            json,
            store,
        } => cli::executions::history(&store.spec(), &execution, json),
        // In the background: a process of its own runs it, this one reports where.
        Command::Run(args) if args.detach => {
            cli::run::check_names(&args).and_then(|()| cli::detach::start(&args))
        }
        Command::Run(args) => cli::run::run(args),
        Command::Serve(args) => cli::serve::serve(args),
        Command::TestState(args) => cli::test_state::run(args),
        Command::Validate {
            file,
            json,
            machine_type,
        } => {
            let machine_type = match machine_type {
                MachineKind::Standard => stepstone::asl::MachineType::Standard,
                MachineKind::Express => stepstone::asl::MachineType::Express,
            };
            cli::validate::run(&file, json, machine_type)
        }
        Command::Graph { file, format } => {
            let format = match format {
                GraphFormat::Mermaid => stepstone::asl::graph::Format::Mermaid,
                GraphFormat::Dot => stepstone::asl::graph::Format::Dot,
                GraphFormat::Svg => stepstone::asl::graph::Format::Svg,
                GraphFormat::Html => stepstone::asl::graph::Format::Html,
            };
            cli::graph::run(&file, format)
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("stepstone: {e}");
            ExitCode::from(2)
        }
    }
}
