//! JSONata fields, as the definition holds them.
//!
//! In a state whose QueryLanguage is JSONata, `Arguments`, `Output`, `Assign`, `Items` and the
//! like are JSON values in which a string written `{% expression %}` is a JSONata expression.
//! Here they are checked for that shape and kept; [`Compiled`] parses and evaluates one
//! expression as Step Functions does (`eval.rs`). Running JSONata states in the engine comes
//! with the JSONata issue.

use serde_json::Value;

mod analysis;
mod eval;
mod watchdog;

pub use eval::{Bounds, Compiled, MAX_PAD, MAX_SEQUENCE, QueryError, Scope};
pub use watchdog::{Interrupt, MAX_GROWTH};

use crate::diagnostic::Code;
use crate::parse::Loader;

/// A JSONata-mode value: JSON whose `{% ... %}` strings are expressions (`.0` as written).
/// Its expressions are compiled once, on first use.
#[derive(Debug, Clone)]
pub struct JsonataValue(pub Value, Cache<Node>);

impl PartialEq for JsonataValue {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

/// The text of one `{% ... %}` expression, without the delimiters (`.0`); compiled once, on
/// first use.
#[derive(Debug, Clone)]
pub struct Expression(pub String, Cache<Result<Compiled, QueryError>>);

impl PartialEq for Expression {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

impl Eq for Expression {}

/// A value computed once and shared by the clones of what holds it (a Machine's states are
/// compiled once per definition).
#[derive(Debug, Default)]
struct Cache<T>(std::sync::Arc<std::sync::OnceLock<T>>);

impl<T> Clone for Cache<T> {
    fn clone(&self) -> Self {
        Cache(self.0.clone())
    }
}

impl<T> Cache<T> {
    fn get_or_init(&self, f: impl FnOnce() -> T) -> &T {
        self.0.get_or_init(f)
    }
}

impl Expression {
    /// The expression `text` (without `{% %}`).
    pub fn new(text: impl Into<String>) -> Expression {
        Expression(text.into(), Cache(Default::default()))
    }

    /// The expression parsed (once: the result is kept).
    pub fn compiled(&self) -> &Result<Compiled, QueryError> {
        self.1.get_or_init(|| Compiled::compile(&self.0))
    }

    /// Evaluates the expression; `None` when its value is undefined.
    pub fn evaluate(&self, scope: &Scope) -> Result<Option<Value>, QueryError> {
        self.compiled()
            .as_ref()
            .map_err(Clone::clone)?
            .evaluate(scope)
    }
}

/// The expression inside `{% ... %}`, or `None` when the text is not wrapped that way.
pub fn expression(text: &str) -> Option<Expression> {
    // Exactly `{%` first and `%}` last: AWS takes `" {% x %} "` as a plain string (recorded in
    // the TestState corpus).
    let inner = text.strip_prefix("{%")?.strip_suffix("%}")?;
    Some(Expression::new(inner.trim()))
}

/// The expression of `text` (`{% ... %}`; `None` when `text` is not one), checked now (see
/// [`check_expression`]). The parsed expression is kept for the runs.
pub(crate) fn parsed(l: &mut Loader, at: &str, text: &str) -> Option<Expression> {
    let e = expression(text)?;
    check_expression(l, at, &e);
    Some(e)
}

/// What AWS refuses in an expression when the definition is created (as measured against AWS
/// and reported by other emulators' maintainers): one that does not parse
/// (INVALID_JSONATA_EXPRESSION, with the parser's message without its `S0000:` code), and what
/// [`Compiled::unsupported`] lists (UNSUPPORTED_JSONATA_EXPRESSION). Both at the field's
/// pointer.
fn check_expression(l: &mut Loader, at: &str, e: &Expression) {
    match e.compiled() {
        Err(error) => {
            let message = error_code(&error.0).map_or(error.0.as_str(), |(_, rest)| rest);
            l.report(Code::InvalidJsonataExpression, at, message);
        }
        Ok(compiled) => {
            l.reads_context |= compiled.reads_context();
            l.variables_read.extend(compiled.variables());
            for problem in compiled.unsupported(l.in_catcher) {
                l.report(Code::UnsupportedJsonataExpression, at, problem);
            }
        }
    }
}

/// A JSONata error message's code and the rest: `("S0207", "Unexpected end of expression")`
/// for `S0207: Unexpected end of expression`; `None` when it has no code.
fn error_code(message: &str) -> Option<(&str, &str)> {
    let (code, rest) = message.split_once(": ")?;
    let coded = code.len() == 5
        && code.starts_with(|c: char| c.is_ascii_uppercase())
        && code[1..].bytes().all(|b| b.is_ascii_digit());
    coded.then_some((code, rest))
}

/// A JSONata value with its expressions compiled.
#[derive(Debug)]
enum Node {
    Literal(Value),
    Expr(Expression),
    Object(Vec<(String, Node)>),
    Array(Vec<Node>),
}

impl Node {
    fn of(value: &Value) -> Node {
        match value {
            Value::String(s) => match expression(s) {
                Some(e) => Node::Expr(e),
                None => Node::Literal(value.clone()),
            },
            Value::Object(map) => {
                Node::Object(map.iter().map(|(k, v)| (k.clone(), Node::of(v))).collect())
            }
            Value::Array(items) => Node::Array(items.iter().map(Node::of).collect()),
            other => Node::Literal(other.clone()),
        }
    }

