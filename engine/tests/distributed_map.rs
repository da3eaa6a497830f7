//! A DISTRIBUTED Map: its iterations are child executions, so the parent's history records the
//! Map Run (MapRunStarted, then MapRunSucceeded or MapRunFailed) and none of the iterations'
//! events, as AWS's does; nor do those events count against the parent's history limit.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use common::machine;
use serde_json::{Value, json};
use stepstone_engine::history::EventKind;
use stepstone_engine::store::{CheckpointStore, MemStore};
use stepstone_engine::{
    Failure, FnTasks, Persistence, RunOptions, Status, TaskFuture, TaskRequest, redrive, run,
    run_durable,
};

/// How a Map Run with a failed child fails.
const THRESHOLD: &str = "States.ExceedToleratedFailureThreshold";

fn options() -> RunOptions {
    let mut o = RunOptions::default();
    o.virtual_time = true;
    o.record_history = true;
    o.name = Some("fan-out".into());
    o.machine_name = "regions".into();
    o
}

/// A Map over `$.items` whose iterations call one task, `Deploy`, in `mode`.
fn definition(mode: &str) -> Value {
    json!({"StartAt": "Fan", "States": {
        "Fan": {"Type": "Map", "ItemsPath": "$.items", "Label": "Waves",
            "ItemProcessor": {"ProcessorConfig": {"Mode": mode, "ExecutionType": "STANDARD"},
                "StartAt": "Deploy", "States": {
                    "Deploy": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
                               "Parameters": {"item.$": "$"}, "ResultSelector": {"done.$": "$.item"},
                               "End": true}}},
            "End": true}}})
}

/// Answers `{"item": <the item>}`, failing the items in `failing` (on their first call only
/// when `once`).
fn deploy(
    failing: &'static [i64],
    once: bool,
    calls: Arc<AtomicU32>,
) -> FnTasks<impl Fn(TaskRequest) -> TaskFuture + Send + Sync> {
    let seen = Arc::new(std::sync::Mutex::new(std::collections::HashSet::new()));
    FnTasks(move |req: TaskRequest| -> TaskFuture {
        calls.fetch_add(1, Ordering::SeqCst);
        let item = req.input["item"].clone();
        let first = seen.lock().unwrap().insert(item.to_string());
        let fail = item.as_i64().is_some_and(|i| failing.contains(&i)) && (first || !once);
        Box::pin(async move {
            if fail {
                Err(Failure::new("Deploy.Failed", format!("item {item} failed")))
            } else {
                Ok(json!({"item": item}))
            }
        })
    })
}

/// Runs `def` (compiled as `m`) on `input`, durably in `store`.
async fn durable(
    m: &stepstone_engine::asl::Machine,
    def: &Value,
    input: Value,
    store: &MemStore,
    tasks: &dyn stepstone_engine::TaskDispatcher,
) -> stepstone_engine::Outcome {
    let text = def.to_string();
    run_durable(
        m,
        input,
        &options(),
        tasks,
        Persistence {
            store,
            definition: &text,
            launch: &Value::Null,
        },
        None,
    )
    .await
    .expect("the store works")
}

fn types(events: &[stepstone_engine::history::Event]) -> Vec<String> {
    events.iter().map(|e| e.kind.type_name()).collect()
}

