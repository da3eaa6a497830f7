//! Evaluating JSONata expressions as Step Functions does (jsonata-core underneath).
//!
//! An expression sees `$states` (`input`, `result`, `errorOutput`, `context`, as the state
//! provides them) and the workflow's variables in scope, and nothing at the top level (`$` is
//! undefined). Step Functions adds six functions and removes one, as its developer guide lists:
//!
//! - `$partition(array, size)`: the array in chunks of `size` (the last may be shorter);
//! - `$range(start, end, step)`: numbers from `start` to `end` inclusive, by `step`;
//! - `$hash(text, algorithm)`: hex digest; MD5, SHA-1, SHA-256, SHA-384 or SHA-512;
//! - `$random([seed])`: a number in [0, 1); the same seed gives the same number;
//! - `$uuid()`: a version 4 UUID;
//! - `$parse(text)`: JSON text to a value;
//! - `$eval` is not available.
//!
//! Randomness without a seed comes from the scope's seed, so a state recomputed after a crash
//! draws the same values (the durability contract).

use std::cell::Cell;
use std::rc::Rc;

use std::time::Duration;

use jsonata_core::ast::AstNode;
use jsonata_core::evaluator::{Context, Evaluator, EvaluatorError, EvaluatorOptions};
use jsonata_core::value::JValue;
use serde_json::Value;

use super::watchdog::Interrupt;
use crate::intrinsics::{hash, splitmix64, uuid_v4};

/// A JSONata expression, parsed once.
pub struct Compiled {
    text: String,
    ast: AstNode,
}

impl std::fmt::Debug for Compiled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Compiled").field(&self.text).finish()
    }
}

/// The most items a sequence may hold while an expression runs (`[1..10000].([1..10000])`
/// would build 100 million): past it, JSONata's D2015. A result that large could not be a
/// state's payload anyway (256 KiB).
pub const MAX_SEQUENCE: usize = 1_000_000;

/// The longest string `$pad` makes, in characters: `$pad('', 1e9)` is an error, not a
/// gigabyte.
pub const MAX_PAD: usize = 1 << 20;

/// What bounds one evaluation besides [`MAX_SEQUENCE`] and the watchdog's memory bound
/// ([`super::MAX_GROWTH`]): a time budget, and a flag that stops it.
#[derive(Debug, Clone, Default)]
pub struct Bounds {
    /// The longest the evaluation may run; past it, JSONata's D1012.
    pub time: Option<Duration>,
    /// Raised, the evaluation stops (U1003).
    pub interrupt: Option<Interrupt>,
}

/// What an expression sees when it runs, converted once for all the expressions of a state
/// (the conversion of `$states` costs more than a simple evaluation).
pub struct Scope {
    /// `$states`: `{"input", "result"?, "errorOutput"?, "context"}`.
    states: JValue,
    /// The workflow variables visible here.
    variables: Vec<(String, JValue)>,
    /// Where `$random()` and `$uuid()` draw from.
    seed: u64,
    /// How long each evaluation may run, and what stops it.
    bounds: Bounds,
}

impl Scope {
    /// A scope with `$states`, the variables visible (innermost last: it wins), and the seed
    /// of `$random()` and `$uuid()`.
    pub fn new<'a>(
        states: &Value,
        variables: impl IntoIterator<Item = (&'a str, &'a Value)>,
        seed: u64,
    ) -> Scope {
        Scope {
            states: jvalue(states),
            variables: variables
                .into_iter()
                .map(|(name, value)| (name.to_owned(), jvalue(value)))
                .collect(),
            seed,
            bounds: Bounds::default(),
        }
    }

    /// The same scope, its evaluations bounded by `bounds`.
    pub fn bounded(mut self, bounds: Bounds) -> Scope {
        self.bounds = bounds;
        self
    }

    /// As [`Scope::new`], with `$states` given by its fields (`input`, `result`...): each value
    /// is converted once, where building a `$states` object first would copy it once more.
    pub fn of_fields<'a>(
        states: &[(&str, &Value)],
        variables: impl IntoIterator<Item = (&'a str, &'a Value)>,
        seed: u64,
    ) -> Scope {
        let fields = states
            .iter()
            .map(|(name, value)| ((*name).to_owned(), jvalue(value)))
            .collect();
        Scope {
            states: JValue::object(fields),
            variables: variables
                .into_iter()
                .map(|(name, value)| (name.to_owned(), jvalue(value)))
                .collect(),
            seed,
            bounds: Bounds::default(),
        }
    }
}

