//! Executions with Task states, errors and time: what the conformance corpus (which has no
//! Task states) does not cover.

mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use stepstone_engine::asl::Machine;
use stepstone_engine::asl::timestamp::Timestamp;
use stepstone_engine::{
    Command, Execution, ExecutionInfo, Failure, FnTasks, Input, Limits, NoTasks, Outcome,
    RunOptions, Status, TaskRequest, run,
};

fn machine(def: Value) -> Machine {
    common::machine(&def)
}

fn options() -> RunOptions {
    let mut o = RunOptions::default();
    o.virtual_time = true;
    o.record_history = true;
    o.name = Some("test-run".into());
    o
}

async fn go(def: Value, input: Value, tasks: &dyn stepstone_engine::TaskDispatcher) -> Outcome {
    run(&machine(def), input, &options(), tasks).await
}

fn task(extra: Value) -> Value {
    let mut t = json!({"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "End": true});
    t.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    t
}

fn elapsed_seconds(o: &Outcome) -> f64 {
    (o.stop_time.unix_nanos - o.info.start_time.unix_nanos) as f64 / 1e9
}

fn event_types(o: &Outcome) -> Vec<String> {
    o.history
        .events()
        .iter()
        .map(|e| e.kind.type_name())
        .collect()
}

#[tokio::test]
async fn task_data_flow() {
    let def = json!({"StartAt": "T", "States": {"T": task(json!({
        "Parameters": {"FunctionName": "f", "Payload": {"n.$": "$.n"}},
        "ResultSelector": {"doubled.$": "$.Payload.n"},
        "ResultPath": "$.result",
        "OutputPath": "$.result"
    }))}});
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let tasks = FnTasks(move |req: TaskRequest| {
        s.lock().unwrap().push(req.clone());
        async move {
            Ok(
                json!({"Payload": {"n": req.input["Payload"]["n"].as_i64().unwrap() * 2}, "StatusCode": 200}),
            )
        }
    });
    let out = go(def, json!({"n": 21}), &tasks).await;
    assert_eq!(out.status, Status::Succeeded(json!({"doubled": 42})));
    let req = &seen.lock().unwrap()[0];
    assert_eq!(
        req.input,
        json!({"FunctionName": "f", "Payload": {"n": 21}})
    );
    assert_eq!(req.resource, "arn:aws:states:::lambda:invoke");
    assert_eq!(req.attempt, 0);
    assert!(
        req.idempotency_token.ends_with("/T/2/0"),
        "{}",
        req.idempotency_token
    );
    assert_eq!(
        event_types(&out),
        [
            "ExecutionStarted",
            "TaskStateEntered",
            "TaskScheduled",
            "TaskStarted",
            "TaskSucceeded",
            "TaskStateExited",
            "ExecutionSucceeded"
        ]
    );
    let ids: Vec<u64> = out.history.events().iter().map(|e| e.id).collect();
    assert_eq!(ids, [1, 2, 3, 4, 5, 6, 7]);
}

type Ready = std::future::Ready<Result<Value, Failure>>;

/// Fails with `error` for the first `failures` calls, then returns `{"ok": true}`.
fn flaky(
    failures: u32,
    error: &'static str,
) -> (
    FnTasks<impl Fn(TaskRequest) -> Ready + Send + Sync>,
    Arc<AtomicU32>,
) {
    let calls = Arc::new(AtomicU32::new(0));
    let c = calls.clone();
    let tasks = FnTasks(move |_req: TaskRequest| {
        let n = c.fetch_add(1, Ordering::SeqCst);
        std::future::ready(if n < failures {
            Err(Failure::new(error, format!("call {n}")))
        } else {
            Ok(json!({"ok": true}))
        })
    });
    (tasks, calls)
}

#[tokio::test]
async fn retry_backs_off_then_succeeds() {
    let def = json!({"StartAt": "T", "States": {"T": task(json!({
        "Retry": [{"ErrorEquals": ["Boom"], "IntervalSeconds": 2, "MaxAttempts": 3, "BackoffRate": 2}]
    }))}});
    let (tasks, calls) = flaky(2, "Boom");
    let out = go(def, json!({}), &tasks).await;
    assert_eq!(out.status, Status::Succeeded(json!({"ok": true})));
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    // 2 s, then 4 s of virtual backoff.
    let t = elapsed_seconds(&out);
    assert!((6.0..7.0).contains(&t), "{t}");
    assert_eq!(
        event_types(&out)
            .iter()
            .filter(|t| *t == "TaskFailed")
            .count(),
        2
    );
}

#[tokio::test]
async fn max_delay_caps_backoff() {
    let def = json!({"StartAt": "T", "States": {"T": task(json!({
        "Retry": [{"ErrorEquals": ["States.ALL"], "IntervalSeconds": 10, "MaxAttempts": 3, "BackoffRate": 10, "MaxDelaySeconds": 15}]
    }))}});
    let (tasks, _) = flaky(3, "Boom");
    let out = go(def, json!({}), &tasks).await;
    // 10 + 15 + 15: the 100 s and 1000 s intervals are capped.
    let t = elapsed_seconds(&out);
    assert!((40.0..41.0).contains(&t), "{t}");
}

#[tokio::test]
async fn full_jitter_is_reproducible() {
    let def = json!({"StartAt": "T", "States": {"T": task(json!({
        "Retry": [{"ErrorEquals": ["States.ALL"], "IntervalSeconds": 100, "MaxAttempts": 1, "JitterStrategy": "FULL"}]
    }))}});
    let (a, _) = flaky(1, "Boom");
    let (b, _) = flaky(1, "Boom");
    let first = elapsed_seconds(&go(def.clone(), json!({}), &a).await);
    let second = elapsed_seconds(&go(def, json!({}), &b).await);
    assert!(first < 100.0, "jitter draws below the interval: {first}");
    assert!(
        (first - second).abs() < 0.5,
        "same execution, same delay: {first} vs {second}"
    );
}

#[tokio::test]
async fn exhausted_retry_goes_to_catch() {
    let def = json!({"StartAt": "T", "States": {
        "T": task(json!({
            "Retry": [{"ErrorEquals": ["Boom"], "MaxAttempts": 1, "IntervalSeconds": 1}],
            "Catch": [{"ErrorEquals": ["Boom"], "ResultPath": "$.error", "Next": "Recover"}]
        })),
        "Recover": {"Type": "Pass", "End": true}
    }});
    let (tasks, calls) = flaky(5, "Boom");
    let out = go(def, json!({"in": 1}), &tasks).await;
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(
        out.status,
        Status::Succeeded(json!({"in": 1, "error": {"Error": "Boom", "Cause": "call 1"}}))
    );
}

#[tokio::test]
async fn task_failed_matches_custom_errors_but_not_timeouts() {
    let def = |errors: Value| {
        json!({"StartAt": "T", "States": {
            "T": task(json!({"Catch": [{"ErrorEquals": errors, "Next": "Caught"}]})),
            "Caught": {"Type": "Succeed"}
        }})
    };
    let (tasks, _) = flaky(1, "CloudFormation.AlreadyExistsException");
    let out = go(def(json!(["States.TaskFailed"])), json!({}), &tasks).await;
    assert!(
        matches!(out.status, Status::Succeeded(_)),
        "{:?}",
        out.status
    );
    let (tasks, _) = flaky(1, "States.Timeout");
    let out = go(def(json!(["States.TaskFailed"])), json!({}), &tasks).await;
    assert_eq!(
        out.status,
        Status::Failed(Failure::new("States.Timeout", "call 0"))
    );
    let (tasks, _) = flaky(1, "States.Timeout");
    let out = go(def(json!(["States.ALL"])), json!({}), &tasks).await;
    assert!(matches!(out.status, Status::Succeeded(_)));
}

#[tokio::test]
async fn runtime_errors_are_not_caught() {
    let def = json!({"StartAt": "T", "States": {
        "T": task(json!({"OutputPath": "$.missing", "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Caught"}]})),
        "Caught": {"Type": "Succeed"}
    }});
    let (tasks, _) = flaky(0, "");
    let out = go(def, json!({}), &tasks).await;
    let Status::Failed(f) = out.status else {
        panic!("{:?}", out.status)
    };
    assert_eq!(f.error, "States.Runtime");
    assert_eq!(
        f.cause,
        "An error occurred while executing the state 'T' (entered at the event id #2). Invalid path '$.missing' : No results for path: $['missing']"
    );
}

