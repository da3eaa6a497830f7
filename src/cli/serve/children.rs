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

/// How often `.sync` looks whether the child has ended when nothing tells it (a child that
/// was resumed after a restart): the service wakes it when a child it started ends.
const POLL: Duration = Duration::from_millis(500);

/// Who waits for the end of which execution: a `.sync` parent for its child. The service
/// calls [`Endings::ended`] when an execution it started ends.
#[derive(Default)]
pub(super) struct Endings(
    std::cell::RefCell<std::collections::HashMap<String, Rc<tokio::sync::Notify>>>,
);

impl Endings {
    fn waiter(&self, arn: &str) -> Rc<tokio::sync::Notify> {
        self.0
            .borrow_mut()
            .entry(arn.to_owned())
            .or_default()
            .clone()
    }

    fn forget(&self, arn: &str) {
        self.0.borrow_mut().remove(arn);
    }

    /// `arn` ended: wakes its waiters.
    pub(super) fn ended(&self, arn: &str) {
        let waiting = self.0.borrow_mut().remove(arn);
        if let Some(notify) = waiting {
            notify.notify_waiters();
        }
    }
}

/// The longest cause AWS keeps (its API's limit on `cause`), in characters.
const MAX_CAUSE_CHARS: usize = 32_768;

/// How deep children may nest (a child of a child...): a state machine that starts itself
/// would otherwise make executions without end. AWS states no such figure; a real
/// orchestration nests a few levels.
const MAX_NESTING: u32 = 100;

/// How deep each child this service started is nested (its parent's depth plus one), so that
/// its own children are held to [`MAX_NESTING`]. Kept in memory: after a restart, resumed
/// executions count from zero again, which still bounds every chain.
#[derive(Default)]
pub(super) struct Nesting(std::cell::RefCell<std::collections::HashMap<String, u32>>);

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
    let depth = service
        .nesting
        .0
        .borrow()
        .get(&request.execution_arn)
        .copied()
        .unwrap_or(0)
        + 1;
    if depth > MAX_NESTING {
        return Err(Failure::new(
            "StepFunctions.ExecutionLimitExceededException",
            format!(
                "Execution {} would start a child nested {depth} levels deep; Stepstone allows {MAX_NESTING} (a state machine that starts itself without end?)",
                request.execution_arn
            ),
        ));
    }
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
    service.nesting.0.borrow_mut().insert(arn.clone(), depth);
    let millis = |seconds: &Value| (seconds.as_f64().unwrap_or_default() * 1000.0).round() as i64;
    if matches!(pattern, Pattern::Start | Pattern::Callback) {
        return Ok(json!({"ExecutionArn": arn, "StartDate": millis(&started["startDate"])}));
    }
    let record = loop {
        let waiter = service.endings.waiter(&arn);
        // Registered before looking, so an end in between still wakes this wait.
        let woken = waiter.notified();
        let record = super::execution_of(service, &arn)
            .map_err(|e| Failure::new("States.TaskFailed", e.message))?;
        if record.status != "RUNNING" {
            service.endings.forget(&arn);
            break record;
        }
        let _ = tokio::time::timeout(POLL, woken).await;
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
        // AWS's longest cause. Each level of nested children escapes its child's cause again:
        // uncut, a chain of failed children would double it at every level.
        let cause: String = output.to_string().chars().take(MAX_CAUSE_CHARS).collect();
        Err(Failure::new("States.TaskFailed", cause))
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
