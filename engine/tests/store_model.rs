//! The stores against a model: executions of a Map (a Task with Retry in each iteration, a
//! Parallel after it) driven step by step, each step saved incrementally; at random moments
//! the store is reopened, or an execution is read back. What is read back must be exactly the
//! live execution: the same records (`Execution::snapshot`), the same history, the same
//! listing. This is what makes incremental checkpoints safe: a record a save forgot to write,
//! or wrote stale, shows here.

mod common;

use std::collections::{BTreeMap, VecDeque};

use proptest::prelude::*;
use serde_json::{Value, json};
use stepstone_engine::asl::timestamp::Timestamp;
use stepstone_engine::asl::{Machine, Options, validate};
use stepstone_engine::history::HistoryMode;
use stepstone_engine::store::{CheckpointStore, MemStore, PostgresStore, RedbStore, SledStore};
use stepstone_engine::{Command, Execution, ExecutionInfo, Failure, Input, Limits};

#[derive(Debug, Clone)]
enum Op {
    Create(usize),
    /// Answer the execution's oldest outstanding command: a task succeeds (or fails with a
    /// retriable error), a timer fires. Then save.
    Step {
        execution: usize,
        fail: bool,
    },
    /// Stop it (ABORTED), then save.
    Stop(usize),
    Load(usize),
    List,
    Reopen,
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(
        prop_oneof![
            1 => (0usize..3).prop_map(Op::Create),
            8 => (0usize..3, prop::bool::weighted(0.2))
                .prop_map(|(execution, fail)| Op::Step { execution, fail }),
            1 => (0usize..3).prop_map(Op::Stop),
            3 => (0usize..3).prop_map(Op::Load),
            1 => Just(Op::List),
            1 => Just(Op::Reopen),
        ],
        1..80,
    )
}

fn machine() -> Machine {
    validate(
        &json!({"StartAt": "Regions", "States": {
            "Regions": {"Type": "Map", "ItemsPath": "$.items", "MaxConcurrency": 3,
                "ItemSelector": {"region.$": "$$.Map.Item.Value", "at.$": "$$.Map.Item.Index"},
                "ItemProcessor": {"StartAt": "Deploy", "States": {
                    "Deploy": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
                        "Retry": [{"ErrorEquals": ["Flaky"], "IntervalSeconds": 5, "MaxAttempts": 5}],
                        "ResultPath": "$.deployed", "Next": "Note"},
                    "Note": {"Type": "Pass", "Assign": {"last.$": "$.region"}, "End": true}}},
                "ResultPath": "$.regions", "Next": "Both"},
            "Both": {"Type": "Parallel", "ResultPath": "$.both", "End": true, "Branches": [
                {"StartAt": "Notify", "States": {"Notify": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "End": true}}},
                {"StartAt": "Wait", "States": {"Wait": {"Type": "Wait", "Seconds": 60, "End": true}}}
            ]}
        }}),
        Options::default(),
    )
    .machine
    .expect("valid")
}

fn arn(execution: usize) -> String {
    format!("arn:aws:states:us-east-1:123456789012:execution:model:ex-{execution}")
}

/// A live execution and the commands it waits on.
struct Live<'m> {
    exec: Execution<'m>,
    pending: VecDeque<Command>,
    /// Every event it recorded, in order (ids).
    events: Vec<u64>,
    clock: i128,
}

fn at(nanos: i128) -> Timestamp {
    Timestamp { unix_nanos: nanos }
}

/// Execution `e` of the model, started: its first commands are pending.
fn started(machine: &Machine, e: usize) -> (Execution<'_>, VecDeque<Command>) {
    let info = ExecutionInfo::new(
        "model",
        &format!("ex-{e}"),
        json!({"items": (0..5).map(|i| format!("region-{e}-{i}")).collect::<Vec<_>>()}),
        at(1_000),
        false,
    );
    let mut exec = Execution::new(machine, info, Limits::default(), HistoryMode::Full);
    let pending = exec.start(at(1_000)).into();
    (exec, pending)
}