#[tokio::test(start_paused = true)]
async fn task_timeout() {
    let def = json!({"StartAt": "T", "States": {"T": task(json!({"TimeoutSeconds": 5}))}});
    let tasks = FnTasks(|_req: TaskRequest| async {
        tokio::time::sleep(std::time::Duration::from_secs(60)).await;
        Ok(json!("late"))
    });
    let out = go(def, json!({}), &tasks).await;
    let Status::Failed(f) = &out.status else {
        panic!("{:?}", out.status)
    };
    assert_eq!(f.error, "States.Timeout");
    assert!(event_types(&out).contains(&"TaskTimedOut".to_owned()));
}

#[tokio::test]
async fn execution_timeout() {
    let def = json!({"TimeoutSeconds": 10, "StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 100, "End": true}}});
    let out = go(def, json!({}), &NoTasks).await;
    assert!(
        matches!(out.status, Status::TimedOut(_)),
        "{:?}",
        out.status
    );
    let t = elapsed_seconds(&out);
    assert!((10.0..11.0).contains(&t), "{t}");
    assert_eq!(event_types(&out).last().unwrap(), "ExecutionTimedOut");
}

#[tokio::test]
async fn waits_move_virtual_time() {
    let def = json!({"StartAt": "W", "States": {
        "W": {"Type": "Wait", "Seconds": 3600, "Next": "E"},
        "E": {"Type": "Pass", "Parameters": {"t.$": "$$.State.EnteredTime"}, "End": true}
    }});
    let out = go(def, json!({}), &NoTasks).await;
    assert!((3600.0..3601.0).contains(&elapsed_seconds(&out)));
    let Status::Succeeded(v) = out.status else {
        panic!()
    };
    let entered = Timestamp::parse(v["t"].as_str().unwrap()).unwrap();
    assert!(entered.unix_seconds() - out.info.start_time.unix_seconds() >= 3600);
}

#[tokio::test]
async fn no_route_names_the_resource() {
    let def = json!({"StartAt": "T", "States": {"T": task(json!({}))}});
    let out = go(def, json!({}), &NoTasks).await;
    let Status::Failed(f) = out.status else {
        panic!()
    };
    assert_eq!(f.error, "States.Runtime");
    assert!(
        f.cause.contains("arn:aws:states:::lambda:invoke") && f.cause.contains("'T'"),
        "{}",
        f.cause
    );
}

#[tokio::test]
async fn parallel_branch_failure_fails_the_state() {
    let def = json!({"StartAt": "P", "States": {
        "P": {"Type": "Parallel", "Branches": [
            {"StartAt": "Ok", "States": {"Ok": {"Type": "Pass", "End": true}}},
            {"StartAt": "Bad", "States": {"Bad": {"Type": "Fail", "Error": "BranchBroke", "Cause": "nope"}}}
        ], "Catch": [{"ErrorEquals": ["BranchBroke"], "ResultPath": "$.e", "Next": "Done"}], "End": true},
        "Done": {"Type": "Succeed"}
    }});
    let out = go(def, json!({}), &NoTasks).await;
    assert_eq!(
        out.status,
        Status::Succeeded(json!({"e": {"Error": "BranchBroke", "Cause": "nope"}}))
    );
    assert!(event_types(&out).contains(&"ParallelStateFailed".to_owned()));
}

fn map_with_failures(extra: Value) -> Value {
    let mut m = json!({"Type": "Map", "ItemsPath": "$.items", "ItemProcessor": {"StartAt": "Check", "States": {
        "Check": {"Type": "Choice", "Choices": [{"Variable": "$", "NumericEquals": 2, "Next": "Bad"}], "Default": "Ok"},
        "Bad": {"Type": "Fail", "Error": "Two", "Cause": "two is bad"},
        "Ok": {"Type": "Pass", "End": true}
    }}, "End": true});
    m.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    json!({"StartAt": "M", "States": {"M": m}})
}

#[tokio::test]
async fn map_failures_and_tolerance() {
    let input = json!({"items": [1, 2, 3]});
    let out = go(map_with_failures(json!({})), input.clone(), &NoTasks).await;
    assert_eq!(
        out.status,
        Status::Failed(Failure::new("Two", "two is bad"))
    );
    let out = go(
        map_with_failures(json!({"ToleratedFailureCount": 1})),
        input.clone(),
        &NoTasks,
    )
    .await;
    assert_eq!(
        out.status,
        Status::Succeeded(json!([1, {"Error": "Two", "Cause": "two is bad"}, 3]))
    );
    let out = go(
        map_with_failures(json!({"ToleratedFailurePercentage": 20})),
        input.clone(),
        &NoTasks,
    )
    .await;
    assert_eq!(out.status.as_str(), "FAILED");
    let Status::Failed(f) = out.status else {
        unreachable!()
    };
    assert_eq!(f.error, "States.ExceedToleratedFailureThreshold");
    let out = go(
        map_with_failures(json!({"ToleratedFailurePercentage": 34})),
        input,
        &NoTasks,
    )
    .await;
    assert!(matches!(out.status, Status::Succeeded(_)));
}

#[tokio::test]
async fn map_runs_many_items_in_order() {
    let def = json!({"StartAt": "M", "States": {"M": {"Type": "Map", "MaxConcurrency": 3, "ItemSelector": {"i.$": "$$.Map.Item.Index", "v.$": "$$.Map.Item.Value"},
        "ItemProcessor": {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}}, "End": true}}});
    let items: Vec<Value> = (0..500).map(|i| json!(i * 10)).collect();
    let out = go(def, Value::Array(items), &NoTasks).await;
    let Status::Succeeded(Value::Array(results)) = out.status else {
        panic!()
    };
    assert_eq!(results.len(), 500);
    assert_eq!(results[499], json!({"i": 499, "v": 4990}));
}

#[tokio::test]
async fn history_limit_ends_a_runaway_loop() {
    let def = json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "B"}, "B": {"Type": "Pass", "Next": "A"}}});
    let def = json!({"StartAt": "A", "States": {"A": def["States"]["A"], "B": def["States"]["B"], "End": {"Type": "Succeed"}, "C": {"Type": "Choice", "Choices": [{"Variable": "$.x", "IsPresent": true, "Next": "End"}], "Default": "A"}}});
    let mut def = def;
    def["States"]["B"]["Next"] = json!("C");
    let mut o = options();
    o.record_history = false;
    o.limits = Limits::default().with_max_history_events(Some(1000));
    let out = run(&machine(def), json!({}), &o, &NoTasks).await;
    let Status::Failed(f) = out.status else {
        panic!("{:?}", out.status)
    };
    assert_eq!(f.error, "States.Runtime");
    assert!(f.cause.contains("1000 history events"), "{}", f.cause);
}