#[tokio::test]
async fn the_parent_history_records_the_map_run_and_not_the_iterations() {
    let m = machine(&definition("DISTRIBUTED"));
    let calls = Arc::new(AtomicU32::new(0));
    let out = run(
        &m,
        json!({"items": [1, 2, 3]}),
        &options(),
        &deploy(&[], false, calls.clone()),
    )
    .await;
    assert_eq!(
        out.status,
        Status::Succeeded(json!([{"done": 1}, {"done": 2}, {"done": 3}]))
    );
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    let events = out.history.events();
    assert_eq!(
        types(events),
        [
            "ExecutionStarted",
            "MapStateEntered",
            "MapStateStarted",
            "MapRunStarted",
            "MapRunSucceeded",
            "MapStateSucceeded",
            "MapStateExited",
            "ExecutionSucceeded"
        ]
    );
    let EventKind::MapRunStarted { map_run_arn } = &events[3].kind else {
        unreachable!()
    };
    // arn:aws:states:REGION:ACCOUNT:mapRun:MACHINE/LABEL:UUID
    let parts: Vec<&str> = map_run_arn.split(':').collect();
    assert_eq!(parts.len(), 8, "{map_run_arn}");
    assert_eq!(parts[..3], ["arn", "aws", "states"]);
    assert_eq!(parts[5], "mapRun");
    assert_eq!(parts[6], "regions/Waves");
    assert_eq!(parts[7].len(), 36, "{map_run_arn}");
    // Each event follows from the one before it: the iterations left no gap.
    for pair in events.windows(2) {
        assert_eq!(pair[1].id, pair[0].id + 1);
    }

    // The same Map inline records every iteration in the execution's own history.
    let inline = run(
        &machine(&definition("INLINE")),
        json!({"items": [1, 2, 3]}),
        &options(),
        &deploy(&[], false, Arc::default()),
    )
    .await;
    let inline_types = types(inline.history.events());
    assert!(inline_types.contains(&"MapIterationStarted".to_owned()));
    assert!(!inline_types.iter().any(|t| t.starts_with("MapRun")));
}

#[tokio::test]
async fn child_executions_do_not_count_against_the_parent_history_limit() {
    // 6,000 iterations of 5 events each would pass AWS's 25,000 events in one history.
    let items: Vec<i64> = (0..6_000).collect();
    let mut o = options();
    o.record_history = false;
    let distributed = run(
        &machine(&definition("DISTRIBUTED")),
        json!({ "items": items }),
        &o,
        &deploy(&[], false, Arc::default()),
    )
    .await;
    let Status::Succeeded(output) = &distributed.status else {
        panic!("{:?}", distributed.status)
    };
    assert_eq!(output.as_array().map(Vec::len), Some(6_000));
    assert_eq!(distributed.history.len(), 8);

    let inline = run(
        &machine(&definition("INLINE")),
        json!({ "items": items }),
        &o,
        &deploy(&[], false, Arc::default()),
    )
    .await;
    assert!(
        matches!(&inline.status, Status::Failed(f) if f.error == "States.Runtime"),
        "{:?}",
        inline.status
    );
}

#[tokio::test]
async fn a_failed_child_execution_fails_the_map_run() {
    let m = machine(&definition("DISTRIBUTED"));
    let out = run(
        &m,
        json!({"items": [1, 2, 3]}),
        &options(),
        &deploy(&[2], false, Arc::default()),
    )
    .await;
    // A Map Run tolerates no failure unless told: it fails with
    // States.ExceedToleratedFailureThreshold, not with its child's error (which is in the
    // child's own history).
    assert!(
        matches!(&out.status, Status::Failed(f) if f.error == "States.ExceedToleratedFailureThreshold"),
        "{:?}",
        out.status
    );
    let events = out.history.events();
    let types = types(events);
    let at = types
        .iter()
        .position(|t| t == "MapRunFailed")
        .expect("MapRunFailed");
    assert_eq!(types[at + 1], "MapStateFailed");
    assert_eq!(types.last().map(String::as_str), Some("ExecutionFailed"));
    assert!(
        !types
            .iter()
            .any(|t| t.starts_with("MapIteration") || t.starts_with("Task"))
    );
    let EventKind::MapRunFailed { error, cause } = &events[at].kind else {
        unreachable!()
    };
    assert_eq!(error, "States.ExceedToleratedFailureThreshold");
    assert_eq!(
        cause,
        "The specified tolerated failure threshold was exceeded"
    );
}

