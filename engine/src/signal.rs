//! Signals: requests that reach a running execution from outside its driver (StopExecution now,
//! task callbacks later), addressed by execution ARN.
//!
//! A driver given [`Signals`] registers its execution while it runs; whoever holds a clone
//! (the embedding program, the CLI's control socket) can then signal it. An execution that is
//! not running here is not registered: the caller falls back to the store.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use stepstone_asl::jsonata::Interrupt;
use stepstone_asl::timestamp::Timestamp;
use tokio::sync::{mpsc, oneshot};

/// A request for a running execution.
#[derive(Debug)]
#[non_exhaustive]
pub enum Signal {
    /// StopExecution: the execution becomes ABORTED. The reply carries the stop date once the
    /// abort is durable.
    Stop {
        /// The error recorded in the ExecutionAborted event.
        error: String,
        /// The cause recorded in the ExecutionAborted event.
        cause: String,
        /// Answered with the stop date.
        reply: oneshot::Sender<Timestamp>,
    },
    /// The engine no longer holds the execution's lease (engines sharing a store): the driver
    /// stops at once, writing nothing more; the engine that took the lease over goes on from
    /// the last checkpoint.
    Abandon,
    /// SendTaskSuccess, SendTaskFailure or SendTaskHeartbeat for a task waiting for its token.
    Callback {
        /// The task's token (`$$.Task.Token`).
        token: String,
        /// What it says.
        callback: Callback,
        /// Answered once delivered, or with why not.
        reply: oneshot::Sender<Result<(), CallbackError>>,
    },
}

/// What a task's token is sent back with.
#[derive(Debug, Clone, PartialEq)]
pub enum Callback {
    /// SendTaskSuccess: the task's result.
    Success(serde_json::Value),
    /// SendTaskFailure: the task fails with this error and cause.
    Failure {
        /// Error name.
        error: String,
        /// Cause.
        cause: String,
    },
    /// SendTaskHeartbeat: the task is still being worked on.
    Heartbeat,
    /// GetActivityTask: a worker of this name took the activity task (ActivityStarted).
    Started {
        /// The `workerName` it gave.
        worker_name: String,
    },
}

/// Why a callback was refused (AWS's errors for SendTask*).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CallbackError {
    /// The token is not one Stepstone made.
    #[error("InvalidToken: the task token is not valid")]
    InvalidToken,
    /// No task waits for this token (any more): it finished, timed out, or its execution ended.
    #[error(
        "TaskDoesNotExist: no task waits for this token (it finished, timed out, or its execution ended)"
    )]
    TaskDoesNotExist,
}

/// The idempotency token a task token encodes (`<execution ARN>/<state>/<event>/<attempt>`), or
/// `None` if it is not a Stepstone task token.
pub fn token_names(token: &str) -> Option<String> {
    // The tag after the `.` (see `tokens.rs`) is checked by matching the whole token.
    let token = token.split_once('.').map_or(token, |(names, _)| names);
    if !token.len().is_multiple_of(2) || token.is_empty() {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..token.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(token.get(i..i + 2)?, 16).ok())
        .collect();
    String::from_utf8(bytes?).ok()
}

/// Whether `token` is a task token of execution `execution_arn`.
pub fn token_of(token: &str, execution_arn: &str) -> bool {
    token_names(token).is_some_and(|names| {
        names
            .strip_prefix(execution_arn)
            .is_some_and(|rest| rest.starts_with('/'))
    })
}

/// The executions running in this process that accept signals. Cheap to clone.
#[derive(Clone, Default)]
pub struct Signals {
    running: Arc<Mutex<HashMap<String, Running>>>,
}

/// How a running execution is reached: its inbox, and the flag that stops its JSONata
/// evaluation in progress (a Stop must not wait behind an expression that loops).
struct Running {
    inbox: mpsc::UnboundedSender<Signal>,
    interrupt: Interrupt,
}