#[tokio::test]
async fn variables_flow_into_children_but_not_out() {
    let def = json!({"StartAt": "Set", "States": {
        "Set": {"Type": "Pass", "Assign": {"region": "eu-west-1", "n": 1}, "Next": "P"},
        "P": {"Type": "Parallel", "Branches": [{"StartAt": "In", "States": {"In": {"Type": "Pass", "Assign": {"n": 99}, "Parameters": {"r.$": "$region"}, "End": true}}}], "Next": "After"},
        "After": {"Type": "Pass", "Parameters": {"n.$": "$n", "branch.$": "$[0]"}, "End": true}
    }});
    let out = go(def, json!({}), &NoTasks).await;
    assert_eq!(
        out.status,
        Status::Succeeded(json!({"n": 1, "branch": {"r": "eu-west-1"}}))
    );
}

#[tokio::test]
async fn assigned_variables_are_in_the_exited_events() {
    let def = json!({"StartAt": "Set", "States": {
        "Set": {"Type": "Pass", "Assign": {"region": "eu-west-1", "n.$": "$.n"}, "Next": "Pick"},
        "Pick": {"Type": "Choice", "Choices": [{"Variable": "$n", "NumericEquals": 1, "Assign": {"picked": true}, "Next": "Done"}], "Default": "Done"},
        "Done": {"Type": "Pass", "End": true}}});
    let out = go(def, json!({"n": 1}), &NoTasks).await;
    let exited: Vec<Value> = out
        .history
        .events()
        .iter()
        .map(|e| e.to_json())
        .filter(|e| e["type"].as_str().unwrap().ends_with("StateExited"))
        .map(|e| e["stateExitedEventDetails"].clone())
        .collect();
    // As GetExecutionHistory gives them: each value as JSON text.
    assert_eq!(
        exited[0]["assignedVariables"],
        json!({"region": "\"eu-west-1\"", "n": "1"})
    );
    assert_eq!(
        exited[0]["assignedVariablesDetails"],
        json!({"truncated": false})
    );
    assert_eq!(exited[1]["assignedVariables"], json!({"picked": "true"}));
    assert!(exited[2].get("assignedVariables").is_none());
}

