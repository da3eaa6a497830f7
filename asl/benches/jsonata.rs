//! What one JSONata expression costs to evaluate (parsed once, as a definition's are), on a
//! state input of about 1 KB: a field read, an aggregate over an array, a string built from
//! several fields, and one of Step Functions' own functions.

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;
use stepstone_asl::jsonata::{Compiled, Scope};

fn bench(c: &mut Criterion) {
    let items: Vec<_> = (0..20)
        .map(|i| json!({"sku": format!("sku-{i}"), "price": i as f64 * 1.5, "qty": i % 4}))
        .collect();
    let states = json!({"input": {"order": {"id": "o-1", "customer": "Ada", "items": items}},
        "context": {"Execution": {"Id": "arn:aws:states:us-east-1:123456789012:execution:m:e"}}});
    let region = json!("eu-west-1");
    let expressions = [
        ("field", "$states.input.order.customer"),
        ("aggregate", "$sum($states.input.order.items.(price * qty))"),
        (
            "string",
            "$states.input.order.id & '/' & $region & '/' & $states.context.Execution.Id",
        ),
        ("partition", "$partition($states.input.order.items.sku, 6)"),
    ];
    let mut group = c.benchmark_group("jsonata");
    // Once per state: `$states` and the variables converted for the evaluator.
    group.bench_function("scope (1 KB of $states)", |b| {
        b.iter(|| Scope::new(&states, [("region", &region)], 1))
    });
    for (name, text) in expressions {
        let compiled = Compiled::compile(text).unwrap();
        let scope = Scope::new(&states, [("region", &region)], 1);
        assert!(compiled.evaluate(&scope).unwrap().is_some(), "{name}");
        group.bench_function(name, |b| b.iter(|| compiled.evaluate(&scope).unwrap()));
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
