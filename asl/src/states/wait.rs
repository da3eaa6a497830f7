//! `{"Type": "Wait", "Seconds": 10, "Next": "..."}`: pauses, for a time or until a timestamp.

use serde_json::Value;

use super::{
    DataFlow, NumberOrExpr, QueryLanguage, StateCx, Supports, Transition, int_or_expr, transition,
};
use crate::jsonata::{self, Expression};
use crate::parse::{Fields, Loader};
use crate::path::Path;
use crate::timestamp::Timestamp;

/// What a Wait state waits for.
#[derive(Debug, Clone, PartialEq)]
pub enum WaitFor {
    /// `Seconds`
    Seconds(NumberOrExpr<i64>),
    /// `SecondsPath`
    SecondsPath(Path),
    /// `Timestamp`
    Timestamp(Timestamp),
    /// `Timestamp` as a JSONata expression.
    TimestampExpr(Expression),
    /// `TimestampPath`
    TimestampPath(Path),
}

/// A Wait state.
#[derive(Debug, Clone, PartialEq)]
pub struct Wait {
    /// Exactly one of the four wait fields.
    pub wait: Option<WaitFor>,
    /// Data-flow fields.
    pub flow: DataFlow,
    /// `Next` or `End`.
    pub transition: Option<Transition>,
}

const FIELDS: [&str; 4] = ["Seconds", "SecondsPath", "Timestamp", "TimestampPath"];

impl Wait {
    pub(crate) fn load(f: &mut Fields, l: &mut Loader, cx: &StateCx) -> Wait {
        let flow = DataFlow::load(
            f,
            l,
            cx.lang,
            Supports {
                assign: true,
                ..Supports::default()
            },
        );
        let given: Vec<&str> = FIELDS.into_iter().filter(|k| f.has(k)).collect();
        if given.len() != 1 {
            l.error(
                f.at.clone(),
                format!(
                    "Exactly one of the fields [{}] is required",
                    FIELDS.join(", ")
                ),
            );
        }
        let mut wait = None;
        if f.has("Seconds") {
            wait = int_or_expr(f, l, "Seconds", cx.lang, 0, 99_999_999).map(WaitFor::Seconds);
        }
        if f.in_language(l, "SecondsPath", QueryLanguage::JsonPath, cx.lang) {
            wait = f
                .reference_path(l, "SecondsPath")
                .map(WaitFor::SecondsPath)
                .or(wait);
        }
        if let Some(v) = f.take("Timestamp") {
            let at = f.pointer("Timestamp");
            wait = match (v, cx.lang) {
                (Value::String(s), QueryLanguage::Jsonata) if jsonata::expression(s).is_some() => {
                    jsonata::parsed(l, &at, s).map(WaitFor::TimestampExpr)
                }
                (Value::String(s), _) => match Timestamp::parse(s) {
                    Ok(t) => Some(WaitFor::Timestamp(t)),
                    Err(e) => {
                        l.error(at, e.to_string());
                        None
                    }
                },
                (other, _) => {
                    l.error(
                        at,
                        format!(
                            "The field 'Timestamp' must be a string, but got {}",
                            crate::parse::type_name(other)
                        ),
                    );
                    None
                }
            }
            .or(wait);
        }
        if f.in_language(l, "TimestampPath", QueryLanguage::JsonPath, cx.lang) {
            wait = f
                .reference_path(l, "TimestampPath")
                .map(WaitFor::TimestampPath)
                .or(wait);
        }
        Wait {
            wait,
            flow,
            transition: transition(f, l),
        }
    }
}
