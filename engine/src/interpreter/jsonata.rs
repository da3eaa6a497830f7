//! JSONata states: what their expressions see, and how their failures read.
//!
//! In a JSONata state an expression sees `$states.input` (the state's input), `$states.context`
//! (the context object), `$states.result` (in Output and Assign, once there is a result) and
//! `$states.errorOutput` (in a Catch), and the variables in scope. Every field of a state reads
//! the values from before the state: Assign and Output are evaluated against the same scope,
//! and the assignments apply afterwards. A failing or undefined expression fails the state with
//! States.QueryEvaluationError, AWS's cause naming the expression and the field.

use serde_json::{Map, Value};
use stepstone_asl::QueryLanguage;
use stepstone_asl::eval;
use stepstone_asl::jsonata::{Bounds, Expression, FieldError, JsonataValue, Problem, Scope};
use stepstone_asl::states::Assign;

use crate::Failure;
use crate::history::EventKind;
use crate::interpreter::{Execution, RunId};
use stepstone_asl::errors;

/// A field's name as causes give it (`Output`, `Choices[1]/Condition`): text, or arguments
/// formatted only when a failure names it.
pub(crate) trait Field: std::fmt::Display + Copy {}

impl<T: std::fmt::Display + Copy> Field for T {}

impl Execution<'_> {
    /// Whether run `id`'s current state is in JSONata.
    pub(crate) fn is_jsonata(&self, id: RunId) -> bool {
        let (_, state) = self.current(id);
        state.query_language == QueryLanguage::Jsonata
    }

    /// The scope of run `id`'s current state: `$states` with `input`, and `result` and
    /// `errorOutput` when given; the run's variables; the state's seed for `$random()`.
    pub(crate) fn jsonata_scope(
        &self,
        id: RunId,
        input: &Value,
        result: Option<&Value>,
        error_output: Option<&Value>,
        item: Option<(usize, &Value)>,
    ) -> Scope {
        // Each value is converted for the evaluator straight from where it is: no copy first.
        let (_, state) = self.current(id);
        let context = state
            .reads_context
            .then(|| self.with_env(id, input, item, |env| env.context.value().clone()));
        let mut fields = vec![("input", input)];
        fields.extend(result.map(|r| ("result", r)));
        fields.extend(error_output.map(|e| ("errorOutput", e)));
        fields.extend(context.as_ref().map(|c| ("context", c)));
        let run = self.run(id);
        let seed = self.seed
            ^ run.entered_event.wrapping_mul(0x9E37_79B9)
            ^ u64::from(run.retry_count) << 40;
        let variables = run
            .vars()
            .frame_refs()
            .into_iter()
            .flat_map(|frame| frame.iter().map(|(k, v)| (k.as_str(), v)))
            .filter(|(k, _)| state.variables_read.contains(*k));
        let budget = self.limits.evaluation_budget;
        let time = match self.evaluation_deadline {
            // A millisecond past the deadline (the evaluator counts whole milliseconds): an
            // evaluation cut short there is the timeout's, never the state's failure.
            Some(deadline) => budget.min(
                deadline.saturating_duration_since(std::time::Instant::now())
                    + std::time::Duration::from_millis(1),
            ),
            None => budget,
        };
        Scope::of_fields(&fields, variables, seed).bounded(Bounds {
            time: Some(time),
            interrupt: Some(self.interrupt.clone()),
        })
    }

    /// The failure for a JSONata field `field` of run `id`'s state.
    pub(crate) fn jsonata_failure(&self, id: RunId, field: impl Field, e: &FieldError) -> Failure {
        let field = field.to_string();
        self.field_failure(id, e.describe(&field), field)
    }

    /// States.QueryEvaluationError for `field` of run `id`'s state, noting the field for the
    /// EvaluationFailed event's location.
    fn field_failure(&self, id: RunId, message: String, field: String) -> Failure {
        // Cut short because the execution is being stopped or has timed out: not the state's
        // failure (see `Execution::interrupted`).
        if self.interrupt.is_raised()
            || self
                .evaluation_deadline
                .is_some_and(|d| std::time::Instant::now() >= d)
        {
            self.interrupted.set(true);
        }
        let failure = self.state_failure(id, query_error(message));
        self.evaluation_failed.replace(Some((id, Some(field))));
        failure
    }

    /// Records the EvaluationFailed event of run `id`, when `failure` is the JSONata
    /// evaluation failure its state just raised (see `state_failure`). Once per failure: true
    /// when it recorded one.
    pub(crate) fn record_evaluation_failure(&mut self, id: RunId, failure: &Failure) -> bool {
        let marked = self.evaluation_failed.take();
        let Some((run, location)) = marked.filter(|(run, _)| *run == id) else {
            return false;
        };
        if failure.error != errors::QUERY_EVALUATION_ERROR {
            return false;
        }
        let (state, _) = self.current(run);
        let (error, cause) = (failure.error.clone(), failure.cause.clone());
        self.event(run, || EventKind::EvaluationFailed {
            state: state.to_owned(),
            location,
            error,
            cause,
        });
        true
    }

    /// `value` evaluated in `scope`, as the state's field `field`.
    pub(crate) fn jsonata_value(
        &self,
        id: RunId,
        field: impl Field,
        value: &JsonataValue,
        scope: &Scope,
    ) -> Result<Value, Failure> {
        value
            .evaluate(scope)
            .map_err(|e| self.jsonata_failure(id, field, &e))
    }

    /// One expression (Condition, Seconds, Error...) evaluated in `scope`, as field `field`.
    pub(crate) fn jsonata_expression(
        &self,
        id: RunId,
        field: impl Field,
        expression: &Expression,
        scope: &Scope,
    ) -> Result<Value, Failure> {
        let problem = match expression.evaluate(scope) {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => Problem::Undefined,
            Err(q) => Problem::Failed(q.0),
        };
        let e = FieldError {
            path: String::new(),
            expression: expression.0.clone(),
            problem,
        };
        Err(self.jsonata_failure(id, field, &e))
    }

    /// A number field given as an expression (`TimeoutSeconds`, `MaxConcurrency`...), over
    /// `$states.input` = `input`; `integer` requires a whole number.
    pub(crate) fn jsonata_number(
        &self,
        id: RunId,
        field: impl Field,
        expression: &Expression,
        input: &Value,
        integer: bool,
    ) -> Result<f64, Failure> {
        let scope = self.jsonata_scope(id, input, None, None, None);
        let v = self.jsonata_expression(id, field, expression, &scope)?;
        match v.as_f64().filter(|n| !integer || n.fract() == 0.0) {
            Some(n) => Ok(n),
            None => {
                let expected = if integer { "integer" } else { "number" };
                Err(self.jsonata_type_failure(id, field, &expression.0, expected, &v))
            }
        }
    }

    /// AWS's failure for an expression of field `field` whose value is not of the `expected`
    /// type (`boolean`, `array`, `integer`...).
    pub(crate) fn jsonata_type_failure(
        &self,
        id: RunId,
        field: impl Field,
        expression: &str,
        expected: &str,
        value: &Value,
    ) -> Failure {
        let field = field.to_string();
        let message = format!(
            "The JSONata expression '{expression}' specified for the field '{field}' returned an unexpected result type. Expected '{expected}', but was '{}' for value: {value}",
            super::states::json_type(value)
        );
        self.field_failure(id, message, field)
    }

    /// A JSONata Assign evaluated in `scope` (applied by the caller, after the state's other
    /// fields, which see the variables from before it).
    pub(crate) fn jsonata_assign(
        &self,
        id: RunId,
        field: impl Field,
        assign: &Assign,
        scope: &Scope,
    ) -> Result<Map<String, Value>, Failure> {
        let Assign::Jsonata(value) = assign else {
            unreachable!("a JSONata state's Assign is JSONata")
        };
        match self.jsonata_value(id, field, value, scope)? {
            Value::Object(values) => {
                self.check_assign_sizes(id, &values)?;
                Ok(values)
            }
            _ => unreachable!("Assign is validated to be an object"),
        }
    }

    /// A JSONata state's end of data flow: Assign and Output (default: `result`) over
    /// `$states.input` and `$states.result`.
    pub(crate) fn jsonata_finish(
        &mut self,
        id: RunId,
        output: Option<&JsonataValue>,
        assign: Option<&Assign>,
        result: Value,
    ) -> Result<Value, Failure> {
        let input = self.run_mut(id).take_input();
        let scope = self.jsonata_scope(id, &input, Some(&result), None, None);
        let assigned = match assign {
            Some(a) => Some(self.jsonata_assign(id, "Assign", a, &scope)?),
            None => None,
        };
        let out = match output {
            Some(o) => self.jsonata_value(id, "Output", o, &scope)?,
            None => result,
        };
        if let Some(values) = assigned {
            self.apply_assign(id, values);
        }
        Ok(out)
    }
}

/// An evaluation error named States.QueryEvaluationError.
pub(crate) fn query_error(message: String) -> eval::Error {
    let mut e = eval::Error::runtime(message);
    e.error = errors::QUERY_EVALUATION_ERROR;
    e
}
