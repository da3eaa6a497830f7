//! How large a state's output can be, known from its fields alone: the bounds that let the
//! engine check the limits on every state's output (nesting depth, 256 KiB) without walking the
//! output at every state. A loop of JSONPath states over a document grows it by at most what
//! these bounds say per pass, so the engine walks the document only when the sum of the bounds
//! could pass a limit.
//!
//! A bound must never be below the truth (an output over the limit would go unnoticed); it may
//! be above it (the engine then walks the value and learns its real size). What reads outside
//! the state's input (`$$`, a variable, a Task's result, a JSONata expression) has no bound:
//! `None`. The types are in `growth.rs`.

use serde_json::Value;

use crate::growth::{Growth, SizeBound};
use crate::intrinsics::{Arg, Call, Function};
use crate::parse::Dynamic;
use crate::path::{Path, Root};
use crate::states::{DataFlow, State, StateKind};
use crate::template::Template;

/// [`State::growth`]: known for a JSONPath Pass, Choice, Wait, Succeed or Fail that reads
/// nothing but its input, and for a JSONPath Map or Parallel whose fields read nothing but its
/// input and its children's outputs; `None` for the rest (a JSONata state, a Task, a
/// distributed Map). `value` is the state's JSON.
pub(crate) fn growth(value: &Value, state: &State) -> Option<Growth> {
    if state.query_language == crate::QueryLanguage::Jsonata {
        return None;
    }
    Some(Growth {
        depth: depth_growth(value, state)?,
        size: size_growth(state)?,
    })
}

/// [`State::children_growth`]: for a JSONPath Map or Parallel, how much larger than the state's
/// input each child's input can be (a Parallel's Parameters; a Map's ItemSelector, where
/// `$$.Map.Item.Value` is a part of the input).
pub(crate) fn children_growth(value: &Value, state: &State) -> Option<Growth> {
    if state.query_language == crate::QueryLanguage::Jsonata {
        return None;
    }
    let (flow, template_field, in_map) = match &state.kind {
        StateKind::Parallel(p) => (&p.flow, p.flow.parameters.as_ref(), false),
        StateKind::Map(m) if inline(m) => (
            &m.flow,
            m.item_selector.as_ref().or(m.flow.parameters.as_ref()),
            true,
        ),
        _ => return None,
    };
    let effective = input_path(flow)?;
    let size = match template_field {
        Some(t) => template(t, in_map)?.after(effective),
        None => effective,
    };
    Some(Growth {
        depth: depth_of_fields(&own_fields(value)?, in_map)?,
        size,
    })
}

/// A Map whose items come from its input and whose results form its output (no ItemReader,
/// ItemBatcher or ResultWriter).
fn inline(m: &crate::states::Map) -> bool {
    m.item_reader.is_none() && m.item_batcher.is_none() && m.result_writer.is_none()
}

/// The bound on a JSONPath state's output size. For a Map or Parallel it is a bound in terms
/// of its input and its children's outputs together (the array of them, as ResultSelector
/// sees it): both are within their sum.
fn size_growth(state: &State) -> Option<SizeBound> {
    match &state.kind {
        StateKind::Pass(pass) => {
            let flow = &pass.flow;
            let effective = input_path(flow)?;
            let result = match (&pass.result, &flow.parameters) {
                (Some(result), _) => SizeBound::fixed(json_size(result)),
                (None, Some(parameters)) => template(parameters, false)?.after(effective),
                (None, None) => effective,
            };
            placed(flow, result)
        }
        StateKind::Map(m) if inline(m) => gathered(&m.flow),
        StateKind::Parallel(p) => gathered(&p.flow),
        StateKind::Choice(s) => passed_through(&s.flow),
        StateKind::Wait(s) => passed_through(&s.flow),
        StateKind::Succeed(s) => passed_through(&s.flow),
        // Its output goes nowhere: the run fails.
        StateKind::Fail(_) => Some(SizeBound::INPUT),
        StateKind::Task(_) | StateKind::Map(_) => None,
    }
}

