//! Random definitions, inputs and JSONata expressions, run under a time and memory budget:
//! whatever they are, each run ends (no hang), without a panic or an abort, within its budget.
//! The expressions lean towards what hurts (huge ranges, strings that double, deep recursion,
//! mapping over mappings); the definitions loop, wait, fail, map and branch.

use std::time::{Duration, Instant};

use proptest::prelude::*;
use serde_json::{Value, json};
use stepstone_engine::asl::{Options, validate};
use stepstone_engine::{Limits, NoTasks, RunOptions, Status, run};

/// How long one JSONata evaluation may run here (the default is 10 s).
const BUDGET: Duration = Duration::from_millis(300);

/// How long one whole run may take before it counts as a hang: far above what its budgets
/// allow, far below forever.
const HANG: Duration = Duration::from_secs(60);

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i32>().prop_map(|n| json!(n)),
        (-1e6f64..1e6).prop_map(|n| json!(n)),
        "[a-z ]{0,8}".prop_map(Value::String),
    ];
    leaf.prop_recursive(6, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map("[a-z]{1,3}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// An input with the fields the definitions and expressions read, and noise.
fn input() -> impl Strategy<Value = Value> {
    (
        any::<i16>(),
        prop::collection::vec(json_value(), 0..8),
        json_value(),
    )
        .prop_map(|(n, list, a)| json!({"n": n, "list": list, "a": a}))
}

fn expression() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        any::<i16>().prop_map(|n| n.to_string()),
        "[a-z]{0,5}".prop_map(|s| format!("'{s}'")),
        Just("$states.input".to_owned()),
        Just("$states.input.n".to_owned()),
        Just("$states.input.list".to_owned()),
        Just("$states.input.a".to_owned()),
        Just("true".to_owned()),
        Just("null".to_owned()),
        (0u32..100_000, 0u32..100_000).prop_map(|(a, b)| format!("[{a}..{b}]")),
    ];
    leaf.prop_recursive(4, 32, 3, |inner| {
        let ops = prop::sample::select(vec!["+", "-", "*", "/", "&", "=", "<", "and", "in"]);
        prop_oneof![
            (inner.clone(), inner.clone(), ops).prop_map(|(a, b, op)| format!("({a} {op} {b})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a}.({b})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a}[{b}]")),
            inner.clone().prop_map(|a| format!("$string({a})")),
            inner.clone().prop_map(|a| format!("$count({a})")),
            inner.clone().prop_map(|a| format!("$sort({a})")),
            (inner.clone(), any::<i32>()).prop_map(|(a, w)| format!("$pad($string({a}), {w})")),
            inner
                .clone()
                .prop_map(|a| format!("$reduce({a}, function($p, $c){{ $p & $p }}, 'xy')")),
            inner.clone().prop_map(|a| format!(
                "($f := function($k){{ $k > 0 ? $f($k - 1) : {a} }}; $f(1000000))"
            )),
            inner.clone().prop_map(|a| format!(
                "($g := function($k){{ $k > 0 ? 1 + $g($k - 1) : {a} }}; $g(100000))"
            )),
            inner
                .clone()
                .prop_map(|a| format!("$map({a}, function($v){{ [$v, $v, $v] }})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{{'k': {a}, 'v': {b}}}")),
            (inner.clone(), inner.clone(), inner)
                .prop_map(|(a, b, c)| format!("({a} ? {b} : {c})")),
        ]
    })
}

fn limits() -> Limits {
    Limits::default()
        .with_evaluation_budget(BUDGET)
        .with_max_history_events(Some(2_000))
}

/// Runs `definition` on `input` on the virtual clock, and checks it ended in time.
fn run_to_the_end(definition: &Value, input: Value) -> Option<Status> {
    let machine = validate(definition, Options::default()).machine?;
    let mut options = RunOptions::default();
    options.virtual_time = true;
    options.limits = limits();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let started = Instant::now();
    let outcome = runtime.block_on(run(&machine, input, &options, &NoTasks));
    let took = started.elapsed();
    assert!(took < HANG, "{definition}: ran {took:?}");
    assert_ne!(outcome.status, Status::Running, "{definition}");
    Some(outcome.status)
}

