//! `{"Type": "Succeed"}`: ends the execution (or branch, or iteration) successfully.

use super::{DataFlow, StateCx, Supports};
use crate::parse::{Fields, Loader};

/// A Succeed state.
#[derive(Debug, Clone, PartialEq)]
pub struct Succeed {
    /// InputPath, OutputPath (JSONPath) or Output (JSONata).
    pub flow: DataFlow,
}

impl Succeed {
    pub(crate) fn load(f: &mut Fields, l: &mut Loader, cx: &StateCx) -> Succeed {
        Succeed {
            flow: DataFlow::load(f, l, cx.lang, Supports::default()),
        }
    }
}
