//! One line per validation rule: a definition and the diagnostics (code, location) it must get.

use serde_json::{Value, json};
use stepstone_asl::{MachineType, Options, Severity, validate};

/// Wraps states into a machine starting at the first one.
fn machine(states: Value) -> Value {
    let start = states.as_object().unwrap().keys().next().unwrap().clone();
    json!({"StartAt": start, "States": states})
}

fn diagnostics(
    def: &Value,
    machine_type: MachineType,
    severity: Severity,
) -> Vec<(String, String)> {
    let mut options = Options::default();
    options.machine_type = machine_type;
    let mut got: Vec<(String, String)> = validate(def, options)
        .diagnostics
        .into_iter()
        .filter(|d| d.severity == severity)
        .map(|d| (d.code.as_str().to_owned(), d.location.unwrap_or_default()))
        .collect();
    got.sort();
    got
}

#[track_caller]
fn errors(def: Value, expected: &[(&str, &str)]) {
    let mut expected: Vec<(String, String)> = expected
        .iter()
        .map(|(c, l)| ((*c).to_owned(), (*l).to_owned()))
        .collect();
    expected.sort();
    assert_eq!(
        diagnostics(&def, MachineType::Standard, Severity::Error),
        expected,
        "{def}"
    );
}

#[track_caller]
fn warnings(def: Value, expected: &[(&str, &str)]) {
    assert_eq!(
        diagnostics(&def, MachineType::Standard, Severity::Error),
        vec![],
        "{def}"
    );
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(c, l)| ((*c).to_owned(), (*l).to_owned()))
        .collect();
    assert_eq!(
        diagnostics(&def, MachineType::Standard, Severity::Warning),
        expected,
        "{def}"
    );
}

const SVF: &str = "SCHEMA_VALIDATION_FAILED";
const MTT: &str = "MISSING_TRANSITION_TARGET";

#[test]
fn schema() {
    errors(json!({}), &[(SVF, "/")]);
    errors(json!([]), &[(SVF, "")]);
    errors(json!({"StartAt": "A"}), &[(SVF, "/")]);
    errors(
        machine(json!({"A": {"Type": "Pass", "End": true, "Foo": 1}})),
        &[(SVF, "/States/A")],
    );
    errors(
        machine(json!({"A": {"Type": "Task", "End": true}})),
        &[(SVF, "/States/A")],
    );
    errors(machine(json!({"A": {"End": true}})), &[(SVF, "/States/A")]);
    errors(
        machine(json!({"A": {"Type": "Nope", "End": true}})),
        &[(SVF, "/States/A/Type")],
    );
    errors(
        machine(json!({"A": {"Type": "Pass", "Next": 5}})),
        &[(SVF, "/States/A/Next"), (SVF, "/States/A")],
    );
    errors(
        machine(json!({"A": {"Type": "Pass", "End": "yes"}})),
        &[(SVF, "/States/A/End"), (SVF, "/States/A")],
    );
    errors(
        machine(
            json!({"A": {"Type": "Choice", "Choices": [{"Variable": "$.x", "IsNull": true, "Next": "B"}], "Next": "B"}, "B": {"Type": "Succeed"}}),
        ),
        &[(SVF, "/States/A")],
    );
    errors(
        machine(json!({"A": {"Type": "Fail", "InputPath": "$"}})),
        &[(SVF, "/States/A")],
    );
    errors(
        machine(json!({"A": {"Type": "Pass", "TimeoutSeconds": 5, "End": true}})),
        &[(SVF, "/States/A")],
    );
    errors(
        machine(json!({"A": {"Type": "Pass", "Retry": [], "End": true}})),
        &[(SVF, "/States/A")],
    );
    errors(
        json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "End": true}}, "TimeoutSeconds": 0}),
        &[(SVF, "/TimeoutSeconds")],
    );
    errors(
        json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "End": true}}, "Version": "2.0"}),
        &[(SVF, "/Version")],
    );
}

