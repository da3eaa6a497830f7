//! Evaluating compiled leaves against a state's data: paths, payload templates, the data-flow
//! fields. Pure: the caller supplies the input, the context object, the variables and a source
//! of randomness, and gets a value or an [`Error`] named the way Step Functions names it.

use serde_json::{Map, Value};

use crate::parse::Dynamic;
use crate::path::{Path, Root, Step, get};
use crate::template::Template;

/// Where a state's workflow variables come from.
pub trait Variables {
    /// The value of `$name`, if the variable is set in this scope or an enclosing one.
    fn get(&self, name: &str) -> Option<&Value>;
}

impl Variables for Map<String, Value> {
    fn get(&self, name: &str) -> Option<&Value> {
        Map::get(self, name)
    }
}

/// The context object (`$$`), built only when something reads it.
pub trait Context {
    /// The whole context object.
    fn value(&self) -> &Value;
}

impl Context for Value {
    fn value(&self) -> &Value {
        self
    }
}

/// Everything an evaluation may read.
pub struct Env<'a> {
    /// `$`: the value paths start from (the effective input, or the result for ResultSelector).
    pub input: &'a Value,
    /// `$$`
    pub context: &'a dyn Context,
    /// `$name`
    pub variables: &'a dyn Variables,
    /// Random 64-bit numbers for States.UUID and States.MathRandom without a seed. The engine
    /// seeds it from the execution, so that recomputing a state draws the same numbers.
    pub random: &'a dyn Fn() -> u64,
    /// The largest value, in bytes of JSON text, an intrinsic function may make (the payload
    /// limit): past it the call fails with States.DataLimitExceeded. Nested calls could
    /// otherwise grow a value exponentially (`States.JsonToString` doubles its argument's
    /// escapes; 40 of them nested would make terabytes).
    pub max_bytes: usize,
}

/// A failed evaluation: the error name Step Functions raises and the cause's text after
/// "An error occurred while executing the state 'X' (entered at the event id #N). ".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{error}: {message}")]
pub struct Error {
    /// `States.Runtime`, `States.IntrinsicFailure`, `States.ResultPathMatchFailure`...
    pub error: &'static str,
    /// What went wrong.
    pub message: String,
}

impl Error {
    /// A `States.Runtime` error.
    pub fn runtime(message: impl Into<String>) -> Error {
        Error {
            error: crate::errors::RUNTIME,
            message: message.into(),
        }
    }

    /// A `States.IntrinsicFailure` error.
    pub fn intrinsic(message: impl Into<String>) -> Error {
        Error {
            error: crate::errors::INTRINSIC_FAILURE,
            message: message.into(),
        }
    }
}

impl Env<'_> {
    /// The value a path's root names; `None` for an unset variable.
    pub fn root(&self, root: &Root) -> Option<&Value> {
        match root {
            Root::Input => Some(self.input),
            Root::Context => Some(self.context.value()),
            Root::Variable(name) => self.variables.get(name),
        }
    }

    /// What a path yields, as a `.$` field sees it: a singular path's value (`None` when
    /// absent), or a query's matches as an array (empty when none match).
    pub fn read(&self, path: &Path) -> Option<Value> {
        let root = self.root(path.root())?;
        match path.steps() {
            Some(steps) => get(root, steps).cloned(),
            None => Some(Value::Array(
                path.select(root).into_iter().cloned().collect(),
            )),
        }
    }

    /// The value a singular path names, without copying it; `None` when absent or when the
    /// path is a query.
    pub fn read_ref(&self, path: &Path) -> Option<&Value> {
        get(self.root(path.root())?, path.steps()?)
    }

    /// Evaluates a `.$` value: a path or an intrinsic call. `field` names it in errors.
    pub fn dynamic(&self, d: &Dynamic, field: &str) -> Result<Value, Error> {
        match d {
            Dynamic::Path(path) => self.read(path).ok_or_else(|| {
                Error::runtime(format!(
                    "The JSONPath '{}' specified for the field '{field}' could not be found in the input '{}'",
                    path.as_str(),
                    self.root(path.root()).map_or_else(|| "null".to_owned(), Value::to_string)
                ))
            }),
            Dynamic::Call(call) => call.evaluate(self),
        }
    }

    /// Evaluates a payload template.
    pub fn template(&self, t: &Template) -> Result<Value, Error> {
        self.template_at(t, "")
    }

    fn template_at(&self, t: &Template, field: &str) -> Result<Value, Error> {
        Ok(match t {
            Template::Static(v) => v.clone(),
            Template::Dynamic(d) => self.dynamic(d, &format!("{field}.$"))?,
            Template::Object(fields) => {
                let mut out = Map::with_capacity(fields.len());
                for (key, value) in fields {
                    out.insert(key.clone(), self.template_at(value, key)?);
                }
                Value::Object(out)
            }
            Template::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|i| self.template_at(i, field))
                    .collect::<Result<_, _>>()?,
            ),
        })
    }
}

