//! TestState in the engine, beyond what the recorded AWS cases cover: a spent retrier, a
//! JSONPath Catch, variables in the inspection, unmocked tasks, and the refusals.

use serde_json::{Map, Value, json};
use stepstone_engine::asl::{Machine, Options, SINGLE_STATE_NAME, validate, validate_state};
use stepstone_engine::{
    Failure, FnTasks, InspectionLevel, Mock, NoTasks, TaskRequest, TestState, TestStatus,
    test_state,
};

fn one_state(def: &Value) -> Machine {
    let v = validate_state(def, SINGLE_STATE_NAME, Options::default());
    v.machine.unwrap_or_else(|| panic!("{:?}", v.diagnostics))
}

fn debug(input: Value) -> TestState {
    TestState {
        input,
        inspection_level: InspectionLevel::Debug,
        ..TestState::default()
    }
}

fn failure(error: &str, cause: &str) -> Option<Mock> {
    Some(Mock::Error(Failure::new(error, cause)))
}

#[tokio::test]
async fn a_spent_retrier_hands_the_error_to_catch() {
    let m = one_state(
        &json!({"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
        "Parameters": {"FunctionName": "deploy"},
        "Retry": [{"ErrorEquals": ["Lambda.TooManyRequestsException"], "MaxAttempts": 2,
                   "IntervalSeconds": 3, "BackoffRate": 2.0, "MaxDelaySeconds": 5}],
        "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Rollback"}],
        "End": true}),
    );
    let mut test = debug(json!({"region": "eu-west-1"}));
    test.mock = failure("Lambda.TooManyRequestsException", "slow down");

    // One retry used: the next waits 3 × 2 = 6 s, capped at MaxDelaySeconds.
    test.configuration.retrier_retry_count = 1;
    let r = test_state(&m, SINGLE_STATE_NAME, &test, &NoTasks)
        .await
        .unwrap();
    assert_eq!(r.status, TestStatus::Retriable);
    assert_eq!(
        r.error,
        Some(Failure::new("Lambda.TooManyRequestsException", "slow down"))
    );
    assert_eq!(r.output, None);
    let data = r.inspection_data.unwrap();
    assert_eq!(
        data["errorDetails"],
        json!({"retryBackoffIntervalSeconds": 5, "retryIndex": 0})
    );

    // Both retries used: the catcher takes it, ResultPath and all.
    test.configuration.retrier_retry_count = 2;
    let r = test_state(&m, SINGLE_STATE_NAME, &test, &NoTasks)
        .await
        .unwrap();
    assert_eq!(r.status, TestStatus::CaughtError);
    assert_eq!(r.next_state.as_deref(), Some("Rollback"));
    assert_eq!(
        r.output,
        Some(
            json!({"region": "eu-west-1", "error": {"Error": "Lambda.TooManyRequestsException", "Cause": "slow down"}})
        )
    );
    assert_eq!(
        r.inspection_data.unwrap()["errorDetails"],
        json!({"catchIndex": 0})
    );
}

#[tokio::test]
async fn an_error_nothing_handles_fails_and_info_shows_no_inspection() {
    let m = one_state(
        &json!({"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
        "Retry": [{"ErrorEquals": ["States.Timeout"]}], "End": true}),
    );
    let test = TestState {
        mock: failure("Boom", "it broke"),
        ..TestState::default()
    };
    let r = test_state(&m, SINGLE_STATE_NAME, &test, &NoTasks)
        .await
        .unwrap();
    assert_eq!(r.status, TestStatus::Failed);
    assert_eq!(r.error, Some(Failure::new("Boom", "it broke")));
    assert_eq!(r.inspection_data, None);
    assert_eq!(
        r.to_json(),
        json!({"status": "FAILED", "error": "Boom", "cause": "it broke"})
    );
}

#[tokio::test]
async fn variables_given_are_read_and_the_assigned_ones_are_shown() {
    let m = one_state(&json!({"Type": "Pass", "QueryLanguage": "JSONata",
        "Assign": {"attempt": "{% $attempt + 1 %}"},
        "Output": {"region": "{% $region %}", "before": "{% $attempt %}"}, "Next": "Deploy"}));
    let mut test = debug(json!({}));
    test.variables = Map::from_iter([
        ("region".to_owned(), json!("us-east-1")),
        ("attempt".to_owned(), json!(1)),
    ]);
    let r = test_state(&m, SINGLE_STATE_NAME, &test, &NoTasks)
        .await
        .unwrap();
    assert_eq!(r.status, TestStatus::Succeeded);
    // Output sees the variables from before the state; the inspection, those after it.
    assert_eq!(r.output, Some(json!({"region": "us-east-1", "before": 1})));
    assert_eq!(r.next_state.as_deref(), Some("Deploy"));
    let data = r.inspection_data.unwrap();
    assert_eq!(
        data["variables"],
        json!({"region": "us-east-1", "attempt": 2})
    );
    assert_eq!(data["input"], json!({}));
}