#[tokio::test]
async fn a_redriven_map_run_reruns_its_failed_child_from_its_input() {
    // Deploy's ResultSelector and default ResultPath let an inline run give its raw input up
    // to the parameters; a child execution keeps it, since a redrive enters the failed state
    // again with it and its StateEntered event is not in the parent's history.
    let def = definition("DISTRIBUTED");
    let m = machine(&def);
    let store = MemStore::new();
    let calls = Arc::new(AtomicU32::new(0));
    let tasks = deploy(&[2], true, calls.clone());
    let first = durable(&m, &def, json!({"items": [1, 2, 3]}), &store, &tasks).await;
    assert!(matches!(&first.status, Status::Failed(f) if f.error == THRESHOLD));
    let arn = first.info.execution_arn.clone();
    let before = calls.load(Ordering::SeqCst);

    let stored = store.load(&arn).unwrap().expect("stored");
    let second = redrive(&m, stored.checkpoint, &options(), &tasks, &store, None)
        .await
        .unwrap();
    assert_eq!(
        second.status,
        Status::Succeeded(json!([{"done": 1}, {"done": 2}, {"done": 3}]))
    );
    // Only the failed child ran again (and those not reached before the failure).
    assert!(calls.load(Ordering::SeqCst) - before <= 2);
    let events = store.events(&arn).unwrap();
    let types = types(&events);
    let redriven = types.iter().position(|t| t == "ExecutionRedriven").unwrap();
    assert!(types[redriven..].contains(&"MapRunSucceeded".to_owned()));
    assert!(!types.iter().any(|t| t.starts_with("Task")));
    // The Map Run that failed is redriven (the same ARN), not a new one started.
    let started: Vec<&String> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::MapRunStarted { map_run_arn } => Some(map_run_arn),
            _ => None,
        })
        .collect();
    assert_eq!(started.len(), 1, "{types:?}");
    let Some(EventKind::MapRunRedriven {
        map_run_arn,
        redrive_count,
    }) = events[redriven..]
        .iter()
        .map(|e| &e.kind)
        .find(|k| matches!(k, EventKind::MapRunRedriven { .. }))
    else {
        panic!("no MapRunRedriven: {types:?}")
    };
    assert_eq!((map_run_arn, *redrive_count), (started[0], 1));
    let map_run = store.map_run(map_run_arn).unwrap().expect("its record");
    assert_eq!(
        (map_run.status.as_str(), map_run.redrive_count),
        ("SUCCEEDED", 1)
    );
    assert!(map_run.redrive_date.is_some());
    assert_eq!(
        (map_run.succeeded, map_run.failed, map_run.total),
        (3, 0, 3)
    );
    // The child that ran again records it in its own history, numbered on from its failure.
    let children = store.child_executions(map_run_arn).unwrap();
    assert!(
        children.iter().all(|c| c.status == "SUCCEEDED"),
        "{children:?}"
    );
    let child = children
        .iter()
        .find(|c| {
            let events = store.events(&c.execution_arn).unwrap();
            events
                .iter()
                .any(|e| e.kind.type_name() == "ExecutionRedriven")
        })
        .expect("a redriven child");
    let child_events = store.events(&child.execution_arn).unwrap();
    let child_types: Vec<String> = child_events.iter().map(|e| e.kind.type_name()).collect();
    let at = child_types
        .iter()
        .position(|t| t == "ExecutionRedriven")
        .unwrap();
    assert_eq!(child_types[at - 1], "ExecutionFailed", "{child_types:?}");
    assert_eq!(
        child_types.last().map(String::as_str),
        Some("ExecutionSucceeded")
    );
    for (n, event) in child_events.iter().enumerate() {
        assert_eq!(
            (event.id, event.previous_event_id),
            (n as u64 + 1, n as u64)
        );
    }
}

