//! How a command prints an execution's end: its status, output or error, as text or one JSON
//! line, and the exit code it means.

use std::process::ExitCode;

use serde_json::{Value, json};
use stepstone::engine::history::Event;
use stepstone::engine::{Outcome, Status};

/// Prints the result, and the history when given.
pub(crate) fn report(outcome: &Outcome, as_json: bool, history: Option<&[Event]>) {
    print_outcome(outcome, as_json);
    if let Some(events) = history {
        let events: Vec<Value> = events.iter().map(|e| e.to_json()).collect();
        outln!("{}", json!({"events": events}));
    }
}

pub(crate) fn exit_code(outcome: &Outcome) -> ExitCode {
    if matches!(outcome.status, Status::Succeeded(_)) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

pub(crate) fn print_outcome(outcome: &Outcome, as_json: bool) {
    let (output, error, cause) = match &outcome.status {
        Status::Succeeded(v) => (Some(v), None, None),
        Status::Failed(f) | Status::TimedOut(f) | Status::Aborted(f) => {
            (None, Some(&f.error), Some(&f.cause))
        }
        Status::Running => (None, None, None),
    };
    print_result(
        &json!({
            "executionArn": outcome.info.execution_arn,
            "name": outcome.info.name,
            "status": outcome.status.as_str(),
            "output": output,
            "error": error,
            "cause": cause,
            "startDate": outcome.info.start_time.to_string(),
            "stopDate": outcome.stop_time.to_string(),
        }),
        as_json,
    );
}

/// Prints an execution's result from its DescribeExecution shape: the status, then the output
/// or the error and cause; with `as_json`, one line of executionArn, name, status, output,
/// error, cause, startDate, stopDate.
pub(crate) fn print_result(described: &Value, as_json: bool) {
    let field = |k: &str| described.get(k).cloned().unwrap_or(Value::Null);
    if as_json {
        outln!(
            "{}",
            json!({
                "executionArn": field("executionArn"),
                "name": field("name"),
                "status": field("status"),
                "output": field("output"),
                "error": field("error"),
                "cause": field("cause"),
                "startDate": field("startDate"),
                "stopDate": field("stopDate"),
            })
        );
        return;
    }
    outln!("{}", described["status"].as_str().unwrap_or("RUNNING"));
    match (described.get("output"), described["error"].as_str()) {
        (Some(v), _) if !v.is_null() => {
            outln!("{}", serde_json::to_string_pretty(v).unwrap_or_default())
        }
        (_, Some(e)) => outln!(
            "error: {e}\ncause: {}",
            described["cause"].as_str().unwrap_or_default()
        ),
        _ => {}
    }
}
