//! Fail: ends its run with an error and a cause, literal or read through a path.

use serde_json::Value;
use stepstone_asl::eval;
use stepstone_asl::states::{Fail, FailText};

use crate::Failure;
use crate::interpreter::probe::step;
use crate::interpreter::{Execution, Flow, RunId};

impl Execution<'_> {
    pub(crate) fn fail(&mut self, id: RunId, state: &Fail) -> Flow {
        let input = self.run_mut(id).take_input();
        // A Fail state has no InputPath: TestState shows its input as the step's result.
        self.inspect(id, step::AFTER_INPUT_PATH, || input.clone());
        let text = |t: &Option<FailText>, field: &str| -> Result<String, Failure> {
            match t {
                None => Ok(String::new()),
                Some(FailText::Literal(s)) => Ok(s.clone()),
                Some(FailText::Dynamic(d)) => {
                    let v = self
                        .with_env(id, &input, None, |env| env.dynamic(d, field))
                        .map_err(|e| self.state_failure(id, e))?;
                    match v {
                        Value::String(s) => Ok(s),
                        other => Err(self.state_failure(
                            id,
                            eval::Error::runtime(format!(
                                "The value of '{field}' must be a string, but is {other}"
                            )),
                        )),
                    }
                }
                Some(FailText::Expr(e)) => {
                    let scope = self.jsonata_scope(id, &input, None, None, None);
                    let field = field.trim_end_matches("Path");
                    match self.jsonata_expression(id, field, e, &scope)? {
                        Value::String(s) => Ok(s),
                        other => Err(self.jsonata_type_failure(id, field, &e.0, "string", &other)),
                    }
                }
            }
        };
        let error = match text(&state.error, "ErrorPath") {
            Ok(e) => e,
            Err(f) => return Flow::Fail(f),
        };
        let cause = match text(&state.cause, "CausePath") {
            Ok(c) => c,
            Err(f) => return Flow::Fail(f),
        };
        Flow::Fail(Failure::new(error, cause))
    }
}
