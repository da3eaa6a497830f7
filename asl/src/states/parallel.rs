//! `{"Type": "Parallel", "Branches": [...]}`: runs every branch on the same input, and
//! outputs the array of their outputs.

use super::{DataFlow, ErrorHandling, StateCx, Supports, Transition, transition};
use crate::definition::Scope;
use crate::parse::{Fields, Loader, elements};

/// A Parallel state.
#[derive(Debug, Clone, PartialEq)]
pub struct Parallel {
    /// `Branches`: each a scope of its own, with its own `StartAt`.
    pub branches: Vec<Scope>,
    /// Data-flow fields.
    pub flow: DataFlow,
    /// `Retry` and `Catch`.
    pub errors: ErrorHandling,
    /// `Next` or `End`.
    pub transition: Option<Transition>,
}

impl Parallel {
    pub(crate) fn load(f: &mut Fields, l: &mut Loader, cx: &StateCx) -> Parallel {
        let flow = DataFlow::load(f, l, cx.lang, Supports::ALL);
        let errors = ErrorHandling::load(f, l, cx.lang);
        let mut branches = Vec::new();
        let at = f.pointer("Branches");
        if let Some(items) = f.array(l, "Branches") {
            if items.is_empty() {
                l.error(at.clone(), "Value cannot be empty");
            }
            for (at, v) in elements(items, &at) {
                if let Some(scope) = Scope::load_nested(l, v, at) {
                    branches.push(scope);
                }
            }
        } else if !f.has("Branches") {
            f.require("Branches");
        }
        Parallel {
            branches,
            flow,
            errors,
            transition: transition(f, l),
        }
    }
}
