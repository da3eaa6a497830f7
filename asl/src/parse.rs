//! Reading a definition's JSON into the typed model, reporting every problem on the way.
//!
//! serde's derive stops at the first error and knows nothing of JSON Pointers, so the loaders
//! read each object through [`Fields`]: every getter checks its field's type, records problems
//! with their location, and marks the field as known; [`Fields::finish`] then reports the
//! required fields that were missing and the fields nobody asked for, with AWS's messages.

use serde_json::{Map, Value};

use crate::diagnostic::{Code, Diagnostic, child, index};
use crate::intrinsics::{self, Call};
use crate::language::QueryLanguage;
use crate::path::Path;

/// Which kind of state machine the definition is for; EXPRESS refuses some integrations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MachineType {
    /// Long-running, exactly-once workflows (the default).
    #[default]
    Standard,
    /// Short, high-volume workflows: no `.sync` and no `.waitForTaskToken`.
    Express,
}

/// Shared state of one load: diagnostics and the options that change what is valid.
pub(crate) struct Loader {
    pub(crate) diagnostics: Vec<Diagnostic>,
    pub(crate) machine_type: MachineType,
    /// The state machine's own QueryLanguage; AWS makes every state inherit it, including
    /// states inside Parallel branches and Map processors.
    pub(crate) top_language: QueryLanguage,
    /// One counter per scope being loaded: problems that lose an edge of the state graph (a
    /// state without a readable Type, a broken Next, a Catch without Next). A scope with none
    /// is complete, and only then can "not reachable" and "no terminal state" be trusted.
    lost_edges: Vec<u32>,
    /// While a catcher's Output and Assign load: the one place `$states.errorOutput` exists.
    pub(crate) in_catcher: bool,
    /// Whether an expression of the state being loaded may read `$states.context`.
    pub(crate) reads_context: bool,
    /// The variables the expressions of the state being loaded may read.
    pub(crate) variables_read: std::collections::BTreeSet<String>,
}

impl Loader {
    pub(crate) fn new(machine_type: MachineType) -> Self {
        Loader {
            diagnostics: Vec::new(),
            machine_type,
            top_language: QueryLanguage::JsonPath,
            lost_edges: Vec::new(),
            in_catcher: false,
            reads_context: false,
            variables_read: Default::default(),
        }
    }

    /// Starts loading a scope's states.
    pub(crate) fn enter_scope(&mut self) {
        self.lost_edges.push(0);
    }

    /// Ends a scope; true when all of its edges were read.
    pub(crate) fn leave_scope(&mut self) -> bool {
        self.lost_edges.pop() == Some(0)
    }

    /// Records that an edge of the current scope's graph could not be read.
    pub(crate) fn lost_edge(&mut self) {
        if let Some(n) = self.lost_edges.last_mut() {
            *n += 1;
        }
    }

    pub(crate) fn error(&mut self, at: impl Into<String>, message: impl Into<String>) {
        self.diagnostics
            .push(Diagnostic::new(Code::SchemaValidationFailed, at, message));
    }

    pub(crate) fn report(&mut self, code: Code, at: impl Into<String>, message: impl Into<String>) {
        self.diagnostics.push(Diagnostic::new(code, at, message));
    }
}

/// JSON type names as messages spell them ("a string", "an object").
pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The fields of one JSON object, read one by one.
pub(crate) struct Fields<'v> {
    map: &'v Map<String, Value>,
    pub(crate) at: String,
    used: Vec<&'v str>,
    missing: Vec<&'static str>,
}

impl<'v> Fields<'v> {
    /// Opens `value` as an object; reports and returns `None` when it is not one.
    pub(crate) fn open(value: &'v Value, at: String, l: &mut Loader) -> Option<Fields<'v>> {
        match value {
            Value::Object(map) => Some(Fields {
                map,
                at,
                used: Vec::new(),
                missing: Vec::new(),
            }),
            other => {
                l.error(
                    at,
                    format!("Expected an object, but got {}", type_name(other)),
                );
                None
            }
        }
    }

    pub(crate) fn pointer(&self, key: &str) -> String {
        child(&self.at, key)
    }

    /// Every key of the object, in document order.
    pub(crate) fn keys(&self) -> Vec<String> {
        self.map.keys().cloned().collect()
    }

    /// A field's value without marking it as known.
    pub(crate) fn map_value(&self, key: &str) -> Option<&'v Value> {
        self.map.get(key)
    }

