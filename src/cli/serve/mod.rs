//! `stepstone serve`: the Step Functions API (AWS JSON 1.0) over HTTP, on a store this process
//! owns, running any number of executions at once.
//!
//! A request is `POST /` with `X-Amz-Target: AWSStepFunctions.<Operation>` and a JSON body; the
//! answer is the operation's JSON, or AWS's error shape `{"__type": "...", "message": "..."}`
//! with status 400. Any Host is accepted, so SDKs need only an endpoint URL; with
//! `--credentials`, only requests signed with one of its keys (`sigv4`). State machines
//! are kept in the store with the executions; a restart resumes the RUNNING executions.
//!
//! This is the first part of the service (issue 13): state machines (create, update,
//! describe, list, delete, tags), ValidateStateMachineDefinition, executions (start, start
//! sync for EXPRESS, describe, list, history, stop, redrive, the state machine of one), task
//! callbacks, activities and their workers (`activities`), TestState; lists and histories are paged (`maxResults`, `nextToken`). Any other operation
//! answers UnknownOperationException naming it.

use std::net::IpAddr;
use std::rc::Rc;
use std::sync::Arc;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use serde_json::{Value, json};
use stepstone::asl::{MachineType, Options, validate_str};
use stepstone::engine::store::{CheckpointStore, ExecutionRecord, StateMachineRecord};
use stepstone::engine::{
    Limits, Persistence, RunOptions, Signals, check_name, load_stored, resume, run_durable,
};

mod activities;
mod children;
mod map_runs;
mod shared;
mod sigv4;
mod tasks;
mod versions;
mod viewer;

use super::StoreSpec;
use super::answers::{
    answer, describe_child_execution, describe_execution, list_child_executions, list_executions,
};
use super::launch::{AwsArgs, MockArgs, launch_options, router};

/// The account and region of every ARN the service makes (the engine's).
const ARN_PREFIX: &str = "arn:aws:states:us-east-1:123456789012";

/// The most HTTP connections served at once: a quarter of the descriptors this process may
/// open (the rest stay for stores, sockets and task commands), between 8 and 256.
fn max_connections() -> usize {
    #[cfg(unix)]
    {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes the struct it is given, nothing else.
        if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0 {
            let quarter = usize::try_from(limit.rlim_cur / 4).unwrap_or(usize::MAX);
            return quarter.clamp(8, 256);
        }
    }
    256
}

/// The largest request body accepted: a definition may be 1 MB, an input 256 KiB.
const MAX_BODY: usize = 4 << 20;

/// The longest execution input StartExecution accepts, in bytes of its text (AWS's).
const MAX_INPUT_BYTES: usize = 256 * 1024;

/// What `stepstone serve` was asked.
#[derive(clap::Args)]
pub(crate) struct ServeArgs {
    /// The port to listen on (0: any free port; the one taken is printed).
    #[arg(long, default_value_t = 8083)]
    pub(crate) port: u16,
    /// The address to listen on. Beyond loopback (127.0.0.1, ::1) --credentials is required.
    #[arg(long, default_value = "127.0.0.1")]
    pub(crate) bind: IpAddr,
    /// Answer only requests signed (AWS Signature Version 4) with one of the access keys in
    /// FILE, an AWS shared-credentials file (`aws_access_key_id` and `aws_secret_access_key`
    /// per section) readable by its owner only. Clients sign with those keys as they would for
    /// AWS; the secret never crosses the network.
    #[arg(long, value_name = "FILE")]
    pub(crate) credentials: Option<std::path::PathBuf>,
    /// Run Waits, retry backoff and timeouts on a virtual clock.
    #[arg(long)]
    pub(crate) virtual_time: bool,
    /// Handle the Tasks whose Resource is RESOURCE with a local command; repeatable.
    #[arg(long = "task", value_name = "RESOURCE=COMMAND")]
    pub(crate) tasks: Vec<String>,
    /// A Step Functions Local MockConfigFile: StartExecution with a state machine ARN ending in
    /// `#TestCaseName` answers that test case's mocked states.
    #[arg(long, value_name = "FILE")]
    pub(crate) mock_config: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub(crate) aws: AwsArgs,
    #[command(flatten)]
    pub(crate) store: crate::StoreArgs,
    /// Share the store (a PostgreSQL database) with the other `serve --shared` nodes on it:
    /// any node answers any call, each execution is driven by the node holding its lease, and
    /// the executions of a node that dies are taken over by the others.
    #[arg(long)]
    pub(crate) shared: bool,
    /// With --shared: how long a node's lease on an execution lasts unless renewed; a node
    /// that dies has its executions taken over this long after its last renewal.
    #[arg(long, value_name = "SECONDS", default_value_t = 15.0, value_parser = lease_seconds)]
    pub(crate) lease_ttl: f64,
}

/// A lease's length, in seconds: at least 0.3 (renewals come every third of it), at most a
/// day.
fn lease_seconds(text: &str) -> Result<f64, String> {
    let seconds: f64 = text
        .parse()
        .map_err(|_| format!("'{text}' is not a number of seconds"))?;
    if !(0.3..=86_400.0).contains(&seconds) {
        return Err(format!("{seconds} s: a lease lasts from 0.3 s to a day"));
    }
    Ok(seconds)
}

/// An error as AWS answers it.
struct ApiError {
    kind: &'static str,
    message: String,
}

fn api_error(kind: &'static str, message: impl Into<String>) -> ApiError {
    ApiError {
        kind,
        message: message.into(),
    }
}

/// The error an `answer` message stands for.
fn answered_error(message: String) -> ApiError {
    let kind = if message.starts_with("no execution") {
        "ExecutionDoesNotExist"
    } else if message.starts_with("TaskDoesNotExist") {
        "TaskDoesNotExist"
    } else if message.starts_with("InvalidToken") {
        "InvalidToken"
    } else if message.contains("is already") {
        "ExecutionNotRunning"
    } else {
        "InternalFailure"
    };
    api_error(kind, message)
}

