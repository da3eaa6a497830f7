//! JSONata states in the engine, beyond what the recorded AWS cases cover: expressions in the
//! number fields (TimeoutSeconds, MaxConcurrency, ToleratedFailureCount), Arguments and Output of
//! a Task, a Catch's `$states.errorOutput`, and variables across states.

mod common;

use common::machine;
use serde_json::{Value, json};
use stepstone_engine::{Failure, FnTasks, RunOptions, Status, TaskRequest, run};

fn options() -> RunOptions {
    let mut o = RunOptions::default();
    o.virtual_time = true;
    o
}

#[tokio::test]
async fn a_jsonata_deployment_reads_its_fields_from_expressions() {
    let def = json!({"QueryLanguage": "JSONata", "StartAt": "Plan", "States": {
        "Plan": {"Type": "Pass", "Assign": {"regions": "{% $states.input.regions %}", "limit": 2},
                 "Output": {"count": "{% $count($states.input.regions) %}"}, "Next": "Deploy"},
        "Deploy": {"Type": "Map", "Items": "{% $regions %}", "MaxConcurrency": "{% $limit %}",
            "ToleratedFailureCount": "{% $limit - 2 %}",
            "ItemSelector": {"region": "{% $states.context.Map.Item.Value %}", "index": "{% $states.context.Map.Item.Index %}"},
            "ItemProcessor": {"StartAt": "Create", "States": {
                "Create": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
                    "TimeoutSeconds": "{% 30 + $states.input.index %}",
                    "Arguments": {"FunctionName": "create", "Payload": {"region": "{% $states.input.region %}"}},
                    "Output": "{% $states.result.Payload.stack & '@' & $states.input.region %}",
                    "Catch": [{"ErrorEquals": ["States.ALL"], "Output": "{% 'failed: ' & $states.errorOutput.Error %}", "Next": "Failed"}],
                    "End": true},
                "Failed": {"Type": "Pass", "End": true}}},
            "Output": {"stacks": "{% $states.result %}", "planned": "{% $states.input.count %}"},
            "End": true}}});
    let m = machine(&def);
    let tasks = FnTasks(|req: TaskRequest| async move {
        let index = ["us-east-1", "eu-west-1", "ap-south-1"]
            .iter()
            .position(|r| req.input["Payload"]["region"] == *r)
            .unwrap();
        assert_eq!(req.timeout_seconds, Some(30 + index as u64));
        match req.input["Payload"]["region"].as_str() {
            Some("ap-south-1") => Err(Failure::new("Deploy.Refused", "no capacity")),
            Some(r) => Ok(json!({"Payload": {"stack": format!("stack-{r}")}})),
            None => panic!("{}", req.input),
        }
    });
    let out = run(
        &m,
        json!({"regions": ["us-east-1", "eu-west-1", "ap-south-1"]}),
        &options(),
        &tasks,
    )
    .await;
    assert_eq!(
        out.status,
        Status::Succeeded(json!({
            "stacks": ["stack-us-east-1@us-east-1", "stack-eu-west-1@eu-west-1", "failed: Deploy.Refused"],
            "planned": 3
        }))
    );
}

#[tokio::test]
async fn a_failing_expression_is_a_query_evaluation_error_naming_its_field() {
    let def = json!({"QueryLanguage": "JSONata", "StartAt": "Wait", "States": {
        "Wait": {"Type": "Wait", "Seconds": "{% $states.input.delay %}", "End": true}}});
    let out = run(
        &machine(&def),
        json!({"delay": "soon"}),
        &options(),
        &stepstone_engine::NoTasks,
    )
    .await;
    let Status::Failed(f) = out.status else {
        panic!("{:?}", out.status)
    };
    assert_eq!(f.error, "States.QueryEvaluationError");
    assert_eq!(
        f.cause,
        "An error occurred while executing the state 'Wait' (entered at the event id #2). The JSONata expression '$states.input.delay' specified for the field 'Seconds' returned an unexpected result type. Expected 'integer', but was 'string' for value: \"soon\""
    );
}

#[tokio::test]
async fn a_failing_expression_is_recorded_in_an_evaluation_failed_event() {
    let def = json!({"QueryLanguage": "JSONata", "StartAt": "Fan", "States": {
        "Fan": {"Type": "Map", "Items": "{% $states.input.regions %}",
            "ItemProcessor": {"StartAt": "Up", "States": {"Up": {"Type": "Pass", "End": true}}},
            "Catch": [{"ErrorEquals": ["States.QueryEvaluationError"], "Next": "Bad"}],
            "End": true},
        "Bad": {"Type": "Pass", "Output": "{% $undefinedVariable %}", "End": true}}});
    let mut o = options();
    o.record_history = true;
    let out = run(
        &machine(&def),
        json!({"regions": "eu-west-1"}),
        &o,
        &stepstone_engine::NoTasks,
    )
    .await;
    let events: Vec<Value> = out.history.events().iter().map(|e| e.to_json()).collect();
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    // As AWS records it: the evaluation failure, then the Map's failure; caught, the Map
    // exits, and the next state's own evaluation failure ends the execution.
    assert_eq!(
        types,
        [
            "ExecutionStarted",
            "MapStateEntered",
            "EvaluationFailed",
            "MapStateFailed",
            "MapStateExited",
            "PassStateEntered",
            "EvaluationFailed",
            "ExecutionFailed"
        ]
    );
    let details = &events[2]["evaluationFailedEventDetails"];
    assert_eq!(details["state"], "Fan");
    assert_eq!(details["location"], "Items");
    assert_eq!(details["error"], "States.QueryEvaluationError");
    assert_eq!(
        events[6]["evaluationFailedEventDetails"]["location"],
        "Output"
    );
    assert_eq!(
        events[6]["evaluationFailedEventDetails"]["cause"],
        events[7]["executionFailedEventDetails"]["cause"]
    );
}

#[tokio::test]
async fn a_choice_rule_names_its_fields_under_its_index() {
    let cause = |def: Value| async move {
        let out = run(
            &machine(&def),
            json!({"n": 1}),
            &options(),
            &stepstone_engine::NoTasks,
        )
        .await;
        match out.status {
            Status::Failed(f) => f.cause,
            other => panic!("{other:?}"),
        }
    };
    let def = json!({"QueryLanguage": "JSONata", "StartAt": "C", "States": {
        "C": {"Type": "Choice", "Choices": [
            {"Condition": "{% false %}", "Next": "D"},
            {"Condition": "{% $states.input.missing %}", "Next": "D"}], "Default": "D"},
        "D": {"Type": "Succeed"}}});
    assert!(
        cause(def)
            .await
            .contains("specified for the field 'Choices[1]/Condition' returned nothing")
    );
    let def = json!({"QueryLanguage": "JSONata", "StartAt": "C", "States": {
        "C": {"Type": "Choice", "Choices": [
            {"Condition": "{% true %}", "Output": {"v": "{% $states.input.missing %}"}, "Next": "D"}],
            "Default": "D"},
        "D": {"Type": "Succeed"}}});
    assert!(
        cause(def)
            .await
            .contains("for the field 'Choices[0]/Output/v'")
    );
}
