//! The 18 intrinsic functions (`States.Format(...)` and friends), parsed once at load time.
//!
//! Syntax, as Step Functions accepts it: `States.Name(arg, ...)` where an argument is a
//! single-quoted string (escapes `\'`, `\{`, `\}`, `\\`; AWS refuses any other escape, such as
//! `\"`), a number, `true`, `false`, `null`, a path (`$.a`, `$$.Execution.Id`, `$var`), or a
//! nested call. Arity and the types of literal arguments are checked here; the types of values
//! read through paths can only be checked when the state runs.

use std::fmt;

use serde_json::Value;

use crate::path::Path;

mod eval;

pub use eval::{ARRAY_RANGE_MAX, splitmix64};
pub(crate) use eval::{hash, uuid_v4};

/// An intrinsic function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)] // the names are AWS's
pub enum Function {
    Format,
    StringToJson,
    JsonToString,
    Array,
    ArrayPartition,
    ArrayContains,
    ArrayRange,
    ArrayGetItem,
    ArrayLength,
    ArrayUnique,
    Base64Encode,
    Base64Decode,
    Hash,
    JsonMerge,
    MathRandom,
    MathAdd,
    StringSplit,
    Uuid,
}

/// What a parameter accepts, checked against literal arguments and nested calls' results.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Any,
    String,
    Number,
    Integer,
    Bool,
    Array,
    Object,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Any => "any value",
            Kind::String => "a string",
            Kind::Number => "a number",
            Kind::Integer => "an integer",
            Kind::Bool => "a boolean",
            Kind::Array => "an array",
            Kind::Object => "an object",
        }
    }

    /// Whether a value of kind `actual` may be passed where `self` is expected.
    fn accepts(self, actual: Kind) -> bool {
        self == Kind::Any
            || actual == Kind::Any
            || self == actual
            || (self == Kind::Number && actual == Kind::Integer)
            || (self == Kind::Integer && actual == Kind::Number)
    }

    fn of_literal(v: &Value) -> Kind {
        match v {
            Value::String(_) => Kind::String,
            Value::Number(n) if n.is_i64() || n.is_u64() => Kind::Integer,
            Value::Number(_) => Kind::Number,
            Value::Bool(_) => Kind::Bool,
            Value::Array(_) => Kind::Array,
            Value::Object(_) => Kind::Object,
            Value::Null => Kind::Any,
        }
    }
}

/// The hash algorithms `States.Hash` accepts.
pub const HASH_ALGORITHMS: [&str; 5] = ["MD5", "SHA-1", "SHA-256", "SHA-384", "SHA-512"];

impl Function {
    /// Every function, in AWS's documentation order.
    pub const ALL: [Function; 18] = [
        Function::Format,
        Function::StringToJson,
        Function::JsonToString,
        Function::Array,
        Function::ArrayPartition,
        Function::ArrayContains,
        Function::ArrayRange,
        Function::ArrayGetItem,
        Function::ArrayLength,
        Function::ArrayUnique,
        Function::Base64Encode,
        Function::Base64Decode,
        Function::Hash,
        Function::JsonMerge,
        Function::MathRandom,
        Function::MathAdd,
        Function::StringSplit,
        Function::Uuid,
    ];