/// The service: its store, the executions running in it, how tasks are performed.
struct Service {
    store: Arc<dyn CheckpointStore>,
    signals: Signals,
    args: ServeArgs,
    /// When given, every request must be signed with one of these keys.
    credentials: Option<sigv4::Credentials>,
    /// The activity tasks waiting for workers.
    queues: Arc<activities::Queues>,
    /// Where `states:startExecution` tasks ask for child executions (`children::serve`).
    children: tokio::sync::mpsc::UnboundedSender<children::ChildRequest>,
    /// How deep the children started here are nested.
    nesting: children::Nesting,
    /// Who waits for which execution's end.
    endings: Rc<children::Endings>,
}

impl Service {
    /// What an execution of this service dispatches its tasks to: `routes`, the activity
    /// queues, and child executions.
    fn tasks(&self, routes: stepstone::tasks::Router) -> tasks::ServeTasks {
        tasks::ServeTasks {
            queues: self.queues.clone(),
            children: self.children.clone(),
            routes,
        }
    }
}

pub(crate) fn serve(args: ServeArgs) -> Result<std::process::ExitCode, String> {
    let credentials = args
        .credentials
        .as_deref()
        .map(sigv4::Credentials::load)
        .transpose()?;
    if !args.bind.is_loopback() && credentials.is_none() {
        return Err(format!(
            "--bind {}: anyone who can reach this address could run executions (and their tasks' commands and AWS calls); give --credentials FILE, the access keys whose signed requests are answered, or bind to 127.0.0.1",
            args.bind
        ));
    }
    let spec: StoreSpec = args.store.spec();
    let store: Arc<dyn CheckpointStore> = match args.shared {
        true => spec
            .open_shared(std::time::Duration::from_secs_f64(args.lease_ttl))?
            .into(),
        false => spec.open()?.into(),
    };
    let runtime = super::launch::runtime()?;
    let local = tokio::task::LocalSet::new();
    let (children_sender, child_requests) = tokio::sync::mpsc::unbounded_channel();
    // Engines sharing the store queue their activity tasks in it, for any node's workers.
    let queues = Arc::new(activities::Queues::new(args.shared.then(|| store.clone())));
    let service = Rc::new(Service {
        store,
        signals: Signals::default(),
        args,
        credentials,
        queues,
        children: children_sender,
        nesting: Default::default(),
        endings: Default::default(),
    });
    // The control socket also takes the executions `stepstone run`s on this store hand over.
    // A shared store has several nodes, reached through their API, not one local socket.
    let host = super::guests::Host::new(service.store.clone(), service.signals.clone());
    let _control = (!service.args.shared).then(|| {
        super::control::serve(
            &spec.dir,
            service.store.clone(),
            service.signals.clone(),
            Some(host),
        )
    });
    local.block_on(&runtime, async move {
        let listener = tokio::net::TcpListener::bind((service.args.bind, service.args.port))
            .await
            .map_err(|e| format!("cannot listen on {}:{}: {e}", service.args.bind, service.args.port))?;
        let address = listener.local_addr().map_err(|e| e.to_string())?;
        eprintln!("stepstone serve: listening on http://{address} (store {})", spec.display());
        tokio::task::spawn_local(children::serve(service.clone(), child_requests));
        match service.args.shared {
            // Running executions are claimed by lease, by whichever node gets them.
            true => drop(tokio::task::spawn_local(shared::coordinate(service.clone()))),
            false => resume_running(&service),
        }
        let slots = Arc::new(tokio::sync::Semaphore::new(max_connections()));
        loop {
            // A connection is taken only when it can be served: past the cap, clients wait in
            // the listen backlog and cost this process no descriptor.
            let Ok(slot) = slots.clone().acquire_owned().await else {
                return Ok(std::process::ExitCode::SUCCESS);
            };
            let (stream, _) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(_) => {
                    // Out of descriptors, or a passing fault: wait rather than spin.
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            };
            let service = service.clone();
            tokio::task::spawn_local(async move {
                let handler = hyper::service::service_fn(move |request| {
                    let service = service.clone();
                    async move { Ok::<_, std::convert::Infallible>(respond(&service, request).await) }
                });
                // A client that goes away mid-request loses its answer; nothing else is affected.
                // One that sends no request head within 30 s (hyper's default, which needs the
                // timer) is closed, so idle connections do not hold the slots.
                let _ = hyper::server::conn::http1::Builder::new()
                    .timer(hyper_util::rt::TokioTimer::new())
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), handler)
                    .await;
                drop(slot);
            });
        }
    })
}

/// Resumes the executions a previous run of the service (or a killed `run`) left RUNNING.
fn resume_running(service: &Rc<Service>) {
    let running = match service.store.list() {
        Ok(all) => all.into_iter().filter(|r| r.status == "RUNNING"),
        Err(e) => {
            eprintln!("stepstone serve: cannot list the executions to resume: {e}");
            return;
        }
    };
    for record in running {
        let service = service.clone();
        tokio::task::spawn_local(async move {
            let arn = record.execution_arn;
            let resumed = async {
                let (stored, machine) =
                    load_stored(&*service.store, &arn).map_err(|e| e.to_string())?;
                resume_stored(&service, stored, &machine).await
            };
            match resumed.await {
                Ok(_) => eprintln!("stepstone serve: resumed {arn}"),
                Err(e) => eprintln!("stepstone serve: cannot resume {arn}: {e}"),
            }
        });
    }
}

/// Resumes a stored execution here, with this service's task routes and signals, until it
/// ends (or fails).
async fn resume_stored(
    service: &Service,
    stored: stepstone::engine::store::Stored,
    machine: &stepstone::asl::Machine,
) -> Result<stepstone::engine::Outcome, String> {
    let (routes, mut options) = launch_options(
        &stored.launch,
        &stored.checkpoint.info.state_machine_name,
        &service.args.tasks,
        &service.args.aws,
    )?;
    options.signals = Some(service.signals.clone());
    resume(
        machine,
        stored.checkpoint,
        &options,
        &service.tasks(routes),
        &*service.store,
        None,
    )
    .await
    .map_err(|e| e.to_string())
}

