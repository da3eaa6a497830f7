//! Embedding Stepstone: run a definition whose Task states are Rust closures.
//!
//! `cargo run --example embed`

use std::sync::Arc;

use serde_json::json;
use stepstone::asl::{Options, validate};
use stepstone::engine::{Engine, Failure, FnTasks, Status, TaskRequest};

fn main() {
    let definition = json!({
        "StartAt": "Deploy",
        "States": {
            "Deploy": {
                "Type": "Task",
                "Resource": "arn:aws:states:::aws-sdk:cloudformation:createStack",
                "Parameters": {"StackName.$": "$.stack"},
                "Retry": [{"ErrorEquals": ["CloudFormation.LimitExceededException"], "IntervalSeconds": 5, "MaxAttempts": 2}],
                "ResultPath": "$.created",
                "End": true
            }
        }
    });
    let validation = validate(&definition, Options::default());
    let machine = Arc::new(validation.machine.expect("a valid definition"));

    // Every task goes to this closure; a real program would match on `request.resource`.
    let tasks = FnTasks(|request: TaskRequest| async move {
        if request.attempt == 0 {
            return Err(Failure::new(
                "CloudFormation.LimitExceededException",
                "try again later",
            ));
        }
        let stack = request.input["StackName"]
            .as_str()
            .unwrap_or("stack")
            .to_owned();
        Ok(
            json!({"StackId": format!("arn:aws:cloudformation:us-east-1:123456789012:stack/{stack}/1")}),
        )
    });
    let engine = Engine::builder().tasks(tasks).virtual_time(true).build();

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let outcome = runtime.block_on(async {
        let mut handle = engine.start(machine, json!({"stack": "orders"}));
        while let Some(event) = handle.next_event().await {
            println!("{:>3} {}", event.id, event.kind.type_name());
        }
        handle.outcome().await
    });
    match outcome.expect("no store, so no store errors").status {
        Status::Succeeded(output) => println!("succeeded: {output}"),
        other => println!("ended: {other:?}"),
    }
}
