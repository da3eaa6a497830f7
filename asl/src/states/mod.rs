//! The eight state types and the pieces they share (transitions, data flow, Retry, Catch).
//!
//! Each state type lives in its own file with its loader. Leaf values are already compiled:
//! paths, templates and intrinsic calls are parsed when the definition loads.

use serde_json::Value;

use crate::diagnostic::{child, index};
use crate::jsonata::{self, Expression, JsonataValue};
use crate::parse::{Fields, Loader, elements, int_in, type_name};
use crate::path::Path;
use crate::template::Template;

mod choice;
mod fail;
mod map;
mod parallel;
mod pass;
mod succeed;
mod task;
mod wait;

pub use choice::{Choice, ChoiceRule, Comparison, Operand, Operator, Rule};
pub use fail::{Fail, FailText};
pub use map::{ItemBatcher, ItemProcessor, ItemReader, Map, ProcessorMode, ResultWriter};
pub use parallel::Parallel;
pub use pass::Pass;
pub use succeed::Succeed;
pub use task::{IntegrationPattern, Resource, Task};
pub use wait::{Wait, WaitFor};

pub use crate::language::QueryLanguage;

/// One state of a definition.
#[derive(Debug, Clone, PartialEq)]
pub struct State {
    /// `Comment`
    pub comment: Option<String>,
    /// The language this state is evaluated in: its own `QueryLanguage`, else the machine's.
    pub query_language: QueryLanguage,
    /// What kind of state, with its fields.
    pub kind: StateKind,
    /// A JSONata state one of whose expressions may read `$states.context`: only such a state
    /// pays for building the context object (a copy of the execution's input among it).
    pub reads_context: bool,
    /// The variables a JSONata state's expressions may read: only those are made visible to
    /// them (a large variable costs nothing to the states that do not read it).
    pub variables_read: std::collections::BTreeSet<String>,
    /// How much deeper and larger than its input this state's output can be, known from its
    /// fields alone (`None`: its output may be anything: a JSONata state, a Task's result,
    /// what reads `$$` or a variable). For a Map or Parallel, the bound is over its input and
    /// its children's outputs together. The engine walks an output to check the limits on it
    /// only when this bound could take it past one of them.
    pub growth: Option<crate::growth::Growth>,
    /// For a Map or Parallel, how much deeper and larger than the state's input each child's
    /// input can be (ItemSelector, Parameters); `None` when unknown, as for `growth`.
    pub children_growth: Option<crate::growth::Growth>,
}

/// The state types of the States Language.
#[derive(Debug, Clone, PartialEq)]
pub enum StateKind {
    /// `{"Type": "Pass", "End": true}`
    Pass(Pass),
    /// `{"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "End": true}`
    Task(Box<Task>),
    /// `{"Type": "Choice", "Choices": [{"Variable": "$.x", "IsPresent": true, "Next": "A"}]}`
    Choice(Choice),
    /// `{"Type": "Wait", "Seconds": 10, "Next": "Done"}`
    Wait(Wait),
    /// `{"Type": "Succeed"}`
    Succeed(Succeed),
    /// `{"Type": "Fail", "Error": "Oops"}`
    Fail(Fail),
    /// `{"Type": "Parallel", "Branches": [{"StartAt": "A", "States": {...}}], "End": true}`
    Parallel(Parallel),
    /// `{"Type": "Map", "ItemProcessor": {"StartAt": "A", "States": {...}}, "End": true}`
    Map(Box<Map>),
}

impl StateKind {
    /// AWS's name for the type: `Pass`, `Task`, ...
    pub fn type_name(&self) -> &'static str {
        match self {
            StateKind::Pass(_) => "Pass",
            StateKind::Task(_) => "Task",
            StateKind::Choice(_) => "Choice",
            StateKind::Wait(_) => "Wait",
            StateKind::Succeed(_) => "Succeed",
            StateKind::Fail(_) => "Fail",
            StateKind::Parallel(_) => "Parallel",
            StateKind::Map(_) => "Map",
        }
    }
}

/// The state types, as the `Type` field spells them, in AWS's message order.
pub const STATE_TYPES: [&str; 8] = [
    "Task", "Wait", "Pass", "Succeed", "Fail", "Choice", "Parallel", "Map",
];

/// Where a state goes when it is done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    /// `"Next": "Name"`
    Next(String),
    /// `"End": true`
    End,
}

