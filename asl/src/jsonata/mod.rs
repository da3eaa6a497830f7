//! JSONata fields, as the definition holds them.
//!
//! In a state whose QueryLanguage is JSONata, `Arguments`, `Output`, `Assign`, `Items` and the
//! like are JSON values in which a string written `{% expression %}` is a JSONata expression.
//! Here they are checked for that shape and kept; [`Compiled`] parses and evaluates one
//! expression as Step Functions does (`eval.rs`). Running JSONata states in the engine comes
//! with the JSONata issue.

use serde_json::Value;

mod eval;

pub use eval::{Compiled, QueryError, Scope};

use crate::parse::Loader;

/// A JSONata-mode value: JSON whose `{% ... %}` strings are expressions.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonataValue(pub Value);

/// The text of one `{% ... %}` expression, without the delimiters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expression(pub String);

/// The expression inside `{% ... %}`, or `None` when the text is not wrapped that way.
pub fn expression(text: &str) -> Option<Expression> {
    let inner = text.trim().strip_prefix("{%")?.strip_suffix("%}")?;
    Some(Expression(inner.trim().to_owned()))
}

impl JsonataValue {
    /// Checks every string that opens with `{%` is a whole expression, reporting at `at`.
    pub(crate) fn load(l: &mut Loader, value: &Value, at: &str) -> JsonataValue {
        check(l, value, at);
        JsonataValue(value.clone())
    }
}

fn check(l: &mut Loader, value: &Value, at: &str) {
    match value {
        Value::String(s) if s.trim_start().starts_with("{%") => match expression(s) {
            Some(e) if !e.0.is_empty() => {}
            _ => l.error(
                at,
                format!("The JSONata expression '{s}' must be written as {{% expression %}}"),
            ),
        },
        Value::Object(map) => map
            .iter()
            .for_each(|(k, v)| check(l, v, &crate::diagnostic::child(at, k))),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .for_each(|(i, v)| check(l, v, &crate::diagnostic::index(at, i))),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expressions_are_delimited() {
        assert_eq!(
            expression("{% $states.input %}"),
            Some(Expression("$states.input".into()))
        );
        assert_eq!(expression(" {%1+2%} "), Some(Expression("1+2".into())));
        assert_eq!(expression("{% x"), None);
        assert_eq!(expression("plain"), None);
    }
}
