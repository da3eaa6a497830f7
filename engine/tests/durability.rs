//! Crash and resume: an execution is dropped at a moment where only its last checkpoint
//! survives (a task in flight, a long Wait, inside a Map), then resumed from the store. Its
//! output and history must equal an uninterrupted run's, a task that completed must not run
//! again, and a re-dispatched task must carry the same idempotency token.

mod common;

use std::sync::{Arc, Mutex};

use common::machine;
use serde_json::{Value, json};
use stepstone_engine::asl::Machine;
use stepstone_engine::store::{CheckpointStore, MemStore, SledStore};
use stepstone_engine::{
    FnTasks, Notice, Outcome, Persistence, RestoreError, ResumeError, RunOptions, Status,
    TaskFuture, TaskRequest, resume, run_durable,
};

type Ledger = Arc<Mutex<Vec<(String, String)>>>;

fn options(virtual_time: bool) -> RunOptions {
    let mut o = RunOptions::default();
    o.virtual_time = virtual_time;
    o.record_history = true;
    o.name = Some("durable-run".into());
    o.machine_name = "durable".into();
    o
}

/// Handlers that record (state, token) and answer `{"done": state}`; the state named `hang`
/// never answers the first time it is called (the moment the test "crashes").
fn handlers(
    ledger: Ledger,
    hang: Option<&'static str>,
) -> FnTasks<impl Fn(TaskRequest) -> TaskFuture + Send + Sync> {
    FnTasks(move |req: TaskRequest| -> TaskFuture {
        let first_time = !ledger
            .lock()
            .unwrap()
            .iter()
            .any(|(s, _)| *s == req.state_name);
        ledger
            .lock()
            .unwrap()
            .push((req.state_name.clone(), req.idempotency_token.clone()));
        if first_time && Some(req.state_name.as_str()) == hang {
            return Box::pin(std::future::pending());
        }
        let state = req.state_name.clone();
        Box::pin(async move { Ok(json!({"done": state, "input": req.input})) })
    })
}

/// Runs until `crash_when` says so (or to the end), dropping the execution there.
async fn run_until(
    m: &Machine,
    def: &Value,
    input: Value,
    opts: &RunOptions,
    store: &dyn CheckpointStore,
    tasks: &dyn stepstone_engine::TaskDispatcher,
    crash_when: impl Fn(&Notice<'_>) -> bool + Send,
) -> Option<Outcome> {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let mut tx = Some(tx);
    let mut observer = move |n: Notice<'_>| {
        if crash_when(&n)
            && let Some(tx) = tx.take()
        {
            let _ = tx.send(());
        }
    };
    let text = def.to_string();
    let run = run_durable(
        m,
        input,
        opts,
        tasks,
        Persistence {
            store,
            definition: &text,
            launch: &Value::Null,
        },
        Some(&mut observer),
    );
    tokio::select! {
        outcome = run => Some(outcome.expect("the store works")),
        _ = rx => None,
    }
}

async fn resume_from(
    m: &Machine,
    store: &dyn CheckpointStore,
    opts: &RunOptions,
    tasks: &dyn stepstone_engine::TaskDispatcher,
) -> Outcome {
    let records = store.list().unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].status, "RUNNING", "the crash left it running");
    let stored = store
        .load(&records[0].execution_arn)
        .unwrap()
        .expect("stored");
    resume(m, stored.checkpoint, opts, tasks, store, None)
        .await
        .expect("resumes")
}

fn history_shape(events: &[stepstone_engine::history::Event]) -> Vec<(u64, u64, String)> {
    events
        .iter()
        .map(|e| (e.id, e.previous_event_id, e.kind.type_name()))
        .collect()
}

/// The whole stored history of the store's only execution.
fn stored_history(store: &dyn CheckpointStore) -> Vec<stepstone_engine::history::Event> {
    store
        .events(&store.list().unwrap()[0].execution_arn)
        .unwrap()
}

fn flow() -> Value {
    json!({"StartAt": "Prepare", "States": {
        "Prepare": {"Type": "Pass", "Parameters": {"stack.$": "$.stack", "id.$": "States.UUID()"}, "Next": "Create"},
        "Create": {"Type": "Task", "Resource": "arn:aws:states:::aws-sdk:cloudformation:createStack", "ResultPath": "$.created", "Next": "Settle"},
        "Settle": {"Type": "Wait", "Seconds": 3600, "Next": "Describe"},
        "Describe": {"Type": "Task", "Resource": "arn:aws:states:::aws-sdk:cloudformation:describeStacks",
                     "Retry": [{"ErrorEquals": ["States.ALL"], "MaxAttempts": 2}], "ResultPath": "$.described", "Next": "Done"},
        "Done": {"Type": "Succeed"}
    }})
}

