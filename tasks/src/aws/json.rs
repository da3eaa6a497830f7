//! Reading an AWS request from a task's input (Step Functions' PascalCase JSON): each field is
//! taken once, with a States.Runtime failure naming the field and what was expected when it is
//! missing or of the wrong type, and `finish` refuses fields the action does not have.

use serde_json::{Map, Value};
use stepstone_engine::Failure;
use stepstone_engine::asl::errors;

/// The fields of one request, taken one by one.
pub(crate) struct Fields {
    action: String,
    fields: Map<String, Value>,
}

/// A States.Runtime failure about `action`'s request.
pub(crate) fn runtime(action: &str, message: impl std::fmt::Display) -> Failure {
    Failure::new(errors::RUNTIME, format!("{action}: {message}"))
}

impl Fields {
    /// The request of `action`; it must be a JSON object (or null: no parameters).
    pub(crate) fn new(action: &str, input: Value) -> Result<Fields, Failure> {
        let fields = match input {
            Value::Object(map) => map,
            Value::Null => Map::new(),
            other => {
                return Err(runtime(
                    action,
                    format!("the parameters must be a JSON object, got {other}"),
                ));
            }
        };
        Ok(Fields {
            action: action.to_owned(),
            fields,
        })
    }

    fn error(&self, message: impl std::fmt::Display) -> Failure {
        runtime(&self.action, message)
    }

    /// A field as it is, if present.
    pub(crate) fn take(&mut self, name: &str) -> Option<Value> {
        self.fields.remove(name)
    }

    /// A string field that must be there.
    pub(crate) fn required_str(&mut self, name: &str) -> Result<String, Failure> {
        self.optional_str(name)?
            .ok_or_else(|| self.error(format!("the required parameter '{name}' is missing")))
    }

    /// A string field.
    pub(crate) fn optional_str(&mut self, name: &str) -> Result<Option<String>, Failure> {
        match self.fields.remove(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(self.error(format!(
                "the parameter '{name}' must be a string, got {other}"
            ))),
        }
    }

    /// A boolean field.
    pub(crate) fn optional_bool(&mut self, name: &str) -> Result<Option<bool>, Failure> {
        match self.fields.remove(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(b)),
            Some(other) => Err(self.error(format!(
                "the parameter '{name}' must be a boolean, got {other}"
            ))),
        }
    }

    /// An integer field.
    pub(crate) fn optional_i32(&mut self, name: &str) -> Result<Option<i32>, Failure> {
        match self.fields.remove(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) if n.as_i64().is_some_and(|v| i32::try_from(v).is_ok()) => {
                Ok(n.as_i64().map(|v| v as i32))
            }
            Some(other) => Err(self.error(format!(
                "the parameter '{name}' must be an integer, got {other}"
            ))),
        }
    }

    /// A list of strings.
    pub(crate) fn string_list(&mut self, name: &str) -> Result<Vec<String>, Failure> {
        let list = self.objects_or_values(name)?;
        list.into_iter()
            .map(|v| match v {
                Value::String(s) => Ok(s),
                other => Err(self.error(format!(
                    "the parameter '{name}' must be a list of strings, got {other}"
                ))),
            })
            .collect()
    }

    /// A list of objects, each read with its own [`Fields`] (named `name[i]` in messages).
    pub(crate) fn object_list(&mut self, name: &str) -> Result<Vec<Fields>, Failure> {
        let list = self.objects_or_values(name)?;
        list.into_iter()
            .enumerate()
            .map(|(i, v)| Fields::new(&format!("{} {name}[{i}]", self.action), v))
            .collect()
    }

    fn objects_or_values(&mut self, name: &str) -> Result<Vec<Value>, Failure> {
        match self.fields.remove(name) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(list)) => Ok(list),
            Some(other) => Err(self.error(format!(
                "the parameter '{name}' must be a list, got {other}"
            ))),
        }
    }

    /// Refuses the fields nobody took: the action has no such parameter.
    pub(crate) fn finish(self) -> Result<(), Failure> {
        match self.fields.keys().next() {
            None => Ok(()),
            Some(name) => Err(self.error(format!("'{name}' is not a parameter of this action"))),
        }
    }
}
