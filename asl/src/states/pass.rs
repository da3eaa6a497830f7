//! `{"Type": "Pass", "Result": {...}, "Next": "..."}`: passes its input on, optionally
//! replacing it with a fixed `Result` or a `Parameters` template.

use serde_json::Value;

use super::{DataFlow, QueryLanguage, StateCx, Supports, Transition, transition};
use crate::diagnostic::Code;
use crate::parse::{Fields, Loader};
use crate::template::has_dollar_key;

/// A Pass state.
#[derive(Debug, Clone, PartialEq)]
pub struct Pass {
    /// `Result`: a fixed value used as the state's result (JSONPath only).
    pub result: Option<Value>,
    /// Data-flow fields.
    pub flow: DataFlow,
    /// `Next` or `End`.
    pub transition: Option<Transition>,
}

impl Pass {
    pub(crate) fn load(f: &mut Fields, l: &mut Loader, cx: &StateCx) -> Pass {
        let supports = Supports {
            parameters: true,
            result_path: true,
            assign: true,
            ..Supports::default()
        };
        let flow = DataFlow::load(f, l, cx.lang, supports);
        let mut result = None;
        if f.in_language(l, "Result", QueryLanguage::JsonPath, cx.lang) {
            result = f.take("Result").cloned();
            if result.as_ref().is_some_and(has_dollar_key) {
                l.report(
                    Code::PassResultIsStatic,
                    f.pointer("Result"),
                    "The Result of a Pass state is static: its '.$' fields are not evaluated; use Parameters to evaluate paths",
                );
            }
        }
        Pass {
            result,
            flow,
            transition: transition(f, l),
        }
    }
}