impl std::fmt::Debug for Signals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signals")
            .field("running", &self.running())
            .finish()
    }
}

impl Signals {
    /// The ARNs of the executions running here.
    pub fn running(&self) -> Vec<String> {
        let mut arns: Vec<String> = self.lock().keys().cloned().collect();
        arns.sort();
        arns
    }

    /// Whether `execution_arn` runs here.
    pub fn is_running(&self, execution_arn: &str) -> bool {
        self.lock().contains_key(execution_arn)
    }

    /// Stops `execution_arn` if it runs here: the receiver yields the stop date once the abort
    /// is durable. `None` when it does not run here.
    pub fn stop(
        &self,
        execution_arn: &str,
        error: &str,
        cause: &str,
    ) -> Option<oneshot::Receiver<Timestamp>> {
        let (reply, answer) = oneshot::channel();
        let signal = Signal::Stop {
            error: error.to_owned(),
            cause: cause.to_owned(),
            reply,
        };
        self.send(execution_arn, signal).then_some(answer)
    }

    /// Makes the driver of `execution_arn`, if it runs here, stop without writing anything more
    /// (its lease went to another engine); false when it does not run here.
    pub fn abandon(&self, execution_arn: &str) -> bool {
        self.send(execution_arn, Signal::Abandon)
    }

    /// Sends a callback for `token` to the execution it belongs to, if that runs here: the
    /// receiver says whether a task took it. `None` when its execution does not run here.
    pub fn callback(
        &self,
        token: &str,
        callback: Callback,
    ) -> Option<oneshot::Receiver<Result<(), CallbackError>>> {
        let arn = self
            .running()
            .into_iter()
            .find(|arn| token_of(token, arn))?;
        let (reply, answer) = oneshot::channel();
        let signal = Signal::Callback {
            token: token.to_owned(),
            callback,
            reply,
        };
        self.send(&arn, signal).then_some(answer)
    }

    /// Sends `signal` to `execution_arn`; false when it does not run here. A stop also
    /// interrupts the JSONata expression the execution may be evaluating.
    pub fn send(&self, execution_arn: &str, signal: Signal) -> bool {
        let stops = matches!(signal, Signal::Stop { .. });
        self.lock().get(execution_arn).is_some_and(|running| {
            let sent = running.inbox.send(signal).is_ok();
            if sent && stops {
                running.interrupt.raise();
            }
            sent
        })
    }

    /// Registers a running execution, whose evaluations `interrupt` stops; it stays
    /// registered while the guard lives.
    pub(crate) fn register(
        &self,
        execution_arn: &str,
        interrupt: Interrupt,
    ) -> (Registration, Inbox) {
        let (inbox, receiver) = mpsc::unbounded_channel();
        self.lock()
            .insert(execution_arn.to_owned(), Running { inbox, interrupt });
        let registration = Registration {
            signals: self.clone(),
            execution_arn: execution_arn.to_owned(),
        };
        (registration, Inbox(Some(receiver)))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Running>> {
        // The map stays consistent even if a holder panicked: every operation is one call.
        self.running.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Keeps an execution registered; unregisters it when dropped.
pub(crate) struct Registration {
    signals: Signals,
    execution_arn: String,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.signals.lock().remove(&self.execution_arn);
    }
}

/// Where a driver receives its signals (nothing, for an execution run without [`Signals`]).
pub(crate) struct Inbox(pub(crate) Option<mpsc::UnboundedReceiver<Signal>>);

impl Inbox {
    /// A signal already waiting, without blocking.
    pub(crate) fn try_next(&mut self) -> Option<Signal> {
        self.0.as_mut()?.try_recv().ok()
    }

    /// The next signal; never resolves when there is none to come.
    pub(crate) async fn next(&mut self) -> Signal {
        match self.0.as_mut() {
            Some(receiver) => match receiver.recv().await {
                Some(signal) => signal,
                None => std::future::pending().await,
            },
            None => std::future::pending().await,
        }
    }
}
