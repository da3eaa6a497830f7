//! Tasks that wait for their token (`.waitForTaskToken`): the dispatch only delivers the
//! request with `$$.Task.Token`; SendTaskSuccess / SendTaskFailure / SendTaskHeartbeat complete
//! it, through the running engine or, when none runs, through the store.

mod common;

use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use stepstone_engine::asl::Machine;
use stepstone_engine::history::EventKind;
use stepstone_engine::store::{CheckpointStore, MemStore};
use stepstone_engine::{
    Callback, CallbackError, Engine, Status, TaskDispatcher, TaskFuture, TaskRequest,
    callback_stored,
};

fn machine(def: &Value) -> Arc<Machine> {
    Arc::new(common::machine(def))
}

/// Delivers requests (as a Lambda function would receive them) and keeps them.
#[derive(Clone, Default)]
struct Inbox(Arc<Mutex<Vec<TaskRequest>>>);

impl TaskDispatcher for Inbox {
    fn dispatch(&self, request: TaskRequest) -> TaskFuture {
        self.0.lock().unwrap().push(request);
        Box::pin(async { Ok(json!({"StatusCode": 202})) })
    }
}

impl Inbox {
    async fn next_token(&self) -> String {
        loop {
            if let Some(r) = self.0.lock().unwrap().last() {
                return r.task_token.clone().expect("a task token");
            }
            tokio::task::yield_now().await;
        }
    }
}

fn approval(heartbeat: Option<u64>) -> Value {
    let mut task = json!({"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
        "Parameters": {"FunctionName": "approver", "Payload": {"token.$": "$$.Task.Token", "change.$": "$.change"}},
        "ResultPath": "$.approval", "End": true,
        "Catch": [{"ErrorEquals": ["Change.Rejected"], "ResultPath": "$.rejected", "Next": "Rejected"}]});
    if let Some(h) = heartbeat {
        task["HeartbeatSeconds"] = json!(h);
    }
    json!({"StartAt": "Approve", "States": {"Approve": task, "Rejected": {"Type": "Pass", "End": true}}})
}

#[tokio::test]
async fn send_task_success_completes_the_task_with_its_output() {
    let inbox = Inbox::default();
    let engine = Engine::builder()
        .tasks(inbox.clone())
        .store(MemStore::new())
        .build();
    let handle = engine.start(machine(&approval(None)), json!({"change": "resize"}));
    let token = inbox.next_token().await;
    // The function received the token in its payload, as `$$.Task.Token` gave it.
    let delivered = inbox.0.lock().unwrap()[0].input.clone();
    assert_eq!(delivered["Payload"]["token"], token.as_str());
    assert_eq!(delivered["Payload"]["change"], "resize");
    engine
        .send_task_callback(&token, Callback::Heartbeat)
        .await
        .unwrap();
    engine
        .send_task_callback(&token, Callback::Success(json!({"by": "ops"})))
        .await
        .unwrap();
    let outcome = handle.outcome().await.unwrap();
    assert_eq!(
        outcome.status,
        Status::Succeeded(json!({"change": "resize", "approval": {"by": "ops"}}))
    );
    // The task is done: its token is no longer accepted.
    let again = engine
        .send_task_callback(&token, Callback::Success(json!({})))
        .await
        .unwrap_err();
    assert!(again.to_string().starts_with("TaskDoesNotExist"), "{again}");
    let invalid = engine
        .send_task_callback("not-a-token", Callback::Heartbeat)
        .await
        .unwrap_err();
    assert!(matches!(
        invalid,
        stepstone_engine::Error::Callback(CallbackError::InvalidToken)
    ));
}

#[tokio::test]
async fn send_task_failure_fails_the_task_for_catch() {
    let inbox = Inbox::default();
    let engine = Engine::builder().tasks(inbox.clone()).build();
    let handle = engine.start(machine(&approval(None)), json!({"change": "drop table"}));
    let token = inbox.next_token().await;
    engine
        .send_task_callback(
            &token,
            Callback::Failure {
                error: "Change.Rejected".into(),
                cause: "not on a Friday".into(),
            },
        )
        .await
        .unwrap();
    let outcome = handle.outcome().await.unwrap();
    let Status::Succeeded(output) = outcome.status else {
        panic!()
    };
    assert_eq!(
        output["rejected"],
        json!({"Error": "Change.Rejected", "Cause": "not on a Friday"})
    );
}

#[tokio::test(start_paused = true)]
async fn a_task_without_heartbeats_times_out() {
    let inbox = Inbox::default();
    let engine = Engine::builder().tasks(inbox.clone()).build();
    let handle = engine.start(machine(&approval(Some(30))), json!({"change": "x"}));
    let token = inbox.next_token().await;
    // One heartbeat at 20 s keeps it alive past 30 s; then 30 s of silence end it.
    tokio::time::sleep(std::time::Duration::from_secs(20)).await;
    engine
        .send_task_callback(&token, Callback::Heartbeat)
        .await
        .unwrap();
    let outcome = handle.outcome().await.unwrap();
    let Status::Failed(failure) = &outcome.status else {
        panic!("{:?}", outcome.status)
    };
    assert_eq!(failure.error, "States.HeartbeatTimeout");
    assert!(
        outcome
            .history
            .events()
            .iter()
            .any(|e| matches!(&e.kind, EventKind::TaskTimedOut { error, .. } if error == "States.HeartbeatTimeout"))
    );
}

#[tokio::test]
async fn with_no_engine_running_the_store_takes_the_result_and_resume_goes_on() {
    let inbox = Inbox::default();
    let store = Arc::new(MemStore::new());
    let engine = Engine::builder()
        .tasks(inbox.clone())
        .store(store.clone())
        .build();
    // Approve, then Apply (an ordinary task).
    let mut def = approval(None);
    def["States"]["Approve"]["Next"] = json!("Apply");
    def["States"]["Approve"]
        .as_object_mut()
        .unwrap()
        .remove("End");
    def["States"]["Apply"] = json!({"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
        "Parameters": {"FunctionName": "apply"}, "ResultPath": "$.applied", "End": true});
    let handle = engine.start(machine(&def), json!({"change": "resize"}));
    let token = inbox.next_token().await;
    // The engine goes away (a crash, or the process was stopped) while the task waits.
    handle.abandon();
    tokio::task::yield_now().await;
    callback_stored(
        &*store,
        &token,
        Callback::Success(json!({"by": "night shift"})),
    )
    .unwrap();
    // The store took the result and worked out what follows: Apply, not yet sent.
    let arn = store.list().unwrap()[0].execution_arn.clone();
    assert_eq!(store.list().unwrap()[0].status, "RUNNING");
    assert_eq!(
        store.events(&arn).unwrap().last().unwrap().kind.type_name(),
        "TaskStarted"
    );
    assert_eq!(inbox.0.lock().unwrap().len(), 1);
    // Resuming sends Apply; Approve is not delivered again.
    let outcomes = engine.resume_all().await.unwrap();
    assert_eq!(
        outcomes[0].status,
        Status::Succeeded(
            json!({"change": "resize", "approval": {"by": "night shift"},
            "applied": {"StatusCode": 202}})
        )
    );
    let delivered = inbox.0.lock().unwrap();
    assert_eq!(delivered.len(), 2);
    assert_eq!(delivered[1].state_name, "Apply");
}
