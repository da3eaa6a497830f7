//! The embedding API: an [`Engine`] configured once, executions started from it.

use std::sync::Arc;

use serde_json::Value;
use stepstone_asl::Machine;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::dispatch::{NoTasks, TaskDispatcher};
use crate::driver::{
    Notice, Outcome, Persistence, RunOptions, redrive, resume, run, run_durable, run_observed,
};
use crate::error::Error;
use crate::history::Event;
use crate::limits::Limits;
use crate::manage::{callback_stored, load_stored, stop_stored};
use crate::signal::{Callback, Signals};
use crate::store::CheckpointStore;
use stepstone_asl::timestamp::Timestamp;

/// Runs state machines. Cheap to clone; share one per program.
///
/// ```
/// use std::sync::Arc;
/// use serde_json::json;
/// use stepstone_engine::{Engine, FnTasks, Status};
/// use stepstone_engine::asl::{Options, validate};
///
/// let def = json!({"StartAt": "Greet", "States": {
///     "Greet": {"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:123456789012:function:greet",
///               "ResultPath": "$.greeting", "End": true}}});
/// let machine = Arc::new(validate(&def, Options::default()).machine.unwrap());
/// let engine = Engine::builder()
///     .tasks(FnTasks(|req: stepstone_engine::TaskRequest| async move {
///         Ok(json!(format!("hello, {}", req.input["name"].as_str().unwrap_or("?"))))
///     }))
///     .virtual_time(true)
///     .build();
/// let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
/// let outcome = runtime.block_on(async {
///     let mut handle = engine.start(machine, json!({"name": "Ada"}));
///     while let Some(event) = handle.next_event().await {
///         println!("{} {}", event.id, event.kind.type_name());
///     }
///     handle.outcome().await
/// });
/// assert_eq!(outcome.unwrap().status, Status::Succeeded(json!({"name": "Ada", "greeting": "hello, Ada"})));
/// ```
#[derive(Clone)]
pub struct Engine {
    tasks: Arc<dyn TaskDispatcher>,
    options: RunOptions,
    store: Option<Arc<dyn CheckpointStore>>,
}

/// Configures an [`Engine`]. Defaults: no task routes (tasks fail naming their resource), the
/// real clock, AWS's limits, history kept.
pub struct EngineBuilder {
    tasks: Arc<dyn TaskDispatcher>,
    options: RunOptions,
    store: Option<Arc<dyn CheckpointStore>>,
}

impl Engine {
    /// Starts configuring an engine.
    pub fn builder() -> EngineBuilder {
        let options = RunOptions {
            record_history: true,
            signals: Some(Signals::default()),
            ..RunOptions::default()
        };
        EngineBuilder {
            tasks: Arc::new(NoTasks),
            options,
            store: None,
        }
    }

    /// Runs an execution to its end, on the current task; with a store, durably.
    pub async fn run(&self, machine: &Machine, input: Value) -> Result<Outcome, Error> {
        self.drive(machine, input, None).await
    }

