//! Redrive (RedriveExecution): a FAILED, ABORTED or TIMED_OUT execution goes on from where it
//! stopped. States that succeeded do not run again; a Map or Parallel reruns only the
//! iterations and branches that did not succeed; the history goes on with ExecutionRedriven.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use common::machine;
use serde_json::{Value, json};
use stepstone_engine::asl::Machine;
use stepstone_engine::history::EventKind;
use stepstone_engine::store::{CheckpointStore, MemStore};
use stepstone_engine::{
    Failure, FnTasks, Outcome, Persistence, RedriveError, ResumeError, RunOptions, Signals, Status,
    TaskFuture, TaskRequest, redrive, run_durable,
};

fn options() -> RunOptions {
    let mut o = RunOptions::default();
    o.virtual_time = true;
    o.record_history = true;
    o.name = Some("redriven".into());
    o.machine_name = "redrive".into();
    o
}

/// Calls per task key (the state name, plus the item for Map iterations).
type Calls = Arc<Mutex<HashMap<String, u32>>>;

/// A handler that fails the first call for every key in `fail_first`; otherwise answers
/// `{"state", "input", "redrives"}` (the RedriveCount the task saw in its input, if given).
fn tasks(
    calls: Calls,
    fail_first: &'static [&'static str],
) -> FnTasks<impl Fn(TaskRequest) -> TaskFuture + Send + Sync> {
    FnTasks(move |req: TaskRequest| -> TaskFuture {
        let key = match req.input.get("item") {
            Some(item) => format!("{}:{item}", req.state_name),
            None => req.state_name.clone(),
        };
        let n = {
            let mut calls = calls.lock().unwrap();
            let n = calls.entry(key.clone()).or_insert(0);
            *n += 1;
            *n
        };
        let fail = n == 1 && fail_first.contains(&key.as_str());
        Box::pin(async move {
            if fail {
                Err(Failure::new("Deploy.Failed", format!("{key} failed")))
            } else {
                Ok(json!({"state": req.state_name, "input": req.input}))
            }
        })
    })
}

fn calls_of(calls: &Calls, key: &str) -> u32 {
    calls.lock().unwrap().get(key).copied().unwrap_or(0)
}

async fn first_run(
    m: &Machine,
    def: &Value,
    input: Value,
    store: &dyn CheckpointStore,
    tasks: &dyn stepstone_engine::TaskDispatcher,
) -> Outcome {
    let text = def.to_string();
    run_durable(
        m,
        input,
        &options(),
        tasks,
        Persistence {
            store,
            definition: &text,
            launch: &Value::Null,
        },
        None,
    )
    .await
    .expect("the store works")
}

async fn redrive_stored(
    m: &Machine,
    arn: &str,
    store: &dyn CheckpointStore,
    tasks: &dyn stepstone_engine::TaskDispatcher,
) -> Result<Outcome, ResumeError> {
    let stored = store.load(arn).unwrap().expect("stored");
    redrive(m, stored.checkpoint, &options(), tasks, store, None).await
}

fn types(store: &dyn CheckpointStore, arn: &str) -> Vec<String> {
    store
        .events(arn)
        .unwrap()
        .iter()
        .map(|e| e.kind.type_name())
        .collect()
}

fn assert_ids_contiguous(store: &dyn CheckpointStore, arn: &str) {
    let events = store.events(arn).unwrap();
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e.id, i as u64 + 1, "event ids run without gaps");
        assert!(e.previous_event_id < e.id);
    }
}

