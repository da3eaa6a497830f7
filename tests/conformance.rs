//! Runs the recorded AWS executions of `../shared/conformance/cases/` (all but the JSONata ones,
//! which belong to the JSONata issue) on the virtual clock, and compares status and output, or
//! error and cause, as the corpus README describes, placeholders included.
//!
//! Cases that do not pass yet are listed in `conformance_expected_failures.txt` with a reason; a
//! listed case that passes fails the test, so the list only shrinks.

mod common;

use serde_json::Value;
use stepstone::asl::{MachineType, Options, validate};
use stepstone::engine::{NoTasks, RunOptions, Status, run};

/// What the execution gave, in the corpus's `expected` shape.
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
    let outcome = runtime.block_on(run(&machine, case["input"].clone(), &run_options, &NoTasks));
    match outcome.status {
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
    }
}

/// Steps of a placeholder path like `$.expected.output.a.b[0]`, below `expected`.
fn steps(path: &str) -> Vec<String> {
    let rest = path.trim_start_matches("$.expected");
    rest.replace('[', ".")
        .replace(']', "")
        .split('.')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn at<'v>(v: &'v mut Value, steps: &[String]) -> Option<&'v mut Value> {
    let mut cur = v;
    for s in steps {
        cur = match cur {
            Value::Object(m) => m.get_mut(s)?,
            Value::Array(a) => a.get_mut(s.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(cur)
}

/// Applies placeholders: where the expected value stands for "any value" or holds tokens that
/// stand for any text, an actual value that fits is replaced by the expected one.
fn normalize(case: &Value, expected: &mut Value, actual: &mut Value) {
    let Some(placeholders) = case["placeholders"].as_array() else {
        return;
    };
    for p in placeholders {
        let steps = steps(p["path"].as_str().unwrap_or(""));
        let Some(want) = at(expected, &steps).cloned() else {
            continue;
        };
        let Some(got) = at(actual, &steps) else {
            continue;
        };
        let fits = match p["match"].as_str() {
            Some("exact") => true,
            Some("substring") => match (&want, &*got) {
                (Value::String(w), Value::String(g)) => {
                    let tokens: Vec<&str> = p["tokens"]
                        .as_array()
                        .map(|t| t.iter().filter_map(Value::as_str).collect())
                        .unwrap_or_default();
                    wildcard_match(w, &tokens, g)
                }
                _ => false,
            },
            _ => false,
        };
        if fits {
            *got = want;
        }
    }
}

/// Whether `text` equals `pattern` with each token standing for any text.
fn wildcard_match(pattern: &str, tokens: &[&str], text: &str) -> bool {
    // Split the pattern at its tokens into literal pieces that must appear in order.
    let mut pieces = vec![pattern.to_owned()];
    for token in tokens {
        pieces = pieces
            .iter()
            .flat_map(|p| p.split(token).map(str::to_owned).collect::<Vec<_>>())
            .collect();
    }
    let mut rest = text;
    for (i, piece) in pieces.iter().enumerate() {
        if i == 0 {
            let Some(r) = rest.strip_prefix(piece.as_str()) else {
                return false;
            };
            rest = r;
        } else if i == pieces.len() - 1 {
            return rest.ends_with(piece.as_str());
        } else {
            let Some(at) = rest.find(piece.as_str()) else {
                return false;
            };
            rest = &rest[at + piece.len()..];
        }
    }
    pieces.len() == 1 && rest.is_empty()
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
        normalize(case, &mut expected, &mut got);
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

#[test]
fn wildcards() {
    assert!(wildcard_match("a <X> b", &["<X>"], "a anything b"));
    assert!(!wildcard_match("a <X> b", &["<X>"], "a anything c"));
    assert!(wildcard_match("exact", &[], "exact"));
    assert!(!wildcard_match("exact", &[], "exactly"));
}