#[test]
fn transitions() {
    errors(
        machine(json!({"A": {"Type": "Pass", "Next": "Nope"}, "B": {"Type": "Succeed"}})),
        &[(MTT, "/States/A/Next"), (MTT, "/States/B")],
    );
    errors(
        json!({"StartAt": "Nope", "States": {"A": {"Type": "Succeed"}}}),
        &[(MTT, "/StartAt")],
    );
    errors(
        machine(json!({"A": {"Type": "Pass", "Next": "B", "End": true}, "B": {"Type": "Succeed"}})),
        &[(SVF, "/States/A")],
    );
    errors(
        machine(json!({"A": {"Type": "Pass"}})),
        &[(SVF, "/States/A")],
    );
    errors(
        machine(json!({"A": {"Type": "Pass", "Next": "B"}, "B": {"Type": "Pass", "Next": "A"}})),
        &[("MISSING_END_STATE", "")],
    );
    errors(
        machine(
            json!({"A": {"Type": "Choice", "Choices": [{"Variable": "$.x", "IsNull": true, "Next": "X"}], "Default": "Y"}, "B": {"Type": "Succeed"}}),
        ),
        &[
            (MTT, "/States/A/Choices/0/Next"),
            (MTT, "/States/A/Default"),
            (MTT, "/States/B"),
        ],
    );
    errors(
        machine(
            json!({"A": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "X"}], "End": true}}),
        ),
        &[(MTT, "/States/A/Catch/0/Next")],
    );
    // A Catch target is reachable.
    errors(
        machine(
            json!({"A": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "B"}], "End": true}, "B": {"Type": "Fail"}}),
        ),
        &[],
    );
}

#[test]
fn nested_scopes() {
    let branch = |states: Value| json!({"StartAt": states.as_object().unwrap().keys().next().unwrap(), "States": states});
    errors(
        machine(json!({"P": {"Type": "Parallel", "Branches": [], "End": true}})),
        &[(SVF, "/States/P/Branches")],
    );
    errors(
        machine(
            json!({"P": {"Type": "Parallel", "Branches": [branch(json!({"X": {"Type": "Pass", "Next": "Y"}}))], "End": true}}),
        ),
        &[
            (MTT, "/States/P/Branches/0/States/X/Next"),
            ("MISSING_END_STATE", "/States/P/Branches/0"),
        ],
    );
    errors(
        machine(
            json!({"M": {"Type": "Map", "ItemProcessor": branch(json!({"X": {"Type": "Succeed"}, "Y": {"Type": "Succeed"}})), "End": true}}),
        ),
        &[(MTT, "/States/M/ItemProcessor/States/Y")],
    );
    errors(
        machine(
            json!({"A": {"Type": "Pass", "Next": "M"}, "M": {"Type": "Map", "Iterator": branch(json!({"A": {"Type": "Succeed"}})), "End": true}}),
        ),
        &[("DUPLICATE_STATE_NAME", "/States/M/Iterator/States/A")],
    );
    // A state cannot jump out of its branch.
    errors(
        machine(
            json!({"P": {"Type": "Parallel", "Branches": [branch(json!({"X": {"Type": "Pass", "Next": "Done"}}))], "Next": "Done"}, "Done": {"Type": "Succeed"}}),
        ),
        &[
            (MTT, "/States/P/Branches/0/States/X/Next"),
            ("MISSING_END_STATE", "/States/P/Branches/0"),
        ],
    );
    errors(
        machine(json!({"M": {"Type": "Map", "End": true}})),
        &[(SVF, "/States/M")],
    );
    errors(
        machine(
            json!({"M": {"Type": "Map", "ItemProcessor": {"QueryLanguage": "JSONata", "StartAt": "X", "States": {"X": {"Type": "Succeed"}}}, "End": true}}),
        ),
        &[(SVF, "/States/M/ItemProcessor")],
    );
}