#[tokio::test]
async fn a_failed_task_runs_again_and_the_states_before_it_do_not() {
    let def = json!({"StartAt": "Prepare", "States": {
        "Prepare": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "ResultPath": "$.prepared", "Next": "Deploy"},
        "Deploy": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
                   "Parameters": {"redrives.$": "$$.Execution.RedriveCount"}, "ResultPath": "$.deployed", "End": true}}});
    let m = machine(&def);
    let store = MemStore::new();
    let calls = Calls::default();
    let t = tasks(calls.clone(), &["Deploy"]);
    let first = first_run(&m, &def, json!({"app": "web"}), &store, &t).await;
    assert!(matches!(&first.status, Status::Failed(f) if f.error == "Deploy.Failed"));
    let arn = first.info.execution_arn.clone();
    assert_eq!(store.list().unwrap()[0].status, "FAILED");

    let second = redrive_stored(&m, &arn, &store, &t).await.unwrap();
    let Status::Succeeded(output) = &second.status else {
        panic!("{:?}", second.status)
    };
    assert_eq!(output["app"], "web");
    assert_eq!(output["prepared"]["state"], "Prepare");
    // The task saw the redrive count through the context object.
    assert_eq!(output["deployed"]["input"]["redrives"], 1);
    assert_eq!(
        calls_of(&calls, "Prepare"),
        1,
        "a state that succeeded is not rerun"
    );
    assert_eq!(calls_of(&calls, "Deploy"), 2);
    assert_eq!(second.info.redrive_count, 1);

    let types = types(&store, &arn);
    let failed_at = types.iter().position(|t| t == "ExecutionFailed").unwrap();
    assert_eq!(
        &types[failed_at..],
        [
            "ExecutionFailed",
            "ExecutionRedriven",
            "TaskStateEntered",
            "TaskScheduled",
            "TaskStarted",
            "TaskSucceeded",
            "TaskStateExited",
            "ExecutionSucceeded"
        ]
    );
    assert_ids_contiguous(&store, &arn);
    let events = store.events(&arn).unwrap();
    let redriven = &events[failed_at + 1];
    assert_eq!(
        redriven.kind,
        EventKind::ExecutionRedriven { redrive_count: 1 }
    );
    assert_eq!(
        redriven.to_json()["executionRedrivenEventDetails"],
        json!({"redriveCount": 1})
    );
    // The state entered again gets the input it had the first time.
    let EventKind::StateEntered { input, .. } = &events[failed_at + 2].kind else {
        panic!()
    };
    assert_eq!(input.value().unwrap()["prepared"]["state"], "Prepare");
    assert_eq!(store.list().unwrap()[0].status, "SUCCEEDED");
}

#[tokio::test]
async fn a_map_reruns_only_its_failed_iterations() {
    let def = json!({"StartAt": "Regions", "States": {
        "Regions": {"Type": "Map", "ItemsPath": "$.regions", "MaxConcurrency": 1,
            "ItemSelector": {"item.$": "$$.Map.Item.Value"},
            "ItemProcessor": {"StartAt": "Create", "States": {
                "Create": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "ResultSelector": {"created.$": "$.input.item"}, "Next": "Poll"},
                "Poll": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
                         "Parameters": {"item.$": "$.created"}, "ResultSelector": {"polled.$": "$.input.item"}, "End": true}}}, "End": true}}});
    let m = machine(&def);
    let store = MemStore::new();
    let calls = Calls::default();
    let t = tasks(calls.clone(), &["Poll:\"eu-west-1\""]);
    let input = json!({"regions": ["us-east-1", "eu-west-1", "ap-south-1"]});
    let first = first_run(&m, &def, input, &store, &t).await;
    assert!(matches!(&first.status, Status::Failed(f) if f.error == "Deploy.Failed"));
    let arn = first.info.execution_arn.clone();

    let second = redrive_stored(&m, &arn, &store, &t).await.unwrap();
    assert_eq!(
        second.status,
        Status::Succeeded(json!([
            {"polled": "us-east-1"},
            {"polled": "eu-west-1"},
            {"polled": "ap-south-1"}
        ]))
    );
    // us-east-1 succeeded before the failure: not rerun. eu-west-1 goes on from Poll, its
    // Create is not repeated. ap-south-1 had not started (MaxConcurrency 1).
    assert_eq!(calls_of(&calls, "Create:\"us-east-1\""), 1);
    assert_eq!(calls_of(&calls, "Poll:\"us-east-1\""), 1);
    assert_eq!(calls_of(&calls, "Create:\"eu-west-1\""), 1);
    assert_eq!(calls_of(&calls, "Poll:\"eu-west-1\""), 2);
    assert_eq!(calls_of(&calls, "Create:\"ap-south-1\""), 1);
    assert_ids_contiguous(&store, &arn);
    let types = types(&store, &arn);
    let redriven = types.iter().position(|t| t == "ExecutionRedriven").unwrap();
    assert_eq!(
        &types[redriven..redriven + 5],
        [
            "ExecutionRedriven",
            "MapStateEntered",
            "MapStateStarted",
            "MapIterationStarted",
            "TaskStateEntered"
        ]
    );
}