#[tokio::test]
async fn variables_are_held_to_aws_size_limits() {
    let big = "x".repeat(200 * 1024);
    // Each variable fits, but not both in one Assign (256 KiB), in either language.
    for lang in ["JSONPath", "JSONata"] {
        let def = json!({"QueryLanguage": lang, "StartAt": "Set", "States": {
            "Set": {"Type": "Pass", "Assign": {"a": big, "b": big}, "End": true}}});
        let out = go(def, json!({}), &NoTasks).await;
        let Status::Failed(f) = out.status else {
            panic!("{lang}: {:?}", out.status)
        };
        assert_eq!(f.error, "States.DataLimitExceeded", "{lang}");
        assert!(
            f.cause.contains("one Assign may hold at most 262144 bytes"),
            "{}",
            f.cause
        );
    }
    // One variable over the limit names itself; one state's worth passes.
    let huge = "x".repeat(300 * 1024);
    let def = json!({"StartAt": "Set", "States": {
        "Set": {"Type": "Pass", "Assign": {"huge.$": "$.v"}, "End": true}}});
    let out = go(def, json!({"v": huge}), &NoTasks).await;
    let Status::Failed(f) = out.status else {
        panic!("{:?}", out.status)
    };
    assert!(
        f.cause.contains("The variable 'huge' is 307202 bytes"),
        "{}",
        f.cause
    );
    let def = json!({"StartAt": "Set", "States": {
        "Set": {"Type": "Pass", "Assign": {"a": big}, "Next": "Again"},
        "Again": {"Type": "Pass", "Assign": {"b": big}, "End": true}}});
    assert!(matches!(
        go(def, json!({}), &NoTasks).await.status,
        Status::Succeeded(_)
    ));
}

