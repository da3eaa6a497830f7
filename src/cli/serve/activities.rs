//! Activities: CreateActivity, DescribeActivity, ListActivities, DeleteActivity, and the
//! activity tasks of the executions `serve` runs. A Task whose Resource is an activity ARN is
//! queued here (ActivityScheduled); a worker's GetActivityTask takes the oldest one (long poll,
//! up to 60 s, as AWS), which records ActivityStarted with the worker's name and starts its
//! HeartbeatSeconds; the worker answers with SendTaskSuccess, SendTaskFailure or
//! SendTaskHeartbeat and the task token it was given, as for any callback.
//!
//! The activities themselves are kept in the store beside the state machines (a record of kind
//! `ACTIVITY`), so a restart keeps them; the queues are rebuilt by the executions that resume,
//! which schedule their activity tasks again.
//!
//! Nodes that share a store (`serve --shared`) queue their activity tasks in it as well
//! (`Leases::queue_activity`): a worker polling any node takes the oldest task of any node
//! (`SKIP LOCKED`: two workers never get one task), and the node driving the execution hears
//! that a worker took it (ActivityStarted) through the database, as it hears callbacks.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use stepstone::engine::store::{CheckpointStore, StateMachineRecord};
use stepstone::engine::{Callback, Failure, TaskFuture, TaskRequest};

use super::{ARN_PREFIX, ApiError, Service, api_error, now_nanos, seconds, store_error, text};

/// The kind of the store records that are activities.
pub(super) const ACTIVITY: &str = "ACTIVITY";

/// How long GetActivityTask waits for a task (AWS: 60 s).
pub(super) const POLL: Duration = Duration::from_secs(60);

/// The activity tasks waiting for a worker, per activity ARN.
pub(super) struct Queues {
    waiting: Mutex<HashMap<String, VecDeque<Queued>>>,
    /// Wakes the workers polling when a task is queued.
    arrived: tokio::sync::Notify,
    /// The store shared with other nodes, where tasks are queued for every node's workers
    /// (`None`: this node's workers only).
    shared: Option<Arc<dyn CheckpointStore>>,
}

/// One activity task waiting for a worker.
struct Queued {
    token: String,
    input: Value,
    /// Tells the execution a worker took it; closed when the execution stopped waiting (it
    /// ended, or the task timed out), so the task is skipped.
    taken: tokio::sync::oneshot::Sender<()>,
}

impl Queues {
    pub(super) fn new(shared: Option<Arc<dyn CheckpointStore>>) -> Queues {
        Queues {
            waiting: Mutex::default(),
            arrived: tokio::sync::Notify::new(),
            shared,
        }
    }

    /// The task waiting for `token`, taken out of its queue.
    fn take_token(&self, token: &str) -> Option<Queued> {
        let mut waiting = self
            .waiting
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        waiting.values_mut().find_map(|queue| {
            let at = queue.iter().position(|q| q.token == token)?;
            queue.remove(at)
        })
    }

    fn push(&self, activity: String, queued: Queued) {
        self.waiting
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(activity)
            .or_default()
            .push_back(queued);
        self.arrived.notify_waiters();
    }

    /// The oldest task of `activity` an execution still waits for.
    fn take(&self, activity: &str) -> Option<Queued> {
        let mut waiting = self
            .waiting
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let queue = waiting.get_mut(activity)?;
        while let Some(queued) = queue.pop_front() {
            if !queued.taken.is_closed() {
                return Some(queued);
            }
        }
        None
    }
}

/// Whether `resource` is an activity's ARN.
pub(super) fn is_activity(resource: &str) -> bool {
    resource.starts_with("arn:") && resource.contains(":activity:")
}

/// Queues an activity task for a worker. Its future is the delivery: it resolves when a worker
/// takes the task; the result comes back with the token.
pub(super) fn dispatch(queues: &Queues, request: TaskRequest) -> TaskFuture {
    let Some(token) = request.task_token.clone() else {
        // The engine gives every activity task a token.
        return Box::pin(std::future::ready(Err(Failure::new(
            "States.Runtime",
            "an activity task without a task token",
        ))));
    };
    let (taken, picked) = tokio::sync::oneshot::channel();
    if let Some(leases) = queues.shared.as_ref().and_then(|store| store.leases())
        && let Err(e) = leases.queue_activity(&request.resource, &token, &request.input.to_string())
    {
        return Box::pin(std::future::ready(Err(Failure::new(
            "States.Runtime",
            format!("the activity task could not be queued in the shared store: {e}"),
        ))));
    }
    queues.push(
        request.resource,
        Queued {
            token,
            input: request.input,
            taken,
        },
    );
    Box::pin(async move {
        match picked.await {
            Ok(()) => Ok(Value::Null),
            Err(_) => std::future::pending().await,
        }
    })
}