#[test]
fn paths_and_intrinsics() {
    let pass =
        |field: &str, v: Value| machine(json!({"A": {"Type": "Pass", field: v, "End": true}}));
    errors(
        pass("InputPath", json!("$.a[")),
        &[(SVF, "/States/A/InputPath")],
    );
    errors(
        pass("OutputPath", json!("a.b")),
        &[(SVF, "/States/A/OutputPath")],
    );
    errors(
        pass("ResultPath", json!("$.a[*]")),
        &[(SVF, "/States/A/ResultPath")],
    );
    errors(
        pass("ResultPath", json!("$$.Execution")),
        &[(SVF, "/States/A/ResultPath")],
    );
    errors(pass("InputPath", json!(null)), &[]);
    errors(pass("ResultPath", json!(null)), &[]);
    errors(pass("InputPath", json!("$.items[?(@.ok == true)]")), &[]);
    errors(
        pass("Parameters", json!({"x.$": "States.MathAdd(1)"})),
        &[(SVF, "/States/A/Parameters")],
    );
    errors(
        pass("Parameters", json!({"x": {"y.$": "States.Nope()"}})),
        &[(SVF, "/States/A/Parameters")],
    );
    errors(
        pass("Parameters", json!({"x.$": "$.a", "x": 1})),
        &[(SVF, "/States/A/Parameters")],
    );
    errors(
        pass("Parameters", json!({"x.$": 1})),
        &[(SVF, "/States/A/Parameters")],
    );
    errors(
        pass("Parameters", json!("$.a")),
        &[(SVF, "/States/A/Parameters")],
    );
    errors(
        pass(
            "Parameters",
            json!({"x.$": "$$.Map.Item.Value", "y.$": "$var.z", "u.$": "States.UUID()"}),
        ),
        &[],
    );
    errors(
        pass("Assign", json!({"bad name": 1})),
        &[(SVF, "/States/A/Assign/bad name")],
    );
}

#[test]
fn retry_and_catch() {
    let task = |retry: Value, catch: Value| {
        machine(
            json!({"A": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "Retry": retry, "Catch": catch, "End": true}, "B": {"Type": "Succeed"}}),
        )
    };
    errors(
        task(
            json!([{"ErrorEquals": ["X"], "BackoffRate": 0.5}]),
            json!([]),
        ),
        &[(SVF, "/States/A/Retry/0/BackoffRate"), (MTT, "/States/B")],
    );
    errors(
        task(
            json!([{"ErrorEquals": ["X"], "MaxAttempts": -1, "IntervalSeconds": 0}]),
            json!([]),
        ),
        &[
            (SVF, "/States/A/Retry/0/MaxAttempts"),
            (SVF, "/States/A/Retry/0/IntervalSeconds"),
            (MTT, "/States/B"),
        ],
    );
    errors(
        task(json!([{"ErrorEquals": []}]), json!([])),
        &[(SVF, "/States/A/Retry/0/ErrorEquals"), (MTT, "/States/B")],
    );
    errors(
        task(
            json!([{"ErrorEquals": ["X"], "JitterStrategy": "HALF"}]),
            json!([]),
        ),
        &[
            (SVF, "/States/A/Retry/0/JitterStrategy"),
            (MTT, "/States/B"),
        ],
    );
    errors(
        task(json!([{"ErrorEquals": ["States.ALL", "X"]}]), json!([])),
        &[(SVF, "/States/A/Retry/0/ErrorEquals"), (MTT, "/States/B")],
    );
    errors(
        task(
            json!([{"ErrorEquals": ["States.ALL"]}, {"ErrorEquals": ["X"]}]),
            json!([]),
        ),
        &[(SVF, "/States/A/Retry/0/ErrorEquals"), (MTT, "/States/B")],
    );
    errors(
        task(
            json!([]),
            json!([{"ErrorEquals": ["States.Custom"], "Next": "B"}]),
        ),
        &[(SVF, "/States/A/Catch/0/ErrorEquals/0")],
    );
    // The Catch has no Next, so whether B is reachable is unknown: no guess is reported.
    errors(
        task(json!([]), json!([{"ErrorEquals": ["States.TaskFailed"]}])),
        &[(SVF, "/States/A/Catch/0")],
    );
    errors(
        task(
            json!([{"ErrorEquals": ["States.Timeout"], "MaxDelaySeconds": 10, "JitterStrategy": "FULL"}]),
            json!([{"ErrorEquals": ["States.ALL"], "Next": "B", "ResultPath": "$.error"}]),
        ),
        &[],
    );
}

