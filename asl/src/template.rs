//! Payload templates: `Parameters`, `ResultSelector`, `ItemSelector` and JSONPath `Assign`.
//!
//! A field whose name ends in `.$` takes its value from a path or an intrinsic call; the suffix
//! is dropped from the output key. Everything else is copied. Subtrees with nothing to evaluate
//! are kept as one static value, so evaluating them is a clone.

use serde_json::Value;

use crate::diagnostic::{Code, child, index};
use crate::intrinsics;
use crate::parse::{Dynamic, Loader};

/// A compiled payload template.
#[derive(Debug, Clone, PartialEq)]
pub enum Template {
    /// Nothing to evaluate below this point.
    Static(Value),
    /// An object with at least one dynamic field; keys are output keys (no `.$`).
    Object(Vec<(String, Template)>),
    /// An array with at least one dynamic element.
    Array(Vec<Template>),
    /// The value of a `.$` field.
    Dynamic(Dynamic),
}

impl Template {
    /// Compiles `value`, found at `at` in the definition under the field `field`. Problems are
    /// reported at the field, as AWS does (`/States/X/Parameters`), and the field is left out.
    pub(crate) fn compile(l: &mut Loader, value: &Value, at: &str) -> Template {
        compile(l, value, at, at)
    }

    /// True when the template reads nothing at run time.
    pub fn is_static(&self) -> bool {
        matches!(self, Template::Static(_))
    }
}

fn compile(l: &mut Loader, value: &Value, field_at: &str, here: &str) -> Template {
    match value {
        Value::Object(map) => {
            let mut fields = Vec::with_capacity(map.len());
            let mut dynamic = false;
            for (key, v) in map {
                let at = child(here, key);
                if let Some(out_key) = key.strip_suffix(".$") {
                    dynamic = true;
                    if map.contains_key(out_key) {
                        l.error(
                            field_at,
                            format!(
                                "The field '{out_key}' is given twice, as '{out_key}' and '{key}'"
                            ),
                        );
                    }
                    let parsed = match v {
                        Value::String(text) => Dynamic::parse(text),
                        other => Err(format!("got {}", crate::parse::type_name(other))),
                    };
                    match parsed {
                        Ok(d) => fields.push((out_key.to_owned(), Template::Dynamic(d))),
                        Err(e) => l.error(
                            field_at,
                            format!("The value for the field '{key}' must be a valid JSONPath or a valid intrinsic function call ({e})"),
                        ),
                    }
                } else {
                    if let Value::String(s) = v
                        && looks_dynamic(s)
                    {
                        l.report(
                                Code::NoDollar,
                                at.clone(),
                                format!("The value of the field '{key}' looks like a JSONPath or an intrinsic function, but its name does not end with '.$', so it is copied as text"),
                            );
                    }
                    let t = compile(l, v, field_at, &at);
                    dynamic |= !t.is_static();
                    fields.push((key.clone(), t));
                }
            }
            if dynamic {
                Template::Object(fields)
            } else {
                Template::Static(value.clone())
            }
        }
        Value::Array(items) => {
            let compiled: Vec<Template> = items
                .iter()
                .enumerate()
                .map(|(i, v)| compile(l, v, field_at, &index(here, i)))
                .collect();
            if compiled.iter().all(Template::is_static) {
                Template::Static(value.clone())
            } else {
                Template::Array(compiled)
            }
        }
        other => Template::Static(other.clone()),
    }
}

/// `$.x`, `$$.x` or `States.X(...)`: text that was probably meant to be evaluated.
pub(crate) fn looks_dynamic(s: &str) -> bool {
    s.starts_with("$.")
        || s.starts_with("$$.")
        || s.starts_with("$[")
        || intrinsics::looks_like_call(s)
}

/// True when any key of `value`, at any depth, ends in `.$`.
pub(crate) fn has_dollar_key(value: &Value) -> bool {
    match value {
        Value::Object(map) => map
            .iter()
            .any(|(k, v)| k.ends_with(".$") || has_dollar_key(v)),
        Value::Array(items) => items.iter().any(has_dollar_key),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::parse::MachineType;
    use crate::path::Path;

    fn compile_ok(v: Value) -> Template {
        let mut l = Loader::new(MachineType::Standard);
        let t = Template::compile(&mut l, &v, "/States/S/Parameters");
        assert!(
            l.diagnostics.iter().all(|d| !d.is_error()),
            "{:?}",
            l.diagnostics
        );
        t
    }

    #[test]
    fn static_subtrees_stay_whole() {
        let v = json!({"a": 1, "b": {"c": [1, 2]}});
        assert_eq!(compile_ok(v.clone()), Template::Static(v));
    }

    #[test]
    fn dollar_fields_compile() {
        let t = compile_ok(
            json!({"a.$": "$.x", "b": {"c.$": "States.UUID()"}, "d": [1, {"e.$": "$$.Execution.Id"}], "f": 2}),
        );
        let Template::Object(fields) = t else {
            panic!("object")
        };
        assert_eq!(
            fields[0],
            (
                "a".into(),
                Template::Dynamic(Dynamic::Path(Path::parse("$.x").unwrap()))
            )
        );
        assert!(
            matches!(&fields[1].1, Template::Object(inner) if matches!(inner[0].1, Template::Dynamic(Dynamic::Call(_))))
        );
        assert!(
            matches!(&fields[2].1, Template::Array(items) if items[0].is_static() && !items[1].is_static())
        );
        assert_eq!(fields[3], ("f".into(), Template::Static(json!(2))));
    }

    #[test]
    fn errors_are_reported_at_the_field() {
        let mut l = Loader::new(MachineType::Standard);
        Template::compile(
            &mut l,
            &json!({"a": {"b.$": "nope"}, "c.$": 3, "d": "$.looks"}),
            "/States/S/Parameters",
        );
        let got: Vec<_> = l
            .diagnostics
            .iter()
            .map(|d| (d.code, d.location.clone().unwrap()))
            .collect();
        assert_eq!(
            got,
            vec![
                (Code::SchemaValidationFailed, "/States/S/Parameters".into()),
                (Code::SchemaValidationFailed, "/States/S/Parameters".into()),
                (Code::NoDollar, "/States/S/Parameters/d".into()),
            ]
        );
    }
}