    /// The full name, e.g. `States.Format`.
    pub fn name(self) -> &'static str {
        match self {
            Function::Format => "States.Format",
            Function::StringToJson => "States.StringToJson",
            Function::JsonToString => "States.JsonToString",
            Function::Array => "States.Array",
            Function::ArrayPartition => "States.ArrayPartition",
            Function::ArrayContains => "States.ArrayContains",
            Function::ArrayRange => "States.ArrayRange",
            Function::ArrayGetItem => "States.ArrayGetItem",
            Function::ArrayLength => "States.ArrayLength",
            Function::ArrayUnique => "States.ArrayUnique",
            Function::Base64Encode => "States.Base64Encode",
            Function::Base64Decode => "States.Base64Decode",
            Function::Hash => "States.Hash",
            Function::JsonMerge => "States.JsonMerge",
            Function::MathRandom => "States.MathRandom",
            Function::MathAdd => "States.MathAdd",
            Function::StringSplit => "States.StringSplit",
            Function::Uuid => "States.UUID",
        }
    }

    fn from_name(name: &str) -> Option<Function> {
        Function::ALL.into_iter().find(|f| f.name() == name)
    }

    /// Fixed parameters, and the kind of any further (variadic) ones.
    fn signature(self) -> (&'static [Kind], Option<Kind>) {
        use Kind::*;
        match self {
            Function::Format => (&[String], Some(Any)),
            Function::StringToJson => (&[String], None),
            Function::JsonToString => (&[Any], None),
            Function::Array => (&[], Some(Any)),
            Function::ArrayPartition => (&[Array, Integer], None),
            Function::ArrayContains => (&[Array, Any], None),
            Function::ArrayRange => (&[Integer, Integer, Integer], None),
            Function::ArrayGetItem => (&[Array, Integer], None),
            Function::ArrayLength | Function::ArrayUnique => (&[Array], None),
            Function::Base64Encode | Function::Base64Decode => (&[String], None),
            Function::Hash => (&[Any, String], None),
            Function::JsonMerge => (&[Object, Object, Bool], None),
            // The third argument, a seed, is optional.
            Function::MathRandom => (&[Integer, Integer], Some(Integer)),
            Function::MathAdd => (&[Number, Number], None),
            Function::StringSplit => (&[String, String], None),
            Function::Uuid => (&[], None),
        }
    }

    fn max_args(self) -> Option<usize> {
        match self {
            Function::MathRandom => Some(3),
            f => match f.signature() {
                (fixed, None) => Some(fixed.len()),
                (_, Some(_)) => None,
            },
        }
    }

    fn returns(self) -> Kind {
        match self {
            Function::Format
            | Function::JsonToString
            | Function::Base64Encode
            | Function::Base64Decode
            | Function::Hash
            | Function::Uuid => Kind::String,
            Function::Array
            | Function::ArrayPartition
            | Function::ArrayRange
            | Function::ArrayUnique
            | Function::StringSplit => Kind::Array,
            Function::ArrayContains => Kind::Bool,
            Function::ArrayLength | Function::MathRandom => Kind::Integer,
            Function::MathAdd => Kind::Number,
            Function::JsonMerge => Kind::Object,
            Function::StringToJson | Function::ArrayGetItem => Kind::Any,
        }
    }
}

impl fmt::Display for Function {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An argument of an intrinsic call.
#[derive(Debug, Clone, PartialEq)]
pub enum Arg {
    /// `'text'`, `12`, `-1.5`, `true`, `null`
    Literal(Value),
    /// `$.a`, `$$.Execution.Id`, `$var`
    Path(Path),
    /// `States.ArrayLength($.a)`
    Call(Call),
}

/// A piece of a `States.Format` template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormatPiece {
    /// Text copied as it is (escapes already removed).
    Text(String),
    /// `{}`: the next argument.
    Placeholder,
}

/// A parsed intrinsic function call.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    /// Which function.
    pub function: Function,
    /// Its arguments, in order.
    pub args: Vec<Arg>,
    /// For `States.Format` with a literal template: the template split at its `{}`s. Kept apart
    /// because `\{` in the literal is a brace, not a placeholder.
    pub format: Option<Vec<FormatPiece>>,
}

/// Why a string is not a valid intrinsic call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Error(String);

/// True when a string is meant as an intrinsic call (it starts with `States.`), so a caller can
/// tell "not a call" from "a broken call".
pub fn looks_like_call(text: &str) -> bool {
    text.trim_start().starts_with("States.")
}

impl Call {
    /// Parses `States.Name(args...)`, the whole string.
    pub fn parse(text: &str) -> Result<Call, Error> {
        let mut p = Parser { s: text, pos: 0 };
        p.skip_ws();
        let call = p.call()?;
        p.skip_ws();
        if p.pos != text.len() {
            return Err(p.error("unexpected text after the closing parenthesis"));
        }
        Ok(call)
    }

