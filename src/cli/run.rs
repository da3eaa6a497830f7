//! `stepstone run DEFINITION [--input JSON | --input-file FILE] ...`

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use serde_json::{Value, json};
use stepstone::asl::{Machine, Options, validate_str};
use stepstone::engine::history::{Event, EventKind, HistoryMode};
use stepstone::engine::store::{CheckpointStore, Error as StoreError};
use stepstone::engine::{
    Limits, Notice, Persistence, RunOptions, Signals, run_durable, run_observed,
};

use super::answers::EVENTS_PER_ANSWER;
use super::executions::query;
use super::guests::Guest;
use super::launch::{AwsArgs, MockArgs, router, runtime};
use super::progress::Progress;
use super::report::{exit_code, print_result, report};
use super::{StoreSpec, control};

/// What `stepstone run` was asked to do.
#[derive(clap::Args)]
pub(crate) struct RunArgs {
    /// The definition (Amazon States Language JSON).
    pub(crate) definition: PathBuf,
    #[command(flatten)]
    pub(crate) input: InputArgs,
    /// Run Waits, retry backoff and timeouts on a virtual clock: they finish at once, while
    /// timestamps advance as if the time had passed.
    #[arg(long)]
    pub(crate) virtual_time: bool,
    /// Print the result as one JSON line: executionArn, name, status, output, error, cause,
    /// startDate, stopDate.
    #[arg(long)]
    pub(crate) json: bool,
    /// Also print the history, as GetExecutionHistory's {"events": [...]}, after the result.
    #[arg(long)]
    pub(crate) history: bool,
    /// Print {"states_entered": N, "elapsed_ms": T} on standard error at the end.
    #[arg(long)]
    pub(crate) stats: bool,
    /// The most history events an execution may have (AWS: 25000); 0 lifts the limit.
    #[arg(long, value_name = "N", default_value_t = 25_000)]
    pub(crate) history_limit: u64,
    /// The largest state output, task input or result, and variable, in bytes (AWS: 262144):
    /// past it the state fails with States.DataLimitExceeded. 0 lifts the limit (a Map whose
    /// results together pass 256 KiB, as a large Map's do).
    #[arg(long, value_name = "BYTES", default_value_t = 256 * 1024)]
    pub(crate) payload_limit: usize,
    /// Keep only this execution's history, not those of its distributed Maps' child
    /// executions (kept by default, as AWS keeps them): a Map over a million items then writes
    /// a million histories fewer. Its Map Runs are still kept and described.
    #[arg(long)]
    pub(crate) no_child_histories: bool,
    /// Handle the Tasks whose Resource is RESOURCE with a local command; repeatable.
    #[arg(long = "task", value_name = "RESOURCE=COMMAND")]
    pub(crate) tasks: Vec<String>,
    /// The execution's name (default: generated).
    #[arg(long)]
    pub(crate) name: Option<String>,
    /// No progress on standard error.
    #[arg(long, short)]
    pub(crate) quiet: bool,
    /// Keep nothing on disk: the execution cannot be resumed after a crash.
    #[arg(long)]
    pub(crate) ephemeral: bool,
    /// Run in the background: print the execution's ARN once it is stored, and return.
    /// Its progress goes to <store>/logs/<name>.log; `stepstone describe`, `history` and
    /// `stop` reach it while it runs.
    #[arg(long, conflicts_with = "ephemeral")]
    pub(crate) detach: bool,
    #[command(flatten)]
    pub(crate) aws: AwsArgs,
    #[command(flatten)]
    pub(crate) mocks: MockArgs,
    /// The state machine's name, in ARNs and the MockConfigFile (default: the definition
    /// file's stem: `deploy.asl.json` is `deploy`).
    #[arg(long, value_name = "NAME")]
    pub(crate) state_machine_name: Option<String>,
    #[command(flatten)]
    pub(crate) store: crate::StoreArgs,
}

impl RunArgs {
    /// Where the execution is kept: `None` with `--ephemeral`.
    pub(crate) fn store(&self) -> Option<super::StoreSpec> {
        (!self.ephemeral).then(|| self.store.spec())
    }
}