async fn respond(service: &Service, request: Request<Incoming>) -> Response<Full<Bytes>> {
    if request.method() == hyper::Method::GET || request.method() == hyper::Method::HEAD {
        let uri = request.uri();
        let page = viewer::page(service, uri.path(), uri.query().unwrap_or_default());
        return Response::builder()
            .status(page.status)
            .header("content-type", page.content_type)
            // Nothing it shows is to be kept: an execution changes while it runs.
            .header("cache-control", "no-store")
            .body(Full::new(Bytes::from(page.body)))
            .expect("a response of valid parts");
    }
    let target = request
        .headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let (parts, body) = request.into_parts();
    let body = Limited::new(body, MAX_BODY).collect().await;
    let answered = match body {
        Err(e) => Err(api_error(
            "ValidationException",
            format!("cannot read the request: {e}"),
        )),
        Ok(body) => {
            let bytes = body.to_bytes();
            if let Some(credentials) = &service.credentials {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs() as i64);
                if let Err(refused) = credentials.verify(
                    parts.method.as_str(),
                    parts.uri.path(),
                    parts.uri.query().unwrap_or_default(),
                    &parts.headers,
                    &bytes,
                    now,
                ) {
                    // AWS answers a request without a signature 403, a bad one 400.
                    let status = match refused.kind {
                        "MissingAuthenticationTokenException" => StatusCode::FORBIDDEN,
                        _ => StatusCode::BAD_REQUEST,
                    };
                    return json_response(
                        status,
                        &json!({"__type": refused.kind, "message": refused.message}),
                    );
                }
            }
            let parsed = if bytes.is_empty() {
                Ok(json!({}))
            } else {
                serde_json::from_slice::<Value>(&bytes)
            };
            match parsed {
                Err(e) => Err(api_error(
                    "SerializationException",
                    format!("the body is not JSON: {e}"),
                )),
                Ok(input) => {
                    let operation = target.strip_prefix("AWSStepFunctions.").unwrap_or(&target);
                    operate(service, operation, &input).await
                }
            }
        }
    };
    let (status, body) = match answered {
        Ok(mut value) => {
            epoch_dates(&mut value);
            (StatusCode::OK, value)
        }
        Err(e) => (
            StatusCode::BAD_REQUEST,
            json!({"__type": e.kind, "message": e.message}),
        ),
    };
    json_response(status, &body)
}

/// The date fields of the API's responses.
const DATE_FIELDS: &[&str] = &[
    "startDate",
    "stopDate",
    "redriveDate",
    "timestamp",
    "creationDate",
    "updateDate",
];

/// AWS JSON 1.0 carries dates as epoch seconds (numbers), while the answers `serve` shares
/// with the CLI (`cli::answers`) write them as ISO 8601 text, as the CLI prints them. Every
/// date of a response is made seconds here, in one place, so no operation answers a date an
/// SDK cannot read (boto3 reads both; the Rust SDK refuses text).
fn epoch_dates(value: &mut Value) {
    match value {
        Value::Object(fields) => {
            for (key, field) in fields.iter_mut() {
                if let Value::String(text) = field
                    && DATE_FIELDS.contains(&key.as_str())
                    && let Ok(date) = stepstone::asl::timestamp::Timestamp::parse(text)
                {
                    *field = json!(seconds(date.unix_nanos));
                } else {
                    epoch_dates(field);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(epoch_dates),
        _ => {}
    }
}

fn json_response(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/x-amz-json-1.0")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("a response of valid parts")
}

fn text<'a>(input: &'a Value, field: &str) -> Result<&'a str, ApiError> {
    input[field]
        .as_str()
        .ok_or_else(|| api_error("ValidationException", format!("'{field}' is required")))
}

/// One page of `items` under `key`, as the List and Get operations page: `maxResults` (default
/// 100, at most 1000) from the position `nextToken` names; `nextToken` when more follow. The
/// token is the position, as text.
fn page(mut items: Vec<Value>, input: &Value, key: &str) -> Result<Value, ApiError> {
    let (from, size) = window(input)?;
    if from > items.len() {
        return Err(forged(input));
    }
    let rest = items.split_off(from);
    Ok(paged(rest, from, size, key))
}

/// Where a page starts (`nextToken`) and how long it is (`maxResults`: default 100, at most
/// 1000).
fn window(input: &Value) -> Result<(usize, usize), ApiError> {
    let size = match input["maxResults"].as_u64() {
        None | Some(0) => 100,
        Some(n) if n <= 1000 => n as usize,
        Some(n) => {
            return Err(api_error(
                "ValidationException",
                format!("maxResults {n} is over 1000"),
            ));
        }
    };
    let from = match input["nextToken"].as_str() {
        None => 0,
        Some(token) => token
            .strip_prefix("stepstone-")
            .and_then(|n| n.parse::<usize>().ok())
            .ok_or_else(|| forged(input))?,
    };
    Ok((from, size))
}

fn forged(input: &Value) -> ApiError {
    api_error(
        "InvalidToken",
        format!(
            "'{}' is not a token this service gave",
            input["nextToken"].as_str().unwrap_or_default()
        ),
    )
}

/// The page of `rest` (the items from `from` on, at least one more than the page when more
/// follow) under `key`, with a `nextToken` when more follow.
fn paged(rest: Vec<Value>, from: usize, size: usize, key: &str) -> Value {
    let more = rest.len() > size;
    let mut out = json!({ key: rest.into_iter().take(size).collect::<Vec<_>>() });
    if more {
        out["nextToken"] = json!(format!("stepstone-{}", from + size));
    }
    out
}

/// A page of an execution's history, read from the store as a stream: a page costs what
/// comes before it and the page itself, never the whole history held at once (a big Map's
/// history has millions of events).
fn history_page(service: &Service, arn: &str, input: &Value) -> Result<Value, ApiError> {
    let (from, size) = window(input)?;
    let mut kept = std::collections::VecDeque::new();
    let mut seen = 0usize;
    if input["reverseOrder"] == true {
        // The newest `from + size + 1` events, newest first.
        let keep = from.saturating_add(size).saturating_add(1);
        service
            .store
            .each_event(arn, &mut |event| {
                seen += 1;
                kept.push_back(event);
                if kept.len() > keep {
                    kept.pop_front();
                }
                true
            })
            .map_err(store_error)?;
        let newest: Vec<Value> = kept.iter().rev().skip(from).map(|e| e.to_json()).collect();
        if from > seen {
            return Err(forged(input));
        }
        return Ok(paged(newest, from, size, "events"));
    }
    service
        .store
        .each_event(arn, &mut |event| {
            seen += 1;
            if seen > from {
                kept.push_back(event);
            }
            kept.len() <= size
        })
        .map_err(store_error)?;
    if from > seen {
        return Err(forged(input));
    }
    let rest: Vec<Value> = kept.iter().map(|e| e.to_json()).collect();
    Ok(paged(rest, from, size, "events"))
}

/// The `tags` of a Create request, in order.
fn tags_of(input: &Value) -> Vec<(String, String)> {
    input["tags"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| {
            Some((
                t["key"].as_str()?.to_owned(),
                t["value"].as_str().unwrap_or("").to_owned(),
            ))
        })
        .collect()
}

fn seconds(unix_nanos: i128) -> f64 {
    unix_nanos as f64 / 1e9
}

fn now_nanos() -> i128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128)
}