/// The data-flow fields of a state. A state type reads only the ones it supports; the others
/// keep their defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct DataFlow {
    /// `InputPath`; `None` is an explicit `null` (the state sees `{}`). Default `$`.
    pub input_path: Option<Path>,
    /// `Parameters` (JSONPath), or a Map's legacy `Parameters`.
    pub parameters: Option<Template>,
    /// `ResultSelector`
    pub result_selector: Option<Template>,
    /// `ResultPath`; `None` is `null` (discard the result, keep the input). Default `$`.
    pub result_path: Option<Path>,
    /// `OutputPath`; `None` is `null` (output `{}`). Default `$`.
    pub output_path: Option<Path>,
    /// `Arguments` (JSONata)
    pub arguments: Option<JsonataValue>,
    /// `Output` (JSONata)
    pub output: Option<JsonataValue>,
    /// `Assign`, in the state's language.
    pub assign: Option<Assign>,
}

impl Default for DataFlow {
    fn default() -> Self {
        DataFlow {
            input_path: Some(Path::root_input()),
            parameters: None,
            result_selector: None,
            result_path: Some(Path::root_input()),
            output_path: Some(Path::root_input()),
            arguments: None,
            output: None,
            assign: None,
        }
    }
}

/// Which data-flow fields a state type supports, beyond InputPath/OutputPath/Output.
#[derive(Clone, Copy, Default)]
pub(crate) struct Supports {
    pub(crate) parameters: bool,
    pub(crate) result_selector: bool,
    pub(crate) result_path: bool,
    pub(crate) arguments: bool,
    pub(crate) assign: bool,
}

impl Supports {
    /// Task and Parallel: every data-flow field.
    pub(crate) const ALL: Supports = Supports {
        parameters: true,
        result_selector: true,
        result_path: true,
        arguments: true,
        assign: true,
    };
}

/// `Assign`: variables set when the state completes.
#[derive(Debug, Clone, PartialEq)]
pub enum Assign {
    /// In a JSONPath state: a payload template (`"x.$": "$.a"`).
    JsonPath(Template),
    /// In a JSONata state: values with `{% %}` expressions.
    Jsonata(JsonataValue),
}

/// Context that loaders of a state need.
pub(crate) struct StateCx {
    pub(crate) lang: QueryLanguage,
}

impl DataFlow {
    pub(crate) fn load(
        f: &mut Fields,
        l: &mut Loader,
        lang: QueryLanguage,
        s: Supports,
    ) -> DataFlow {
        use QueryLanguage::{JsonPath, Jsonata};
        let mut flow = DataFlow::default();
        if f.in_language(l, "InputPath", JsonPath, lang)
            && let Some(p) = f.nullable_path(l, "InputPath", false)
        {
            flow.input_path = p;
        }
        if f.in_language(l, "OutputPath", JsonPath, lang)
            && let Some(p) = f.nullable_path(l, "OutputPath", false)
        {
            flow.output_path = p;
        }
        if s.parameters && f.in_language(l, "Parameters", JsonPath, lang) {
            flow.parameters = template(f, l, "Parameters");
        }
        if s.result_selector && f.in_language(l, "ResultSelector", JsonPath, lang) {
            flow.result_selector = template(f, l, "ResultSelector");
        }
        if s.result_path
            && f.in_language(l, "ResultPath", JsonPath, lang)
            && let Some(p) = f.nullable_path(l, "ResultPath", true)
        {
            if let Some(path) = &p
                && !matches!(path.root(), crate::path::Root::Input)
            {
                l.error(f.pointer("ResultPath"), "The value for the field 'ResultPath' must be a valid ReferencePath into the state's input ($...)");
            }
            flow.result_path = p;
        }
        if s.arguments && f.in_language(l, "Arguments", Jsonata, lang) {
            flow.arguments = jsonata_value(f, l, "Arguments");
        }
        if f.in_language(l, "Output", Jsonata, lang) {
            flow.output = jsonata_value(f, l, "Output");
        }
        if s.assign {
            flow.assign = assign(f, l, lang);
        }
        flow
    }
}

/// A payload-template field (`Parameters`, `ResultSelector`, `ItemSelector`): must be an object.
pub(crate) fn template(f: &mut Fields, l: &mut Loader, key: &str) -> Option<Template> {
    let v = f.object(l, key)?;
    Some(Template::compile(l, v, &f.pointer(key)))
}

/// A JSONata-mode field holding any JSON value with `{% %}` expressions.
pub(crate) fn jsonata_value(f: &mut Fields, l: &mut Loader, key: &str) -> Option<JsonataValue> {
    let v = f.take(key)?;
    Some(JsonataValue::load(l, v, &f.pointer(key)))
}

