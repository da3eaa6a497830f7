//! Properties that must hold for any input: loading and validating never panic, whatever the
//! JSON; and a compiled path, printed, parses back to the same path.

use proptest::prelude::*;
use serde_json::{Map, Value, json};
use stepstone_asl::intrinsics::Call;
use stepstone_asl::{Options, Path, validate, validate_str};

/// Field names of the States Language, so random objects reach deep into the loaders.
const FIELDS: &[&str] = &[
    "StartAt",
    "States",
    "Type",
    "Next",
    "End",
    "Comment",
    "QueryLanguage",
    "InputPath",
    "OutputPath",
    "Parameters",
    "ResultSelector",
    "ResultPath",
    "Result",
    "Resource",
    "Retry",
    "Catch",
    "ErrorEquals",
    "IntervalSeconds",
    "MaxAttempts",
    "BackoffRate",
    "Choices",
    "Default",
    "Variable",
    "And",
    "Or",
    "Not",
    "StringEquals",
    "NumericLessThanPath",
    "IsPresent",
    "TimestampEquals",
    "Seconds",
    "Timestamp",
    "SecondsPath",
    "Branches",
    "ItemProcessor",
    "Iterator",
    "ItemsPath",
    "MaxConcurrency",
    "Label",
    "ProcessorConfig",
    "Mode",
    "Error",
    "CausePath",
    "Assign",
    "Output",
    "Arguments",
    "Condition",
    "TimeoutSeconds",
    "HeartbeatSecondsPath",
    "ItemReader",
    "ItemBatcher",
    "ResultWriter",
    "x.$",
];

const STRINGS: &[&str] = &[
    "Pass",
    "Task",
    "Choice",
    "Wait",
    "Succeed",
    "Fail",
    "Parallel",
    "Map",
    "JSONata",
    "JSONPath",
    "A",
    "B",
    "$",
    "$.a",
    "$$.Execution.Id",
    "$.a[*]",
    "$x",
    "States.ALL",
    "States.Format('{}', $.a)",
    "{% 1 %}",
    "arn:aws:states:::lambda:invoke",
    "2016-03-14T01:59:00Z",
    "DISTRIBUTED",
    "",
];

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        (-1e6f64..1e6).prop_map(|x| json!(x)),
        prop::sample::select(STRINGS).prop_map(|s| json!(s)),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(6, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec(
                (
                    prop_oneof![
                        prop::sample::select(FIELDS).prop_map(str::to_owned),
                        "[A-Za-z.$]{1,6}"
                    ],
                    inner
                ),
                0..6
            )
            .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// A valid definition using every state type.
fn seed() -> Value {
    json!({"StartAt": "P", "TimeoutSeconds": 60, "States": {
        "P": {"Type": "Pass", "Parameters": {"a.$": "$.x", "b.$": "States.Format('{}', $.y)"}, "ResultPath": "$.p", "Next": "T"},
        "T": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "TimeoutSeconds": 10,
              "Retry": [{"ErrorEquals": ["States.Timeout"], "MaxAttempts": 2}],
              "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "F"}], "Next": "C"},
        "C": {"Type": "Choice", "Choices": [{"And": [{"Variable": "$.n", "NumericGreaterThan": 1}, {"Variable": "$.s", "StringMatches": "a*"}], "Next": "W"}], "Default": "S"},
        "W": {"Type": "Wait", "Seconds": 1, "Next": "Par"},
        "Par": {"Type": "Parallel", "Branches": [{"StartAt": "B", "States": {"B": {"Type": "Pass", "End": true}}}], "Next": "M"},
        "M": {"Type": "Map", "ItemsPath": "$.items", "MaxConcurrency": 2, "ItemProcessor": {"StartAt": "I", "States": {"I": {"Type": "Succeed"}}}, "Next": "S"},
        "S": {"Type": "Succeed"},
        "F": {"Type": "Fail", "Error": "E", "CausePath": "$.c"}
    }})
}

#[derive(Debug, Clone)]
enum Mutation {
    Replace(Value),
    Remove,
    Rename(String),
    Insert(String, Value),
}

fn arb_mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        arb_json().prop_map(Mutation::Replace),
        Just(Mutation::Remove),
        prop::sample::select(FIELDS).prop_map(|s| Mutation::Rename(s.to_owned())),
        (prop::sample::select(FIELDS), arb_json())
            .prop_map(|(k, v)| Mutation::Insert(k.to_owned(), v)),
    ]
}

/// Every node of a value, as a path of keys and indices.
fn nodes(v: &Value, here: Vec<String>, out: &mut Vec<Vec<String>>) {
    out.push(here.clone());
    match v {
        Value::Object(map) => map
            .iter()
            .for_each(|(k, c)| nodes(c, [here.clone(), vec![k.clone()]].concat(), out)),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .for_each(|(i, c)| nodes(c, [here.clone(), vec![i.to_string()]].concat(), out)),
        _ => {}
    }
}

