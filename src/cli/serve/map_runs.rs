//! Map Runs: DescribeMapRun and ListMapRuns, read from the records a distributed Map keeps in
//! the store (`MapRunRecord`: written when it starts, as its children finish, and when it ends).

use serde_json::{Value, json};
use stepstone::engine::store::MapRunRecord;

use super::{ApiError, Service, api_error, execution_of, page, store_error, text};

pub(super) fn operate(
    service: &Service,
    operation: &str,
    input: &Value,
) -> Option<Result<Value, ApiError>> {
    match operation {
        "DescribeMapRun" => Some(describe(service, input)),
        "ListMapRuns" => Some(list(service, input)),
        _ => None,
    }
}

fn describe(service: &Service, input: &Value) -> Result<Value, ApiError> {
    let arn = text(input, "mapRunArn")?;
    let run = service
        .store
        .map_run(arn)
        .map_err(store_error)?
        .ok_or_else(|| {
            api_error(
                "ResourceNotFound",
                format!("Map Run Does Not Exist: '{arn}'"),
            )
        })?;
    // Items and child executions count alike: one child per item (per batch with an
    // ItemBatcher, which is counted as its children).
    let counts = counts(&run);
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
        "redriveCount": 0,
    });
    if let Some(stop) = run.stop_date {
        described["stopDate"] = json!(stop.to_string());
    }
    Ok(described)
}

fn counts(run: &MapRunRecord) -> Value {
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
        "resultsWritten": 0,
        "failuresNotRedrivable": 0,
        "pendingRedrive": 0,
    })
}

fn list(service: &Service, input: &Value) -> Result<Value, ApiError> {
    let arn = text(input, "executionArn")?;
    execution_of(service, arn)?;
    let runs = service.store.map_runs(arn).map_err(store_error)?;
    let listed = runs
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
        .collect();
    page(listed, input, "mapRuns")
}