/// A Map's or Parallel's output: its children's outputs through ResultSelector, placed into the
/// input by ResultPath, through OutputPath.
fn gathered(flow: &DataFlow) -> Option<SizeBound> {
    let result = match &flow.result_selector {
        Some(t) => template(t, false)?,
        None => SizeBound::INPUT,
    };
    placed(flow, result)
}

/// The output of a state whose result is within `result`: placed by ResultPath, through
/// OutputPath.
fn placed(flow: &DataFlow, result: SizeBound) -> Option<SizeBound> {
    // OutputPath picking within where ResultPath put the result (`$.r`, then `$.r` or
    // `$.r.x`) outputs a part of the result.
    let within_result = |r: &Path| {
        let out = flow
            .output_path
            .as_ref()
            .filter(|o| *o.root() == Root::Input);
        matches!((out.and_then(Path::steps), r.steps()), (Some(o), Some(r)) if o.starts_with(r))
    };
    let placed = match &flow.result_path {
        Some(path) if within_result(path) => return Some(result),
        // ResultPath: null keeps the raw input.
        None => SizeBound::INPUT,
        Some(path) if path.steps().is_some_and(<[_]>::is_empty) => result,
        // The result under new keys in a copy of the input: each step makes at most an
        // object with one key (`{"key":` and `}`).
        Some(path) => SizeBound::INPUT
            .plus(result)
            .and_bytes(escaped(path.as_str()).saturating_mul(2)),
    };
    Some(output_path(flow)?.after(placed))
}

/// A state that outputs its input through InputPath and OutputPath.
fn passed_through(flow: &DataFlow) -> Option<SizeBound> {
    Some(output_path(flow)?.after(input_path(flow)?))
}

fn input_path(flow: &DataFlow) -> Option<SizeBound> {
    match &flow.input_path {
        Some(p) => path(p, false),
        // InputPath: null makes `{}`.
        None => Some(SizeBound::fixed(2)),
    }
}

fn output_path(flow: &DataFlow) -> Option<SizeBound> {
    match &flow.output_path {
        Some(p) => path(p, false),
        None => Some(SizeBound::fixed(2)),
    }
}

/// What a path selects from the input; `in_map`: in a Map's ItemSelector, where the item
/// (`$$.Map.Item.Value`) is a part of the input and its index a number.
fn path(p: &Path, in_map: bool) -> Option<SizeBound> {
    match p.root() {
        Root::Input => {}
        Root::Context if in_map && p.as_str().starts_with("$$.Map.Item.Index") => {
            return Some(SizeBound::fixed(20));
        }
        Root::Context if in_map && p.as_str().starts_with("$$.Map.Item.Value") => {}
        Root::Context | Root::Variable(_) => return None,
    }
    if p.is_singular() {
        return Some(SizeBound::INPUT);
    }
    let text = p.as_str();
    if text.contains("..") {
        // Recursive descent selects a value and its descendants too: copies as many as the
        // input is deep, which nothing here bounds.
        return None;
    }
    // A query's matches, as an array. Without a union each match is a distinct part of the
    // input (at most the input, plus a comma per match); a union (`['a','a']`) may select a
    // part again, once per name, and unions in a row multiply: 2^commas bounds that product.
    let commas = text.bytes().filter(|&b| b == b',').count();
    let copies = 1u64.checked_shl(u32::try_from(commas).ok()?)?;
    Some(
        SizeBound::INPUT
            .times(copies.saturating_mul(2))
            .and_bytes(2),
    )
}