#[tokio::test]
async fn crash_with_a_task_in_flight() {
    let def = flow();
    let m = machine(&def);
    // The uninterrupted run, for reference.
    let reference_ledger = Ledger::default();
    let reference_store = MemStore::new();
    let reference = run_until(
        &m,
        &def,
        json!({"stack": "orders"}),
        &options(true),
        &reference_store,
        &handlers(reference_ledger, None),
        |_| false,
    )
    .await
    .expect("runs to the end");
    assert!(matches!(reference.status, Status::Succeeded(_)));

    let store = MemStore::new();
    let ledger = Ledger::default();
    let crashed = run_until(
        &m,
        &def,
        json!({"stack": "orders"}),
        &options(true),
        &store,
        &handlers(ledger.clone(), Some("Describe")),
        |n| matches!(n, Notice::Dispatched { request: r, .. } if r.state_name == "Describe"),
    )
    .await;
    assert!(crashed.is_none(), "crashed while Describe was in flight");
    let resumed = resume_from(&m, &store, &options(true), &handlers(ledger.clone(), None)).await;

    assert_eq!(
        resumed.status, reference.status,
        "same output (States.UUID is seeded, so it matches too)"
    );
    assert_eq!(
        history_shape(&stored_history(&store)),
        history_shape(&stored_history(&reference_store)),
        "same events, ids without gaps or duplicates"
    );
    let ledger = ledger.lock().unwrap().clone();
    let creates: Vec<_> = ledger.iter().filter(|(s, _)| s == "Create").collect();
    assert_eq!(
        creates.len(),
        1,
        "a task that completed durably does not run again: {ledger:?}"
    );
    let describes: Vec<_> = ledger.iter().filter(|(s, _)| s == "Describe").collect();
    assert_eq!(describes.len(), 2, "the task in flight is dispatched again");
    assert_eq!(
        describes[0].1, describes[1].1,
        "with the same idempotency token"
    );
    assert_eq!(store.list().unwrap()[0].status, "SUCCEEDED");
}

/// A polling loop dispatches one state three times; the execution crashes while the second
/// poll is in flight. The invocation numbers (what a MockConfigFile answers by) go on from the
/// checkpoint: the poll sent again is invocation 1 again, then 2; not 0.
#[tokio::test]
async fn invocation_numbers_survive_a_crash() {
    let def = json!({"StartAt": "Poll", "States": {
        "Poll": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "Next": "Done?"},
        "Done?": {"Type": "Choice", "Choices": [{"Variable": "$.n", "NumericLessThan": 3, "Next": "Poll"}],
                  "Default": "Done"},
        "Done": {"Type": "Succeed"}}});
    let m = machine(&def);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let poll = |seen: Arc<Mutex<Vec<u32>>>, hang_at: Option<u32>| {
        FnTasks(move |req: TaskRequest| -> TaskFuture {
            seen.lock().unwrap().push(req.invocation);
            if Some(req.invocation) == hang_at {
                return Box::pin(std::future::pending());
            }
            let n = req.invocation + 1;
            Box::pin(async move { Ok(json!({"n": n})) })
        })
    };
    let store = MemStore::new();
    let crashed = run_until(
        &m,
        &def,
        json!({}),
        &options(true),
        &store,
        &poll(seen.clone(), Some(1)),
        |n| matches!(n, Notice::Dispatched { request: r, .. } if r.invocation == 1),
    )
    .await;
    assert!(crashed.is_none(), "crashed during the second poll");
    let resumed = resume_from(&m, &store, &options(true), &poll(seen.clone(), None)).await;
    assert_eq!(resumed.status, Status::Succeeded(json!({"n": 3})));
    assert_eq!(*seen.lock().unwrap(), [0, 1, 1, 2]);
}

#[tokio::test]
async fn crash_during_a_wait_keeps_its_deadline() {
    let def = flow();
    let m = machine(&def);
    let store = MemStore::new();
    let ledger = Ledger::default();
    // On the real clock, the one-hour Wait is where the crash happens.
    let crashed = run_until(
        &m,
        &def,
        json!({"stack": "orders"}),
        &options(false),
        &store,
        &handlers(ledger.clone(), None),
        |n| matches!(n, Notice::Timer { .. }),
    )
    .await;
    assert!(crashed.is_none());
    let resumed = resume_from(&m, &store, &options(true), &handlers(ledger.clone(), None)).await;
    assert!(
        matches!(resumed.status, Status::Succeeded(_)),
        "{:?}",
        resumed.status
    );
    let waited = (resumed.stop_time.unix_nanos - resumed.info.start_time.unix_nanos) as f64 / 1e9;
    assert!(
        waited >= 3600.0,
        "the Wait ends at its original deadline: {waited}"
    );
    assert_eq!(
        ledger
            .lock()
            .unwrap()
            .iter()
            .filter(|(s, _)| s == "Create")
            .count(),
        1
    );
}

