//! The four workloads of `../shared/bench/` run in-process (definition parsed and validated
//! once, outside the measurement), on the virtual clock, history counted but not kept.
//! Throughput is reported in states entered per second: criterion's "elements".

use std::path::PathBuf;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::Value;
use stepstone::asl::{Machine, Options, validate};
use stepstone::engine::{Limits, NoTasks, RunOptions, Status, run};

fn load(name: &str) -> (Machine, Value, u64) {
    let dir = std::env::var_os("STEPSTONE_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/bench"));
    let read = |f: String| -> Value {
        serde_json::from_str(
            &std::fs::read_to_string(dir.join(&f)).unwrap_or_else(|e| panic!("{f}: {e}")),
        )
        .unwrap()
    };
    let machine = validate(&read(format!("{name}.asl.json")), Options::default())
        .machine
        .expect("valid workload");
    let input = read(format!("{name}.input.json"));
    let entries = read("expected.json".into())[name]["state_entries"]
        .as_u64()
        .expect("state_entries");
    (machine, input, entries)
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let mut options = RunOptions::default();
    options.virtual_time = true;
    options.limits = Limits::default().with_max_history_events(None);
    let mut group = c.benchmark_group("workloads");
    for name in ["loop", "map", "parallel", "dataflow"] {
        let (machine, input, entries) = load(name);
        let outcome = runtime.block_on(run(&machine, input.clone(), &options, &NoTasks));
        assert!(
            matches!(outcome.status, Status::Succeeded(_)),
            "{name}: {:?}",
            outcome.status
        );
        assert_eq!(outcome.states_entered, entries, "{name}: states entered");
        group.throughput(Throughput::Elements(entries));
        group.bench_function(name, |b| {
            b.iter(|| runtime.block_on(run(&machine, input.clone(), &options, &NoTasks)))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