/// The interpreter alone: commands out, inputs in, no driver.
#[test]
fn interpreter_emits_commands() {
    let mut t = task(
        json!({"Retry": [{"ErrorEquals": ["Boom"], "IntervalSeconds": 5, "MaxAttempts": 1}], "Next": "W"}),
    );
    t.as_object_mut().unwrap().remove("End");
    let m = machine(json!({"StartAt": "T", "States": {
        "T": t,
        "W": {"Type": "Wait", "Seconds": 30, "End": true}
    }}));
    let t0 = Timestamp {
        unix_nanos: 1_000_000_000_000_000_000,
    };
    let info = ExecutionInfo::new("sm", "ex", json!({"a": 1}), t0, false);
    let mut exec = Execution::new(
        &m,
        info,
        Limits::default(),
        stepstone_engine::history::HistoryMode::Off,
    );
    let commands = exec.start(t0);
    let [Command::Dispatch(req)] = commands.as_slice() else {
        panic!("{commands:?}")
    };
    assert_eq!((req.state_name.as_str(), req.attempt), ("T", 0));
    let run = req.run;
    let commands = exec.on_input(
        Input::TaskDone {
            run,
            result: Err(Failure::new("Boom", "x")),
        },
        t0,
    );
    let [Command::Timer { until, .. }] = commands.as_slice() else {
        panic!("{commands:?}")
    };
    assert_eq!(until.unix_nanos - t0.unix_nanos, 5_000_000_000);
    let commands = exec.on_input(Input::TimerFired { run }, *until);
    let [Command::Dispatch(retry)] = commands.as_slice() else {
        panic!("{commands:?}")
    };
    assert_eq!(retry.attempt, 1);
    let commands = exec.on_input(
        Input::TaskDone {
            run,
            result: Ok(json!("done")),
        },
        *until,
    );
    let [
        Command::Timer {
            until: wait_until, ..
        },
    ] = commands.as_slice()
    else {
        panic!("{commands:?}")
    };
    assert_eq!(wait_until.unix_nanos - until.unix_nanos, 30_000_000_000);
    assert_eq!(*exec.status(), Status::Running);
    // A late answer for a finished task is ignored.
    assert!(
        exec.on_input(
            Input::TaskDone {
                run,
                result: Ok(json!("dup"))
            },
            *wait_until
        )
        .is_empty()
    );
    exec.on_input(Input::TimerFired { run }, *wait_until);
    assert_eq!(*exec.status(), Status::Succeeded(json!("done")));
    assert_eq!(exec.states_entered(), 2);
}