#[test]
fn task_fields() {
    let task = |extra: Value| {
        let mut t = json!({"Type": "Task", "Resource": "arn:aws:states:::aws-sdk:cloudformation:createStack", "End": true});
        t.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        machine(json!({"T": t}))
    };
    errors(
        task(json!({"TimeoutSeconds": 0})),
        &[(SVF, "/States/T/TimeoutSeconds")],
    );
    errors(
        task(json!({"TimeoutSeconds": 5, "TimeoutSecondsPath": "$.t"})),
        &[(SVF, "/States/T")],
    );
    errors(
        task(json!({"TimeoutSeconds": 5, "HeartbeatSeconds": 5})),
        &[(SVF, "/States/T/HeartbeatSeconds")],
    );
    errors(
        task(json!({"HeartbeatSecondsPath": "$.h[*]"})),
        &[(SVF, "/States/T/HeartbeatSecondsPath")],
    );
    errors(
        task(json!({"Resource": "arn:aws:states:::dynamodb:query"})),
        &[(SVF, "/States/T/Resource")],
    );
    errors(
        task(json!({"Credentials": {"RoleArn": "arn:aws:iam::123456789012:role/x"}})),
        &[],
    );
    let express = |resource: &str| {
        let def = machine(json!({"T": {"Type": "Task", "Resource": resource, "End": true}}));
        diagnostics(&def, MachineType::Express, Severity::Error)
    };
    assert_eq!(
        express("arn:aws:states:::states:startExecution.sync"),
        vec![(SVF.to_owned(), "/States/T/Resource".to_owned())]
    );
    assert_eq!(
        express("arn:aws:states:::lambda:invoke.waitForTaskToken"),
        vec![(SVF.to_owned(), "/States/T/Resource".to_owned())]
    );
    assert_eq!(express("arn:aws:states:::lambda:invoke"), vec![]);
}

#[test]
fn choice_rules() {
    let choice = |rule: Value| {
        machine(
            json!({"C": {"Type": "Choice", "Choices": [rule], "Default": "D"}, "D": {"Type": "Succeed"}}),
        )
    };
    errors(
        choice(json!({"Variable": "$.x", "Next": "D"})),
        &[(SVF, "/States/C/Choices/0")],
    );
    errors(
        choice(json!({"Variable": "$.x", "IsNull": true, "IsPresent": true, "Next": "D"})),
        &[(SVF, "/States/C/Choices/0")],
    );
    errors(
        choice(json!({"Variable": "$.x", "NumericEquals": "1", "Next": "D"})),
        &[(SVF, "/States/C/Choices/0/NumericEquals")],
    );
    errors(
        choice(json!({"Variable": "$.x", "StringEquals": 1, "Next": "D"})),
        &[(SVF, "/States/C/Choices/0/StringEquals")],
    );
    errors(
        choice(json!({"Variable": "$.x", "TimestampEquals": "2016-03-14 01:59:00Z", "Next": "D"})),
        &[(SVF, "/States/C/Choices/0/TimestampEquals")],
    );
    errors(
        choice(json!({"Variable": "$.x", "NumericEqualsPath": "x", "Next": "D"})),
        &[(SVF, "/States/C/Choices/0/NumericEqualsPath")],
    );
    errors(
        choice(json!({"Variable": "$.x", "StringMatchesPath": "$.y", "Next": "D"})),
        &[(SVF, "/States/C/Choices/0")],
    );
    errors(
        choice(json!({"Variable": "$.x", "IsNull": true})),
        &[(SVF, "/States/C/Choices/0")],
    );
    errors(
        choice(json!({"And": [{"Variable": "$.x", "IsNull": true, "Next": "D"}], "Next": "D"})),
        &[(SVF, "/States/C/Choices/0/And/0")],
    );
    errors(
        choice(json!({"Or": [], "Next": "D"})),
        &[(SVF, "/States/C/Choices/0/Or")],
    );
    errors(
        choice(
            json!({"Not": {"And": [{"Variable": "$.x", "NumericGreaterThanEqualsPath": "$.y"}, {"Variable": "$$.Execution.Name", "StringMatches": "run-*"}]}, "Next": "D"}),
        ),
        &[],
    );
    errors(
        machine(json!({"C": {"Type": "Choice", "Choices": []}})),
        &[(SVF, "/States/C/Choices"), ("MISSING_END_STATE", "")],
    );
}

