//! Durable mode: the four workloads of `../shared/bench/` with every checkpoint written to a
//! sled store (flushed) and to a redb store (fsynced), against the same runs in memory; and a Map of task completions, each
//! of which is a checkpoint.

use std::path::PathBuf;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::{Value, json};
use stepstone::asl::{Machine, Options, validate};
use stepstone::engine::store::{CheckpointStore, RedbStore, SledStore};
use stepstone::engine::{
    FnTasks, Limits, NoTasks, Persistence, RunOptions, Status, TaskDispatcher, TaskRequest, run,
    run_durable,
};

fn load(name: &str) -> (Machine, Value, u64) {
    let dir = std::env::var_os("STEPSTONE_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/bench"));
    let read = |f: String| -> Value {
        serde_json::from_str(&std::fs::read_to_string(dir.join(&f)).unwrap()).unwrap()
    };
    let machine = validate(&read(format!("{name}.asl.json")), Options::default())
        .machine
        .expect("valid workload");
    let entries = read("expected.json".into())[name]["state_entries"]
        .as_u64()
        .expect("state_entries");
    (machine, read(format!("{name}.input.json")), entries)
}

/// One durable execution on `store`, named uniquely so each iteration creates a new one.
fn run_stored(
    runtime: &tokio::runtime::Runtime,
    store: &dyn CheckpointStore,
    machine: &Machine,
    input: &Value,
    options: &RunOptions,
    tasks: &dyn TaskDispatcher,
    name: String,
) {
    let mut o = options.clone();
    o.name = Some(name);
    let persistence = Persistence {
        store,
        definition: machine.source(),
        launch: &Value::Null,
    };
    let out = runtime
        .block_on(run_durable(
            machine,
            input.clone(),
            &o,
            tasks,
            persistence,
            None,
        ))
        .unwrap();
    assert!(matches!(out.status, Status::Succeeded(_)));
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let sled_dir = tempfile::tempdir().unwrap();
    let redb_dir = tempfile::tempdir().unwrap();
    let stores: [(&str, Box<dyn CheckpointStore>); 2] = [
        ("sled", Box::new(SledStore::open(sled_dir.path()).unwrap())),
        ("redb", Box::new(RedbStore::open(redb_dir.path()).unwrap())),
    ];
    let mut options = RunOptions::default();
    options.virtual_time = true;
    options.limits = Limits::default().with_max_history_events(None);
    let mut group = c.benchmark_group("durable");
    // As `stepstone run` keeps them: every event with its data, in the store (GetExecutionHistory
    // reads them back). The runs in memory keep none.
    let mut recorded = options.clone();
    recorded.record_history = true;
    group.sample_size(20);
    let mut n = 0u64;
    for name in ["loop", "map", "parallel", "dataflow"] {
        let (machine, input, entries) = load(name);
        group.throughput(Throughput::Elements(entries));
        group.bench_function(format!("{name}/memory"), |b| {
            b.iter(|| runtime.block_on(run(&machine, input.clone(), &options, &NoTasks)))
        });
        for (engine, store) in &stores {
            group.bench_function(format!("{name}/{engine}"), |b| {
                b.iter(|| {
                    n += 1;
                    let id = format!("{name}-{n}");
                    run_stored(
                        &runtime, &**store, &machine, &input, &recorded, &NoTasks, id,
                    )
                })
            });
        }
    }
    // Task completions: each one is a checkpoint before the next dispatch (completions that
    // arrive together share one).
    let completions = 10_000u64;
    let machine = validate(
        &json!({"StartAt": "M", "States": {"M": {"Type": "Map", "MaxConcurrency": 40, "ItemProcessor": {"StartAt": "T", "States": {
            "T": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "End": true}}}, "End": true}}}),
        Options::default(),
    )
    .machine
    .unwrap();
    let input = Value::Array((0..completions).map(Value::from).collect());
    let tasks = FnTasks(|req: TaskRequest| async move { Ok(req.input) });
    group.throughput(Throughput::Elements(completions));
    for (engine, store) in &stores {
        group.bench_function(format!("task-completions/{engine}"), |b| {
            b.iter(|| {
                n += 1;
                let id = format!("tasks-{n}");
                run_stored(&runtime, &**store, &machine, &input, &options, &tasks, id)
            })
        });
    }
    group.bench_function("task-completions/memory", |b| {
        b.iter(|| runtime.block_on(run(&machine, input.clone(), &options, &tasks)))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