#[tokio::test]
async fn items_read_once_are_kept_in_the_checkpoint_for_a_redrive() {
    let def = json!({"StartAt": "Fan", "States": {
        "Fan": {"Type": "Map",
            "ItemReader": {"Resource": "arn:aws:states:::s3:getObject",
                "ReaderConfig": {"InputType": "JSONL", "MaxItemsPath": "$.limit"},
                "Parameters": {"Bucket": "b", "Key.$": "$.key"}},
            "ItemsPath": "$.rows",
            "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
                "StartAt": "Deploy", "States": {
                    "Deploy": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
                               "Parameters": {"item.$": "$"}, "ResultSelector": {"done.$": "$.item"},
                               "End": true}}},
            "End": true}}});
    let m = machine(&def);
    let store = MemStore::new();
    let reads = Arc::new(AtomicU32::new(0));
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let deploy = deploy(&[2], true, Arc::default());
    let tasks = {
        let (reads, seen) = (reads.clone(), seen.clone());
        FnTasks(move |req: TaskRequest| -> TaskFuture {
            if req.resource == "arn:aws:states:::s3:getObject" {
                reads.fetch_add(1, Ordering::SeqCst);
                seen.lock().unwrap().push(req.input);
                // What the reader read; ItemsPath picks the items from it.
                return Box::pin(async { Ok(json!({"rows": [1, 2, 3]})) });
            }
            deploy.0(req)
        })
    };
    let first = durable(
        &m,
        &def,
        json!({"key": "rows.jsonl", "limit": 3}),
        &store,
        &tasks,
    )
    .await;
    assert!(
        matches!(&first.status, Status::Failed(f) if f.error == THRESHOLD),
        "{:?}",
        first.status
    );
    // The reader's request: its Parameters, with the ReaderConfig (MaxItemsPath read).
    assert_eq!(
        seen.lock().unwrap()[0],
        json!({"Bucket": "b", "Key": "rows.jsonl",
               "ReaderConfig": {"InputType": "JSONL", "MaxItems": 3}})
    );
    let arn = first.info.execution_arn.clone();
    let stored = store.load(&arn).unwrap().expect("stored");
    let second = redrive(&m, stored.checkpoint, &options(), &tasks, &store, None)
        .await
        .unwrap();
    assert_eq!(
        second.status,
        Status::Succeeded(json!([{"done": 1}, {"done": 2}, {"done": 3}]))
    );
    assert_eq!(reads.load(Ordering::SeqCst), 1, "the items were read again");
}

#[tokio::test]
async fn a_reader_answering_json_lines_gives_each_line_as_an_item_and_they_survive_a_redrive() {
    // Stepstone's own readers answer JSON Lines (one item per line, blank lines skipped), so
    // that a million items never exist as one array; the Map keeps them so in its checkpoint.
    let def = json!({"StartAt": "Fan", "States": {
        "Fan": {"Type": "Map",
            "ItemReader": {"Resource": "arn:aws:states:::s3:getObject",
                "ReaderConfig": {"InputType": "JSONL"}, "Parameters": {"Bucket": "b", "Key": "k"}},
            "ItemSelector": {"item.$": "$$.Map.Item.Value", "at.$": "$$.Map.Item.Index"},
            "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
                "StartAt": "Deploy", "States": {
                    "Deploy": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
                               "Parameters": {"item.$": "$.item", "at.$": "$.at"}, "End": true}}},
            "End": true}}});
    let m = machine(&def);
    let store = MemStore::new();
    let deploy = deploy(&[2], true, Arc::default());
    let tasks = FnTasks(move |req: TaskRequest| -> TaskFuture {
        if req.resource == "arn:aws:states:::s3:getObject" {
            let lines = "{\"name\": \"a\\nb\"}\n\n2\r\n [3, 4] \n".to_owned();
            return Box::pin(async { Ok(Value::String(lines)) });
        }
        deploy.0(req)
    });
    let first = durable(&m, &def, json!({}), &store, &tasks).await;
    assert!(
        matches!(&first.status, Status::Failed(f) if f.error == THRESHOLD),
        "{:?}",
        first.status
    );
    let stored = store
        .load(&first.info.execution_arn)
        .unwrap()
        .expect("stored");
    let second = redrive(&m, stored.checkpoint, &options(), &tasks, &store, None)
        .await
        .unwrap();
    assert_eq!(
        second.status,
        Status::Succeeded(json!([{"item": {"name": "a\nb"}}, {"item": 2}, {"item": [3, 4]}]))
    );

    // A line that is not one JSON value fails the Map, naming the line.
    let tasks = FnTasks(|_req: TaskRequest| -> TaskFuture {
        Box::pin(async { Ok(Value::String("1\n{\"open\": \n".into())) })
    });
    let out = run(&m, json!({}), &options(), &tasks).await;
    let Status::Failed(f) = &out.status else {
        panic!("{:?}", out.status)
    };
    assert_eq!(f.error, "States.ItemReaderFailed");
    assert!(f.cause.starts_with("line 2 "), "{}", f.cause);
}