fn apply(root: &mut Value, at: &[String], m: Mutation) {
    let Some((last, parent_path)) = at.split_last() else {
        if let Mutation::Replace(v) = m {
            *root = v;
        }
        return;
    };
    let mut parent = &mut *root;
    for step in parent_path {
        parent = match parent {
            Value::Object(map) => map.get_mut(step).unwrap(),
            Value::Array(items) => &mut items[step.parse::<usize>().unwrap()],
            _ => unreachable!(),
        };
    }
    match (parent, m) {
        (Value::Object(map), Mutation::Replace(v)) => {
            map.insert(last.clone(), v);
        }
        (Value::Object(map), Mutation::Remove) => {
            map.shift_remove(last);
        }
        (Value::Object(map), Mutation::Rename(k)) => {
            if let Some(v) = map.shift_remove(last) {
                map.insert(k, v);
            }
        }
        (Value::Object(map), Mutation::Insert(k, v)) => {
            if let Some(Value::Object(inner)) = map.get_mut(last) {
                inner.insert(k, v);
            }
        }
        (Value::Array(items), Mutation::Replace(v)) => items[last.parse::<usize>().unwrap()] = v,
        (Value::Array(items), Mutation::Remove) => {
            items.remove(last.parse::<usize>().unwrap());
        }
        _ => {}
    }
}

/// Paths in the spellings AWS accepts.
fn arb_path_text() -> impl Strategy<Value = String> {
    let root = prop_oneof![
        Just("$".to_owned()),
        Just("$$".to_owned()),
        "\\$[a-z_][a-z0-9_]{0,5}"
    ];
    let name = prop_oneof![
        "[a-zA-Z_][a-zA-Z0-9_]{0,6}",
        "[ -~]{1,6}",
        "[a-z]{1,3}-[a-z]{1,3}",
        "\\PC{1,4}"
    ];
    let segment = prop_oneof![
        "[a-zA-Z_][a-zA-Z0-9_]{0,6}".prop_map(|n| format!(".{n}")),
        "[a-z]{1,3}-[a-z]{1,3}".prop_map(|n| format!(".{n}")),
        name.prop_map(|n| format!("['{}']", n.replace('\\', "\\\\").replace('\'', "\\'"))),
        (0u32..1000).prop_map(|i| format!("[{i}]")),
        Just("[*]".to_owned()),
        Just(".*".to_owned()),
        (-5i32..5, -5i32..5).prop_map(|(a, b)| format!("[{a}:{b}]")),
        (-5i32..0).prop_map(|i| format!("[{i}]")),
        "[a-z]{1,4}".prop_map(|n| format!("..{n}")),
        ("[a-z]{1,4}", 0i32..9).prop_map(|(n, v)| format!("[?(@.{n} > {v})]")),
        ("[a-z]{1,4}", "[a-z]{0,4}")
            .prop_map(|(n, v)| format!("[?(@.{n} == '{v}' || @.{n} == 1.5)]")),
        "[a-z]{1,4}".prop_map(|n| format!(".['{n}']")),
    ];
    (root, prop::collection::vec(segment, 0..5)).prop_map(|(r, s)| format!("{r}{}", s.concat()))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_json_never_panics(v in arb_json()) {
        let _ = validate(&v, Options::default());
        let _ = validate(&json!({"StartAt": "A", "States": {"A": v}}), Options::default());
    }

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,64}") {
        let _ = validate_str(&text, Options::default());
        let _ = Path::parse(&text);
        let _ = Call::parse(&text);
    }

    #[test]
    fn mutated_definitions_never_panic(mutations in prop::collection::vec((any::<prop::sample::Index>(), arb_mutation()), 1..4)) {
        let mut def = seed();
        for (pick, m) in mutations {
            let mut all = Vec::new();
            nodes(&def, Vec::new(), &mut all);
            let at = all[pick.index(all.len())].clone();
            apply(&mut def, &at, m);
        }
        let v = validate(&def, Options::default());
        // A machine only comes out of a definition with no error.
        prop_assert_eq!(v.machine.is_some(), !v.diagnostics.iter().any(|d| d.is_error()));
    }

    #[test]
    fn printed_paths_parse_to_the_same_path(text in arb_path_text()) {
        if let Ok(path) = Path::parse(&text) {
            let printed = path.to_string();
            let again = Path::parse(&printed);
            prop_assert!(again.is_ok(), "{} printed as {} does not parse: {:?}", text, printed, again);
            prop_assert_eq!(again.unwrap(), path, "{} printed as {}", text, printed);
        }
    }
}

#[test]
fn the_seed_is_valid() {
    let v = validate(&seed(), Options::default());
    assert!(v.is_ok(), "{:?}", v.diagnostics);
}

#[test]
fn generated_paths_mostly_parse() {
    // Guards the round-trip property against vacuity: most generated texts must be paths.
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let strategy = arb_path_text();
    let parsed = (0..500)
        .filter(|_| Path::parse(&strategy.new_tree(&mut runner).unwrap().current()).is_ok())
        .count();
    assert!(parsed > 350, "only {parsed}/500 generated paths parse");
}
