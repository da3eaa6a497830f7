//! The definition model: a state machine as written, with its leaf values compiled.

use indexmap::IndexMap;
use serde_json::Value;

use crate::diagnostic::{Code, Diagnostic, child};
use crate::parse::{Fields, Loader, MachineType};
use crate::states::{
    Choice, Fail, Map, Parallel, Pass, QueryLanguage, STATE_TYPES, State, StateCx, StateKind,
    Succeed, Task, Wait,
};

/// The longest state name AWS accepts.
pub const MAX_STATE_NAME_CHARS: usize = 80;

/// A set of states with its own `StartAt`: the state machine itself, a Parallel branch, or a
/// Map's ItemProcessor.
#[derive(Debug, Clone, PartialEq)]
pub struct Scope {
    /// `Comment`
    pub comment: Option<String>,
    /// `StartAt`
    pub start_at: String,
    /// `States`, in document order.
    pub states: IndexMap<String, State>,
    /// The JSON Pointer of this scope in the definition (`""` for the state machine).
    pub pointer: String,
    /// False when a state or an edge could not be read (the definition has errors then).
    pub(crate) complete: bool,
}

/// A loaded state machine definition.
#[derive(Debug, Clone, PartialEq)]
pub struct Definition {
    /// The top-level scope.
    pub scope: Scope,
    /// `TimeoutSeconds`: the execution's time limit.
    pub timeout_seconds: Option<u64>,
    /// `Version`
    pub version: Option<String>,
    /// `QueryLanguage`, inherited by every state that does not set its own.
    pub query_language: QueryLanguage,
}

/// The result of loading: what could be read, and every diagnostic.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// What could be read; `None` when not even the top level could. It may be partial when
    /// there are errors: only a [`crate::Machine`] is known to be valid.
    pub definition: Option<Definition>,
    /// Errors and warnings, in document order.
    pub diagnostics: Vec<Diagnostic>,
}

impl Definition {
    /// Reads definition text. Text that is not JSON gives `INVALID_JSON_DESCRIPTION` with the
    /// line and column; anything else not an object gives AWS's "must be a valid JSON object".
    pub fn load_str(text: &str, machine_type: MachineType) -> Loaded {
        match serde_json::from_str::<Value>(text) {
            Ok(v) => Definition::load(&v, machine_type),
            Err(e) if e.is_eof() && text.trim().is_empty() => Loaded {
                definition: None,
                diagnostics: vec![Diagnostic::unplaced(
                    Code::SchemaValidationFailed,
                    "Definition must be a valid JSON object",
                )],
            },
            Err(e) => Loaded {
                definition: None,
                diagnostics: vec![json_error(text, &e)],
            },
        }
    }

    /// Reads a parsed JSON definition.
    pub fn load(value: &Value, machine_type: MachineType) -> Loaded {
        let mut l = Loader::new(machine_type);
        let definition = load_root(&mut l, value);
        Loaded {
            definition,
            diagnostics: l.diagnostics,
        }
    }
}

/// `INVALID_JSON_DESCRIPTION`, worded and located the way AWS's parser (Jackson) does:
/// `[Source: (String)"..."; line: 1, column: 4]`, where an unrecognized word is reported at the
/// column just past its end.
fn json_error(text: &str, e: &serde_json::Error) -> Diagnostic {
    const SHOWN: usize = 500;
    let (line, mut column) = (e.line(), e.column());
    let mut message = e.to_string();
    if let Some(line_text) = text.lines().nth(line.saturating_sub(1)) {
        let chars: Vec<char> = line_text.chars().collect();
        let at = column.saturating_sub(1).min(chars.len());
        let is_word = |c: &char| c.is_alphanumeric() || *c == '_';
        let start = chars[..at]
            .iter()
            .rposition(|c| !is_word(c))
            .map_or(0, |i| i + 1);
        let end = chars[at..]
            .iter()
            .position(|c| !is_word(c))
            .map_or(chars.len(), |i| at + i);
        if start < end && chars[start].is_alphabetic() {
            let word: String = chars[start..end].iter().collect();
            column = end + 1;
            message = format!(
                "Unrecognized token '{word}': was expecting (JSON String, Number, Array, Object or token 'null', 'true' or 'false')"
            );
        }
    }
    let shown: String = text.chars().take(SHOWN).collect();
    let hidden = text.chars().count().saturating_sub(SHOWN);
    let truncated = if hidden > 0 {
        format!("[truncated {hidden} chars]")
    } else {
        String::new()
    };
    let location =
        format!("[Source: (String)\"{shown}\"{truncated}; line: {line}, column: {column}]");
    Diagnostic::new(
        Code::InvalidJsonDescription,
        location.clone(),
        format!("{message}\n at {location}"),
    )
}

fn load_root(l: &mut Loader, value: &Value) -> Option<Definition> {
    let Value::Object(_) = value else {
        l.diagnostics.push(Diagnostic::unplaced(
            Code::SchemaValidationFailed,
            "Definition must be a valid JSON object",
        ));
        return None;
    };
    let mut f = Fields::open(value, String::new(), l)?;
    // Read first: every state inherits it.
    let query_language = match f.str(l, "QueryLanguage") {
        Some(s) => QueryLanguage::parse(s).unwrap_or_else(|| {
            l.error(f.pointer("QueryLanguage"), format!("The field 'QueryLanguage' should have one of these values: [JSONPath, JSONata], not '{s}'"));
            QueryLanguage::JsonPath
        }),
        None => QueryLanguage::JsonPath,
    };
    l.top_language = query_language;
    let timeout_seconds = f.int(l, "TimeoutSeconds", 1, 99_999_999).map(|n| n as u64);
    let version = f.str(l, "Version").map(str::to_owned);
    if let Some(v) = &version
        && v != "1.0"
    {
        l.error(
            f.pointer("Version"),
            format!("The field 'Version' should be \"1.0\", not \"{v}\""),
        );
    }
    let scope = Scope::load_fields(l, &mut f);
    f.finish(l);
    Some(Definition {
        scope: scope?,
        timeout_seconds,
        version,
        query_language,
    })
}