fn store_error(e: impl std::fmt::Display) -> ApiError {
    api_error("InternalFailure", e.to_string())
}

/// The definition checked as CreateStateMachine checks it: InvalidDefinition with the
/// validator's problems.
fn check_definition(definition: &str, kind: &str) -> Result<(), ApiError> {
    let mut options = Options::default();
    options.machine_type = if kind == "EXPRESS" {
        MachineType::Express
    } else {
        MachineType::Standard
    };
    let validation = validate_str(definition, options);
    if validation.is_ok() {
        return Ok(());
    }
    let problems: Vec<String> = validation
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .map(ToString::to_string)
        .collect();
    Err(api_error(
        "InvalidDefinition",
        format!(
            "Invalid State Machine Definition: '{}'",
            problems.join(", ")
        ),
    ))
}

/// The execution `arn` as ListExecutions shows it, read by key (a listing of the whole store per
/// request would cost more as executions accumulate).
fn execution_of(service: &Service, arn: &str) -> Result<ExecutionRecord, ApiError> {
    let described = service
        .store
        .describe(arn)
        .map_err(store_error)?
        .ok_or_else(|| {
            api_error(
                "ExecutionDoesNotExist",
                format!("Execution Does Not Exist: '{arn}'"),
            )
        })?;
    let running = described.status == stepstone::engine::Status::Running;
    Ok(ExecutionRecord {
        execution_arn: described.info.execution_arn.clone(),
        name: described.info.name.clone(),
        state_machine_name: described.info.state_machine_name.clone(),
        status: described.status.as_str().to_owned(),
        start_date: described.info.start_time,
        stop_date: (!running).then_some(described.now),
    })
}

fn machine_of(service: &Service, arn: &str) -> Result<StateMachineRecord, ApiError> {
    service
        .store
        .state_machine(arn)
        .map_err(store_error)?
        .filter(|r| r.kind != activities::ACTIVITY && r.kind != versions::ALIAS)
        .ok_or_else(|| {
            api_error(
                "StateMachineDoesNotExist",
                format!("State Machine Does Not Exist: '{arn}'"),
            )
        })
}