    async fn drive(
        &self,
        machine: &Machine,
        input: Value,
        observer: Option<&mut (dyn FnMut(Notice<'_>) + Send)>,
    ) -> Result<Outcome, Error> {
        match &self.store {
            Some(store) => {
                let persistence = Persistence {
                    store: &**store,
                    definition: machine.source(),
                    launch: &Value::Null,
                };
                Ok(run_durable(
                    machine,
                    input,
                    &self.options,
                    &*self.tasks,
                    persistence,
                    observer,
                )
                .await?)
            }
            None => Ok(match observer {
                Some(o) => run_observed(machine, input, &self.options, &*self.tasks, o).await,
                None => run(machine, input, &self.options, &*self.tasks).await,
            }),
        }
    }

    /// Resumes every RUNNING execution in the store (after a crash), one after the other, with
    /// this engine's task routes; returns their outcomes. Without a store there is nothing to
    /// resume.
    pub async fn resume_all(&self) -> Result<Vec<Outcome>, Error> {
        let Some(store) = &self.store else {
            return Ok(Vec::new());
        };
        let mut outcomes = Vec::new();
        for record in store.list()?.into_iter().filter(|r| r.status == "RUNNING") {
            let (stored, machine) = load_stored(&**store, &record.execution_arn)?;
            outcomes.push(
                resume(
                    &machine,
                    stored.checkpoint,
                    &self.options,
                    &*self.tasks,
                    &**store,
                    None,
                )
                .await?,
            );
        }
        Ok(outcomes)
    }

    /// StopExecution: the execution becomes ABORTED, with an ExecutionAborted event; returns
    /// the stop date. One this engine runs stops at once (its in-flight tasks are abandoned);
    /// one that only the store holds (RUNNING after a crash) is stopped in the store.
    pub async fn stop(
        &self,
        execution_arn: &str,
        error: &str,
        cause: &str,
    ) -> Result<Timestamp, Error> {
        if let Some(answer) = self.signals().stop(execution_arn, error, cause)
            && let Ok(stop_date) = answer.await
        {
            return Ok(stop_date);
        }
        // Not running here (or it ended meanwhile, without answering): the store decides.
        match &self.store {
            Some(store) => stop_stored(&**store, execution_arn, error, cause),
            None => Err(Error::NotFound(execution_arn.to_owned())),
        }
    }

    /// RedriveExecution: a FAILED, ABORTED or TIMED_OUT execution in the store goes on from
    /// the states that did not succeed (see [`crate::RedriveError`] for what is refused), and
    /// runs to its end.
    pub async fn redrive(&self, execution_arn: &str) -> Result<Outcome, Error> {
        let Some(store) = &self.store else {
            return Err(Error::NotFound(execution_arn.to_owned()));
        };
        let (stored, machine) = load_stored(&**store, execution_arn)?;
        Ok(redrive(
            &machine,
            stored.checkpoint,
            &self.options,
            &*self.tasks,
            &**store,
            None,
        )
        .await?)
    }

    /// SendTaskSuccess, SendTaskFailure or SendTaskHeartbeat: hands `callback` to the task that
    /// waits for `token`, in an execution this engine runs or, failing that, in the store.
    pub async fn send_task_callback(&self, token: &str, callback: Callback) -> Result<(), Error> {
        if let Some(answer) = self.signals().callback(token, callback.clone())
            && let Ok(delivered) = answer.await
        {
            return Ok(delivered?);
        }
        match &self.store {
            Some(store) => callback_stored(&**store, token, callback),
            None => Err(crate::signal::CallbackError::TaskDoesNotExist.into()),
        }
    }

    /// The executions this engine runs, to signal them (stop them) from elsewhere.
    pub fn signals(&self) -> &Signals {
        self.options
            .signals
            .as_ref()
            .expect("an engine always has signals")
    }

    /// Starts an execution on the tokio runtime; the handle streams its events and awaits its
    /// outcome.
    pub fn start(&self, machine: Arc<Machine>, input: Value) -> ExecutionHandle {
        let (sender, events) = mpsc::unbounded_channel();
        let engine = self.clone();
        let outcome = tokio::spawn(async move {
            let mut observer = |notice: Notice<'_>| {
                if let Notice::Event(e) = notice {
                    // The receiver may have been dropped: the execution goes on regardless.
                    let _ = sender.send(e.clone());
                }
            };
            engine.drive(&machine, input, Some(&mut observer)).await
        });
        ExecutionHandle { events, outcome }
    }
}

impl EngineBuilder {
    /// Where Task states go.
    pub fn tasks(mut self, tasks: impl TaskDispatcher + 'static) -> Self {
        self.tasks = Arc::new(tasks);
        self
    }

    /// Run Waits, retry backoff and timeouts on a virtual clock (default: off).
    pub fn virtual_time(mut self, on: bool) -> Self {
        self.options.virtual_time = on;
        self
    }

    /// Keep history events (default: on; `ExecutionHandle` streams only kept events).
    pub fn record_history(mut self, on: bool) -> Self {
        self.options.record_history = on;
        self
    }

    /// Limits (default: AWS's).
    pub fn limits(mut self, limits: Limits) -> Self {
        self.options.limits = limits;
        self
    }

    /// The state machine name used in ARNs and `$$.StateMachine.Name` (default `stepstone`).
    pub fn machine_name(mut self, name: impl Into<String>) -> Self {
        self.options.machine_name = name.into();
        self
    }

    /// Keep every execution in `store`, checkpointed at each step that has an effect, so that
    /// [`Engine::resume_all`] finishes them after a crash (default: nothing is kept).
    pub fn store(mut self, store: impl CheckpointStore + 'static) -> Self {
        self.store = Some(Arc::new(store));
        self
    }

    /// The engine.
    pub fn build(self) -> Engine {
        Engine {
            tasks: self.tasks,
            options: self.options,
            store: self.store,
        }
    }
}

/// A running execution.
pub struct ExecutionHandle {
    events: mpsc::UnboundedReceiver<Event>,
    outcome: JoinHandle<Result<Outcome, Error>>,
}

impl ExecutionHandle {
    /// The next history event, or `None` once the execution has ended and every event was read.
    pub async fn next_event(&mut self) -> Option<Event> {
        self.events.recv().await
    }

    /// Abandons the execution in this process, as a crash would: it stops at its next step and
    /// what it had checkpointed stays RUNNING, for [`Engine::resume_all`] to finish later.
    /// (To end an execution for good, stop it: ABORTED.)
    pub fn abandon(self) {
        self.outcome.abort();
    }

    /// Waits for the execution to end.
    ///
    /// # Panics
    /// If the execution's task panicked (a bug in Stepstone or in a task handler).
    pub async fn outcome(self) -> Result<Outcome, Error> {
        self.outcome
            .await
            .expect("the execution task does not panic")
    }
}