#[test]
fn wait_fields() {
    let wait = |extra: Value| {
        let mut w = json!({"Type": "Wait", "End": true});
        w.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        machine(json!({"W": w}))
    };
    errors(wait(json!({})), &[(SVF, "/States/W")]);
    errors(
        wait(json!({"Seconds": 1, "SecondsPath": "$.s"})),
        &[(SVF, "/States/W")],
    );
    errors(wait(json!({"Seconds": -1})), &[(SVF, "/States/W/Seconds")]);
    errors(wait(json!({"Seconds": 1.5})), &[(SVF, "/States/W/Seconds")]);
    errors(
        wait(json!({"Timestamp": "2016-03-14T01:59:00"})),
        &[(SVF, "/States/W/Timestamp")],
    );
    errors(wait(json!({"TimestampPath": "$.when"})), &[]);
}

#[test]
fn map_fields() {
    let map = |extra: Value| {
        let mut m = json!({"Type": "Map", "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"}, "StartAt": "X", "States": {"X": {"Type": "Succeed"}}}, "End": true});
        m.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        machine(json!({"M": m}))
    };
    errors(
        map(json!({"Label": "a".repeat(41)})),
        &[(SVF, "/States/M/Label")],
    );
    errors(map(json!({"Label": "a b"})), &[(SVF, "/States/M/Label")]);
    errors(map(json!({"Label": "a".repeat(40)})), &[]);
    errors(
        map(json!({"ToleratedFailurePercentage": 101})),
        &[(SVF, "/States/M/ToleratedFailurePercentage")],
    );
    errors(
        map(json!({"ToleratedFailureCount": -1})),
        &[(SVF, "/States/M/ToleratedFailureCount")],
    );
    errors(
        map(json!({"MaxConcurrency": 1, "MaxConcurrencyPath": "$.n"})),
        &[(SVF, "/States/M")],
    );
    errors(
        map(json!({"ItemsPath": "$.items[*]"})),
        &[(SVF, "/States/M/ItemsPath")],
    );
    errors(
        map(json!({"ItemSelector": {"v.$": "$$.Map.Item.Value"}, "Parameters": {}})),
        &[(SVF, "/States/M")],
    );
    errors(
        map(
            json!({"ItemReader": {"Resource": "arn:aws:states:::s3:getObject", "ReaderConfig": {"InputType": "CSV"}, "Parameters": {"Bucket.$": "$.bucket", "Key": "k"}}, "ItemBatcher": {"MaxItemsPerBatch": 10}, "ResultWriter": {"Resource": "arn:aws:states:::s3:putObject", "Parameters": {"Bucket": "b"}}}),
        ),
        &[],
    );
}

#[test]
fn query_languages() {
    errors(
        machine(json!({"A": {"Type": "Pass", "Output": {"x": 1}, "End": true}})),
        &[(SVF, "/States/A")],
    );
    errors(
        machine(
            json!({"A": {"Type": "Pass", "QueryLanguage": "JSONata", "Parameters": {}, "End": true}}),
        ),
        &[(SVF, "/States/A")],
    );
    errors(
        machine(
            json!({"A": {"Type": "Pass", "QueryLanguage": "JSONata", "Output": "{% $states.input %}", "End": true}}),
        ),
        &[],
    );
    errors(
        machine(json!({"A": {"Type": "Pass", "QueryLanguage": "XPath", "End": true}})),
        &[(SVF, "/States/A/QueryLanguage")],
    );
    errors(
        json!({"QueryLanguage": "JSONata", "StartAt": "A", "States": {"A": {"Type": "Pass", "QueryLanguage": "JSONPath", "End": true}}}),
        &[(SVF, "/States/A")],
    );
    // States inside a Map inherit the machine's language, not the Map's.
    errors(
        machine(
            json!({"M": {"Type": "Map", "QueryLanguage": "JSONata", "ItemProcessor": {"StartAt": "X", "States": {"X": {"Type": "Pass", "Output": 1, "End": true}}}, "End": true}}),
        ),
        &[(SVF, "/States/M/ItemProcessor/States/X")],
    );
    errors(
        json!({"QueryLanguage": "JSONata", "StartAt": "C", "States": {"C": {"Type": "Choice", "Choices": [{"Condition": "{% $states.input.x > 1 %}", "Next": "D", "Output": 1}], "Default": "D"}, "D": {"Type": "Succeed"}}}),
        &[],
    );
    errors(
        json!({"QueryLanguage": "JSONata", "StartAt": "C", "States": {"C": {"Type": "Choice", "Choices": [{"Variable": "$.x", "IsNull": true, "Next": "D"}], "Default": "D"}, "D": {"Type": "Succeed"}}}),
        // Variable and IsNull are JSONPath-only, and Condition is missing.
        &[
            (SVF, "/States/C/Choices/0"),
            (SVF, "/States/C/Choices/0"),
            (SVF, "/States/C/Choices/0"),
        ],
    );
    errors(
        json!({"QueryLanguage": "JSONata", "StartAt": "W","States": {"W": {"Type": "Wait", "Seconds": "{% $states.input.s %}", "End": true}}}),
        &[],
    );
    errors(
        json!({"QueryLanguage": "JSONata", "StartAt": "W", "States": {"W": {"Type": "Wait", "SecondsPath": "$.s", "End": true}}}),
        &[(SVF, "/States/W")],
    );
}