/// Runs an execution in this process (`--detach` is started by `detach::start` instead).
pub(crate) fn run(args: RunArgs) -> Result<ExitCode, String> {
    check_names(&args)?;
    let text = super::read_definition(&args.definition)?;
    let machine = compile(&text, &args.definition.display().to_string())?;
    let input = read_input(&args)?;
    for spec in &args.tasks {
        if let Some((resource, _)) = spec.split_once('=')
            && !resource.is_empty()
            && !text.contains(resource)
        {
            eprintln!(
                "stepstone: warning: no Task in {} uses the resource '{resource}'",
                args.definition.display()
            );
        }
    }
    if args.ephemeral && text.contains(".waitForTaskToken") {
        // Callbacks reach an execution through its store's control socket.
        eprintln!(
            "stepstone: warning: with --ephemeral, nothing can answer a task that waits for its \
             token (send-task-success needs a store): only mocked or in-process answers complete it"
        );
    }
    let name = args
        .state_machine_name
        .clone()
        .unwrap_or_else(|| machine_name(&args.definition));
    if let Some(spec) = &args.store() {
        // A store another process owns: the execution runs there.
        let guest = Guest {
            definition: text.clone(),
            input: input.clone(),
            name: args.name.clone().unwrap_or_else(generated_name),
            state_machine_name: name.clone(),
            launch: launch_record(&args),
        };
        if let Some(code) = hand_over(spec, &args, guest)? {
            return Ok(code);
        }
    }
    let router = router(&args.tasks, &args.aws, args.mocks.load(&name)?, None)?;
    let mut options = RunOptions::default();
    options.virtual_time = args.virtual_time;
    options.child_histories = !args.no_child_histories;
    options.name = args.name.clone();
    options.machine_name = name;
    options.limits = Limits::default()
        .with_max_history_events((args.history_limit > 0).then_some(args.history_limit))
        .with_max_payload_bytes(match args.payload_limit {
            0 => usize::MAX,
            bytes => bytes,
        });
    // Progress needs only the notable events: states that pass through are counted, not built.
    options.observed = HistoryMode::Notable;
    let runtime = runtime()?;
    let mut progress = Progress::new(!args.quiet, args.virtual_time);
    let started = Instant::now();
    let mut stored_events = Vec::new();
    let outcome = match &args.store() {
        Some(spec) => {
            // A durable run keeps its whole history, in the store: `stepstone history` reads it.
            options.record_history = true;
            let store: Arc<dyn CheckpointStore> = spec.open()?.into();
            let signals = Signals::default();
            options.signals = Some(signals.clone());
            // Answers `describe`, `history` and `stop` from other processes while this runs,
            // and runs the executions other `run`s on this store hand over.
            let host = super::guests::Host::new(store.clone(), signals.clone());
            let control =
                super::control::serve(&spec.dir, store.clone(), signals, Some(host.clone()));
            let launch = launch_record(&args);
            let observer: Option<&mut (dyn FnMut(Notice<'_>) + Send)> = if args.quiet {
                None
            } else {
                Some(&mut |n| progress.notice(n))
            };
            let outcome = runtime
                .block_on(run_durable(
                    &machine,
                    input,
                    &options,
                    &router,
                    Persistence {
                        store: &*store,
                        definition: &text,
                        launch: &launch,
                    },
                    observer,
                ))
                .map_err(|e| match e {
                    StoreError::AlreadyExists(_) => e.to_string(),
                    e => format!("the execution could not be checkpointed: {e}"),
                })?;
            let guests = host.running();
            if guests > 0 && !args.quiet {
                eprintln!(
                    "stepstone: waiting for {guests} execution(s) that other `stepstone run`s started in this process"
                );
            }
            host.wait();
            if let Some(control) = &control {
                runtime.block_on(control.drain());
            }
            // A durable execution's events are in its store, not in memory.
            if args.history {
                stored_events = store
                    .events(&outcome.info.execution_arn)
                    .map_err(|e| format!("cannot read the history back: {e}"))?;
            }
            outcome
        }
        None => {
            options.record_history = args.history;
            // Without progress there is no observer, so no events are built at all.
            if args.quiet {
                runtime.block_on(stepstone::engine::run(&machine, input, &options, &router))
            } else {
                runtime.block_on(run_observed(&machine, input, &options, &router, &mut |n| {
                    progress.notice(n)
                }))
            }
        }
    };
    let elapsed = started.elapsed();
    progress.finish(&outcome, elapsed.as_secs_f64());
    let history = match &args.store() {
        Some(_) => &stored_events[..],
        None => outcome.history.events(),
    };
    report(&outcome, args.json, args.history.then_some(history));
    if args.stats {
        eprintln!(
            "{}",
            json!({"states_entered": outcome.states_entered, "elapsed_ms": elapsed.as_secs_f64() * 1000.0})
        );
    }
    Ok(exit_code(&outcome))
}

/// What an execution is launched with, kept with it for `resume` and `redrive` (and read by
/// `executions::launch_options`): task routes, clock, limits, AWS settings, mocks, and the
/// directory the commands run in.
pub(crate) fn launch_record(args: &RunArgs) -> Value {
    let dir = std::env::current_dir().ok();
    json!({"tasks": args.tasks, "virtual_time": args.virtual_time,
        "child_histories": !args.no_child_histories,
        "history_limit": args.history_limit, "payload_limit": args.payload_limit,
        "aws": args.aws.to_json(), "mocks": args.mocks.to_json(), "dir": dir})
}

/// An execution name for a run given none, as `--detach` and the engine make them.
pub(crate) fn generated_name() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("run-{nanos:x}")
}