    pub(crate) fn has(&self, key: &str) -> bool {
        self.map.contains_key(key)
    }

    /// The raw value of a field, marking it as known.
    pub(crate) fn take(&mut self, key: &str) -> Option<&'v Value> {
        let (k, v) = self.map.get_key_value(key)?;
        self.used.push(k.as_str());
        Some(v)
    }

    /// Like [`Fields::take`], and records the field as required when absent.
    pub(crate) fn require(&mut self, key: &'static str) -> Option<&'v Value> {
        let v = self.take(key);
        if v.is_none() {
            self.missing.push(key);
        }
        v
    }

    fn typed<T>(
        &mut self,
        l: &mut Loader,
        key: &str,
        v: Option<&'v Value>,
        expected: &str,
        get: impl FnOnce(&'v Value) -> Option<T>,
    ) -> Option<T> {
        let v = v?;
        let got = get(v);
        if got.is_none() {
            l.error(
                self.pointer(key),
                format!(
                    "The field '{key}' must be {expected}, but got {}",
                    type_name(v)
                ),
            );
        }
        got
    }

    pub(crate) fn str(&mut self, l: &mut Loader, key: &str) -> Option<&'v str> {
        let v = self.take(key);
        self.typed(l, key, v, "a string", Value::as_str)
    }

    pub(crate) fn req_str(&mut self, l: &mut Loader, key: &'static str) -> Option<&'v str> {
        let v = self.require(key);
        self.typed(l, key, v, "a string", Value::as_str)
    }

    pub(crate) fn bool(&mut self, l: &mut Loader, key: &str) -> Option<bool> {
        let v = self.take(key);
        self.typed(l, key, v, "a boolean", Value::as_bool)
    }

    pub(crate) fn object(&mut self, l: &mut Loader, key: &str) -> Option<&'v Value> {
        let v = self.take(key);
        self.typed(l, key, v, "an object", |v| v.is_object().then_some(v))
    }

    pub(crate) fn array(&mut self, l: &mut Loader, key: &str) -> Option<&'v Vec<Value>> {
        let v = self.take(key);
        self.typed(l, key, v, "an array", Value::as_array)
    }

    /// An integer within `min..=max`.
    pub(crate) fn int(&mut self, l: &mut Loader, key: &str, min: i64, max: i64) -> Option<i64> {
        let v = self.take(key)?;
        int_in(l, &self.pointer(key), key, v, min, max)
    }

    /// A number within `min..=max`.
    pub(crate) fn number(&mut self, l: &mut Loader, key: &str, min: f64, max: f64) -> Option<f64> {
        let v = self.take(key)?;
        let Some(x) = v.as_f64() else {
            l.error(
                self.pointer(key),
                format!(
                    "The field '{key}' must be a number, but got {}",
                    type_name(v)
                ),
            );
            return None;
        };
        if x < min || x > max {
            l.error(
                self.pointer(key),
                format!("The field '{key}' must be between {min} and {max}, but is {x}"),
            );
            return None;
        }
        Some(x)
    }

    /// A string field parsed by `parse`; a failure is reported as "must be a valid {what}".
    fn parsed<T, E: std::fmt::Display>(
        &mut self,
        l: &mut Loader,
        key: &str,
        what: &str,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> Option<T> {
        let text = self.str(l, key)?;
        parse(text)
            .map_err(|e| {
                l.error(
                    self.pointer(key),
                    format!("The value for the field '{key}' must be a valid {what}: {e}"),
                )
            })
            .ok()
    }

    /// A field whose value is a JSONPath (`InputPath`, `SecondsPath`, `Variable`, ...).
    pub(crate) fn path(&mut self, l: &mut Loader, key: &str) -> Option<Path> {
        self.parsed(l, key, "JSONPath", Path::parse)
    }

    /// A field whose value is a Reference Path (`ResultPath`, `ItemsPath`, `TimeoutSecondsPath`).
    pub(crate) fn reference_path(&mut self, l: &mut Loader, key: &str) -> Option<Path> {
        self.parsed(l, key, "ReferencePath", Path::parse_reference)
    }

    /// A field that may be a path or `null` (`InputPath`, `OutputPath`): `Some(None)` for null.
    pub(crate) fn nullable_path(
        &mut self,
        l: &mut Loader,
        key: &str,
        reference: bool,
    ) -> Option<Option<Path>> {
        match self.map.get(key) {
            Some(Value::Null) => {
                self.take(key);
                Some(None)
            }
            Some(_) if reference => self.reference_path(l, key).map(Some),
            Some(_) => self.path(l, key).map(Some),
            None => None,
        }
    }

    /// A field that is a path or an intrinsic call (`ErrorPath`, `CausePath`).
    pub(crate) fn path_or_call(&mut self, l: &mut Loader, key: &str) -> Option<Dynamic> {
        self.parsed(
            l,
            key,
            "JSONPath or a valid intrinsic function call",
            Dynamic::parse,
        )
    }

    /// For a field that belongs to one query language: reports it when the state uses the other.
    pub(crate) fn in_language(
        &mut self,
        l: &mut Loader,
        key: &str,
        field: QueryLanguage,
        state: QueryLanguage,
    ) -> bool {
        if !self.has(key) {
            return false;
        }
        if field != state {
            self.take(key);
            l.error(
                self.at.clone(),
                format!(
                    "The QueryLanguage is set to '{}', but field '{key}' is only supported for the '{}' QueryLanguage",
                    state.as_str(),
                    field.as_str()
                ),
            );
            return false;
        }
        true
    }

    /// Reports missing required fields, then fields that this object does not support.
    pub(crate) fn finish(self, l: &mut Loader) {
        if !self.missing.is_empty() {
            l.error(
                self.at.clone(),
                format!("These fields are required: [{}]", self.missing.join(", ")),
            );
        }
        for key in self.map.keys() {
            if !self.used.contains(&key.as_str()) {
                l.error(self.at.clone(), format!("Field '{key}' is not supported"));
            }
        }
    }
}

