//! `{"Type": "Fail", "Error": "...", "Cause": "..."}`: ends the execution with an error.

use super::{QueryLanguage, StateCx};
use crate::diagnostic::Code;
use crate::jsonata::{self, Expression};
use crate::parse::{Dynamic, Fields, Loader};
use crate::template::looks_dynamic;

/// Where a Fail state's `Error` or `Cause` comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum FailText {
    /// `"Error": "Oops"`
    Literal(String),
    /// `"ErrorPath": "$.error"` or an intrinsic call (JSONPath).
    Dynamic(Dynamic),
    /// `"Error": "{% ... %}"` (JSONata).
    Expr(Expression),
}

/// A Fail state. It has no data flow: no InputPath, OutputPath or Output.
#[derive(Debug, Clone, PartialEq)]
pub struct Fail {
    /// `Error` or `ErrorPath`.
    pub error: Option<FailText>,
    /// `Cause` or `CausePath`.
    pub cause: Option<FailText>,
}

impl Fail {
    pub(crate) fn load(f: &mut Fields, l: &mut Loader, cx: &StateCx) -> Fail {
        Fail {
            error: text(f, l, cx, "Error", "ErrorPath"),
            cause: text(f, l, cx, "Cause", "CausePath"),
        }
    }
}

fn text(
    f: &mut Fields,
    l: &mut Loader,
    cx: &StateCx,
    key: &str,
    path_key: &str,
) -> Option<FailText> {
    if f.has(key) && f.has(path_key) {
        l.error(
            f.at.clone(),
            format!("Only one of the fields '{key}' and '{path_key}' may be set"),
        );
    }
    let dynamic = if f.in_language(l, path_key, QueryLanguage::JsonPath, cx.lang) {
        f.path_or_call(l, path_key).map(FailText::Dynamic)
    } else {
        None
    };
    let literal = f.str(l, key);
    if dynamic.is_some() {
        return dynamic;
    }
    let literal = literal?;
    if cx.lang == QueryLanguage::Jsonata {
        if let Some(e) = jsonata::parsed(l, &f.pointer(key), literal) {
            return Some(FailText::Expr(e));
        }
    } else if looks_dynamic(literal) {
        l.report(
            Code::NoPath,
            f.pointer(key),
            format!("The value of '{key}' looks like a path, but the field name does not end with 'Path'; use '{path_key}' to evaluate it"),
        );
    }
    Some(FailText::Literal(literal.to_owned()))
}