fn check(
    ops: Vec<Op>,
    mut open: impl FnMut() -> Box<dyn CheckpointStore>,
) -> Result<(), TestCaseError> {
    let machine = machine();
    let mut store = open();
    let mut live: BTreeMap<usize, Live<'_>> = BTreeMap::new();
    for op in ops {
        match op {
            Op::Create(e) => {
                let (mut exec, pending) = started(&machine, e);
                let changes = exec.take_changes().unwrap();
                let created = store.create(machine.source(), &json!({"e": e}), &changes);
                if live.contains_key(&e) {
                    // Names are unique: a second create is refused and changes nothing.
                    prop_assert!(matches!(
                        created,
                        Err(stepstone_engine::store::Error::AlreadyExists(_))
                    ));
                    continue;
                }
                created.unwrap();
                let events = changes.events().iter().map(|ev| ev.id).collect();
                live.insert(
                    e,
                    Live {
                        exec,
                        pending,
                        events,
                        clock: 1_000,
                    },
                );
            }
            Op::Step { execution, fail } => {
                let Some(l) = live.get_mut(&execution) else {
                    continue;
                };
                let Some(command) = l.pending.pop_front() else {
                    continue;
                };
                l.clock += 1_000_000;
                let input = match command {
                    Command::Dispatch(request) => Input::TaskDone {
                        run: request.run,
                        result: if fail {
                            Err(Failure::new("Flaky", "try again"))
                        } else {
                            Ok(json!({"done": request.input, "attempt": request.attempt}))
                        },
                    },
                    Command::Timer { run, until, .. } => {
                        l.clock = l.clock.max(until.unix_nanos);
                        Input::TimerFired { run }
                    }
                };
                let next = l.exec.on_input(input, at(l.clock));
                l.pending.extend(next);
                let changes = l.exec.take_changes().unwrap();
                l.events.extend(changes.events().iter().map(|ev| ev.id));
                store.save(&changes).unwrap();
            }
            Op::Stop(e) => {
                let Some(l) = live.get_mut(&e) else { continue };
                l.clock += 1_000;
                l.exec.abort("Stopped", "by the model", at(l.clock));
                l.pending.clear();
                let changes = l.exec.take_changes().unwrap();
                l.events.extend(changes.events().iter().map(|ev| ev.id));
                store.save(&changes).unwrap();
            }
            Op::Load(e) => {
                let loaded = store.load(&arn(e)).unwrap();
                let Some(l) = live.get(&e) else {
                    prop_assert!(loaded.is_none());
                    continue;
                };
                let stored = loaded.expect("stored");
                prop_assert_eq!(stored.launch, json!({"e": e}));
                prop_assert_eq!(&stored.definition, machine.source());
                let restored = Execution::restore(&machine, stored.checkpoint).unwrap();
                let (want, got) = (l.exec.snapshot().unwrap(), restored.snapshot().unwrap());
                prop_assert_eq!(
                    readable(&got),
                    readable(&want),
                    "the execution read back is the one saved"
                );
                prop_assert_eq!(restored.outstanding(), l.exec.outstanding());
                let described = store.describe(&arn(e)).unwrap().expect("listed");
                prop_assert_eq!(described.status.as_str(), l.exec.status().as_str());
                prop_assert_eq!(&described.info.input, &l.exec.info().input);
                let ids: Vec<u64> = store
                    .events(&arn(e))
                    .unwrap()
                    .iter()
                    .map(|ev| ev.id)
                    .collect();
                prop_assert_eq!(&ids, &l.events);
                let mut streamed = Vec::new();
                store
                    .each_event(&arn(e), &mut |ev| {
                        streamed.push(ev.id);
                        true
                    })
                    .unwrap();
                prop_assert_eq!(&streamed, &l.events, "read a page at a time");
                prop_assert_eq!(ids, (1..=l.events.len() as u64).collect::<Vec<_>>());
                if let Some(&some) = l.events.get(l.events.len() / 2) {
                    let one = store.event(&arn(e), some).unwrap().expect("event by id");
                    prop_assert_eq!(one.id, some);
                    // Followed from the middle: exactly the events after it.
                    let mut after = Vec::new();
                    store
                        .each_event_after(&arn(e), some, &mut |ev| {
                            after.push(ev.id);
                            true
                        })
                        .unwrap();
                    let want: Vec<u64> = l.events.iter().copied().filter(|&id| id > some).collect();
                    prop_assert_eq!(after, want);
                }
            }
            Op::List => {
                let listed: Vec<(String, String)> = store
                    .list()
                    .unwrap()
                    .into_iter()
                    .map(|r| (r.execution_arn, r.status))
                    .collect();
                let expected: Vec<(String, String)> = live
                    .iter()
                    .map(|(e, l)| (arn(*e), l.exec.status().as_str().to_owned()))
                    .collect();
                prop_assert_eq!(listed, expected);
            }
            Op::Reopen => {
                drop(store);
                store = open();
            }
        }
    }
    Ok(())
}

/// Records as text, for a readable difference.
fn readable(records: &[(stepstone_engine::RecordKey, Vec<u8>)]) -> Vec<(String, Value)> {
    records
        .iter()
        .map(|(k, v)| {
            (
                format!("{k:?}"),
                serde_json::from_slice(v).expect("records are JSON"),
            )
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn mem_store_matches_the_model(ops in ops()) {
        // A MemStore forgets on "reopen" only if recreated; keep one instance, as a process would.
        let store = std::sync::Arc::new(MemStore::new());
        check(ops, || Box::new(store.clone()))?;
    }

    #[test]
    fn redb_store_matches_the_model(ops in ops()) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_owned();
        check(ops, || Box::new(RedbStore::open(&path).unwrap()))?;
    }

    #[test]
    fn sled_store_matches_the_model(ops in ops()) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_owned();
        check(ops, || Box::new(SledStore::open(&path).unwrap()))?;
    }

    #[test]
    fn postgres_store_matches_the_model(ops in ops()) {
        let url = common::postgres::fresh_database("model");
        check(ops, || Box::new(PostgresStore::open(&url).unwrap()))?;
    }
}