#[tokio::test]
async fn a_reader_that_fails_fails_the_map_with_item_reader_failed() {
    let def = json!({"StartAt": "Fan", "States": {
        "Fan": {"Type": "Map",
            "ItemReader": {"Resource": "arn:aws:states:::s3:listObjectsV2",
                "Parameters": {"Bucket": "b"}},
            "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED"},
                "StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}},
            "End": true}}});
    let tasks = FnTasks(|_req: TaskRequest| -> TaskFuture {
        Box::pin(async { Err(Failure::new("S3.NoSuchBucketException", "no bucket b")) })
    });
    let out = run(&machine(&def), json!({}), &options(), &tasks).await;
    let Status::Failed(f) = &out.status else {
        panic!("{:?}", out.status)
    };
    assert_eq!(f.error, "States.ItemReaderFailed");
    assert!(
        f.cause.contains("S3.NoSuchBucketException: no bucket b"),
        "{}",
        f.cause
    );
    assert_eq!(
        types(out.history.events()),
        [
            "ExecutionStarted",
            "MapStateEntered",
            "MapStateFailed",
            "ExecutionFailed"
        ]
    );
}

#[tokio::test]
async fn an_item_batcher_gives_each_child_a_batch_of_selected_items() {
    let def = json!({"StartAt": "Fan", "States": {"Fan": {"Type": "Map", "ItemsPath": "$.items",
        "ItemSelector": {"v.$": "$$.Map.Item.Value", "at.$": "$$.Map.Item.Index"},
        "ItemBatcher": {"MaxItemsPerBatchPath": "$.per", "BatchInput": {"env": "prod"}},
        "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
            "StartAt": "Take", "States": {"Take": {"Type": "Pass", "End": true}}},
        "End": true}}});
    let out = run(
        &machine(&def),
        json!({"items": ["a", "b", "c", "d", "e"], "per": 2}),
        &options(),
        &deploy(&[], false, Arc::default()),
    )
    .await;
    let batch = |items: Value| json!({"BatchInput": {"env": "prod"}, "Items": items});
    assert_eq!(
        out.status,
        Status::Succeeded(json!([
            batch(json!([{"v": "a", "at": 0}, {"v": "b", "at": 1}])),
            batch(json!([{"v": "c", "at": 2}, {"v": "d", "at": 3}])),
            batch(json!([{"v": "e", "at": 4}])),
        ]))
    );
    // MapStateStarted counts the items, not the batches.
    assert!(matches!(
        out.history.events()[2].kind,
        EventKind::MapStateStarted { length: 5 }
    ));

    // By size: each item's JSON text counts (plus a separator); a batch holds one at least.
    let by_bytes = json!({"StartAt": "Fan", "States": {"Fan": {"Type": "Map",
        "ItemBatcher": {"MaxInputBytesPerBatch": 15},
        "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED"},
            "StartAt": "Take", "States": {"Take": {"Type": "Pass", "End": true}}},
        "End": true}}});
    let out = run(
        &machine(&by_bytes),
        json!([
            "aaaa",
            "bbbb",
            "cccc",
            "a very long item, longer than the bound"
        ]),
        &options(),
        &deploy(&[], false, Arc::default()),
    )
    .await;
    assert_eq!(
        out.status,
        Status::Succeeded(json!([
            {"Items": ["aaaa", "bbbb"]},
            {"Items": ["cccc"]},
            {"Items": ["a very long item, longer than the bound"]},
        ]))
    );

    let zero = run(
        &machine(&def),
        json!({"items": [1], "per": 0}),
        &options(),
        &deploy(&[], false, Arc::default()),
    )
    .await;
    assert!(
        matches!(&zero.status, Status::Failed(f) if f.cause.contains("MaxItemsPerBatch must be a positive integer")),
        "{:?}",
        zero.status
    );
}