/// `Assign`, checked for variable names and compiled in the state's language.
pub(crate) fn assign(f: &mut Fields, l: &mut Loader, lang: QueryLanguage) -> Option<Assign> {
    let v = f.object(l, "Assign")?;
    let at = f.pointer("Assign");
    if let Value::Object(map) = v {
        for key in map.keys() {
            let name = key.strip_suffix(".$").unwrap_or(key);
            if !is_variable_name(name) {
                l.error(
                    child(&at, key),
                    format!("The variable name '{name}' is invalid: use letters, digits and '_', not starting with a digit, at most 80 characters"),
                );
            }
        }
    }
    Some(match lang {
        QueryLanguage::JsonPath => Assign::JsonPath(Template::compile(l, v, &at)),
        QueryLanguage::Jsonata => Assign::Jsonata(JsonataValue::load(l, v, &at)),
    })
}

fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_alphabetic() || c == '_')
        && chars.all(|c| c.is_alphanumeric() || c == '_')
        && name.chars().count() <= 80
}

/// `Next` xor `End`.
pub(crate) fn transition(f: &mut Fields, l: &mut Loader) -> Option<Transition> {
    let next = f.str(l, "Next");
    let end = f.bool(l, "End");
    let transition = match (next, end) {
        (Some(_), Some(true)) => {
            l.error(
                f.at.clone(),
                "Only one of the fields 'Next' and 'End' may be set",
            );
            None
        }
        (Some(next), _) => Some(Transition::Next(next.to_owned())),
        (None, Some(true)) => Some(Transition::End),
        (None, _) => {
            l.error(
                f.at.clone(),
                "Exactly one of the fields 'Next' and 'End' (true) is required",
            );
            None
        }
    };
    if transition.is_none() {
        l.lost_edge();
    }
    transition
}

/// A number field that a JSONata state may also give as an expression
/// (`TimeoutSeconds`, `MaxConcurrency`, `Seconds`, ...).
#[derive(Debug, Clone, PartialEq)]
pub enum NumberOrExpr<T> {
    /// A literal, already range-checked.
    Value(T),
    /// `{% ... %}`, evaluated when the state runs.
    Expr(Expression),
}

/// An integer field: a literal in `min..=max`, or (in JSONata states) an expression.
pub(crate) fn int_or_expr(
    f: &mut Fields,
    l: &mut Loader,
    key: &str,
    lang: QueryLanguage,
    min: i64,
    max: i64,
) -> Option<NumberOrExpr<i64>> {
    let v = f.take(key)?;
    let at = f.pointer(key);
    if let (Value::String(s), QueryLanguage::Jsonata) = (v, lang) {
        return match jsonata::parsed(l, &at, s) {
            Some(e) => Some(NumberOrExpr::Expr(e)),
            None => {
                l.error(
                    at,
                    format!(
                        "The field '{key}' must be an integer or a JSONata expression {{% ... %}}"
                    ),
                );
                None
            }
        };
    }
    int_in(l, &at, key, v, min, max).map(NumberOrExpr::Value)
}

/// A `Retry` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Retrier {
    /// `ErrorEquals`
    pub error_equals: Vec<String>,
    /// `IntervalSeconds`, default 1.
    pub interval_seconds: u64,
    /// `MaxAttempts`, default 3; 0 never retries.
    pub max_attempts: u64,
    /// `BackoffRate`, default 2.0.
    pub backoff_rate: f64,
    /// `MaxDelaySeconds`: a cap on any one interval.
    pub max_delay_seconds: Option<u64>,
    /// `JitterStrategy`: `FULL` draws each interval uniformly from 0 up to it.
    pub full_jitter: bool,
}

impl Retrier {
    /// The delay before the retry that follows `used` retries, in seconds, before jitter:
    /// IntervalSeconds × BackoffRate^used, at most MaxDelaySeconds.
    pub fn interval_after(&self, used: u32) -> f64 {
        let delay = self.interval_seconds as f64 * self.backoff_rate.powi(used as i32);
        match self.max_delay_seconds {
            Some(max) => delay.min(max as f64),
            None => delay,
        }
    }
}

/// A `Catch` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Catcher {
    /// `ErrorEquals`
    pub error_equals: Vec<String>,
    /// `Next`: where to go after catching.
    pub next: String,
    /// `ResultPath` for the error output; `None` is `null`. Default `$`.
    pub result_path: Option<Path>,
    /// `Assign`
    pub assign: Option<Assign>,
    /// `Output` (JSONata)
    pub output: Option<JsonataValue>,
}

