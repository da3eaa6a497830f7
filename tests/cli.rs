//! The `stepstone` binary as a user runs it: exit codes, output shapes, messages.

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::{Value, json};

fn stepstone(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_stepstone"))
        .args(args)
        .output()
        .expect("the binary runs")
}

fn example() -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("examples/multi-region-deploy/deploy.asl.json")
        .display()
        .to_string()
}

fn temp_file(name: &str, text: &str) -> String {
    let dir = std::env::temp_dir().join(format!("stepstone-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// The event types of GetExecutionHistory's response `history`, in order.
fn event_types(history: &Value) -> Vec<&str> {
    history["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn validate_accepts_the_example() {
    let o = stepstone(&["validate", &example()]);
    assert_ok(&o);
    assert!(String::from_utf8_lossy(&o.stderr).contains("OK (0 errors, 6 warnings)"));
}

#[test]
fn validate_reports_one_line_per_problem() {
    let file = temp_file(
        "bad.json",
        r#"{"StartAt": "Deploy", "States": {"Deploy": {"Type": "Pass", "Next": "Nope"}}}"#,
    );
    let o = stepstone(&["validate", &file]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stdout(&o),
        "error /States/Deploy/Next: MISSING_TRANSITION_TARGET: Missing 'Next' target: Nope\n\
         error: MISSING_END_STATE: Workflow has no terminal state\n"
    );
}

#[test]
fn validate_json_is_the_aws_response_shape() {
    let file = temp_file(
        "bad2.json",
        r#"{"StartAt": "A", "States": {"A": {"Type": "Pass", "End": true, "Parameters": {"x": "$.y"}, "Bogus": 1}}}"#,
    );
    let o = stepstone(&["validate", &file, "--json"]);
    assert_eq!(o.status.code(), Some(1));
    let v: Value = serde_json::from_str(&stdout(&o)).expect("JSON on stdout");
    assert_eq!(
        v,
        serde_json::json!({
            "result": "FAIL",
            "diagnostics": [
                {"severity": "WARNING", "code": "NO_DOLLAR", "message": v["diagnostics"][0]["message"], "location": "/States/A/Parameters/x"},
                {"severity": "ERROR", "code": "SCHEMA_VALIDATION_FAILED", "message": "Field 'Bogus' is not supported", "location": "/States/A"}
            ],
            "truncated": false
        })
    );
    let keys: Vec<&String> = v["diagnostics"][1].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["severity", "code", "message", "location"]);
}

#[test]
fn validate_not_json() {
    let file = temp_file("text.json", "not a definition");
    let o = stepstone(&["validate", &file, "--json"]);
    assert_eq!(o.status.code(), Some(1));
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["diagnostics"][0]["code"], "INVALID_JSON_DESCRIPTION");
    assert_eq!(
        v["diagnostics"][0]["location"],
        "[Source: (String)\"not a definition\"; line: 1, column: 4]"
    );
}

#[test]
fn validate_express_refuses_callbacks() {
    let file = temp_file(
        "express.json",
        r#"{"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken", "End": true}}}"#,
    );
    assert_eq!(stepstone(&["validate", &file]).status.code(), Some(0));
    let o = stepstone(&["validate", &file, "--type", "express"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains("/States/T/Resource"), "{}", stdout(&o));
}

#[test]
fn unreadable_file_and_bad_usage_exit_2() {
    let o = stepstone(&["validate", "/nonexistent/definition.json"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("cannot read /nonexistent/definition.json")
    );
    assert_eq!(stepstone(&["validate"]).status.code(), Some(2));
    assert_eq!(stepstone(&["frobnicate"]).status.code(), Some(2));
    assert_eq!(
        stepstone(&["graph", &example(), "--format", "png"])
            .status
            .code(),
        Some(2)
    );
}

#[test]
fn graph_draws_both_formats() {
    let o = stepstone(&["graph", &example()]);
    assert_eq!(o.status.code(), Some(0));
    let mermaid = stdout(&o);
    assert!(mermaid.starts_with("flowchart TD"));
    assert!(
        mermaid.contains("subgraph c0 [\"DeployWaves: item processor\"]")
            && mermaid.contains("subgraph c1 [\"DeployRegions: item processor\"]"),
        "{mermaid}"
    );
    assert!(
        mermaid.contains("Catch CloudFormation.AlreadyExistsException"),
        "{mermaid}"
    );
    let o = stepstone(&["graph", &example(), "--format", "dot"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(stdout(&o).starts_with("digraph stepstone {"));
    // SVG, laid out by Stepstone: every state of the definition, nested ones included, once.
    let o = stepstone(&["graph", &example(), "--format", "svg"]);
    assert_eq!(o.status.code(), Some(0));
    let svg = stdout(&o);
    assert!(
        svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""),
        "{svg}"
    );
    let definition: Value =
        serde_json::from_str(&std::fs::read_to_string(example()).unwrap()).unwrap();
    let mut names = Vec::new();
    state_names(&definition["States"], &mut names);
    assert_eq!(names.len(), 16);
    for name in &names {
        assert_eq!(
            svg.matches(&format!("data-state=\"{name}\"")).count(),
            1,
            "{name} in {svg}"
        );
    }
    assert!(svg.contains("data-state=\"DeployRegions\" data-type=\"Map\""));
    assert!(svg.contains("class=\"edge catch\""));
    let o = stepstone(&["graph", &example(), "--format", "html"]);
    assert_eq!(o.status.code(), Some(0));
    let html = stdout(&o);
    assert!(
        html.starts_with("<!DOCTYPE html>") && html.contains(&svg),
        "the same drawing"
    );
}

/// Every state name of a `States` object, nested Map and Parallel states included.
fn state_names(states: &Value, names: &mut Vec<String>) {
    for (name, state) in states.as_object().unwrap() {
        names.push(name.clone());
        for inner in [&state["ItemProcessor"], &state["Iterator"]] {
            if inner.is_object() {
                state_names(&inner["States"], names);
            }
        }
        for branch in state["Branches"].as_array().into_iter().flatten() {
            state_names(&branch["States"], names);
        }
    }
}

#[test]
fn graph_refuses_an_invalid_definition() {
    let file = temp_file("bad3.json", r#"{"StartAt": "A", "States": {}}"#);
    let o = stepstone(&["graph", &file]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).is_empty());
    assert!(String::from_utf8_lossy(&o.stderr).contains("SCHEMA_VALIDATION_FAILED"));
}

#[test]
fn help_teaches() {
    let o = stepstone(&["--help"]);
    let help = stdout(&o);
    assert!(
        help.contains("validate") && help.contains("graph") && help.contains("Exit status"),
        "{help}"
    );
    let o = stepstone(&["validate", "--help"]);
    assert!(stdout(&o).contains("--json"));
}

fn run_file(name: &str, def: serde_json::Value) -> String {
    temp_file(name, &def.to_string())
}

#[test]
fn run_prints_status_and_output() {
    let file = run_file(
        "add.asl.json",
        serde_json::json!({"StartAt": "Add", "States": {"Add": {"Type": "Pass", "Parameters": {"sum.$": "States.MathAdd($.a, $.b)"}, "End": true}}}),
    );
    let o = stepstone(&[
        "run",
        "--ephemeral",
        &file,
        "--input",
        r#"{"a": 2, "b": 40}"#,
    ]);
    assert_ok(&o);
    assert_eq!(stdout(&o), "SUCCEEDED\n{\n  \"sum\": 42\n}\n");
    // Progress: no line for a state that passes through, and how the execution ended.
    let progress = String::from_utf8_lossy(&o.stderr);
    assert!(!progress.contains("Add"), "{progress}");
    assert!(progress.contains("SUCCEEDED after 1 states"), "{progress}");
}

#[test]
fn run_json_is_one_line_with_the_execution_fields() {
    let file = run_file(
        "fail.asl.json",
        serde_json::json!({"StartAt": "F", "States": {"F": {"Type": "Fail", "Error": "Nope", "Cause": "because"}}}),
    );
    let o = stepstone(&[
        "run",
        "--ephemeral",
        &file,
        "--json",
        "--quiet",
        "--name",
        "ex-1",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    assert_eq!(out.lines().count(), 1);
    let v: Value = serde_json::from_str(&out).unwrap();
    let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "executionArn",
            "name",
            "status",
            "output",
            "error",
            "cause",
            "startDate",
            "stopDate"
        ]
    );
    assert_eq!(v["status"], "FAILED");
    assert_eq!(v["error"], "Nope");
    assert_eq!(v["output"], Value::Null);
    assert_eq!(v["name"], "ex-1");
    assert_eq!(
        v["executionArn"],
        "arn:aws:states:us-east-1:123456789012:execution:fail:ex-1"
    );
    assert!(String::from_utf8_lossy(&o.stderr).is_empty(), "--quiet");
}

#[test]
fn run_tasks_through_commands() {
    let file = run_file(
        "task.asl.json",
        serde_json::json!({"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
            "Parameters": {"FunctionName": "echo", "Payload.$": "$"}, "ResultSelector": {"got.$": "$.Payload", "state.$": "$.state"}, "End": true}}}),
    );
    let handler = "arn:aws:states:::lambda:invoke=python3 -c 'import json,os,sys; print(json.dumps({\"Payload\": json.load(sys.stdin)[\"Payload\"], \"state\": os.environ[\"STEPSTONE_STATE_NAME\"]}))'";
    let o = stepstone(&[
        "run",
        "--ephemeral",
        &file,
        "--input",
        r#"{"x": 1}"#,
        "--task",
        handler,
        "--json",
        "--quiet",
    ]);
    assert_ok(&o);
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(
        v["output"],
        serde_json::json!({"got": {"x": 1}, "state": "T"})
    );
    // Without a route, lambda:invoke goes to AWS: here an endpoint where nothing listens, so
    // the SDK cannot reach it.
    let o = stepstone(&[
        "run",
        "--ephemeral",
        &file,
        "--json",
        "--quiet",
        "--endpoint-url",
        "http://127.0.0.1:9",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["error"], "Lambda.SdkClientException", "{v}");
    // A resource Stepstone cannot call fails naming it.
    let other = run_file(
        "sqs.asl.json",
        serde_json::json!({"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": "arn:aws:states:::sqs:sendMessage",
            "Parameters": {"QueueUrl": "q", "MessageBody": "m"}, "End": true}}}),
    );
    let o = stepstone(&["run", "--ephemeral", &other, "--json", "--quiet"]);
    assert_eq!(o.status.code(), Some(1));
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["error"], "States.Runtime");
    assert!(
        v["cause"]
            .as_str()
            .unwrap()
            .contains("No route for the task resource 'arn:aws:states:::sqs:sendMessage'"),
        "{v}"
    );
}

#[test]
fn run_virtual_time_history_and_stats() {
    let file = run_file(
        "wait.asl.json",
        serde_json::json!({"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 86400, "End": true}}}),
    );
    let o = stepstone(&[
        "run",
        "--ephemeral",
        &file,
        "--virtual-time",
        "--history",
        "--stats",
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(0));
    let out = stdout(&o);
    let mut lines = out.lines();
    let result: Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    let history: Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    let types = event_types(&history);
    assert_eq!(
        types,
        [
            "ExecutionStarted",
            "WaitStateEntered",
            "WaitStateExited",
            "ExecutionSucceeded"
        ]
    );
    let start = result["startDate"].as_str().unwrap();
    let stop = result["stopDate"].as_str().unwrap();
    assert!(
        stop[..10] > start[..10],
        "a day passed on the virtual clock: {start} -> {stop}"
    );
    let stderr = String::from_utf8_lossy(&o.stderr);
    let stats: Value = serde_json::from_str(stderr.lines().last().unwrap()).unwrap();
    assert_eq!(stats["states_entered"], 1);
    assert!(stderr.contains("waiting until"), "{stderr}");
}

#[test]
fn run_refuses_bad_definitions_and_inputs() {
    let bad = run_file(
        "bad.asl.json",
        serde_json::json!({"StartAt": "X", "States": {}}),
    );
    let o = stepstone(&["run", "--ephemeral", &bad]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("SCHEMA_VALIDATION_FAILED"));
    let good = run_file(
        "good.asl.json",
        serde_json::json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}}),
    );
    let o = stepstone(&["run", "--ephemeral", &good, "--input", "{nope"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--input is not JSON"));
    assert_eq!(
        stepstone(&["run", "--ephemeral", &good, "--task", "no-equals-sign"])
            .status
            .code(),
        Some(2)
    );
}

/// A store of its own per test: a store is used by one process at a time.
fn store_dir(name: &str) -> String {
    let dir = std::env::temp_dir().join(format!("stepstone-store-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir.display().to_string()
}

#[test]
fn durable_runs_are_listed_described_and_have_histories() {
    let store = store_dir("list");
    let file = run_file(
        "durable.asl.json",
        serde_json::json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "Result": {"ok": true}, "End": true}}}),
    );
    let o = stepstone(&[
        "run", &file, "--store", &store, "--name", "first", "--quiet",
    ]);
    assert_ok(&o);
    let o = stepstone(&["executions", "--store", &store, "--json"]);
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["executions"][0]["name"], "first");
    assert_eq!(v["executions"][0]["status"], "SUCCEEDED");
    let o = stepstone(&["describe", "first", "--store", &store, "--json"]);
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["output"], serde_json::json!({"ok": true}));
    assert_eq!(v["input"], serde_json::json!({}));
    let o = stepstone(&["history", "first", "--store", &store, "--json"]);
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let types = event_types(&v);
    assert_eq!(
        types,
        [
            "ExecutionStarted",
            "PassStateEntered",
            "PassStateExited",
            "ExecutionSucceeded"
        ]
    );
    let o = stepstone(&["describe", "nope", "--store", &store]);
    assert_eq!(o.status.code(), Some(2));
    let _ = std::fs::remove_dir_all(&store);
}