/// Applies `InputPath` or `OutputPath` to `value`: `None` (JSON null) gives `{}`, `$` gives the
/// value itself (moved, not copied).
pub fn filter(
    value: Value,
    path: Option<&Path>,
    env_for: impl FnOnce(&Value) -> Option<Value>,
) -> Result<Value, Error> {
    let Some(path) = path else {
        return Ok(Value::Object(Map::new()));
    };
    if matches!(path.root(), Root::Input)
        && let Some(steps) = path.steps()
    {
        // A singular path into a value we own: move the part out instead of copying it.
        return take(value, steps).ok_or_else(|| no_results(path));
    }
    env_for(&value).ok_or_else(|| no_results(path))
}

fn no_results(path: &Path) -> Error {
    Error::runtime(format!(
        "Invalid path '{}' : No results for path: {}",
        path.as_str(),
        bracketed(path)
    ))
}

/// The part of `value` at `steps`, moved out.
fn take(mut value: Value, steps: &[Step]) -> Option<Value> {
    let mut at = &mut value;
    for step in steps {
        at = match (step, at) {
            (Step::Field(name), Value::Object(map)) => map.get_mut(name)?,
            (Step::Index(i), Value::Array(items)) => items.get_mut(*i)?,
            _ => return None,
        };
    }
    Some(std::mem::take(at))
}

/// `$['a']['b'][0]`: how Jayway spells a path in its "No results" message.
fn bracketed(path: &Path) -> String {
    match path.steps() {
        Some(steps) => {
            let mut out = String::from("$");
            for step in steps {
                match step {
                    Step::Field(name) => out.push_str(&format!("['{name}']")),
                    Step::Index(i) => out.push_str(&format!("[{i}]")),
                }
            }
            out
        }
        None => path.to_string(),
    }
}

/// Applies `ResultPath`: `None` (null) keeps `input`; `$` replaces it with `result`; otherwise
/// `result` is written at the path, creating missing objects on the way.
pub fn merge_result(input: Value, path: Option<&Path>, result: Value) -> Result<Value, Error> {
    let Some(path) = path else { return Ok(input) };
    let steps = path.steps().unwrap_or_default();
    if steps.is_empty() {
        return Ok(result);
    }
    let mut root = input;
    set(&mut root, steps, result).map_err(|(step, found)| Error {
        error: crate::errors::RESULT_PATH_MATCH_FAILURE,
        message: format!(
            "Unable to apply ResultPath '{}' to input: the path meets {} where it needs {}",
            path.as_str(),
            found,
            if matches!(step, Step::Index(_)) {
                "an array with that index"
            } else {
                "an object"
            }
        ),
    })?;
    Ok(root)
}

/// Writes `value` at `steps` below `target`, creating missing objects. On failure, the step that
/// could not be taken and the type of what was there.
fn set<'s>(
    target: &mut Value,
    steps: &'s [Step],
    value: Value,
) -> Result<(), (&'s Step, &'static str)> {
    let Some((step, rest)) = steps.split_first() else {
        *target = value;
        return Ok(());
    };
    let next = match (step, target) {
        (Step::Field(name), Value::Object(map)) => map
            .entry(name.clone())
            .or_insert_with(|| Value::Object(Map::new())),
        (Step::Index(i), Value::Array(items)) if *i < items.len() => &mut items[*i],
        (_, other) => return Err((step, crate::parse::type_name(other))),
    };
    set(next, rest, value)
}

