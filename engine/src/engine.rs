//! The embedding API: an [`Engine`] configured once, executions started from it.

use std::sync::Arc;

use serde_json::Value;
use stepstone_asl::Machine;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::dispatch::{NoTasks, TaskDispatcher};
use crate::driver::{Notice, Outcome, RunOptions, run_observed};
use crate::history::Event;
use crate::limits::Limits;

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
/// assert_eq!(outcome.status, Status::Succeeded(json!({"name": "Ada", "greeting": "hello, Ada"})));
/// ```
#[derive(Clone)]
pub struct Engine {
    tasks: Arc<dyn TaskDispatcher>,
    options: RunOptions,
}

/// Configures an [`Engine`]. Defaults: no task routes (tasks fail naming their resource), the
/// real clock, AWS's limits, history kept.
pub struct EngineBuilder {
    tasks: Arc<dyn TaskDispatcher>,
    options: RunOptions,
}

impl Engine {
    /// Starts configuring an engine.
    pub fn builder() -> EngineBuilder {
        let options = RunOptions {
            record_history: true,
            ..RunOptions::default()
        };
        EngineBuilder {
            tasks: Arc::new(NoTasks),
            options,
        }
    }

    /// Runs an execution to its end, on the current task.
    pub async fn run(&self, machine: &Machine, input: Value) -> Outcome {
        run_observed(machine, input, &self.options, &*self.tasks, &mut |_| {}).await
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
            run_observed(
                &machine,
                input,
                &engine.options,
                &*engine.tasks,
                &mut observer,
            )
            .await
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

    /// The engine.
    pub fn build(self) -> Engine {
        Engine {
            tasks: self.tasks,
            options: self.options,
        }
    }
}

/// A running execution.
pub struct ExecutionHandle {
    events: mpsc::UnboundedReceiver<Event>,
    outcome: JoinHandle<Outcome>,
}

impl ExecutionHandle {
    /// The next history event, or `None` once the execution has ended and every event was read.
    pub async fn next_event(&mut self) -> Option<Event> {
        self.events.recv().await
    }

    /// Waits for the execution to end.
    ///
    /// # Panics
    /// If the execution's task panicked (a bug in Stepstone or in a task handler).
    pub async fn outcome(self) -> Outcome {
        self.outcome
            .await
            .expect("the execution task does not panic")
    }
}