#[tokio::test]
async fn a_resumed_map_does_not_rerun_finished_iterations() {
    let def = json!({"StartAt": "M", "States": {"M": {"Type": "Map", "MaxConcurrency": 1, "ItemProcessor": {"StartAt": "Work", "States": {
        "Work": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "Parameters": {"item.$": "$"}, "OutputPath": "$.input.item", "End": true}
    }}, "End": true}}});
    let m = machine(&def);
    let store = MemStore::new();
    let ledger = Ledger::default();
    // Item 2's first attempt hangs: items 0 and 1 have finished.
    let map_tasks = |ledger: Ledger, hang_on_call: Option<usize>| {
        let calls = Arc::new(Mutex::new(0));
        FnTasks(move |req: TaskRequest| -> TaskFuture {
            ledger
                .lock()
                .unwrap()
                .push((req.input["item"].to_string(), req.idempotency_token.clone()));
            let mut n = calls.lock().unwrap();
            *n += 1;
            if Some(*n) == hang_on_call {
                return Box::pin(std::future::pending());
            }
            Box::pin(async move { Ok(json!({"input": req.input})) })
        })
    };
    let tasks = map_tasks(ledger.clone(), Some(3));
    let crashed = run_until(
        &m,
        &def,
        json!(["a", "b", "c", "d"]),
        &options(true),
        &store,
        &tasks,
        |n| matches!(n, Notice::Dispatched { request: r, .. } if r.input["item"] == "c"),
    )
    .await;
    assert!(crashed.is_none());
    let resumed = resume_from(&m, &store, &options(true), &map_tasks(ledger.clone(), None)).await;
    let Status::Succeeded(out) = resumed.status else {
        panic!("{:?}", resumed.status)
    };
    assert_eq!(out, json!(["a", "b", "c", "d"]));
    let ledger = ledger.lock().unwrap().clone();
    let count = |item: &str| {
        ledger
            .iter()
            .filter(|(i, _)| i == &json!(item).to_string())
            .count()
    };
    assert_eq!(
        (count("a"), count("b"), count("c"), count("d")),
        (1, 1, 2, 1),
        "{ledger:?}"
    );
    let tokens: Vec<&String> = ledger
        .iter()
        .filter(|(i, _)| i == "\"c\"")
        .map(|(_, t)| t)
        .collect();
    assert_eq!(tokens[0], tokens[1], "the iteration's task keeps its token");
}

#[tokio::test]
async fn sled_store_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let def = flow();
    let m = machine(&def);
    let ledger = Ledger::default();
    {
        let store = SledStore::open(dir.path()).unwrap();
        let crashed = run_until(
            &m,
            &def,
            json!({"stack": "s"}),
            &options(true),
            &store,
            &handlers(ledger.clone(), Some("Create")),
            |n| matches!(n, Notice::Dispatched { request: r, .. } if r.state_name == "Create"),
        )
        .await;
        assert!(crashed.is_none());
    }
    let store = SledStore::open(dir.path()).unwrap();
    let resumed = resume_from(&m, &store, &options(true), &handlers(ledger.clone(), None)).await;
    assert!(matches!(resumed.status, Status::Succeeded(_)));
    drop(store);
    let store = SledStore::open(dir.path()).unwrap();
    let records = store.list().unwrap();
    assert_eq!(
        (records.len(), records[0].status.as_str()),
        (1, "SUCCEEDED")
    );
    assert!(records[0].stop_date.is_some());
}

#[tokio::test]
async fn a_checkpoint_must_fit_its_definition() {
    let def = flow();
    let m = machine(&def);
    let store = MemStore::new();
    let ledger = Ledger::default();
    let crashed = run_until(
        &m,
        &def,
        json!({"stack": "s"}),
        &options(true),
        &store,
        &handlers(ledger.clone(), Some("Describe")),
        |n| matches!(n, Notice::Dispatched { request: r, .. } if r.state_name == "Describe"),
    )
    .await;
    assert!(crashed.is_none());
    let other = machine(&json!({"StartAt": "Only", "States": {"Only": {"Type": "Succeed"}}}));
    let stored = store
        .load(&store.list().unwrap()[0].execution_arn)
        .unwrap()
        .unwrap();
    let err = resume(
        &other,
        stored.checkpoint,
        &options(true),
        &handlers(ledger, None),
        &store,
        None,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, ResumeError::Restore(RestoreError::Mismatch(_))),
        "{err}"
    );
}