#[test]
fn a_killed_run_resumes_where_it_stopped() {
    let store = store_dir("kill");
    let work = std::env::temp_dir().join(format!("stepstone-kill-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).unwrap();
    let ledger = work.join("ledger");
    // The handler logs each call with its token; its first call for Deploy waits to be killed.
    let handler = work.join("handler.sh");
    std::fs::write(
        &handler,
        format!(
            "#!/bin/sh\necho \"$STEPSTONE_STATE_NAME $STEPSTONE_IDEMPOTENCY_TOKEN\" >> {ledger}\nif [ \"$STEPSTONE_STATE_NAME\" = Deploy ] && [ ! -e {marker} ]; then touch {marker}; sleep 60; fi\ncat\n",
            ledger = ledger.display(),
            marker = work.join("marker").display()
        ),
    )
    .unwrap();
    let file = run_file(
        "killed.asl.json",
        serde_json::json!({"StartAt": "Prepare", "States": {
            "Prepare": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "ResultPath": "$.prepared", "Next": "Deploy"},
            "Deploy": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "ResultPath": "$.deployed", "End": true}
        }}),
    );
    let route = format!("arn:aws:states:::lambda:invoke=sh {}", handler.display());
    let mut child = Command::new(env!("CARGO_BIN_EXE_stepstone"))
        .args([
            "run",
            &file,
            "--store",
            &store,
            "--name",
            "killed",
            "--task",
            &route,
            "--input",
            r#"{"x": 1}"#,
            "--quiet",
        ])
        .spawn()
        .unwrap();
    // Wait until Deploy is running, then kill the engine as a crash would.
    common::wait_for(20, "Deploy never started", || {
        let ledger = std::fs::read_to_string(&ledger).unwrap_or_default();
        ledger.contains("Deploy ").then_some(())
    });
    child.kill().unwrap();
    child.wait().unwrap();
    let o = stepstone(&["executions", "--store", &store, "--json"]);
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["executions"][0]["status"], "RUNNING");
    let o = stepstone(&["resume", "--store", &store, "--json", "--quiet"]);
    assert_ok(&o);
    let v: Value = serde_json::from_str(stdout(&o).lines().next().unwrap()).unwrap();
    assert_eq!(v["status"], "SUCCEEDED");
    assert_eq!(
        v["output"]["deployed"],
        serde_json::json!({"x": 1, "prepared": {"x": 1}})
    );
    let ledger = std::fs::read_to_string(&ledger).unwrap();
    let lines: Vec<&str> = ledger.lines().collect();
    assert_eq!(
        lines.iter().filter(|l| l.starts_with("Prepare ")).count(),
        1,
        "Prepare completed durably: {ledger}"
    );
    let deploys: Vec<&str> = lines
        .iter()
        .filter(|l| l.starts_with("Deploy "))
        .copied()
        .collect();
    assert_eq!(deploys.len(), 2, "{ledger}");
    assert_eq!(deploys[0], deploys[1], "the same idempotency token");
    let o = stepstone(&["history", "killed", "--store", &store, "--json"]);
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let ids: Vec<u64> = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_u64().unwrap())
        .collect();
    assert_eq!(
        ids,
        (1..=ids.len() as u64).collect::<Vec<_>>(),
        "no gaps, no duplicates"
    );
    let _ = std::fs::remove_dir_all(&store);
    let _ = std::fs::remove_dir_all(&work);
}

