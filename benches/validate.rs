//! Validating and compiling definitions: a 1,000-state machine (the target is under 20 ms), and
//! the shipped multi-region deployment example.

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::{Value, json};
use stepstone::asl::{Options, validate, validate_str};

/// 1,000 states of every kind with paths, templates, intrinsics, Retry/Catch and Choice rules,
/// chained in one line.
fn thousand_states() -> Value {
    let mut states = serde_json::Map::new();
    let n = 1000;
    for i in 0..n {
        let next = format!("S{}", i + 1);
        let state = match i % 5 {
            0 => {
                json!({"Type": "Pass", "Parameters": {"a.$": "$.x", "b.$": "States.Format('item {}', $.y)", "c": [1, 2, {"d.$": "$$.Execution.Id"}]}, "ResultPath": "$.r", "Next": next})
            }
            1 => {
                json!({"Type": "Task", "Resource": "arn:aws:states:::aws-sdk:cloudformation:describeStacks", "Parameters": {"StackName.$": "$.stack"},
                        "ResultSelector": {"status.$": "$.Stacks[0].StackStatus"}, "ResultPath": "$.stack",
                        "Retry": [{"ErrorEquals": ["CloudFormation.CloudFormationException"], "IntervalSeconds": 2, "BackoffRate": 2, "MaxAttempts": 3}],
                        "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Failed", "ResultPath": "$.error"}], "Next": next})
            }
            2 => json!({"Type": "Choice", "Choices": [
                            {"And": [{"Variable": "$.n", "NumericGreaterThanEquals": 1}, {"Variable": "$.s", "StringMatches": "ready*"}], "Next": next},
                            {"Variable": "$.t", "TimestampLessThanPath": "$.deadline", "Next": next}],
                        "Default": next}),
            3 => json!({"Type": "Wait", "SecondsPath": "$.delay", "Next": next}),
            _ => {
                json!({"Type": "Pass", "InputPath": "$.items[?(@.ok == true)]", "OutputPath": "$.a['b c'][0]", "Next": next})
            }
        };
        states.insert(format!("S{i}"), state);
    }
    states.insert(format!("S{n}"), json!({"Type": "Succeed"}));
    states.insert(
        "Failed".into(),
        json!({"Type": "Fail", "Error": "Failed", "CausePath": "$.error.Cause"}),
    );
    json!({"StartAt": "S0", "States": states})
}

fn bench(c: &mut Criterion) {
    let big = thousand_states();
    let big_text = big.to_string();
    let v = validate(&big, Options::default());
    assert!(
        v.is_ok(),
        "{:?}",
        &v.diagnostics[..v.diagnostics.len().min(3)]
    );

    c.bench_function("validate 1000 states (from text)", |b| {
        b.iter(|| validate_str(std::hint::black_box(&big_text), Options::default()))
    });
    c.bench_function("validate 1000 states (parsed JSON)", |b| {
        b.iter(|| validate(std::hint::black_box(&big), Options::default()))
    });

    let example = include_str!("../examples/multi-region-deploy/deploy.asl.json");
    c.bench_function("validate multi-region example", |b| {
        b.iter(|| validate_str(std::hint::black_box(example), Options::default()))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
