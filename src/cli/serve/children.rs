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
            let ChildRequest { request, mut reply } = child;
            let started = std::cell::RefCell::new(None);
            // The parent's task may be abandoned meanwhile (its execution stopped, the task
            // timed out, a sibling branch failed): its answer is then not awaited any more.
            let answered = tokio::select! {
                answer = perform(&service, &request, &started) => Some(answer),
                () = reply.closed() => None,
            };
            match answered {
                Some(answer) => {
                    let _ = reply.send(answer);
                }
                None => {
                    if let Some(arn) = started.take() {
                        stop_abandoned(&service, &arn).await;
                    }
                }
            }
        });
    }
}

/// Stops the child a `.sync` task waited for when that task is abandoned, as Step Functions
/// stops it (the integration's IAM policy gives the parent `states:StopExecution` on its
/// children for this), without an error or cause, as a StopExecution that gives none. A
/// child that ended meanwhile is left as it is.
async fn stop_abandoned(service: &Service, arn: &str) {
    let running = service
        .store
        .describe(arn)
        .ok()
        .flatten()
        .is_some_and(|d| d.status == stepstone::engine::Status::Running);
    if running {
        let stop = json!({"op": "stop", "execution": arn});
        // Through the node that drives the child, when nodes share the store.
        if let Err(e) = super::shared::answer(service, arn, &stop).await {
            eprintln!("stepstone serve: cannot stop {arn}, whose parent task was abandoned: {e}");
        }
    }
}

/// The name of a child started without one: derived from the task attempt's idempotency
/// token, so that the same attempt dispatched again (its parent resumed after a crash) finds
/// the child it started, which StartExecution's idempotency answers, rather than starting a
/// second one. In the UUID shape AWS gives names it makes up.
fn child_name(idempotency_token: &str) -> String {
    use sha2::Digest;
    let hex: String = sha2::Sha256::digest(idempotency_token.as_bytes())
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// Starts the child and, for `.sync`, waits for its end; `started` gets the child's ARN while
/// it is waited for.
async fn perform(
    service: &Service,
    request: &TaskRequest,
    started_child: &std::cell::RefCell<Option<String>>,
) -> Result<Value, Failure> {
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
    let name = match parameters["Name"].as_str() {
        Some(name) => name.to_owned(),
        None => child_name(&request.idempotency_token),
    };
    let start = json!({"stateMachineArn": machine, "input": input, "name": name});
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
    started_child.replace(Some(arn.clone()));
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
    use super::{Pattern, child_name, pattern};

    #[test]
    fn a_child_started_without_a_name_gets_one_per_attempt() {
        let first = child_name("arn:aws:states:us-east-1:123456789012:execution:p:e/Start/2/0");
        assert_eq!(first.len(), 36);
        assert_eq!(first.matches('-').count(), 4);
        assert!(stepstone::engine::check_name("execution name", &first).is_ok());
        assert_eq!(
            first,
            child_name("arn:aws:states:us-east-1:123456789012:execution:p:e/Start/2/0")
        );
        assert_ne!(
            first,
            child_name("arn:aws:states:us-east-1:123456789012:execution:p:e/Start/2/1")
        );
    }

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