#[tokio::test]
async fn a_retry_sends_the_same_input() {
    let def = json!({"StartAt": "T", "States": {"T": task(json!({
        "Parameters": {"region.$": "$.region", "try.$": "$$.State.RetryCount"},
        "Retry": [{"ErrorEquals": ["States.ALL"], "MaxAttempts": 2}]
    }))}});
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let tasks = FnTasks(move |req: TaskRequest| {
        let mut seen = s.lock().unwrap();
        seen.push((req.input.clone(), req.attempt));
        let fail = seen.len() < 3;
        async move {
            if fail {
                Err(Failure::new("Throttled", "slow down"))
            } else {
                Ok(json!("ok"))
            }
        }
    });
    let out = go(def, json!({"region": "eu-west-1"}), &tasks).await;
    assert_eq!(out.status, Status::Succeeded(json!("ok")));
    assert_eq!(
        *seen.lock().unwrap(),
        vec![
            (json!({"region": "eu-west-1", "try": 0}), 0),
            (json!({"region": "eu-west-1", "try": 1}), 1),
            (json!({"region": "eu-west-1", "try": 2}), 2)
        ]
    );
}

/// A loop of pure states with no history limit must still hand control back to the driver, or
/// an execution timeout could never fire.
#[test]
fn a_pure_loop_yields_to_the_driver() {
    let m = machine(json!({"StartAt": "A", "States": {
        "A": {"Type": "Pass", "Next": "B"},
        "B": {"Type": "Choice", "Choices": [{"Variable": "$.stop", "IsPresent": true, "Next": "Done"}], "Default": "A"},
        "Done": {"Type": "Succeed"}
    }}));
    let t0 = Timestamp { unix_nanos: 0 };
    let info = ExecutionInfo::new("sm", "ex", json!({}), t0, false);
    let limits = Limits::default().with_max_history_events(None);
    let mut exec = Execution::new(
        &m,
        info,
        limits,
        stepstone_engine::history::HistoryMode::Off,
    );
    assert!(exec.start(t0).is_empty());
    assert!(exec.has_ready_runs());
    assert_eq!(
        exec.states_entered(),
        u64::from(stepstone_engine::STATES_PER_CALL)
    );
    exec.resume(t0);
    assert_eq!(
        exec.states_entered(),
        2 * u64::from(stepstone_engine::STATES_PER_CALL)
    );
    exec.on_input(Input::TimedOut, t0);
    assert!(matches!(exec.status(), Status::TimedOut(_)));
    assert!(!exec.has_ready_runs());
}