/// The activity operations; `None` for any other.
pub(super) async fn operate(
    service: &Service,
    operation: &str,
    input: &Value,
) -> Option<Result<Value, ApiError>> {
    Some(match operation {
        "CreateActivity" => create(service, input),
        "DescribeActivity" => activity(service, input).map(|a| describe(&a)),
        "ListActivities" => list(service, input),
        "DeleteActivity" => delete(service, input),
        "GetActivityTask" => get_task(service, input).await,
        _ => return None,
    })
}

fn create(service: &Service, input: &Value) -> Result<Value, ApiError> {
    let name = text(input, "name")?;
    stepstone::engine::check_name("activity name", name)
        .map_err(|e| api_error("InvalidName", e.to_string()))?;
    let arn = format!("{ARN_PREFIX}:activity:{name}");
    // AWS: creating an existing activity answers it.
    if let Some(existing) = service.store.state_machine(&arn).map_err(store_error)? {
        return Ok(json!({"activityArn": arn, "creationDate": seconds(existing.created)}));
    }
    let created = now_nanos();
    let tags = super::tags_of(input);
    service
        .store
        .put_state_machine(&StateMachineRecord {
            tags,
            ..StateMachineRecord::new(arn.clone(), name.to_owned(), ACTIVITY.into(), created)
        })
        .map_err(store_error)?;
    Ok(json!({"activityArn": arn, "creationDate": seconds(created)}))
}

pub(super) fn activity(service: &Service, input: &Value) -> Result<StateMachineRecord, ApiError> {
    let arn = text(input, "activityArn")?;
    service
        .store
        .state_machine(arn)
        .map_err(store_error)?
        .filter(|r| r.kind == ACTIVITY)
        .ok_or_else(|| {
            api_error(
                "ActivityDoesNotExist",
                format!("Activity Does Not Exist: '{arn}'"),
            )
        })
}

fn describe(record: &StateMachineRecord) -> Value {
    json!({"activityArn": record.arn, "name": record.name, "creationDate": seconds(record.created)})
}

fn list(service: &Service, input: &Value) -> Result<Value, ApiError> {
    let activities: Vec<Value> = service
        .store
        .state_machines()
        .map_err(store_error)?
        .iter()
        .filter(|r| r.kind == ACTIVITY)
        .map(describe)
        .collect();
    super::page(activities, input, "activities")
}

fn delete(service: &Service, input: &Value) -> Result<Value, ApiError> {
    let arn = text(input, "activityArn")?;
    // AWS: deleting an activity that does not exist succeeds.
    if service
        .store
        .state_machine(arn)
        .map_err(store_error)?
        .is_some_and(|r| r.kind == ACTIVITY)
    {
        service
            .store
            .delete_state_machine(arn)
            .map_err(store_error)?;
    }
    Ok(json!({}))
}

/// GetActivityTask: the oldest task of the activity, waiting up to 60 s for one; `{}` (no
/// taskToken) when none came.
async fn get_task(service: &Service, input: &Value) -> Result<Value, ApiError> {
    let arn = activity(service, input)?.arn;
    let worker = input["workerName"].as_str().unwrap_or_default().to_owned();
    let deadline = tokio::time::Instant::now() + POLL;
    loop {
        // Registered before looking, so a task queued in between still wakes this poll.
        let arrived = service.queues.arrived.notified();
        if let Some(queued) = service.queues.take(&arn) {
            let _ = queued.taken.send(());
            if let Some(answer) = service.signals.callback(
                &queued.token,
                Callback::Started {
                    worker_name: worker.clone(),
                },
            ) {
                // Recorded before the worker hears of the task: its answer cannot overtake
                // ActivityStarted in the history.
                let _ = answer.await;
            }
            return Ok(json!({"taskToken": queued.token, "input": queued.input.to_string()}));
        }
        if tokio::time::timeout_at(deadline, arrived).await.is_err() {
            return Ok(json!({}));
        }
    }
}

/// A worker (of this node or another) took the activity task of `token`, whose execution runs
/// here: its delivery is over, and ActivityStarted is recorded (before the worker hears of it:
/// its answer cannot overtake ActivityStarted in the history).
pub(super) async fn started(service: &Service, token: &str, worker: &str) -> Result<(), String> {
    let queued = service
        .queues
        .take_token(token)
        .ok_or("TaskDoesNotExist: no task waits for this token")?;
    let _ = queued.taken.send(());
    let callback = Callback::Started {
        worker_name: worker.to_owned(),
    };
    match service.signals.callback(token, callback) {
        Some(answer) => match answer.await {
            Ok(delivered) => delivered.map_err(|e| e.to_string()),
            Err(_) => Err("TaskDoesNotExist: the execution ended".into()),
        },
        None => Err("TaskDoesNotExist: the execution does not run here".into()),
    }
}