async fn operate(service: &Service, operation: &str, input: &Value) -> Result<Value, ApiError> {
    match operation {
        "CreateStateMachine" => {
            let name = text(input, "name")?;
            check_name("state machine name", name)
                .map_err(|e| api_error("InvalidName", e.to_string()))?;
            let definition = text(input, "definition")?;
            let kind = input["type"].as_str().unwrap_or("STANDARD");
            if !matches!(kind, "STANDARD" | "EXPRESS") {
                return Err(api_error(
                    "ValidationException",
                    format!("type '{kind}' is not STANDARD or EXPRESS"),
                ));
            }
            check_definition(definition, kind)?;
            let arn = format!("{ARN_PREFIX}:stateMachine:{name}");
            if let Some(existing) = service.store.state_machine(&arn).map_err(store_error)? {
                // AWS: the same request again answers the same machine.
                if existing.definition == definition && existing.kind == kind {
                    return Ok(
                        json!({"stateMachineArn": arn, "creationDate": seconds(existing.created)}),
                    );
                }
                return Err(api_error(
                    "StateMachineAlreadyExists",
                    format!("State Machine Already Exists: '{arn}'"),
                ));
            }
            let created = now_nanos();
            let mut record = StateMachineRecord {
                definition: definition.to_owned(),
                role_arn: input["roleArn"].as_str().unwrap_or_default().to_owned(),
                tags: tags_of(input),
                revision_id: versions::new_revision(),
                ..StateMachineRecord::new(arn.clone(), name.to_owned(), kind.to_owned(), created)
            };
            service
                .store
                .put_state_machine(&record)
                .map_err(store_error)?;
            let mut answer = json!({"stateMachineArn": arn, "creationDate": seconds(created)});
            versions::publish_if_asked(service, &mut record, input, &mut answer)?;
            Ok(answer)
        }
        "UpdateStateMachine" => {
            let arn = text(input, "stateMachineArn")?;
            if versions::qualified(arn) != versions::Qualified::Machine {
                return Err(api_error(
                    "ValidationException",
                    format!("'{arn}' is a version or an alias: versions cannot be changed"),
                ));
            }
            let mut record = machine_of(service, arn)?;
            let before = (record.definition.clone(), record.role_arn.clone());
            if let Some(definition) = input["definition"].as_str() {
                check_definition(definition, &record.kind)?;
                record.definition = definition.to_owned();
            }
            if let Some(role) = input["roleArn"].as_str() {
                record.role_arn = role.to_owned();
            }
            if (record.definition.clone(), record.role_arn.clone()) != before {
                record.revision_id = versions::new_revision();
            }
            record.updated = now_nanos();
            service
                .store
                .put_state_machine(&record)
                .map_err(store_error)?;
            let mut answer =
                json!({"updateDate": seconds(record.updated), "revisionId": record.revision_id});
            versions::publish_if_asked(service, &mut record, input, &mut answer)?;
            Ok(answer)
        }
        "DescribeStateMachine" => {
            let record = machine_of(service, text(input, "stateMachineArn")?)?;
            let mut answer = json!({
                "stateMachineArn": record.arn, "name": record.name, "status": "ACTIVE",
                "definition": record.definition, "roleArn": record.role_arn, "type": record.kind,
                "creationDate": seconds(record.created),
            });
            if !record.revision_id.is_empty() {
                answer["revisionId"] = json!(record.revision_id);
            }
            if !record.description.is_empty() {
                answer["description"] = json!(record.description);
            }
            Ok(answer)
        }
        "ListStateMachines" => {
            let machines: Vec<Value> = service
                .store
                .state_machines()
                .map_err(store_error)?
                .into_iter()
                .filter(versions::is_machine)
                .map(|m| json!({"stateMachineArn": m.arn, "name": m.name, "type": m.kind, "creationDate": seconds(m.created)}))
                .collect();
            page(machines, input, "stateMachines")
        }
        "DeleteStateMachine" => {
            let arn = text(input, "stateMachineArn")?;
            if machine_of(service, arn).is_ok_and(|m| versions::is_machine(&m)) {
                // Its versions and aliases go with it.
                versions::delete_all_of(service, arn)?;
                service
                    .store
                    .delete_state_machine(arn)
                    .map_err(store_error)?;
            }
            Ok(json!({}))
        }
        "ValidateStateMachineDefinition" => {
            let definition = text(input, "definition")?;
            let mut options = Options::default();
            if input["type"] == "EXPRESS" {
                options.machine_type = MachineType::Express;
            }
            let validation = validate_str(definition, options);
            Ok(super::validate::response(
                validation.is_ok(),
                &validation.diagnostics,
            ))
        }
        "StartExecution" => start_execution(service, input).await,
        "TestState" => test_state(service, input).await,
        "StartSyncExecution" => start_sync_execution(service, input).await,
        "RedriveExecution" => redrive_execution(service, input).await,
        "DescribeStateMachineForExecution" => {
            let record = execution_of(service, text(input, "executionArn")?)?;
            let stored = service
                .store
                .load(&record.execution_arn)
                .map_err(store_error)?
                .ok_or_else(|| {
                    api_error("ExecutionDoesNotExist", "the execution has no checkpoint")
                })?;
            let machine_arn = stored.checkpoint.info.state_machine_arn.clone();
            let kept = service
                .store
                .state_machine(&machine_arn)
                .map_err(store_error)?;
            let mut v = json!({
                "stateMachineArn": machine_arn,
                "name": record.state_machine_name,
                "definition": stored.definition,
                "roleArn": stored.checkpoint.info.role_arn,
                "updateDate": seconds(record.start_date.unix_nanos),
            });
            if let Some(kept) = kept {
                v["roleArn"] = json!(kept.role_arn);
            }
            Ok(v)
        }
        "TagResource" | "UntagResource" | "ListTagsForResource" => {
            // A state machine's or an activity's.
            let arn = text(input, "resourceArn")?;
            let mut record = service
                .store
                .state_machine(arn)
                .map_err(store_error)?
                .ok_or_else(|| {
                    api_error("ResourceNotFound", format!("Resource not found: '{arn}'"))
                })?;
            match operation {
                "TagResource" => {
                    for tag in input["tags"].as_array().into_iter().flatten() {
                        let key = tag["key"].as_str().unwrap_or_default().to_owned();
                        let value = tag["value"].as_str().unwrap_or_default().to_owned();
                        record.tags.retain(|(k, _)| *k != key);
                        record.tags.push((key, value));
                    }
                }
                "UntagResource" => {
                    let keys: Vec<&str> = input["tagKeys"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .collect();
                    record.tags.retain(|(k, _)| !keys.contains(&k.as_str()));
                }
                _ => {
                    let tags: Vec<Value> = record
                        .tags
                        .iter()
                        .map(|(k, v)| json!({"key": k, "value": v}))
                        .collect();
                    return Ok(json!({ "tags": tags }));
                }
            }
            service
                .store
                .put_state_machine(&record)
                .map_err(store_error)?;
            Ok(json!({}))
        }
        "DescribeExecution" => {
            let arn = text(input, "executionArn")?;
            // A distributed Map's child execution: described from its history.
            if service.store.describe(arn).map_err(store_error)?.is_none()
                && let Some(mut child) =
                    describe_child_execution(&*service.store, arn).map_err(answered_error)?
            {
                for field in ["input", "output"] {
                    if let Some(value) = child.get_mut(field) {
                        *value = Value::String(value.to_string());
                    }
                }
                return Ok(child);
            }
            let record = execution_of(service, arn)?;
            let mut described =
                describe_execution(&*service.store, &record).map_err(answered_error)?;
            // Started through a version or an alias (`versions::to_run`).
            let launch = service
                .store
                .launch(&record.execution_arn)
                .map_err(store_error)?
                .unwrap_or_default();
            for (kept, field) in [
                ("version", "stateMachineVersionArn"),
                ("alias", "stateMachineAliasArn"),
            ] {
                if let Some(arn) = launch[kept].as_str() {
                    described[field] = json!(arn);
                }
            }
            // The API carries input and output as JSON text (the CLI shows them as values).
            for field in ["input", "output"] {
                if let Some(value) = described.get_mut(field) {
                    *value = Value::String(value.to_string());
                }
            }
            Ok(described)
        }
        "ListExecutions" if input["mapRunArn"].is_string() => {
            // A Map Run's child executions.
            let map_run = text(input, "mapRunArn")?;
            let children =
                list_child_executions(&*service.store, map_run, input["statusFilter"].as_str())
                    .map_err(answered_error)?;
            page(children, input, "executions")
        }
        "ListExecutions" => {
            let machine = text(input, "stateMachineArn")?;
            machine_of(service, machine)?;
            let mut listed = list_executions(&*service.store, input["statusFilter"].as_str())
                .map_err(answered_error)?;
            let mut all = match listed["executions"].take() {
                Value::Array(all) => all,
                _ => Vec::new(),
            };
            all.retain(|e| e["stateMachineArn"] == machine);
            page(all, input, "executions")
        }
        "GetExecutionHistory" => {
            let arn = text(input, "executionArn")?;
            // A distributed Map's child execution has a history and no checkpoint of its own.
            if let Err(missing) = execution_of(service, arn)
                && describe_child_execution(&*service.store, arn)
                    .map_err(answered_error)?
                    .is_none()
            {
                return Err(missing);
            }
            history_page(service, arn, input)
        }
        "StopExecution" => {
            let arn = text(input, "executionArn")?;
            let record = execution_of(service, arn)?;
            if record.status != "RUNNING" {
                return Err(api_error(
                    "ExecutionNotRunning",
                    format!("Execution is {}: '{arn}'", record.status),
                ));
            }
            let request = json!({"op": "stop", "execution": arn,
                "error": input["error"], "cause": input["cause"]});
            shared::answer(service, arn, &request)
                .await
                .map_err(answered_error)
        }
        "SendTaskSuccess" | "SendTaskFailure" | "SendTaskHeartbeat" => {
            let token = text(input, "taskToken")?;
            let request = match operation {
                "SendTaskSuccess" => {
                    let output: Value =
                        serde_json::from_str(text(input, "output")?).map_err(|e| {
                            api_error("InvalidOutput", format!("the output is not JSON: {e}"))
                        })?;
                    json!({"op": "task-success", "token": token, "output": output})
                }
                "SendTaskFailure" => json!({"op": "task-failure", "token": token,
                    "error": input["error"], "cause": input["cause"]}),
                _ => json!({"op": "task-heartbeat", "token": token}),
            };
            match shared::execution_of_token(token) {
                Some(arn) => shared::answer(service, &arn, &request).await,
                None => answer(&*service.store, &service.signals, &request).await,
            }
            .map_err(answered_error)
        }
        "" => Err(api_error(
            "UnknownOperationException",
            "the request has no X-Amz-Target header",
        )),
        "GetActivityTask" if service.args.shared => shared::get_activity_task(service, input).await,
        other => {
            if let Some(answered) = versions::operate(service, other, input) {
                return answered;
            }
            if let Some(answered) = map_runs::operate(service, other, input) {
                return answered;
            }
            match activities::operate(service, other, input).await {
                Some(answered) => answered,
                None => Err(api_error(
                    "UnknownOperationException",
                    format!("{other} is not implemented by stepstone serve yet"),
                )),
            }
        }
    }
}

/// A JSON text field of a request (`input`, `variables`, `context`, a mock's `result`).
fn json_text(input: &Value, field: &str) -> Result<Option<Value>, ApiError> {
    match &input[field] {
        Value::Null => Ok(None),
        Value::String(text) => serde_json::from_str(text)
            .map(Some)
            .map_err(|e| api_error("ValidationException", format!("'{field}' is not JSON: {e}"))),
        _ => Err(api_error(
            "ValidationException",
            format!("'{field}' must be JSON text"),
        )),
    }
}

/// TestState: one state (or `stateName` of a machine) run on its own; the answer's values
/// are JSON text, as the API gives them.
async fn test_state(service: &Service, input: &Value) -> Result<Value, ApiError> {
    use stepstone::asl::{SINGLE_STATE_NAME, validate, validate_state};
    use stepstone::engine::{InspectionLevel, Mock, StateConfiguration, TestState, test_state};
    let definition: Value = serde_json::from_str(text(input, "definition")?).map_err(|e| {
        api_error(
            "InvalidDefinition",
            format!("the definition is not JSON: {e}"),
        )
    })?;
    let invalid = |v: stepstone::asl::Validation| {
        v.machine.ok_or_else(|| {
            let problems: Vec<String> = v
                .diagnostics
                .iter()
                .filter(|d| d.is_error())
                .map(ToString::to_string)
                .collect();
            api_error("InvalidDefinition", problems.join(", "))
        })
    };
    let (machine, state) = if definition.get("States").is_none() {
        let name = input["stateName"].as_str().unwrap_or(SINGLE_STATE_NAME);
        let machine = invalid(validate_state(&definition, name, Options::default()))?;
        (machine, name.to_owned())
    } else {
        let machine = invalid(validate(&definition, Options::default()))?;
        let state = match input["stateName"].as_str() {
            Some(s) => s.to_owned(),
            None => machine.definition().scope.start_at.clone(),
        };
        (machine, state)
    };
    let mock = &input["mock"];
    let mock = if let Some(result) = json_text(mock, "result")? {
        Some(Mock::Result(result))
    } else if mock["errorOutput"].is_object() {
        let e = &mock["errorOutput"];
        Some(Mock::Error(stepstone::engine::Failure::new(
            e["error"].as_str().unwrap_or_default(),
            e["cause"].as_str().unwrap_or_default(),
        )))
    } else {
        None
    };
    let config = &input["stateConfiguration"];
    let configuration = StateConfiguration {
        retrier_retry_count: u32::try_from(config["retrierRetryCount"].as_u64().unwrap_or(0))
            .unwrap_or(u32::MAX),
        error_caused_by_state: config["errorCausedByState"].as_str().map(str::to_owned),
        map_iteration_failure_count: config["mapIterationFailureCount"].as_u64(),
        map_item_reader_data: json_text(config, "mapItemReaderData")?,
    };
    let variables = match json_text(input, "variables")? {
        None => serde_json::Map::new(),
        Some(Value::Object(m)) => m,
        Some(_) => {
            return Err(api_error(
                "ValidationException",
                "'variables' must be a JSON object",
            ));
        }
    };
    let test = TestState {
        input: json_text(input, "input")?.unwrap_or_else(|| json!({})),
        mock,
        context: json_text(input, "context")?,
        variables,
        inspection_level: match input["inspectionLevel"].as_str() {
            Some("DEBUG") => InspectionLevel::Debug,
            Some("TRACE") => InspectionLevel::Trace,
            _ => InspectionLevel::Info,
        },
        configuration,
        machine_name: None,
    };
    let routes = router(&service.args.tasks, &service.args.aws, None, None)
        .map_err(|e| api_error("ValidationException", e))?;
    let response = test_state(&machine, &state, &test, &routes)
        .await
        .map_err(|e| api_error("ValidationException", e.to_string()))?;
    let mut answer = response.to_json();
    if let Some(output) = answer.get_mut("output") {
        *output = Value::String(output.to_string());
    }
    if let Some(Value::Object(data)) = answer.get_mut("inspectionData") {
        for (key, value) in data.iter_mut() {
            // Counts are numbers and errorDetails an object in the API; the rest is JSON text.
            let kept = matches!(
                key.as_str(),
                "maxConcurrency"
                    | "toleratedFailureCount"
                    | "toleratedFailurePercentage"
                    | "errorDetails"
            );
            if !kept {
                *value = Value::String(value.to_string());
            }
        }
    }
    Ok(answer)
}

/// RedriveExecution: a FAILED, ABORTED or TIMED_OUT execution goes on from where it stopped,
/// in this process; the answer comes once the redrive is stored.
async fn redrive_execution(service: &Service, input: &Value) -> Result<Value, ApiError> {
    let arn = text(input, "executionArn")?.to_owned();
    let record = execution_of(service, &arn)?;
    if !matches!(record.status.as_str(), "FAILED" | "ABORTED" | "TIMED_OUT") {
        return Err(api_error(
            "ExecutionNotRedrivable",
            format!("Execution is {} and cannot be redriven.", record.status),
        ));
    }
    // Engines sharing the store: the redrive is driven here, under a lease of this node's.
    if let Some(leases) = service.store.leases()
        && !leases.acquire(&arn).map_err(store_error)?
    {
        return Err(api_error(
            "ExecutionNotRedrivable",
            format!("another node is redriving '{arn}'"),
        ));
    }
    let (stored, machine) = load_stored(&*service.store, &arn).map_err(store_error)?;
    let (routes, mut options) = launch_options(
        &stored.launch,
        &stored.checkpoint.info.state_machine_name,
        &service.args.tasks,
        &service.args.aws,
    )
    .map_err(|e| api_error("ValidationException", e))?;
    let routes = service.tasks(routes);
    options.signals = Some(service.signals.clone());
    let store = service.store.clone();
    let (saved, is_saved) = tokio::sync::oneshot::channel::<Result<i128, String>>();
    tokio::task::spawn_local(async move {
        let mut saved = Some(saved);
        let mut observer = |notice: stepstone::engine::Notice<'_>| {
            if let stepstone::engine::Notice::Event(event) = notice
                && let Some(sender) = saved.take()
            {
                let _ = sender.send(Ok(event.timestamp.unix_nanos));
            }
        };
        let outcome = stepstone::engine::redrive(
            &machine,
            stored.checkpoint,
            &options,
            &routes,
            &*store,
            Some(&mut observer),
        )
        .await;
        if let Err(e) = outcome
            && let Some(sender) = saved.take()
        {
            let _ = sender.send(Err(e.to_string()));
        }
    });
    match is_saved.await {
        Ok(Ok(at)) => Ok(json!({"redriveDate": seconds(at)})),
        Ok(Err(e)) => Err(api_error("ExecutionNotRedrivable", e)),
        Err(_) => Err(api_error(
            "InternalFailure",
            "the redrive ended before it was stored",
        )),
    }
}

