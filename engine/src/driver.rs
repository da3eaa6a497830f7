//! The driver: performs an execution's commands on tokio, on a real or a virtual clock.
//!
//! On the virtual clock, time jumps to the next timer whenever nothing else can happen (no task
//! in flight), so Waits, retry backoff and the execution timeout finish at once while every
//! timestamp moves as if the time had passed. Tasks themselves always run in real time.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::future::Future;
use std::time::Duration;

use serde_json::Value;
use stepstone_asl::Machine;
use stepstone_asl::timestamp::Timestamp;
use tokio::task::JoinSet;

use crate::Failure;
use crate::clock::Clock;
use crate::dispatch::{TaskDispatcher, within_timeout};
use crate::history::{Event, History, HistoryMode};
use crate::interpreter::RedriveError;
use crate::interpreter::RestoreError;
use crate::interpreter::{
    Command, Execution, ExecutionInfo, Input, RunId, Status, TaskRequest, TimerReason,
};
use crate::limits::Limits;
use crate::record::Checkpoint;
use crate::signal::{Callback, CallbackError, Inbox, Signal, Signals};
use crate::store::{self, CheckpointStore};
use stepstone_asl::errors;

/// How to run one execution.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RunOptions {
    /// The execution's name (default: a fresh one from the clock).
    pub name: Option<String>,
    /// The state machine's name, for ARNs and `$$.StateMachine.Name`.
    pub machine_name: String,
    /// Run Waits, backoff and timeouts on a virtual clock.
    pub virtual_time: bool,
    /// Keep history events (ids are counted either way).
    pub record_history: bool,
    /// Limits.
    pub limits: Limits,
    /// An EXPRESS state machine's execution (its ARN and context differ).
    pub express: bool,
    /// Where the execution registers while it runs, so that it can be stopped from outside
    /// (default: nowhere).
    pub signals: Option<Signals>,
    /// What an observer gets of a history that is not recorded: `Light` (every event, without
    /// its data; the default) or `Notable` (only the events that say something to a person
    /// watching: a progress display at next to no cost). A recorded history gives every event.
    pub observed: HistoryMode,
    /// Keep the histories of distributed Maps' child executions (default: yes, as AWS does).
    /// Off, a durable execution stores only its own history: a Map over a million items then
    /// writes a million histories fewer.
    pub child_histories: bool,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            name: None,
            machine_name: "stepstone".into(),
            virtual_time: false,
            record_history: false,
            limits: Limits::default(),
            express: false,
            signals: None,
            observed: HistoryMode::Light,
            child_histories: true,
        }
    }
}

/// How an execution ended.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// SUCCEEDED with the output, FAILED or TIMED_OUT with the error.
    pub status: Status,
    /// Names, ARNs, input, start time.
    pub info: ExecutionInfo,
    /// When it stopped.
    pub stop_time: Timestamp,
    /// The history: its event count, and its events when `record_history` was set and the
    /// execution was not durable (a durable execution's events are in its store:
    /// [`crate::store::CheckpointStore::events`]; memory stays bounded however long it runs).
    pub history: History,
    /// States entered.
    pub states_entered: u64,
}

/// What a driver tells an observer while an execution runs.
#[derive(Debug)]
#[non_exhaustive]
pub enum Notice<'a> {
    /// A history event (only with `record_history`).
    Event(&'a Event),
    /// A task was handed to the dispatcher.
    Dispatched {
        /// The task.
        request: &'a TaskRequest,
        /// Where its run is ([`crate::Execution::path`]: `DeployWaves[1]/DeployRegions[0]`).
        path: &'a str,
    },
    /// A task's answer came (`failure`: it failed, timed out, or its handler panicked).
    TaskEnded {
        /// The run that waited for it ([`TaskRequest::run`]).
        run: RunId,
        /// Its failure, when it did not succeed.
        failure: Option<&'a Failure>,
    },
    /// A timer was set: a Wait, or the delay before a retry.
    Timer {
        /// When it fires (on the execution's clock).
        until: Timestamp,
        /// Why.
        reason: &'a TimerReason,
        /// Where its run is.
        path: &'a str,
    },
    /// How many states have been entered so far: about ten times a second while the execution
    /// runs, for a display that shows it.
    Progress {
        /// States entered.
        states_entered: u64,
    },
}

