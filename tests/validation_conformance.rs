//! Runs every case of `../shared/conformance/validation/` (definitions AWS rejected or
//! accepted, with AWS's diagnostics) through the validator and compares the codes and
//! locations of the errors. Wording may differ from AWS's; codes and locations may not.
//!
//! TestState's own refusals (not definition errors: a state TestState will not run) are checked
//! through `test_state`, their message against AWS's.
//!
//! Cases that cannot pass yet are listed in `validation_expected_failures.txt` with a reason.
//! A listed case that starts passing fails this test, so the list only shrinks.

mod common;

use std::collections::BTreeSet;

use serde_json::Value;
use stepstone::asl::{MachineType, Options, SINGLE_STATE_NAME, validate_state, validate_str};
use stepstone::engine::{NoTasks, TestState, test_state};

type Expected = BTreeSet<(String, Option<String>)>;

/// What AWS reported, as a set of (code, location).
fn expected(case: &Value) -> Result<Expected, String> {
    let exp = &case["expected"];
    if let Some(diags) = exp["diagnostics"].as_array() {
        return Ok(diags
            .iter()
            .filter(|d| d["severity"] == "ERROR")
            .map(|d| {
                (
                    d["code"].as_str().unwrap().to_owned(),
                    d["location"].as_str().map(str::to_owned),
                )
            })
            .collect());
    }
    let message = exp["message"].as_str().ok_or("no message")?;
    if let Some(body) = message.strip_prefix("Invalid State Machine Definition: '") {
        let body = body.strip_suffix('\'').unwrap_or(body);
        // 'CODE: text at /Location, CODE: text at /Location'
        let mut out = Expected::new();
        for part in split_diagnostics(body) {
            let (code, rest) = part.split_once(": ").ok_or("no code")?;
            let location = rest
                .rsplit_once(" at ")
                .map(|(_, at)| at.trim().to_owned())
                .filter(|at| at != "null");
            out.insert((code.to_owned(), location));
        }
        return Ok(out);
    }
    if let Some(args) = message.strip_prefix("Error=ValueError Args=") {
        // LocalStack's own wording for the Map Label cases; AWS refuses the same definitions.
        // The issue asks for SCHEMA_VALIDATION_FAILED at the Label field.
        if args.contains("Label") {
            return Ok(Expected::from([(
                "SCHEMA_VALIDATION_FAILED".to_owned(),
                Some("/States/MapState/Label".to_owned()),
            )]));
        }
    }
    Err(format!("cannot read the expected result: {message}"))
}

/// Splits `A: x at /a, B: y at /b` at the commas that start a new `CODE:`.
fn split_diagnostics(body: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    for (i, _) in body.match_indices(", ") {
        let next = &body[i + 2..];
        let code_len = next.find(':').unwrap_or(0);
        if code_len > 0
            && next[..code_len]
                .chars()
                .all(|c| c.is_ascii_uppercase() || c == '_')
        {
            parts.push(&body[start..i]);
            start = i + 2;
        }
    }
    parts.push(&body[start..]);
    parts
}

/// What we report, as the same set.
fn actual(case: &Value) -> Expected {
    let machine_type = if case["state_machine_type"] == "EXPRESS" {
        MachineType::Express
    } else {
        MachineType::Standard
    };
    let mut options = Options::default();
    options.machine_type = machine_type;
    let validation = match (&case["definition_text"], &case["definition"]) {
        (Value::String(t), _) => validate_str(t, options),
        // TestState takes one state, which `test-state` validates as it does.
        (_, def) if case["api"] == "TestState" && def.get("Type").is_some() => {
            validate_state(def, SINGLE_STATE_NAME, options)
        }
        (_, def) => validate_str(&def.to_string(), options),
    };
    validation
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .map(|d| (d.code.as_str().to_owned(), d.location.clone()))
        .collect()
}

/// For a case of the TestState API refused with a message of its own: that message, and what
/// `test_state` answers for the state (with no mock, as the case gives none).
fn test_state_refusal(case: &Value) -> Option<(String, Option<String>)> {
    let message = case["expected"]["message"].as_str()?;
    if case["api"] != "TestState" || message.starts_with("Invalid State Machine Definition") {
        return None;
    }
    let v = validate_state(&case["definition"], SINGLE_STATE_NAME, Options::default());
    let got = v.machine.and_then(|m| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime");
        let test = TestState::default();
        let answer = runtime.block_on(test_state(&m, SINGLE_STATE_NAME, &test, &NoTasks));
        answer.err().map(|e| e.to_string())
    });
    Some((message.to_owned(), got))
}

#[test]
fn validation_corpus() {
    let cases = common::load_cases("validation");
    let listed = common::expected_failures("validation_expected_failures.txt");
    let mut passed = 0;
    let mut failures = Vec::new();
    let mut fixed = Vec::new();
    for (name, case) in &cases {
        let is_listed = listed.iter().any(|(n, _)| n == name);
        let refusal = test_state_refusal(case);
        let ok = match expected(case) {
            Err(_) if refusal.is_some() => {
                let (want, got) = refusal.expect("checked");
                let ok = got.as_deref().is_some_and(|g| g.starts_with(&want));
                if !ok && !is_listed {
                    failures.push(format!("{name}\n    expected {want}\n    got      {got:?}"));
                }
                ok
            }
            Ok(exp) => {
                let got = actual(case);
                if got == exp {
                    true
                } else {
                    if !is_listed {
                        failures.push(format!(
                            "{name}\n    expected {exp:?}\n    got      {got:?}"
                        ));
                    }
                    false
                }
            }
            Err(e) => {
                if !is_listed {
                    failures.push(format!("{name}: {e}"));
                }
                false
            }
        };
        if ok {
            passed += 1;
            if is_listed {
                fixed.push(name.clone());
            }
        }
    }
    let total = cases.len();
    eprintln!(
        "validation corpus: {passed}/{total} match AWS ({} listed as expected failures)",
        listed.len()
    );
    common::assert_list_discipline("validation_expected_failures.txt", &failures, &fixed);
    assert!(
        passed * 100 >= total * 95,
        "only {passed}/{total} cases match (95% required)"
    );
}