#[tokio::test]
async fn an_unmocked_task_goes_to_the_dispatcher_and_its_steps_are_inspected() {
    let m = one_state(
        &json!({"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
        "InputPath": "$.deploy", "Parameters": {"FunctionName": "prepare", "Payload.$": "$"},
        "ResultSelector": {"stack.$": "$.Payload.stack"}, "ResultPath": "$.prepared",
        "OutputPath": "$.prepared", "End": true}),
    );
    let tasks = FnTasks(|req: TaskRequest| async move {
        Ok(
            json!({"Payload": {"stack": format!("app-{}", req.input["Payload"]["region"].as_str().unwrap())}}),
        )
    });
    let test = debug(json!({"deploy": {"region": "eu-west-1"}}));
    let r = test_state(&m, SINGLE_STATE_NAME, &test, &tasks)
        .await
        .unwrap();
    assert_eq!(r.status, TestStatus::Succeeded);
    assert_eq!(r.output, Some(json!({"stack": "app-eu-west-1"})));
    assert_eq!(r.next_state, None);
    let data = r.inspection_data.unwrap();
    let steps: Vec<&str> = data.keys().map(String::as_str).collect();
    assert_eq!(
        steps,
        [
            "input",
            "afterInputPath",
            "afterParameters",
            "result",
            "afterResultSelector",
            "afterResultPath"
        ]
    );
    assert_eq!(data["afterInputPath"], json!({"region": "eu-west-1"}));
    assert_eq!(
        data["afterParameters"],
        json!({"FunctionName": "prepare", "Payload": {"region": "eu-west-1"}})
    );
    assert_eq!(
        data["afterResultPath"],
        json!({"deploy": {"region": "eu-west-1"}, "prepared": {"stack": "app-eu-west-1"}})
    );
}

#[tokio::test]
async fn a_map_needs_a_mock_and_with_one_runs_no_iteration() {
    let m = one_state(
        &json!({"Type": "Map", "ItemsPath": "$.regions", "MaxConcurrency": 2,
        "ItemProcessor": {"StartAt": "Up", "States": {"Up": {"Type": "Pass", "End": true}}},
        "ResultPath": "$.up", "Next": "Report"}),
    );
    let mut test = debug(json!({"regions": ["a", "b"]}));
    let err = test_state(&m, SINGLE_STATE_NAME, &test, &NoTasks)
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with(stepstone_engine::UNSUPPORTED_WITHOUT_MOCK),
        "{err}"
    );
    test.mock = Some(Mock::Result(json!(["a-ok", "b-ok"])));
    let r = test_state(&m, SINGLE_STATE_NAME, &test, &NoTasks)
        .await
        .unwrap();
    assert_eq!(r.status, TestStatus::Succeeded);
    assert_eq!(
        r.output,
        Some(json!({"regions": ["a", "b"], "up": ["a-ok", "b-ok"]}))
    );
    assert_eq!(r.next_state.as_deref(), Some("Report"));
    let data = r.inspection_data.unwrap();
    assert_eq!(data["afterItemsPath"], json!(["a", "b"]));
    assert_eq!(data["maxConcurrency"], json!(2));
}

#[tokio::test]
async fn a_mocked_map_is_held_to_its_tolerated_percentage() {
    let m = one_state(&json!({"Type": "Map", "ToleratedFailurePercentage": 50,
        "ItemProcessor": {"StartAt": "Up", "States": {"Up": {"Type": "Pass", "End": true}}},
        "End": true}));
    let mut test = debug(json!([1, 2, 3, 4]));
    test.mock = Some(Mock::Result(json!([1, 0, 0, 1])));
    test.configuration.map_iteration_failure_count = Some(2);
    let r = test_state(&m, SINGLE_STATE_NAME, &test, &NoTasks)
        .await
        .unwrap();
    assert_eq!(r.status, TestStatus::Succeeded, "2 of 4 is not over 50%");
    test.configuration.map_iteration_failure_count = Some(3);
    let r = test_state(&m, SINGLE_STATE_NAME, &test, &NoTasks)
        .await
        .unwrap();
    assert_eq!(r.status, TestStatus::Failed);
    assert_eq!(
        r.error.unwrap().error,
        "States.ExceedToleratedFailureThreshold"
    );
}

#[tokio::test]
async fn a_state_of_a_whole_machine_is_tested_in_place() {
    let def = json!({"StartAt": "A", "States": {
        "A": {"Type": "Pass", "Next": "B"},
        "B": {"Type": "Choice", "Choices": [{"Variable": "$.n", "NumericGreaterThan": 1, "Next": "A"}],
              "Default": "C"},
        "C": {"Type": "Succeed"}}});
    let m = validate(&def, Options::default()).machine.unwrap();
    let r = test_state(&m, "B", &debug(json!({"n": 2})), &NoTasks)
        .await
        .unwrap();
    assert_eq!(
        (r.status, r.next_state.as_deref()),
        (TestStatus::Succeeded, Some("A"))
    );
    let err = test_state(&m, "Z", &TestState::default(), &NoTasks)
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "no state 'Z' in the definition (its top-level states: A, B, C)"
    );
}

#[tokio::test]
async fn tests_that_mean_nothing_are_refused() {
    let pass = one_state(&json!({"Type": "Pass", "End": true}));
    let test = TestState {
        mock: Some(Mock::Result(json!(1))),
        ..TestState::default()
    };
    let err = test_state(&pass, SINGLE_STATE_NAME, &test, &NoTasks)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("'StateName' is a Pass state"),
        "{err}"
    );

    let callback = one_state(&json!({"Type": "Task",
        "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
        "Parameters": {"QueueUrl": "q", "MessageBody": {"token.$": "$$.Task.Token"}}, "End": true}));
    let err = test_state(
        &callback,
        SINGLE_STATE_NAME,
        &TestState::default(),
        &NoTasks,
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("waits for a task token"), "{err}");

    let map = one_state(&json!({"Type": "Map",
        "ItemProcessor": {"StartAt": "Up", "States": {"Up": {"Type": "Pass", "End": true}}},
        "End": true}));
    let mut test = TestState {
        mock: failure("E", "c"),
        ..TestState::default()
    };
    test.configuration.error_caused_by_state = Some("Down".into());
    let err = test_state(&map, SINGLE_STATE_NAME, &test, &NoTasks)
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "errorCausedByState: no state 'Down' inside 'StateName'"
    );
}