/// The input of an execution (`run`) or of a state (`test-state`).
#[derive(Debug, Clone, Default, clap::Args)]
pub(crate) struct InputArgs {
    /// The input, as JSON text (default `{}`).
    #[arg(long, conflicts_with = "input_file")]
    pub(crate) input: Option<String>,
    /// Read the input from a file (`-`: standard input).
    #[arg(long, value_name = "FILE")]
    pub(crate) input_file: Option<PathBuf>,
}

impl InputArgs {
    /// `--input`, `--input-file`, or `{}`.
    pub(crate) fn read(&self) -> Result<Value, String> {
        Ok(match (&self.input, &self.input_file) {
            (Some(text), _) => parse_input(text, "--input")?,
            (None, Some(file)) => {
                parse_input(&super::read_definition(file)?, &file.display().to_string())?
            }
            (None, None) => json!({}),
        })
    }
}

/// The execution's input: `--input`, `--input-file`, or `{}`.
/// The execution's input, held to the payload limit as StartExecution holds it (AWS refuses an
/// input over 262,144 bytes before the execution starts).
pub(crate) fn read_input(args: &RunArgs) -> Result<Value, String> {
    let input = args.input.read()?;
    if args.payload_limit > 0 {
        let size = serde_json::to_vec(&input).map_or(0, |text| text.len());
        if size > args.payload_limit {
            return Err(format!(
                "the input is {size} bytes (as compact JSON); an execution's input may be at most {} bytes (--payload-limit, 0 lifts it)",
                args.payload_limit
            ));
        }
    }
    Ok(input)
}

/// Validates definition text for running; the diagnostics go to stderr when it is invalid.
pub(crate) fn compile(text: &str, what: &str) -> Result<Machine, String> {
    machine_or_report(validate_str(text, Options::default()), what)
}

/// The validated machine; otherwise its errors go to stderr.
pub(crate) fn machine_or_report(
    validation: stepstone::asl::Validation,
    what: &str,
) -> Result<Machine, String> {
    validation.machine.ok_or_else(|| {
        for d in validation.diagnostics.iter().filter(|d| d.is_error()) {
            eprintln!("{d}");
        }
        format!("{what}: the definition is invalid (see `stepstone validate`)")
    })
}

pub(crate) fn parse_input(text: &str, what: &str) -> Result<Value, String> {
    serde_json::from_str(text).map_err(|e| format!("{what} is not JSON: {e}"))
}