/// State `i` of a random definition: `next` is the index of the state that follows, `None` for
/// `Done`, the end; a Choice may also go back to state `back` (definitions loop).
fn state(
    i: usize,
    expression: String,
    next: Option<usize>,
    back: usize,
    kind: u8,
    n: i16,
) -> Value {
    let to = |v: &mut Value| match next {
        Some(i) => v["Next"] = json!(format!("S{i}")),
        None => v["Next"] = json!("Done"),
    };
    let mut s = match kind % 8 {
        0 => {
            json!({"Type": "Pass", "Parameters": {"v.$": "$", "n.$": "$.n"}, "ResultPath": "$.wrapped"})
        }
        1 => json!({"Type": "Pass", "QueryLanguage": "JSONata",
            "Output": format!("{{% {expression} %}}"),
            "Assign": {"x": format!("{{% {expression} %}}")}}),
        2 => json!({"Type": "Wait", "Seconds": u64::from(n.unsigned_abs() % 5)}),
        3 => json!({"Type": "Map", "ItemsPath": "$.list", "ResultPath": "$.mapped",
            "ItemProcessor": {"StartAt": format!("In{i}"), "States": {format!("In{i}"): {"Type": "Pass",
                "QueryLanguage": "JSONata", "Output": format!("{{% {expression} %}}"), "End": true}}}}),
        4 => json!({"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:123456789012:function:f",
            "Retry": [{"ErrorEquals": ["States.ALL"], "MaxAttempts": 2, "IntervalSeconds": 1}],
            "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Done"}]}),
        5 => json!({"Type": "Parallel", "ResultPath": "$.both", "Branches": [
            {"StartAt": format!("B{i}"), "States": {format!("B{i}"): {"Type": "Pass",
                "QueryLanguage": "JSONata", "Output": format!("{{% {expression} %}}"), "End": true}}},
            {"StartAt": format!("C{i}"), "States": {format!("C{i}"): {"Type": "Pass", "End": true}}}]}),
        6 => {
            // Loops back, or goes on.
            let on = next.map_or("Done".to_owned(), |k| format!("S{k}"));
            return json!({"Type": "Choice", "Choices": [{"Variable": "$.n",
                "NumericGreaterThan": n, "Next": format!("S{back}")}], "Default": on});
        }
        _ => return json!({"Type": "Fail", "Error": "Random", "Cause": "chosen"}),
    };
    to(&mut s);
    s
}

fn definition() -> impl Strategy<Value = Value> {
    prop::collection::vec((expression(), 0usize..6, any::<u8>(), any::<i16>()), 1..6).prop_map(
        |states| {
            let count = states.len();
            let mut all = serde_json::Map::new();
            for (i, (expression, back, kind, n)) in states.into_iter().enumerate() {
                // Each state goes on to the next (so every state is reachable); Choices loop back.
                let next = (i + 1 < count).then_some(i + 1);
                all.insert(
                    format!("S{i}"),
                    state(i, expression, next, back % (i + 1), kind, n),
                );
            }
            all.insert("Done".into(), json!({"Type": "Succeed"}));
            json!({"StartAt": "S0", "States": all})
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 192, ..ProptestConfig::default() })]

    /// A JSONata Pass state with a random expression over a random input ends, as SUCCEEDED
    /// or as a failure with a name, never a hang, a panic or an abort.
    #[test]
    fn random_expressions_end_within_their_budget(expression in expression(), input in input()) {
        let definition = json!({"QueryLanguage": "JSONata", "StartAt": "S", "States": {
            "S": {"Type": "Pass", "Output": format!("{{% {expression} %}}"), "End": true}}});
        if let Some(Status::Failed(failure)) = run_to_the_end(&definition, input) {
            prop_assert!(failure.error.starts_with("States."), "{failure:?}");
        }
    }

    /// Random definitions (loops, waits, maps, branches, failures, tasks nobody answers) end.
    #[test]
    fn random_definitions_end(definition in definition(), input in input()) {
        run_to_the_end(&definition, input);
    }
}