    fn check(function: Function, args: &[Arg]) -> Result<(), String> {
        let (fixed, variadic) = function.signature();
        let required = fixed.len();
        let arity_ok =
            args.len() >= required && function.max_args().is_none_or(|m| args.len() <= m);
        if !arity_ok {
            let expected = match (function.max_args(), variadic) {
                (Some(max), _) if max == required => format!("{required}"),
                (Some(max), _) => format!("{required} to {max}"),
                (None, _) => format!("at least {required}"),
            };
            return Err(format!(
                "{function} takes {expected} argument{}, but {} were given",
                if expected == "1" { "" } else { "s" },
                args.len()
            ));
        }
        for (i, arg) in args.iter().enumerate() {
            let want = fixed.get(i).copied().or(variadic).unwrap_or(Kind::Any);
            let got = match arg {
                Arg::Literal(v) => Kind::of_literal(v),
                Arg::Path(_) => Kind::Any,
                Arg::Call(c) => c.function.returns(),
            };
            if !want.accepts(got) {
                return Err(format!(
                    "argument {} of {function} must be {}, not {}",
                    i + 1,
                    want.name(),
                    got.name()
                ));
            }
        }
        if function == Function::Hash
            && let Some(Arg::Literal(Value::String(alg))) = args.get(1)
            && !HASH_ALGORITHMS.contains(&alg.as_str())
        {
            return Err(format!(
                "States.Hash does not know the algorithm '{alg}'; use one of {}",
                HASH_ALGORITHMS.join(", ")
            ));
        }
        Ok(())
    }
}

struct Parser<'a> {
    s: &'a str,
    pos: usize,
}

impl Parser<'_> {
    fn error(&self, what: &str) -> Error {
        Error(format!(
            "{what} (at character {})",
            self.s[..self.pos].chars().count() + 1
        ))
    }

    fn rest(&self) -> &str {
        &self.s[self.pos..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn skip_ws(&mut self) {
        let trimmed = self.rest().trim_start();
        self.pos = self.s.len() - trimmed.len();
    }

    fn call(&mut self) -> Result<Call, Error> {
        let name_len = self
            .rest()
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == '_'))
            .unwrap_or(self.rest().len());
        let name = self.rest()[..name_len].to_owned();
        let function = Function::from_name(&name).ok_or_else(|| {
            if name.starts_with("States.") {
                self.error(&format!("'{name}' is not an intrinsic function"))
            } else {
                self.error("expected an intrinsic function such as States.Format(...)")
            }
        })?;
        self.pos += name_len;
        if self.peek() != Some('(') {
            return Err(self.error(&format!("expected '(' after {name}")));
        }
        self.pos += 1;
        let mut args = Vec::new();
        self.skip_ws();
        let mut format = None;
        if self.peek() == Some(')') {
            self.pos += 1;
        } else {
            loop {
                self.skip_ws();
                let (arg, pieces) = self.arg()?;
                if args.is_empty() && function == Function::Format {
                    format = pieces;
                }
                args.push(arg);
                self.skip_ws();
                match self.peek() {
                    Some(',') => self.pos += 1,
                    Some(')') => {
                        self.pos += 1;
                        break;
                    }
                    _ => return Err(self.error("expected ',' or ')'")),
                }
            }
        }
        Call::check(function, &args).map_err(Error)?;
        Ok(Call {
            function,
            args,
            format,
        })
    }

    fn arg(&mut self) -> Result<(Arg, Option<Vec<FormatPiece>>), Error> {
        match self.peek() {
            Some('\'') => {
                let (text, pieces) = self.string()?;
                Ok((Arg::Literal(Value::String(text)), Some(pieces)))
            }
            Some('$') => {
                let len = path_len(self.rest());
                let text = self.rest()[..len].trim_end();
                let path = Path::parse(text).map_err(|e| self.error(&format!("'{text}': {e}")))?;
                self.pos += len;
                Ok((Arg::Path(path), None))
            }
            Some('S') => Ok((Arg::Call(self.call()?), None)),
            Some(c) if c == '-' || c.is_ascii_digit() => {
                let len = self
                    .rest()
                    .find(|c: char| {
                        !(c.is_ascii_digit() || matches!(c, '-' | '+' | '.' | 'e' | 'E'))
                    })
                    .unwrap_or(self.rest().len());
                let token = &self.rest()[..len];
                let number: serde_json::Number = token
                    .parse()
                    .map_err(|_| self.error(&format!("'{token}' is not a number")))?;
                self.pos += len;
                Ok((Arg::Literal(Value::Number(number)), None))
            }
            _ => {
                for (word, value) in [
                    ("true", Value::Bool(true)),
                    ("false", Value::Bool(false)),
                    ("null", Value::Null),
                ] {
                    if self.rest().starts_with(word) {
                        self.pos += word.len();
                        return Ok((Arg::Literal(value), None));
                    }
                }
                Err(self.error("expected an argument: a 'string', a number, true, false, null, a path or a call"))
            }
        }
    }

    /// A single-quoted string; returns its text and its `States.Format` pieces.
    fn string(&mut self) -> Result<(String, Vec<FormatPiece>), Error> {
        self.pos += 1; // opening quote
        let mut text = String::new();
        let mut pieces = Vec::new();
        let mut piece = String::new();
        let mut chars = self.rest().char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '\'' => {
                    self.pos += i + 1;
                    if !piece.is_empty() {
                        pieces.push(FormatPiece::Text(piece));
                    }
                    return Ok((text, pieces));
                }
                '\\' => match chars.next() {
                    Some((_, e @ ('\'' | '{' | '}' | '\\'))) => {
                        text.push(e);
                        piece.push(e);
                    }
                    Some((_, e)) => {
                        self.pos += i;
                        return Err(self.error(&format!(
                            "'\\{e}' is not a valid escape; only \\', \\{{, \\}} and \\\\ are"
                        )));
                    }
                    None => break,
                },
                '{' if self.rest()[i..].starts_with("{}") => {
                    chars.next();
                    text.push_str("{}");
                    if !piece.is_empty() {
                        pieces.push(FormatPiece::Text(std::mem::take(&mut piece)));
                    }
                    pieces.push(FormatPiece::Placeholder);
                }
                c => {
                    text.push(c);
                    piece.push(c);
                }
            }
        }
        Err(self.error("unterminated string"))
    }
}

