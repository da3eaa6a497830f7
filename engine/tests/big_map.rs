//! A Map over 100,000 items, durable, abandoned halfway as a crash would leave it, then resumed
//! from its store: no iteration whose completion was saved runs again. Only the tasks in flight
//! at the last save (at most the Map's concurrency, 40) are dispatched a second time, with the
//! same idempotency token, and the output holds every item's result, in order.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

use serde_json::{Value, json};
use stepstone_engine::asl::{Options, validate};
use stepstone_engine::store::{CheckpointStore, SledStore};
use stepstone_engine::{Engine, FnTasks, Limits, Status, TaskRequest};

const ITEMS: usize = 100_000;

#[tokio::test(flavor = "current_thread")]
async fn a_killed_100k_map_reruns_no_finished_iteration() {
    let def = json!({"StartAt": "Items", "States": {"Items": {"Type": "Map", "ItemProcessor": {
        "StartAt": "Process", "States": {"Process": {"Type": "Task",
            "Resource": "arn:aws:states:::lambda:invoke", "OutputPath": "$.item", "End": true}}},
        "End": true}}});
    let machine = Arc::new(validate(&def, Options::default()).machine.unwrap());
    let dir = tempfile::tempdir().unwrap();
    // Dispatches per item, over both processes' lifetimes.
    let dispatched: Arc<Vec<AtomicU32>> = Arc::new((0..ITEMS).map(|_| AtomicU32::new(0)).collect());
    let tokens: Arc<std::sync::Mutex<Vec<Option<String>>>> =
        Arc::new(std::sync::Mutex::new(vec![None; ITEMS]));
    let total = Arc::new(AtomicUsize::new(0));
    let tasks = || {
        let (dispatched, tokens, total) = (dispatched.clone(), tokens.clone(), total.clone());
        FnTasks(move |req: TaskRequest| {
            let item = req.input.as_u64().expect("an item") as usize;
            if dispatched[item].fetch_add(1, Ordering::SeqCst) == 1 {
                // Sent again after the crash: with the token of the first time.
                let first = tokens.lock().unwrap()[item].clone();
                assert_eq!(first.as_deref(), Some(req.idempotency_token.as_str()));
            }
            tokens.lock().unwrap()[item] = Some(req.idempotency_token);
            total.fetch_add(1, Ordering::SeqCst);
            async move { Ok(json!({"item": item})) }
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
    let input = Value::Array((0..ITEMS as u64).map(Value::from).collect());

    {
        let first = engine(SledStore::open(dir.path()).unwrap(), tasks());
        let handle = first.start(machine.clone(), input.clone());
        while total.load(Ordering::SeqCst) < ITEMS / 2 {
            tokio::task::yield_now().await;
        }
        // The crash: the execution stops where it is; its store keeps the last save.
        handle.abandon();
        tokio::task::yield_now().await;
    }
    let before = total.load(Ordering::SeqCst);
    assert!(
        (ITEMS / 2..ITEMS).contains(&before),
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
    assert_eq!(output.len(), ITEMS);
    assert!(output.iter().enumerate().all(|(i, v)| v == &json!(i)));

    let twice: Vec<usize> = (0..ITEMS)
        .filter(|i| dispatched[*i].load(Ordering::SeqCst) > 1)
        .collect();
    assert!(
        (0..ITEMS).all(|i| dispatched[i].load(Ordering::SeqCst) >= 1),
        "every item ran"
    );
    assert!(
        (0..ITEMS).all(|i| dispatched[i].load(Ordering::SeqCst) <= 2),
        "no item ran more than twice"
    );
    assert!(
        twice.len() <= 40,
        "only the tasks in flight at the last save run again, not {} of them: {:?}",
        twice.len(),
        &twice[..twice.len().min(50)]
    );
    assert_eq!(total.load(Ordering::SeqCst), ITEMS + twice.len());
}