/// A start request's execution name (checked as AWS checks it; made up when absent) and input
/// (JSON text; `{}` when absent).
fn name_and_input(input: &Value) -> Result<(String, Value), ApiError> {
    let name = match input["name"].as_str() {
        Some(name) => {
            check_name("execution name", name)
                .map_err(|e| api_error("InvalidName", e.to_string()))?;
            name.to_owned()
        }
        None => format!(
            "{:032x}",
            now_nanos() as u128 ^ (u128::from(std::process::id()) << 64)
        ),
    };
    // AWS's constraint on the input's text, checked before anything else reads it.
    if let Some(text) = input["input"].as_str()
        && text.len() > MAX_INPUT_BYTES
    {
        return Err(api_error(
            "ValidationException",
            format!(
                "1 validation error detected: Value at 'input' failed to satisfy constraint: Member must have length less than or equal to {MAX_INPUT_BYTES}"
            ),
        ));
    }
    let execution_input = match input["input"].as_str() {
        Some(text) => serde_json::from_str(text).map_err(|e| {
            api_error(
                "InvalidExecutionInput",
                format!("the input is not JSON: {e}"),
            )
        })?,
        None => json!({}),
    };
    Ok((name, execution_input))
}

/// StartExecution's idempotency (AWS: "If StartExecution is called with the same name and
/// input as a running execution, the call succeeds and return the same response as the
/// original request"; for STANDARD state machines): the running execution of that name with
/// the same input, answered as its start was. One that ended, or got another input, is
/// left to creation, which answers ExecutionAlreadyExists.
fn already_started(
    service: &Service,
    record: &StateMachineRecord,
    name: &str,
    input: &Value,
) -> Result<Option<Value>, ApiError> {
    if record.kind == "EXPRESS" {
        return Ok(None);
    }
    let arn = stepstone::engine::ExecutionInfo::new(
        &record.name,
        name,
        Value::Null,
        stepstone::asl::timestamp::Timestamp { unix_nanos: 0 },
        false,
    )
    .execution_arn;
    let Some(described) = service.store.describe(&arn).map_err(store_error)? else {
        return Ok(None);
    };
    let same =
        described.status == stepstone::engine::Status::Running && &described.info.input == input;
    Ok(same.then(
        || json!({"executionArn": arn, "startDate": seconds(described.info.start_time.unix_nanos)}),
    ))
}