/// Asserts the command exited 0, showing its stderr otherwise.
fn assert_ok(o: &Output) {
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn json_out(o: &Output) -> Value {
    assert_ok(o);
    serde_json::from_str(stdout(o).trim()).unwrap_or_else(|e| panic!("{e}: {}", stdout(o)))
}

#[test]
fn a_detached_run_is_reached_through_its_control_socket_stopped_and_redriven() {
    let store = store_dir("detach");
    // A long Wait holds the execution RUNNING in its background engine.
    let file = run_file(
        "held.asl.json",
        serde_json::json!({"StartAt": "Hold", "States": {
            "Hold": {"Type": "Wait", "Seconds": 3600, "Next": "Done"},
            "Done": {"Type": "Pass", "Result": "done", "End": true}}}),
    );
    let o = stepstone(&[
        "run", &file, "--store", &store, "--name", "held", "--detach",
    ]);
    assert_ok(&o);
    let arn = stdout(&o).trim().to_owned();
    assert_eq!(
        arn,
        "arn:aws:states:us-east-1:123456789012:execution:held:held"
    );

    // The socket is the owner's alone.
    #[cfg(unix)]
    {
        use std::os::unix::fs::{FileTypeExt, PermissionsExt};
        let meta = std::fs::metadata(format!("{store}/control.sock")).unwrap();
        assert!(meta.file_type().is_socket());
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    }
    // The engine owns the store: the reading commands go through it.
    let v = json_out(&stepstone(&[
        "describe", "held", "--store", &store, "--json",
    ]));
    assert_eq!(v["status"], "RUNNING");
    assert_eq!(v["redriveStatus"], "NOT_REDRIVABLE");
    let v = json_out(&stepstone(&[
        "history", "held", "--store", &store, "--json",
    ]));
    assert_eq!(v["events"][1]["type"], "WaitStateEntered");
    let v = json_out(&stepstone(&["executions", "--store", &store, "--json"]));
    assert_eq!(v["executions"][0]["executionArn"], arn.as_str());

    // Stop reaches the running engine, which ends: ABORTED, durably, before it answers.
    let v = json_out(&stepstone(&[
        "stop", "held", "--store", &store, "--error", "Operator", "--cause", "by hand", "--json",
    ]));
    assert!(v["stopDate"].is_string(), "{v}");
    common::wait_for(10, "the engine did not end", || {
        (!std::path::Path::new(&format!("{store}/control.sock")).exists()).then_some(())
    });
    let v = json_out(&stepstone(&[
        "describe", "held", "--store", &store, "--json",
    ]));
    assert_eq!(v["status"], "ABORTED");
    assert_eq!(v["error"], "Operator");
    assert_eq!(v["cause"], "by hand");
    assert_eq!(v["redriveStatus"], "REDRIVABLE");
    let log = std::fs::read_to_string(format!("{store}/logs/held.log")).unwrap();
    assert!(log.contains("Hold: waiting until"), "{log}");

    // A name is taken once.
    let o = stepstone(&["run", &file, "--store", &store, "--name", "held", "--quiet"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("ExecutionAlreadyExists"));

    // Redrive: the Wait is entered again, in a new engine; stop it once more.
    let redrive = Command::new(env!("CARGO_BIN_EXE_stepstone"))
        .args(["redrive", "held", "--store", &store, "--quiet", "--json"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let v = common::wait_for(20, "the redrive did not start", || {
        let o = stepstone(&["describe", "held", "--store", &store, "--json"]);
        let v: Value = serde_json::from_str(stdout(&o).trim()).ok()?;
        (o.status.success() && v["status"] == "RUNNING").then_some(v)
    });
    assert_eq!(v["redriveCount"], 1);
    assert!(v["redriveDate"].is_string());
    let v = json_out(&stepstone(&[
        "history", "held", "--store", &store, "--json",
    ]));
    let types = event_types(&v);
    assert_eq!(
        types,
        [
            "ExecutionStarted",
            "WaitStateEntered",
            "ExecutionAborted",
            "ExecutionRedriven",
            "WaitStateEntered"
        ]
    );
    json_out(&stepstone(&["stop", "held", "--store", &store, "--json"]));
    let out = redrive.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "ABORTED exits 1");
    let v: Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(v["status"], "ABORTED");
    let _ = std::fs::remove_dir_all(&store);
}

fn example_path(name: &str) -> String {
    format!(
        "{}/examples/multi-region-deploy/{name}",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// The multi-region example on its mocks: `--mock-config` with each test case.
fn run_example_on_mocks(test_case: &str) -> (Value, String) {
    let o = stepstone(&[
        "run",
        &example_path("deploy.asl.json"),
        "--input-file",
        &example_path("input.json"),
        "--mock-config",
        &example_path("mock-config.json"),
        "--test-case",
        test_case,
        "--virtual-time",
        "--ephemeral",
        "--json",
    ]);
    assert_ok(&o);
    (
        serde_json::from_str(&stdout(&o)).unwrap(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn the_example_runs_on_its_mocks() {
    let (v, progress) = run_example_on_mocks("HappyPath");
    assert_eq!(v["status"], "SUCCEEDED");
    let regions = v["output"]["regions"].as_array().unwrap();
    let names: Vec<&str> = regions
        .iter()
        .map(|r| r["region"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["us-east-1", "eu-west-1", "ap-southeast-2"]);
    assert!(regions.iter().all(|r| r["status"] == "CREATE_COMPLETE"));
    // The primary region settles (its second poll) before any secondary is prepared; each
    // line says where it happens: the wave and the region's iteration, and the region.
    let primary_done = progress
        .find("DeployWaves[0]/DeployRegions[0] us-east-1: PrepareRegion: task lambda:invoke")
        .unwrap();
    let secondary_start = progress
        .find("DeployWaves[1]/DeployRegions[0] eu-west-1: PrepareRegion: task lambda:invoke")
        .unwrap();
    assert!(primary_done < secondary_start, "{progress}");
    let polls_before_secondaries = progress[..secondary_start]
        .matches("us-east-1: DescribeStack: task aws-sdk:cloudformation:describeStacks")
        .count();
    assert_eq!(polls_before_secondaries, 2, "{progress}");
    assert!(
        progress.contains("DeployRegions: map over 2 items"),
        "{progress}"
    );
    // One line per notable event, each timed: no Pass or Choice state has a line.
    assert!(
        !progress.contains("CheckStack") && !progress.contains("PlanWaves"),
        "{progress}"
    );
    assert!(
        progress
            .lines()
            .all(|l| l.len() > 13 && l.as_bytes()[2] == b':' && l.as_bytes()[12] == b' '),
        "{progress}"
    );

    let (v, progress) = run_example_on_mocks("ThrottledPath");
    assert_eq!(v["status"], "SUCCEEDED");
    assert!(
        progress.contains("retry 1 of 3 after CloudFormation.LimitExceededException"),
        "{progress}"
    );

    let (v, _) = run_example_on_mocks("RollbackPath");
    let statuses: Vec<&str> = v["output"]["regions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        ["CREATE_COMPLETE", "ROLLED_BACK", "CREATE_COMPLETE"]
    );
    assert_eq!(
        v["output"]["regions"][1]["reason"],
        "the stack ended in ROLLBACK_COMPLETE"
    );
}

#[test]
fn the_example_input_carries_the_template_file() {
    let input: Value =
        serde_json::from_str(&std::fs::read_to_string(example_path("input.json")).unwrap())
            .unwrap();
    let template: Value =
        serde_json::from_str(&std::fs::read_to_string(example_path("template.json")).unwrap())
            .unwrap();
    let carried: Value = serde_json::from_str(input["templateBody"].as_str().unwrap()).unwrap();
    assert_eq!(
        carried, template,
        "input.json's templateBody is template.json"
    );
}

#[test]
fn a_mock_config_mistake_is_reported_with_its_location() {
    let config = temp_file(
        "mocks.json",
        r#"{"StateMachines": {"deploy": {"TestCases": {"HappyPath": {"CreateStack": "Nope"}}}}, "MockedResponses": {}}"#,
    );
    let o = stepstone(&[
        "run",
        &example_path("deploy.asl.json"),
        "--input-file",
        &example_path("input.json"),
        "--mock-config",
        &config,
        "--test-case",
        "HappyPath",
        "--ephemeral",
    ]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("/StateMachines/deploy/TestCases/HappyPath/CreateStack: no mocked response 'Nope' in /MockedResponses"),
        "{err}"
    );
}

#[test]
fn a_task_waiting_for_its_token_is_completed_from_another_process() {
    let store = store_dir("callback");
    let work = std::env::temp_dir().join(format!("stepstone-callback-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).unwrap();
    let file = run_file(
        "approve.asl.json",
        serde_json::json!({"StartAt": "Approve", "States": {
            "Approve": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
                "Parameters": {"FunctionName": "approver", "Payload": {"token.$": "$$.Task.Token"}},
                "ResultPath": "$.approval", "Next": "Apply"},
            "Apply": {"Type": "Pass", "Result": "applied", "ResultPath": "$.applied", "End": true}}}),
    );
    // The "approver" writes down the token it was given; a person answers later.
    let token_file = |name: &str| work.join(name);
    let route = |name: &str| {
        format!(
            "arn:aws:states:::lambda:invoke.waitForTaskToken=echo \"$STEPSTONE_TASK_TOKEN\" > {}; cat",
            token_file(name).display()
        )
    };
    let read_token = |name: &str| {
        common::wait_for(20, "no token delivered", || {
            let t = std::fs::read_to_string(token_file(name)).ok()?;
            (!t.trim().is_empty()).then(|| t.trim().to_owned())
        })
    };

    // 1. The engine runs (detached): the answer reaches it through the control socket.
    let o = stepstone(&[
        "run",
        &file,
        "--store",
        &store,
        "--name",
        "live",
        "--detach",
        "--task",
        &route("live"),
    ]);
    assert_ok(&o);
    let token = read_token("live");
    let o = stepstone(&["send-task-heartbeat", &token, "--store", &store]);
    assert_ok(&o);
    let o = stepstone(&[
        "send-task-success",
        &token,
        r#"{"by": "ops"}"#,
        "--store",
        &store,
    ]);
    assert_ok(&o);
    let described = common::wait_for(20, "the answered execution did not succeed", || {
        let v: Value = serde_json::from_str(
            stdout(&stepstone(&[
                "describe", "live", "--store", &store, "--json",
            ]))
            .trim(),
        )
        .unwrap_or(Value::Null);
        (v["status"] == "SUCCEEDED").then_some(v)
    });
    assert_eq!(
        described["output"],
        serde_json::json!({"approval": {"by": "ops"}, "applied": "applied"})
    );
    // A finished task's token is refused.
    let o = stepstone(&["send-task-success", &token, "{}", "--store", &store]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("TaskDoesNotExist"));
    while std::path::Path::new(&format!("{store}/control.sock")).exists() {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }

    // 2. No engine runs (it was killed while the task waited): the store takes the answer and
    //    `resume` goes on from it, without delivering the request again.
    let mut child = Command::new(env!("CARGO_BIN_EXE_stepstone"))
        .args([
            "run", &file, "--store", &store, "--name", "killed", "--quiet", "--task",
        ])
        .arg(route("killed"))
        .spawn()
        .unwrap();
    let token = read_token("killed");
    child.kill().unwrap();
    child.wait().unwrap();
    std::fs::remove_file(token_file("killed")).unwrap();
    let o = stepstone(&[
        "send-task-failure",
        &token,
        "--error",
        "Change.Rejected",
        "--cause",
        "not today",
        "--store",
        &store,
    ]);
    assert_ok(&o);
    let v = json_out(&stepstone(&[
        "describe", "killed", "--store", &store, "--json",
    ]));
    assert_eq!(v["status"], "FAILED");
    assert_eq!(v["error"], "Change.Rejected");
    assert!(!token_file("killed").exists(), "not delivered again");
    let _ = std::fs::remove_dir_all(&store);
    let _ = std::fs::remove_dir_all(&work);
}

#[test]
fn test_state_answers_for_one_state() {
    let task = run_file(
        "test-state-task.json",
        json!({"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
            "Parameters": {"FunctionName": "deploy", "Payload.$": "$"},
            "ResultSelector": {"stack.$": "$.Payload.stack"}, "ResultPath": "$.deployed",
            "Retry": [{"ErrorEquals": ["Lambda.TooManyRequestsException"], "IntervalSeconds": 2}],
            "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Rollback"}],
            "Next": "Verify"}),
    );
    // Human output: one field per line, the inspection below.
    let o = stepstone(&[
        "test-state",
        &task,
        "--input",
        r#"{"region": "eu-west-1"}"#,
        "--mock-result",
        r#"{"Payload": {"stack": "app"}}"#,
        "--inspection-level",
        "DEBUG",
    ]);
    assert_ok(&o);
    let text = stdout(&o);
    assert!(
        text.starts_with("status: SUCCEEDED\nnextState: Verify\n"),
        "{text}"
    );
    assert!(
        text.contains(r#"output: {"region":"eu-west-1","deployed":{"stack":"app"}}"#),
        "{text}"
    );
    assert!(
        text.contains(
            r#"  afterParameters: {"FunctionName":"deploy","Payload":{"region":"eu-west-1"}}"#
        ),
        "{text}"
    );

    // --json: TestState's response shape; a retried error is RETRIABLE (exit 0).
    let o = stepstone(&[
        "test-state",
        &task,
        "--json",
        "--inspection-level",
        "trace",
        "--mock-error",
        "Lambda.TooManyRequestsException",
        "--mock-cause",
        "slow down",
        "--retrier-retry-count",
        "2",
    ]);
    assert_eq!(
        json_out(&o),
        json!({"status": "RETRIABLE", "error": "Lambda.TooManyRequestsException", "cause": "slow down",
            "inspectionData": {"input": {}, "afterInputPath": {}, "afterParameters": {"FunctionName": "deploy", "Payload": {}},
                "errorDetails": {"retryBackoffIntervalSeconds": 8, "retryIndex": 0}}})
    );
    // Spent retrier: the catcher takes it.
    let o = stepstone(&[
        "test-state",
        &task,
        "--json",
        "--mock-error",
        "Lambda.TooManyRequestsException",
        "--retrier-retry-count",
        "3",
    ]);
    let r = json_out(&o);
    assert_eq!(
        (r["status"].as_str(), r["nextState"].as_str()),
        (Some("CAUGHT_ERROR"), Some("Rollback"))
    );

    // A whole machine: --state picks the state; an error nothing handles exits 1.
    let machine = run_file(
        "test-state-machine.json",
        json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "B"},
            "B": {"Type": "Fail", "Error": "Nope", "Cause": "stopped here"}}}),
    );
    let o = stepstone(&["test-state", &machine, "--state", "B", "--json"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        serde_json::from_str::<Value>(stdout(&o).trim()).unwrap(),
        json!({"status": "FAILED", "error": "Nope", "cause": "stopped here"})
    );
}

#[test]
fn test_state_refuses_what_it_cannot_test() {
    let machine = run_file(
        "test-state-refusals.json",
        json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "End": true}}}),
    );
    for (args, message) in [
        (
            vec!["--state", "Z"],
            "no state 'Z' in the definition (its top-level states: A)",
        ),
        (vec!["--mock-result", "{"], "--mock-result is not JSON"),
        (
            vec!["--mock-result", "1"],
            "a mock replaces the work of a Task, Map or Parallel state; 'A' is a Pass state",
        ),
        (
            vec!["--variables", "[1]"],
            "--variables must be a JSON object",
        ),
        (
            vec!["--map-iteration-failure-count", "1"],
            "mapIterationFailureCount applies to Map states",
        ),
    ] {
        let mut all = vec!["test-state", machine.as_str()];
        all.extend(args);
        let o = stepstone(&all);
        assert_eq!(o.status.code(), Some(2), "{all:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(message), "{all:?}: {err}");
    }
    let invalid = run_file(
        "test-state-invalid.json",
        json!({"Type": "Pass", "Resource": 1}),
    );
    let o = stepstone(&["test-state", &invalid]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("/States/StateName"));
}

#[test]
fn test_state_reaches_a_state_inside_the_example_maps() {
    // CreateStack runs inside a Map over regions inside a Map over waves: tested alone, an
    // existing stack is caught and the region goes on to UpdateStack.
    let input = json!({"region": "eu-west-1", "stackName": "app", "templateBody": "{}",
        "prepared": {"parameters": [{"ParameterKey": "Env", "ParameterValue": "prod"}]}});
    let o = stepstone(&[
        "test-state",
        &example(),
        "--state",
        "CreateStack",
        "--input",
        &input.to_string(),
        "--mock-error",
        "CloudFormation.AlreadyExistsException",
        "--mock-cause",
        "Stack [app] already exists",
        "--inspection-level",
        "DEBUG",
        "--json",
    ]);
    let r = json_out(&o);
    assert_eq!(r["status"], "CAUGHT_ERROR");
    assert_eq!(r["nextState"], "UpdateStack");
    assert_eq!(r["output"], input, "the catcher's ResultPath is null");
    assert_eq!(
        r["inspectionData"]["afterParameters"],
        json!({"StackName": "app", "TemplateBody": "{}",
            "Parameters": [{"ParameterKey": "Env", "ParameterValue": "prod"}],
            "Tags": [{"Key": "deployed-by", "Value": "stepstone"}]})
    );
    // The polling Choice: a stack still in progress goes back to the wait.
    let o = stepstone(&[
        "test-state",
        &example(),
        "--state",
        "CheckStack",
        "--json",
        "--input",
        r#"{"stack": {"status": "UPDATE_IN_PROGRESS"}}"#,
    ]);
    assert_eq!(json_out(&o)["nextState"], "WaitForStack");
}

/// A store that cannot grow (the disk is full; here the process may not write larger files)
/// ends the run with a clear error, on both engines, instead of hanging in the database's
/// flush; once it can grow again, `resume` finishes the execution from its last checkpoint.
#[test]
fn a_store_that_cannot_grow_ends_the_run_with_an_error_then_resumes() {
    let def = temp_file(
        "fulldisk.asl.json",
        &json!({"StartAt": "M", "States": {"M": {"Type": "Map", "ItemProcessor": {"StartAt": "P",
            "States": {"P": {"Type": "Pass", "Parameters": {"item.$": "$", "a.$": "States.UUID()", "b.$": "States.UUID()", "c.$": "States.UUID()"}, "End": true}}}, "End": true}}})
        .to_string(),
    );
    // How much each engine writes before it needs to grow its files past the limit (redb
    // grows its file by whole regions).
    for (engine, items, blocks) in [("sled", 6000, 4096), ("redb", 20000, 16384)] {
        let input = temp_file(
            &format!("full-disk-{engine}.json"),
            &json!((0..items).collect::<Vec<u32>>()).to_string(),
        );
        let store = std::env::temp_dir().join(format!(
            "stepstone-cli-full-{engine}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&store);
        // `ulimit -f` (512-byte blocks in sh): writes past the limit fail with EFBIG, as past a
        // full disk's end with ENOSPC; SIGXFSZ is ignored so that the write returns the error.
        let script = format!(
            "trap '' XFSZ; ulimit -f {blocks}; exec '{}' run '{def}' --input-file '{input}' --name full --history-limit 0 --payload-limit 0 --quiet --store '{}' --store-engine {engine}",
            env!("CARGO_BIN_EXE_stepstone"),
            store.display()
        );
        let mut child = Command::new("sh")
            .args(["-c", &script])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while child.try_wait().unwrap().is_none() {
            assert!(
                std::time::Instant::now() < deadline,
                "{engine}: the run hangs on a store that cannot grow"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{engine}: {stderr}");
        assert!(
            stderr.contains("the store cannot grow"),
            "{engine}: {stderr}"
        );
        let store_arg = store.display().to_string();
        let resumed = stepstone(&["resume", "--store", &store_arg, "--json", "--quiet"]);
        assert_ok(&resumed);
        let result: Value = serde_json::from_slice(&resumed.stdout).unwrap();
        assert_eq!(result["status"], "SUCCEEDED", "{engine}");
        assert_eq!(
            result["output"].as_array().map(Vec::len),
            Some(items as usize)
        );
        let _ = std::fs::remove_dir_all(&store);
    }
}

/// A reader that goes away early (`stepstone history ... | head -1`) ends the command quietly:
/// no panic, exit 0; and the history is read a page at a time (a Map of 3,000 items records
/// 21,006 events, more than the pipe holds).
#[test]
fn a_reader_that_goes_away_ends_the_output_quietly() {
    use std::io::Read;
    let items = temp_file(
        "pipe-items.json",
        &json!((0..3000).collect::<Vec<u32>>()).to_string(),
    );
    let def = temp_file(
        "pipe.asl.json",
        r#"{"StartAt": "M", "States": {"M": {"Type": "Map", "ItemProcessor": {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}}, "End": true}}}"#,
    );
    let store = std::env::temp_dir().join(format!("stepstone-cli-pipe-{}", std::process::id()));
    let store_arg = store.display().to_string();
    let _ = std::fs::remove_dir_all(&store);
    let o = stepstone(&[
        "run",
        &def,
        "--input-file",
        &items,
        "--name",
        "piped",
        "--history-limit",
        "0",
        "--quiet",
        "--store",
        &store_arg,
    ]);
    assert_ok(&o);
    for json in [false, true] {
        let mut args = vec!["history", "piped", "--store", &store_arg];
        if json {
            args.push("--json");
        }
        let mut child = Command::new(env!("CARGO_BIN_EXE_stepstone"))
            .args(&args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut start = [0u8; 100];
        child.stdout.take().unwrap().read_exact(&mut start).unwrap();
        let first = String::from_utf8_lossy(&start);
        // The reader is dropped here, with most of the history unread.
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{:?}: {stderr}", out.status);
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert!(
            first.contains("ExecutionStarted"),
            "the output began as usual: {first:.200}"
        );
    }
    let _ = std::fs::remove_dir_all(&store);
}

/// The file naming a store's engine is written whole or not at all; one left empty (by an
/// older version killed while writing it, as the crash suite once did) reads as no marker,
/// and the store opens by its files.
#[test]
fn an_empty_engine_marker_does_not_make_a_store_unreadable() {
    let store = std::env::temp_dir().join(format!("stepstone-cli-marker-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&store);
    let store_arg = store.display().to_string();
    let def = temp_file(
        "marker.asl.json",
        &json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}}).to_string(),
    );
    let o = stepstone(&[
        "run", &def, "--name", "kept", "--quiet", "--store", &store_arg,
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(store.join("STORE")).unwrap(),
        "redb\n"
    );
    assert!(!store.join("STORE.partial").exists());
    std::fs::write(store.join("STORE"), "").unwrap();
    let o = stepstone(&["executions", "--store", &store_arg]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(stdout(&o).contains("kept"), "{}", stdout(&o));
    // Opened again, the store gets its marker back.
    assert_eq!(
        std::fs::read_to_string(store.join("STORE")).unwrap(),
        "redb\n"
    );
}

/// An activity routed to a command: the command is its worker (what it prints is the result),
/// and the history is an activity's, as AWS records it.
#[test]
fn an_activity_routed_to_a_command_is_worked_by_it() {
    let arn = "arn:aws:states:us-east-1:123456789012:activity:review";
    let file = run_file(
        "activity.asl.json",
        json!({"StartAt": "Review", "States": {"Review": {"Type": "Task", "Resource": arn,
            "ResultPath": "$.review", "End": true}}}),
    );
    let handler = format!(
        "{arn}=python3 -c 'import json,sys; print(json.dumps({{\"seen\": json.load(sys.stdin)}}))'"
    );
    let o = stepstone(&[
        "run",
        "--ephemeral",
        &file,
        "--input",
        r#"{"pr": 7}"#,
        "--task",
        &handler,
        "--json",
        "--history",
        "--quiet",
    ]);
    assert_ok(&o);
    let text = stdout(&o);
    let mut lines = text.lines();
    let result: Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    assert_eq!(
        result["output"],
        json!({"pr": 7, "review": {"seen": {"pr": 7}}})
    );
    let history: Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    assert_eq!(
        event_types(&history),
        [
            "ExecutionStarted",
            "TaskStateEntered",
            "ActivityScheduled",
            "ActivityStarted",
            "ActivitySucceeded",
            "TaskStateExited",
            "ExecutionSucceeded"
        ]
    );
    assert_eq!(
        history["events"][2]["activityScheduledEventDetails"]["resource"],
        arn
    );
}

/// A `run` on a store that another process owns (here a detached run) hands its execution to
/// that process and follows it there: the same output, history and exit code as a run of its
/// own, its commands run in the directory it was called from, and the owner does not end
/// before the executions it took.
#[test]
fn a_run_on_a_store_in_use_runs_in_the_engine_that_owns_it() {
    let store = store_dir("guests");
    let held = run_file(
        "guest-held.asl.json",
        json!({"StartAt": "Hold", "States": {"Hold": {"Type": "Wait", "Seconds": 3600, "End": true}}}),
    );
    assert_ok(&stepstone(&[
        "run", &held, "--store", &store, "--name", "held", "--detach",
    ]));
    // A command named relative to where `run` is called, in a directory of its own.
    let caller =
        std::env::temp_dir().join(format!("stepstone-guest-caller-{}", std::process::id()));
    std::fs::create_dir_all(&caller).unwrap();
    std::fs::write(
        caller.join("answer.sh"),
        "#!/bin/sh\ncat > /dev/null\nprintf '{\"ran in\": \"%s\"}' \"$(basename \"$PWD\")\"\n",
    )
    .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            caller.join("answer.sh"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
    }
    let guest = run_file(
        "guest.asl.json",
        json!({"StartAt": "Call", "States": {
            "Call": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
                "Parameters": {"FunctionName": "f"}, "ResultPath": "$.call", "Next": "Check"},
            "Check": {"Type": "Choice", "Choices": [
                {"Variable": "$.fail", "IsPresent": true, "Next": "Boom"}], "Default": "Done"},
            "Boom": {"Type": "Fail", "Error": "Boom", "Cause": "asked to"},
            "Done": {"Type": "Pass", "OutputPath": "$.call", "End": true}}}),
    );
    let run_from_caller = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_stepstone"))
            .current_dir(&caller)
            .args(["run", &guest, "--store", &store])
            .args(["--task", "arn:aws:states:::lambda:invoke=./answer.sh"])
            .args(extra)
            .output()
            .unwrap()
    };
    let o = run_from_caller(&["--name", "first", "--json", "--history"]);
    assert_ok(&o);
    let out = stdout(&o);
    let mut lines = out.lines();
    let result: Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    assert_eq!(result["status"], "SUCCEEDED");
    assert_eq!(
        result["executionArn"],
        "arn:aws:states:us-east-1:123456789012:execution:guest:first"
    );
    let caller_name = caller.file_name().unwrap().to_str().unwrap();
    assert_eq!(result["output"], json!({"ran in": caller_name}));
    let history: Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    assert_eq!(
        event_types(&history),
        [
            "ExecutionStarted",
            "TaskStateEntered",
            "TaskScheduled",
            "TaskStarted",
            "TaskSucceeded",
            "TaskStateExited",
            "ChoiceStateEntered",
            "ChoiceStateExited",
            "PassStateEntered",
            "PassStateExited",
            "ExecutionSucceeded"
        ]
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("is in use by process"), "{err}");
    assert!(err.contains("task lambda:invoke"), "{err}");
    assert!(err.contains("SUCCEEDED after 3 states"), "{err}");

    // A failure exits 1 with its error, as a run of its own does.
    let o = run_from_caller(&[
        "--name",
        "second",
        "--input",
        r#"{"fail": true}"#,
        "--json",
        "--quiet",
    ]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let result: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(
        (result["error"].as_str(), result["cause"].as_str()),
        (Some("Boom"), Some("asked to"))
    );
    assert!(
        o.stderr.is_empty(),
        "--quiet: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    // A name is taken once, in the owner too.
    let o = run_from_caller(&["--name", "first", "--quiet"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("ExecutionAlreadyExists"));

    // The owner's own execution is stopped while a guest still waits: the owner ends only
    // after it.
    let slow = run_file(
        "guest-slow.asl.json",
        json!({"StartAt": "Nap", "States": {"Nap": {"Type": "Wait", "Seconds": 2, "End": true}}}),
    );
    let follower = Command::new(env!("CARGO_BIN_EXE_stepstone"))
        .args([
            "run", &slow, "--store", &store, "--name", "slow", "--json", "--quiet",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    common::wait_for(10, "the guest did not start", || {
        let o = stepstone(&["describe", "slow", "--store", &store, "--json"]);
        o.status.success().then_some(())
    });
    json_out(&stepstone(&["stop", "held", "--store", &store, "--json"]));
    let socket = std::path::PathBuf::from(format!("{store}/control.sock"));
    assert!(socket.exists(), "the owner waits for its guest");
    let out = follower.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result: Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(result["status"], "SUCCEEDED");
    common::wait_for(10, "the owner did not end", || {
        (!socket.exists()).then_some(())
    });
    let v = json_out(&stepstone(&["executions", "--store", &store, "--json"]));
    let mut listed: Vec<(&str, &str)> = v["executions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["name"].as_str().unwrap(), e["status"].as_str().unwrap()))
        .collect();
    listed.sort();
    assert_eq!(
        listed,
        [
            ("first", "SUCCEEDED"),
            ("held", "ABORTED"),
            ("second", "FAILED"),
            ("slow", "SUCCEEDED")
        ]
    );
    let _ = std::fs::remove_dir_all(&store);
    let _ = std::fs::remove_dir_all(&caller);
}

/// On a terminal (here a pseudo-terminal from `script`, util-linux's, in Debian's essential
/// `bsdutils`), a status line is redrawn in place while tasks run: how long, how many states,
/// which tasks run and where; the lines that matter scroll above it, and the last line ends it.
#[test]
fn on_a_terminal_a_status_line_shows_the_tasks_running() {
    let file = run_file(
        "live.asl.json",
        json!({"StartAt": "Regions", "States": {"Regions": {"Type": "Map", "ItemsPath": "$.regions",
            "ItemProcessor": {"StartAt": "Deploy", "States": {
                "Deploy": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "End": true}}},
            "End": true}}}),
    );
    let command = format!(
        "{} run {file} --ephemeral --input '{{\"regions\": [1, 2]}}' --task 'arn:aws:states:::lambda:invoke=sleep 1; echo {{}}'",
        env!("CARGO_BIN_EXE_stepstone")
    );
    let o = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env("TERM", "xterm")
        .output()
        .expect("script (util-linux) runs");
    assert_ok(&o);
    let screen = stdout(&o);
    // Redrawn in place: carriage return, erase line, the status.
    assert!(
        screen.contains("\r\x1b[2K")
            && screen.contains("2 running: Regions[0]: Deploy, Regions[1]: Deploy"),
        "{screen:?}"
    );
    assert!(screen.contains("Regions: map over 2 items"), "{screen:?}");
    assert!(screen.contains("SUCCEEDED after 3 states"), "{screen:?}");
    // A task dispatched is in the status line, not a line of its own.
    assert!(
        !screen.contains("task lambda:invoke (attempt 1)"),
        "{screen:?}"
    );
}

#[test]
fn a_distributed_map_reads_a_local_s3_inventory() {
    // InputType MANIFEST on file://: the manifest's data files are paths from its directory.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, b"\"src\",\"a.txt\"\n\"src\",\"b.txt\"\n").unwrap();
    std::fs::write(dir.path().join("data/1.csv.gz"), gz.finish().unwrap()).unwrap();
    let manifest = json!({"destinationBucket": "arn:aws:s3:::inventory", "fileFormat": "CSV",
        "fileSchema": "Bucket, Key", "files": [{"key": "data/1.csv.gz", "size": 1}]});
    let manifest_path = dir.path().join("manifest.json");
    std::fs::write(&manifest_path, manifest.to_string()).unwrap();
    let def = json!({"StartAt": "Each", "States": {"Each": {"Type": "Map",
        "ItemReader": {"Resource": format!("file://{}", manifest_path.display()),
            "ReaderConfig": {"InputType": "MANIFEST"}},
        "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
            "StartAt": "Copy", "States": {"Copy": {"Type": "Pass", "End": true}}},
        "End": true}}});
    let file = temp_file("inventory.asl.json", &def.to_string());
    let o = stepstone(&["run", &file, "--ephemeral", "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        out["output"],
        json!([{"Bucket": "src", "Key": "a.txt"}, {"Bucket": "src", "Key": "b.txt"}])
    );
    // A data file outside the manifest's directory is refused, not read.
    for key in ["../outside.csv.gz", "/etc/hostname"] {
        let manifest = json!({"destinationBucket": "inventory", "fileFormat": "CSV",
            "fileSchema": "Key", "files": [{"key": key}]});
        std::fs::write(&manifest_path, manifest.to_string()).unwrap();
        let o = stepstone(&["run", &file, "--ephemeral", "--json"]);
        let out: Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(out["error"], "States.ItemReaderFailed", "{out}");
        assert!(
            out["cause"]
                .as_str()
                .unwrap()
                .contains("must be a path inside"),
            "{out}"
        );
    }
}

#[test]
fn a_distributed_map_reads_its_items_from_a_local_file() {
    // file://PATH: the Stepstone extension for dry runs without S3, read as s3:getObject
    // reads an object (here CSV with its header in the first row, MaxItems from the input).
    let csv = temp_file(
        "regions.csv",
        "region,wave\nus-east-1,1\neu-west-1,2\n\"ap-south-1\",2\nsa-east-1,3\n",
    );
    let def = json!({"StartAt": "Each", "States": {"Each": {"Type": "Map",
        "ItemReader": {"Resource": format!("file://{csv}"),
            "ReaderConfig": {"InputType": "CSV", "CSVHeaderLocation": "FIRST_ROW", "MaxItemsPath": "$.limit"}},
        "ItemSelector": {"region.$": "$$.Map.Item.Value.region", "env.$": "$.env"},
        "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
            "StartAt": "Deploy", "States": {"Deploy": {"Type": "Pass", "End": true}}},
        "End": true}}});
    let file = temp_file("reader.asl.json", &def.to_string());
    let o = stepstone(&[
        "run",
        &file,
        "--ephemeral",
        "--json",
        "--history",
        "--input",
        r#"{"env": "prod", "limit": 3}"#,
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let lines: Vec<Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        lines[0]["output"],
        json!([
            {"region": "us-east-1", "env": "prod"},
            {"region": "eu-west-1", "env": "prod"},
            {"region": "ap-south-1", "env": "prod"}
        ])
    );
    let types = event_types(&lines[1]);
    assert_eq!(
        &types[1..5],
        [
            "MapStateEntered",
            "MapStateStarted",
            "MapRunStarted",
            "MapRunSucceeded"
        ]
    );
    // `validate` says the resource is Stepstone's own.
    let o = stepstone(&["validate", &file]);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("Stepstone extension")
            || String::from_utf8_lossy(&o.stderr).contains("Stepstone extension"),
        "{o:?}"
    );

    // A file that is not there fails the Map with States.ItemReaderFailed, naming it.
    let missing = def.to_string().replace(&csv, "/nonexistent/regions.csv");
    let file = temp_file("missing.asl.json", &missing);
    let o = stepstone(&[
        "run",
        &file,
        "--ephemeral",
        "--json",
        "--input",
        r#"{"limit": 3}"#,
    ]);
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["status"], "FAILED");
    assert_eq!(r["error"], "States.ItemReaderFailed");
    assert!(
        r["cause"]
            .as_str()
            .unwrap()
            .contains("/nonexistent/regions.csv"),
        "{r}"
    );
}

#[test]
fn a_result_writer_on_a_local_directory_writes_what_s3_would_hold() {
    let dir = tempfile::tempdir().unwrap();
    let def = json!({"StartAt": "Each", "States": {"Each": {"Type": "Map",
        "ResultWriter": {"Resource": format!("file://{}", dir.path().display()),
            "Parameters": {"Bucket": "results", "Prefix": "nightly"},
            "WriterConfig": {"Transformation": "FLATTEN", "OutputType": "JSONL"}},
        "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED"},
            "StartAt": "Pair", "States": {"Pair": {"Type": "Pass",
                "Parameters": {"pair.$": "States.Array($, $)"}, "OutputPath": "$.pair", "End": true}}},
        "End": true}}});
    let file = temp_file("writer.asl.json", &def.to_string());
    let store = dir.path().join("store").display().to_string();
    let o = stepstone(&[
        "run", &file, "--store", &store, "--name", "written", "--quiet", "--json", "--input",
        "[1, 2]",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    let key = r["output"]["ResultWriterDetails"]["Key"].as_str().unwrap();
    assert!(
        key.starts_with("nightly/") && key.ends_with("/manifest.json"),
        "{r}"
    );
    let run_dir = dir
        .path()
        .join("results")
        .join(key)
        .parent()
        .unwrap()
        .to_owned();
    // FLATTEN: each child's array output gives its elements, one JSON line each.
    let lines = std::fs::read_to_string(run_dir.join("SUCCEEDED_0.jsonl")).unwrap();
    assert_eq!(lines, "1\n1\n2\n2\n");
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("manifest.json")).unwrap())
            .unwrap();
    assert_eq!(manifest["DestinationBucket"], "results");
    assert_eq!(manifest["ResultFiles"]["SUCCEEDED"][0]["Size"], 8);
    // DescribeMapRun counts the results the writer wrote.
    let o = stepstone(&["map-runs", "written", "--store", &store, "--json"]);
    let listed: Value = serde_json::from_slice(&o.stdout).unwrap();
    let arn = listed["mapRuns"][0]["mapRunArn"]
        .as_str()
        .unwrap()
        .to_owned();
    let o = stepstone(&["describe", &arn, "--store", &store, "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let described: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(described["status"], "SUCCEEDED", "{described}");
    assert_eq!(described["itemCounts"]["resultsWritten"], 2, "{described}");
    assert_eq!(
        described["executionCounts"]["resultsWritten"], 2,
        "{described}"
    );
}

#[test]
fn map_runs_are_listed_and_described_from_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store").display().to_string();
    let def = json!({"StartAt": "Each", "States": {"Each": {"Type": "Map", "Label": "Fan",
        "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED"},
            "StartAt": "Take", "States": {"Take": {"Type": "Pass", "End": true}}},
        "End": true}}});
    let file = temp_file("mapruns.asl.json", &def.to_string());
    let o = stepstone(&[
        "run",
        &file,
        "--store",
        &store,
        "--name",
        "fan-out",
        "--quiet",
        "--input",
        "[1, 2, 3]",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = stepstone(&["map-runs", "fan-out", "--store", &store, "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let listed: Value = serde_json::from_slice(&o.stdout).unwrap();
    let runs = listed["mapRuns"].as_array().unwrap();
    assert_eq!(runs.len(), 1, "{listed}");
    let arn = runs[0]["mapRunArn"].as_str().unwrap();
    assert!(arn.contains(":mapRun:mapruns/Fan:"), "{arn}");
    let o = stepstone(&["describe", arn, "--store", &store, "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let described: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(described["status"], "SUCCEEDED");
    assert_eq!(described["itemCounts"]["total"], 3);
    assert_eq!(described["itemCounts"]["succeeded"], 3);
    assert!(described["stopDate"].is_string());

    // Its children are executions of their own, with their histories.
    let o = stepstone(&["executions", "--map-run", arn, "--store", &store, "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let children: Value = serde_json::from_slice(&o.stdout).unwrap();
    let children = children["executions"].as_array().unwrap();
    assert_eq!(children.len(), 3, "{children:?}");
    assert!(children.iter().all(|c| c["status"] == "SUCCEEDED"));
    let child = children[0]["executionArn"].as_str().unwrap();
    assert!(child.contains(":execution:mapruns/Fan:"), "{child}");
    let o = stepstone(&["history", child, "--store", &store, "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let history: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        event_types(&history),
        [
            "ExecutionStarted",
            "PassStateEntered",
            "PassStateExited",
            "ExecutionSucceeded"
        ]
    );
    let o = stepstone(&["describe", child, "--store", &store, "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let described: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(described["status"], "SUCCEEDED");
    assert_eq!(described["input"], described["output"]);
    // As AWS's DescribeExecution of a child execution: its Map Run.
    assert_eq!(described["mapRunArn"], arn);
    // The parent's history holds the Map Run, not the children's events.
    let o = stepstone(&["history", "fan-out", "--store", &store, "--json"]);
    let parent: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(!event_types(&parent).contains(&"PassStateEntered"));

    // --no-child-histories: the Map Run is kept, its children's histories are not.
    let o = stepstone(&[
        "run",
        &file,
        "--store",
        &store,
        "--name",
        "lean",
        "--quiet",
        "--no-child-histories",
        "--input",
        "[1, 2]",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = stepstone(&["map-runs", "lean", "--store", &store, "--json"]);
    let listed: Value = serde_json::from_slice(&o.stdout).unwrap();
    let lean = listed["mapRuns"][0]["mapRunArn"]
        .as_str()
        .unwrap()
        .to_owned();
    let o = stepstone(&[
        "executions",
        "--map-run",
        &lean,
        "--store",
        &store,
        "--json",
    ]);
    let children: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(children["executions"], json!([]));
}

/// The CLI on a PostgreSQL store, as on a directory: an empty database lists nothing, a run is
/// listed, described and its history read back by the commands that read a store, and
/// `--store-engine` (which picks a directory store's database) is refused for it.
#[test]
fn a_postgresql_store_is_used_as_a_directory_is() {
    let url = common::postgres::fresh_database("cli");
    let o = stepstone(&["executions", "--store", &url]);
    assert_ok(&o);
    assert_eq!(stdout(&o), "");
    let example_dir = std::path::Path::new(&example())
        .parent()
        .unwrap()
        .to_owned();
    let input = example_dir.join("input.json").display().to_string();
    let mocks = example_dir.join("mock-config.json").display().to_string();
    // Run where the engine's local files (.stepstone/) may go.
    let o = Command::new(env!("CARGO_BIN_EXE_stepstone"))
        .current_dir(std::env::temp_dir())
        .args([
            "run",
            &example(),
            "--input-file",
            &input,
            "--mock-config",
            &mocks,
            "--test-case",
            "HappyPath",
            "--virtual-time",
            "--quiet",
            "--name",
            "on-postgres",
            "--store",
            &url,
        ])
        .output()
        .unwrap();
    assert_ok(&o);
    let o = stepstone(&["executions", "--json", "--store", &url]);
    assert_ok(&o);
    let listed: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(listed["executions"][0]["status"], "SUCCEEDED", "{listed}");
    let o = stepstone(&["describe", "on-postgres", "--json", "--store", &url]);
    assert_ok(&o);
    let described: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(described["name"], "on-postgres");
    let o = stepstone(&["history", "on-postgres", "--json", "--store", &url]);
    assert_ok(&o);
    let history: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(event_types(&history).first(), Some(&"ExecutionStarted"));
    assert_eq!(event_types(&history).last(), Some(&"ExecutionSucceeded"));
    let o = stepstone(&["executions", "--store", &url, "--store-engine", "redb"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("is a PostgreSQL database"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}
