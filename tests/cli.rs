//! The `stepstone` binary as a user runs it: exit codes, output shapes, messages.

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;

fn stepstone(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_stepstone"))
        .args(args)
        .output()
        .expect("the binary runs")
}

fn example() -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("examples/multi-region-deploy.asl.json")
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

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn validate_accepts_the_example() {
    let o = stepstone(&["validate", &example()]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("OK (0 errors, 5 warnings)"));
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
        stepstone(&["graph", &example(), "--format", "svg"])
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
        mermaid.contains("subgraph c0 [\"DeployRegions: item processor\"]"),
        "{mermaid}"
    );
    assert!(
        mermaid.contains("Catch CloudFormation.AlreadyExistsException"),
        "{mermaid}"
    );
    let o = stepstone(&["graph", &example(), "--format", "dot"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(stdout(&o).starts_with("digraph stepstone {"));
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