/// The state machine's name: the definition file's stem (`deploy.asl.json` gives `deploy`).
pub(crate) fn machine_name(file: &Path) -> String {
    let stem = file
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("stepstone");
    let stem = stem
        .split('.')
        .next()
        .filter(|s| !s.is_empty())
        .unwrap_or("stepstone");
    stem.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .take(stepstone::engine::MAX_NAME_CHARS)
        .collect()
}

/// Refuses `--name` and `--state-machine-name` unless AWS would accept them (a name becomes
/// part of ARNs and of the log file's name: never a path).
pub(crate) fn check_names(args: &RunArgs) -> Result<(), String> {
    use stepstone::engine::check_name;
    if let Some(name) = &args.name {
        check_name("execution name", name).map_err(|e| format!("--name: {e}"))?;
    }
    if let Some(name) = &args.state_machine_name {
        check_name("state machine name", name).map_err(|e| format!("--state-machine-name: {e}"))?;
    }
    Ok(())
}

/// `run` on a store another process owns: hands the execution over and follows it to its end.
/// `Ok(None)` when no process answers on the store's control socket: the caller runs it.
pub(crate) fn hand_over(
    spec: &StoreSpec,
    args: &RunArgs,
    guest: Guest,
) -> Result<Option<ExitCode>, String> {
    let dir = &spec.dir;
    let Some(pong) = control::request(dir, &json!({"op": "ping"})) else {
        return Ok(None);
    };
    let pid = pong?["pid"].clone();
    let started = Instant::now();
    let arn = match control::request(dir, &json!({"op": "start", "guest": guest.to_json()})) {
        // Gone since the ping: the store is free (or being let go of).
        None => return Ok(None),
        Some(answer) => {
            let answer = answer?;
            if answer["ending"] == true {
                // The owner is ending and takes no more: the store is free in a moment.
                return Ok(None);
            }
            answer["executionArn"]
                .as_str()
                .ok_or("the engine owning the store answered without an ARN")?
                .to_owned()
        }
    };
    if !args.quiet {
        eprintln!(
            "stepstone: the store {} is in use by process {pid}: the execution runs there, \
             followed from here (interrupting this stops the following, not the execution): {arn}",
            spec.display()
        );
    }
    // The owner may end as soon as the execution does (it waits for its guests, no longer):
    // what is left to read then comes from the store. Still RUNNING with no owner, though,
    // it was killed.
    let gone = || {
        format!(
            "the process running {arn} went away before it ended: `stepstone resume {arn}` \
             finishes it"
        )
    };
    let ask = |request: Value| -> Result<Value, String> {
        match control::request(dir, &request) {
            Some(answer) => answer,
            None => {
                let answer = query(spec, request)?;
                if answer["status"] == "RUNNING" {
                    return Err(gone());
                }
                Ok(answer)
            }
        }
    };
    let mut progress = Progress::new(!args.quiet, args.virtual_time);
    let mut after = 0;
    let mut entered = 0u64;
    loop {
        let answer = ask(json!({"op": "events", "execution": arn, "after": after}))?;
        let events = answer["events"].as_array().cloned().unwrap_or_default();
        for event in &events {
            let event: Event = serde_json::from_value(event.clone())
                .map_err(|e| format!("an event of {arn} cannot be read: {e}"))?;
            after = event.id;
            if matches!(event.kind, EventKind::StateEntered { .. }) {
                entered += 1;
            }
            progress.followed(&event);
        }
        if answer["status"] != "RUNNING" && events.len() < EVENTS_PER_ANSWER {
            break;
        }
    }
    let described = ask(json!({"op": "describe", "execution": arn}))?;
    let status = described["status"].as_str().unwrap_or("RUNNING");
    let elapsed = started.elapsed().as_secs_f64();
    progress.ended(status, entered, &arn, elapsed);
    print_result(&described, args.json);
    if args.history {
        let history = ask(json!({"op": "history", "execution": arn}))?;
        outln!("{}", json!({"events": history["events"]}));
    }
    if args.stats {
        eprintln!(
            "{}",
            json!({"states_entered": entered, "elapsed_ms": elapsed * 1000.0})
        );
    }
    Ok(Some(match status {
        "SUCCEEDED" => ExitCode::SUCCESS,
        _ => ExitCode::from(1),
    }))
}
