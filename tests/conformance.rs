//! Runs the recorded AWS executions of `../shared/conformance/cases/` (all but the JSONata ones,
//! which belong to the JSONata issue) on the virtual clock, and compares status and output, or
//! error and cause, as the corpus README describes, placeholders included.
//!
//! Cases that do not pass yet are listed in `conformance_expected_failures.txt` with a reason; a
//! listed case that passes fails the test, so the list only shrinks.
//!
//! Where the corpus recorded the history's event types, they are compared too (list:
//! `conformance_history_expected_failures.txt`).

mod common;

use serde_json::Value;
use stepstone::asl::{MachineType, Options, validate};
use stepstone::engine::{NoTasks, RunOptions, Status, run};

/// What the execution gave, in the corpus's `expected` shape, with `history`: its event types.
fn actual(case: &Value) -> Value {
    let mut options = Options::default();
    if case["state_machine_type"] == "EXPRESS" {
        options.machine_type = MachineType::Express;
    }
    let v = validate(&case["definition"], options);
    let Some(machine) = v.machine else {
        return serde_json::json!({"status": "INVALID", "diagnostics": v.diagnostics.iter().map(ToString::to_string).collect::<Vec<_>>()});
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let mut run_options = RunOptions::default();
    run_options.virtual_time = true;
    run_options.machine_name = "conformance-machine".into();
    run_options.express = case["state_machine_type"] == "EXPRESS";
    run_options.record_history = true;
    let outcome = runtime.block_on(run(&machine, case["input"].clone(), &run_options, &NoTasks));
    let history: Vec<String> = outcome
        .history
        .events()
        .iter()
        .map(|e| e.kind.type_name())
        .collect();
    let mut result = match outcome.status {
        Status::Succeeded(output) => serde_json::json!({"status": "SUCCEEDED", "output": output}),
        Status::Failed(f) => {
            serde_json::json!({"status": "FAILED", "error": f.error, "cause": f.cause})
        }
        Status::Aborted(f) => {
            serde_json::json!({"status": "ABORTED", "error": f.error, "cause": f.cause})
        }
        Status::TimedOut(f) => {
            serde_json::json!({"status": "TIMED_OUT", "error": f.error, "cause": f.cause})
        }
        Status::Running => serde_json::json!({"status": "RUNNING"}),
    };
    result["history"] = serde_json::json!(history);
    result
}

fn is_jsonata(case: &Value) -> bool {
    case["features"]
        .as_array()
        .is_some_and(|f| f.iter().any(|x| x == "jsonata"))
}

#[test]
fn conformance_cases() {
    let cases: Vec<(String, Value)> = common::load_cases("cases")
        .into_iter()
        .filter(|(_, c)| !is_jsonata(c))
        .collect();
    check(&cases, "conformance_expected_failures.txt", true);
}

/// The JSONata cases, on their own list while the JSONata issue is under way: every case not
/// listed must pass, every listed one must still fail (so the list only shrinks).
#[test]
fn jsonata_conformance_cases() {
    let cases: Vec<(String, Value)> = common::load_cases("cases")
        .into_iter()
        .filter(|(_, c)| is_jsonata(c))
        .collect();
    check(&cases, "conformance_jsonata_expected_failures.txt", false);
}

/// Runs `cases`; with `thresholds`, also requires 97% in full and 99% on status and error.
fn check(cases: &[(String, Value)], list: &str, thresholds: bool) {
    let listed = common::expected_failures(list);
    let (mut full, mut by_error, mut fixed, mut failures) = (0, 0, Vec::new(), Vec::new());
    for (name, case) in cases {
        let mut expected = case["expected"].clone();
        let mut got = actual(case);
        common::normalize(case, &mut expected, &mut got);
        let same_status = got["status"] == expected["status"];
        // The corpus records error and cause only where AWS reported them.
        let same_error =
            same_status && (expected.get("error").is_none() || got["error"] == expected["error"]);
        let same = match expected["status"].as_str() {
            Some("SUCCEEDED") => same_status && got["output"] == expected["output"],
            _ => {
                same_error && (expected.get("cause").is_none() || got["cause"] == expected["cause"])
            }
        };
        by_error += usize::from(same_error);
        full += usize::from(same);
        let is_listed = listed.iter().any(|(n, _)| n == name);
        match (same, is_listed) {
            (true, true) => fixed.push(name.clone()),
            (false, false) => failures.push(format!(
                "{name}\n    expected {expected}\n    got      {got}"
            )),
            _ => {}
        }
    }
    let total = cases.len();
    eprintln!(
        "conformance ({list}): {full}/{total} pass in full, {by_error}/{total} on status and error name ({} listed)",
        listed.len()
    );
    common::assert_list_discipline(list, &failures, &fixed);
    if !thresholds {
        return;
    }
    assert!(
        full * 100 >= total * 97,
        "only {full}/{total} pass in full (97% required)"
    );
    assert!(
        by_error * 100 >= total * 99,
        "only {by_error}/{total} pass on status and error (99% required)"
    );
}

/// The history's event types, where the corpus recorded them.
#[test]
fn history_event_types() {
    let list = "conformance_history_expected_failures.txt";
    let listed = common::expected_failures(list);
    let (mut same, mut total, mut fixed, mut failures) = (0, 0, Vec::new(), Vec::new());
    for (name, case) in common::load_cases("cases") {
        let Some(want) = case.get("history_event_types").filter(|h| h.is_array()) else {
            continue;
        };
        total += 1;
        let got = actual(&case)["history"].clone();
        let ok = &got == want;
        same += usize::from(ok);
        match (ok, listed.iter().any(|(n, _)| *n == name)) {
            (true, true) => fixed.push(name),
            (false, false) => {
                failures.push(format!("{name}\n    expected {want}\n    got      {got}"))
            }
            _ => {}
        }
    }
    eprintln!(
        "history event types: {same}/{total} as recorded ({} listed)",
        listed.len()
    );
    common::assert_list_discipline(list, &failures, &fixed);
}

#[test]
fn wildcards() {
    use common::wildcard_match;
    assert!(wildcard_match("a <X> b", &["<X>"], "a anything b"));
    assert!(!wildcard_match("a <X> b", &["<X>"], "a anything c"));
    assert!(wildcard_match("exact", &[], "exact"));
    assert!(!wildcard_match("exact", &[], "exactly"));
}