#[test]
fn jsonata_expressions_are_checked_as_aws_does() {
    const INVALID: &str = "INVALID_JSONATA_EXPRESSION";
    const UNSUPPORTED: &str = "UNSUPPORTED_JSONATA_EXPRESSION";
    let jsonata = |states: Value| {
        let mut m = machine(states);
        m["QueryLanguage"] = json!("JSONata");
        m
    };
    // Expressions that do not parse, wherever they are.
    errors(
        jsonata(
            json!({"A": {"Type": "Pass", "Output": {"n": "{% $states.input.( %}"}, "End": true}}),
        ),
        &[(INVALID, "/States/A/Output/n")],
    );
    errors(
        jsonata(json!({"A": {"Type": "Pass", "Assign": {"x": ["{% 1 + %}"]}, "End": true}})),
        &[(INVALID, "/States/A/Assign/x/0")],
    );
    errors(
        jsonata(
            json!({"C": {"Type": "Choice", "Choices": [{"Condition": "{% $states.input.x >>> 1 %}", "Next": "D"}], "Default": "D"}, "D": {"Type": "Succeed"}}),
        ),
        &[(INVALID, "/States/C/Choices/0/Condition")],
    );
    errors(
        jsonata(json!({"W": {"Type": "Wait", "Seconds": "{% ) %}", "End": true}})),
        &[(INVALID, "/States/W/Seconds")],
    );
    errors(
        jsonata(json!({"F": {"Type": "Fail", "Error": "{% 'a' & %}"}})),
        &[(INVALID, "/States/F/Error")],
    );
    errors(
        jsonata(
            json!({"M": {"Type": "Map", "MaxConcurrency": "{% [ %}", "ToleratedFailurePercentage": "{% { %}",
            "ItemProcessor": {"StartAt": "X", "States": {"X": {"Type": "Succeed"}}}, "End": true}}),
        ),
        &[
            (INVALID, "/States/M/MaxConcurrency"),
            (INVALID, "/States/M/ToleratedFailurePercentage"),
        ],
    );
    // A field read at the top level, where there is no context item: once per name.
    errors(
        jsonata(
            json!({"A": {"Type": "Pass", "Output": {"v": "{% phone.number & phone.area %}", "n": "{% $count(items) %}"}, "End": true}}),
        ),
        &[
            (UNSUPPORTED, "/States/A/Output/n"),
            (UNSUPPORTED, "/States/A/Output/v"),
        ],
    );
    // A function body keeps the context where it is written; `$$` is the absent top level.
    errors(
        jsonata(
            json!({"A": {"Type": "Pass", "Output": {"m": "{% $map($states.input.a, function($x) { b }) %}", "r": "{% $$.x %}"}, "End": true}}),
        ),
        &[
            (UNSUPPORTED, "/States/A/Output/m"),
            (UNSUPPORTED, "/States/A/Output/r"),
        ],
    );
    // `$states.errorOutput` exists only in a catcher's Output and Assign.
    errors(
        jsonata(
            json!({"T": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
            "Arguments": {"e": "{% $states.errorOutput %}"},
            "Catch": [{"ErrorEquals": ["States.ALL"], "Output": {"e": "{% $states.errorOutput.Error %}"},
                "Assign": {"cause": "{% $states.errorOutput.Cause %}"}, "Next": "D"}],
            "End": true}, "D": {"Type": "Succeed"}}),
        ),
        &[(UNSUPPORTED, "/States/T/Arguments/e")],
    );
    // Names read inside a path, a predicate or an object constructor applied to a value are
    // fine, as are variables; and text that only looks like an expression.
    errors(
        jsonata(json!({"A": {"Type": "Pass", "Output": {
            "a": "{% $states.input.items[price > 10].name %}",
            "b": "{% $states.input.{'x': name} %}",
            "c": "{% $map($states.input.items, function($i) { $i.name }) %}",
            "g": "{% $states.input.items^(price).name %}",
            "d": "{% ($x := $states.input.n; $x * 2) %}",
            "e": "{% $count($states.input.items) %}",
            "s": " {% not( %} "}, "End": true}})),
        &[],
    );
}