/// Runs execution `e` to its end on `store` from this thread, every task succeeding, each step
/// saved; returns it, and the ids of the events it recorded.
fn run_to_end<'m>(
    machine: &'m Machine,
    store: &dyn CheckpointStore,
    e: usize,
) -> (Execution<'m>, Vec<u64>) {
    let (mut exec, mut pending) = started(machine, e);
    let changes = exec.take_changes().unwrap();
    store
        .create(machine.source(), &json!({"e": e}), &changes)
        .unwrap();
    let mut events: Vec<u64> = changes.events().iter().map(|ev| ev.id).collect();
    let mut clock = 1_000;
    while let Some(command) = pending.pop_front() {
        clock += 1_000_000;
        let input = match command {
            Command::Dispatch(request) => Input::TaskDone {
                run: request.run,
                result: Ok(json!({"done": request.input})),
            },
            Command::Timer { run, until, .. } => {
                clock = clock.max(until.unix_nanos);
                Input::TimerFired { run }
            }
        };
        pending.extend(exec.on_input(input, at(clock)));
        let changes = exec.take_changes().unwrap();
        events.extend(changes.events().iter().map(|ev| ev.id));
        store.save(&changes).unwrap();
    }
    (exec, events)
}

/// Executions saving from several threads at once (the disk stores commit their saves
/// together, `group_commit.rs`): each reads back as it was saved, after a reopen too; and of
/// one ARN created from every thread at the same moment, exactly one creation is stored.
#[test]
fn executions_saving_at_once_each_read_back_whole() {
    let machine = machine();
    let dir = tempfile::tempdir().unwrap();
    let (redb, sled) = (dir.path().join("redb"), dir.path().join("sled"));
    let database = common::postgres::fresh_database("at_once");
    type Open<'a> = Box<dyn Fn() -> Box<dyn CheckpointStore> + 'a>;
    let stores: [(&str, Open); 3] = [
        (
            "redb",
            Box::new(|| Box::new(RedbStore::open(&redb).unwrap())),
        ),
        (
            "sled",
            Box::new(|| Box::new(SledStore::open(&sled).unwrap())),
        ),
        (
            "postgres",
            Box::new(|| Box::new(PostgresStore::open(&database).unwrap())),
        ),
    ];
    for (name, open) in stores {
        let store = open();
        let threads = 8;
        let barrier = std::sync::Barrier::new(threads);
        let (finished, same_name): (Vec<_>, Vec<_>) = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..threads)
                .map(|e| {
                    let (store, machine, barrier) = (&*store, &machine, &barrier);
                    scope.spawn(move || {
                        barrier.wait();
                        let info = ExecutionInfo::new("model", "same", json!({}), at(1), false);
                        let mut exec =
                            Execution::new(machine, info, Limits::default(), HistoryMode::Full);
                        exec.start(at(1));
                        let raced = store.create(
                            machine.source(),
                            &json!({}),
                            &exec.take_changes().unwrap(),
                        );
                        let (exec, events) = run_to_end(machine, store, e);
                        (
                            (
                                e,
                                exec.snapshot().unwrap(),
                                exec.status().as_str().to_owned(),
                                events,
                            ),
                            raced,
                        )
                    })
                })
                .collect();
            workers.into_iter().map(|w| w.join().unwrap()).unzip()
        });
        let stored = same_name.iter().filter(|r| r.is_ok()).count();
        assert_eq!(stored, 1, "{name}: one creation of a name is stored");
        assert!(
            same_name.iter().all(|r| matches!(
                r,
                Ok(()) | Err(stepstone_engine::store::Error::AlreadyExists(_))
            )),
            "{name}: the others are refused as existing"
        );
        drop(store);
        let store = open();
        for (e, snapshot, status, events) in finished {
            assert_eq!(status, "SUCCEEDED", "{name}: ex-{e}");
            let stored = store.load(&arn(e)).unwrap().expect("stored");
            let restored = Execution::restore(&machine, stored.checkpoint).unwrap();
            assert_eq!(
                readable(&restored.snapshot().unwrap()),
                readable(&snapshot),
                "{name}: ex-{e} reads back as saved"
            );
            let ids: Vec<u64> = store
                .events(&arn(e))
                .unwrap()
                .iter()
                .map(|ev| ev.id)
                .collect();
            assert_eq!(ids, events, "{name}: ex-{e}'s history");
        }
        assert_eq!(store.list().unwrap().len(), threads + 1, "{name}");
    }
}

/// A save's history batch is a record of its own, encoded on request (what a store of an
/// embedder's own writes beside `puts`; the stores here encode it on their writer thread).
#[test]
fn a_saves_history_batch_is_encoded_on_request() {
    let machine = machine();
    let (mut exec, _) = started(&machine, 0);
    let changes = exec.take_changes().unwrap();
    let (key, bytes) = changes
        .history_record()
        .unwrap()
        .expect("the events since the start");
    assert_eq!(key, stepstone_engine::RecordKey::History { first: 1 });
    assert!(!bytes.is_empty());
    assert!(
        changes
            .puts()
            .iter()
            .all(|(k, _)| !matches!(k, stepstone_engine::RecordKey::History { .. }))
    );
    let none = exec.take_changes().unwrap();
    assert!(none.history_record().unwrap().is_none());
}
