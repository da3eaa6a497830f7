//! `states:startExecution` tasks: child executions of the state machines this service keeps,
//! as Step Functions' own integration starts them. The plain resource answers once the child
//! is started (`ExecutionArn`, `StartDate`); `.sync` waits for its end and answers what
//! DescribeExecution would, with `Input` and `Output` as JSON text (`.sync:2`: as JSON); a
//! child that did not succeed fails the task with States.TaskFailed, its description as the
//! cause. `.waitForTaskToken` starts the child, which sends the token back itself.
//!
//! The service is single-threaded (`Rc`), while tasks are dispatched through a `Send`
//! interface: a dispatch sends its request here over a channel, and a local task of the
//! service starts the child and answers.

use std::rc::Rc;
use std::time::Duration;

use serde_json::{Value, json};
use stepstone::engine::{Failure, TaskRequest};

use super::Service;

/// The resource of the integration, without its pattern suffix.
const START_EXECUTION: &str = "arn:aws:states:::states:startExecution";

/// How often `.sync` looks whether the child has ended.
const POLL: Duration = Duration::from_millis(20);

/// A child to start, and where its answer goes.
pub(super) struct ChildRequest {
    request: TaskRequest,
    reply: tokio::sync::oneshot::Sender<Result<Value, Failure>>,
}

/// What the task waits for.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Pattern {
    /// The child's start.
    Start,
    /// Its end; Input and Output as JSON text.
    Sync,
    /// Its end; Input and Output as JSON.
    Sync2,
    /// The token it sends back.
    Callback,
}

fn pattern(resource: &str) -> Option<Pattern> {
    match resource.strip_prefix(START_EXECUTION)? {
        "" => Some(Pattern::Start),
        ".sync" => Some(Pattern::Sync),
        ".sync:2" => Some(Pattern::Sync2),
        ".waitForTaskToken" => Some(Pattern::Callback),
        _ => None,
    }
}

/// Whether `resource` is a `states:startExecution` task.
pub(super) fn is_start_execution(resource: &str) -> bool {
    pattern(resource).is_some()
}

/// Whether the child's answer is the task's result (all but `.waitForTaskToken`).
pub(super) fn answers(resource: &str) -> bool {
    pattern(resource).is_some_and(|p| p != Pattern::Callback)
}

/// Sends `request` to the service and waits for its answer.
pub(super) fn dispatch(
    children: &tokio::sync::mpsc::UnboundedSender<ChildRequest>,
    request: TaskRequest,
) -> stepstone::engine::TaskFuture {
    let (reply, answer) = tokio::sync::oneshot::channel();
    let sent = children.send(ChildRequest { request, reply }).is_ok();
    Box::pin(async move {
        match (sent, answer.await) {
            (true, Ok(answer)) => answer,
            // The service is going away: the task never ends, as the execution is stopped.
            _ => std::future::pending().await,
        }
    })
}

/// Starts the children asked for, each in a local task of its own, until the service ends.
pub(super) async fn serve(
    service: Rc<Service>,
    mut requests: tokio::sync::mpsc::UnboundedReceiver<ChildRequest>,
) {
    while let Some(child) = requests.recv().await {
        let service = service.clone();
        tokio::task::spawn_local(async move {
            let answer = perform(&service, &child.request).await;
            let _ = child.reply.send(answer);
        });
    }
}

async fn perform(service: &Service, request: &TaskRequest) -> Result<Value, Failure> {
    let pattern = pattern(&request.resource).expect("routed here by its resource");
    let parameters = &request.input;
    let machine = parameters["StateMachineArn"].as_str().ok_or_else(|| {
        Failure::new(
            "States.Runtime",
            "states:startExecution needs a StateMachineArn parameter",
        )
    })?;
    // Input may be given as an object or as JSON text.
    let input = match &parameters["Input"] {
        Value::Null => "{}".to_owned(),
        Value::String(text) => text.clone(),
        other => other.to_string(),
    };
    let mut start = json!({"stateMachineArn": machine, "input": input});
    if let Some(name) = parameters["Name"].as_str() {
        start["name"] = json!(name);
    }
    let started = super::start_execution(service, &start).await.map_err(|e| {
        // The integration's error names: `StepFunctions.` and the API's exception.
        let kind = e.kind.trim_end_matches("Exception");
        Failure::new(format!("StepFunctions.{kind}Exception"), e.message)
    })?;
    let arn = started["executionArn"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let millis = |seconds: &Value| (seconds.as_f64().unwrap_or_default() * 1000.0).round() as i64;
    if matches!(pattern, Pattern::Start | Pattern::Callback) {
        return Ok(json!({"ExecutionArn": arn, "StartDate": millis(&started["startDate"])}));
    }
    let record = loop {
        let record = super::execution_of(service, &arn)
            .map_err(|e| Failure::new("States.TaskFailed", e.message))?;
        if record.status != "RUNNING" {
            break record;
        }
        tokio::time::sleep(POLL).await;
    };
    let described = super::describe_execution(&*service.store, &record)
        .map_err(|e| Failure::new("States.TaskFailed", e))?;
    let as_text = |v: &Value| match pattern {
        Pattern::Sync2 => v.clone(),
        _ => Value::String(v.to_string()),
    };
    let date = |t: Option<stepstone::engine::asl::timestamp::Timestamp>| {
        t.map(|t| json!((t.unix_nanos / 1_000_000) as i64))
    };
    let mut output = json!({
        "ExecutionArn": arn,
        "StateMachineArn": described["stateMachineArn"],
        "Name": described["name"],
        "Status": record.status,
        "StartDate": date(Some(record.start_date)),
        "StopDate": date(record.stop_date),
        "Input": as_text(&described["input"]),
        "InputDetails": {"Included": true},
    });
    if record.status == "SUCCEEDED" {
        output["Output"] = as_text(&described["output"]);
        output["OutputDetails"] = json!({"Included": true});
        Ok(output)
    } else {
        output["Error"] = described["error"].clone();
        output["Cause"] = described["cause"].clone();
        Err(Failure::new("States.TaskFailed", output.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::{Pattern, pattern};

    #[test]
    fn the_suffix_says_what_the_task_waits_for() {
        let r = "arn:aws:states:::states:startExecution";
        assert_eq!(pattern(r), Some(Pattern::Start));
        assert_eq!(pattern(&format!("{r}.sync")), Some(Pattern::Sync));
        assert_eq!(pattern(&format!("{r}.sync:2")), Some(Pattern::Sync2));
        assert_eq!(
            pattern(&format!("{r}.waitForTaskToken")),
            Some(Pattern::Callback)
        );
        assert_eq!(pattern(&format!("{r}.other")), None);
        assert_eq!(pattern("arn:aws:states:::lambda:invoke"), None);
    }
}
