//! Runs the TestState cases of `../shared/conformance/test_state/` through `stepstone
//! test-state`, as a user would, and compares its `--json` response with what AWS answered:
//! status, output, error and cause, nextState and inspectionData, placeholders included.
//!
//! AWS returns the output and each inspected value as JSON text, which the corpus keeps
//! sometimes parsed, sometimes as text (`"[\"a\", \"b\"]"`); `test-state` prints JSON values, so
//! an expected text that parses as JSON is compared as the value it holds. Numbers compare by
//! value (`1.0` is `1`).
//!
//! Cases that do not pass are listed in `test_state_expected_failures.txt` with a reason; a
//! listed case that passes fails the test, so the list only shrinks. At least 90% must pass.

mod common;

use std::process::Command;

use serde_json::{Map, Value};

/// The `stepstone test-state` arguments for a case's parameters.
fn arguments(name: &str, case: &Value, dir: &std::path::Path) -> Vec<String> {
    let file = dir.join(format!("{name}.json"));
    std::fs::write(&file, case["definition"].to_string()).expect("temporary file");
    let mut args: Vec<String> = vec![
        "test-state".into(),
        file.display().to_string(),
        "--json".into(),
    ];
    let mut flag = |f: &str, v: String| {
        args.push(f.into());
        args.push(v);
    };
    // A null input is TestState's default, `{}`.
    if !case["input"].is_null() {
        flag("--input", case["input"].to_string());
    }
    let params = &case["test_state_params"];
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if let Some(level) = params["inspectionLevel"].as_str() {
        flag("--inspection-level", level.into());
    }
    if let Some(state) = params["stateName"].as_str() {
        flag("--state", state.into());
    }
    for (key, option) in [("context", "--context"), ("variables", "--variables")] {
        if !params[key].is_null() {
            flag(option, text(&params[key]));
        }
    }
    let mock = &params["mock"];
    if !mock["result"].is_null() {
        flag("--mock-result", text(&mock["result"]));
    }
    if let Some(error) = mock["errorOutput"].as_object() {
        flag("--mock-error", text(&error["error"]));
        flag("--mock-cause", text(&error["cause"]));
    }
    let config = &params["stateConfiguration"];
    for (key, option) in [
        ("retrierRetryCount", "--retrier-retry-count"),
        ("errorCausedByState", "--error-caused-by-state"),
        ("mapIterationFailureCount", "--map-iteration-failure-count"),
        ("mapItemReaderData", "--map-item-reader-data"),
    ] {
        if !config[key].is_null() {
            flag(option, text(&config[key]));
        }
    }
    args
}

/// What `stepstone test-state --json` answered, or what went wrong.
fn actual(name: &str, case: &Value, dir: &std::path::Path) -> Value {
    let output = Command::new(env!("CARGO_BIN_EXE_stepstone"))
        .args(arguments(name, case, dir))
        .output()
        .expect("the binary runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(stdout.trim()).unwrap_or_else(|_| {
        serde_json::json!({
            "status": "NO_RESPONSE",
            "exit": output.status.code(),
            "stderr": String::from_utf8_lossy(&output.stderr),
        })
    })
}

/// An expected value as the JSON it stands for: JSON text that holds an array or an object is
/// that array or object.
fn as_json(v: &Value) -> Value {
    match v {
        Value::String(s) => match serde_json::from_str::<Value>(s) {
            Ok(parsed @ (Value::Array(_) | Value::Object(_))) => as_json(&parsed),
            _ => v.clone(),
        },
        Value::Array(a) => Value::Array(a.iter().map(as_json).collect()),
        Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), as_json(v))).collect()),
        other => other.clone(),
    }
}

/// JSON equality with numbers compared by value.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

/// The response fields AWS gave, compared one by one.
const FIELDS: [&str; 6] = [
    "status",
    "output",
    "error",
    "cause",
    "nextState",
    "inspectionData",
];

#[test]
fn test_state_corpus() {
    let cases = common::load_cases("test_state");
    let list = "test_state_expected_failures.txt";
    let listed = common::expected_failures(list);
    let dir = std::env::temp_dir().join(format!("stepstone-test-state-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temporary directory");
    let (mut passed, mut fixed, mut failures) = (0, Vec::new(), Vec::new());
    for (name, case) in &cases {
        let mut expected = as_json(&case["expected"]);
        let mut got = actual(name, case, &dir);
        common::normalize(case, &mut expected, &mut got);
        let ok = FIELDS.iter().all(|f| same(&expected[*f], &got[*f]));
        passed += usize::from(ok);
        let is_listed = listed.iter().any(|(n, _)| n == name);
        match (ok, is_listed) {
            (true, true) => fixed.push(name.clone()),
            (false, false) => {
                let differ: Map<String, Value> = FIELDS
                    .iter()
                    .filter(|f| !same(&expected[**f], &got[**f]))
                    .map(|f| {
                        (
                            (*f).to_owned(),
                            Value::Array(vec![expected[*f].clone(), got[*f].clone()]),
                        )
                    })
                    .collect();
                failures.push(format!(
                    "{name}\n    [expected, got] {}",
                    Value::Object(differ)
                ));
            }
            _ => {}
        }
    }
    std::fs::remove_dir_all(&dir).ok();
    let total = cases.len();
    eprintln!(
        "TestState corpus: {passed}/{total} pass ({} listed)",
        listed.len()
    );
    common::assert_list_discipline(list, &failures, &fixed);
    assert!(
        passed * 100 >= total * 90,
        "only {passed}/{total} TestState cases pass (90% required)"
    );
}

#[test]
fn expected_text_is_compared_as_json() {
    assert_eq!(
        as_json(&Value::String("[\"a\", {\"b\": 1}]".into())),
        serde_json::json!(["a", {"b": 1}])
    );
    assert_eq!(
        as_json(&Value::String("plain".into())),
        Value::String("plain".into())
    );
    assert!(same(
        &serde_json::json!({"x": 1.0}),
        &serde_json::json!({"x": 1})
    ));
    assert!(!same(
        &serde_json::json!({"x": 1}),
        &serde_json::json!({"x": 1, "y": 2})
    ));
}
