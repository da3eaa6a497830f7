//! Engines sharing one PostgreSQL store (`stepstone serve --shared`, release build): executions
//! and task completions per second with 1, 2 and 3 engines.
//!
//! Each run makes a new database on the server `STEPSTONE_BENCH_POSTGRES` names (`scripts/test`
//! starts one on `postgres://postgres@127.0.0.1:54329/postgres`), starts the engines, creates a
//! state machine of ten Task states (answered by a MockConfigFile test case: what is measured
//! is the engines and the database, not a task's handler), and starts
//! `STEPSTONE_BENCH_EXECUTIONS` executions (default 600) from `STEPSTONE_BENCH_CLIENTS`
//! clients (default 6), spread over the engines in turn; the time runs from the first start to
//! the moment every execution is seen SUCCEEDED. `STEPSTONE_BENCH_ENGINES=alone,1,3` picks the
//! runs: `alone` is one `serve` without `--shared` (the store owned by one engine, no leases),
//! what one shared engine is compared with. Not a criterion benchmark: one sample is seconds of several processes, and the
//! point is how the rate moves with the number of engines.

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use serde_json::json;

mod common;
use common::Client;

/// Task states per execution.
const TASKS: usize = 10;

fn main() {
    let executions: usize = setting("STEPSTONE_BENCH_EXECUTIONS", 2000);
    let clients: usize = setting("STEPSTONE_BENCH_CLIENTS", 6);
    // (engines, shared)
    let runs: Vec<(usize, bool)> = std::env::var("STEPSTONE_BENCH_ENGINES")
        .unwrap_or_else(|_| "alone,1,2,3".into())
        .split(',')
        .filter_map(|n| match n.trim() {
            "alone" => Some((1, false)),
            n => n.parse().ok().map(|n| (n, true)),
        })
        .collect();
    let server = std::env::var("STEPSTONE_BENCH_POSTGRES").expect(
        "this benchmark needs a PostgreSQL server: set STEPSTONE_BENCH_POSTGRES (postgres://...)",
    );
    let dir = std::env::temp_dir().join(format!("stepstone-bench-shared-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mocks = dir.join("mocks.json");
    let states: serde_json::Map<String, serde_json::Value> = (0..TASKS)
        .map(|i| {
            let mut state = json!({"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
                "Parameters": {"FunctionName": "step", "Payload.$": "$"}, "ResultPath": null});
            match i + 1 < TASKS {
                true => state["Next"] = json!(format!("Step{}", i + 1)),
                false => state["End"] = json!(true),
            }
            (format!("Step{i}"), state)
        })
        .collect();
    let definition = json!({"StartAt": "Step0", "States": states});
    let case: serde_json::Map<String, serde_json::Value> = (0..TASKS)
        .map(|i| (format!("Step{i}"), json!("Done")))
        .collect();
    std::fs::write(
        &mocks,
        json!({
            "StateMachines": {"steps": {"TestCases": {"Fast": case}}},
            "MockedResponses": {"Done": {"0": {"Return": {"ok": true}}}}
        })
        .to_string(),
    )
    .unwrap();
    println!(
        "{executions} executions of {TASKS} tasks from {clients} clients (PostgreSQL {})",
        server
            .rsplit_once('@')
            .map_or(server.as_str(), |(_, host)| host)
    );
    println!("engines  seconds  executions/s  task completions/s");
    for (engines, shared) in runs {
        let label = if shared {
            engines.to_string()
        } else {
            "alone".into()
        };
        let database = fresh_database(&server, &label);
        let mut nodes: Vec<Node> = (0..engines)
            .map(|i| {
                let dir = dir.join(format!("node-{label}-{i}"));
                Node::start(&database, &dir, &mocks, shared)
            })
            .collect();
        let created = Client::connect(&nodes[0].address).call(
            "CreateStateMachine",
            &json!({"name": "steps", "definition": definition.to_string(),
                "roleArn": "arn:aws:iam::123456789012:role/bench"}),
        );
        let machine = format!("{}#Fast", created["stateMachineArn"].as_str().unwrap());
        let started = Instant::now();
        let addresses: Vec<String> = nodes.iter().map(|n| n.address.clone()).collect();
        std::thread::scope(|scope| {
            for client in 0..clients {
                let (addresses, machine) = (&addresses, &machine);
                scope.spawn(move || {
                    let mut connections: Vec<Client> =
                        addresses.iter().map(|a| Client::connect(a)).collect();
                    for n in (client..executions).step_by(clients) {
                        let answer = connections[n % addresses.len()].call(
                            "StartExecution",
                            &json!({"stateMachineArn": machine, "name": format!("e{n}")}),
                        );
                        assert!(answer["executionArn"].is_string(), "{answer}");
                    }
                });
            }
        });
        wait_until_succeeded(&nodes[0].address, &machine, executions);
        let seconds = started.elapsed().as_secs_f64();
        println!(
            "{label:>7}  {seconds:>7.2}  {:>12.0}  {:>18.0}",
            executions as f64 / seconds,
            (executions * TASKS) as f64 / seconds
        );
        for node in &mut nodes {
            let _ = node.child.kill();
            let _ = node.child.wait();
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// One `stepstone serve --shared` engine.
struct Node {
    child: Child,
    address: String,
}

impl Node {
    fn start(database: &str, dir: &std::path::Path, mocks: &std::path::Path, shared: bool) -> Node {
        std::fs::create_dir_all(dir).unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_stepstone"));
        command
            .current_dir(dir)
            .args(["serve", "--port", "0", "--virtual-time", "--store"])
            .arg(database)
            .arg("--mock-config")
            .arg(mocks);
        if shared {
            command.arg("--shared");
        }
        let (child, address) = common::serve(&mut command);
        Node { child, address }
    }
}

/// Polls ListExecutions (SUCCEEDED, in pages) until `expected` executions have succeeded.
fn wait_until_succeeded(address: &str, machine: &str, expected: usize) {
    let machine = machine.split('#').next().unwrap();
    let mut client = Client::connect(address);
    let give_up = Instant::now() + Duration::from_secs(600);
    loop {
        let mut succeeded = 0;
        let mut next: Option<String> = None;
        loop {
            let mut request = json!({"stateMachineArn": machine, "statusFilter": "SUCCEEDED",
                "maxResults": 1000});
            if let Some(token) = &next {
                request["nextToken"] = json!(token);
            }
            let page = client.call("ListExecutions", &request);
            succeeded += page["executions"].as_array().map_or(0, Vec::len);
            match page["nextToken"].as_str() {
                Some(token) => next = Some(token.to_owned()),
                None => break,
            }
        }
        if succeeded >= expected {
            return;
        }
        assert!(
            Instant::now() < give_up,
            "{succeeded} of {expected} succeeded"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A new database on `server` for the run `label` names: its URL.
fn fresh_database(server: &str, label: &str) -> String {
    let name = format!("stepstone_bench_shared_{label}_{}", std::process::id());
    let mut client = postgres::Client::connect(server, postgres::NoTls)
        .unwrap_or_else(|e| panic!("no PostgreSQL at {server}: {e}"));
    // One statement each: CREATE DATABASE cannot run in the transaction a batch would be.
    client
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name}"))
        .unwrap();
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .unwrap();
    let (base, _) = server.rsplit_once('/').expect("a URL ending in /database");
    format!("{base}/{name}")
}

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