/// Parameters may move subtrees out of the input when the output ignores it; a ResultPath that
/// cannot apply to that input must still fail as on AWS.
#[tokio::test]
async fn consumed_input_keeps_result_path_errors() {
    let def = json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "Parameters": {"d.$": "$.doc"}, "ResultPath": "$.a.b", "OutputPath": "$.a.b", "End": true}}});
    let out = go(
        def.clone(),
        json!({"doc": {"x": 1}, "a": "not an object"}),
        &NoTasks,
    )
    .await;
    let Status::Failed(f) = out.status else {
        panic!("{:?}", out.status)
    };
    assert_eq!(f.error, "States.ResultPathMatchFailure");
    let out = go(def, json!({"doc": {"x": 1}, "a": {}}), &NoTasks).await;
    assert_eq!(out.status, Status::Succeeded(json!({"d": {"x": 1}})));
}

#[tokio::test]
async fn an_item_reader_with_no_handler_fails_the_map_naming_its_resource() {
    let def = json!({"StartAt": "M", "States": {"M": {"Type": "Map",
        "ItemReader": {"Resource": "arn:aws:states:::s3:getObject", "ReaderConfig": {"InputType": "CSV", "CSVHeaderLocation": "FIRST_ROW"}, "Parameters": {"Bucket": "b", "Key": "k"}},
        "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"}, "StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}},
        "End": true}}});
    let out = go(def, json!([]), &NoTasks).await;
    let Status::Failed(f) = out.status else {
        panic!("{:?}", out.status)
    };
    // The reader is a task like any other: with nothing to answer it, the Map fails with
    // States.ItemReaderFailed, the dispatcher's reason in the cause.
    assert_eq!(f.error, "States.ItemReaderFailed");
    assert!(
        f.cause.contains("arn:aws:states:::s3:getObject"),
        "{}",
        f.cause
    );
}

#[tokio::test]
async fn a_panicking_handler_fails_its_task_and_catch_sees_it() {
    let m = machine(json!({"StartAt": "T", "States": {
        "T": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "End": true,
              "Catch": [{"ErrorEquals": ["States.TaskFailed"], "Next": "Caught"}]},
        "Caught": {"Type": "Pass", "End": true}}}));
    let tasks = FnTasks(|_: TaskRequest| async move {
        if true {
            panic!("the handler has a bug");
        }
        Ok(json!(null))
    });
    let out = run(&m, json!({}), &options(), &tasks).await;
    let Status::Succeeded(output) = out.status else {
        panic!("{:?}", out.status)
    };
    assert_eq!(output["Error"], "States.TaskFailed");
    assert!(
        output["Cause"]
            .as_str()
            .unwrap()
            .starts_with("The task handler panicked")
    );
}

fn failed(out: &Outcome) -> &Failure {
    let Status::Failed(f) = &out.status else {
        let text = format!("{:?}", out.status);
        panic!("expected a failure: {}", &text[..text.len().min(200)])
    };
    f
}

/// AWS fails a state whose output passes 256 KiB with States.DataLimitExceeded. A JSONPath
/// loop that doubles its document (whose growth the engine bounds from the state's fields
/// instead of measuring each output) fails at the very pass whose output first passes it.
#[tokio::test]
async fn a_loop_that_doubles_its_document_fails_where_it_passes_the_payload_limit() {
    let def = json!({"StartAt": "Double", "States": {
        "Double": {"Type": "Pass", "Parameters": {"a.$": "$", "b.$": "$"}, "Next": "Again"},
        "Again": {"Type": "Choice", "Choices": [{"Variable": "$.a", "IsPresent": true, "Next": "Double"}],
            "Default": "Done"},
        "Done": {"Type": "Succeed"}}});
    let start = json!("x".repeat(1000));
    let out = go(def, start.clone(), &NoTasks).await;
    let f = failed(&out);
    assert_eq!(f.error, "States.DataLimitExceeded");
    let (mut doc, mut passes) = (start, 0);
    let size = loop {
        passes += 1;
        doc = json!({"a": doc, "b": doc});
        let size = serde_json::to_vec(&doc).unwrap().len();
        if size > 256 * 1024 {
            break size;
        }
    };
    assert!(
        f.cause
            .contains("'Double' returned a result with a size exceeding"),
        "{}",
        f.cause
    );
    assert!(
        f.cause.contains(&format!("its output is {size} bytes")),
        "{}",
        f.cause
    );
    let entered = event_types(&out)
        .iter()
        .filter(|t| *t == "PassStateEntered")
        .count();
    assert_eq!(entered, passes);
}