#[tokio::test]
async fn a_redriven_batched_map_reruns_only_the_failed_batch() {
    let def = json!({"StartAt": "Fan", "States": {"Fan": {"Type": "Map",
        "ItemBatcher": {"MaxItemsPerBatch": 2},
        "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED"},
            "StartAt": "Deploy", "States": {
                "Deploy": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
                           "Parameters": {"item.$": "$.Items[0]"}, "ResultSelector": {"first.$": "$.item"},
                           "End": true}}},
        "End": true}}});
    let m = machine(&def);
    let store = MemStore::new();
    let calls = Arc::new(AtomicU32::new(0));
    let tasks = deploy(&[3], true, calls.clone());
    let first = durable(&m, &def, json!([1, 2, 3, 4, 5]), &store, &tasks).await;
    assert!(matches!(&first.status, Status::Failed(f) if f.error == THRESHOLD));
    let before = calls.load(Ordering::SeqCst);
    // Restored from the store: where the batches start is worked out again.
    let stored = store
        .load(&first.info.execution_arn)
        .unwrap()
        .expect("stored");
    let second = redrive(&m, stored.checkpoint, &options(), &tasks, &store, None)
        .await
        .unwrap();
    assert_eq!(
        second.status,
        Status::Succeeded(json!([{"first": 1}, {"first": 3}, {"first": 5}]))
    );
    assert!(calls.load(Ordering::SeqCst) - before <= 2);
}

#[tokio::test]
async fn a_redriven_map_run_writes_its_results_under_the_arn_it_started_with() {
    let def = json!({"StartAt": "Fan", "States": {"Fan": {"Type": "Map", "ItemsPath": "$.items",
        "ResultWriter": {"Resource": "arn:aws:states:::s3:putObject",
            "Parameters": {"Bucket": "out", "Prefix": "runs"}},
        "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED"},
            "StartAt": "Deploy", "States": {
                "Deploy": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
                           "Parameters": {"item.$": "$"}, "End": true}}},
        "End": true}}});
    let m = machine(&def);
    let store = MemStore::new();
    let written = Arc::new(std::sync::Mutex::new(Vec::new()));
    let deploy = deploy(&[2], true, Arc::default());
    let tasks = {
        let written = written.clone();
        FnTasks(move |req: TaskRequest| -> TaskFuture {
            if req.resource == "arn:aws:states:::s3:putObject" {
                written.lock().unwrap().push(req.input["MapRunArn"].clone());
                return Box::pin(async {
                    Ok(json!({"Bucket": "out", "Key": "runs/manifest.json"}))
                });
            }
            deploy.0(req)
        })
    };
    let first = durable(&m, &def, json!({"items": [1, 2, 3]}), &store, &tasks).await;
    assert!(matches!(&first.status, Status::Failed(f) if f.error == THRESHOLD));
    let stored = store
        .load(&first.info.execution_arn)
        .unwrap()
        .expect("stored");
    let second = redrive(&m, stored.checkpoint, &options(), &tasks, &store, None)
        .await
        .unwrap();
    let Status::Succeeded(output) = &second.status else {
        panic!("{:?}", second.status)
    };
    let started = store
        .events(&first.info.execution_arn)
        .unwrap()
        .into_iter()
        .find_map(|e| match e.kind {
            EventKind::MapRunStarted { map_run_arn } => Some(map_run_arn),
            _ => None,
        })
        .unwrap();
    assert_eq!(output["MapRunArn"], json!(started));
    assert_eq!(*written.lock().unwrap(), [json!(started)]);
}

