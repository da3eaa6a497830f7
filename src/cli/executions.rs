//! `stepstone resume`, `redrive`, `executions`, `describe`, `history`, `stop`: the executions
//! in a store.
//!
//! The reading commands and `stop` are requests (`answers.rs`), answered with the AWS API's
//! response shapes: by the engine that owns the store while one runs (through the control
//! socket), otherwise from the store directly.

use std::process::ExitCode;
use std::time::Instant;

use serde_json::{Value, json};
use stepstone::engine::store::{CheckpointStore, ExecutionRecord};
use stepstone::engine::{
    Notice, Outcome, ResumeError, Signals, Status, load_stored, redrive, resume as resume_execution,
};

use super::answers::{answer, find};
use super::launch::{AwsArgs, launch_options, runtime};
use super::progress::Progress;
use super::report::{exit_code, report};
use super::{StoreSpec, control};

/// Answers `request` through the engine that owns the store, or from the store when none runs.
/// A request to the engine that owns the store, or, when none does, answered from the store.
pub(crate) fn query(dir: &StoreSpec, request: Value) -> Result<Value, String> {
    if let Some(answered) = control::request(&dir.dir, &request) {
        return answered;
    }
    let store = dir.open_existing()?;
    runtime()?.block_on(answer(&*store, &Signals::default(), &request))
}

