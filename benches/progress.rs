//! What progress on standard error costs a run: each workload of `../shared/bench/` run by the
//! `stepstone` binary (release build) with progress on (standard error a pipe, as in CI or a
//! log: one line per notable event) and with `--quiet`, interleaved, the execution's own time
//! taken from `--stats`; in memory (`--ephemeral`) and as `run` runs by default (durable, a
//! new store each run). The target (issue 14): progress within 5% of `--quiet`.
//!
//! `cargo bench --bench progress`; `STEPSTONE_BENCH_RUNS` (default 21) runs of each.

use std::path::PathBuf;
use std::process::{Command, Stdio};

fn main() {
    let runs: usize = std::env::var("STEPSTONE_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(21);
    let dir = std::env::var_os("STEPSTONE_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/bench"));
    let stores =
        std::env::temp_dir().join(format!("stepstone-bench-progress-{}", std::process::id()));
    println!("workload     store     quiet ms   progress ms   progress/quiet   states");
    for (workload, durable) in ["loop", "map", "parallel", "dataflow"]
        .into_iter()
        .flat_map(|w| [(w, false), (w, true)])
    {
        let definition = dir.join(format!("{workload}.asl.json"));
        let input = dir.join(format!("{workload}.input.json"));
        let mut quiet = Vec::with_capacity(runs);
        let mut shown = Vec::with_capacity(runs);
        let mut states = 0;
        for run in 0..runs {
            for progress in [false, true] {
                let mut command = Command::new(env!("CARGO_BIN_EXE_stepstone"));
                command
                    .arg("run")
                    .arg(&definition)
                    .arg("--input-file")
                    .arg(&input)
                    .args(["--virtual-time", "--history-limit", "0"])
                    .args(["--payload-limit", "0", "--stats"])
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped());
                if !progress {
                    command.arg("--quiet");
                }
                if durable {
                    command
                        .arg("--store")
                        .arg(stores.join(format!("{workload}-{run}-{progress}")));
                } else {
                    command.arg("--ephemeral");
                }
                let out = command.output().expect("stepstone runs");
                assert!(out.status.success(), "{workload} failed");
                let stderr = String::from_utf8_lossy(&out.stderr);
                let stats: serde_json::Value =
                    serde_json::from_str(stderr.lines().last().expect("--stats")).unwrap();
                states = stats["states_entered"].as_u64().unwrap();
                let ms = stats["elapsed_ms"].as_f64().unwrap();
                if progress {
                    shown.push(ms);
                } else {
                    quiet.push(ms);
                }
            }
        }
        let (q, p) = (median(&mut quiet), median(&mut shown));
        let store = if durable { "redb" } else { "memory" };
        println!(
            "{workload:<12} {store:<8} {q:>8.2}   {p:>11.2}   {:>14.3}   {states}",
            p / q
        );
        let _ = std::fs::remove_dir_all(&stores);
    }
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}
