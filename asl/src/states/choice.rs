//! `{"Type": "Choice", "Choices": [...], "Default": "..."}`: picks the next state by rules.

use serde_json::Value;

use super::{Assign, DataFlow, QueryLanguage, StateCx, Supports, assign, jsonata_value};
use crate::eval::{Env, Error};
use crate::jsonata::{self, Expression, JsonataValue};
use crate::parse::{Fields, Loader, elements, type_name};
use crate::path::Path;
use crate::timestamp::Timestamp;

/// A Choice state.
#[derive(Debug, Clone, PartialEq)]
pub struct Choice {
    /// `Choices`, tried in order.
    pub choices: Vec<ChoiceRule>,
    /// `Default`: where to go when no rule matches (else States.NoChoiceMatched).
    pub default: Option<String>,
    /// InputPath, OutputPath, Assign (and Output in JSONata).
    pub flow: DataFlow,
}

/// A top-level rule of `Choices`: a condition and where it leads.
#[derive(Debug, Clone, PartialEq)]
pub struct ChoiceRule {
    /// The condition.
    pub rule: Rule,
    /// `Next`
    pub next: String,
    /// `Assign`, applied when this rule matches.
    pub assign: Option<Assign>,
    /// `Output` (JSONata), used when this rule matches.
    pub output: Option<JsonataValue>,
}

/// A condition.
#[derive(Debug, Clone, PartialEq)]
pub enum Rule {
    /// `{"And": [...]}`
    And(Vec<Rule>),
    /// `{"Or": [...]}`
    Or(Vec<Rule>),
    /// `{"Not": {...}}`
    Not(Box<Rule>),
    /// `{"Variable": "$.x", "NumericEquals": 1}`
    Compare(Comparison),
    /// `{"Condition": "{% $states.input.x = 1 %}"}` (JSONata)
    Condition(Expression),
    /// `{"Condition": true}` (JSONata): a constant.
    Constant(bool),
}

/// `Variable` compared by one operator.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    /// `Variable`
    pub variable: Path,
    /// The operator.
    pub operator: Operator,
    /// What it compares with.
    pub operand: Operand,
}

/// The right-hand side of a comparison.
#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    /// A literal: a string, number, boolean; for `Is*` tests, the expected truth.
    Value(Value),
    /// A literal timestamp, for the `Timestamp*` operators.
    Timestamp(Timestamp),
    /// The `*Path` form: the value at this path.
    Path(Path),
}

/// The comparison operators (the `*Path` forms share the operator with a [`Operand::Path`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)] // the names are AWS's
pub enum Operator {
    StringEquals,
    StringLessThan,
    StringGreaterThan,
    StringLessThanEquals,
    StringGreaterThanEquals,
    StringMatches,
    NumericEquals,
    NumericLessThan,
    NumericGreaterThan,
    NumericLessThanEquals,
    NumericGreaterThanEquals,
    BooleanEquals,
    TimestampEquals,
    TimestampLessThan,
    TimestampGreaterThan,
    TimestampLessThanEquals,
    TimestampGreaterThanEquals,
    IsNull,
    IsPresent,
    IsNumeric,
    IsString,
    IsBoolean,
    IsTimestamp,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Operands {
    String,
    Number,
    Boolean,
    Timestamp,
    Test,
}

impl Operator {
    const ALL: [(Operator, &'static str, Operands, bool); 23] = {
        use Operands::*;
        use Operator::*;
        [
            (StringEquals, "StringEquals", String, true),
            (StringLessThan, "StringLessThan", String, true),
            (StringGreaterThan, "StringGreaterThan", String, true),
            (StringLessThanEquals, "StringLessThanEquals", String, true),
            (
                StringGreaterThanEquals,
                "StringGreaterThanEquals",
                String,
                true,
            ),
            (StringMatches, "StringMatches", String, false),
            (NumericEquals, "NumericEquals", Number, true),
            (NumericLessThan, "NumericLessThan", Number, true),
            (NumericGreaterThan, "NumericGreaterThan", Number, true),
            (NumericLessThanEquals, "NumericLessThanEquals", Number, true),
            (
                NumericGreaterThanEquals,
                "NumericGreaterThanEquals",
                Number,
                true,
            ),
            (BooleanEquals, "BooleanEquals", Boolean, true),
            (TimestampEquals, "TimestampEquals", Timestamp, true),
            (TimestampLessThan, "TimestampLessThan", Timestamp, true),
            (
                TimestampGreaterThan,
                "TimestampGreaterThan",
                Timestamp,
                true,
            ),
            (
                TimestampLessThanEquals,
                "TimestampLessThanEquals",
                Timestamp,
                true,
            ),
            (
                TimestampGreaterThanEquals,
                "TimestampGreaterThanEquals",
                Timestamp,
                true,
            ),
            (IsNull, "IsNull", Test, false),
            (IsPresent, "IsPresent", Test, false),
            (IsNumeric, "IsNumeric", Test, false),
            (IsString, "IsString", Test, false),
            (IsBoolean, "IsBoolean", Test, false),
            (IsTimestamp, "IsTimestamp", Test, false),
        ]
    };

    /// AWS's name of the operator (without `Path`).
    pub fn name(self) -> &'static str {
        Operator::ALL
            .iter()
            .find(|(op, ..)| *op == self)
            .map_or("", |(_, name, ..)| name)
    }