fn template(t: &Template, in_map: bool) -> Option<SizeBound> {
    match t {
        Template::Static(v) => Some(SizeBound::fixed(json_size(v))),
        Template::Object(fields) => fields.iter().try_fold(SizeBound::fixed(2), |sum, (k, t)| {
            Some(sum.plus(template(t, in_map)?).and_bytes(escaped(k) + 2))
        }),
        Template::Array(items) => items.iter().try_fold(SizeBound::fixed(2), |sum, t| {
            Some(sum.plus(template(t, in_map)?).and_bytes(1))
        }),
        Template::Dynamic(Dynamic::Path(p)) => path(p, in_map),
        Template::Dynamic(Dynamic::Call(c)) => call(c, in_map),
    }
}

/// What an intrinsic function can make, from the bounds on its arguments. Where a function
/// makes a string of JSON text, escaping can double it (`"` becomes `\"`); a control character
/// becomes six bytes (`\u0001`).
fn call(c: &Call, in_map: bool) -> Option<SizeBound> {
    let args = c
        .args
        .iter()
        .map(|a| match a {
            Arg::Literal(v) => Some(SizeBound::fixed(json_size(v))),
            Arg::Path(p) => path(p, in_map),
            Arg::Call(c) => call(c, in_map),
        })
        .collect::<Option<Vec<_>>>()?;
    let sum = || args.iter().fold(SizeBound::fixed(0), |sum, &a| sum.plus(a));
    let first = || args.first().copied().unwrap_or(SizeBound::fixed(0));
    let bound = match c.function {
        // Strings inserted as they are, other values as JSON text that escaping can double;
        // the template's literal text, escaped.
        Function::Format => sum().times(2).and_bytes(
            c.format
                .iter()
                .flatten()
                .map(|piece| match piece {
                    crate::intrinsics::FormatPiece::Text(t) => escaped(t),
                    crate::intrinsics::FormatPiece::Placeholder => 0,
                })
                .sum::<u64>()
                .saturating_add(2),
        ),
        Function::JsonToString => first().times(2).and_bytes(2),
        // Parsing normalizes numbers, which can lengthen them (`1e15` is written
        // `1000000000000000.0`: 4 bytes become 18).
        Function::StringToJson => first().times(5).and_bytes(2),
        Function::Array => sum().and_bytes(2 + args.len() as u64),
        // Each element in an array of its own: 2 brackets and a comma more per element of at
        // least one byte and its comma.
        Function::ArrayPartition => first().times(3).and_bytes(2),
        Function::ArrayGetItem | Function::ArrayUnique => first(),
        Function::JsonMerge => sum(),
        // Each character may end a piece: `",",` becomes `"","",""`.
        Function::StringSplit => first().times(4).and_bytes(2),
        // 4 characters per 3 bytes, none escaped.
        Function::Base64Encode => first().times(2).and_bytes(4),
        // 3 bytes per 4 characters, each control byte escaped to 6.
        Function::Base64Decode => first().times(5).and_bytes(2),
        Function::ArrayRange => SizeBound::fixed(
            (crate::intrinsics::ARRAY_RANGE_MAX as u64) * 21 + 2, // 20 digits and a comma each
        ),
        // A number, a boolean, a UUID or a hex digest (SHA-512: 128 digits).
        Function::ArrayContains
        | Function::ArrayLength
        | Function::MathAdd
        | Function::MathRandom
        | Function::Uuid
        | Function::Hash => SizeBound::fixed(160),
    };
    Some(bound)
}

/// How many levels deeper than its input a JSONPath state's output can nest. A Choice, Wait,
/// Succeed or Fail outputs a part of its input (InputPath, OutputPath); a Pass builds its output
/// from its fields (Parameters, Result, ResultPath, intrinsic calls), which nest no deeper than
/// the state's own JSON plus what its paths and intrinsic calls add.
fn depth_growth(value: &Value, state: &State) -> Option<u16> {
    match state.kind {
        StateKind::Choice(_) | StateKind::Wait(_) | StateKind::Succeed(_) | StateKind::Fail(_) => {
            Some(0)
        }
        StateKind::Pass(_) => depth_of_fields(value, false),
        // Over the children's outputs (one level down in the array of them) and the input.
        StateKind::Map(ref m) if inline(m) => depth_of_fields(&output_fields(value)?, false),
        StateKind::Parallel(_) => depth_of_fields(&output_fields(value)?, false),
        StateKind::Task(_) | StateKind::Map(_) => None,
    }
}

