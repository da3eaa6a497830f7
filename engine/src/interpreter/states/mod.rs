//! One file per state type: what entering it does, and how it resumes after a task, a timer or
//! its child runs. Each adds methods to [`crate::interpreter::Execution`].

use serde_json::Value;

mod choice;
mod fail;
mod map;
mod map_writer;
mod parallel;
mod pass;
mod succeed;
mod task;
mod wait;

/// A JSON value's type, as AWS names it in its messages.
pub(crate) fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}