/// The length of a path argument: up to a `,` or `)` outside brackets, parentheses and quotes.
fn path_len(s: &str) -> usize {
    let mut open: Vec<char> = Vec::new();
    let mut quote = None;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '\'' | '"' => quote = Some(c),
            '[' => open.push(']'),
            '(' => open.push(')'),
            ']' | ')' if open.last() == Some(&c) => {
                open.pop();
            }
            ',' | ')' if open.is_empty() => return i,
            // A closer that matches nothing ends the path; parsing it then reports the error.
            ']' | ')' => return i + c.len_utf8(),
            _ => {}
        }
    }
    s.len()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn call(text: &str) -> Call {
        Call::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn fails(text: &str) -> String {
        match Call::parse(text) {
            Ok(c) => panic!("{text} parsed as {c:?}"),
            Err(e) => e.to_string(),
        }
    }

    fn lit(v: Value) -> Arg {
        Arg::Literal(v)
    }

    fn path(p: &str) -> Arg {
        Arg::Path(Path::parse(p).unwrap())
    }

    #[test]
    fn every_function_parses_with_its_arity() {
        for (text, function, args) in [
            (
                "States.Format('a {} b', $.x)",
                Function::Format,
                vec![lit(json!("a {} b")), path("$.x")],
            ),
            (
                "States.StringToJson($.s)",
                Function::StringToJson,
                vec![path("$.s")],
            ),
            (
                "States.JsonToString($.o)",
                Function::JsonToString,
                vec![path("$.o")],
            ),
            ("States.Array()", Function::Array, vec![]),
            (
                "States.Array('a', 1, true, null)",
                Function::Array,
                vec![
                    lit(json!("a")),
                    lit(json!(1)),
                    lit(json!(true)),
                    lit(json!(null)),
                ],
            ),
            (
                "States.ArrayPartition($.a, 2)",
                Function::ArrayPartition,
                vec![path("$.a"), lit(json!(2))],
            ),
            (
                "States.ArrayContains($.a, 5)",
                Function::ArrayContains,
                vec![path("$.a"), lit(json!(5))],
            ),
            (
                "States.ArrayRange(1, 10, 2)",
                Function::ArrayRange,
                vec![lit(json!(1)), lit(json!(10)), lit(json!(2))],
            ),
            (
                "States.ArrayGetItem($.a, 0)",
                Function::ArrayGetItem,
                vec![path("$.a"), lit(json!(0))],
            ),
            (
                "States.ArrayLength($.a)",
                Function::ArrayLength,
                vec![path("$.a")],
            ),
            (
                "States.ArrayUnique($.a)",
                Function::ArrayUnique,
                vec![path("$.a")],
            ),
            (
                "States.Base64Encode($.s)",
                Function::Base64Encode,
                vec![path("$.s")],
            ),
            (
                "States.Base64Decode($s)",
                Function::Base64Decode,
                vec![path("$s")],
            ),
            (
                "States.Hash($.s, 'SHA-256')",
                Function::Hash,
                vec![path("$.s"), lit(json!("SHA-256"))],
            ),
            (
                "States.JsonMerge($.a, $.b, false)",
                Function::JsonMerge,
                vec![path("$.a"), path("$.b"), lit(json!(false))],
            ),
            (
                "States.MathRandom(1, 10)",
                Function::MathRandom,
                vec![lit(json!(1)), lit(json!(10))],
            ),
            (
                "States.MathRandom(1, 10, 7)",
                Function::MathRandom,
                vec![lit(json!(1)), lit(json!(10)), lit(json!(7))],
            ),
            (
                "States.MathAdd($.a, -1)",
                Function::MathAdd,
                vec![path("$.a"), lit(json!(-1))],
            ),
            (
                "States.MathAdd(1.5, 2)",
                Function::MathAdd,
                vec![lit(json!(1.5)), lit(json!(2))],
            ),
            (
                "States.StringSplit($.s, ',')",
                Function::StringSplit,
                vec![path("$.s"), lit(json!(","))],
            ),
            ("States.UUID()", Function::Uuid, vec![]),
        ] {
            let c = call(text);
            assert_eq!(c.function, function, "{text}");
            assert_eq!(c.args, args, "{text}");
        }
    }

    #[test]
    fn nested_calls_and_context_paths() {
        let c = call(
            "States.ArrayGetItem(States.StringSplit($$.StateMachine.Name, '-'), States.MathAdd(States.ArrayLength(States.StringSplit($$.StateMachine.Name, '-')), -1))",
        );
        assert_eq!(c.function, Function::ArrayGetItem);
        let Arg::Call(inner) = &c.args[1] else {
            panic!("nested call")
        };
        assert_eq!(inner.function, Function::MathAdd);
        let c = call("States.Format('{}', $.a['b,c'])");
        assert_eq!(c.args[1], path("$.a['b,c']"));
        let c = call("  States.Format( '{}' , $.a[0] )  ");
        assert_eq!(c.args.len(), 2);
    }

    #[test]
    fn strings_and_escapes() {
        let c = call(r"States.Format('a \{} b {} \'q\' \\', $.x)");
        assert_eq!(c.args[0], lit(json!(r"a {} b {} 'q' \")));
        assert_eq!(
            c.format.unwrap(),
            vec![
                FormatPiece::Text("a {} b ".into()),
                FormatPiece::Placeholder,
                FormatPiece::Text(r" 'q' \".into())
            ]
        );
        assert_eq!(
            call("States.StringSplit('Hello\nWorld', '\n')").args[1],
            lit(json!("\n"))
        );
        assert_eq!(
            call("States.StringToJson('{\"a\": 1}')").args[0],
            lit(json!("{\"a\": 1}"))
        );
        // AWS refuses `\"` inside an intrinsic string (conformance: ESCAPE_SEQUENCES_ILLEGAL).
        assert!(fails(r#"States.Format('He said, \"Hello, {}!\"', 'x')"#).contains("escape"));
    }

    #[test]
    fn errors() {
        assert!(fails("States.Nope()").contains("not an intrinsic function"));
        assert!(fails("States.MathAdd(1)").contains("takes 2 arguments"));
        assert!(fails("States.UUID(1)").contains("takes 0 arguments"));
        assert!(fails("States.MathRandom(1, 2, 3, 4)").contains("2 to 3"));
        assert!(fails("States.Format()").contains("at least 1"));
        assert!(fails("States.MathAdd('a', 1)").contains("must be a number"));
        assert!(fails("States.ArrayLength('a')").contains("must be an array"));
        assert!(fails("States.MathAdd(States.Format('x'), 1)").contains("must be a number"));
        assert!(fails("States.Hash($.a, 'SHA-3')").contains("algorithm"));
        assert!(fails("States.Format('x'").contains("expected ',' or ')'"));
        assert!(fails("States.Format('x").contains("unterminated"));
        assert!(fails("States.Format('x') trailing").contains("after"));
        assert!(fails("States.Format(foo)").contains("expected an argument"));
        assert!(fails("States.Format('{}', $.a[)").contains("invalid JSONPath"));
        assert!(fails("States.Format('{}', $.a])").contains("invalid JSONPath"));
        assert!(!looks_like_call("$.a"));
        assert!(looks_like_call("States.UUID()"));
    }
}