/// A Map's or Parallel's own fields: not the definitions nested in it.
fn own_fields(value: &Value) -> Option<Value> {
    fields_except(value, &["Branches", "ItemProcessor", "Iterator"])
}

/// The fields that make a Map's or Parallel's output from its children's: not those that make
/// its children's inputs (ItemSelector, Parameters), nor the nested definitions.
fn output_fields(value: &Value) -> Option<Value> {
    fields_except(
        value,
        &[
            "Branches",
            "ItemProcessor",
            "Iterator",
            "ItemSelector",
            "Parameters",
        ],
    )
}

fn fields_except(value: &Value, except: &[&str]) -> Option<Value> {
    let Value::Object(fields) = value else {
        return None;
    };
    let mut own = fields.clone();
    for name in except {
        own.remove(*name);
    }
    Some(Value::Object(own))
}

/// How much deeper than the input a value built from `fields` can be; `None` when they read
/// outside the input (`$$`, a variable `$name`) or parse JSON (`States.StringToJson`).
/// `in_map`: a Map's item (`$$.Map.Item.Value`) is a part of its input.
fn depth_of_fields(fields: &Value, in_map: bool) -> Option<u16> {
    let outside_input = |s: &str| {
        let s = if in_map {
            s.replace("$$.Map.Item.Value", "")
                .replace("$$.Map.Item.Index", "")
        } else {
            s.to_owned()
        };
        s.contains("StringToJson")
            || s.contains("$$")
            || s.as_bytes()
                .windows(2)
                .any(|w| w[0] == b'$' && (w[1].is_ascii_alphabetic() || w[1] == b'_'))
    };
    // The deepest container, the longest path or call, and whether a string reads outside.
    let (mut deepest, mut longest, mut fresh) = (0, 0, false);
    let mut stack = vec![(fields, 0usize)];
    while let Some((v, depth)) = stack.pop() {
        match v {
            Value::String(s) => {
                // What a path or an intrinsic call can add: a segment of ResultPath per `.` or
                // `[`, a level per call (`States.Array(...)`).
                let levels = s
                    .bytes()
                    .filter(|b| matches!(b, b'.' | b'[' | b'('))
                    .count();
                longest = longest.max(levels);
                fresh |= outside_input(s);
            }
            Value::Array(items) => {
                deepest = deepest.max(depth + 1);
                stack.extend(items.iter().map(|item| (item, depth + 1)));
            }
            Value::Object(map) => {
                deepest = deepest.max(depth + 1);
                stack.extend(map.values().map(|item| (item, depth + 1)));
            }
            _ => {}
        }
    }
    if fresh {
        return None;
    }
    // Two of them may apply one after the other (Parameters then ResultPath; ResultSelector
    // then ResultPath), each nesting as deep as the state's JSON and its deepest path.
    u16::try_from(2 * (deepest + longest) + 1).ok()
}

/// The most bytes `text` takes as a JSON string, quotes included.
fn escaped(text: &str) -> u64 {
    (text.len() as u64).saturating_mul(6).saturating_add(2)
}