#[tokio::test]
async fn a_parallel_reruns_only_the_failed_branch() {
    let def = json!({"StartAt": "Both", "States": {
    "Both": {"Type": "Parallel", "End": true, "Branches": [
        {"StartAt": "Left", "States": {"Left": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "ResultSelector": {"s.$": "$.state"}, "End": true}}},
        {"StartAt": "Right", "States": {"Right": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "ResultSelector": {"s.$": "$.state"}, "End": true}}}
    ]}}});
    let m = machine(&def);
    let store = MemStore::new();
    let calls = Calls::default();
    let t = tasks(calls.clone(), &["Right"]);
    let first = first_run(&m, &def, json!({}), &store, &t).await;
    assert_eq!(first.status.as_str(), "FAILED");
    let second = redrive_stored(&m, &first.info.execution_arn, &store, &t)
        .await
        .unwrap();
    assert_eq!(
        second.status,
        Status::Succeeded(json!([{"s": "Left"}, {"s": "Right"}]))
    );
    assert_eq!(calls_of(&calls, "Left"), 1);
    assert_eq!(calls_of(&calls, "Right"), 2);
}

#[tokio::test]
async fn a_caught_failure_is_not_redriven_but_the_state_that_failed_after_it_is() {
    // The Map fails and is caught; then a Fail state fails the execution. A redrive enters
    // the Fail state again (and fails again); the caught Map does not run again.
    let def = json!({"StartAt": "Items", "States": {
        "Items": {"Type": "Map", "ItemsPath": "$.items",
            "ItemProcessor": {"StartAt": "Work", "States": {
                "Work": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "End": true}}},
            "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Stop"}], "End": true},
        "Stop": {"Type": "Fail", "Error": "Rolled.Back", "Cause": "caught"}}});
    let m = machine(&def);
    let store = MemStore::new();
    let calls = Calls::default();
    let t = tasks(calls.clone(), &["Work:1"]);
    let input = json!({"items": [{"item": 0}, {"item": 1}]});
    let first = first_run(&m, &def, input, &store, &t).await;
    assert!(matches!(&first.status, Status::Failed(f) if f.error == "Rolled.Back"));
    let work_calls = calls.lock().unwrap().values().sum::<u32>();
    let second = redrive_stored(&m, &first.info.execution_arn, &store, &t)
        .await
        .unwrap();
    assert!(matches!(&second.status, Status::Failed(f) if f.error == "Rolled.Back"));
    assert_eq!(calls.lock().unwrap().values().sum::<u32>(), work_calls);
    let types = types(&store, &first.info.execution_arn);
    let redriven = types.iter().position(|t| t == "ExecutionRedriven").unwrap();
    assert_eq!(
        &types[redriven..],
        ["ExecutionRedriven", "FailStateEntered", "ExecutionFailed"]
    );
    assert_eq!(second.info.redrive_count, 1);
}

#[tokio::test]
async fn a_stopped_execution_redrives_the_task_it_was_waiting_for() {
    let def = json!({"StartAt": "Slow", "States": {
        "Slow": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "End": true}}});
    let m = machine(&def);
    let store = MemStore::new();
    let signals = Signals::default();
    let mut opts = options();
    opts.signals = Some(signals.clone());
    // The first call never answers; the test stops the execution meanwhile.
    let calls = Calls::default();
    let counter = calls.clone();
    let t = FnTasks(move |req: TaskRequest| -> TaskFuture {
        let n = {
            let mut c = counter.lock().unwrap();
            let n = c.entry(req.state_name).or_insert(0);
            *n += 1;
            *n
        };
        if n == 1 {
            Box::pin(std::future::pending())
        } else {
            Box::pin(async { Ok(json!("finally")) })
        }
    });
    let text = def.to_string();
    let running = run_durable(
        &m,
        json!({}),
        &opts,
        &t,
        Persistence {
            store: &store,
            definition: &text,
            launch: &Value::Null,
        },
        None,
    );
    let arn = "arn:aws:states:us-east-1:123456789012:execution:redrive:redriven";
    let stop = async {
        while !signals.is_running(arn) || calls_of(&calls, "Slow") == 0 {
            tokio::task::yield_now().await;
        }
        signals
            .stop(arn, "Operator", "stopped by hand")
            .expect("running here")
            .await
            .expect("answered")
    };
    let (outcome, stop_date) = tokio::join!(running, stop);
    let outcome = outcome.unwrap();
    assert!(matches!(&outcome.status, Status::Aborted(f) if f.error == "Operator"));
    assert_eq!(stop_date, outcome.stop_time);
    assert!(!signals.is_running(arn), "unregistered once it ended");
    assert_eq!(store.list().unwrap()[0].status, "ABORTED");

    let second = redrive_stored(&m, arn, &store, &t).await.unwrap();
    assert_eq!(second.status, Status::Succeeded(json!("finally")));
    assert_eq!(calls_of(&calls, "Slow"), 2);
}

