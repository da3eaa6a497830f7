//! A Map over 100,000 items, durable, abandoned halfway as a crash would leave it, then resumed
//! from its store: no iteration whose completion was saved runs again. Only the tasks in flight
//! at the last save (at most the Map's concurrency, 40) are dispatched a second time, with the
//! same idempotency token, and the output holds every item's result, in order. The same for a
//! distributed Map whose items come from its ItemReader: they are not read again.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

use serde_json::{Value, json};
use stepstone_engine::asl::{Options, validate};
use stepstone_engine::store::{CheckpointStore, SledStore};
use stepstone_engine::{Engine, FnTasks, Limits, Status, TaskRequest};

#[tokio::test(flavor = "current_thread")]
async fn a_killed_100k_map_reruns_no_finished_iteration() {
    let def = json!({"StartAt": "Items", "States": {"Items": {"Type": "Map", "ItemProcessor": {
        "StartAt": "Process", "States": {"Process": {"Type": "Task",
            "Resource": "arn:aws:states:::lambda:invoke", "OutputPath": "$.item", "End": true}}},
        "End": true}}});
    abandoned_then_resumed(def, 100_000, false, 40).await;
}

#[tokio::test(flavor = "current_thread")]
async fn a_killed_distributed_map_neither_reads_its_items_again_nor_reruns_finished_children() {
    let def = json!({"StartAt": "Items", "States": {"Items": {"Type": "Map",
        "ItemReader": {"Resource": "arn:aws:states:::s3:getObject",
            "ReaderConfig": {"InputType": "JSONL"}, "Parameters": {"Bucket": "b", "Key": "k"}},
        "MaxConcurrency": 100,
        "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED"},
        "StartAt": "Process", "States": {"Process": {"Type": "Task",
            "Resource": "arn:aws:states:::lambda:invoke", "OutputPath": "$.item", "End": true}}},
        "End": true}}});
    abandoned_then_resumed(def, 20_000, true, 100).await;
}

/// Runs `def` over `items` items (as its input, or from its ItemReader when `read`), abandons
/// it halfway, resumes it from the store, and checks that at most `in_flight` items ran twice.
async fn abandoned_then_resumed(def: Value, items: usize, read: bool, in_flight: usize) {
    let machine = Arc::new(validate(&def, Options::default()).machine.unwrap());
    let dir = tempfile::tempdir().unwrap();
    // Dispatches per item, over both processes' lifetimes.
    let dispatched: Arc<Vec<AtomicU32>> = Arc::new((0..items).map(|_| AtomicU32::new(0)).collect());
    let tokens: Arc<std::sync::Mutex<Vec<Option<String>>>> =
        Arc::new(std::sync::Mutex::new(vec![None; items]));
    let total = Arc::new(AtomicUsize::new(0));
    let reads = Arc::new(AtomicUsize::new(0));
    let tasks = || {
        let (dispatched, tokens, total) = (dispatched.clone(), tokens.clone(), total.clone());
        let reads = reads.clone();
        FnTasks(move |req: TaskRequest| {
            if req.resource == "arn:aws:states:::s3:getObject" {
                reads.fetch_add(1, Ordering::SeqCst);
                let read = Value::Array((0..items as u64).map(Value::from).collect());
                return Box::pin(async move { Ok(read) }) as stepstone_engine::TaskFuture;
            }
            let item = req.input.as_u64().expect("an item") as usize;
            if dispatched[item].fetch_add(1, Ordering::SeqCst) == 1 {
                // Sent again after the crash: with the token of the first time.
                let first = tokens.lock().unwrap()[item].clone();
                assert_eq!(first.as_deref(), Some(req.idempotency_token.as_str()));
            }
            tokens.lock().unwrap()[item] = Some(req.idempotency_token);
            total.fetch_add(1, Ordering::SeqCst);
            Box::pin(async move { Ok(json!({"item": item})) })
        })
    };
    let engine = |store: SledStore, tasks| {
        Engine::builder()
            .tasks(tasks)
            .virtual_time(true)
            .limits(
                Limits::default()
                    .with_max_history_events(None)
                    .with_max_payload_bytes(usize::MAX),
            )
            .store(store)
            .build()
    };
    let input = match read {
        true => json!({}),
        false => Value::Array((0..items as u64).map(Value::from).collect()),
    };

    {
        let first = engine(SledStore::open(dir.path()).unwrap(), tasks());
        let handle = first.start(machine.clone(), input.clone());
        while total.load(Ordering::SeqCst) < items / 2 {
            tokio::task::yield_now().await;
        }
        // The crash: the execution stops where it is; its store keeps the last save.
        handle.abandon();
        tokio::task::yield_now().await;
    }
    let before = total.load(Ordering::SeqCst);
    assert!(
        (items / 2..items).contains(&before),
        "abandoned halfway: {before}"
    );

    let store = SledStore::open(dir.path()).unwrap();
    let listed = store.list().unwrap();
    assert_eq!(listed[0].status, "RUNNING");
    let second = engine(store, tasks());
    let outcomes = second.resume_all().await.unwrap();
    let Status::Succeeded(Value::Array(output)) = &outcomes[0].status else {
        panic!("{:?}", outcomes[0].status)
    };
    assert_eq!(output.len(), items);
    assert!(output.iter().enumerate().all(|(i, v)| v == &json!(i)));

    let twice: Vec<usize> = (0..items)
        .filter(|i| dispatched[*i].load(Ordering::SeqCst) > 1)
        .collect();
    assert!(
        (0..items).all(|i| dispatched[i].load(Ordering::SeqCst) >= 1),
        "every item ran"
    );
    assert!(
        (0..items).all(|i| dispatched[i].load(Ordering::SeqCst) <= 2),
        "no item ran more than twice"
    );
    assert_eq!(
        reads.load(Ordering::SeqCst),
        usize::from(read),
        "items read again"
    );
    assert!(
        twice.len() <= in_flight,
        "only the tasks in flight at the last save run again, not {} of them: {:?}",
        twice.len(),
        &twice[..twice.len().min(50)]
    );
    assert_eq!(total.load(Ordering::SeqCst), items + twice.len());
}