#[tokio::test]
async fn a_result_writer_shapes_the_results_and_hands_them_to_its_task() {
    let def = |writer: Value| {
        json!({"StartAt": "Fan", "States": {"Fan": {"Type": "Map", "ItemsPath": "$.items",
            "ToleratedFailureCount": 1, "ResultWriter": writer,
            "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED"},
                "StartAt": "Deploy", "States": {
                    "Deploy": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
                               "Parameters": {"item.$": "$"}, "ResultSelector": {"done.$": "$.item"},
                               "End": true}}},
            "End": true}}})
    };
    let input = json!({"items": [1, 2, 3]});
    // WriterConfig alone: the shaped results are the output (a failed child with its details).
    let out = run(
        &machine(&def(json!({"WriterConfig": {"Transformation": "COMPACT"}}))),
        input.clone(),
        &options(),
        &deploy(&[2], false, Arc::default()),
    )
    .await;
    let Status::Succeeded(output) = &out.status else {
        panic!("{:?}", out.status)
    };
    assert_eq!(output[0], json!({"done": 1}));
    assert_eq!(output[1]["Status"], "FAILED");
    assert_eq!(output[1]["Error"], "Deploy.Failed");
    assert_eq!(output[1]["Input"], "2");
    assert_eq!(output[2], json!({"done": 3}));

    // With a Resource: its task gets the results by status and answers where it wrote them.
    let seen = Arc::new(std::sync::Mutex::new(None));
    let deploy = deploy(&[2], false, Arc::default());
    let tasks = {
        let seen = seen.clone();
        FnTasks(move |req: TaskRequest| -> TaskFuture {
            if req.resource == "arn:aws:states:::s3:putObject" {
                *seen.lock().unwrap() = Some(req.input);
                return Box::pin(async {
                    Ok(json!({"Bucket": "out", "Key": "jobs/x/manifest.json"}))
                });
            }
            deploy.0(req)
        })
    };
    let writer = json!({"Resource": "arn:aws:states:::s3:putObject",
        "Parameters": {"Bucket": "out", "Prefix.$": "$.prefix"},
        "WriterConfig": {"OutputType": "JSONL"}});
    let mut input = input;
    input["prefix"] = json!("jobs");
    let out = run(&machine(&def(writer)), input, &options(), &tasks).await;
    let Status::Succeeded(output) = &out.status else {
        panic!("{:?}", out.status)
    };
    let map_run_arn = out
        .history
        .events()
        .iter()
        .find_map(|e| match &e.kind {
            EventKind::MapRunStarted { map_run_arn } => Some(map_run_arn.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        output,
        &json!({"MapRunArn": map_run_arn,
                "ResultWriterDetails": {"Bucket": "out", "Key": "jobs/x/manifest.json"}})
    );
    let request = seen.lock().unwrap().clone().unwrap();
    assert_eq!(request["Bucket"], "out");
    assert_eq!(request["Prefix"], "jobs");
    assert_eq!(request["OutputType"], "JSONL");
    assert_eq!(request["MapRunArn"], json!(map_run_arn));
    // Transformation NONE (the default with a Resource): each child's details, each file's
    // content given as text (here JSON Lines), written by the Map entry by entry.
    let file = |status: &str| -> Vec<Value> {
        request["Results"][status]
            .as_str()
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    };
    let succeeded = file("SUCCEEDED");
    assert_eq!(succeeded.len(), 2);
    assert_eq!(succeeded[1]["Output"], r#"{"done":3}"#);
    assert_eq!(succeeded[1]["Input"], "3");
    assert!(
        succeeded[1]["ExecutionArn"]
            .as_str()
            .unwrap()
            .contains(":execution:regions/Fan:")
    );
    assert_eq!(file("FAILED")[0]["Cause"], "item 2 failed");
}

#[tokio::test]
async fn a_child_execution_sees_itself_in_the_context_object() {
    let def = json!({"StartAt": "Fan", "States": {"Fan": {"Type": "Map", "Label": "Waves",
        "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED"},
            "StartAt": "Who", "States": {
                "Who": {"Type": "Pass", "Next": "Where"},
                "Where": {"Type": "Pass", "Parameters": {
                    "id.$": "$$.Execution.Id", "name.$": "$$.Execution.Name",
                    "input.$": "$$.Execution.Input", "machine.$": "$$.StateMachine.Name",
                    "machineArn.$": "$$.StateMachine.Id"}, "End": true}}},
        "End": true}}});
    let out = run(
        &machine(&def),
        json!([{"region": "us-east-1"}, {"region": "eu-west-1"}]),
        &options(),
        &deploy(&[], false, Arc::default()),
    )
    .await;
    let Status::Succeeded(output) = &out.status else {
        panic!("{:?}", out.status)
    };
    let (first, second) = (&output[0], &output[1]);
    // Each child is an execution of its own, of the Map Run's state machine.
    assert_ne!(first["name"], second["name"]);
    assert_eq!(first["name"].as_str().map(str::len), Some(36));
    assert!(
        first["id"].as_str().unwrap().ends_with(&format!(
            ":execution:regions/Waves:{}",
            first["name"].as_str().unwrap()
        )),
        "{first}"
    );
    assert_eq!(first["input"], json!({"region": "us-east-1"}));
    assert_eq!(second["input"], json!({"region": "eu-west-1"}));
    assert_eq!(first["machine"], "regions/Waves");
    assert!(
        first["machineArn"]
            .as_str()
            .unwrap()
            .ends_with(":stateMachine:regions/Waves")
    );
    assert_ne!(first["id"], json!(out.info.execution_arn));
}

