//! The answers to the requests of the control protocol (`ping`, `list`, `describe`,
//! `history`, `events`, `stop`, `task-*`), from the store and the executions running in this
//! process:
//! what the control socket (`control.rs`) and the reading commands answer, and what `serve`
//! reuses, in the AWS API's response shapes.

use serde_json::{Value, json};
use stepstone::engine::store::{CheckpointStore, ExecutionRecord, MapRunRecord};
use stepstone::engine::{Callback, Signals, Status, callback_stored, stop_stored};

/// Finds an execution by ARN or by name.
pub(crate) fn find(
    store: &dyn CheckpointStore,
    execution: &str,
) -> Result<ExecutionRecord, String> {
    let records = store.list().map_err(|e| e.to_string())?;
    let mut matching = records
        .into_iter()
        .filter(|r| r.execution_arn == execution || r.name == execution);
    let first = matching.next().ok_or_else(|| {
        format!("no execution '{execution}' in the store (see `stepstone executions`)")
    })?;
    if matching.next().is_some() {
        return Err(format!(
            "several executions are named '{execution}': give its ARN"
        ));
    }
    Ok(first)
}

/// Answers one request against `store`, stopping through `signals` the executions that run in
/// this process. Requests: `ping`, `list` (`status`), `describe`, `history` and `stop`
/// (`execution`, and `error`, `cause` for stop).
pub(crate) async fn answer(
    store: &dyn CheckpointStore,
    signals: &Signals,
    request: &Value,
) -> Result<Value, String> {
    let execution = || {
        request["execution"]
            .as_str()
            .ok_or("the request names no execution")
    };
    match request["op"].as_str().unwrap_or_default() {
        "ping" => Ok(json!({"pid": std::process::id(), "running": signals.running()})),
        "list" => match request["mapRun"].as_str() {
            Some(map_run) => Ok(json!({
                "executions": list_child_executions(store, map_run, request["status"].as_str())?
            })),
            None => list_executions(store, request["status"].as_str()),
        },
        "describe" => match find(store, execution()?) {
            Ok(record) => describe_execution(store, &record),
            // A distributed Map's child execution: described from its history.
            Err(e) => describe_child_execution(store, execution()?)?.ok_or(e),
        },
        "describe-map-run" => {
            let arn = request["mapRun"]
                .as_str()
                .ok_or("the request names no Map Run")?;
            describe_map_run(store, arn)?.ok_or_else(|| format!("Map Run Does Not Exist: '{arn}'"))
        }
        "map-runs" => {
            let record = find(store, execution()?)?;
            Ok(json!({"mapRuns": list_map_runs(store, &record.execution_arn)?}))
        }
        "history" => {
            let arn = match find(store, execution()?) {
                Ok(record) => record.execution_arn,
                Err(e) => match describe_child_execution(store, execution()?)? {
                    Some(_) => execution()?.to_owned(),
                    None => return Err(e),
                },
            };
            let events = store.events(&arn).map_err(|e| e.to_string())?;
            let events: Vec<Value> = events.iter().map(|e| e.to_json()).collect();
            Ok(json!({"events": events}))
        }
        "events" => {
            let after = request["after"].as_u64().unwrap_or(0);
            events_after(store, execution()?, after).await
        }
        "stop" => {
            let arn = find(store, execution()?)?.execution_arn;
            let error = request["error"].as_str().unwrap_or_default();
            let cause = request["cause"].as_str().unwrap_or_default();
            let running_here = match signals.stop(&arn, error, cause) {
                Some(answer) => answer.await.ok(),
                None => None,
            };
            let stop_date = match running_here {
                Some(date) => date,
                None => stop_stored(store, &arn, error, cause).map_err(|e| e.to_string())?,
            };
            Ok(json!({"stopDate": stop_date.to_string()}))
        }
        op @ ("task-success" | "task-failure" | "task-heartbeat") => {
            let token = request["token"]
                .as_str()
                .ok_or("the request carries no task token")?;
            let text = |k: &str| request[k].as_str().unwrap_or_default().to_owned();
            let callback = match op {
                "task-success" => Callback::Success(request["output"].clone()),
                "task-failure" => Callback::Failure {
                    error: text("error"),
                    cause: text("cause"),
                },
                _ => Callback::Heartbeat,
            };
            // The engine running the task takes it; otherwise the store does.
            if let Some(answer) = signals.callback(token, callback.clone())
                && let Ok(delivered) = answer.await
            {
                delivered.map_err(|e| e.to_string())?;
            } else {
                callback_stored(store, token, callback).map_err(|e| e.to_string())?;
            }
            Ok(json!({}))
        }
        other => Err(format!("unknown request '{other}'")),
    }
}

/// The most events one `events` answer carries.
pub(crate) const EVENTS_PER_ANSWER: usize = 1000;