/// StartSyncExecution: an EXPRESS state machine's execution, run to its end before the answer,
/// and not kept (as on AWS, where express executions are not listed).
async fn start_sync_execution(service: &Service, input: &Value) -> Result<Value, ApiError> {
    let record = machine_of(service, text(input, "stateMachineArn")?)?;
    if record.kind != "EXPRESS" {
        return Err(api_error(
            "StateMachineTypeNotSupported",
            "StartSyncExecution runs EXPRESS state machines only",
        ));
    }
    let (name, execution_input) = name_and_input(input)?;
    let machine = validate_str(&record.definition, Options::default())
        .machine
        .ok_or_else(|| {
            api_error(
                "InvalidDefinition",
                "the stored definition no longer validates",
            )
        })?;
    let routes = router(&service.args.tasks, &service.args.aws, None, None)
        .map_err(|e| api_error("ValidationException", e))?;
    let mut options = RunOptions::default();
    options.name = Some(name);
    options.machine_name = record.name.clone();
    options.virtual_time = service.args.virtual_time;
    options.express = true;
    let outcome = stepstone::engine::run(&machine, execution_input, &options, &routes).await;
    let info = &outcome.info;
    let mut v = json!({
        "executionArn": info.execution_arn,
        "stateMachineArn": info.state_machine_arn,
        "name": info.name,
        "startDate": seconds(info.start_time.unix_nanos),
        "stopDate": seconds(outcome.stop_time.unix_nanos),
        "input": info.input.to_string(),
        "billingDetails": {"billedMemoryUsedInMB": 64, "billedDurationInMilliseconds":
            ((outcome.stop_time.unix_nanos - info.start_time.unix_nanos) / 1_000_000).max(100)},
    });
    match &outcome.status {
        stepstone::engine::Status::Succeeded(output) => {
            v["status"] = json!("SUCCEEDED");
            v["output"] = json!(output.to_string());
        }
        stepstone::engine::Status::Failed(f) | stepstone::engine::Status::Aborted(f) => {
            v["status"] = json!("FAILED");
            v["error"] = json!(f.error);
            v["cause"] = json!(f.cause);
        }
        stepstone::engine::Status::TimedOut(f) => {
            v["status"] = json!("TIMED_OUT");
            v["error"] = json!(f.error);
            v["cause"] = json!(f.cause);
        }
        stepstone::engine::Status::Running => v["status"] = json!("RUNNING"),
    }
    Ok(v)
}