/// `stepstone executions [--status S]`: ListExecutions.
pub(crate) fn list(
    dir: &StoreSpec,
    status: Option<&str>,
    map_run: Option<&str>,
    as_json: bool,
) -> Result<ExitCode, String> {
    let listed = if dir.exists()? {
        query(
            dir,
            json!({"op": "list", "status": status, "mapRun": map_run}),
        )?
    } else {
        // Nothing was ever run here.
        json!({"executions": []})
    };
    if as_json {
        outln!("{listed}");
        return Ok(ExitCode::SUCCESS);
    }
    for e in listed["executions"].as_array().into_iter().flatten() {
        let text = |key: &str| e[key].as_str().unwrap_or("-").to_owned();
        outln!(
            "{:<10} {}  {}  {}",
            text("status"),
            text("startDate"),
            text("stopDate"),
            text("executionArn")
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `stepstone describe EXECUTION`: DescribeExecution.
pub(crate) fn describe(
    dir: &StoreSpec,
    execution: &str,
    as_json: bool,
) -> Result<ExitCode, String> {
    // A Map Run's ARN: DescribeMapRun.
    let request = match execution.contains(":mapRun:") {
        true => json!({"op": "describe-map-run", "mapRun": execution}),
        false => json!({"op": "describe", "execution": execution}),
    };
    let described = query(dir, request)?;
    if as_json {
        outln!("{described}");
    } else {
        outln!(
            "{}",
            serde_json::to_string_pretty(&described).unwrap_or_default()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `stepstone map-runs EXECUTION`: ListMapRuns, the Map Runs of an execution's distributed Maps.
pub(crate) fn map_runs(
    dir: &StoreSpec,
    execution: &str,
    as_json: bool,
) -> Result<ExitCode, String> {
    let listed = query(dir, json!({"op": "map-runs", "execution": execution}))?;
    if as_json {
        outln!("{listed}");
        return Ok(ExitCode::SUCCESS);
    }
    for run in listed["mapRuns"].as_array().into_iter().flatten() {
        let text = |k: &str| run[k].as_str().unwrap_or("-").to_owned();
        outln!(
            "{}  {}  {}",
            text("startDate"),
            text("stopDate"),
            text("mapRunArn")
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `stepstone history EXECUTION`: GetExecutionHistory.
pub(crate) fn history(dir: &StoreSpec, execution: &str, as_json: bool) -> Result<ExitCode, String> {
    let request = json!({"op": "history", "execution": execution});
    // An engine running on the store answers through its socket; otherwise the history is read
    // from the store and printed as it is read, a page at a time: a million-item Map's seven
    // million events are never held at once.
    if let Some(answered) = control::request(&dir.dir, &request) {
        let history = answered?;
        let events = history["events"].as_array().into_iter().flatten();
        return print_events(events.map(Clone::clone), as_json);
    }
    let store = dir.open_existing()?;
    // A distributed Map's child execution is not listed: its ARN names its history.
    let arn = match find(&*store, execution) {
        Ok(record) => record.execution_arn,
        Err(e) if execution.contains(":execution:") => {
            if crate::cli::answers::describe_child_execution(&*store, execution)?.is_none() {
                return Err(e);
            }
            execution.to_owned()
        }
        Err(e) => return Err(e),
    };
    let mut printer = EventPrinter::new(as_json);
    let mut gone = false;
    store
        .each_event(&arn, &mut |event| {
            gone = printer.print(std::iter::once(event.to_json())).is_err();
            !gone
        })
        .map_err(|e| e.to_string())?;
    if !gone {
        let _ = printer.finish();
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints events as `history` shows them: GetExecutionHistory's `{"events": [...]}`, or a line
/// each. A reader that went away (`| head`) ends the printing quietly.
fn print_events(events: impl Iterator<Item = Value>, as_json: bool) -> Result<ExitCode, String> {
    let mut printer = EventPrinter::new(as_json);
    let _ = printer.print(events).and_then(|()| printer.finish());
    Ok(ExitCode::SUCCESS)
}

/// Writes events to standard output as they come.
struct EventPrinter {
    out: std::io::BufWriter<std::io::Stdout>,
    as_json: bool,
    first: bool,
}

impl EventPrinter {
    fn new(as_json: bool) -> EventPrinter {
        EventPrinter {
            out: std::io::BufWriter::new(std::io::stdout()),
            as_json,
            first: true,
        }
    }

    fn print(&mut self, events: impl Iterator<Item = Value>) -> std::io::Result<()> {
        use std::io::Write;
        for e in events {
            if self.as_json {
                let open = if self.first { "{\"events\":[" } else { "," };
                write!(self.out, "{open}{e}")?;
            } else {
                writeln!(
                    self.out,
                    "{:>5}  {}  {}",
                    e["id"],
                    e["timestamp"].as_str().unwrap_or_default(),
                    e["type"].as_str().unwrap_or_default()
                )?;
            }
            self.first = false;
        }
        Ok(())
    }

    fn finish(&mut self) -> std::io::Result<()> {
        use std::io::Write;
        if self.as_json {
            let open = if self.first { "{\"events\":[" } else { "" };
            writeln!(self.out, "{open}]}}")?;
        }
        self.out.flush()
    }
}

/// `stepstone stop EXECUTION [--error E --cause C]`: StopExecution. The execution becomes
/// ABORTED with an ExecutionAborted event; its in-flight tasks are abandoned.
pub(crate) fn stop(
    dir: &StoreSpec,
    execution: &str,
    error: Option<&str>,
    cause: Option<&str>,
    as_json: bool,
) -> Result<ExitCode, String> {
    let stopped = query(
        dir,
        json!({"op": "stop", "execution": execution, "error": error, "cause": cause}),
    )?;
    if as_json {
        outln!("{stopped}");
    } else {
        outln!("ABORTED {execution}");
    }
    Ok(ExitCode::SUCCESS)
}

/// `stepstone send-task-success TOKEN OUTPUT`, `send-task-failure TOKEN`,
/// `send-task-heartbeat TOKEN`: SendTaskSuccess, SendTaskFailure and SendTaskHeartbeat.
pub(crate) fn send_task(dir: &StoreSpec, request: Value) -> Result<ExitCode, String> {
    query(dir, request)?;
    Ok(ExitCode::SUCCESS)
}

/// What `resume` and `redrive` do with one stored execution.
#[derive(Clone, Copy)]
enum Restart {
    Resume,
    Redrive,
}

/// `stepstone resume [EXECUTION...]`: finishes RUNNING executions (all of them by default),
/// with the task routes and clock they were started with, plus any `--task` given now.
pub(crate) fn resume(
    dir: &StoreSpec,
    executions: &[String],
    args: &RestartArgs,
) -> Result<ExitCode, String> {
    if executions.is_empty() && !dir.exists()? {
        // Nothing was ever started here, so nothing is left to finish.
        return Ok(ExitCode::SUCCESS);
    }
    let store = dir.open_existing()?;
    let records: Vec<ExecutionRecord> = if executions.is_empty() {
        store
            .list()
            .map_err(|e| e.to_string())?
            .into_iter()
            .filter(|r| r.status == "RUNNING")
            .collect()
    } else {
        executions
            .iter()
            .map(|e| find(&*store, e))
            .collect::<Result<_, _>>()?
    };
    if records.is_empty() {
        eprintln!("stepstone: nothing to resume in {}", dir.display());
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(r) = records.iter().find(|r| r.status != "RUNNING") {
        return Err(format!(
            "{} is {}, not RUNNING (see `stepstone redrive` for failed executions)",
            r.execution_arn, r.status
        ));
    }
    restart(dir, store, &records, args, Restart::Resume)
}

/// `stepstone redrive EXECUTION`: RedriveExecution, then runs it to its end.
pub(crate) fn redrive_one(
    dir: &StoreSpec,
    execution: &str,
    args: &RestartArgs,
) -> Result<ExitCode, String> {
    let store = dir.open_existing()?;
    let record = find(&*store, execution)?;
    restart(dir, store, &[record], args, Restart::Redrive)
}

/// What `resume` and `redrive` were asked, besides which executions.
#[derive(clap::Args)]
pub(crate) struct RestartArgs {
    /// More task routes, added to the ones the execution was started with.
    #[arg(long = "task", value_name = "RESOURCE=COMMAND")]
    pub(crate) tasks: Vec<String>,
    /// AWS settings replacing the ones the execution was started with.
    #[command(flatten)]
    pub(crate) aws: AwsArgs,
    /// Print each result as one JSON line.
    #[arg(long)]
    pub(crate) json: bool,
    /// No progress on standard error.
    #[arg(long, short)]
    pub(crate) quiet: bool,
}

/// Drives stored executions one after the other, with the task routes and clock they were
/// started with (their launch record) plus `extra_tasks`, answering on the control socket
/// meanwhile.
fn restart(
    dir: &StoreSpec,
    store: Box<dyn CheckpointStore>,
    records: &[ExecutionRecord],
    args: &RestartArgs,
    how: Restart,
) -> Result<ExitCode, String> {
    let quiet = args.quiet;
    let store: std::sync::Arc<dyn CheckpointStore> = store.into();
    let runtime = runtime()?;
    let signals = Signals::default();
    // A resume or redrive takes no guests: it ends when its executions do.
    let server = control::serve(&dir.dir, store.clone(), signals.clone(), None);
    let mut code = ExitCode::SUCCESS;
    let mut unfinished = Vec::new();
    for record in records {
        let arn = &record.execution_arn;
        // One execution that cannot be restarted (an unreadable record, a mock file gone)
        // is reported, and the others still go on.
        let restarted = (|| -> Result<Outcome, String> {
            let (stored, machine) = load_stored(&*store, arn).map_err(|e| e.to_string())?;
            let (routes, mut options) = launch_options(
                &stored.launch,
                &stored.checkpoint.info.state_machine_name,
                &args.tasks,
                &args.aws,
            )?;
            options.signals = Some(signals.clone());
            if !quiet {
                let verb = match how {
                    Restart::Resume => "resuming",
                    Restart::Redrive => "redriving",
                };
                eprintln!("{verb} {arn}");
            }
            let mut progress = Progress::new(!quiet, options.virtual_time);
            let started = Instant::now();
            let observer: Option<&mut (dyn FnMut(Notice<'_>) + Send)> = if quiet {
                None
            } else {
                Some(&mut |n| progress.notice(n))
            };
            let outcome: Result<Outcome, ResumeError> = runtime.block_on(async {
                match how {
                    Restart::Resume => {
                        resume_execution(
                            &machine,
                            stored.checkpoint,
                            &options,
                            &routes,
                            &*store,
                            observer,
                        )
                        .await
                    }
                    Restart::Redrive => {
                        redrive(
                            &machine,
                            stored.checkpoint,
                            &options,
                            &routes,
                            &*store,
                            observer,
                        )
                        .await
                    }
                }
            });
            let outcome = outcome.map_err(|e| e.to_string())?;
            progress.finish(&outcome, started.elapsed().as_secs_f64());
            Ok(outcome)
        })();
        if let Some(server) = &server {
            runtime.block_on(server.drain());
        }
        match restarted {
            Ok(outcome) => {
                report(&outcome, args.json, None);
                if !matches!(outcome.status, Status::Succeeded(_)) {
                    code = exit_code(&outcome);
                }
            }
            Err(e) => {
                let verb = match how {
                    Restart::Resume => "resume",
                    Restart::Redrive => "redrive",
                };
                eprintln!("stepstone: cannot {verb} {arn}: {e}");
                unfinished.push(arn.as_str());
            }
        }
    }
    if !unfinished.is_empty() {
        return Err(format!(
            "{} of {} executions could not be restarted (see above); the others went on",
            unfinished.len(),
            records.len()
        ));
    }
    Ok(code)
}

//END
