//! `stepstone resume`, `executions`, `describe`, `history`: the executions in a store.

use std::process::ExitCode;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use stepstone::asl::Machine;
use stepstone::asl::timestamp::Timestamp;
use stepstone::engine::store::{CheckpointStore, ExecutionRecord, Stored};
use stepstone::engine::{
    Execution, Limits, Notice, RunOptions, Status, resume as resume_execution,
};

use super::StoreSpec;
use super::run::{Progress, compile, exit_code, report, router, runtime};

/// Finds an execution by ARN or by name.
/// An execution's stored state and its definition, validated again into a Machine.
fn load(
    store: &dyn CheckpointStore,
    record: &ExecutionRecord,
) -> Result<(Stored, Machine), String> {
    let stored = store
        .load(&record.execution_arn)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("{} has no checkpoint", record.execution_arn))?;
    let machine = compile(&stored.definition, &record.execution_arn)?;
    Ok((stored, machine))
}

fn find(store: &dyn CheckpointStore, execution: &str) -> Result<ExecutionRecord, String> {
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

/// `stepstone resume [EXECUTION...]`: finishes RUNNING executions (all of them by default),
/// with the task routes and clock they were started with, plus any `--task` given now.
pub(crate) fn resume(
    dir: &StoreSpec,
    executions: &[String],
    extra_tasks: &[String],
    as_json: bool,
    quiet: bool,
) -> Result<ExitCode, String> {
    if executions.is_empty() && !dir.exists() {
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
    let runtime = runtime()?;
    let mut code = ExitCode::SUCCESS;
    for record in records {
        if record.status != "RUNNING" {
            return Err(format!(
                "{} is {}, not RUNNING (see `stepstone redrive` for failed executions)",
                record.execution_arn, record.status
            ));
        }
        let (stored, machine) = load(&*store, &record)?;
        let mut tasks: Vec<String> = stored.launch["tasks"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t.as_str().map(str::to_owned))
            .collect();
        tasks.extend(extra_tasks.iter().cloned());
        let router = router(&tasks)?;
        let mut options = RunOptions::default();
        options.virtual_time = stored.launch["virtual_time"].as_bool().unwrap_or(false);
        options.record_history = true;
        let limit = stored.launch["history_limit"].as_u64().unwrap_or(25_000);
        options.limits = Limits::default().with_max_history_events((limit > 0).then_some(limit));
        if !quiet {
            eprintln!("resuming {}", record.execution_arn);
        }
        let mut progress = Progress::new(!quiet, options.virtual_time);
        let started = Instant::now();
        let observer: Option<&mut (dyn FnMut(Notice<'_>) + Send)> = if quiet {
            None
        } else {
            Some(&mut |n| progress.notice(n))
        };
        let outcome = runtime
            .block_on(resume_execution(
                &machine,
                stored.checkpoint,
                &options,
                &router,
                &*store,
                observer,
            ))
            .map_err(|e| format!("cannot resume {}: {e}", record.execution_arn))?;
        progress.finish(&outcome, started.elapsed().as_secs_f64());
        report(&outcome, as_json, false);
        if !matches!(outcome.status, Status::Succeeded(_)) {
            code = exit_code(&outcome);
        }
    }
    Ok(code)
}

fn state_machine_arn(record: &ExecutionRecord) -> String {
    format!(
        "arn:aws:states:us-east-1:123456789012:stateMachine:{}",
        record.state_machine_name
    )
}

/// `stepstone executions [--status S]`: ListExecutions.
pub(crate) fn list(
    dir: &StoreSpec,
    status: Option<&str>,
    as_json: bool,
) -> Result<ExitCode, String> {
    let mut records = if dir.exists() {
        dir.open()?.list().map_err(|e| e.to_string())?
    } else {
        Vec::new()
    };
    records.retain(|r| status.is_none_or(|s| r.status.eq_ignore_ascii_case(s)));
    records.sort_by_key(|r| std::cmp::Reverse(r.start_date));
    if as_json {
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
        println!("{}", json!({"executions": executions}));
    } else {
        for r in &records {
            let stop = r
                .stop_date
                .map_or_else(|| "-".to_owned(), |t| t.to_string());
            println!(
                "{:<10} {}  {}  {}",
                r.status, r.start_date, stop, r.execution_arn
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `stepstone describe EXECUTION`: DescribeExecution.
pub(crate) fn describe(
    dir: &StoreSpec,
    execution: &str,
    as_json: bool,
) -> Result<ExitCode, String> {
    let store = dir.open_existing()?;
    let record = find(&*store, execution)?;
    let stored = store
        .load(&record.execution_arn)
        .map_err(|e| e.to_string())?
        .ok_or("the execution has no checkpoint")?;
    let info = &stored.checkpoint.info;
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
    match &stored.checkpoint.status {
        Status::Succeeded(output) => v["output"] = output.clone(),
        Status::Failed(f) | Status::TimedOut(f) | Status::Aborted(f) => {
            v["error"] = json!(f.error);
            v["cause"] = json!(f.cause);
        }
        Status::Running => {}
    }
    if as_json {
        println!("{v}");
    } else {
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    }
    Ok(ExitCode::SUCCESS)
}

/// `stepstone history EXECUTION`: GetExecutionHistory.
pub(crate) fn history(dir: &StoreSpec, execution: &str, as_json: bool) -> Result<ExitCode, String> {
    let store = dir.open_existing()?;
    let record = find(&*store, execution)?;
    let events = store
        .events(&record.execution_arn)
        .map_err(|e| e.to_string())?;
    if as_json {
        let events: Vec<Value> = events.iter().map(|e| e.to_json()).collect();
        println!("{}", json!({"events": events}));
    } else {
        for e in &events {
            println!("{:>5}  {}  {}", e.id, e.timestamp, e.kind.type_name());
        }
    }
    Ok(ExitCode::SUCCESS)
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
    let store = dir.open_existing()?;
    let record = find(&*store, execution)?;
    if record.status != "RUNNING" {
        return Err(format!(
            "{} is already {}",
            record.execution_arn, record.status
        ));
    }
    let (stored, machine) = load(&*store, &record)?;
    let mut exec = Execution::restore(&machine, stored.checkpoint).map_err(|e| e.to_string())?;
    let real = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128);
    // On a virtual clock the execution may be ahead of the real one; time never runs backwards.
    let now = Timestamp {
        unix_nanos: real.max(exec.checkpoint().now.unix_nanos),
    };
    exec.abort(error.unwrap_or(""), cause.unwrap_or(""), now);
    store
        .save(&exec.checkpoint(), exec.history().events())
        .map_err(|e| e.to_string())?;
    if as_json {
        println!("{}", json!({"stopDate": now.to_string()}));
    } else {
        println!("ABORTED {}", record.execution_arn);
    }
    Ok(ExitCode::SUCCESS)
}