#[tokio::test]
async fn an_engine_with_a_store_resumes_what_a_crash_left() {
    use stepstone_engine::Engine;
    let dir = tempfile::tempdir().unwrap();
    let def = flow();
    let m = Arc::new(machine(&def));
    let ledger = Ledger::default();
    {
        let engine = Engine::builder()
            .store(SledStore::open(dir.path()).unwrap())
            .tasks(handlers(ledger.clone(), Some("Describe")))
            .virtual_time(true)
            .build();
        let mut handle = engine.start(m.clone(), json!({"stack": "orders"}));
        // Crash once Describe was dispatched (its first attempt never answers).
        while let Some(event) = handle.next_event().await {
            if event.kind.type_name() == "TaskScheduled"
                && ledger.lock().unwrap().iter().any(|(s, _)| s == "Describe")
            {
                break;
            }
        }
        handle.abandon();
        drop(engine);
        // Give the runtime a moment to drop the aborted execution's task (and the store).
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let engine = Engine::builder()
        .store(SledStore::open(dir.path()).unwrap())
        .tasks(handlers(ledger.clone(), None))
        .virtual_time(true)
        .build();
    let outcomes = engine.resume_all().await.unwrap();
    assert_eq!(outcomes.len(), 1);
    assert!(
        matches!(outcomes[0].status, Status::Succeeded(_)),
        "{:?}",
        outcomes[0].status
    );
    assert!(
        engine.resume_all().await.unwrap().is_empty(),
        "nothing left to resume"
    );
}

/// Answers every task with its input, noting for each dispatch how many TaskScheduled events
/// the store already held when it was sent; `effect_free` is what it says of its tasks.
struct Watching {
    store: Arc<stepstone_engine::store::RedbStore>,
    effect_free: bool,
    scheduled_when_sent: Mutex<Vec<usize>>,
}

impl stepstone_engine::TaskDispatcher for Watching {
    fn dispatch(&self, request: TaskRequest) -> TaskFuture {
        let scheduled = self
            .store
            .events(&request.execution_arn)
            .unwrap()
            .iter()
            .filter(|e| {
                matches!(
                    e.kind,
                    stepstone_engine::history::EventKind::TaskScheduled { .. }
                )
            })
            .count();
        self.scheduled_when_sent.lock().unwrap().push(scheduled);
        Box::pin(async move { Ok(json!({"input": request.input})) })
    }

    fn effect_free(&self, _request: &TaskRequest) -> bool {
        self.effect_free
    }
}

/// The contract's first rule as a task sees it: when the n-th task is sent, the store already
/// holds n TaskScheduled events (its dispatch is committed), on a disk store whose writer
/// commits while the interpreter goes on. Tasks said to be effect-free (mocked responses) are
/// not held back, and their execution ends with the same output and history.
#[tokio::test]
async fn a_task_is_sent_once_its_dispatch_is_durable_unless_it_is_effect_free() {
    let def = json!({"StartAt": "M", "States": {"M": {"Type": "Map", "ItemProcessor": {"StartAt": "Work", "States": {
        "Work": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "Parameters": {"item.$": "$"}, "OutputPath": "$.input.item", "End": true}
    }}, "End": true}}});
    let m = machine(&def);
    let items: Vec<u32> = (0..300).collect();
    let mut shapes = Vec::new();
    for effect_free in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(stepstone_engine::store::RedbStore::open(dir.path()).unwrap());
        let tasks = Watching {
            store: store.clone(),
            effect_free,
            scheduled_when_sent: Mutex::default(),
        };
        let text = def.to_string();
        let outcome = run_durable(
            &m,
            json!(items),
            &options(true),
            &tasks,
            Persistence {
                store: &*store,
                definition: &text,
                launch: &Value::Null,
            },
            None,
        )
        .await
        .unwrap();
        assert_eq!(outcome.status, Status::Succeeded(json!(items)));
        let seen = tasks.scheduled_when_sent.into_inner().unwrap();
        assert_eq!(seen.len(), items.len());
        if !effect_free {
            for (n, scheduled) in seen.iter().enumerate() {
                assert!(
                    *scheduled > n,
                    "task {} was sent with {scheduled} TaskScheduled events stored",
                    n + 1
                );
            }
        }
        shapes.push(history_shape(&stored_history(&*store)));
    }
    assert_eq!(shapes[0], shapes[1]);
}