/// How often [`Notice::Progress`] comes.
const PROGRESS_EVERY: Duration = Duration::from_millis(100);

/// Runs `machine` on `input` to the end.
pub async fn run(
    machine: &Machine,
    input: Value,
    options: &RunOptions,
    tasks: &dyn TaskDispatcher,
) -> Outcome {
    drive(machine, input, options, tasks, None).await
}

/// Like [`run`], telling `observer` what happens as it happens.
pub async fn run_observed(
    machine: &Machine,
    input: Value,
    options: &RunOptions,
    tasks: &dyn TaskDispatcher,
    observer: &mut (dyn FnMut(Notice<'_>) + Send),
) -> Outcome {
    drive(machine, input, options, tasks, Some(observer)).await
}

async fn drive(
    machine: &Machine,
    input: Value,
    options: &RunOptions,
    tasks: &dyn TaskDispatcher,
    observer: Option<&mut (dyn FnMut(Notice<'_>) + Send)>,
) -> Outcome {
    let durable = Durable {
        store: None,
        definition: "",
        launch: &Value::Null,
    };
    match drive_new(machine, input, options, tasks, observer, durable).await {
        Ok(outcome) => outcome,
        Err(_) => unreachable!("nothing to store"),
    }
}

/// The history mode for an execution: an observer without a full history gets data-less
/// events, built and dropped as they go.
fn history_mode(options: &RunOptions, observed: bool) -> HistoryMode {
    match (options.record_history, observed) {
        (true, _) => HistoryMode::Full,
        (false, true) => match options.observed {
            HistoryMode::Notable => HistoryMode::Notable,
            _ => HistoryMode::Light,
        },
        (false, false) => HistoryMode::Off,
    }
}

/// How often a long stretch of pure states (no task, no timer) is checkpointed.
const PURE_PROGRESS_SAVE_INTERVAL: Duration = Duration::from_secs(1);

/// Where checkpoints go, if anywhere.
#[derive(Clone, Copy)]
struct Durable<'a> {
    store: Option<&'a dyn CheckpointStore>,
    definition: &'a str,
    launch: &'a Value,
}

impl<'a> Durable<'a> {
    /// An execution the store already has (its definition and launch options are there).
    fn resumed(store: &'a dyn CheckpointStore) -> Durable<'a> {
        Durable {
            store: Some(store),
            definition: "",
            launch: &Value::Null,
        }
    }
}

async fn drive_new(
    machine: &Machine,
    input: Value,
    options: &RunOptions,
    tasks: &dyn TaskDispatcher,
    observer: Option<&mut (dyn FnMut(Notice<'_>) + Send)>,
    durable: Durable<'_>,
) -> Result<Outcome, store::Error> {
    let clock = Clock::real();
    let start = clock.now();
    let name = options
        .name
        .clone()
        .unwrap_or_else(|| format!("run-{:x}", start.unix_nanos));
    let info = ExecutionInfo::new(&options.machine_name, &name, input, start, options.express);
    let mut exec = Execution::new(
        machine,
        info,
        options.limits,
        history_mode(options, observer.is_some()),
    );
    exec.set_child_histories(options.child_histories);
    if !options.virtual_time {
        let deadline = timeout_at(&exec, start);
        exec.set_evaluation_deadline(deadline.map(|d| real_instant(d, &clock)));
    }
    if let Some(store) = durable.store {
        exec.set_token_key(store.token_key()?);
    }
    // Stored (and reachable by a stop) before any state is entered: the first states may take
    // long (a JSONata expression runs up to its budget).
    exec.begin(start);
    let commands = Vec::new();
    let mut created = Vec::new();
    if let Some(store) = durable.store {
        // A stored execution's names are listed, printed and used in file names: they are
        // checked as AWS checks them before anything is kept.
        crate::check_name("execution name", &name)?;
        crate::check_name("state machine name", &options.machine_name)?;
        if crate::limits::nests_deeper(&exec.info().input, crate::MAX_DEPTH) {
            return Err(store::Error::InvalidInput(format!(
                "the input nests deeper than {} levels",
                crate::MAX_DEPTH
            )));
        }
        // Durable before any of its commands is performed.
        let changes = exec.take_changes()?;
        created = store
            .create_async(durable.definition, durable.launch, changes)
            .await?;
    }
    drive_execution(
        exec, commands, created, clock, options, tasks, observer, durable,
    )
    .await
}

/// Resumes an execution from its checkpoint: the tasks it was waiting for are dispatched again
/// with the same idempotency tokens, its timers re-armed at their deadlines.
pub async fn resume(
    machine: &Machine,
    checkpoint: Checkpoint,
    options: &RunOptions,
    tasks: &dyn TaskDispatcher,
    store: &dyn CheckpointStore,
    observer: Option<&mut (dyn FnMut(Notice<'_>) + Send)>,
) -> Result<Outcome, ResumeError> {
    let mut exec = Execution::restore(machine, checkpoint)?;
    exec.set_child_histories(options.child_histories);
    exec.set_token_key(store.token_key()?);
    // A virtual clock never runs backwards across a resume.
    let clock = Clock::resuming_at(exec.now);
    // Outstanding commands are already durable (they are in the checkpoint); runs that were
    // ready go on inside the loop, which checkpoints before performing what they ask for.
    let commands = exec.outstanding();
    let durable = Durable::resumed(store);
    Ok(drive_execution(
        exec,
        commands,
        Vec::new(),
        clock,
        options,
        tasks,
        observer,
        durable,
    )
    .await?)
}

/// Redrives a FAILED, ABORTED or TIMED_OUT execution (RedriveExecution): it goes on from the
/// states that did not succeed, durably (the inputs of the states it enters again are read
/// from the history in `store`). The redrive is saved before anything runs, so a crash right
/// after it leaves the execution RUNNING, for [`resume`].
pub async fn redrive(
    machine: &Machine,
    checkpoint: Checkpoint,
    options: &RunOptions,
    tasks: &dyn TaskDispatcher,
    store: &dyn CheckpointStore,
    observer: Option<&mut (dyn FnMut(Notice<'_>) + Send)>,
) -> Result<Outcome, ResumeError> {
    let mut exec = Execution::restore(machine, checkpoint)?;
    exec.set_child_histories(options.child_histories);
    exec.set_token_key(store.token_key()?);
    let clock = Clock::resuming_at(exec.now);
    let arn = exec.info().execution_arn.clone();
    let mut read = std::collections::HashMap::new();
    for id in exec.redrive_reads() {
        if let Some(event) = store.event(&arn, id)? {
            read.insert(id, event);
        }
    }
    exec.redrive(clock.now(), |id| read.remove(&id))?;
    // Saved before anything runs: a crash from here on leaves it RUNNING, for `resume`.
    let events = store.save_async(exec.take_changes()?).await?;
    let durable = Durable::resumed(store);
    Ok(drive_execution(
        exec,
        Vec::new(),
        events,
        clock,
        options,
        tasks,
        observer,
        durable,
    )
    .await?)
}

/// Where and how a durable execution is kept.
#[derive(Clone, Copy)]
pub struct Persistence<'a> {
    /// The store.
    pub store: &'a dyn CheckpointStore,
    /// The definition text, stored with the execution so it can be resumed from the store alone.
    pub definition: &'a str,
    /// Whatever the caller needs to resume it (kept verbatim; the CLI keeps its task routes).
    pub launch: &'a Value,
}

/// Runs `machine` on `input`, checkpointing into the store at every command boundary, so that
/// [`resume`] can finish it after a crash.
pub async fn run_durable(
    machine: &Machine,
    input: Value,
    options: &RunOptions,
    tasks: &dyn TaskDispatcher,
    persistence: Persistence<'_>,
    observer: Option<&mut (dyn FnMut(Notice<'_>) + Send)>,
) -> Result<Outcome, store::Error> {
    let durable = Durable {
        store: Some(persistence.store),
        definition: persistence.definition,
        launch: persistence.launch,
    };
    drive_new(machine, input, options, tasks, observer, durable).await
}

/// Why an execution could not be resumed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ResumeError {
    /// The checkpoint does not fit the definition.
    #[error(transparent)]
    Restore(#[from] RestoreError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] store::Error),
    /// The execution cannot be redriven.
    #[error(transparent)]
    Redrive(#[from] RedriveError),
}

/// Runs an execution to its end: its `commands` first, then whatever its answers lead to.
/// `saved` are events already in the store that no observer has seen yet.
#[allow(clippy::too_many_arguments)]
async fn drive_execution(
    mut exec: Execution<'_>,
    mut commands: Vec<Command>,
    saved: Vec<Event>,
    mut clock: Clock,
    options: &RunOptions,
    tasks: &dyn TaskDispatcher,
    mut observer: Option<&mut (dyn FnMut(Notice<'_>) + Send)>,
    durable: Durable<'_>,
) -> Result<Outcome, store::Error> {
    // Paths and progress counts are worked out only for an observer.
    let watched = observer.is_some();
    let mut last_progress = std::time::Instant::now();
    // The loop came round for a progress tick only: nothing to checkpoint.
    let mut ticked = false;
    let mut notify = |n: Notice<'_>| {
        if let Some(o) = observer.as_mut() {
            o(n);
        }
    };
    // A redriven execution's TimeoutSeconds counts from the redrive: it would otherwise be
    // over before the redrive began.
    let start = exec.info().redrive_time.unwrap_or(exec.info().start_time);
    let deadline = timeout_at(&exec, start);
    if !options.virtual_time {
        exec.set_evaluation_deadline(deadline.map(|d| real_instant(d, &clock)));
    }
    // What has been started and is waited for: tasks, callbacks, timers.
    let mut started = Started::default();
    // Saves queued and not yet committed, oldest first, each with the commands it holds back.
    let mut pending: VecDeque<PendingSave> = VecDeque::new();
    let mut first = true;
    // An execution that is not durable and records its history hands its events to the
    // outcome; a durable one's are in its store.
    let keep_events = durable.store.is_none() && exec.history().recording();
    let mut kept = History::with_mode(exec.history().mode());
    let mut pass_on = |events: Vec<Event>, notify: &mut dyn FnMut(Notice<'_>)| {
        for event in &events {
            notify(Notice::Event(event));
        }
        if keep_events {
            kept.append(events);
        }
    };
    pass_on(saved, &mut notify);
    let mut last_save = std::time::Instant::now();
    let (_registration, mut inbox) = match &options.signals {
        Some(signals) => {
            let (registration, inbox) =
                signals.register(&exec.info().execution_arn, exec.interrupt());
            (Some(registration), inbox)
        }
        None => (None, Inbox(None)),
    };
    // Stop requests wait for their answer until the abort is durable (every save is committed
    // when the loop ends).
    let mut replies = Vec::new();
    loop {
        if let Some(signal) = inbox.try_next() {
            if matches!(signal, Signal::Abandon) {
                return Err(abandoned(&exec));
            }
            // A signal that came while the execution never waited (a long run of pure states).
            on_signal(
                &mut exec,
                signal,
                clock.now(),
                &mut replies,
                &mut started.callbacks,
            );
            // Whatever it changed is checkpointed below, tick or not.
            ticked = false;
            if *exec.status() != Status::Running {
                // Stopped: nothing it asked for is performed, and the stop itself is saved.
                commands.clear();
                first = false;
            }
        }
        if exec.interrupted() && *exec.status() == Status::Running {
            // An evaluation was cut short: the execution is being stopped or has timed out,
            // which comes next. Nothing this call asked for is performed (or saved first).
            commands.clear();
        } else if let (Some(store), false, false) =
            (durable.store, first, std::mem::take(&mut ticked))
        {
            // Every interpreter call ends here: its commands become durable before they run,
            // and so does every task result. A call that only used up its step budget on pure
            // states has no effect to protect: those states would recompute identically, so
            // such progress is saved only now and then, to bound the work a crash repeats.
            let pure_progress =
                commands.is_empty() && exec.has_ready_runs() && *exec.status() == Status::Running;
            if !pure_progress || last_save.elapsed() >= PURE_PROGRESS_SAVE_INTERVAL {
                let changes = exec.take_changes()?;
                let whole = changes.is_complete();
                let saving = store.save_async(changes);
                // Pipelined: the commands wait for their save's commit, the interpreter does
                // not; it goes on with whatever else has come in, and its next save queues
                // behind this one (see `PendingSave`). A save holding the whole execution (the
                // first after a restore) is waited for: the saves after it need its records.
                // Effect-free dispatches (mocked responses) are sent at once: nothing outside
                // the process sees them, and a crash before this save recomputes them with
                // the same answers; what they lead to with an effect still waits for a save
                // that comes after this one.
                let (now, held): (Vec<Command>, Vec<Command>) = std::mem::take(&mut commands)
                    .into_iter()
                    .partition(|c| matches!(c, Command::Dispatch(r) if tasks.effect_free(r)));
                for command in now {
                    started.start(command, &mut exec, tasks, &clock, watched, &mut notify);
                }
                pending.push_back(PendingSave {
                    saving,
                    commands: held,
                });
                if whole || pending.len() > MAX_PENDING_SAVES {
                    let save = pending.pop_front().expect("pushed above");
                    pass_on(save.saving.await?, &mut notify);
                    commands = save.commands;
                }
                last_save = std::time::Instant::now();
            }
        } else if durable.store.is_none() {
            pass_on(exec.take_events(), &mut notify);
        }
        first = false;
        if watched && last_progress.elapsed() >= PROGRESS_EVERY {
            last_progress = std::time::Instant::now();
            notify(Notice::Progress {
                states_entered: exec.states_entered(),
            });
        }
        // Saves committed by now release their commands, in the order they were queued (after
        // any in `commands`, which come from older saves).
        while let Some(saved) = pending.front_mut().and_then(|p| committed(&mut p.saving)) {
            let save = pending.pop_front().expect("looked at");
            pass_on(saved?, &mut notify);
            commands.extend(save.commands);
        }
        for command in commands.drain(..) {
            started.start(command, &mut exec, tasks, &clock, watched, &mut notify);
        }
        if *exec.status() != Status::Running {
            // The end is durable before it is told (what the last saves held back is moot).
            while let Some(save) = pending.pop_front() {
                pass_on(save.saving.await?, &mut notify);
            }
            break;
        }
        if exec.has_ready_runs() {
            // A long stretch of pure states: let other tasks on this runtime (the control
            // socket, task handlers) run between budgets.
            tokio::task::yield_now().await;
            let now = clock.now();
            if deadline.is_some_and(|d| d <= now) {
                commands = exec.on_input(Input::TimedOut, now);
            } else {
                commands = exec.resume(now);
            }
            continue;
        }
        let next_timer = started.timers.peek().map(|Reverse((t, _, _))| *t);
        // The earliest thing the clock can bring: a timer, or the execution's deadline.
        let due = match (next_timer, deadline) {
            (Some(t), Some(d)) => Some(t.min(d)),
            (t, d) => t.or(d),
        };
        if started.in_flight.is_empty() && due.is_none() && pending.is_empty() {
            // Nothing can happen any more.
            break;
        }
        let woken = if options.virtual_time && started.in_flight.is_empty() && pending.is_empty() {
            clock.jump_to(due.expect("checked above"));
            Woken::Clock
        } else {
            let wait = due.map(|d| {
                Duration::from_nanos((d.unix_nanos - clock.now().unix_nanos).max(0) as u64)
            });
            let sleep = async {
                match wait {
                    Some(w) => tokio::time::sleep(w).await,
                    None => std::future::pending().await,
                }
            };
            let task = async {
                match started.in_flight.join_next_with_id().await {
                    Some(joined) => joined,
                    None => std::future::pending().await,
                }
            };
            let save = async {
                match pending.front_mut() {
                    Some(save) => (&mut save.saving).await,
                    None => std::future::pending().await,
                }
            };
            // An observer hears how the execution stands while it waits, too.
            let tick = async {
                match watched {
                    true => tokio::time::sleep(PROGRESS_EVERY).await,
                    false => std::future::pending().await,
                }
            };
            tokio::select! {
                joined = task => Woken::Task(joined),
                saved = save => Woken::Saved(saved),
                () = sleep => Woken::Clock,
                signal = inbox.next() => Woken::Signal(signal),
                () = tick => Woken::Tick,
            }
        };
        match woken {
            Woken::Saved(saved) => {
                let save = pending.pop_front().expect("awaited above");
                pass_on(saved?, &mut notify);
                commands = save.commands;
                // Back to the top, where they are performed (without a save of their own:
                // nothing changed since).
                ticked = true;
                continue;
            }
            Woken::Task(joined) => {
                // Group commit: every task that has finished by now is applied before the next
                // checkpoint, so a burst of completions costs one write, not one each. (Taking
                // half of them, to interpret one half while the other commits, was measured:
                // no faster on two cores, and half again as much CPU for twice the commits.)
                let mut done = Some(joined);
                while let Some(joined) = done {
                    let (run, result) = match joined {
                        Ok((task, answer)) => {
                            started.task_runs.remove(&task);
                            answer
                        }
                        // The handler panicked: its task fails (Catch sees States.TaskFailed),
                        // the execution goes on.
                        Err(e) => (
                            started
                                .task_runs
                                .remove(&e.id())
                                .unwrap_or_else(RunId::detached),
                            Err(Failure::new(
                                errors::TASK_FAILED,
                                format!("The task handler panicked: {e}"),
                            )),
                        ),
                    };
                    notify(Notice::TaskEnded {
                        run,
                        failure: result.as_ref().err(),
                    });
                    commands.extend(exec.on_input(Input::TaskDone { run, result }, clock.now()));
                    done = started.in_flight.try_join_next_with_id();
                }
                continue;
            }
            Woken::Signal(Signal::Abandon) => return Err(abandoned(&exec)),
            Woken::Signal(signal) => {
                on_signal(
                    &mut exec,
                    signal,
                    clock.now(),
                    &mut replies,
                    &mut started.callbacks,
                );
                continue;
            }
            Woken::Tick => {
                // Nothing moved: back to waiting, without a checkpoint.
                ticked = true;
                last_progress = std::time::Instant::now();
                notify(Notice::Progress {
                    states_entered: exec.states_entered(),
                });
                continue;
            }
            Woken::Clock => {}
        }
        let now = clock.now();
        if deadline.is_some_and(|d| d <= now) {
            commands = exec.on_input(Input::TimedOut, now);
            continue;
        }
        if let Some(Reverse((t, _, _))) = started.timers.peek()
            && *t <= now
        {
            let Reverse((_, _, RunIdKey(run))) = started.timers.pop().expect("peeked");
            commands = exec.on_input(Input::TimerFired { run }, now);
        }
    }
    if durable.store.is_none() {
        pass_on(exec.take_events(), &mut notify);
    }
    started.in_flight.abort_all();
    let stop_time = clock.now();
    for reply in replies {
        // The requester may have gone away; the execution has stopped regardless.
        let _ = reply.send(stop_time);
    }
    Ok(Outcome {
        status: exec.status().clone(),
        info: exec.info().clone(),
        stop_time,
        states_entered: exec.states_entered(),
        history: if keep_events {
            kept
        } else {
            History::counted(exec.history().mode(), exec.history().len())
        },
    })
}

/// When `exec`, counted from `start`, times out (its TimeoutSeconds).
fn timeout_at(exec: &Execution<'_>, start: Timestamp) -> Option<Timestamp> {
    exec.timeout_seconds().map(|s| Timestamp {
        unix_nanos: start.unix_nanos + i128::from(s) * 1_000_000_000,
    })
}

/// `at` on the real clock, for a clock that is not virtual.
fn real_instant(at: Timestamp, clock: &Clock) -> std::time::Instant {
    let ahead = at.unix_nanos - clock.now().unix_nanos;
    let ahead = Duration::from_nanos(u64::try_from(ahead.max(0)).unwrap_or(u64::MAX));
    std::time::Instant::now()
        .checked_add(ahead)
        .unwrap_or_else(|| std::time::Instant::now() + Duration::from_secs(365 * 86_400))
}

/// A task that waits for its token: first its request is delivered (`delivery`; a failure
/// there fails the task), then it waits for the callback. With `heartbeat`, more than that many
/// seconds without a heartbeat fail it with States.HeartbeatTimeout.
async fn wait_for_callback(
    delivery: crate::dispatch::TaskFuture,
    mut callbacks: tokio::sync::mpsc::UnboundedReceiver<Callback>,
    heartbeat: Option<u64>,
    state: String,
) -> Result<Value, Failure> {
    delivery.await?;
    loop {
        let next = match heartbeat {
            Some(s) => tokio::time::timeout(Duration::from_secs(s), callbacks.recv())
                .await
                .map_err(|_| {
                    Failure::new(
                        errors::HEARTBEAT_TIMEOUT,
                        format!("The task of state '{state}' sent no heartbeat within its HeartbeatSeconds ({s} s)."),
                    )
                })?,
            None => callbacks.recv().await,
        };
        match next {
            Some(Callback::Success(output)) => return Ok(output),
            Some(Callback::Failure { error, cause }) => return Err(Failure::new(error, cause)),
            Some(Callback::Heartbeat | Callback::Started { .. }) => {}
            // The driver went away; the execution no longer waits.
            None => return std::future::pending().await,
        }
    }
}

/// The `workerName` of ActivityStarted when a local handler (a command, a mock, a closure) is
/// the activity's worker.
const LOCAL_WORKER: &str = "stepstone";

/// A task's answer, for the run that waits for it.
type TaskAnswer = (RunId, Result<Value, Failure>);

/// At most this many saves of one execution wait for their commit at once; past that the
/// interpreter waits for the oldest (a bound on the memory a slow disk lets pile up).
const MAX_PENDING_SAVES: usize = 8;

/// A save queued and not yet committed, and the commands it holds back: a dispatch is durable
/// before it is sent, so its commands are performed once it is committed. Saves are committed
/// in the order they were queued (one writer per store), so a task's result is always durable
/// before what it led to, and a failed save fails every later save of the execution unapplied
/// (the store's save chain).
struct PendingSave {
    saving: store::Saving,
    commands: Vec<Command>,
}

/// What a save resolved to, if it is over (without waiting).
fn committed(saving: &mut store::Saving) -> Option<Result<Vec<Event>, store::Error>> {
    let mut context = std::task::Context::from_waker(std::task::Waker::noop());
    match std::pin::Pin::new(saving).poll(&mut context) {
        std::task::Poll::Ready(result) => Some(result),
        std::task::Poll::Pending => None,
    }
}

/// What the driver has started and waits for.
#[derive(Default)]
struct Started {
    /// Tasks in flight.
    in_flight: JoinSet<TaskAnswer>,
    /// Which run each task in flight answers, to fail the right one if its handler panics.
    task_runs: HashMap<tokio::task::Id, RunId>,
    /// The tasks waiting for their token, by token.
    callbacks: HashMap<String, CallbackSender>,
    /// Timers, earliest first (ties in the order they were set).
    timers: BinaryHeap<Reverse<(Timestamp, u64, RunIdKey)>>,
    seq: u64,
}

impl Started {
    /// Performs `command`: arms its timer or dispatches its task.
    fn start(
        &mut self,
        command: Command,
        exec: &mut Execution<'_>,
        tasks: &dyn TaskDispatcher,
        clock: &Clock,
        watched: bool,
        notify: &mut dyn FnMut(Notice<'_>),
    ) {
        match command {
            Command::Timer { run, until, reason } => {
                if watched {
                    notify(Notice::Timer {
                        until,
                        reason: &reason,
                        path: &exec.path(run),
                    });
                }
                self.seq += 1;
                self.timers.push(Reverse((until, self.seq, RunIdKey(run))));
            }
            Command::Dispatch(request) => {
                if watched {
                    notify(Notice::Dispatched {
                        request: &request,
                        path: &exec.path(request.run),
                    });
                }
                let run = request.run;
                let timeout = request.timeout_seconds;
                let state = request.state_name.clone();
                let answered_here = tasks.answers_callbacks(&request);
                if answered_here && let Some(token) = &request.task_token {
                    // An activity whose handler is its worker (a command, a mock): taken at
                    // once (no-op for other tasks).
                    exec.activity_started(token, LOCAL_WORKER, clock.now());
                }
                let waits_for_token = (!answered_here)
                    .then(|| request.task_token.clone())
                    .flatten();
                let heartbeat = request.heartbeat_seconds;
                let mut future = tasks.dispatch(request);
                if let Some(token) = waits_for_token {
                    // The dispatch only delivers the request: the result comes back with the
                    // token, as a signal.
                    let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
                    self.callbacks.insert(token, sender);
                    future = Box::pin(wait_for_callback(
                        future,
                        receiver,
                        heartbeat,
                        state.clone(),
                    ));
                }
                let spawned = self
                    .in_flight
                    .spawn(async move { (run, within_timeout(future, timeout, &state).await) });
                self.task_runs.insert(spawned.id(), run);
            }
        }
    }
}

/// What ended a wait in the driver's loop.
enum Woken {
    /// The oldest save under way is over.
    Saved(Result<Vec<Event>, store::Error>),
    /// A task finished (or its handler panicked).
    Task(Result<(tokio::task::Id, TaskAnswer), tokio::task::JoinError>),
    /// A timer or the deadline is due.
    Clock,
    /// A signal came.
    Signal(Signal),
    /// Time to tell an observer how the execution stands.
    Tick,
}

/// Where a task waiting for its token hears of it.
type CallbackSender = tokio::sync::mpsc::UnboundedSender<Callback>;

/// What a driver told to abandon its execution ends with: it no longer holds the lease.
fn abandoned(exec: &Execution<'_>) -> store::Error {
    store::Error::NotHeld(exec.info().execution_arn.clone())
}

/// Applies a signal to the execution.
fn on_signal(
    exec: &mut Execution<'_>,
    signal: Signal,
    now: Timestamp,
    replies: &mut Vec<tokio::sync::oneshot::Sender<Timestamp>>,
    callbacks: &mut HashMap<String, CallbackSender>,
) {
    match signal {
        Signal::Callback {
            token,
            callback,
            reply,
        } => {
            // Tasks that have ended dropped their receivers.
            callbacks.retain(|_, sender| !sender.is_closed());
            let delivered = match (callbacks.get(&token), callback) {
                (Some(_), Callback::Started { worker_name })
                    if *exec.status() == Status::Running =>
                {
                    // A history event, not an answer: the task goes on waiting for its result.
                    exec.activity_started(&token, &worker_name, now)
                }
                (Some(sender), callback) if *exec.status() == Status::Running => {
                    sender.send(callback).is_ok()
                }
                _ => false,
            };
            let _ = reply.send(if delivered {
                Ok(())
            } else {
                Err(CallbackError::TaskDoesNotExist)
            });
        }
        Signal::Stop {
            error,
            cause,
            reply,
        } => {
            exec.abort(&error, &cause, now);
            replies.push(reply);
        }
        // Taken by the driver's loop before it gets here.
        Signal::Abandon => {}
    }
}

/// Orders timers with equal deadlines by insertion only; run ids carry no order of their own.
#[derive(Clone, Copy, PartialEq, Eq)]
struct RunIdKey(RunId);

impl PartialOrd for RunIdKey {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for RunIdKey {
    fn cmp(&self, _: &Self) -> std::cmp::Ordering {
        std::cmp::Ordering::Equal
    }
}