/// Evaluates a payload template against an input the caller is done with, moving subtrees out
/// of it instead of copying them where that gives the same result.
///
/// A field that copies a subtree verbatim (`"doc.$": "$.doc"`) takes it, unless another such
/// field names the same subtree or one above it; every other read (queries, intrinsic calls,
/// the fields that could not take) happens first, on the intact input. So the output is exactly
/// [`Env::template`]'s, at the cost of one traversal instead of one copy per large subtree.
/// `env.input` is ignored: `input` is `$`.
pub fn template_taking(env: &Env, t: &Template, mut input: Value) -> Result<Value, Error> {
    if !any_takeable(t) {
        let reading = Env {
            input: &input,
            context: env.context,
            variables: env.variables,
            random: env.random,
            max_bytes: env.max_bytes,
        };
        return reading.template(t);
    }
    let mut slots: Vec<(&Dynamic, &str)> = Vec::new();
    collect(t, "", &mut slots);
    let steps: Vec<Option<&[Step]>> = slots.iter().map(|(d, _)| takeable(d)).collect();
    // A slot takes when no other takeable slot is above it, nor the same path earlier.
    let takes: Vec<bool> = (0..slots.len())
        .map(|i| {
            let Some(mine) = steps[i] else { return false };
            !steps.iter().enumerate().any(|(j, other)| {
                other.is_some_and(|o| {
                    j != i && mine.starts_with(o) && (o.len() < mine.len() || j < i)
                })
            })
        })
        .collect();
    let mut values: Vec<Option<Value>> = Vec::with_capacity(slots.len());
    {
        let reading = Env {
            input: &input,
            context: env.context,
            variables: env.variables,
            random: env.random,
            max_bytes: env.max_bytes,
        };
        // Field names are only built for an error message.
        let read = |d: &Dynamic, key: &str| {
            reading
                .dynamic(d, "")
                .or_else(|_| reading.dynamic(d, &format!("{key}.$")))
        };
        for (i, (d, key)) in slots.iter().enumerate() {
            if takes[i] {
                if get(&input, steps[i].expect("takes only paths")).is_none() {
                    read(d, key)?; // reports the missing path exactly as copying would
                }
                values.push(None);
            } else {
                values.push(Some(read(d, key)?));
            }
        }
    }
    for i in 0..slots.len() {
        if takes[i] {
            values[i] = Some(take_mut(&mut input, steps[i].expect("takes only paths")));
        }
    }
    let mut values = values.into_iter().map(|v| v.expect("every slot filled"));
    Ok(assemble(t, &mut values))
}

/// True when some field copies a subtree of `$`, so taking can save a copy.
fn any_takeable(t: &Template) -> bool {
    match t {
        Template::Dynamic(d) => takeable(d).is_some(),
        Template::Object(fields) => fields.iter().any(|(_, v)| any_takeable(v)),
        Template::Array(items) => items.iter().any(any_takeable),
        Template::Static(_) => false,
    }
}

/// The steps of a field that copies a subtree of `$` verbatim.
fn takeable(d: &Dynamic) -> Option<&[Step]> {
    match d {
        Dynamic::Path(p) if matches!(p.root(), Root::Input) => p.steps().filter(|s| !s.is_empty()),
        _ => None,
    }
}

/// The dynamic fields of a template with their keys, in evaluation (pre-)order.
fn collect<'t>(t: &'t Template, key: &'t str, out: &mut Vec<(&'t Dynamic, &'t str)>) {
    match t {
        Template::Dynamic(d) => out.push((d, key)),
        Template::Object(fields) => fields.iter().for_each(|(k, v)| collect(v, k, out)),
        Template::Array(items) => items.iter().for_each(|v| collect(v, key, out)),
        Template::Static(_) => {}
    }
}