/// `value` for the evaluator, converted from a reference (jsonata-core converts an owned value,
/// which would need a copy first).
fn jvalue(value: &Value) -> JValue {
    match value {
        Value::Null => JValue::Null,
        Value::Bool(b) => JValue::Bool(*b),
        Value::Number(n) => JValue::Number(n.as_f64().unwrap_or(0.0)),
        Value::String(s) => JValue::String(s.as_str().into()),
        Value::Array(items) => {
            // "Flat": no item is itself an array (what jsonata-core's own conversion records).
            let flat = !items.iter().any(Value::is_array);
            JValue::Array(jsonata_core::value::JArray::new_flat(
                items.iter().map(jvalue).collect(),
                flat,
            ))
        }
        Value::Object(map) => {
            JValue::object(map.iter().map(|(k, v)| (k.clone(), jvalue(v))).collect())
        }
    }
}

/// Why an expression could not be parsed or evaluated: the message Step Functions reports in
/// States.QueryEvaluationError's cause, after its own prefix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct QueryError(pub String);

impl Compiled {
    /// Parses `text`, the expression without its `{% %}`.
    pub fn compile(text: &str) -> Result<Compiled, QueryError> {
        let ast =
            contained(|| jsonata_core::parser::parse(text).map_err(|e| QueryError(e.to_string())))?;
        Ok(Compiled {
            text: text.to_owned(),
            ast,
        })
    }

    /// The expression as written.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The parsed expression, for what reads it without running it (`analysis.rs`).
    pub(crate) fn ast(&self) -> &AstNode {
        &self.ast
    }

    /// Evaluates the expression in `scope`; `None` when its value is undefined (no match).
    pub fn evaluate(&self, scope: &Scope) -> Result<Option<Value>, QueryError> {
        contained(|| self.evaluate_here(scope))
    }

    fn evaluate_here(&self, scope: &Scope) -> Result<Option<Value>, QueryError> {
        let mut context = Context::new();
        for (name, value) in &scope.variables {
            context.bind(name.clone(), value.clone());
        }
        context.bind("states".to_owned(), scope.states.clone());
        let interrupt = scope.bounds.interrupt.as_ref();
        if interrupt.is_some_and(Interrupt::is_raised) {
            return Err(QueryError(STOPPED.into()));
        }
        let watched = super::watchdog::watch(interrupt);
        let options = EvaluatorOptions {
            timeout_ms: scope
                .bounds
                .time
                .map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX).max(1)),
            cancel: Some(watched.token.clone()),
            max_sequence_length: Some(MAX_SEQUENCE),
            ..EvaluatorOptions::default()
        };
        let mut evaluator = Evaluator::with_options(context, options);
        register_functions(&mut evaluator, scope.seed).map_err(query_error)?;
        let result = evaluator.evaluate(&self.ast, &JValue::Undefined);
        // The watchdog's reasons first: an evaluation it stopped may still have returned (a
        // last builtin call finishes before jsonata-core looks at its token again).
        if watched.over_memory() {
            return Err(QueryError(format!(
                "The expression needed more than {} MiB of memory",
                super::watchdog::MAX_GROWTH >> 20
            )));
        }
        if interrupt.is_some_and(Interrupt::is_raised) {
            return Err(QueryError(STOPPED.into()));
        }
        drop(watched);
        let result = result.map_err(query_error)?;
        match result {
            JValue::Undefined => Ok(None),
            JValue::Lambda(_) | JValue::Builtin { .. } | JValue::Regex { .. } => Err(QueryError(
                "The expression returned a function, which is not a JSON value".into(),
            )),
            value => serde_json::to_value(&value)
                .map(Some)
                .map_err(|e| QueryError(e.to_string())),
        }
    }
}

