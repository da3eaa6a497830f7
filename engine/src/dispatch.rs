//! How Task states reach the outside world. The engine defines the trait; `stepstone-tasks`
//! implements it for AWS, mocks and local handlers, and tests implement it with closures.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use serde_json::Value;

use crate::Failure;
use crate::model::TaskRequest;
use stepstone_asl::errors;

/// A task's eventual result.
pub type TaskFuture = Pin<Box<dyn Future<Output = Result<Value, Failure>> + Send + 'static>>;

/// Performs Task states.
pub trait TaskDispatcher: Send + Sync {
    /// Starts the task described by `request`. The future resolves to the task's result, or
    /// to the failure Retry and Catch will see (`States.TaskFailed`, `Lambda.ServiceException`,
    /// a function's own `errorType`...). Called again for each retry, with the same idempotency
    /// token shape and a higher attempt.
    fn dispatch(&self, request: TaskRequest) -> TaskFuture;

    /// For a task that waits for its token (`request.task_token` is set): whether this
    /// dispatcher's answer is the task's result (a mock, a closure), rather than only the
    /// delivery of the request, the result coming back later with the token. Default: the
    /// latter, as on Step Functions.
    fn answers_callbacks(&self, _request: &TaskRequest) -> bool {
        false
    }

    /// Whether performing `request` has no effect outside this process and its answer depends
    /// on the request alone (a mocked response, answered by the state's invocation count): such
    /// a dispatch may be sent before the checkpoint that records it is durable, since a crash
    /// before that checkpoint recomputes the same request and gets the same answer. Default:
    /// false, the durability contract's rule for every task that may have an effect (a dispatch
    /// is durable before it is sent).
    fn effect_free(&self, _request: &TaskRequest) -> bool {
        false
    }
}

/// Refuses every task, naming its resource: what an engine without task routes does.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoTasks;

impl TaskDispatcher for NoTasks {
    fn dispatch(&self, request: TaskRequest) -> TaskFuture {
        let cause = format!(
            "No route for the task resource '{}' of state '{}': register a handler for it (stepstone run --task RESOURCE=COMMAND, or a closure in the library).",
            request.resource, request.state_name
        );
        Box::pin(async move { Err(Failure::new(errors::RUNTIME, cause)) })
    }
}

/// Dispatches every task to one async closure: `FnTasks(|req| async move { Ok(req.input) })`.
pub struct FnTasks<F>(pub F);

impl<F, Fut> TaskDispatcher for FnTasks<F>
where
    F: Fn(TaskRequest) -> Fut + Send + Sync,
    Fut: Future<Output = Result<Value, Failure>> + Send + 'static,
{
    fn dispatch(&self, request: TaskRequest) -> TaskFuture {
        Box::pin((self.0)(request))
    }

    /// A closure's answer is the task's result, even for a task that waits for its token.
    fn answers_callbacks(&self, _request: &TaskRequest) -> bool {
        true
    }
}

/// A task's answer within its TimeoutSeconds (when it has one), else States.Timeout.
pub(crate) async fn within_timeout(
    task: TaskFuture,
    timeout_seconds: Option<u64>,
    state: &str,
) -> Result<Value, Failure> {
    match timeout_seconds {
        Some(s) => tokio::time::timeout(Duration::from_secs(s), task)
            .await
            .unwrap_or_else(|_| {
                Err(Failure::new(
                    errors::TIMEOUT,
                    format!("The task of state '{state}' did not finish within its TimeoutSeconds ({s} s)."),
                ))
            }),
        None => task.await,
    }
}