/// `events`: the events of execution `arn` after event id `after` (at most
/// [`EVENTS_PER_ANSWER`], as the engine keeps them: a `run` that follows an execution reads them
/// back as events), and its status. While it runs and has nothing new, the answer waits for
/// something new, up to a second: a follower polls without spinning.
async fn events_after(store: &dyn CheckpointStore, arn: &str, after: u64) -> Result<Value, String> {
    let waited = std::time::Instant::now();
    loop {
        // The status first: once it reads ended, every event is stored (the status and the
        // last events are written in one save).
        let status = store
            .describe(arn)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("no execution {arn} in the store"))?
            .status;
        let mut events = Vec::new();
        let mut unreadable = None;
        store
            .each_event_after(arn, after, &mut |event| {
                match serde_json::to_value(&event) {
                    Ok(v) => events.push(v),
                    Err(e) => unreadable = Some(e.to_string()),
                }
                events.len() < EVENTS_PER_ANSWER && unreadable.is_none()
            })
            .map_err(|e| e.to_string())?;
        if let Some(e) = unreadable {
            return Err(format!("an event of {arn} cannot be sent: {e}"));
        }
        let running = matches!(status, Status::Running);
        if !events.is_empty() || !running || waited.elapsed().as_secs() >= 1 {
            return Ok(json!({"events": events, "status": status.as_str()}));
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

fn state_machine_arn(record: &ExecutionRecord) -> String {
    format!(
        "arn:aws:states:us-east-1:123456789012:stateMachine:{}",
        record.state_machine_name
    )
}

/// ListExecutions' response, newest first.
pub(crate) fn list_executions(
    store: &dyn CheckpointStore,
    status: Option<&str>,
) -> Result<Value, String> {
    let mut records = store.list().map_err(|e| e.to_string())?;
    records.retain(|r| status.is_none_or(|s| r.status.eq_ignore_ascii_case(s)));
    records.sort_by_key(|r| std::cmp::Reverse(r.start_date));
    let executions: Vec<Value> = records
        .iter()
        .map(|r| {
            let mut v = json!({"executionArn": r.execution_arn, "stateMachineArn": state_machine_arn(r), "name": r.name, "status": r.status, "startDate": r.start_date.to_string()});
            if let Some(stop) = r.stop_date {
                v["stopDate"] = json!(stop.to_string());
            }
            v
        })
        .collect();
    Ok(json!({"executions": executions}))
}

/// DescribeExecution's response.
pub(crate) fn describe_execution(
    store: &dyn CheckpointStore,
    record: &ExecutionRecord,
) -> Result<Value, String> {
    let described = store
        .describe(&record.execution_arn)
        .map_err(|e| e.to_string())?
        .ok_or("the execution has no checkpoint")?;
    let info = &described.info;
    let mut v = json!({
        "executionArn": info.execution_arn,
        "stateMachineArn": info.state_machine_arn,
        "name": info.name,
        "status": record.status,
        "startDate": info.start_time.to_string(),
        "input": info.input,
        "redriveCount": info.redrive_count,
    });
    if let Some(stop) = record.stop_date {
        v["stopDate"] = json!(stop.to_string());
    }
    if let Some(redriven) = info.redrive_time {
        v["redriveDate"] = json!(redriven.to_string());
    }
    match &described.status {
        Status::Succeeded(output) => v["output"] = output.clone(),
        Status::Failed(f) | Status::TimedOut(f) | Status::Aborted(f) => {
            v["error"] = json!(f.error);
            v["cause"] = json!(f.cause);
        }
        Status::Running => {}
    }
    match &described.status {
        Status::Failed(_) | Status::TimedOut(_) | Status::Aborted(_) => {
            v["redriveStatus"] = json!("REDRIVABLE");
        }
        other => {
            v["redriveStatus"] = json!("NOT_REDRIVABLE");
            v["redriveStatusReason"] = json!(format!(
                "Execution is {} and cannot be redriven.",
                other.as_str()
            ));
        }
    }
    Ok(v)
}

/// DescribeMapRun: a distributed Map's Map Run as it stands (`None`: no such Map Run).
pub(crate) fn describe_map_run(
    store: &dyn CheckpointStore,
    arn: &str,
) -> Result<Option<Value>, String> {
    let Some(run) = store.map_run(arn).map_err(|e| e.to_string())? else {
        return Ok(None);
    };
    // Items and child executions count alike: one child per item (per batch with an
    // ItemBatcher, which is counted as its children).
    let counts = map_run_counts(&run);
    let mut described = json!({
        "mapRunArn": run.map_run_arn,
        "executionArn": run.execution_arn,
        "status": run.status,
        "startDate": run.start_date.to_string(),
        "maxConcurrency": run.max_concurrency,
        "toleratedFailurePercentage": run.tolerated_failure_percentage,
        "toleratedFailureCount": run.tolerated_failure_count,
        "itemCounts": counts,
        "executionCounts": counts,
        "redriveCount": run.redrive_count,
    });
    if let Some(stop) = run.stop_date {
        described["stopDate"] = json!(stop.to_string());
    }
    if let Some(redriven) = run.redrive_date {
        described["redriveDate"] = json!(redriven.to_string());
    }
    Ok(Some(described))
}

fn map_run_counts(run: &MapRunRecord) -> Value {
    let done = run.succeeded + run.failed;
    let open = run.total.saturating_sub(done);
    // A Map Run stopped with its execution: what had not ended was aborted.
    let (running, pending, aborted) = match run.status.as_str() {
        "RUNNING" => (run.running, open.saturating_sub(run.running), 0),
        _ => (0, 0, open),
    };
    json!({
        "pending": pending,
        "running": running,
        "succeeded": run.succeeded,
        "failed": run.failed,
        "timedOut": 0,
        "aborted": aborted,
        "total": run.total,
        "resultsWritten": run.results_written,
        "failuresNotRedrivable": 0,
        "pendingRedrive": 0,
    })
}

/// ListMapRuns: the Map Runs an execution started.
pub(crate) fn list_map_runs(
    store: &dyn CheckpointStore,
    execution_arn: &str,
) -> Result<Vec<Value>, String> {
    let runs = store.map_runs(execution_arn).map_err(|e| e.to_string())?;
    Ok(runs
        .into_iter()
        .map(|run| {
            let mut listed = json!({
                "executionArn": run.execution_arn,
                "mapRunArn": run.map_run_arn,
                "stateMachineArn": run.state_machine_arn,
                "startDate": run.start_date.to_string(),
            });
            if let Some(stop) = run.stop_date {
                listed["stopDate"] = json!(stop.to_string());
            }
            listed
        })
        .collect())
}

/// ListExecutions of a Map Run: its child executions.
pub(crate) fn list_child_executions(
    store: &dyn CheckpointStore,
    map_run_arn: &str,
    status: Option<&str>,
) -> Result<Vec<Value>, String> {
    let mut records = store
        .child_executions(map_run_arn)
        .map_err(|e| e.to_string())?;
    records.retain(|r| status.is_none_or(|s| r.status.eq_ignore_ascii_case(s)));
    Ok(records
        .iter()
        .map(|r| {
            let machine = r
                .execution_arn
                .rsplit_once(':')
                .map_or(r.execution_arn.as_str(), |(m, _)| m)
                .replacen(":execution:", ":stateMachine:", 1);
            let mut v = json!({"executionArn": r.execution_arn, "stateMachineArn": machine,
                "name": r.name, "status": r.status, "startDate": r.start_date.to_string(),
                "mapRunArn": map_run_arn});
            if let Some(stop) = r.stop_date {
                v["stopDate"] = json!(stop.to_string());
            }
            v
        })
        .collect())
}

/// DescribeExecution of a distributed Map's child execution, from its history: its first
/// event gives its input and start, its last how it ended. `None`: no such child.
pub(crate) fn describe_child_execution(
    store: &dyn CheckpointStore,
    arn: &str,
) -> Result<Option<Value>, String> {
    use stepstone::engine::history::EventKind;
    let events = store.events(arn).map_err(|e| e.to_string())?;
    let Some(first) = events.first() else {
        return Ok(None);
    };
    let EventKind::ExecutionStarted { input, .. } = &first.kind else {
        return Ok(None);
    };
    let (machine, name) = arn.rsplit_once(':').unwrap_or((arn, ""));
    let mut v = json!({
        "executionArn": arn,
        "stateMachineArn": machine.replacen(":execution:", ":stateMachine:", 1),
        "name": name,
        "status": "RUNNING",
        "startDate": first.timestamp.to_string(),
        "input": input.value().unwrap_or_default(),
    });
    if let Some(map_run) = store.map_run_of_child(arn).map_err(|e| e.to_string())? {
        v["mapRunArn"] = json!(map_run.map_run_arn);
    }
    // Run again by its Map Run's redrives: how many times, and when last.
    let redrives: Vec<_> = events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::ExecutionRedriven { .. }))
        .collect();
    v["redriveCount"] = json!(redrives.len());
    if let Some(last) = redrives.last() {
        v["redriveDate"] = json!(last.timestamp.to_string());
    }
    match events.last().map(|e| (&e.kind, e.timestamp)) {
        Some((EventKind::ExecutionSucceeded { output }, stop)) => {
            v["status"] = json!("SUCCEEDED");
            v["output"] = output.value().unwrap_or_default();
            v["stopDate"] = json!(stop.to_string());
        }
        Some((
            EventKind::ExecutionFailed { error, cause }
            | EventKind::ExecutionAborted { error, cause },
            stop,
        )) => {
            let aborted = matches!(
                events.last().map(|e| &e.kind),
                Some(EventKind::ExecutionAborted { .. })
            );
            v["status"] = json!(if aborted { "ABORTED" } else { "FAILED" });
            v["error"] = json!(error);
            v["cause"] = json!(cause);
            v["stopDate"] = json!(stop.to_string());
        }
        _ => {}
    }
    Ok(Some(v))
}
