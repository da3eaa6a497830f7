//! StartExecution over HTTP against `stepstone serve` (release build): throughput and latency
//! of starting executions of a 20-state machine whose one Task is mocked (MockConfigFile test
//! case), each execution durable in a redb store, from several keep-alive connections.
//!
//! `cargo bench --bench serve`; `STEPSTONE_BENCH_REQUESTS` (default 4000) and
//! `STEPSTONE_BENCH_CLIENTS` (default 4) change the load. Prints requests/s and the latency
//! percentiles, then checks that every execution succeeded. Then the same run against
//! MiniStack (`.venv-aws/bin/ministack`, which `scripts/test` installs, or
//! `STEPSTONE_BENCH_MINISTACK`), which reads the same MockConfigFile.

use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod common;
use common::Client;

fn main() {
    let requests: usize = setting("STEPSTONE_BENCH_REQUESTS", 4000);
    let clients: usize = setting("STEPSTONE_BENCH_CLIENTS", 4);
    let dir = std::env::temp_dir().join(format!("stepstone-bench-serve-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mocks = dir.join("mocks.json");
    std::fs::write(
        &mocks,
        json!({
            "StateMachines": {"twenty": {"TestCases": {"Fast": {"Deploy": "Done"}}}},
            "MockedResponses": {"Done": {"0": {"Return": {"ok": true}}}}
        })
        .to_string(),
    )
    .unwrap();

    let (mut server, address) = common::serve(
        Command::new(env!("CARGO_BIN_EXE_stepstone"))
            .args(["serve", "--port", "0", "--virtual-time", "--store"])
            .arg(dir.join("store"))
            .arg("--mock-config")
            .arg(&mocks),
    );
    measure("stepstone serve (redb)", &address, requests, clients);
    server.kill().unwrap();
    let _ = server.wait();

    // MiniStack, the same run: it reads the same MockConfigFile (SFN_MOCK_CONFIG) and takes the
    // same `#TestCase` suffix. Installed by `scripts/test` into .venv-aws.
    let ministack = std::env::var_os("STEPSTONE_BENCH_MINISTACK")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv-aws/bin/ministack")
        });
    if ministack.exists() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut emulator = Command::new(&ministack)
            .env("GATEWAY_PORT", port.to_string())
            .env("BIND_HOST", "127.0.0.1")
            .env("SFN_MOCK_CONFIG", &mocks)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("MiniStack starts");
        let address = format!("127.0.0.1:{port}");
        let up = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(&address).is_err() {
            assert!(Instant::now() < up, "MiniStack did not start on {address}");
            std::thread::sleep(Duration::from_millis(100));
        }
        measure("MiniStack", &address, requests, clients);
        let _ = emulator.kill();
        let _ = emulator.wait();
    } else {
        println!(
            "MiniStack: not measured ({} is missing: run scripts/test once, or set STEPSTONE_BENCH_MINISTACK)",
            ministack.display()
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Creates the 20-state machine on the service at `address`, starts `requests` executions of
/// it from `clients` connections, prints throughput and latency, then waits for every
/// execution to succeed and prints how long they took to.
fn measure(label: &str, address: &str, requests: usize, clients: usize) {
    // 19 Pass states and a Task.
    let mut states = serde_json::Map::new();
    for i in 0..19 {
        states.insert(
            format!("P{i}"),
            json!({"Type": "Pass", "Parameters": {"i": i, "v.$": "$"}, "OutputPath": "$.v", "Next": if i < 18 { format!("P{}", i + 1) } else { "Deploy".into() }}),
        );
    }
    states.insert(
        "Deploy".into(),
        json!({"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "Parameters": {"FunctionName": "deploy"}, "End": true}),
    );
    let definition = json!({"StartAt": "P0", "States": states}).to_string();
    let mut connection = Client::connect(address);
    let created = connection.call(
        "CreateStateMachine",
        &json!({"name": "twenty", "definition": definition, "roleArn": "arn:aws:iam::123456789012:role/r"}),
    );
    let machine = format!("{}#Fast", created["stateMachineArn"].as_str().unwrap());

    let started = Instant::now();
    let per_client = requests / clients;
    let workers: Vec<_> = (0..clients)
        .map(|c| {
            let (address, machine) = (address.to_owned(), machine.clone());
            std::thread::spawn(move || {
                let mut client = Client::connect(&address);
                let mut latencies = Vec::with_capacity(per_client);
                for i in 0..per_client {
                    let asked = Instant::now();
                    let answer = client.call(
                        "StartExecution",
                        &json!({"stateMachineArn": machine, "name": format!("c{c}-{i}"), "input": "{\"x\": 1}"}),
                    );
                    latencies.push(asked.elapsed());
                    assert!(answer["executionArn"].is_string(), "{answer}");
                }
                latencies
            })
        })
        .collect();
    let mut latencies: Vec<Duration> = workers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    let elapsed = started.elapsed();
    latencies.sort();
    let at = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    println!(
        "{label}: StartExecution x {} from {clients} connections in {:.2} s: {:.0} executions/s; latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        latencies.len(),
        elapsed.as_secs_f64(),
        latencies.len() as f64 / elapsed.as_secs_f64(),
        at(0.5).as_secs_f64() * 1e3,
        at(0.99).as_secs_f64() * 1e3,
        latencies.last().unwrap().as_secs_f64() * 1e3,
    );

    // Every execution ends SUCCEEDED.
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let mut done = 0;
        let mut token = Value::Null;
        loop {
            let mut ask = json!({"stateMachineArn": created["stateMachineArn"], "statusFilter": "SUCCEEDED", "maxResults": 1000});
            if token.is_string() {
                ask["nextToken"] = token.clone();
            }
            let page = connection.call("ListExecutions", &ask);
            done += page["executions"].as_array().map_or(0, Vec::len);
            token = page["nextToken"].clone();
            if !token.is_string() {
                break;
            }
        }
        if done == latencies.len() {
            println!(
                "{label}: all {done} executions SUCCEEDED {:.2} s after the first start",
                started.elapsed().as_secs_f64()
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{label}: only {done} executions succeeded"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