#[tokio::test]
async fn only_unsuccessful_executions_can_be_redriven() {
    let def = json!({"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": true}}});
    let m = machine(&def);
    let store = MemStore::new();
    let t = tasks(Calls::default(), &[]);
    let first = first_run(&m, &def, json!({}), &store, &t).await;
    let err = redrive_stored(&m, &first.info.execution_arn, &store, &t)
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        ResumeError::Redrive(RedriveError::Status("SUCCEEDED"))
    ));
    assert_eq!(
        err.to_string(),
        "Execution is SUCCEEDED and cannot be redriven."
    );
}

#[tokio::test]
async fn the_engine_stops_a_running_execution_and_redrives_it() {
    use stepstone_engine::Engine;
    let def = json!({"StartAt": "Slow", "States": {
        "Slow": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "End": true}}});
    let m = Arc::new(machine(&def));
    let calls = Calls::default();
    let counter = calls.clone();
    let engine = Engine::builder()
        .store(MemStore::new())
        .machine_name("deploy")
        .tasks(FnTasks(move |req: TaskRequest| -> TaskFuture {
            let first = {
                let mut c = counter.lock().unwrap();
                let n = c.entry(req.state_name).or_insert(0);
                *n += 1;
                *n == 1
            };
            if first {
                Box::pin(std::future::pending())
            } else {
                Box::pin(async { Ok(json!("deployed")) })
            }
        }))
        .build();
    let handle = engine.start(m, json!({}));
    while engine.signals().running().is_empty() || calls_of(&calls, "Slow") == 0 {
        tokio::task::yield_now().await;
    }
    let arn = engine.signals().running()[0].clone();
    engine.stop(&arn, "Operator", "by hand").await.unwrap();
    let outcome = handle.outcome().await.unwrap();
    assert_eq!(outcome.status.as_str(), "ABORTED");
    // Stopping it again is refused: it has ended.
    let again = engine.stop(&arn, "", "").await.unwrap_err();
    assert_eq!(again.to_string(), format!("{arn} is already ABORTED"));

    let redriven = engine.redrive(&arn).await.unwrap();
    assert_eq!(redriven.status, Status::Succeeded(json!("deployed")));
    assert_eq!(redriven.info.redrive_count, 1);
    let again = engine.redrive(&arn).await.unwrap_err();
    assert_eq!(
        again.to_string(),
        "Execution is SUCCEEDED and cannot be redriven."
    );
}

#[tokio::test]
async fn a_timed_out_execution_gets_its_timeout_again_from_the_redrive() {
    let def = json!({"TimeoutSeconds": 5, "StartAt": "Hold", "States": {
        "Hold": {"Type": "Wait", "Seconds": 10, "End": true}}});
    let m = machine(&def);
    let store = MemStore::new();
    let t = tasks(Calls::default(), &[]);
    let first = first_run(&m, &def, json!({}), &store, &t).await;
    assert_eq!(first.status.as_str(), "TIMED_OUT");
    let second = redrive_stored(&m, &first.info.execution_arn, &store, &t)
        .await
        .unwrap();
    assert_eq!(second.status.as_str(), "TIMED_OUT");
    let redriven = second.info.redrive_time.expect("redriven");
    // Five seconds from the redrive (plus the little real time that passed meanwhile), not
    // at once: the first start is long past its deadline.
    let after = second.stop_time.unix_nanos - redriven.unix_nanos;
    assert!(
        (5_000_000_000..5_500_000_000).contains(&after),
        "TimeoutSeconds counts from the redrive: {after} ns"
    );
    assert_eq!(
        types(&store, &first.info.execution_arn),
        [
            "ExecutionStarted",
            "WaitStateEntered",
            "ExecutionTimedOut",
            "ExecutionRedriven",
            "WaitStateEntered",
            "ExecutionTimedOut"
        ]
    );
}