/// Runs `f`, turning a panic inside jsonata-core into the expression's error: a fault of the
/// evaluator fails one state, never the engine.
fn contained<T>(f: impl FnOnce() -> Result<T, QueryError>) -> Result<T, QueryError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        Err(QueryError(format!("The JSONata evaluator failed: {what}")))
    })
}

/// jsonata-core's error without the category it prefixes ("Type error: "...): the coded
/// JSONata message (`T0410: ...`) Step Functions reports.
fn query_error(e: EvaluatorError) -> QueryError {
    let text = e.to_string();
    let bare = ["Type error: ", "Reference error: ", "Evaluation error: "]
        .iter()
        .find_map(|prefix| text.strip_prefix(prefix))
        .unwrap_or(&text);
    QueryError(bare.to_owned())
}

fn fail(message: impl Into<String>) -> EvaluatorError {
    EvaluatorError::EvaluationError(message.into())
}

fn number(v: Option<&JValue>, function: &str, what: &str) -> Result<f64, EvaluatorError> {
    match v {
        Some(JValue::Number(n)) => Ok(*n),
        _ => Err(fail(format!("{function}: {what} must be a number"))),
    }
}

/// The message of an evaluation stopped by its [`Interrupt`] (jsonata-core's code).
const STOPPED: &str = "U1003: The evaluation was stopped";

/// `$pad(text, width[, with])` as JSONata defines it (padding on the right for a positive
/// width, on the left for a negative one, with `with` repeated, a space by default), refusing a
/// width over [`MAX_PAD`] characters before making anything.
fn pad(args: &[JValue]) -> Result<JValue, EvaluatorError> {
    let text = match args.first() {
        Some(JValue::String(s)) => s.clone(),
        Some(JValue::Null) => return Ok(JValue::Null),
        Some(JValue::Undefined) | None => return Ok(JValue::Undefined),
        Some(_) => {
            return Err(EvaluatorError::TypeError(
                "T0410: Argument 1 of function \"pad\" does not match function signature".into(),
            ));
        }
    };
    let width = match args.get(1) {
        Some(JValue::Number(n)) => n.trunc(),
        Some(JValue::Undefined) | None => return Ok(JValue::String(text)),
        Some(_) => {
            return Err(EvaluatorError::TypeError(
                "T0410: Argument 2 of function \"pad\" does not match function signature".into(),
            ));
        }
    };
    if width.abs() > MAX_PAD as f64 {
        return Err(fail(format!(
            "$pad: a width of {width} characters is over the limit of {MAX_PAD}"
        )));
    }
    let with: Vec<char> = match args.get(2) {
        Some(JValue::String(s)) if !s.is_empty() => s.chars().collect(),
        _ => vec![' '],
    };
    let missing = (width.abs() as usize).saturating_sub(text.chars().count());
    if missing == 0 {
        return Ok(JValue::String(text));
    }
    let padding: String = with.iter().cycle().take(missing).collect();
    let padded = if width < 0.0 {
        padding + &text
    } else {
        format!("{text}{padding}")
    };
    Ok(JValue::String(Rc::from(padded.as_str())))
}