fn assemble(t: &Template, values: &mut impl Iterator<Item = Value>) -> Value {
    match t {
        Template::Static(v) => v.clone(),
        Template::Dynamic(_) => values.next().expect("one value per dynamic field"),
        Template::Object(fields) => Value::Object(
            fields
                .iter()
                .map(|(k, v)| (k.clone(), assemble(v, values)))
                .collect(),
        ),
        Template::Array(items) => Value::Array(items.iter().map(|v| assemble(v, values)).collect()),
    }
}

/// Moves the value at `steps` out of `value` (present: checked by the caller).
fn take_mut(value: &mut Value, steps: &[Step]) -> Value {
    let mut at = value;
    for step in steps {
        at = match (step, at) {
            (Step::Field(name), Value::Object(map)) => map.get_mut(name).expect("checked"),
            (Step::Index(i), Value::Array(items)) => &mut items[*i],
            _ => unreachable!("checked"),
        };
    }
    std::mem::take(at)
}

/// Whether ResultPath can be applied to `input` (every step before the last meets an object,
/// an array with that index, or nothing): checked up front when the input will be consumed.
pub fn result_path_applies(input: &Value, path: &Path) -> bool {
    let Some(steps) = path.steps() else {
        return false;
    };
    let mut at = input;
    for step in steps.iter().take(steps.len().saturating_sub(1)) {
        at = match (step, at) {
            (Step::Field(name), Value::Object(map)) => match map.get(name) {
                Some(v) => v,
                None => return true,
            },
            (Step::Index(i), Value::Array(items)) if *i < items.len() => &items[*i],
            _ => return false,
        };
    }
    matches!(
        (steps.last(), at),
        (None, _)
            | (Some(Step::Field(_)), Value::Object(_))
            | (Some(Step::Index(_)), Value::Array(_))
    ) && match (steps.last(), at) {
        (Some(Step::Index(i)), Value::Array(items)) => *i < items.len(),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn env<'a>(input: &'a Value, vars: &'a Map<String, Value>, ctx: &'a Value) -> Env<'a> {
        Env {
            input,
            context: ctx,
            variables: vars,
            random: &|| 4,
            max_bytes: 256 * 1024,
        }
    }

    #[test]
    fn reads() {
        let input = json!({"a": {"b": [1, 2]}, "items": []});
        let vars = json!({"x": {"y": 5}}).as_object().unwrap().clone();
        let ctx = json!({"Execution": {"Name": "run"}});
        let e = env(&input, &vars, &ctx);
        let read = |p: &str| e.read(&Path::parse(p).unwrap());
        assert_eq!(read("$.a.b[1]"), Some(json!(2)));
        assert_eq!(read("$.a.c"), None);
        assert_eq!(read("$.items[*].v"), Some(json!([])));
        assert_eq!(read("$$.Execution.Name"), Some(json!("run")));
        assert_eq!(read("$x.y"), Some(json!(5)));
        assert_eq!(read("$nope"), None);
    }

    #[test]
    fn templates() {
        let input = json!({"a": 1});
        let vars = Map::new();
        let ctx = json!({});
        let e = env(&input, &vars, &ctx);
        let mut l = crate::parse::Loader::new(crate::parse::MachineType::Standard);
        let t = Template::compile(&mut l, &json!({"x.$": "$.a", "y": {"z.$": "$.nope"}}), "/P");
        let err = e.template(&t).unwrap_err();
        assert_eq!(err.error, "States.Runtime");
        assert_eq!(
            err.message,
            "The JSONPath '$.nope' specified for the field 'z.$' could not be found in the input '{\"a\":1}'"
        );
        let t = Template::compile(&mut l, &json!({"x.$": "$.a", "k": [1, {"w.$": "$"}]}), "/P");
        assert_eq!(
            e.template(&t).unwrap(),
            json!({"x": 1, "k": [1, {"w": {"a": 1}}]})
        );
    }

    #[test]
    fn result_path() {
        let p = |s: &str| Path::parse(s).unwrap();
        assert_eq!(
            merge_result(json!({"a": 1}), None, json!(2)).unwrap(),
            json!({"a": 1})
        );
        assert_eq!(
            merge_result(json!({"a": 1}), Some(&p("$")), json!(2)).unwrap(),
            json!(2)
        );
        assert_eq!(
            merge_result(json!({"a": 1}), Some(&p("$.b.c")), json!(2)).unwrap(),
            json!({"a": 1, "b": {"c": 2}})
        );
        assert_eq!(
            merge_result(json!({"a": [0, 1]}), Some(&p("$.a[1]")), json!(2)).unwrap(),
            json!({"a": [0, 2]})
        );
        assert_eq!(
            merge_result(json!({"a": "s"}), Some(&p("$.a.b")), json!(2))
                .unwrap_err()
                .error,
            "States.ResultPathMatchFailure"
        );
        assert_eq!(
            merge_result(json!("s"), Some(&p("$.a")), json!(2))
                .unwrap_err()
                .error,
            "States.ResultPathMatchFailure"
        );
    }

    #[test]
    fn taking_gives_what_copying_gives() {
        let vars = Map::new();
        let ctx = json!({});
        let mut l = crate::parse::Loader::new(crate::parse::MachineType::Standard);
        let input = json!({"i": 1, "doc": {"meta": {"owner": "o", "tags": [1, 2]}, "records": [{"name": "a"}, {"name": "b"}]}, "x": [5, 6]});
        for t in [
            json!({"doc.$": "$.doc", "first.$": "$.doc.records[0]", "names.$": "$.doc.records[*].name", "owner.$": "$.doc.meta.owner", "n.$": "States.MathAdd($.i, 1)", "k": {"c": 1}}),
            json!({"a.$": "$.doc", "b.$": "$.doc", "c.$": "$", "d": [{"e.$": "$.x[1]"}]}),
            json!({"m.$": "$.doc.meta", "t.$": "$.doc.meta.tags", "arr": ["$.x", {"y.$": "$.x"}]}),
        ] {
            let t = Template::compile(&mut l, &t, "/P");
            let e = env(&input, &vars, &ctx);
            let copied = e.template(&t).unwrap();
            let taken = template_taking(&e, &t, input.clone()).unwrap();
            assert_eq!(taken, copied);
        }
        let t = Template::compile(&mut l, &json!({"a.$": "$.doc", "z.$": "$.missing"}), "/P");
        let e = env(&input, &vars, &ctx);
        assert_eq!(
            template_taking(&e, &t, input.clone()).unwrap_err(),
            e.template(&t).unwrap_err()
        );
        let t = Template::compile(&mut l, &json!({"z.$": "$.missing"}), "/P");
        assert_eq!(
            template_taking(&e, &t, input.clone()).unwrap_err(),
            e.template(&t).unwrap_err()
        );
    }

    #[test]
    fn result_path_applicability() {
        let p = |s: &str| Path::parse(s).unwrap();
        assert!(result_path_applies(&json!({}), &p("$.a.b")));
        assert!(result_path_applies(&json!({"a": {}}), &p("$.a.b")));
        assert!(!result_path_applies(&json!({"a": 1}), &p("$.a.b")));
        assert!(!result_path_applies(&json!("s"), &p("$.a")));
        assert!(result_path_applies(&json!({"a": [0]}), &p("$.a[0]")));
        assert!(!result_path_applies(&json!({"a": [0]}), &p("$.a[1]")));
        assert!(result_path_applies(&json!(5), &p("$")));
        for (input, path) in [
            (json!({"a": 1}), "$.a.b"),
            (json!({"a": [0]}), "$.a[1]"),
            (json!({}), "$.a.b"),
            (json!({"a": {}}), "$.a.b"),
        ] {
            assert_eq!(
                result_path_applies(&input, &p(path)),
                merge_result(input.clone(), Some(&p(path)), json!(1)).is_ok(),
                "{input} {path}"
            );
        }
    }

    #[test]
    fn input_and_output_paths() {
        let p = Path::parse("$.x").unwrap();
        assert_eq!(filter(json!({"x": 1}), None, |_| None).unwrap(), json!({}));
        let e = filter(json!({}), Some(&p), |_| None).unwrap_err();
        assert_eq!(
            e.message,
            "Invalid path '$.x' : No results for path: $['x']"
        );
    }
}