#[tokio::test]
async fn each_child_execution_gives_its_tasks_idempotency_tokens_of_its_own() {
    // Two tasks per child: tokens must differ between children (a CloudFormation createStack
    // with another child's ClientRequestToken would answer that child's stack) and between the
    // states of one child.
    let def = json!({"StartAt": "Fan", "States": {"Fan": {"Type": "Map",
        "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED"},
            "StartAt": "Create", "States": {
                "Create": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "Next": "Poll"},
                "Poll": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "End": true}}},
        "End": true}}});
    let tokens = Arc::new(std::sync::Mutex::new(Vec::new()));
    let tasks = {
        let tokens = tokens.clone();
        FnTasks(move |req: TaskRequest| -> TaskFuture {
            tokens.lock().unwrap().push(req.idempotency_token);
            Box::pin(async { Ok(json!({})) })
        })
    };
    let out = run(&machine(&def), json!([1, 2, 3]), &options(), &tasks).await;
    assert!(
        matches!(out.status, Status::Succeeded(_)),
        "{:?}",
        out.status
    );
    let tokens = tokens.lock().unwrap().clone();
    assert_eq!(tokens.len(), 6);
    let distinct: std::collections::HashSet<&String> = tokens.iter().collect();
    assert_eq!(distinct.len(), 6, "{tokens:?}");
    assert!(
        tokens.iter().all(|t| t.contains(":execution:regions/Fan:")),
        "{tokens:?}"
    );
}

#[tokio::test]
async fn a_durable_child_execution_keeps_its_own_history_in_the_store() {
    let def = definition("DISTRIBUTED");
    let m = machine(&def);
    let store = MemStore::new();
    let text = def.to_string();
    let out = run_durable(
        &m,
        json!({"items": [1, 2, 3]}),
        &options(),
        &deploy(&[2], false, Arc::default()),
        Persistence {
            store: &store,
            definition: &text,
            launch: &Value::Null,
        },
        None,
    )
    .await
    .unwrap();
    assert!(matches!(&out.status, Status::Failed(_)), "{:?}", out.status);
    let map_run = store.map_runs(&out.info.execution_arn).unwrap();
    let map_run = &map_run[0].map_run_arn;
    let children = store.child_executions(map_run).unwrap();
    assert_eq!(children.len(), 3, "{children:?}");
    let failed: Vec<_> = children.iter().filter(|c| c.status == "FAILED").collect();
    assert_eq!(failed.len(), 1, "{children:?}");
    assert!(
        failed[0]
            .stop_date
            .is_some_and(|stop| stop >= failed[0].start_date)
    );
    // The Map failed with it: the children still running were stopped, and say so.
    for child in children.iter().filter(|c| c.status == "ABORTED") {
        let events = store.events(&child.execution_arn).unwrap();
        assert_eq!(
            events.last().map(|e| e.kind.type_name()).as_deref(),
            Some("ExecutionAborted")
        );
    }
    for child in children.iter().filter(|c| c.status != "ABORTED") {
        let events = store.events(&child.execution_arn).unwrap();
        let types: Vec<String> = events.iter().map(|e| e.kind.type_name()).collect();
        let last = if child.status == "FAILED" {
            "ExecutionFailed"
        } else {
            "ExecutionSucceeded"
        };
        let ended_task = if child.status == "FAILED" {
            "TaskFailed"
        } else {
            "TaskSucceeded"
        };
        assert_eq!(types[0], "ExecutionStarted", "{types:?}");
        assert_eq!(
            types[1..4],
            ["TaskStateEntered", "TaskScheduled", "TaskStarted"]
        );
        assert_eq!(types[4], ended_task);
        assert_eq!(types.last().map(String::as_str), Some(last), "{types:?}");
        // Numbered from 1 in the child, each following from the one before.
        for (n, event) in events.iter().enumerate() {
            assert_eq!(event.id, n as u64 + 1);
            assert_eq!(event.previous_event_id, n as u64);
        }
    }
}