fn json_size(v: &Value) -> u64 {
    serde_json::to_vec(v).map_or(u64::MAX, |t| t.len() as u64)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::SizeBound;
    use crate::{Options, validate_str};

    /// The bound on the output size of `state`, the only state of a machine. (That outputs
    /// stay within their bounds is tested in the engine, which measures them.)
    fn bound(state: serde_json::Value) -> Option<SizeBound> {
        let def = json!({"StartAt": "S", "States": {"S": state}});
        let v = validate_str(&def.to_string(), Options::default());
        let machine = v.machine.expect("valid definition");
        let (_, s, _) = machine.root().state(machine.root().start());
        s.growth.map(|g| g.size)
    }

    #[test]
    fn pass_bounds_follow_its_fields() {
        let plain = bound(json!({"Type": "Pass", "End": true})).unwrap();
        assert_eq!(plain, SizeBound::INPUT);
        let fixed =
            bound(json!({"Type": "Pass", "Result": {"a": 1}, "ResultPath": "$", "End": true}));
        assert_eq!(fixed, Some(SizeBound::fixed(7)));
        // A copy of the input beside the input: two copies.
        let doubled = bound(json!({
            "Type": "Pass", "Parameters": {"x.$": "$"}, "ResultPath": "$.y", "End": true
        }))
        .unwrap();
        assert_eq!(doubled.factor, 2);
        // A counter: a number beside the input, whatever the input.
        let counter = bound(json!({
            "Type": "Pass", "Parameters": {"n.$": "States.MathAdd($.n, 1)"},
            "ResultPath": "$.c", "End": true
        }))
        .unwrap();
        assert_eq!(counter.factor, 1);
        assert!(counter.extra < 400, "{counter:?}");
        assert_eq!(
            bound(json!({"Type": "Pass", "InputPath": null, "OutputPath": null, "End": true})),
            Some(SizeBound::fixed(2))
        );
    }

    #[test]
    fn what_reads_outside_the_input_is_unbounded() {
        for state in [
            json!({"Type": "Pass", "Parameters": {"x.$": "$$.Execution.Input"}, "End": true}),
            json!({"Type": "Pass", "Parameters": {"x.$": "$..a"}, "End": true}),
            json!({"Type": "Pass", "Parameters": {"x.$": "States.Array($v)"}, "End": true}),
            json!({"Type": "Pass", "QueryLanguage": "JSONata", "Output": "{% $states.input %}", "End": true}),
            json!({"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:123456789012:function:f", "End": true}),
        ] {
            assert_eq!(bound(state.clone()), None, "{state}");
        }
    }

    #[test]
    fn escaping_functions_double_at_least() {
        let nested = bound(json!({
            "Type": "Pass",
            "Parameters": {"x.$": "States.JsonToString(States.JsonToString($))"},
            "ResultPath": "$", "End": true
        }))
        .unwrap();
        assert!(nested.factor >= 4, "{nested:?}");
    }

    #[test]
    fn a_map_item_is_a_part_of_the_input_and_children_outputs_are_gathered() {
        let def = json!({"StartAt": "M", "States": {"M": {"Type": "Map", "End": true,
            "ItemSelector": {"v.$": "$$.Map.Item.Value", "i.$": "$$.Map.Item.Index"},
            "ItemProcessor": {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}},
            "ResultPath": "$.out", "OutputPath": "$.out"}}});
        let v = validate_str(&def.to_string(), Options::default());
        let machine = v.machine.expect("valid definition");
        let (_, m, _) = machine.root().state(machine.root().start());
        let children = m.children_growth.expect("bounded children");
        assert_eq!(children.size.factor, 1);
        // OutputPath picks what ResultPath placed: the children's outputs alone.
        assert_eq!(m.growth.expect("bounded output").size, SizeBound::INPUT);
        // Outside a Map, the context is not a part of the input.
        let def = json!({"StartAt": "P", "States": {"P": {"Type": "Parallel", "End": true,
            "Parameters": {"v.$": "$$.Map.Item.Value"},
            "Branches": [{"StartAt": "B", "States": {"B": {"Type": "Pass", "End": true}}}]}}});
        let v = validate_str(&def.to_string(), Options::default());
        let machine = v.machine.expect("valid definition");
        let (_, p, _) = machine.root().state(machine.root().start());
        assert_eq!(p.children_growth, None);
    }
}