/// Step Functions' functions, and `$eval` taken away.
fn register_functions(evaluator: &mut Evaluator, seed: u64) -> Result<(), EvaluatorError> {
    evaluator.register_fn_override("pad", pad)?;
    evaluator.register_fn("partition", |args: &[JValue]| {
        let Some(JValue::Array(items)) = args.first() else {
            return Err(fail("$partition: the first argument must be an array"));
        };
        let size = number(args.get(1), "$partition", "the chunk size")?;
        if size < 1.0 || size.fract() != 0.0 {
            return Err(fail(
                "$partition: the chunk size must be a positive integer",
            ));
        }
        let items: Vec<JValue> = items.iter().cloned().collect();
        let chunks: Vec<JValue> = items
            .chunks(size as usize)
            .map(|c| JValue::from(c.to_vec()))
            .collect();
        Ok(JValue::from(chunks))
    })?;
    evaluator.register_fn("range", |args: &[JValue]| {
        let start = number(args.first(), "$range", "the start")?;
        let end = number(args.get(1), "$range", "the end")?;
        let step = number(args.get(2), "$range", "the step")?;
        if step == 0.0 {
            return Err(fail("$range: the step cannot be 0"));
        }
        let count = ((end - start) / step).floor();
        if count > 1_000.0 {
            return Err(fail("$range: the range has more than 1000 items"));
        }
        let mut values: Vec<JValue> = (0..=(count.max(-1.0) as i64))
            .map(|i| JValue::Number(start + step * i as f64))
            .collect();
        // A JSONata sequence of one value is that value: AWS answers $range(1, 9, 9) with 1.
        if values.len() == 1 {
            return Ok(values.remove(0));
        }
        Ok(JValue::from(values))
    })?;
    evaluator.register_fn("hash", |args: &[JValue]| {
        let Some(JValue::String(text)) = args.first() else {
            return Err(fail("$hash: the first argument must be a string"));
        };
        let Some(JValue::String(algorithm)) = args.get(1) else {
            return Err(fail("$hash: the algorithm must be a string"));
        };
        hash(algorithm, text.as_bytes())
            .map(|h| JValue::String(Rc::from(h.as_str())))
            .ok_or_else(|| {
                fail(format!(
                    "$hash: the algorithm '{algorithm}' is not one of MD5, SHA-1, SHA-256, SHA-384, SHA-512"
                ))
            })
    })?;
    evaluator.register_fn("parse", |args: &[JValue]| {
        let Some(JValue::String(text)) = args.first() else {
            return Err(fail("$parse: the argument must be a string"));
        };
        serde_json::from_str::<Value>(text)
            .map(JValue::from)
            .map_err(|e| fail(format!("$parse: not JSON: {e}")))
    })?;
    // Draws for `$random()` and `$uuid()`: a sequence from the scope's seed.
    let draws = Rc::new(Cell::new(seed));
    let next = move |cell: &Cell<u64>| {
        let value = splitmix64(cell.get());
        cell.set(value);
        value
    };
    let (random_draws, uuid_draws) = (draws.clone(), draws);
    evaluator.register_fn("uuid", move |_: &[JValue]| {
        let (hi, lo) = (next(&uuid_draws), next(&uuid_draws));
        Ok(JValue::String(Rc::from(uuid_v4(hi, lo).as_str())))
    })?;
    evaluator.register_fn_override("random", move |args: &[JValue]| {
        let bits = match args.first() {
            None => next(&random_draws),
            Some(JValue::Number(seed)) => splitmix64(*seed as i64 as u64),
            Some(_) => return Err(fail("$random: the seed must be a number")),
        };
        Ok(JValue::Number((bits >> 11) as f64 / (1u64 << 53) as f64))
    })?;
    // Step Functions leaves $eval out: calling it is calling nothing, JSONata's T1006 (as AWS
    // answers it).
    evaluator.register_fn_override("eval", |_: &[JValue]| {
        Err(fail("T1006: Attempted to invoke a non-function"))
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn eval(text: &str, states: Value) -> Result<Option<Value>, QueryError> {
        let vars = json!({"limit": 3});
        Compiled::compile(text)?.evaluate(&Scope::new(&states, [("limit", &vars["limit"])], 7))
    }

    fn value(text: &str) -> Value {
        eval(text, json!({"input": {"n": [1, 2, 3, 4, 5]}}))
            .unwrap_or_else(|e| panic!("{text}: {e}"))
            .unwrap_or_else(|| panic!("{text}: undefined"))
    }

    #[test]
    fn states_and_variables_are_in_scope() {
        assert_eq!(value("$states.input.n[1]"), json!(2));
        assert_eq!(value("$count($states.input.n[$ > $limit])"), json!(2));
        assert_eq!(value("$sum($states.input.n) & ' total'"), json!("15 total"));
        assert_eq!(
            eval("$states.input.missing", json!({"input": {}})).unwrap(),
            None
        );
    }

    #[test]
    fn step_functions_functions() {
        assert_eq!(
            value("$partition([1,2,3,4,5], 2)"),
            json!([[1, 2], [3, 4], [5]])
        );
        assert_eq!(value("$range(0, 10, 2)"), json!([0, 2, 4, 6, 8, 10]));
        assert_eq!(value("$range(5, 1, -2)"), json!([5, 3, 1]));
        assert_eq!(value("$range(1, 9, 9)"), json!(1));
        assert_eq!(
            value("$hash('abc', 'SHA-256')"),
            json!("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        );
        assert_eq!(value("$length($hash('abc', 'MD5'))"), json!(32));
        assert_eq!(value("$parse('{\"a\": [1]}')"), json!({"a": [1]}));
        let uuid = value("$uuid()");
        assert_eq!(uuid.as_str().unwrap().len(), 36);
        assert_eq!(uuid.as_str().unwrap().as_bytes()[14], b'4');
        let r = value("$random()").as_f64().unwrap();
        assert!((0.0..1.0).contains(&r));
        assert_eq!(value("$random(42)"), value("$random(42)"));
        assert_ne!(value("$random(42)"), value("$random(43)"));
        // The same scope seed draws the same values: recomputing after a crash agrees.
        assert_eq!(value("$uuid()"), value("$uuid()"));
    }

    #[test]
    fn pad_as_jsonata_pads() {
        assert_eq!(value("$pad('5', -3, '0')"), json!("005"));
        assert_eq!(value("$pad('ab', 5)"), json!("ab   "));
        assert_eq!(value("$pad('ab', 6, '-+')"), json!("ab-+-+"));
        assert_eq!(value("$pad('ab', -5.9, 'é')"), json!("éééab"));
        assert_eq!(value("$pad('abcdef', 3)"), json!("abcdef"));
        assert_eq!(value("$pad('ab', 2 + 1e-9)"), json!("ab"));
        assert_eq!(
            eval("$pad($states.input.none, 3)", json!({"input": {}})).unwrap(),
            None
        );
    }

    /// Bounded evaluations end: an endless loop by its time budget or its interrupt, a huge
    /// sequence or string by its size limit; none of them builds gigabytes first.
    #[test]
    fn runaway_expressions_end_with_an_error() {
        let run = |text: &str, bounds: Bounds| {
            let states = json!({"input": {}});
            let scope = Scope::new(&states, std::iter::empty(), 1).bounded(bounds);
            let started = std::time::Instant::now();
            let result = Compiled::compile(text).unwrap().evaluate(&scope);
            (result, started.elapsed())
        };
        let endless = "($f := function($x){ $f($x+1) }; $f(0))";
        let timed = Bounds {
            time: Some(Duration::from_millis(200)),
            interrupt: None,
        };
        let (result, took) = run(endless, timed.clone());
        assert!(result.unwrap_err().0.starts_with("D1012"));
        assert!(took < Duration::from_secs(5), "{took:?}");

        let interrupt = Interrupt::new();
        let raiser = interrupt.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            raiser.raise();
        });
        let stoppable = Bounds {
            time: None,
            interrupt: Some(interrupt),
        };
        let (result, took) = run(endless, stoppable);
        assert!(result.unwrap_err().0.starts_with("U1003"));
        assert!(took < Duration::from_secs(5), "{took:?}");

        let roomy = Bounds {
            time: Some(Duration::from_secs(60)),
            interrupt: None,
        };
        let (result, took) = run("$count([1..10000].([1..10000]))", roomy);
        let e = result.unwrap_err().0;
        assert!(e.contains("MiB of memory"), "{e}");
        assert!(took < Duration::from_secs(30), "{took:?}");
        let (result, _) = run("$pad('', 1e9, 'x')", timed.clone());
        assert!(result.unwrap_err().0.contains("over the limit"));
        let (result, _) = run("$count([1..1000])", timed);
        assert_eq!(result.unwrap(), Some(json!(1000)));
    }

    #[test]
    fn errors_say_what_went_wrong() {
        let err = |text: &str| eval(text, json!({"input": {}})).unwrap_err().0;
        assert_eq!(
            err("$eval('1 + 1')"),
            "T1006: Attempted to invoke a non-function"
        );
        assert!(err("$hash('a', 'CRC32')").contains("not one of MD5"));
        assert!(err("$partition([1], 0)").contains("positive integer"));
        assert!(err("$range(1, 2, 0)").contains("cannot be 0"));
        assert!(err("$parse('{')").contains("not JSON"));
        assert!(Compiled::compile("$states.input.(").is_err());
    }
}