/// StartExecution: the execution is stored before the answer; it runs on in this process.
async fn start_execution(service: &Service, input: &Value) -> Result<Value, ApiError> {
    let requested = text(input, "stateMachineArn")?;
    // Step Functions Local: `<state machine ARN>#<test case>` picks a MockConfigFile test case.
    let (machine_arn, test_case) = match requested.split_once('#') {
        Some((arn, case)) => (arn, Some(case.to_owned())),
        None => (requested, None),
    };
    // A state machine, one of its versions, or an alias that picks a version.
    let (record, version_arn, alias_arn) = versions::to_run(service, machine_arn)?;
    let (name, execution_input) = name_and_input(input)?;
    if let Some(same) = already_started(service, &record, &name, &execution_input)? {
        return Ok(same);
    }
    if test_case.is_some() && service.args.mock_config.is_none() {
        return Err(api_error(
            "ValidationException",
            "a test case needs `stepstone serve --mock-config FILE`",
        ));
    }
    let mocks = MockArgs {
        mock_config: test_case.as_ref().and(service.args.mock_config.clone()),
        test_case,
    };
    let routes = router(
        &service.args.tasks,
        &service.args.aws,
        mocks
            .load(&record.name)
            .map_err(|e| api_error("ValidationException", e))?,
        None,
    )
    .map_err(|e| api_error("ValidationException", e))?;
    let routes = service.tasks(routes);
    let validation = validate_str(&record.definition, Options::default());
    let machine = validation.machine.ok_or_else(|| {
        api_error(
            "InvalidDefinition",
            "the stored definition no longer validates",
        )
    })?;
    let mut options = RunOptions::default();
    options.name = Some(name.clone());
    options.machine_name = record.name.clone();
    options.virtual_time = service.args.virtual_time;
    options.record_history = true;
    options.express = record.kind == "EXPRESS";
    options.limits = Limits::default();
    options.signals = Some(service.signals.clone());
    let launch = json!({"tasks": service.args.tasks, "dir": std::env::current_dir().ok(), "virtual_time": service.args.virtual_time,
        "history_limit": 25_000, "aws": service.args.aws.to_json(), "mocks": mocks.to_json(),
        "version": version_arn, "alias": alias_arn});
    let store = service.store.clone();
    let endings = service.endings.clone();
    let record_for_run = record.clone();
    let (stored, is_stored) = tokio::sync::oneshot::channel::<Result<(String, i128), String>>();
    tokio::task::spawn_local(async move {
        let mut stored = Some(stored);
        let record = record_for_run;
        let mut observer = |notice: stepstone::engine::Notice<'_>| {
            if let stepstone::engine::Notice::Event(event) = notice
                && let Some(sender) = stored.take()
            {
                let _ = sender.send(Ok((String::new(), event.timestamp.unix_nanos)));
            }
        };
        let persistence = Persistence {
            store: &*store,
            definition: &record.definition,
            launch: &launch,
        };
        let outcome = run_durable(
            &machine,
            execution_input,
            &options,
            &routes,
            persistence,
            Some(&mut observer),
        )
        .await;
        match outcome {
            Ok(outcome) => {
                endings.ended(&outcome.info.execution_arn);
                // Ended here: its lease goes now (the coordination would find it later).
                if let Some(leases) = store.leases() {
                    leases.release(&outcome.info.execution_arn);
                }
            }
            Err(e) => {
                if let Some(sender) = stored.take() {
                    let _ = sender.send(Err(e.to_string()));
                }
            }
        }
    });
    match is_stored.await {
        Ok(Ok((_, started))) => {
            // The ARN the engine made, made again the same way.
            let arn = stepstone::engine::ExecutionInfo::new(
                &record.name,
                &name,
                Value::Null,
                stepstone::asl::timestamp::Timestamp {
                    unix_nanos: started,
                },
                record.kind == "EXPRESS",
            )
            .execution_arn;
            Ok(json!({"executionArn": arn, "startDate": seconds(started)}))
        }
        Ok(Err(e)) if e.starts_with("ExecutionAlreadyExists") => {
            Err(api_error("ExecutionAlreadyExists", e))
        }
        Ok(Err(e)) if e.starts_with("InvalidName") => Err(api_error("InvalidName", e)),
        Ok(Err(e)) if e.starts_with("InvalidExecutionInput") => {
            Err(api_error("InvalidExecutionInput", e))
        }
        Ok(Err(e)) => Err(api_error("InternalFailure", e)),
        Err(_) => Err(api_error(
            "InternalFailure",
            "the execution ended before it was stored",
        )),
    }
}