#[test]
fn state_names() {
    let long = "n".repeat(81);
    errors(
        json!({"StartAt": long, "States": {long.clone(): {"Type": "Succeed"}}}),
        &[("INVALID_STATE_NAME", &format!("/States/{long}"))],
    );
    let ok = "n".repeat(80);
    errors(
        json!({"StartAt": ok, "States": {ok: {"Type": "Succeed"}}}),
        &[],
    );
    errors(
        json!({"StartAt": "a/b~c", "States": {"a/b~c": {"Type": "Pass", "Next": "x"}, "x": {"Type": "Succeed"}}}),
        &[],
    );
    errors(
        json!({"StartAt": "a/b", "States": {"a/b": {"Type": "Pass", "Next": "nope"}}}),
        &[(MTT, "/States/a~1b/Next"), ("MISSING_END_STATE", "")],
    );
}

#[test]
fn aws_warnings() {
    warnings(
        machine(json!({"A": {"Type": "Pass", "Parameters": {"a": "$.x"}, "End": true}})),
        &[("NO_DOLLAR", "/States/A/Parameters/a")],
    );
    warnings(
        machine(json!({"A": {"Type": "Pass", "Parameters": {"a": "States.UUID()"}, "End": true}})),
        &[("NO_DOLLAR", "/States/A/Parameters/a")],
    );
    warnings(
        machine(json!({"F": {"Type": "Fail", "Error": "$.error"}})),
        &[("NO_PATH", "/States/F/Error")],
    );
    warnings(
        machine(json!({"A": {"Type": "Pass", "Result": {"a.$": "$.x"}, "End": true}})),
        &[("PASS_RESULT_IS_STATIC", "/States/A/Result")],
    );
    warnings(
        machine(
            json!({"T": {"Type": "Task", "Resource": "arn:aws:states:::aws-sdk:cloudformation:createStack", "Region": "eu-west-1", "End": true}}),
        ),
        &[("STEPSTONE_EXTENSION", "/States/T/Region")],
    );
    warnings(
        machine(
            json!({"T": {"Type": "Task", "Resource": "arn:aws:states:us-west-1::aws-sdk:cloudformation:createStack", "End": true}}),
        ),
        &[("STEPSTONE_EXTENSION", "/States/T/Resource")],
    );
    warnings(
        machine(
            json!({"T": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "RegionPath": "$.region", "End": true}}),
        ),
        &[("STEPSTONE_EXTENSION", "/States/T/RegionPath")],
    );
}

#[test]
fn every_problem_is_reported_not_only_the_first() {
    let def = json!({"StartAt": "A", "States": {
        "A": {"Type": "Pass", "InputPath": "bad", "Next": "B"},
        "B": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "Retry": [{"ErrorEquals": ["X"], "BackoffRate": 0}], "Next": "Nowhere"},
        "C": {"Type": "Wait", "End": true}
    }});
    // Five problems in three states, of two kinds: all of them come out.
    errors(
        def,
        &[
            (MTT, "/States/B/Next"),
            (MTT, "/States/C"),
            (SVF, "/States/A/InputPath"),
            (SVF, "/States/B/Retry/0/BackoffRate"),
            (SVF, "/States/C"),
        ],
    );
}