/// Checks that `v` is an integer in `min..=max`, reporting at `at` otherwise.
pub(crate) fn int_in(
    l: &mut Loader,
    at: &str,
    key: &str,
    v: &Value,
    min: i64,
    max: i64,
) -> Option<i64> {
    let n = match v.as_i64() {
        Some(n) => n,
        None if v.as_u64().is_some() => i64::MAX,
        None => {
            let what = if v.is_number() {
                "a non-integer number".to_owned()
            } else {
                type_name(v).to_owned()
            };
            l.error(
                at,
                format!("The field '{key}' must be an integer, but got {what}"),
            );
            return None;
        }
    };
    if n < min || n > max {
        l.error(
            at,
            format!("The field '{key}' must be between {min} and {max}, but is {v}"),
        );
        return None;
    }
    Some(n)
}

/// A JSONPath or an intrinsic call: what a `.$` field of a payload template, or `ErrorPath`,
/// can hold.
#[derive(Debug, Clone, PartialEq)]
pub enum Dynamic {
    /// `"$.a.b"`, `"$$.Execution.Id"`, `"$var"`
    Path(Path),
    /// `"States.Format('{}', $.a)"`
    Call(Call),
}

impl Dynamic {
    /// Parses a path or, when the text starts with `States.`, an intrinsic call.
    pub fn parse(text: &str) -> Result<Dynamic, String> {
        if intrinsics::looks_like_call(text) {
            Call::parse(text)
                .map(Dynamic::Call)
                .map_err(|e| e.to_string())
        } else {
            Path::parse(text)
                .map(Dynamic::Path)
                .map_err(|e| e.to_string())
        }
    }
}

/// Each element of an array field, with its pointer.
pub(crate) fn elements<'v>(
    items: &'v [Value],
    at: &str,
) -> impl Iterator<Item = (String, &'v Value)> {
    items
        .iter()
        .enumerate()
        .map(move |(i, v)| (index(at, i), v))
}