impl Scope {
    /// Loads `StartAt`, `States` and `Comment` from an object whose other fields the caller
    /// reads (the root has `TimeoutSeconds`, a processor has `ProcessorConfig`).
    pub(crate) fn load_fields(l: &mut Loader, f: &mut Fields) -> Option<Scope> {
        // `States` before `StartAt`: AWS lists missing fields in that order.
        let states_value = f.require("States");
        let start_at = f.req_str(l, "StartAt");
        let comment = f.str(l, "Comment").map(str::to_owned);
        let states_at = f.pointer("States");
        let mut states = IndexMap::new();
        l.enter_scope();
        match states_value {
            Some(Value::Object(map)) => {
                if map.is_empty() {
                    l.error(states_at.clone(), "Value cannot be empty");
                }
                for (name, v) in map {
                    let at = child(&states_at, name);
                    check_name(l, name, &at);
                    match load_state(l, v, at) {
                        Some(state) => {
                            states.insert(name.clone(), state);
                        }
                        None => l.lost_edge(),
                    }
                }
            }
            Some(other) => l.error(
                states_at,
                format!(
                    "The field 'States' must be an object, but got {}",
                    crate::parse::type_name(other)
                ),
            ),
            None => l.lost_edge(),
        }
        let complete = l.leave_scope();
        Some(Scope {
            comment,
            start_at: start_at?.to_owned(),
            states,
            pointer: f.at.clone(),
            complete,
        })
    }

    /// A Parallel branch: `{StartAt, States, Comment}` and nothing else.
    pub(crate) fn load_nested(l: &mut Loader, value: &Value, at: String) -> Option<Scope> {
        let mut f = Fields::open(value, at, l)?;
        let scope = Scope::load_fields(l, &mut f);
        f.finish(l);
        scope
    }
}

fn check_name(l: &mut Loader, name: &str, at: &str) {
    let chars = name.chars().count();
    if chars == 0 || chars > MAX_STATE_NAME_CHARS {
        l.report(Code::InvalidStateName, at, format!("State names must be 1 to {MAX_STATE_NAME_CHARS} characters long, but '{name}' has {chars}"));
    } else if name.chars().any(char::is_control) {
        l.report(
            Code::InvalidStateName,
            at,
            format!("The state name {name:?} contains a control character"),
        );
    }
}

fn load_state(l: &mut Loader, value: &Value, at: String) -> Option<State> {
    // The states inside a Map or Parallel load within this one: each keeps its own flag.
    let outer = std::mem::replace(&mut l.reads_context, false);
    let outer_variables = std::mem::take(&mut l.variables_read);
    let state = load_state_fields(l, value, at);
    let reads_context = std::mem::replace(&mut l.reads_context, outer);
    let variables_read = std::mem::replace(&mut l.variables_read, outer_variables);
    state.map(|s| {
        let growth = crate::bounds::growth(value, &s);
        let children_growth = crate::bounds::children_growth(value, &s);
        State {
            reads_context,
            variables_read,
            growth,
            children_growth,
            ..s
        }
    })
}

fn load_state_fields(l: &mut Loader, value: &Value, at: String) -> Option<State> {
    let mut f = Fields::open(value, at, l)?;
    let type_at = f.pointer("Type");
    let ty = f.req_str(l, "Type");
    let comment = f.str(l, "Comment").map(str::to_owned);
    let own_language = f.str(l, "QueryLanguage").and_then(|s| {
        let lang = QueryLanguage::parse(s);
        if lang.is_none() {
            l.error(f.pointer("QueryLanguage"), format!("The field 'QueryLanguage' should have one of these values: [JSONPath, JSONata], not '{s}'"));
        }
        lang
    });
    if own_language == Some(QueryLanguage::JsonPath) && l.top_language == QueryLanguage::Jsonata {
        l.error(
            f.at.clone(),
            "'QueryLanguage' can not be 'JSONPath' if set to 'JSONata' for whole state machine",
        );
    }
    let Some(ty) = ty else {
        if !f.has("Type") {
            l.error(f.at.clone(), "These fields are required: [Type]");
        }
        return None;
    };
    let cx = StateCx {
        lang: own_language.unwrap_or(l.top_language),
    };
    let kind = match ty {
        "Pass" => StateKind::Pass(Pass::load(&mut f, l, &cx)),
        "Task" => StateKind::Task(Box::new(Task::load(&mut f, l, &cx))),
        "Choice" => StateKind::Choice(Choice::load(&mut f, l, &cx)),
        "Wait" => StateKind::Wait(Wait::load(&mut f, l, &cx)),
        "Succeed" => StateKind::Succeed(Succeed::load(&mut f, l, &cx)),
        "Fail" => StateKind::Fail(Fail::load(&mut f, l, &cx)),
        "Parallel" => StateKind::Parallel(Parallel::load(&mut f, l, &cx)),
        "Map" => StateKind::Map(Box::new(Map::load(&mut f, l, &cx))),
        _ => {
            l.error(
                type_at,
                format!(
                    "The field 'Type' should have one of these values: [{}]",
                    STATE_TYPES.join(", ")
                ),
            );
            return None;
        }
    };
    f.finish(l);
    Some(State {
        comment,
        query_language: cx.lang,
        kind,
        reads_context: false,
        variables_read: Default::default(),
        growth: None,
        children_growth: None,
    })
}