/// Retry and Catch of a Task, Parallel or Map state.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ErrorHandling {
    /// `Retry`, in order.
    pub retry: Vec<Retrier>,
    /// `Catch`, in order.
    pub catch: Vec<Catcher>,
}

const MAX_SECONDS: i64 = 99_999_999;

impl ErrorHandling {
    pub(crate) fn load(f: &mut Fields, l: &mut Loader, lang: QueryLanguage) -> ErrorHandling {
        let mut handling = ErrorHandling::default();
        if f.has("Catch") && !f.map_value("Catch").is_some_and(Value::is_array) {
            l.lost_edge();
        }
        if let Some(items) = f.array(l, "Retry") {
            let at = f.pointer("Retry");
            let count = items.len();
            for (i, (at, v)) in elements(items, &at).enumerate() {
                let Some(mut r) = Fields::open(v, at, l) else {
                    continue;
                };
                let errors = error_equals(&mut r, l, i + 1 == count);
                r.str(l, "Comment");
                let retrier = Retrier {
                    error_equals: errors,
                    interval_seconds: r.int(l, "IntervalSeconds", 1, MAX_SECONDS).unwrap_or(1)
                        as u64,
                    max_attempts: r.int(l, "MaxAttempts", 0, MAX_SECONDS).unwrap_or(3) as u64,
                    backoff_rate: r.number(l, "BackoffRate", 1.0, f64::MAX).unwrap_or(2.0),
                    max_delay_seconds: r.int(l, "MaxDelaySeconds", 1, 31_622_400).map(|n| n as u64),
                    full_jitter: match r.str(l, "JitterStrategy") {
                        Some("FULL") => true,
                        Some("NONE") | None => false,
                        Some(other) => {
                            l.error(r.pointer("JitterStrategy"), format!("The field 'JitterStrategy' should have one of these values: [FULL, NONE], not '{other}'"));
                            false
                        }
                    },
                };
                r.finish(l);
                handling.retry.push(retrier);
            }
        }
        if let Some(items) = f.array(l, "Catch") {
            let at = f.pointer("Catch");
            let count = items.len();
            for (i, (at, v)) in elements(items, &at).enumerate() {
                let Some(mut c) = Fields::open(v, at, l) else {
                    l.lost_edge();
                    continue;
                };
                let errors = error_equals(&mut c, l, i + 1 == count);
                c.str(l, "Comment");
                let next = c.req_str(l, "Next").map(str::to_owned);
                let mut result_path = Some(Path::root_input());
                if c.in_language(l, "ResultPath", QueryLanguage::JsonPath, lang)
                    && let Some(p) = c.nullable_path(l, "ResultPath", true)
                {
                    result_path = p;
                }
                l.in_catcher = true;
                let output = if c.in_language(l, "Output", QueryLanguage::Jsonata, lang) {
                    jsonata_value(&mut c, l, "Output")
                } else {
                    None
                };
                let assign = assign(&mut c, l, lang);
                l.in_catcher = false;
                c.finish(l);
                match next {
                    Some(next) => handling.catch.push(Catcher {
                        error_equals: errors,
                        next,
                        result_path,
                        assign,
                        output,
                    }),
                    None => l.lost_edge(),
                }
            }
        }
        handling
    }
}

/// `ErrorEquals`: a non-empty list of names; `States.ALL` alone and only in the last entry.
fn error_equals(f: &mut Fields, l: &mut Loader, is_last: bool) -> Vec<String> {
    let at = f.pointer("ErrorEquals");
    let Some(v) = f.require("ErrorEquals") else {
        return Vec::new();
    };
    let Value::Array(items) = v else {
        l.error(
            at,
            format!(
                "The field 'ErrorEquals' must be an array, but got {}",
                type_name(v)
            ),
        );
        return Vec::new();
    };
    if items.is_empty() {
        l.error(at.clone(), "Value cannot be empty");
    }
    let mut names = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let Some(name) = item.as_str() else {
            l.error(
                index(&at, i),
                format!(
                    "An error name must be a string, but got {}",
                    type_name(item)
                ),
            );
            continue;
        };
        if name.starts_with("States.") && !crate::errors::ALL_NAMES.contains(&name) {
            l.error(index(&at, i), format!("'{name}' is not a predefined error name; custom error names must not start with 'States.'"));
        }
        names.push(name.to_owned());
    }
    if names.iter().any(|n| n == crate::errors::ALL) {
        if names.len() > 1 {
            l.error(at.clone(), "'States.ALL' must appear alone in ErrorEquals");
        }
        if !is_last {
            l.error(
                at,
                "A Retry or Catch entry with 'States.ALL' must be the last one",
            );
        }
    }
    names
}