    /// The value. An expression whose value is undefined is an error, as on Step Functions.
    /// `at` is where this node is in the field, written as AWS writes it in causes: `/key` per
    /// object key, `[i]` per array index (`Output/values[0]`).
    fn evaluate(&self, scope: &Scope, at: &mut String) -> Result<Value, FieldError> {
        Ok(match self {
            Node::Literal(v) => v.clone(),
            Node::Expr(e) => match e.evaluate(scope) {
                Ok(Some(v)) => v,
                Ok(None) => return Err(FieldError::new(at, e, Problem::Undefined)),
                Err(q) => return Err(FieldError::new(at, e, Problem::Failed(q.0))),
            },
            Node::Object(fields) => {
                let mut out = serde_json::Map::new();
                for (k, node) in fields {
                    let len = at.len();
                    at.push('/');
                    at.push_str(k);
                    let v = node.evaluate(scope, at)?;
                    at.truncate(len);
                    out.insert(k.clone(), v);
                }
                Value::Object(out)
            }
            Node::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, node) in items.iter().enumerate() {
                    let len = at.len();
                    at.push_str(&format!("[{i}]"));
                    out.push(node.evaluate(scope, at)?);
                    at.truncate(len);
                }
                Value::Array(out)
            }
        })
    }
}

/// An expression in a JSONata value that failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Where in the value: `/key` per object key, `[i]` per array index (empty for the value
    /// itself), as AWS writes it after the field's name.
    pub path: String,
    /// The expression's text.
    pub expression: String,
    /// What went wrong.
    pub problem: Problem,
}

/// What went wrong with an expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// Its value is undefined.
    Undefined,
    /// It failed to evaluate, with this message.
    Failed(String),
}

impl FieldError {
    fn new(at: &str, e: &Expression, problem: Problem) -> FieldError {
        FieldError {
            path: at.to_owned(),
            expression: e.0.clone(),
            problem,
        }
    }

    /// AWS's description, for the field named `field` (`Output`, `Assign`...): "The JSONata
    /// expression '...' specified for the field 'Assign/result' returned nothing (undefined)."
    pub fn describe(&self, field: &str) -> String {
        let field = format!("{field}{}", self.path);
        match &self.problem {
            Problem::Undefined => format!(
                "The JSONata expression '{}' specified for the field '{field}' returned nothing (undefined).",
                self.expression
            ),
            // AWS ends the sentence before a coded JSONata message ("... evaluation. T0410:
            // ..."), and runs on into an uncoded one ("... evaluation: ...").
            Problem::Failed(message) => format!(
                "The JSONata expression '{}' specified for the field '{field}' threw an error during evaluation{}{message}",
                self.expression,
                if error_code(message).is_some() {
                    ". "
                } else {
                    ": "
                }
            ),
        }
    }
}

impl JsonataValue {
    /// Checks every string that opens with `{%` is a whole expression, reporting at `at`.
    pub(crate) fn load(l: &mut Loader, value: &Value, at: &str) -> JsonataValue {
        check(l, value, at);
        JsonataValue(value.clone(), Cache(Default::default()))
    }

    /// The value with its expressions evaluated.
    pub fn evaluate(&self, scope: &Scope) -> Result<Value, FieldError> {
        self.1
            .get_or_init(|| Node::of(&self.0))
            .evaluate(scope, &mut String::new())
    }
}

fn check(l: &mut Loader, value: &Value, at: &str) {
    match value {
        Value::String(s) if s.starts_with("{%") => match expression(s) {
            Some(e) if !e.0.is_empty() => check_expression(l, at, &e),
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
            Some(Expression::new("$states.input"))
        );
        assert_eq!(expression("{%1+2%}"), Some(Expression::new("1+2")));
        // Outside the delimiters nothing may stand, not even a space: AWS reads a plain string.
        assert_eq!(expression(" {%1+2%} "), None);
        assert_eq!(expression("{% x"), None);
        assert_eq!(expression("plain"), None);
    }

    #[test]
    fn failures_are_described_as_aws_describes_them() {
        let scope = Scope::new(&serde_json::json!({"input": {}}), std::iter::empty(), 0);
        let failure = |value: serde_json::Value| {
            JsonataValue(value, Cache(Default::default()))
                .evaluate(&scope)
                .unwrap_err()
                .describe("Output")
        };
        assert_eq!(
            failure(serde_json::json!({"n": "{% $states.input.none %}"})),
            "The JSONata expression '$states.input.none' specified for the field 'Output/n' returned nothing (undefined)."
        );
        // An array index is `[i]` after its key; a coded message ends the sentence.
        let e = failure(serde_json::json!({"values": [1, "{% $abs('x') %}"]}));
        assert!(
            e.starts_with("The JSONata expression '$abs('x')' specified for the field 'Output/values[1]' threw an error during evaluation. T0410: "),
            "{e}"
        );
        let uncoded = FieldError {
            path: String::new(),
            expression: "x".into(),
            problem: Problem::Failed("no code here".into()),
        };
        assert!(
            uncoded
                .describe("Items")
                .ends_with("'Items' threw an error during evaluation: no code here")
        );
    }
}