    /// Finds the operator a rule field names: `(operator, is_path_form)`.
    fn from_field(key: &str) -> Option<(Operator, Operands, bool)> {
        Operator::ALL
            .iter()
            .find_map(|&(op, name, operands, has_path)| {
                if key == name {
                    Some((op, operands, false))
                } else if has_path && key.strip_suffix("Path") == Some(name) {
                    Some((op, operands, true))
                } else {
                    None
                }
            })
    }
}

impl Choice {
    pub(crate) fn load(f: &mut Fields, l: &mut Loader, cx: &StateCx) -> Choice {
        let flow = DataFlow::load(
            f,
            l,
            cx.lang,
            Supports {
                assign: true,
                ..Supports::default()
            },
        );
        if f.map_value("Default").is_some_and(|v| !v.is_string()) {
            l.lost_edge();
        }
        let default = f.str(l, "Default").map(str::to_owned);
        let mut choices = Vec::new();
        let at = f.pointer("Choices");
        match f.array(l, "Choices") {
            Some(items) => {
                if items.is_empty() {
                    l.error(at.clone(), "Value cannot be empty");
                }
                for (at, v) in elements(items, &at) {
                    let Some(mut rf) = Fields::open(v, at, l) else {
                        l.lost_edge();
                        continue;
                    };
                    let rule = rule(&mut rf, l, cx.lang);
                    let next = rf.req_str(l, "Next").map(str::to_owned);
                    let output = if rf.in_language(l, "Output", QueryLanguage::Jsonata, cx.lang) {
                        jsonata_value(&mut rf, l, "Output")
                    } else {
                        None
                    };
                    let assign = assign(&mut rf, l, cx.lang);
                    rf.finish(l);
                    match (rule, next) {
                        (Some(rule), Some(next)) => choices.push(ChoiceRule {
                            rule,
                            next,
                            assign,
                            output,
                        }),
                        _ => l.lost_edge(),
                    }
                }
            }
            None if !f.has("Choices") => {
                f.require("Choices");
                l.lost_edge();
            }
            None => l.lost_edge(),
        }
        Choice {
            choices,
            default,
            flow,
        }
    }
}

/// One rule object's condition; the caller handles `Next`, `Assign` and `Output`.
fn rule(f: &mut Fields, l: &mut Loader, lang: QueryLanguage) -> Option<Rule> {
    f.str(l, "Comment");
    if lang == QueryLanguage::Jsonata {
        for key in f.keys() {
            if matches!(key.as_str(), "Variable" | "And" | "Or" | "Not")
                || Operator::from_field(&key).is_some()
            {
                f.in_language(l, &key, QueryLanguage::JsonPath, lang);
            }
        }
        let condition = f.require("Condition")?;
        return match condition {
            Value::Bool(b) => Some(Rule::Constant(*b)),
            Value::String(text) if jsonata::expression(text).is_some() => {
                jsonata::parsed(l, &f.pointer("Condition"), text).map(Rule::Condition)
            }
            _ => {
                l.error(
                    f.pointer("Condition"),
                    "The field 'Condition' must be a JSONata expression {% ... %} or a boolean",
                );
                None
            }
        };
    }
    if f.has("Condition") {
        f.in_language(l, "Condition", QueryLanguage::Jsonata, lang);
    }
    for (key, build) in [
        ("And", Rule::And as fn(Vec<Rule>) -> Rule),
        ("Or", Rule::Or),
    ] {
        if f.has(key) {
            let at = f.pointer(key);
            let items = f.array(l, key)?;
            if items.is_empty() {
                l.error(at.clone(), "Value cannot be empty");
            }
            let rules = elements(items, &at)
                .filter_map(|(at, v)| nested(l, v, at, lang))
                .collect();
            return Some(build(rules));
        }
    }
    if f.has("Not") {
        let at = f.pointer("Not");
        let v = f.take("Not")?;
        return nested(l, v, at, lang).map(|r| Rule::Not(Box::new(r)));
    }
    let variable = f.require("Variable").and_then(|_| f.path(l, "Variable"));
    let operators: Vec<String> = f
        .keys()
        .into_iter()
        .filter(|k| Operator::from_field(k).is_some())
        .collect();
    let unknown = f
        .keys()
        .iter()
        .any(|k| !RULE_FIELDS.contains(&k.as_str()) && Operator::from_field(k).is_none());
    if operators.is_empty() && unknown {
        // `finish` reports the unknown field, which says more than "no operator".
        return None;
    }
    if operators.len() != 1 {
        l.error(f.at.clone(),
            if operators.is_empty() {
                "A choice rule needs one comparison operator (StringEquals, NumericLessThan, IsPresent, ...) or And, Or, Not".to_owned()
            } else {
                format!("A choice rule takes exactly one comparison operator, but has {}", operators.join(", "))
            },
        );
        operators.iter().for_each(|k| {
            f.take(k);
        });
        return None;
    }
    let key = &operators[0];
    let (operator, operands, is_path) = Operator::from_field(key)?;
    let at = f.pointer(key);
    let v = f.take(key)?;
    let operand = if is_path {
        f.path(l, key).map(Operand::Path)
    } else {
        literal(l, &at, key, v, operands)
    };
    Some(Rule::Compare(Comparison {
        variable: variable?,
        operator,
        operand: operand?,
    }))
}

/// Fields a rule may have besides its operator.
const RULE_FIELDS: [&str; 9] = [
    "Variable",
    "Next",
    "Comment",
    "Assign",
    "Output",
    "And",
    "Or",
    "Not",
    "Condition",
];

fn literal(l: &mut Loader, at: &str, key: &str, v: &Value, operands: Operands) -> Option<Operand> {
    let (ok, expected) = match operands {
        Operands::String => (v.is_string(), "a string"),
        Operands::Number => (v.is_number(), "a number"),
        Operands::Boolean | Operands::Test => (v.is_boolean(), "a boolean"),
        Operands::Timestamp => {
            return match v.as_str().map(Timestamp::parse) {
                Some(Ok(t)) => Some(Operand::Timestamp(t)),
                Some(Err(e)) => {
                    l.error(at, e.to_string());
                    None
                }
                None => {
                    l.error(
                        at,
                        format!(
                            "The field '{key}' must be a timestamp string, but got {}",
                            type_name(v)
                        ),
                    );
                    None
                }
            };
        }
    };
    if !ok {
        l.error(
            at,
            format!(
                "The field '{key}' must be {expected}, but got {}",
                type_name(v)
            ),
        );
        return None;
    }
    Some(Operand::Value(v.clone()))
}

/// A rule inside And, Or or Not: no `Next`, `Assign` or `Output`.
fn nested(l: &mut Loader, v: &Value, at: String, lang: QueryLanguage) -> Option<Rule> {
    let mut f = Fields::open(v, at, l)?;
    let r = rule(&mut f, l, lang);
    f.finish(l);
    r
}

impl Rule {
    /// Whether the rule holds for `env`. AWS's typing: a comparison whose value has the wrong
    /// type is false, not an error (`NumericEquals` on a string, `BooleanEquals` on `0`);
    /// numbers compare by value (`0 == 0.0`). A `Variable` (or `*Path` operand) that reads
    /// nothing is a States.Runtime error, except for `IsPresent`.
    pub fn evaluate(&self, env: &Env) -> Result<bool, Error> {
        match self {
            Rule::And(rules) => {
                for r in rules {
                    if !r.evaluate(env)? {
                        return Ok(false);
                    }
                }
                Ok(true)
            }
            Rule::Or(rules) => {
                for r in rules {
                    if r.evaluate(env)? {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
            Rule::Not(rule) => Ok(!rule.evaluate(env)?),
            Rule::Compare(c) => c.evaluate(env),
            Rule::Constant(b) => Ok(*b),
            Rule::Condition(_) => Err(Error::runtime("JSONata conditions are not evaluated yet")),
        }
    }
}

impl Comparison {
    fn evaluate(&self, env: &Env) -> Result<bool, Error> {
        let invalid = |path: &Path| {
            Error::runtime(format!(
                "Invalid path '{}': The choice state's condition path references an invalid value.",
                path.as_str()
            ))
        };
        let value = env.read(&self.variable);
        if self.operator == Operator::IsPresent {
            let expected = matches!(self.operand, Operand::Value(Value::Bool(true)));
            return Ok(value.is_some() == expected);
        }
        let value = value.ok_or_else(|| invalid(&self.variable))?;
        let operand = match &self.operand {
            Operand::Path(p) => Operand::Value(env.read(p).ok_or_else(|| invalid(p))?),
            other => other.clone(),
        };
        Ok(compare(self.operator, &value, &operand))
    }
}

fn compare(op: Operator, value: &Value, operand: &Operand) -> bool {
    use Operator::*;
    let test = |holds: bool| matches!(operand, Operand::Value(Value::Bool(b)) if *b == holds);
    let order = |o: Option<std::cmp::Ordering>, accept: &[std::cmp::Ordering]| {
        o.is_some_and(|o| accept.contains(&o))
    };
    match op {
        IsNull => test(value.is_null()),
        IsNumeric => test(value.is_number()),
        IsString => test(value.is_string()),
        IsBoolean => test(value.is_boolean()),
        IsTimestamp => test(value.as_str().is_some_and(|s| Timestamp::parse(s).is_ok())),
        IsPresent => unreachable!("handled by the caller"),
        BooleanEquals => {
            matches!((value, operand), (Value::Bool(a), Operand::Value(Value::Bool(b))) if a == b)
        }
        StringMatches => match (value, operand) {
            (Value::String(s), Operand::Value(Value::String(pattern))) => {
                string_matches(s, pattern)
            }
            _ => false,
        },
        StringEquals
        | StringLessThan
        | StringGreaterThan
        | StringLessThanEquals
        | StringGreaterThanEquals => {
            let ord = match (value, operand) {
                (Value::String(a), Operand::Value(Value::String(b))) => {
                    Some(a.as_str().cmp(b.as_str()))
                }
                _ => None,
            };
            order(ord, accepted(op))
        }
        NumericEquals
        | NumericLessThan
        | NumericGreaterThan
        | NumericLessThanEquals
        | NumericGreaterThanEquals => {
            let ord = match (value, operand) {
                (Value::Number(a), Operand::Value(Value::Number(b))) => number_cmp(a, b),
                _ => None,
            };
            order(ord, accepted(op))
        }
        TimestampEquals
        | TimestampLessThan
        | TimestampGreaterThan
        | TimestampLessThanEquals
        | TimestampGreaterThanEquals => {
            let right = match operand {
                Operand::Timestamp(t) => Some(*t),
                Operand::Value(Value::String(s)) => Timestamp::parse(s).ok(),
                _ => None,
            };
            let left = value.as_str().and_then(|s| Timestamp::parse(s).ok());
            order(left.zip(right).map(|(l, r)| l.cmp(&r)), accepted(op))
        }
    }
}

/// The orderings under which an ordering operator holds.
fn accepted(op: Operator) -> &'static [std::cmp::Ordering] {
    use Operator::*;
    use std::cmp::Ordering::{Equal, Greater, Less};
    match op {
        StringEquals | NumericEquals | TimestampEquals => &[Equal],
        StringLessThan | NumericLessThan | TimestampLessThan => &[Less],
        StringGreaterThan | NumericGreaterThan | TimestampGreaterThan => &[Greater],
        StringLessThanEquals | NumericLessThanEquals | TimestampLessThanEquals => &[Less, Equal],
        StringGreaterThanEquals | NumericGreaterThanEquals | TimestampGreaterThanEquals => {
            &[Greater, Equal]
        }
        _ => &[],
    }
}

/// Integers compare exactly; anything else as f64.
fn number_cmp(a: &serde_json::Number, b: &serde_json::Number) -> Option<std::cmp::Ordering> {
    match (a.as_i64(), b.as_i64()) {
        (Some(x), Some(y)) => Some(x.cmp(&y)),
        _ => a.as_f64()?.partial_cmp(&b.as_f64()?),
    }
}

/// `StringMatches`: `*` matches any run of characters; `\*` is a literal star and `\\` a
/// literal backslash.
pub(crate) fn string_matches(s: &str, pattern: &str) -> bool {
    #[derive(PartialEq)]
    enum Token {
        Char(char),
        Star,
    }
    let mut tokens = Vec::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(e) => tokens.push(Token::Char(e)),
                None => tokens.push(Token::Char('\\')),
            },
            '*' => tokens.push(Token::Star),
            c => tokens.push(Token::Char(c)),
        }
    }
    // Greedy wildcard matching with backtracking to the last star: linear in practice.
    let text: Vec<char> = s.chars().collect();
    let (mut t, mut p) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while t < text.len() {
        match tokens.get(p) {
            Some(Token::Char(c)) if *c == text[t] => {
                t += 1;
                p += 1;
            }
            Some(Token::Star) => {
                star = Some(p);
                mark = t;
                p += 1;
            }
            _ => match star {
                Some(sp) => {
                    p = sp + 1;
                    mark += 1;
                    t = mark;
                }
                None => return false,
            },
        }
    }
    tokens[p..].iter().all(|t| *t == Token::Star)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operator_fields() {
        assert!(matches!(
            Operator::from_field("StringEquals"),
            Some((Operator::StringEquals, _, false))
        ));
        assert!(matches!(
            Operator::from_field("StringEqualsPath"),
            Some((Operator::StringEquals, _, true))
        ));
        assert!(matches!(
            Operator::from_field("TimestampLessThanEqualsPath"),
            Some((Operator::TimestampLessThanEquals, _, true))
        ));
        assert!(Operator::from_field("StringMatchesPath").is_none());
        assert!(Operator::from_field("IsNullPath").is_none());
        assert_eq!(Operator::IsTimestamp.name(), "IsTimestamp");
    }

    #[test]
    fn string_matching() {
        for (s, p, m) in [
            ("deploy-us-east-1", "deploy-*", true),
            ("deploy", "deploy-*", false),
            ("CREATE_IN_PROGRESS", "*_IN_PROGRESS", true),
            ("a*b", "a\\*b", true),
            ("axb", "a\\*b", false),
            ("a\\b", "a\\\\b", true),
            ("", "*", true),
            ("abc", "a*c*", true),
            ("abcbd", "a*b?d", false),
            ("log-2024-01.txt", "log-*-*.txt", true),
            ("aaa", "a*a*a*a", false),
        ] {
            assert_eq!(string_matches(s, p), m, "{s} ~ {p}");
        }
    }
}