#[tokio::test]
async fn an_output_of_exactly_the_payload_limit_passes() {
    let def = json!({"StartAt": "Wrap", "States": {
        "Wrap": {"Type": "Pass", "Parameters": {"a.$": "$"}, "End": true}}});
    // {"a":"x..."} is the string and 8 bytes more.
    let at_limit = "x".repeat(256 * 1024 - 8);
    let out = go(def.clone(), json!(at_limit), &NoTasks).await;
    assert_eq!(out.status, Status::Succeeded(json!({"a": at_limit})));
    let over = "x".repeat(256 * 1024 - 7);
    let out = go(def, json!(over), &NoTasks).await;
    assert_eq!(failed(&out).error, "States.DataLimitExceeded");
    assert!(
        failed(&out)
            .cause
            .contains("its output is 262145 bytes, the limit is 262144")
    );
}

/// A Map's or Parallel's output gathers its children's: each child within the limit, all of
/// them together over it.
#[tokio::test]
async fn children_whose_outputs_together_pass_the_limit_fail_their_map_or_parallel() {
    let pass =
        |name: &str| json!({"StartAt": name, "States": {name: {"Type": "Pass", "End": true}}});
    let half = "x".repeat(140 * 1024);
    let parallel = |branches: usize| {
        let branches: Vec<Value> = (0..branches).map(|b| pass(&format!("P{b}"))).collect();
        json!({"StartAt": "Fan", "States": {"Fan": {"Type": "Parallel", "End": true,
            "Branches": branches}}})
    };
    let out = go(parallel(1), json!(half), &NoTasks).await;
    assert_eq!(out.status, Status::Succeeded(json!([half])));
    let out = go(parallel(2), json!(half), &NoTasks).await;
    assert_eq!(failed(&out).error, "States.DataLimitExceeded");
    assert!(
        failed(&out).cause.contains("'Fan'"),
        "{}",
        failed(&out).cause
    );

    let map = json!({"StartAt": "Each", "States": {"Each": {"Type": "Map", "End": true,
        "ItemSelector": {"a.$": "$$.Map.Item.Value", "b.$": "$$.Map.Item.Value"},
        "ItemProcessor": pass("P")}}});
    let out = go(map, json!(["x".repeat(140 * 1024)]), &NoTasks).await;
    assert_eq!(failed(&out).error, "States.DataLimitExceeded");
    // The item's copies fail the iteration's first state, and so the Map.
    assert!(failed(&out).cause.contains("'P'"), "{}", failed(&out).cause);
}

/// A Task's result within the limit, placed into an input within the limit, can still make an
/// output over it.
#[tokio::test]
async fn a_task_result_placed_into_a_large_input_can_pass_the_limit() {
    let result = "r".repeat(100 * 1024);
    let r = result.clone();
    let tasks = FnTasks(move |_req: TaskRequest| std::future::ready(Ok(json!(r.clone()))));
    let def = json!({"StartAt": "T", "States": {"T": task(json!({"ResultPath": "$.r"}))}});
    let small = json!({"doc": "d".repeat(100 * 1024)});
    let out = go(def.clone(), small, &tasks).await;
    assert!(
        matches!(out.status, Status::Succeeded(_)),
        "{:?}",
        out.status
    );
    let large = json!({"doc": "d".repeat(200 * 1024)});
    let out = go(def, large, &tasks).await;
    assert_eq!(failed(&out).error, "States.DataLimitExceeded");
    assert!(
        failed(&out).cause.contains("its output"),
        "{}",
        failed(&out).cause
    );
}
